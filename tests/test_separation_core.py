"""The separation core: model registry and loading errors, the streaming contract (any block size,
any channel count, exact reconstruction at the reported latency), causality, training/streaming
equivalence, and offline == streaming."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from whamsah_tray.errors import ModelLoadingError
from whamsah_tray.separation import (
    StreamingSeparator,
    create_untrained_model,
    list_models,
    load_model,
    separate_array,
)
from whamsah_tray.separation.offline import stream_through
from whamsah_tray.separation.registry import sha256_of

SMALL = {"hidden": 32, "gru_layers": 1}
# The low-latency windows: 2048-sample analysis frames, output complete 1024 samples after a
# frame starts, three frames of look-ahead (the time convolution covers one past frame).
ASYMMETRIC = {"synthesis_window": 1024, "conv_kernel": 5, "lookahead": 3}


def random_model(seed: int = 0, **config):
    model = create_untrained_model("mask-gru", {**SMALL, **config}, seed=seed)
    # Random standardisation too, so the masks really vary with the input.
    with torch.no_grad():
        model.network.feature_std.uniform_(0.05, 0.5, generator=torch.Generator().manual_seed(seed))
    randomise_refiner(model.network, seed)
    return model


def randomise_refiner(network, seed: int = 0) -> None:
    """A sub-band refiner starts with zero corrections: give it random weights, so that a test
    of it sees it change the masks."""
    if getattr(network, "refiner", None) is not None:
        generator = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            for parameter in network.refiner.parameters():
                parameter.normal_(0, 0.3, generator=generator)


def noise(frames: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((frames, channels)).astype(np.float32) * 0.3


def run_blocks(separator: StreamingSeparator, audio: np.ndarray, sizes) -> tuple[np.ndarray, np.ndarray]:
    vocals, instrumental, start = [], [], 0
    for size in sizes:
        if start >= len(audio):
            break
        v, i = separator.process(audio[start:start + size])
        vocals.append(v)
        instrumental.append(i)
        start += size
    return np.concatenate(vocals), np.concatenate(instrumental)


def delayed(audio: np.ndarray, latency: int) -> np.ndarray:
    return np.concatenate([np.zeros((latency, audio.shape[1]), np.float32), audio])[: len(audio)]


BLOCK_PLANS = {
    "64": [64] * 2000,
    "333": [333] * 400,
    "512": [512] * 300,
    "8192": [8192] * 20,
    "20000": [20000] * 8,  # larger than max_block: processed in pieces
    "varying": list(np.random.default_rng(7).integers(1, 8193, 200)),
}


@pytest.mark.parametrize("plan", BLOCK_PLANS)
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_reconstruction_is_the_delayed_input(plan, channels):
    model = random_model()
    separator = StreamingSeparator(model, channels)
    audio = noise(60000, channels)
    vocals, instrumental = run_blocks(separator, audio, BLOCK_PLANS[plan])
    assert vocals.shape == instrumental.shape == audio.shape
    assert np.abs(vocals).max() > 0.01, "a random model should output something"
    np.testing.assert_allclose(vocals + instrumental, delayed(audio, separator.latency), atol=1e-6)


@pytest.mark.parametrize("plan", ["64", "333", "512", "20000", "varying"])
def test_ahead_gives_the_same_output_up_to_a_hop_early(plan):
    """process(ahead=True) gives out every frame the network has made known: the same stream as
    plain calls, up to one hop beyond the input (a hop-aligned call gets the whole next hop)."""
    audio = noise(80000, 2)
    audio[20000:50000] = 0.0  # long enough for the silence skip to start and end in the middle
    # Same blocks, so the network runs on the same hops in each call: the same numbers exactly.
    plain_vocals, plain_instrumental = run_blocks(StreamingSeparator(random_model(), 2), audio, BLOCK_PLANS[plan])
    separator = StreamingSeparator(random_model(), 2)
    vocals, instrumental, fed, given = [], [], 0, 0
    for size in BLOCK_PLANS[plan]:
        block = audio[fed:fed + size]
        if fed + size > len(audio) - separator.hop:
            break
        v, i = separator.process(block, ahead=True)
        fed += len(block)
        given += len(v)
        assert given - fed == separator.frames_until_hop()  # all that is known is out
        assert 0 < given - fed <= separator.hop
        vocals.append(v)
        instrumental.append(i)
    assert separator.skipped_frames > 0 or plan == "20000"  # (a silent block of its own is not skipped)
    vocals, instrumental = np.concatenate(vocals), np.concatenate(instrumental)
    np.testing.assert_array_equal(vocals, plain_vocals[:given])
    np.testing.assert_array_equal(instrumental, plain_instrumental[:given])


def test_reported_latency_is_window_plus_lookahead():
    model = random_model()
    assert model.network.n_fft == 2048 and model.network.lookahead == 1
    assert StreamingSeparator(model).latency == 2048 + 512 == model.info.latency_samples
    # A short synthesis window: its length, not the analysis frame's, plus the look-ahead.
    model = random_model(**ASYMMETRIC)
    assert StreamingSeparator(model).latency == 1024 + 3 * 512 == model.info.latency_samples


@pytest.mark.parametrize("config", [{}, ASYMMETRIC, {"synthesis_window": 1536, "lookahead": 0}])
def test_unmasked_frames_give_back_the_input_exactly_at_the_latency(config):
    """The windows' perfect reconstruction: a mask of 1 everywhere returns the input, delayed by
    the network's delay, for the symmetric sqrt-Hann pair and the asymmetric low-latency pair."""
    network = random_model(**config).network
    network.masks = lambda spec, state: (torch.ones(spec.shape), state)
    audio = torch.from_numpy(noise(60 * 512, 2).T[None].copy())
    with torch.no_grad():
        vocals, _ = network.stream(audio, network.init_state(1))
    delay = network.delay
    assert delay == network.latency_samples - network.hop
    torch.testing.assert_close(vocals[..., delay:], audio[..., :-delay], atol=2e-6, rtol=0)


@pytest.mark.parametrize("synthesis_window", [512, 768, 1000, 4096])
def test_a_synthesis_window_that_cannot_reconstruct_is_refused(synthesis_window):
    with pytest.raises(ValueError, match="synthesis window"):
        random_model(synthesis_window=synthesis_window)


@pytest.mark.parametrize("plan", ["64", "333", "varying"])
def test_identity_model_returns_the_input_as_vocals_at_the_latency(plan):
    model = create_untrained_model("identity")
    separator = StreamingSeparator(model, 2)
    audio = noise(40000, 2)
    vocals, instrumental = run_blocks(separator, audio, BLOCK_PLANS[plan])
    np.testing.assert_allclose(vocals, delayed(audio, separator.latency), atol=1e-5)
    assert np.abs(instrumental).max() < 1e-5


@pytest.mark.parametrize("config", [{}, {"phase_bins": 40, "refine_channels": 8},
                                    {"phase_bins": 40, "refine_channels": 8, "refine_memory": True}, ASYMMETRIC])
def test_output_never_depends_on_input_newer_than_the_latency(config):
    separator_a, separator_b = StreamingSeparator(random_model(**config)), StreamingSeparator(random_model(**config))
    a = noise(30000, 2, seed=1)
    b = a.copy()
    change_at = 20000
    b[change_at:] = noise(10000, 2, seed=2)
    vocals_a, _ = run_blocks(separator_a, a, [1000] * 30)
    vocals_b, _ = run_blocks(separator_b, b, [1000] * 30)
    # Output sample j is about input sample j - latency: nothing at or before the change moves.
    np.testing.assert_array_equal(vocals_a[:change_at], vocals_b[:change_at])
    assert not np.allclose(vocals_a[change_at + separator_a.latency:], vocals_b[change_at + separator_a.latency:])


def test_reset_forgets_the_past():
    separator = StreamingSeparator(random_model())
    audio = noise(10000, 2)
    first, _ = separator.process(audio)
    separator.process(noise(5000, 2, seed=3))
    separator.reset()
    again, _ = separator.process(audio)
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("config", [{}, {"phase_bins": 40}, {"phase_bins": 40, "refine_channels": 8, "refine_bands": 60},
                                    {"phase_bins": 40, "refine_channels": 8, "refine_bands": 60, "refine_memory": True},
                                    {"phase_bins": 40, **ASYMMETRIC}])
def test_streaming_equals_whole_sequence_training_path(config):
    """The trainer runs masks() over a whole sequence; the engine runs it a hop at a time."""
    model = random_model(**config)
    network = model.network
    audio = noise(2048 + 99 * 512, 2)
    history = network.n_fft - network.hop  # the stream starts with this much silence in its frames
    x = torch.from_numpy(np.concatenate([np.zeros((history, 2), np.float32), audio]).T[None].copy())
    with torch.no_grad():
        spec = network.stft(x)
        mask, _ = network.masks(spec, None)
        lookahead = network.lookahead
        vocals_spec = mask[..., lookahead:] * spec[..., : spec.shape[-1] - lookahead]
        # istft_frames starts where frame 0's synthesis window does, n_fft - M samples in: the
        # audio's first sample is M - hop further on
        sequence = network.istft_frames(vocals_spec)[0].numpy().T[network.synthesis_length - network.hop:]
    separator = StreamingSeparator(model)
    streamed, _ = run_blocks(separator, audio, [777] * 100)
    complete = len(sequence) - network.synthesis_length  # the sequence's last frames lack their overlaps
    np.testing.assert_allclose(streamed[separator.latency:][:complete], sequence[:complete], atol=2e-5)


@pytest.mark.parametrize("config", [{}, {"gru_layers": 1, "conv_kernel": 5, "lookahead": 2}, {"power_floor": 1e-6},
                                    {"hidden": 384, "power_floor": 1e-6}, {"phase_bins": 128, "power_floor": 1e-6},
                                    {"phase_bins": 128, "power_floor": 1e-6, "refine_channels": 16},
                                    {"phase_bins": 128, "power_floor": 1e-6, "refine_channels": 16, "refine_memory": True},
                                    {"phase_bins": 128, "power_floor": 1e-6, "mask_logit_offset": 0.4},
                                    {"phase_bins": 128, "power_floor": 1e-6, "dropout": 0.3},
                                    {"phase_bins": 40, "refine_channels": 8, "refine_kernel": 5, "refine_bands": 200,
                                     "gru_layers": 1, "conv_kernel": 5, "lookahead": 2},
                                    {"phase_bins": 128, "power_floor": 1e-6, "mask_logit_offset": 0.4, **ASYMMETRIC}])
def test_numpy_inference_path_equals_the_torch_stream(config):
    """The live path (numpy) and the training path (torch) of the default architecture at its
    full size: the same numbers for any split of the input into hops, batch of 2 (a 4-channel
    input), with random weights and standardisation."""
    from whamsah_tray.separation.models.mask_gru_numpy import NumpyMaskGRU

    model = create_untrained_model("mask-gru", config, seed=3)
    network = model.network
    with torch.no_grad():
        network.feature_std.uniform_(0.05, 0.5, generator=torch.Generator().manual_seed(1))
        network.feature_mean.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(2))
    randomise_refiner(network)
    fast = network.inference_path()
    assert isinstance(fast, NumpyMaskGRU)
    hop = network.hop
    audio = np.random.default_rng(5).standard_normal((2, 2, 40 * hop)).astype(np.float32) * 0.3
    torch_state, fast_state = network.init_state(2), fast.init_state(2)
    expected, got, start = [], [], 0
    for hops in [1, 3, 1, 8, 2, 1, 4, 1, 1, 7, 1, 10]:
        block = audio[..., start:start + hops * hop]
        start += hops * hop
        with torch.inference_mode():
            vocals, torch_state = network.stream(torch.from_numpy(block.copy()), torch_state)
        expected.append(vocals.numpy())
        vocals, fast_state = fast.stream(block, fast_state)
        got.append(vocals)
    expected, got = np.concatenate(expected, -1), np.concatenate(got, -1)
    assert np.abs(expected).max() > 1e-3  # the masks really pass something
    # float32 both ways, summed in different orders (torch's kernels against numpy's BLAS, which may
    # differ by machine): one fresh CI machine saw 6 samples in 81,920 differ by 2.3e-6 after 40 hops
    # of recurrence; a wrong computation differs by ~1e-1
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)


def test_mask_gru_dropout_acts_in_training_only_and_keeps_the_state_dict():
    """`dropout` (a training option) changes the masks in train mode, not in eval mode (what the
    registry and the numpy path run), and adds no weights: its checkpoints load into a plain model."""
    plain = create_untrained_model("mask-gru", {"phase_bins": 16}, seed=3).network
    dropped = create_untrained_model("mask-gru", {"phase_bins": 16, "dropout": 0.3}, seed=3).network
    assert dropped.state_dict().keys() == plain.state_dict().keys()
    dropped.load_state_dict(plain.state_dict())
    spec = plain.stft(torch.from_numpy(noise(20 * 512, 2).T[None].copy()))
    with torch.no_grad():
        expected = plain.eval().band_masks(spec, None)[0]
        torch.testing.assert_close(dropped.eval().band_masks(spec, None)[0], expected)
        trained = dropped.train().band_masks(spec, None)[0]
    assert (trained - expected).abs().max() > 1e-3


def test_the_separator_runs_mask_gru_through_its_numpy_path():
    separator = StreamingSeparator(random_model())
    assert separator._fast is not None


def test_offline_is_the_streaming_path_without_latency():
    model = random_model()
    audio = noise(50000, 2, seed=4)
    vocals, instrumental = separate_array(audio, 44100, model, block=4096)
    separator = StreamingSeparator(model)
    live, _ = run_blocks(separator, np.concatenate([audio, np.zeros((separator.latency, 2), np.float32)]),
                         BLOCK_PLANS["varying"] * 3)
    np.testing.assert_allclose(vocals, live[separator.latency:separator.latency + len(audio)], atol=1e-5)
    np.testing.assert_allclose(vocals + instrumental, audio, atol=1e-6)


def test_offline_resamples_and_keeps_length_rate_and_sum():
    model = random_model()
    audio = noise(48000 + 17, 2, seed=5)
    reported = []
    vocals, instrumental = separate_array(audio, 48000, model, progress=lambda done, total: reported.append((done, total)))
    assert vocals.shape == instrumental.shape == audio.shape
    np.testing.assert_allclose(vocals + instrumental, audio, atol=1e-6)
    assert reported[-1] == (reported[-1][1], reported[-1][1])


def test_offline_of_an_identity_model_gives_back_the_input():
    time = np.arange(30000) / 22050
    audio = (0.3 * np.sin(2 * np.pi * 440 * time) + 0.2 * np.sin(2 * np.pi * 3150 * time))[:, None].astype(np.float32)
    vocals, instrumental = separate_array(audio, 22050, create_untrained_model("identity"))
    assert np.abs(vocals - audio)[1000:-1000].max() < 1e-3  # only the resampling round trip
    assert stream_through(audio, StreamingSeparator(create_untrained_model("identity"), 1)).shape == audio.shape


# --- the registry -------------------------------------------------------------------------------

def install(tmp_path, model, name="test-model", **overrides):
    weights = tmp_path / f"{name}.pt"
    torch.save(model.network.state_dict(), weights)
    manifest = {
        "name": name, "architecture": model.info.architecture, "config": model.network.config,
        "sample_rate": 44100, "latency_samples": model.info.latency_samples, "weights": weights.name,
        "sha256": sha256_of(weights), "training_data": "none (test)", "license": "test",
        "figures": {"vocals_csdr": 1.0}, "default": True,
    }
    manifest.update(overrides)
    (tmp_path / f"{name}.json").write_text(json.dumps(manifest))
    return tmp_path


def test_load_round_trip(tmp_path):
    model = random_model(seed=3)
    install(tmp_path, model)
    loaded = load_model(weights_dir=tmp_path)
    assert loaded.info.name == "test-model" and loaded.info.figures["vocals_csdr"] == 1.0
    assert [info.name for info in list_models(tmp_path)] == ["test-model"]
    audio = noise(20000, 2)
    np.testing.assert_array_equal(StreamingSeparator(loaded).process(audio)[0],
                                  StreamingSeparator(model).process(audio)[0])


def test_missing_weights(tmp_path):
    install(tmp_path, random_model())
    (tmp_path / "test-model.pt").unlink()
    with pytest.raises(ModelLoadingError, match="missing"):
        load_model("test-model", weights_dir=tmp_path)


def test_corrupt_weights_fail_the_hash(tmp_path):
    install(tmp_path, random_model())
    with open(tmp_path / "test-model.pt", "r+b") as file:
        file.seek(100)
        file.write(b"\x00garbage")
    with pytest.raises(ModelLoadingError, match="sha256"):
        load_model(weights_dir=tmp_path)


def test_wrong_shapes(tmp_path):
    install(tmp_path, random_model(), config={**random_model().network.config, "hidden": 48})
    with pytest.raises(ModelLoadingError, match="do not fit"):
        load_model(weights_dir=tmp_path)


def test_unknown_architecture_and_name(tmp_path):
    install(tmp_path, random_model(), architecture="no-such-net")
    with pytest.raises(ModelLoadingError, match="unknown architecture"):
        load_model(weights_dir=tmp_path)
    with pytest.raises(ModelLoadingError, match="unknown model 'other'"):
        load_model("other", weights_dir=tmp_path)


def test_latency_in_the_manifest_must_be_true(tmp_path):
    install(tmp_path, random_model(), latency_samples=1024)
    with pytest.raises(ModelLoadingError, match="manifest says 1024"):
        load_model(weights_dir=tmp_path)


def test_not_a_torch_file(tmp_path):
    install(tmp_path, random_model())
    weights = tmp_path / "test-model.pt"
    weights.write_bytes(b"not a zip archive")
    manifest = json.loads((tmp_path / "test-model.json").read_text())
    manifest["sha256"] = sha256_of(weights)
    (tmp_path / "test-model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadingError, match="unreadable weights"):
        load_model(weights_dir=tmp_path)


def test_no_models_installed(tmp_path):
    assert list_models(tmp_path) == []
    with pytest.raises(ModelLoadingError, match="no default model"):
        load_model(weights_dir=tmp_path)


def test_broken_manifest_is_skipped_in_listings(tmp_path):
    install(tmp_path, random_model())
    (tmp_path / "broken.json").write_text("{not json")
    assert [info.name for info in list_models(tmp_path)] == ["test-model"]


def test_digital_silence_skips_the_network_and_changes_nothing_audible():
    """A long silence between two passages: the network is skipped for most of it, the output
    there is exactly zero, the reconstruction contract holds throughout, and the passage after it
    comes out at the same latency and (to the GRU state's memory of the silence) the same."""
    model = random_model()
    audio = noise(44100, 2)
    silence = np.zeros((3 * 44100, 2), np.float32)
    x = np.concatenate([audio, silence, noise(44100, 2, seed=1)])
    skipping = StreamingSeparator(model)
    full = StreamingSeparator(model)
    full.skip_silence_after = 1 << 40
    vocals, instrumental = run_blocks(skipping, x, [512] * 1000)
    reference, _ = run_blocks(full, x, [512] * 1000)
    assert skipping.skipped_frames > 2 * 44100 and full.skipped_frames == 0
    n = len(vocals)
    np.testing.assert_allclose(vocals + instrumental, delayed(x, skipping.latency)[:n], atol=1e-6)
    quiet = slice(44100 + skipping.skip_silence_after + skipping.latency, 4 * 44100)
    assert not np.any(vocals[quiet]) and not np.any(instrumental[quiet])
    np.testing.assert_allclose(vocals, reference, atol=1e-3 * np.abs(reference).max())
