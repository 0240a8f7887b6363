"""The training pipeline on small generated data folders (no ../shared needed): what it reads and
never reads, the float32 cache, the mixes it draws, the input features' noise floor, and a real
(tiny) training run that checkpoints, resumes and exports an installable model."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from whamsah_tray.separation.models import build_network
from whamsah_tray.separation.registry import load_model
from whamsah_tray.training import data as training_data
from whamsah_tray.training import export as training_export
from whamsah_tray.training import train as training_main


def _tone(seconds: float, rate: int, channels: int, freq: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.2 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32)


def _names(prefix: str, held_out: bool, count: int) -> list[str]:
    """Track names that data.py holds out for validation (sha1 hash 0 mod 16), or trains on."""
    names = (f"{prefix} {i}" for i in range(1000))
    return [n for n in names if (int(hashlib.sha1(n.encode()).hexdigest(), 16) % 16 == 0) == held_out][:count]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A ../shared/data-style folder: musdb7/train (one held-out track), a musdb7/test whose files
    are not audio (reading them would fail), MIR-1K at 16 kHz mono, solo vocals at 24 kHz,
    an instrumental."""
    root = tmp_path_factory.mktemp("shared_data")
    names = _names("Train Track", False, 3) + _names("Held Out", True, 1)
    for i, name in enumerate(names):
        track = root / "musdb7" / "train" / name
        track.mkdir(parents=True)
        soundfile.write(track / "vocals.ogg", _tone(2.0, 44100, 2, 300 + 50 * i, i), 44100)
        soundfile.write(track / "accompaniment.ogg", _tone(2.0, 44100, 2, 90 + 10 * i, 10 + i), 44100)
    test_track = root / "musdb7" / "test" / "Never Read"
    test_track.mkdir(parents=True)
    for stem in ("vocals", "accompaniment"):
        (test_track / f"{stem}.ogg").write_bytes(b"not audio: reading this file would fail")
    for i in range(2):
        clip = root / "mir1k" / f"clip_{i}"
        clip.mkdir(parents=True)
        soundfile.write(clip / "vocals.ogg", _tone(1.5, 16000, 1, 250, 20 + i), 16000)
        soundfile.write(clip / "accompaniment.ogg", _tone(1.5, 16000, 1, 120, 30 + i), 16000)
    (root / "solo_vocals" / "pjs").mkdir(parents=True)
    soundfile.write(root / "solo_vocals" / "pjs" / "solo.ogg", _tone(1.0, 24000, 1, 400, 40), 24000)
    (root / "instrumentals").mkdir()
    soundfile.write(root / "instrumentals" / "band.ogg", _tone(3.0, 44100, 2, 60, 50), 44100)
    return root


def test_shared_data_loader_reads_the_training_sets_at_44k1_and_never_the_test_split(data_root):
    sets = training_data.load_shared_data(data_root)
    assert len(sets["musdb"].vocals) == 3 and len(sets["musdb_val"].vocals) == 1
    assert sets["musdb_val"].names[0].startswith("Held Out")
    assert len(sets["mir1k"].vocals) == 2 and len(sets["solo"].vocals) == 1
    assert len(sets["instrumentals"].accompaniment) == 1
    assert abs(sets["mir1k"].vocals[0].shape[0] - int(1.5 * 44100)) < 64   # 16 kHz resampled
    assert abs(sets["solo"].vocals[0].shape[0] - 44100) < 64              # 24 kHz resampled
    assert sets["mir1k"].vocals[0].shape[1] == 1 and sets["musdb"].vocals[0].shape[1] == 2
    assert all(a.dtype == np.float32 for s in sets.values() for a in s.vocals + s.accompaniment)


def test_the_new_sets_load_apart_so_the_earlier_set_tables_draw_what_they_drew(tmp_path):
    """multitrack/<track> (mono written in two channels) becomes the `multitrack` set, mono;
    solo_vocals/gtsinger and m4singer (48 kHz here) become `solo_studio` at 44.1 kHz, and `solo`
    keeps only the other a cappella files. A folder without them gives no such sets."""
    for folder in ("musdb7/train", "mir1k"):
        (tmp_path / folder).mkdir(parents=True)
    track = tmp_path / "multitrack" / "Rock Song"
    track.mkdir(parents=True)
    soundfile.write(track / "vocals.ogg", _tone(2.0, 44100, 2, 300, 1), 44100)
    soundfile.write(track / "accompaniment.ogg", _tone(2.0, 44100, 2, 90, 2), 44100)
    for folder in ("gtsinger", "m4singer", "pjs"):
        (tmp_path / "solo_vocals" / folder).mkdir(parents=True)
        soundfile.write(tmp_path / "solo_vocals" / folder / "a.ogg", _tone(1.0, 48000, 1, 400, 3), 48000)
    sets = training_data.load_shared_data(tmp_path)
    assert sets["multitrack"].names == ["Rock Song"] and sets["multitrack"].vocals[0].shape == (88200, 1)
    assert len(sets["solo_studio"].vocals) == 2 and len(sets["solo"].vocals) == 1
    assert abs(sets["solo_studio"].vocals[0].shape[0] - 44100) < 64
    for folder in ("multitrack", "solo_vocals/gtsinger", "solo_vocals/m4singer"):
        shutil.rmtree(tmp_path / folder)
    assert {"multitrack", "solo_studio"}.isdisjoint(training_data.load_shared_data(tmp_path))


def test_rebalanced_low_ratio_and_saturated_mixes():
    """A multitrack whose vocals sit 15 dB under the band, sung in its second half only: with
    `rebalance_sets` every coherent mix has the drawn ratio (-3 dB) over the sung part and none
    where it is silent; `low_ratio_probability` 1 puts incoherent mixes in `low_ratio_db`;
    saturation keeps the accompaniment's level and vocals, and flattens its peaks."""
    t = np.arange(44100 * 4) / 44100
    vocals = (0.03 * np.sin(2 * np.pi * 500 * t) * (t >= 2)).astype(np.float32)[:, None]
    band = (0.3 * np.sin(2 * np.pi * 110 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)[:, None]
    assert training_data.sung_balance_db(vocals, band) == pytest.approx(-10 * np.log10(1.5 * 100), abs=0.2)
    sets = {"multitrack": training_data.StemSet(vocals=[vocals], accompaniment=[band])}
    sampler = training_data.MixSampler(sets, 44100, seed=2, coherent_probability=1.0, noise_probability=0.0,
                                       silent_vocals_probability=0.0, coherent_sets={"multitrack": 1.0},
                                       vocal_sets={"multitrack": 1.0}, accompaniment_sets={"multitrack": 1.0},
                                       rebalance_sets={"multitrack": (-3.0, -3.0)})
    sung = 0
    for _ in range(12):
        mixture, stem = sampler.sample()
        if np.abs(stem).max() > 0:
            on = np.abs(stem).sum(0) > 0
            if on.mean() == 1.0:  # a crop inside the sung half: the ratio over it is the drawn one
                sung += 1
                ratio = 10 * np.log10(np.sum(stem[:, on] ** 2) / np.sum((mixture - stem)[:, on] ** 2))
                assert ratio == pytest.approx(-3.0, abs=1.0)
    assert sung >= 2
    tone = lambda f: (0.2 * np.sin(2 * np.pi * f * t)).astype(np.float32)[:, None]
    sets = {"solo": training_data.StemSet(vocals=[tone(1000)]), "instrumentals": training_data.StemSet(
        accompaniment=[band])}
    low = training_data.MixSampler(sets, 44100, seed=3, coherent_probability=0.0, noise_probability=0.0,
                                   silent_vocals_probability=0.0, low_ratio_probability=1.0, low_ratio_db=(-16, -6))
    for _ in range(8):
        mixture, stem = low.sample()
        assert -16.1 < 10 * np.log10(np.sum(stem ** 2) / np.sum((mixture - stem) ** 2)) < -5.9
    clean = band[:, 0][None].repeat(2, axis=0)
    driven = training_data.saturate(clean, 24.0)
    assert training_data._rms(driven) == pytest.approx(training_data._rms(clean), rel=1e-3)
    assert np.abs(driven).max() / training_data._rms(driven) < 0.7 * np.abs(clean).max() / training_data._rms(clean)


def test_a_musdb18hq_folder_gives_accompaniment_as_the_sum_of_its_stems(tmp_path):
    track = tmp_path / "train" / "Some Song"
    track.mkdir(parents=True)
    stems = {name: _tone(0.5, 44100, 2, f, seed) for seed, (name, f) in
             enumerate({"vocals": 330, "bass": 55, "drums": 110, "other": 220}.items())}
    for name, audio in stems.items():
        soundfile.write(track / f"{name}.wav", audio, 44100, subtype="FLOAT")
    soundfile.write(track / "mixture.wav", sum(stems.values()), 44100, subtype="FLOAT")
    loaded = training_data.load_musdb18hq(tmp_path)
    np.testing.assert_allclose(loaded.vocals[0], stems["vocals"], atol=1e-6)
    np.testing.assert_allclose(loaded.accompaniment[0], stems["bass"] + stems["drums"] + stems["other"], atol=1e-6)


def test_the_cache_keeps_float32_and_an_old_float16_cache_is_rebuilt(data_root, tmp_path):
    cache = tmp_path / "stems.npz"
    np.savez(cache, **{"musdb/vocals/0": np.zeros((10, 2), np.float16),
                       "musdb/accompaniment/0": np.zeros((10, 2), np.float16)})
    sets = training_data.load_cached(data_root, None, cache)          # float16: rebuilt from data
    assert len(sets["musdb"].vocals) == 3
    again = training_data.load_cached(None, None, cache)                # now read from the cache
    assert again.keys() == sets.keys()
    for name in sets:
        for kind in ("vocals", "accompaniment"):
            for a, b in zip(getattr(sets[name], kind), getattr(again[name], kind)):
                assert b.dtype == np.float32
                np.testing.assert_array_equal(a, b)


def test_mixes_are_seeded_stereo_float32_at_training_levels(data_root):
    sets = training_data.load_shared_data(data_root)
    length = 16384
    first = training_data.MixSampler(sets, length, seed=7).batch(24)
    second = training_data.MixSampler(sets, length, seed=7).batch(24)
    np.testing.assert_array_equal(first[0], second[0])                   # seeded
    assert not np.array_equal(first[0], training_data.MixSampler(sets, length, seed=8).batch(24)[0])
    mixtures, vocals = first
    assert mixtures.shape == vocals.shape == (24, 2, length) and mixtures.dtype == np.float32
    levels = 10 * np.log10(np.mean(mixtures.astype(np.float64) ** 2, axis=(1, 2)))
    assert np.all(levels > -33) and np.all(levels < -7.9), levels
    assert np.abs(mixtures).max() <= 1.0


def test_the_noise_floor_goes_to_the_accompaniment(data_root):
    """With noise in every mix, the mixture minus the vocals holds the noise: in silent stretches
    of both stems the mixture is that noise (-105 to -75 dBFS), never exact zeros."""
    sets = training_data.load_shared_data(data_root)
    silent = training_data.StemSet(vocals=[np.zeros((30000, 2), np.float32)],
                                   accompaniment=[np.zeros((30000, 2), np.float32)])
    sets = {"musdb": silent}
    sampler = training_data.MixSampler(sets, 8192, seed=1, noise_probability=1.0)
    for _ in range(5):
        mixture, vocals = sampler.sample()
        assert not vocals.any()
        level = 10 * np.log10(np.mean(mixture.astype(np.float64) ** 2))
        assert -106 < level < -74, level
    quiet = training_data.MixSampler(sets, 8192, seed=1, noise_probability=0.0).sample()[0]
    assert not quiet.any()


def _frequency(audio: np.ndarray, rate: int = 44100) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * rate / len(audio))


def test_the_sets_the_stems_come_from_follow_the_configured_weights():
    """vocal_sets / accompaniment_sets / coherent_sets pick the sets by weight (0 leaves one out);
    each set here is a tone of its own, so a mix tells where its stems came from."""
    def tone(hz: float) -> np.ndarray:
        return (0.3 * np.sin(2 * np.pi * hz * np.arange(30000) / 44100)).astype(np.float32)[:, None]

    sets = {"musdb": training_data.StemSet(vocals=[tone(440)], accompaniment=[tone(1000)]),
            "mir1k": training_data.StemSet(vocals=[tone(2000)], accompaniment=[tone(3000)]),
            "solo": training_data.StemSet(vocals=[tone(5000)]),
            "instrumentals": training_data.StemSet(accompaniment=[tone(7000)])}

    def sources(n: int = 40, **weights) -> set[tuple[int, int]]:
        sampler = training_data.MixSampler(sets, 8192, seed=3, noise_probability=0.0,
                                           silent_vocals_probability=0.0, **weights)
        found = set()
        for _ in range(n):
            mixture, vocals = sampler.sample()
            found.add((round(_frequency(vocals[0])), round(_frequency((mixture - vocals)[0]))))
        return {(round(v, -2), round(a, -2)) for v, a in found}

    assert sources(coherent_probability=1.0, coherent_sets={"mir1k": 1.0, "musdb": 0.0}) == {(2000, 3000)}
    assert sources(coherent_probability=0.0, vocal_sets={"solo": 1.0},
                   accompaniment_sets={"instrumentals": 1.0, "musdb": 0.0}) == {(5000, 7000)}
    defaults = sources(coherent_probability=0.5)
    assert {v for v, _ in defaults} == {400, 2000, 5000} and {a for _, a in defaults} == {1000, 3000, 7000}
    with pytest.raises(ValueError, match="no training vocals"):
        training_data.MixSampler(sets, 8192, vocal_sets={"instrumentals": 1.0})


def test_speed_changes_move_pitch_and_keep_a_coherent_mix_in_step():
    """A tape-speed change scales every frequency by the factor drawn from speed_range; a coherent
    mix gets one factor for both stems, so a track whose two stems are the same signal still gives
    vocals == accompaniment, sample for sample."""
    t = np.arange(44100 * 4) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)[:, None].repeat(2, axis=1)
    sets = {"musdb": training_data.StemSet(vocals=[tone], accompaniment=[tone.copy()])}
    length = 32768
    fast = training_data.MixSampler(sets, length, seed=2, coherent_probability=1.0, noise_probability=0.0,
                                    silent_vocals_probability=0.0, speed_range=(1.15, 1.2), speed_probability=1.0)
    plain = training_data.MixSampler(sets, length, seed=2, coherent_probability=1.0, noise_probability=0.0,
                                     silent_vocals_probability=0.0)
    for _ in range(4):
        mixture, vocals = fast.sample()
        assert mixture.shape == (2, length) and mixture.dtype == vocals.dtype == np.float32
        accompaniment = mixture - vocals
        ratio = np.dot(accompaniment[0], vocals[0]) / np.dot(vocals[0], vocals[0])
        assert np.abs(accompaniment - ratio * vocals).max() < 1e-4 * np.abs(vocals).max()  # in step
        assert 1145 < _frequency(vocals[0]) < 1205  # 1000 Hz played 1.15-1.2 times faster
        assert 995 < _frequency(plain.sample()[1][0]) < 1005


def _level_at(audio: np.ndarray, frequency: float, rate: int = 44100) -> float:
    """RMS-like level of the sinusoid at `frequency` in (frames,) audio."""
    spectrum = np.abs(np.fft.rfft(audio)) * 2 / len(audio)
    return float(spectrum[int(round(frequency * len(audio) / rate))])


def test_random_eq_follows_a_smooth_curve_within_its_range_the_same_on_both_channels():
    rng = np.random.default_rng(3)
    length = 44100
    t = np.arange(length) / 44100
    tones = (100.0, 1000.0, 10000.0)  # whole cycles per second: exact rfft bins
    audio = np.stack([sum(np.sin(2 * np.pi * f * t) for f in tones)] * 2).astype(np.float32)
    for _ in range(5):
        coloured = training_data.random_eq(audio, rng, 6.0)
        assert coloured.shape == audio.shape and coloured.dtype == np.float32
        np.testing.assert_allclose(coloured[0], coloured[1], atol=1e-6)
        gains = [20 * np.log10(_level_at(coloured[0], f) / _level_at(audio[0], f)) for f in tones]
        assert all(-6.01 <= g <= 6.01 for g in gains)
        assert np.ptp(gains) > 0.1  # it does change the balance
    flat = training_data.random_eq(audio, rng, 0.0)
    np.testing.assert_allclose(flat, audio, atol=1e-5)


def test_stereo_width_scales_the_side_and_keeps_the_mid():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((2, 1000)).astype(np.float32)
    wider = training_data.scale_width(audio, 1.4)
    np.testing.assert_allclose(wider.sum(0), audio.sum(0), atol=1e-5)
    np.testing.assert_allclose(wider[0] - wider[1], 1.4 * (audio[0] - audio[1]), atol=1e-5)


def test_a_second_accompaniment_joins_the_accompaniment_never_the_vocals():
    """Vocals a 1 kHz tone, two accompaniment tracks at 300 Hz and 5 kHz: with a second
    accompaniment in every mix, mixes hold both accompaniment tones, quieter second, and the
    vocals stay the pure 1 kHz tone; the colouring options leave the vocals a 1 kHz tone too."""
    length = 44100
    t = np.arange(length * 2) / 44100
    def tone(f):
        return (0.2 * np.sin(2 * np.pi * f * t)).astype(np.float32)[:, None].repeat(2, axis=1)
    sets = {"solo": training_data.StemSet(vocals=[tone(1000)]),
            "instrumentals": training_data.StemSet(accompaniment=[tone(300), tone(5000)])}
    sampler = training_data.MixSampler(sets, length, seed=4, noise_probability=0.0, silent_vocals_probability=0.0,
                                       second_accompaniment_probability=1.0, eq_probability=1.0,
                                       width_probability=1.0, width_range=(0.5, 1.5))
    both = 0
    for _ in range(12):
        mixture, vocals = sampler.sample()
        accompaniment = (mixture - vocals).sum(0)
        assert _frequency(vocals[0]) == pytest.approx(1000, abs=2)
        assert _level_at(accompaniment, 1000) < 1e-3 * _level_at(vocals.sum(0), 1000)
        quiet, loud = sorted((_level_at(mixture[0] - vocals[0], f) ** 2 + _level_at(mixture[1] - vocals[1], f) ** 2
                              for f in (300, 5000)))
        if quiet > 1e-4 * loud:  # two different tracks (the same one twice gives one tone)
            both += 1
            assert -12.1 < 10 * np.log10(quiet / loud) < -2.9
    assert both >= 3  # 12 draws of one of two tracks


@pytest.mark.parametrize("speed_probability", [0.0, 1.0])
def test_a_coherent_mix_of_stems_shorter_than_the_crop_stays_in_step(speed_probability):
    """Stems shorter than the crop are zero-padded: both stems of a coherent mix at the same offset
    (they were padded at two independent random offsets, out of step, before)."""
    t = np.arange(int(44100 * 0.5)) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 700 * t)).astype(np.float32)[:, None].repeat(2, axis=1)
    sets = {"musdb": training_data.StemSet(vocals=[tone], accompaniment=[tone.copy()])}
    sampler = training_data.MixSampler(sets, 32768, seed=5, coherent_probability=1.0, noise_probability=0.0,
                                       silent_vocals_probability=0.0, speed_range=(0.9, 1.1),
                                       speed_probability=speed_probability)
    offsets = set()
    for _ in range(8):
        mixture, vocals = sampler.sample()
        accompaniment = mixture - vocals
        ratio = np.dot(accompaniment[0], vocals[0]) / np.dot(vocals[0], vocals[0])
        assert np.abs(accompaniment - ratio * vocals).max() < 1e-4 * np.abs(vocals).max()
        offsets.add(int(np.flatnonzero(np.abs(vocals[0]) > 1e-6)[0]))
    assert len(offsets) > 1  # the padding offset is still drawn at random


@pytest.mark.parametrize("layers, phase_bins", [(1, 0), (2, 0), (2, 16)])
def test_a_widened_mask_gru_computes_the_narrow_ones_masks_and_then_learns(layers, phase_bins):
    """--init-from with narrower weights (and without phase features): the wide network's masks
    equal the narrow one's at the start (to float rounding), and one training step moves the new
    units' outgoing weights (and the new features' weights) off zero, so the new capacity is used."""
    from whamsah_tray.training.losses import separation_loss
    from whamsah_tray.training.widen import load_initial_weights

    torch.manual_seed(0)
    narrow = build_network("mask-gru", {"hidden": 24, "gru_layers": layers, "power_floor": 1e-6})
    with torch.no_grad():
        narrow.feature_std.uniform_(0.5, 2.0)
        narrow.feature_mean.uniform_(-0.5, 0.5)
        for parameter in narrow.parameters():  # not the initial biases of zero: a real-looking net
            parameter.add_(0.05 * torch.randn_like(parameter))
    wide = build_network("mask-gru", {"hidden": 40, "gru_layers": layers, "power_floor": 1e-6, "phase_bins": phase_bins})
    expected_how = "widened from 24 to 40 hidden units"
    if phase_bins:
        expected_how = f"{2 * phase_bins} new input features, unused at first, " + expected_how
    assert load_initial_weights(wide, narrow.state_dict()) == expected_how
    mixture = 0.1 * torch.randn(2, 2, 2048 + 29 * 512)
    vocals = 0.5 * mixture + 0.02 * torch.randn_like(mixture)
    spec = narrow.stft(mixture)
    with torch.no_grad():
        expected, _ = narrow.masks(spec, None)
        got, _ = wide.masks(spec, None)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert load_initial_weights(build_network("mask-gru", {"hidden": 24, "gru_layers": layers, "power_floor": 1e-6}),
                                narrow.state_dict()) == "loaded as it is"

    optimizer = torch.optim.SGD(wide.parameters(), lr=0.1)
    loss, _ = separation_loss(spec, wide.stft(vocals), wide.masks(spec, None)[0], wide.lookahead)
    loss.backward()
    optimizer.step()
    assert wide.head[2].weight[:, 24:].abs().max() > 0
    if phase_bins:
        assert wide.project.weight[:, -2 * phase_bins:].abs().max() > 0


@pytest.mark.parametrize("memory", [False, True])
def test_weights_without_a_refiner_start_a_refined_network_at_the_same_masks_and_it_learns(memory):
    """--init-from trained weights into a network with a sub-band refiner (with or without its
    per-band memory): the masks are those of the weights at step 0 (the refiner's corrections are
    zero), and a training step moves the refiner's output weights off zero, so it starts to
    correct them."""
    from whamsah_tray.training.losses import band_separation_loss
    from whamsah_tray.training.widen import load_initial_weights

    torch.manual_seed(0)
    plain = build_network("mask-gru", {"hidden": 24, "gru_layers": 1, "phase_bins": 16, "power_floor": 1e-6})
    with torch.no_grad():
        plain.feature_std.uniform_(0.5, 2.0)
        for parameter in plain.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    refined = build_network("mask-gru", {"hidden": 24, "gru_layers": 1, "phase_bins": 16, "power_floor": 1e-6,
                                         "refine_channels": 8, "refine_bands": 40, "refine_memory": memory})
    assert load_initial_weights(refined, plain.state_dict()) == "a new sub-band refiner, its corrections zero at first"
    mixture = 0.1 * torch.randn(2, 2, 2048 + 29 * 512)
    vocals = 0.5 * mixture + 0.02 * torch.randn_like(mixture)
    spec = plain.stft(mixture)
    with torch.no_grad():
        torch.testing.assert_close(refined.masks(spec, None)[0], plain.masks(spec, None)[0], atol=1e-6, rtol=0)

    optimizer = torch.optim.SGD(refined.parameters(), lr=0.1)
    loss, _ = band_separation_loss(refined.features, spec, refined.stft(vocals), refined.band_masks(spec, None)[0],
                                   refined.lookahead)
    loss.backward()
    optimizer.step()
    assert refined.refiner.out.weight.abs().max() > 0
    assert load_initial_weights(build_network("mask-gru", {"hidden": 24, "gru_layers": 1, "phase_bins": 16,
                                                           "refine_channels": 8, "refine_bands": 40,
                                                           "refine_memory": memory}),
                                refined.state_dict()) == "loaded as it is"  # a refiner's own weights load as they are


def test_train_only_freezes_everything_else():
    """Config `train_only` ["refiner."]: the optimiser gets the refiner's parameters only, a step
    changes them and leaves the trunk exactly as it was (no gradient is computed for it)."""
    from whamsah_tray.training.losses import band_separation_loss

    torch.manual_seed(0)
    network = build_network("mask-gru", {"hidden": 24, "gru_layers": 1, "phase_bins": 16, "power_floor": 1e-6,
                                         "refine_channels": 8, "refine_bands": 40, "refine_memory": True})
    trainable = training_main.trainable_parameters(network, ["refiner."])
    refiner_names = {name for name, _ in network.named_parameters() if name.startswith("refiner.")}
    assert {id(p) for p in trainable} == {id(p) for name, p in network.named_parameters() if name in refiner_names}
    before = {name: p.detach().clone() for name, p in network.named_parameters()}
    mixture = 0.1 * torch.randn(2, 2, 2048 + 29 * 512)
    spec = network.stft(mixture)
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    loss, _ = band_separation_loss(network.features, spec, network.stft(0.5 * mixture),
                                   network.band_masks(spec, None)[0], network.lookahead)
    loss.backward()
    optimizer.step()
    for name, parameter in network.named_parameters():
        if name in refiner_names:
            assert parameter.grad is not None
        else:
            assert parameter.grad is None and torch.equal(parameter, before[name]), name
    assert not torch.equal(network.refiner.out.weight, before["refiner.out.weight"])
    with pytest.raises(ValueError, match="matches no parameter"):
        training_main.trainable_parameters(network, ["nothing."])


def test_weights_with_less_look_ahead_start_a_longer_time_convolution_at_the_same_masks_later():
    """--init-from weights with kernel 3 / look-ahead 1 into kernel 5 / look-ahead 3 (the same past
    frame): the time convolution's output is the old one two frames later exactly, and once the GRU
    has forgotten its two extra steps of start-up the masks are the old ones for the same frames;
    a training step then moves the new look-ahead taps off zero."""
    from whamsah_tray.training.losses import band_separation_loss
    from whamsah_tray.training.widen import load_initial_weights

    torch.manual_seed(0)
    config = {"hidden": 24, "gru_layers": 2, "phase_bins": 16, "power_floor": 1e-6}
    old = build_network("mask-gru", {**config, "conv_kernel": 3, "lookahead": 1})
    with torch.no_grad():
        old.feature_std.uniform_(0.5, 2.0)
        for parameter in old.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    grown = build_network("mask-gru", {**config, "conv_kernel": 5, "lookahead": 3, "synthesis_window": 1024})
    assert (load_initial_weights(grown, old.state_dict())
            == "time convolution grown from 3 to 5 taps, the new look-ahead taps zero")
    mixture = 0.1 * torch.randn(2, 2, 2048 + 59 * 512)
    vocals = 0.5 * mixture + 0.02 * torch.randn_like(mixture)
    spec = old.stft(mixture)  # the same frames for both (the grown one's windows are tested elsewhere)

    def encoded(network):
        state = network.init_net_state(2)
        features = (network.input_features(spec, state)[0] - network.feature_mean) / network.feature_std
        return network.encoder(torch.cat([state["conv"], network.project(features)], dim=-1))

    with torch.no_grad():
        torch.testing.assert_close(encoded(grown)[..., 2:], encoded(old)[..., :-2], atol=1e-6, rtol=0)
        old_masks, grown_masks = old.band_masks(spec, None)[0], grown.band_masks(spec, None)[0]
    # index k of the masks is frame k - lookahead: frame f is old[f + 1], grown[f + 3]
    torch.testing.assert_close(grown_masks[..., 2 + 20:], old_masks[..., 20:-2], atol=1e-5, rtol=0)

    optimizer = torch.optim.SGD(grown.parameters(), lr=0.1)
    grown_spec = grown.stft(mixture)
    loss, _ = band_separation_loss(grown.features, grown_spec, grown.stft(vocals), grown.band_masks(grown_spec, None)[0],
                                   grown.lookahead)
    loss.backward()
    optimizer.step()
    assert grown.encoder[0].weight[..., 3:].abs().max() > 0


@pytest.mark.parametrize("lookahead", [0, 1])
def test_the_band_loss_gives_the_per_bin_losss_value_and_gradients(lookahead):
    """band_separation_loss (per-band sums, what training uses for mask-gru) against
    separation_loss on the same masks spread over the bins: same SDRs, same gradients. A loss that
    dropped the cross term, a bin or the look-ahead shift would differ by far more than rounding."""
    from whamsah_tray.training.losses import band_separation_loss, separation_loss

    torch.manual_seed(0)
    network = build_network("mask-gru", {"hidden": 32, "gru_layers": 1, "phase_bins": 8, "lookahead": lookahead})
    with torch.no_grad():
        for parameter in network.head.parameters():  # masks spread over (0, 1), not all 0.5
            parameter.normal_(0, 0.3)
    mixture = 0.1 * torch.randn(2, 2, 2048 + 199 * 512)
    vocals = 0.6 * mixture + 0.03 * torch.randn_like(mixture)
    spec, vocals_spec = network.stft(mixture), network.stft(vocals)

    def run(loss_of):
        network.zero_grad()
        loss, figures = loss_of()
        loss.backward()
        return loss.item(), figures, [p.grad.clone() for p in network.parameters()]

    expected = run(lambda: separation_loss(spec, vocals_spec, network.masks(spec, None)[0], lookahead))
    got = run(lambda: band_separation_loss(network.features, spec, vocals_spec,
                                           network.band_masks(spec, None)[0], lookahead))
    assert got[0] == pytest.approx(expected[0], abs=1e-4)
    assert got[1] == pytest.approx(expected[1], abs=1e-4)
    assert expected[1]["vocals_sdr"] != pytest.approx(expected[1]["accompaniment_sdr"], abs=0.1)
    for a, b in zip(expected[2], got[2]):
        torch.testing.assert_close(b, a, atol=1e-5 * a.abs().max().item(), rtol=0)


def test_the_gain_free_sdr_forgives_a_gain_per_region_and_nothing_else():
    """The gain-free part of band_separation_loss against a direct computation on the bins: per
    channel, ~86 Hz group and 1 s segment, the estimate's projection on the reference is the target
    and the rest the error. A mask scaled down everywhere scores the same; a mask that lets more
    of the accompaniment in scores lower."""
    from whamsah_tray.training.losses import SEGMENT_FRAMES, band_separation_loss, gain_groups

    torch.manual_seed(1)
    network = build_network("mask-gru", {"hidden": 16, "gru_layers": 1})
    features, lookahead = network.features, 1
    mixture = 0.1 * torch.randn(1, 2, 2048 + 2 * SEGMENT_FRAMES * 512)
    vocals = 0.5 * mixture + 0.05 * torch.randn_like(mixture)
    spec, vocals_spec = network.stft(mixture), network.stft(vocals)
    band_mask = torch.rand(1, 2, features.n_bands, spec.shape[-1])

    def gain_free(band_mask):
        return band_separation_loss(features, spec, vocals_spec, band_mask, lookahead, gain_free_weight=1.0)[1]

    # Direct: per-bin estimate, projection per (channel, group, segment).
    n = spec.shape[-1] - lookahead
    mask = band_mask[..., lookahead:][:, :, features.band_of_bin]               # (1, 2, bins, n)
    x, v = spec[..., :n], vocals_spec[..., :n]
    group_of_bin = gain_groups(features).argmax(1)[features.band_of_bin]
    def direct(estimate, reference):  # mean over segments of the SDR, with the loss's floor
        sdrs = []
        for segment in range(n // SEGMENT_FRAMES):
            frames = slice(segment * SEGMENT_FRAMES, (segment + 1) * SEGMENT_FRAMES)
            target_energy = error_energy = 0.0
            for group in range(int(group_of_bin.max()) + 1):
                e, r = estimate[0, :, group_of_bin == group, frames], reference[0, :, group_of_bin == group, frames]
                dot = (e * r.conj()).real.sum(dim=(1, 2))
                target = dot.square() / r.abs().square().sum(dim=(1, 2))
                target_energy = target_energy + target.sum()
                error_energy = error_energy + (e.abs().square().sum(dim=(1, 2)) - target).sum()
            floor = 1e-3 * x[0, :, :, frames].abs().square().sum() + 1e-10
            sdrs.append(10 * torch.log10((target_energy + floor) / (error_energy + floor)).item())
        return np.mean(sdrs)
    got = gain_free(band_mask)
    for name, estimate, reference in (("vocals", mask * x, v), ("accompaniment", (1 - mask) * x, x - v)):
        assert got[f"{name}_gain_free_sdr"] == pytest.approx(direct(estimate, reference), abs=2e-3)
    # Vocals = the mixture below bin 300 plus noise: the right mask is 1 there and 0 above.
    low = (torch.arange(spec.shape[2]) < 300)[:, None]
    vocals_spec = spec * low + 1.6 * torch.randn_like(spec)  # SDRs ~3-6 dB: errors well above the floor
    low_bands = (features.band_of_bin[:300].max() >= torch.arange(features.n_bands))[:, None].float()
    def scores(band_mask):
        return band_separation_loss(features, spec, vocals_spec, band_mask.expand(1, 2, -1, spec.shape[-1]),
                                    lookahead, gain_free_weight=1.0)[1]
    right, quieter, leaky = scores(low_bands), scores(0.5 * low_bands), scores(low_bands + 0.3 * (1 - low_bands))
    # Half the vocals taken: a gain on the vocals (costs SDR, not gain-free SDR), vocals left in the
    # accompaniment (interference: costs both).
    assert quieter["vocals_sdr"] < right["vocals_sdr"] - 0.8
    assert quieter["vocals_gain_free_sdr"] == pytest.approx(right["vocals_gain_free_sdr"], abs=0.3)
    assert quieter["accompaniment_gain_free_sdr"] < right["accompaniment_gain_free_sdr"] - 1
    # 30 % of the accompaniment taken above bin 300: interference in the vocals, a gain on the accompaniment.
    assert leaky["vocals_gain_free_sdr"] < right["vocals_gain_free_sdr"] - 1
    assert leaky["accompaniment_gain_free_sdr"] == pytest.approx(right["accompaniment_gain_free_sdr"], abs=0.2)


def test_phase_features_give_a_partials_offset_from_its_bin_centre():
    """A sinusoid a quarter bin above bin 20's centre advances its phase by 2 pi * 0.25 * hop /
    n_fft more per hop than bin 20's centre frequency would (and by 2 pi * (20.25 - k) * hop /
    n_fft more than bin k's): the feature's angle in bins 19-21 (where its energy is); a bin far
    from it gives ~0; the first frame (no previous frame) gives 0."""
    from whamsah_tray.separation.models.mask_gru import phase_advance

    network = build_network("mask-gru", {"hidden": 16, "gru_layers": 1, "phase_bins": 64})
    n_fft, hop = network.n_fft, network.hop
    t = torch.arange(n_fft + 9 * hop, dtype=torch.float64)
    tone = (0.2 * torch.cos(2 * torch.pi * (20.25 / n_fft) * t)).float()
    spec = network.stft(torch.stack([tone, tone])[None])
    mid = spec[:, 0, :64] + spec[:, 1, :64]
    features = phase_advance(mid, torch.zeros(1, 64, 1, dtype=torch.complex64), hop, n_fft)[0]  # (128, T)
    angle = torch.atan2(features[64:], features[:64])
    for k in (19, 20, 21):
        expected = 2 * torch.pi * (20.25 - k) * hop / n_fft
        torch.testing.assert_close(angle[k, 1:], torch.full_like(angle[k, 1:], expected), atol=1e-3, rtol=0)
        assert torch.hypot(features[k, 1:], features[64 + k, 1:]).min() > 0.5  # salient
    assert features[:, 0].abs().max() == 0
    assert torch.hypot(features[50, 1:], features[114, 1:]).max() < 0.05  # far from the partial


def test_the_power_floor_makes_quiet_bands_independent_of_their_noise():
    """Two inputs that differ only in noise far below the music (as float16 rounding vs float32
    differ) give nearly the same features with a power floor, and clearly different ones without:
    the property that stops a model from learning the input's rounding noise."""
    rate, n = 44100, 2048 + 20 * 512
    t = np.arange(n) / rate
    music = 0.1 * np.sin(2 * np.pi * 440 * t)[None, None].repeat(2, axis=1)
    rng = np.random.default_rng(0)
    a = music + 1e-6 * rng.standard_normal((1, 2, n))        # -120 dBFS, uncorrelated L/R
    b = music + 1e-8 * rng.standard_normal((1, 2, n)).sum(axis=1, keepdims=True)  # -160, centred
    differences = {}
    for floor in (0.0, 1e-6):
        network = build_network("mask-gru", {"hidden": 16, "power_floor": floor})
        with torch.no_grad():
            fa, fb = (network.features(network.stft(torch.from_numpy(x).float())) for x in (a, b))
        bands = network.features.n_bands  # features: [energy, coherence, balance] x bands
        high = slice(bands, 2 * bands)    # the coherence of every band
        differences[floor] = (fa[:, high] - fb[:, high]).abs().max().item()
    assert differences[1e-6] < 0.05 < 0.5 < differences[0.0], differences


def _tiny_config(tmp_path: Path) -> Path:
    config = {
        "name": "tiny-rt", "architecture": "mask-gru",
        "model": {"hidden": 16, "gru_layers": 1, "conv_kernel": 3, "lookahead": 1, "power_floor": 1e-6},
        "batch_size": 2, "segment_frames": 16, "learning_rate": 1e-3, "weight_decay": 1e-4,
        "warmup_steps": 2, "final_lr_fraction": 0.1, "hours": 1.0, "checkpoint_minutes": 5,
        "validate_minutes": 60, "seed": 1, "snapshot_minutes": 1e-9,  # a snapshot at every step
        "mixing": {"speed_range": [0.9, 1.1], "speed_probability": 0.5},
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(config))
    return path


def test_a_tiny_training_run_checkpoints_resumes_and_exports_an_installable_model(data_root, tmp_path, capsys):
    config, run, cache = _tiny_config(tmp_path), tmp_path / "run", tmp_path / "cache.npz"
    common = ["--config", str(config), "--data", str(data_root), "--cache", str(cache),
              "--run", str(run), "--threads", "1"]
    assert training_main.main(common + ["--max-steps", "3"]) == 0
    first = torch.load(run / "last.pt", weights_only=False)
    assert first["step"] == 3 and (run / "best.pt").exists()
    snapshots = sorted(run.glob("snap_*.pt"))
    assert [torch.load(path, weights_only=False)["step"] for path in snapshots] == [1, 2, 3]
    assert all(torch.equal(torch.load(snapshots[-1], weights_only=False)["model"][k], v) for k, v in first["model"].items())
    assert '"final": true' in capsys.readouterr().out                 # validated on the held-out track
    assert training_main.main(common + ["--resume", "--max-steps", "5"]) == 0
    resumed = torch.load(run / "last.pt", weights_only=False)
    assert resumed["step"] == 5
    assert any(not torch.equal(first["model"][k], resumed["model"][k]) for k in first["model"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log == [] or all("step" in entry for entry in log)

    weights_dir = tmp_path / "weights"
    assert training_export.main([str(run / "last.pt"), "--name", "tiny-rt", "--weights-dir", str(weights_dir)]) == 0
    manifest = json.loads((weights_dir / "tiny-rt.json").read_text())
    assert manifest["config"]["power_floor"] == 1e-6 and manifest["figures"]["training"]["steps"] == 5
    assert manifest["latency_ms"] == pytest.approx(1000 * (2048 + 512) / 44100, abs=0.01)
    loaded = load_model("tiny-rt", weights_dir=weights_dir, torch_module=True)
    for key, value in resumed["model"].items():
        torch.testing.assert_close(loaded.network.state_dict()[key], value)

    # A later session continues from the installed weights, and resumes that run in turn: the
    # manifest still counts the earlier run's steps.
    later = common[:-3] + [str(tmp_path / "later"), "--threads", "1", "--init-from", str(weights_dir / "tiny-rt.pt")]
    assert training_main.main(later + ["--max-steps", "2", "--seed", "41", "--dropout", "0.2"]) == 0
    later_config = torch.load(tmp_path / "later" / "last.pt", weights_only=False)["config"]
    assert later_config["seed"] == 41
    assert later_config["model"]["dropout"] == 0.2
    assert training_main.main(later + ["--resume", "--max-steps", "4"]) == 0
    assert training_export.main([str(tmp_path / "later" / "last.pt"), "--name", "tiny-rt2",
                                 "--weights-dir", str(weights_dir)]) == 0
    assert json.loads((weights_dir / "tiny-rt2.json").read_text())["figures"]["training"]["steps"] == 5 + 4

    # Or from a training checkpoint (e.g. an average of snapshots): its own record counts its steps.
    from_checkpoint = common[:-3] + [str(tmp_path / "from-checkpoint"), "--threads", "1",
                                     "--init-from", str(run / "last.pt"), "--max-steps", "1"]
    assert training_main.main(from_checkpoint) == 0
    started = torch.load(tmp_path / "from-checkpoint" / "last.pt", weights_only=False)["config"]["init_from"]
    assert started["steps"] == 5


def test_init_from_twice_merges_a_trunk_and_a_refiners_own_weights(data_root, tmp_path):
    """--init-from TRUNK --init-from REFINER (a checkpoint holding only refiner.* tensors, as
    weights/in-training/ held in sessions 15-17): the network starts with both, the later file's tensors winning, and
    counts the later file's training."""
    from whamsah_tray.training.train import save_checkpoint

    config = json.loads(_tiny_config(tmp_path).read_text())
    config["model"].update({"phase_bins": 8, "refine_channels": 4, "refine_bands": 20, "refine_memory": True})
    config["hours"] = 1.0  # overridden below: --hours 0, no step, the checkpoint holds the weights it started from
    config_path = tmp_path / "refined.json"
    config_path.write_text(json.dumps(config))
    torch.manual_seed(3)
    refined = build_network("mask-gru", config["model"])
    with torch.no_grad():
        for parameter in refined.parameters():
            parameter.normal_(0, 0.1)
    trunk = {k: v for k, v in refined.state_dict().items() if not k.startswith("refiner.")}
    torch.save(trunk, tmp_path / "trunk.pt")
    refiner = {k: v for k, v in refined.state_dict().items() if k.startswith("refiner.")}
    save_checkpoint(tmp_path / "refiner.pt", model=refiner, step=7, elapsed=3600.0,
                    config={"init_from": {"steps": 100, "wall_hours": 2.0}})
    run = tmp_path / "merged"
    assert training_main.main(["--config", str(config_path), "--data", str(data_root), "--cache", str(tmp_path / "c.npz"),
                               "--run", str(run), "--threads", "1", "--hours", "0", "--max-steps", "1",
                               "--init-from", str(tmp_path / "trunk.pt"), "--init-from", str(tmp_path / "refiner.pt")]) == 0
    saved = torch.load(run / "last.pt", weights_only=False)
    for key, value in refined.state_dict().items():
        torch.testing.assert_close(saved["model"][key], value, msg=key)
    assert saved["config"]["init_from"]["steps"] == 107 and saved["config"]["init_from"]["wall_hours"] == 3.0


def test_averaging_checkpoints_averages_the_weights_and_keeps_the_last_ones_record(tmp_path):
    from whamsah_tray.training.average import main as average_main
    from whamsah_tray.training.train import save_checkpoint

    paths = []
    for i, scale in enumerate((1.0, 3.0)):
        network = build_network("mask-gru", {"hidden": 8, "gru_layers": 1})
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.fill_(scale)
        paths.append(tmp_path / f"{i}.pt")
        save_checkpoint(paths[-1], model=network.state_dict(), step=10 * (i + 1), elapsed=1.0, config={"name": "x"})
    assert average_main([str(tmp_path / "avg.pt"), *map(str, paths)]) == 0
    averaged = torch.load(tmp_path / "avg.pt", weights_only=False)
    assert averaged["step"] == 20 and averaged["averaged_steps"] == [10, 20]
    assert averaged["averaged"] == [{"step": 10, "hours": 0.0}, {"step": 20, "hours": 0.0}]
    assert average_main([str(tmp_path / "soup.pt"), str(paths[0]), str(tmp_path / "avg.pt")]) == 0
    assert torch.load(tmp_path / "soup.pt", weights_only=False)["averaged"][1]["averaged"] == averaged["averaged"]
    assert torch.equal(averaged["model"]["project.weight"], torch.full_like(averaged["model"]["project.weight"], 2.0))
    # Installed weights (a plain state dict) average like a checkpoint of no steps, named in the record.
    torch.save(torch.load(paths[1], weights_only=False)["model"], tmp_path / "installed.pt")
    assert average_main([str(tmp_path / "mean.pt"), str(tmp_path / "installed.pt"), str(paths[0])]) == 0
    mean = torch.load(tmp_path / "mean.pt", weights_only=False)
    assert mean["averaged"][0] == {"step": 0, "hours": 0.0, "weights": "installed.pt"} and mean["step"] == 10
    assert torch.equal(mean["model"]["project.weight"], averaged["model"]["project.weight"])
    with pytest.raises(ValueError, match="last"):
        average_main([str(tmp_path / "bad.pt"), str(paths[0]), str(tmp_path / "installed.pt")])


def test_calibration_picks_the_offset_with_the_best_held_out_figures_and_the_export_keeps_it(data_root, tmp_path):
    """calibrate.py scores each mask logit offset on the held-out musdb7/train track (never on
    musdb7/test: the fixture's test files are not audio) with the figures `evaluate` gives for a
    model of that offset, keeps the best sum of the four, and the exported model applies it."""
    from whamsah_tray.evaluation import evaluate
    from whamsah_tray.training.calibrate import main as calibrate_main
    from whamsah_tray.training.calibrate import with_offset
    from whamsah_tray.training.train import save_checkpoint

    torch.manual_seed(3)
    network = build_network("mask-gru", {"hidden": 16, "gru_layers": 1, "power_floor": 1e-6})
    config = {"name": "tiny-rt", "architecture": "mask-gru", "model": network.config}
    save_checkpoint(tmp_path / "avg.pt", model=network.state_dict(), step=7, elapsed=36.0, config=config)
    offsets = [-3.0, 0.5, 3.0]
    assert calibrate_main([str(tmp_path / "avg.pt"), str(tmp_path / "cal.pt"), "--data", str(data_root),
                           "--offsets", *map(str, offsets)]) == 0
    calibrated = torch.load(tmp_path / "cal.pt", weights_only=False)
    record = calibrated["calibration"]
    assert record["held_out_tracks"] == _names("Held Out", True, 1)
    held_out = tmp_path / "held_out"
    held_out.mkdir()
    (held_out / record["held_out_tracks"][0]).symlink_to(data_root / "musdb7" / "train" / record["held_out_tracks"][0])
    sums = []
    for offset, row in zip(offsets, record["offsets"]):
        summary = evaluate(held_out, with_offset({"config": config, "model": network.state_dict()}, offset)).rows[0].summary
        assert row == {"offset": offset, **{key: pytest.approx(value, abs=1e-3) for key, value in summary.items()}}
        sums.append(sum(summary.values()))
    assert len(set(np.round(sums, 3))) == 3                          # the offsets really change the figures
    assert record["chosen"] == offsets[int(np.argmax(sums))]
    assert calibrated["config"] == config                             # the training record stays as it was

    weights_dir = tmp_path / "weights"
    assert training_export.main([str(tmp_path / "cal.pt"), "--name", "tiny-cal", "--weights-dir", str(weights_dir)]) == 0
    manifest = json.loads((weights_dir / "tiny-cal.json").read_text())
    assert manifest["config"].get("mask_logit_offset", 0.0) == record["chosen"] and manifest["figures"]["calibration"] == record
    spec = torch.stft(torch.randn(2, 44100), 2048, 512, window=torch.hann_window(2048).sqrt(), return_complex=True)[None]
    with torch.no_grad():
        shifted, _ = load_model("tiny-cal", weights_dir=weights_dir, torch_module=True).network.band_masks(spec, None)
        plain, _ = network.eval().band_masks(spec, None)
    torch.testing.assert_close(torch.logit(shifted.double()), torch.logit(plain.double()) + record["chosen"],
                               atol=1e-3, rtol=0)


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile (training's --compile) needs a C++ compiler")
def test_compiled_feature_and_loss_kernels_give_the_eager_loss_and_gradients():
    """--compile: the band features and the loss's band sums as torch.compile'd kernels give the
    same loss and the same gradients as the eager code, and the network's weights (its state
    dict) do not change by it."""
    from whamsah_tray.training.objectives import objective_for

    torch.manual_seed(0)
    eager = build_network("mask-gru", {"hidden": 16, "gru_layers": 1, "phase_bins": 32, "power_floor": 1e-6})
    compiled = build_network("mask-gru", eager.config)
    compiled.load_state_dict(eager.state_dict())
    mixture, vocals = torch.randn(2, 2, 2048 + 15 * 512) * 0.1, torch.randn(2, 2, 2048 + 15 * 512) * 0.05
    results = []
    for network, compile in ((eager, False), (compiled, True)):
        objective = objective_for(network, compile=compile)
        loss, _ = objective.loss(mixture, vocals + 0.0)
        loss.backward()
        results.append((loss.item(), {name: p.grad.clone() for name, p in network.named_parameters()}))
    assert compiled.compiled_features is not None and compiled.state_dict().keys() == eager.state_dict().keys()
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-5)
    for name, gradient in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], gradient, rtol=1e-4, atol=1e-5 * gradient.abs().max().item())
