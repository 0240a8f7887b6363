"""Key change (separation/key_shift.py, StreamingSeparator.set_key, separate_array(key=)): what the
listener hears. A shifted tone lands on f0 * 2^(n/12) and keeps its duration; the phase vocoder
beats a naive bin shift against librosa's offline pitch shift; key 0 changes nothing, to the bit;
a key change while playing makes no click; vocals + instrumental is the shifted input, at the
model's own latency, for any model, block size and channel count."""

from __future__ import annotations

import numpy as np
import pytest

from whamsah_tray.separation import (
    StreamingSeparator,
    create_untrained_model,
    load_model,
    separate_array,
)
from whamsah_tray.separation.key_shift import MAX_KEY, key_ratio
from pitch import cents, measured_pitch, sawtooth  # noqa: E402

SR = 44100
HOP = 512
SMALL = {"hidden": 32, "gru_layers": 1}
ASYMMETRIC = {"synthesis_window": 1024, "conv_kernel": 5, "lookahead": 3}
IDENTITY = create_untrained_model("identity")


def random_model(seed: int = 0, **config):
    """A tiny mask-gru with random weights and standardisation, so that its masks vary."""
    import torch

    model = create_untrained_model("mask-gru", {**SMALL, **config}, seed=seed)
    with torch.no_grad():
        model.network.feature_std.uniform_(0.05, 0.5, generator=torch.Generator().manual_seed(seed))
    return model


def shifted(audio: np.ndarray, n: int, sample_rate: int = SR, model=IDENTITY) -> np.ndarray:
    vocals, instrumental = separate_array(audio, sample_rate, model, key=n)
    return vocals + instrumental


def sounding(audio: np.ndarray, below: float = 20.0, frame: int = 128) -> tuple[int, int]:
    """First and last sample of the frames whose RMS is within `below` dB of the steady level
    (the median of the frames above half the loudest)."""
    rms = np.sqrt(np.mean(audio[: len(audio) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > 10 ** (-below / 20) * np.median(rms[rms > 0.5 * rms.max()]))
    return loud[0] * frame, (loud[-1] + 1) * frame


def stream_per_hop(separator: StreamingSeparator, audio: np.ndarray, keys: dict[int, int] | None = None):
    """Feed a hop per call, as the engine's worker does; keys: {hop index: key set before it}."""
    vocals, instrumental = [], []
    for i in range(len(audio) // HOP):
        if keys and i in keys:
            separator.set_key(keys[i])
        v, s = separator.process(audio[i * HOP:(i + 1) * HOP])
        vocals.append(v)
        instrumental.append(s)
    return np.concatenate(vocals), np.concatenate(instrumental)


@pytest.mark.parametrize("n", range(-MAX_KEY, MAX_KEY + 1))
def test_a_sawtooth_lands_within_5_cents_and_keeps_its_duration(n):
    pad = np.zeros(SR // 4, np.float32)
    for f0 in (110.0, 220.0, 440.0, 880.0):
        tone = sawtooth(f0, 1.5)
        audio = np.concatenate([pad, tone, pad])
        out = shifted(audio, n)
        assert out.shape == (len(audio), 1)
        target = f0 * key_ratio(n)
        steady = out[len(pad) + 4096:len(pad) + len(tone) - 4096, 0]
        assert abs(cents(measured_pitch(steady, target), target)) < 5, (f0, n)
        # The edges at -20 dB (where the window's smearing shows) within a hop of the input's,
        # the duration at half amplitude within a hop of the input's.
        start, stop = sounding(out[:, 0])
        assert abs(start - len(pad)) <= HOP and abs(stop - len(pad) - len(tone)) <= HOP, (f0, n, start, stop)
        start, stop = sounding(out[:, 0], below=6.0)
        assert abs(stop - start - len(tone)) <= HOP, (f0, n, start, stop)


def test_offline_at_another_rate_shifts_the_same():
    tone = sawtooth(220.0, 1.5, sample_rate=22050)
    vocals, instrumental = separate_array(tone, 22050, IDENTITY, key=-4)
    assert vocals.shape == instrumental.shape == (len(tone), 1)
    target = 220.0 * key_ratio(-4)
    assert abs(cents(measured_pitch((vocals + instrumental)[4096:-4096, 0], target, 22050), target)) < 5


def test_a_stereo_pair_with_one_channel_inverted_is_shifted_not_lost():
    tone = sawtooth(220.0, 1.5)
    vocals, instrumental = separate_array(np.stack([tone, -tone], axis=1), SR, IDENTITY, key=3)
    out = (vocals + instrumental)[4096:-4096]
    np.testing.assert_allclose(out[:, 1], -out[:, 0], atol=1e-6)
    assert np.sqrt(np.mean(out**2)) > 0.5 * np.sqrt(np.mean(tone**2))
    target = 220.0 * key_ratio(3)
    assert abs(cents(measured_pitch(out[:, 0], target), target)) < 5


def music(seconds: float = 3.0) -> np.ndarray:
    """Notes of a few harmonic voices with decays and vibrato, and hi-hat-like noise bursts: mono."""
    rng = np.random.default_rng(1)
    out = np.zeros(int(seconds * SR), np.float32)
    note = SR // 2
    for start in range(0, len(out) - note + 1, note):
        t = np.arange(note) / SR
        for f0, vibrato in ((rng.choice([110.0, 130.8, 146.8, 164.8]), 0.0), (rng.choice([261.6, 329.6, 392.0]), 0.3)):
            out[start:start + note] += sawtooth(f0, 0.5, vibrato=vibrato)[:note] * np.exp(-3 * t).astype(np.float32)
        burst = rng.standard_normal(2048).astype(np.float32) * np.exp(-np.arange(2048) / 300).astype(np.float32)
        out[start + note // 2:start + note // 2 + 2048] += 0.1 * burst
    return out


def naive_bin_shift(audio: np.ndarray, n: int, n_fft: int = 2048) -> np.ndarray:
    """Each STFT bin k moved to round(k * ratio), its phase as it is (sqrt-Hann, overlap-add)."""
    padded = np.concatenate([np.zeros(n_fft, np.float32), audio, np.zeros(n_fft, np.float32)])
    window = np.sqrt(np.hanning(n_fft + 1)[:n_fft])
    spec = np.fft.rfft(np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::HOP] * window, axis=-1)
    target = np.rint(np.arange(spec.shape[-1]) * key_ratio(n)).astype(int)
    keep = target < spec.shape[-1]
    moved = np.zeros_like(spec)
    np.add.at(moved, (slice(None), target[keep]), spec[:, keep])
    frames = np.fft.irfft(moved, n=n_fft, axis=-1) * window / (window**2).reshape(-1, HOP).sum(0).mean()
    out = np.zeros(len(padded))
    for k, frame in enumerate(frames):
        out[k * HOP:k * HOP + n_fft] += frame
    return out[n_fft:n_fft + len(audio)].astype(np.float32)


def log_mel_distance(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Mean |difference| (dB) of 128-band log-mel spectra, the estimate at the reference's RMS,
    both floored 80 dB under the reference's peak (bench/bench_key.py measures the same)."""
    import librosa

    estimate = estimate * np.sqrt(np.mean(reference**2) / np.mean(estimate**2))
    a, b = (10 * np.log10(np.maximum(librosa.feature.melspectrogram(y=x, sr=SR, n_fft=2048, hop_length=HOP,
                                                                     n_mels=128), 1e-12))
            for x in (estimate, reference))
    floor = b.max() - 80
    return float(np.mean(np.abs(np.maximum(a, floor) - np.maximum(b, floor))))


@pytest.mark.parametrize("n", [-6, -3, -1, 2, 5])
def test_phase_handling_beats_a_naive_bin_shift_against_librosa(n):
    import librosa

    audio = music()
    reference = librosa.effects.pitch_shift(audio, sr=SR, n_steps=n)
    ours = log_mel_distance(shifted(audio, n)[:, 0], reference)
    naive = log_mel_distance(naive_bin_shift(audio, n), reference)
    assert ours < naive, (ours, naive)


@pytest.mark.parametrize("config", [{}, ASYMMETRIC])
def test_key_zero_is_bit_identical(config):
    model = random_model(**config)
    audio = np.random.default_rng(0).standard_normal((40 * HOP, 2)).astype(np.float32) * 0.3
    plain = stream_per_hop(StreamingSeparator(model, 2), audio)
    untouched = StreamingSeparator(model, 2)
    untouched.set_key(0)
    np.testing.assert_array_equal(stream_per_hop(untouched, audio)[0], plain[0])
    there_and_back = StreamingSeparator(model, 2)
    there_and_back.set_key(5)
    there_and_back.set_key(0)  # before any audio: never shifted
    for got, expected in zip(stream_per_hop(there_and_back, audio), plain):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("config", [{}, ASYMMETRIC])
def test_back_at_key_zero_the_output_is_the_unshifted_one_again(config):
    """Once the shifted frames have left the overlap-add, the separator is on its plain path:
    the same output as one that was never shifted."""
    model = random_model(**config)
    audio = np.random.default_rng(1).standard_normal((60 * HOP, 2)).astype(np.float32) * 0.3
    plain = stream_per_hop(StreamingSeparator(model, 2), audio)
    separator = StreamingSeparator(model, 2)
    excursion = stream_per_hop(separator, audio, keys={10: 3, 20: 0})
    network = model.network
    settled = 21 * HOP + separator.latency + network.synthesis_length  # the last shifted frame's output, past
    assert not separator._key_shift.active
    for got, expected in zip(excursion, plain):
        assert np.abs(got[12 * HOP:20 * HOP] - expected[12 * HOP:20 * HOP]).max() > 0.01  # it did shift
        np.testing.assert_allclose(got[settled:], expected[settled:], atol=1e-6)


def test_a_key_change_while_playing_makes_no_click():
    """A chord, hop by hop, the key changed every 0.3 s: around every change the output moves from
    sample to sample no more than it does in the steady keys on either side of it, and there no
    more than the input does, times the frequency ratio."""
    model = random_model()
    seconds = 0.3
    keys = [0, 3, -4, 6, 5, -6, 0, 2, 0]
    t = np.arange(int(seconds * SR * len(keys))) / SR
    chord = (0.2 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277.2 * t) + np.sin(2 * np.pi * 329.6 * t)))
    audio = np.repeat(chord.astype(np.float32)[:, None], 2, axis=1)
    every = int(seconds * SR) // HOP
    separator = StreamingSeparator(model, 2)
    vocals, instrumental = stream_per_hop(separator, audio, keys={i * every: key for i, key in enumerate(keys)})
    window = model.network.synthesis_length
    input_step = np.abs(np.diff(chord)).max()
    for name, heard in (("mix", vocals + instrumental), ("instrumental", instrumental)):
        step = np.abs(np.diff(heard[:, 0]))
        for i in range(1, len(keys)):
            # The change applies to the frames synthesised next, whose input is already in: it is
            # heard from the next hop's output on, and crossfades over one synthesis window.
            switch = (i * every + 1) * HOP
            before = step[switch - every * HOP + window + HOP:switch - HOP].max()
            around = step[switch - HOP:switch + window + HOP].max()
            after = step[switch + window + HOP:switch + every * HOP - HOP].max()
            assert around <= 1.1 * max(before, after), (name, keys[i - 1], keys[i], around, before, after)
            if name == "mix":
                assert after <= 1.25 * input_step * key_ratio(keys[i]), (keys[i], after, input_step)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("config", [{}, ASYMMETRIC])
def test_vocals_plus_instrumental_is_the_shifted_input_for_any_model(channels, config):
    """The shifted mixture depends on the input only: two different networks' stems sum to the
    same signal, at the same latency, whatever the block sizes."""
    audio = np.random.default_rng(2).standard_normal((30 * HOP, channels)).astype(np.float32) * 0.3
    sums = []
    for seed, blocks in ((0, [HOP]), (1, [333]), (2, [8192]), (3, [20000])):
        separator = StreamingSeparator(random_model(seed, **config), channels, max_block=16384)
        separator.set_key(-3)
        vocals, instrumental, start = [], [], 0
        while start < len(audio):
            v, s = separator.process(audio[start:start + blocks[0]])
            vocals.append(v)
            instrumental.append(s)
            start += blocks[0]
        vocals, instrumental = np.concatenate(vocals), np.concatenate(instrumental)
        assert vocals.shape == audio.shape
        assert np.abs(vocals).max() > 0.01 and np.abs(instrumental).max() > 0.01
        sums.append(vocals + instrumental)
        assert separator.latency == random_model(seed, **config).network.delay + HOP
    for other in sums[1:]:
        np.testing.assert_allclose(other, sums[0], atol=1e-5)
    if channels == 4:  # pairs are independent: channels 2, 3 are what a stereo separator makes of them
        separator = StreamingSeparator(random_model(0, **config), 2)
        separator.set_key(-3)
        v, s = separator.process(audio[:, 2:])
        np.testing.assert_allclose(v + s, sums[0][:, 2:], atol=1e-5)


def test_reset_keeps_the_key_and_starts_over():
    model = random_model()
    audio = np.random.default_rng(3).standard_normal((20 * HOP, 2)).astype(np.float32) * 0.3
    fresh = StreamingSeparator(model, 2)
    fresh.set_key(4)
    expected = fresh.process(audio)
    separator = StreamingSeparator(model, 2)
    separator.set_key(4)
    separator.process(audio[::-1].copy())
    separator.reset()
    assert separator.key == 4
    for got, want in zip(separator.process(audio), expected):
        np.testing.assert_array_equal(got, want)


def test_keys_out_of_range_and_models_without_a_spectral_path_are_refused():
    separator = StreamingSeparator(IDENTITY, 2)
    for bad in (7, -7, 1.5, True, "2"):
        with pytest.raises(ValueError):
            separator.set_key(bad)
    assert separator.key == 0
    waveform = StreamingSeparator(create_untrained_model("whamsahnet"), 2)
    waveform.set_key(0)
    with pytest.raises(ValueError, match="key change needs a spectral model"):
        waveform.set_key(2)
    with pytest.raises(ValueError, match="key change needs a spectral model"):
        separate_array(np.zeros((1000, 2), np.float32), SR, create_untrained_model("whamsahnet"), key=-1)


def test_whamsah_rt_plays_the_instrumental_two_semitones_down_at_its_own_latency():
    """The shipped model, hop by hop as in the engine: the instrumental's bass and the vocals'
    melody both move down two semitones, the stems still sum to the shifted input, and the
    output starts where the unshifted one does."""
    model = load_model("whamsah-rt")
    pad = np.zeros(SR // 4, np.float32)
    bass, voice = sawtooth(110.0, 2.0), sawtooth(330.0, 2.0, vibrato=0.0)
    song = np.concatenate([pad, bass + 0.7 * voice, pad])
    audio = np.stack([song, song], axis=1)
    plain = StreamingSeparator(model, 2)
    down = StreamingSeparator(model, 2)
    down.set_key(-2)
    assert down.latency == plain.latency
    plain_v, plain_i = stream_per_hop(plain, audio)
    vocals, instrumental = stream_per_hop(down, audio)
    latency = down.latency
    heard = (vocals + instrumental)[latency:, 0]
    steady = slice(len(pad) + 8192, len(pad) + len(bass) - 8192)
    for f0 in (110.0, 330.0):
        target = f0 * key_ratio(-2)
        assert abs(cents(measured_pitch(heard[steady], target), target)) < 5
    target = 110.0 * key_ratio(-2)
    assert abs(cents(measured_pitch(instrumental[latency:, 0][steady], target), target)) < 5
    # The sum does not depend on the network: a random one's stems sum to the same signal; the
    # identity model (torch's STFT, whose rounding can tip a near tie between peaks) within -40 dB.
    other = StreamingSeparator(random_model(), 2)
    other.set_key(-2)
    np.testing.assert_allclose(sum(stream_per_hop(other, audio))[latency:, 0], heard, atol=1e-5)
    reference = shifted(audio, -2)[: len(heard), 0]
    assert 10 * np.log10(np.sum((heard - reference) ** 2) / np.sum(reference**2)) < -40
    assert abs(sounding(heard)[0] - sounding((plain_v + plain_i)[latency:, 0])[0]) <= HOP


def test_drum_hits_stay_sharp_within_20_ms_at_every_key():
    """Transients: synthetic drum hits (noise bursts, 2 ms attack, 60 ms decay, over a bass tone)
    shifted by ±6 and ±3 keep an onset spread (> 1 kHz envelope from 10 % to its peak) within
    X = 20 ms, the figure bench/bench_key.py measures on a real drum-and-bass excerpt (18.1 ms at
    ±6; librosa 33-47 ms). A shift that smears its frames (e.g. without phase locking) fails."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_key import onset_spread, shift_naive

    rng = np.random.default_rng(5)
    seconds, hits = 4.0, np.arange(0.25, 3.75, 0.25)
    t = np.arange(int(seconds * SR)) / SR
    audio = 0.05 * np.sin(2 * np.pi * 55 * t)
    for hit in hits:
        start = int(hit * SR)
        n = int(0.3 * SR)
        envelope = np.minimum(np.arange(n) / (0.002 * SR), 1.0) * np.exp(-np.arange(n) / (0.06 * SR))
        audio[start:start + n] += 0.4 * envelope * rng.standard_normal(n)
    stereo = np.stack([audio, audio], axis=1).astype(np.float32)
    onsets = (hits * SR).astype(int)
    original = onset_spread(stereo, onsets)
    for n in (-6, -3, 3, 6):
        ours = onset_spread(shifted(stereo, n), onsets)
        assert ours <= 20.0, (n, ours, original)
    assert onset_spread(shift_naive(stereo, 6), onsets) > onset_spread(shifted(stereo, 6), onsets)
