"""WHAMSAHNet: the architecture's plan, its chunked network, and its streaming contract.

Most tests use a random-weight network with a shallow bottleneck (same chunk, hop, latency and
encoder/decoder as the default, far less compute) so that they stay fast on a shared CPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from whamsah_tray.separation import StreamingSeparator, create_untrained_model, load_model
from whamsah_tray.separation.models import ARCHITECTURES, build_network
from whamsah_tray.separation.models.whamsahnet import WHAMSAHNet
from whamsah_tray.separation.registry import sha256_of

SMALL = {"bottleneck_repeats": 1, "bottleneck_blocks": 3}
CHUNK, HOP = 65536, 32768


@pytest.fixture(scope="module")
def small_model():
    return create_untrained_model("whamsahnet", SMALL, seed=3)


def test_registered_under_its_architecture_name():
    assert ARCHITECTURES["whamsahnet"] is WHAMSAHNet
    assert isinstance(build_network("whamsahnet", SMALL), WHAMSAHNet)


def test_default_plan_follows_the_spec():
    net = WHAMSAHNet()
    assert (net.chunk, net.hop, net.delay, net.sample_rate) == (CHUNK, HOP, HOP, 44100)
    encoder = [(level.conv[0].in_channels, level.conv[0].out_channels, level.conv[0].kernel_size[0])
               for level in net.encoder]
    assert encoder == [(2, 4, 3), (4, 8, 3), (8, 16, 3), (16, 32, 3), (32, 64, 3), (64, 128, 3)]
    assert all(isinstance(level.pool, nn.AvgPool1d) and level.pool.kernel_size == (2,) for level in net.encoder)
    dilations = [block.body[3].dilation[0] for block in net.bottleneck]
    assert dilations == [2 ** j for j in range(9)] * 6
    assert all(block.body[3].in_channels == 128 for block in net.bottleneck)
    ups = [(level.upsample.in_channels, level.upsample.kernel_size[0], level.upsample.stride[0])
           for level in net.decoder]
    assert ups == [(128, 4, 2), (64, 4, 2), (32, 4, 2), (16, 4, 2), (8, 4, 2), (4, 4, 2)]
    assert [level.skip[1].__class__ for level in net.decoder] == [nn.GLU] * 6
    # Conv1d k=3 + GELU on every decoder level but the last, which outputs the stereo instrumental.
    assert all(isinstance(level.conv[1], nn.GELU) for level in net.decoder[:-1])
    assert isinstance(net.decoder[-1].conv, nn.Conv1d) and net.decoder[-1].conv.out_channels == 2
    parameters = sum(p.numel() for p in net.parameters())
    assert 3.5e6 < parameters < 4.0e6


def test_window_sums_to_one_at_half_overlap():
    window = WHAMSAHNet(**SMALL).window
    np.testing.assert_allclose((window[:HOP] + window[HOP:]).numpy(), 1.0, atol=1e-6)


def test_forward_shapes_and_bad_length(small_model):
    net = small_model.network
    with torch.inference_mode():
        assert net(torch.randn(3, 2, CHUNK)).shape == (3, 2, CHUNK)
        assert net(torch.randn(1, 2, 4096)).shape == (1, 2, 4096)
    with pytest.raises(ValueError):
        net(torch.randn(1, 2, 1000))


def test_per_chunk_standardisation_is_undone(small_model):
    """Standardising the input and undoing it at the output makes the net equivariant to the
    chunk's gain and offset."""
    net = small_model.network
    x = 0.3 * torch.randn(1, 2, 8192, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        y = net(x)
        torch.testing.assert_close(net(4.0 * x), 4.0 * y, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(net(x + 0.25), y + 0.25, rtol=1e-3, atol=1e-4)
        assert net(torch.zeros(1, 2, 8192)).abs().max() < 1e-3  # silence stays (nearly) silent


def _noise(samples: int, seed: int = 0) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).standard_normal((samples, 2))).astype(np.float32)


@pytest.mark.parametrize("block", [512, 4096, 30000])
def test_streaming_contract(small_model, block):
    separator = StreamingSeparator(small_model, channels=2)
    assert separator.latency == 65536 == small_model.info.latency_samples
    audio = _noise(3 * HOP + 5000)
    vocals, instrumental = [], []
    for start in range(0, len(audio), block):
        v, i = separator.process(audio[start:start + block])
        assert v.shape == i.shape == audio[start:start + block].shape
        vocals.append(v)
        instrumental.append(i)
    vocals, instrumental = np.concatenate(vocals), np.concatenate(instrumental)
    delayed = np.concatenate([np.zeros((65536, 2), np.float32), audio])[: len(audio)]
    np.testing.assert_allclose(vocals + instrumental, delayed, atol=1e-6)
    # The separator's own extra hop is silence; the half-chunk of silence before the audio starts
    # shares a chunk (and its standardisation) with the audio, so the net may put some there.
    assert not vocals[:HOP].any()
    assert np.abs(vocals[65536:]).mean() > 1e-3  # afterwards the random net does output something


def _by_hand(net: WHAMSAHNet, audio: np.ndarray) -> np.ndarray:
    """Vocal estimates made chunk by chunk: half a chunk of silence before the audio (the fresh
    state), chunks every hop, each one's vocals Hann-windowed and overlap-added. Sample i of the
    result estimates the padded signal's sample i."""
    padded = np.concatenate([np.zeros((HOP, 2), np.float32), audio]).T
    n_chunks = (padded.shape[1] - CHUNK) // HOP + 1
    out = np.zeros((2, (n_chunks + 1) * HOP), np.float32)
    window = torch.hann_window(CHUNK, periodic=True)
    with torch.inference_mode():
        for k in range(n_chunks):
            chunk = torch.from_numpy(padded[None, :, k * HOP:k * HOP + CHUNK].copy())
            out[:, k * HOP:k * HOP + CHUNK] += ((chunk - net(chunk)) * window)[0].numpy()
    return out[:, : n_chunks * HOP].T  # the last half-chunk still waits for its partner


def test_streaming_equals_chunks_overlap_added_by_hand(small_model):
    audio = _noise(4 * HOP, seed=1)
    expected = _by_hand(small_model.network, audio)
    separator = StreamingSeparator(small_model, channels=2)
    vocals = np.concatenate([separator.process(audio[s:s + 4096])[0] for s in range(0, len(audio), 4096)])
    # The separator holds back one more hop: its output sample HOP + i is the by-hand sample i.
    np.testing.assert_allclose(vocals[HOP:], expected[: len(audio) - HOP], atol=1e-5)


def test_many_hops_at_once_equal_hop_by_hop(small_model):
    """stream() batches several chunks in one call (offline, validation): same numbers."""
    net = small_model.network
    x = torch.from_numpy(_noise(3 * HOP, seed=2).T[None].copy())
    with torch.inference_mode():
        whole, whole_state = net.stream(x, net.init_state(1))
        state, parts = net.init_state(1), []
        for k in range(3):
            part, state = net.stream(x[..., k * HOP:(k + 1) * HOP], state)
            parts.append(part)
    torch.testing.assert_close(whole, torch.cat(parts, dim=-1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(whole_state["output_tail"], state["output_tail"], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError):
        net.stream(x[..., :1000], net.init_state(1))


def test_installed_weights_load_through_the_registry(tmp_path, small_model):
    weights = tmp_path / "tiny-whamsahnet.pt"
    torch.save(small_model.network.state_dict(), weights)
    (tmp_path / "tiny-whamsahnet.json").write_text(json.dumps({
        "name": "tiny-whamsahnet", "architecture": "whamsahnet", "config": SMALL,
        "sample_rate": 44100, "latency_samples": 65536, "weights": weights.name,
        "sha256": sha256_of(weights),
    }))
    loaded = load_model("tiny-whamsahnet", weights_dir=tmp_path)
    x = torch.from_numpy(_noise(8192, seed=4).T[None].copy())
    with torch.inference_mode():
        torch.testing.assert_close(loaded.network(x), small_model.network(x))


def test_waveform_segment_sdr_segments_and_values():
    from whamsah_tray.training.losses import waveform_segment_sdr

    target = torch.randn(2, 2, CHUNK)
    assert waveform_segment_sdr(target, target, target).shape == (2, 1)  # 1.49 s: one segment
    three_seconds = torch.randn(1, 2, 3 * 44100)
    assert waveform_segment_sdr(three_seconds, three_seconds, three_seconds).shape == (1, 3)
    # An estimate at half the target's amplitude: SDR = 10 log10(E / (E/4)) = 6.02 dB (floor aside).
    sdr = waveform_segment_sdr(target, 0.5 * target, torch.zeros_like(target))
    torch.testing.assert_close(sdr, torch.full_like(sdr, 10 * np.log10(4)), rtol=0, atol=1e-3)


def test_waveform_objective_trains_the_network():
    """A few optimiser steps on one batch raise both SDRs: the loss reaches the weights."""
    from whamsah_tray.training.objectives import WaveformObjective, objective_for

    torch.manual_seed(0)
    network = WHAMSAHNet(**SMALL)
    objective = objective_for(network)
    assert isinstance(objective, WaveformObjective)
    assert objective.segment_length({"segment": CHUNK}) == CHUNK
    t = torch.arange(8192) / 44100
    vocals = (0.1 * torch.sin(2 * torch.pi * 440 * t)).expand(2, 2, -1).contiguous()
    mixture = vocals + 0.05 * torch.randn(2, 2, 8192)
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        loss, figures = objective.loss(mixture, vocals)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert set(figures) == {"vocals_sdr", "accompaniment_sdr"}
    assert losses[-1] < losses[0] - 0.05, losses
