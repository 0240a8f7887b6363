"""What one training step computes, per architecture family, so that train.py stays generic.

An objective wraps a network and knows
- `segment_length(config)`: how many samples a training example has,
- `prepare(sampler)`: set-up from training data before step 0 (not on resume),
- `loss(mixture, vocals)`: the loss and its figures for a batch (B, 2, samples),
- `validate(stems)`: a quick cSDR on held-out tracks (median over tracks of the median 1 s SDR).

Families
- `SpectralObjective` (STFT mask models, e.g. mask-gru): the spectral segment SDR of losses.py,
  on the masks the model would apply while streaming.
- `WaveformObjective` (chunked waveform models, WHAMSAHNet): the same segment SDR in the time
  domain, on the vocals (mixture - predicted instrumental) and the instrumental of each chunk.

Runs on the trainer's main thread; never imported by the app.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from whamsah_tray.separation.models import StreamingModel
from whamsah_tray.separation.models.mask_gru import MaskGRU
from whamsah_tray.separation.models.spectral import SpectralMaskModel
from whamsah_tray.separation.models.whamsahnet import WHAMSAHNet
from whamsah_tray.training.data import MixSampler, StemSet
from whamsah_tray.training.losses import band_power_sums, band_separation_loss, segment_sdr, separation_loss, waveform_segment_sdr, waveform_separation_loss


class Objective(Protocol):
    network: StreamingModel

    def segment_length(self, config: dict) -> int: ...

    def prepare(self, sampler: MixSampler) -> None: ...

    def loss(self, mixture: torch.Tensor, vocals: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]: ...

    def validate(self, stems: StemSet) -> dict[str, float]: ...


def objective_for(network: StreamingModel, gain_free_weight: float = 0.0, compile: bool = False) -> Objective:
    """gain_free_weight: see losses.band_separation_loss (mask-gru only). compile: run the
    band features and the loss's band sums (the per-bin work, no gradient) as torch.compile'd
    kernels (mask-gru only; needs a C++ compiler)."""
    if (gain_free_weight or compile) and not isinstance(network, MaskGRU):
        raise ValueError("gain_free_weight and compile need a band-mask network (mask-gru)")
    if isinstance(network, SpectralMaskModel):
        return SpectralObjective(network, gain_free_weight, compile)
    if isinstance(network, WHAMSAHNet):
        return WaveformObjective(network)
    raise ValueError(f"no training objective for architecture '{network.architecture}'")


def _validation_pairs(stems: StemSet, device: torch.device):
    """(mixture, vocals) tensors (1, 2, samples) of each held-out track."""
    for vocals, accompaniment in zip(stems.vocals, stems.accompaniment):
        vocals = torch.from_numpy(vocals.astype(np.float32).T[None]).to(device)
        yield vocals + torch.from_numpy(accompaniment.astype(np.float32).T[None]).to(device), vocals


def _medians(vocal_scores: list[float], accompaniment_scores: list[float]) -> dict[str, float]:
    return {"val_vocals": float(np.median(vocal_scores)), "val_accompaniment": float(np.median(accompaniment_scores))}


class SpectralObjective:
    def __init__(self, network: SpectralMaskModel, gain_free_weight: float = 0.0, compile: bool = False) -> None:
        self.network = network
        self.gain_free_weight = gain_free_weight
        self.power_sums = band_power_sums
        if compile:  # fused per-bin work: one pass over the spectra instead of one per operation
            network.compiled_features = torch.compile(network.features.forward)
            self.power_sums = torch.compile(band_power_sums)

    def segment_length(self, config: dict) -> int:
        return self.network.n_fft + (config["segment_frames"] - 1) * self.network.hop

    @torch.no_grad()
    def prepare(self, sampler: MixSampler, batches: int = 24) -> None:
        """Set the network's input standardisation from typical training mixtures."""
        network = self.network
        features = []
        for _ in range(batches):
            mixture, _ = sampler.batch(8)
            features.append(network.input_features(network.stft(torch.from_numpy(mixture)),
                                                    network.init_net_state(len(mixture)))[0])
        features = torch.cat(features, dim=-1).transpose(0, 1).flatten(1)  # (features, all frames)
        network.feature_mean.copy_(features.mean(1, keepdim=True))
        network.feature_std.copy_(features.std(1, keepdim=True).clamp_min(1e-3))

    def loss(self, mixture: torch.Tensor, vocals: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        network = self.network
        mixture_spec, vocals_spec = network.stft(mixture), network.stft(vocals)
        if isinstance(network, MaskGRU):  # band masks: the loss from per-band sums, far cheaper
            band_mask, _ = network.band_masks(mixture_spec, None)
            return band_separation_loss(network.features, mixture_spec, vocals_spec, band_mask, network.lookahead,
                                        self.gain_free_weight, self.power_sums)
        mask, _ = network.masks(mixture_spec, None)
        return separation_loss(mixture_spec, vocals_spec, mask, network.lookahead)

    @torch.no_grad()
    def validate(self, stems: StemSet) -> dict[str, float]:
        network = self.network
        network.eval()
        vocal_scores, accompaniment_scores = [], []
        for mixture, vocals in _validation_pairs(stems, self.network.window.device):
            mixture_spec, vocals_spec = network.stft(mixture), network.stft(vocals)
            mask, _ = network.masks(mixture_spec, None)
            lookahead = network.lookahead
            n = mixture_spec.shape[-1] - lookahead
            estimate = mask[..., lookahead:] * mixture_spec[..., :n]
            target, mixture_spec = vocals_spec[..., :n], mixture_spec[..., :n]
            vocal_scores.append(segment_sdr(target, estimate, mixture_spec).median().item())
            accompaniment_scores.append(
                segment_sdr(mixture_spec - target, mixture_spec - estimate, mixture_spec).median().item())
        network.train()
        return _medians(vocal_scores, accompaniment_scores)


class WaveformObjective:
    """Training examples are single chunks; validation runs whole tracks through `stream()`
    (chunks, Hann window, overlap-add), exactly as the streaming separator would."""

    def __init__(self, network: WHAMSAHNet) -> None:
        self.network = network

    def segment_length(self, config: dict) -> int:
        segment = int(config.get("segment", self.network.chunk))
        if segment != self.network.chunk:
            raise ValueError(f"segment must be the network's chunk ({self.network.chunk} samples)")
        return segment

    def prepare(self, sampler: MixSampler) -> None:
        """Nothing to measure: the network standardises each chunk itself."""

    def loss(self, mixture: torch.Tensor, vocals: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        instrumental = self.network(mixture)
        return waveform_separation_loss(mixture, vocals, mixture - instrumental)

    @torch.no_grad()
    def validate(self, stems: StemSet) -> dict[str, float]:
        network = self.network
        network.eval()
        vocal_scores, accompaniment_scores = [], []
        hop, delay = network.hop, network.delay
        for mixture, vocals in _validation_pairs(stems, network.window.device):
            n = mixture.shape[-1]
            padded = torch.nn.functional.pad(mixture, (0, -(n + delay) % hop + delay))
            estimate, _ = network.stream(padded, network.init_state(1))
            estimate = estimate[..., delay:delay + n]
            vocal_scores.append(waveform_segment_sdr(vocals, estimate, mixture).median().item())
            accompaniment_scores.append(
                waveform_segment_sdr(mixture - vocals, mixture - estimate, mixture).median().item())
        network.train()
        return _medians(vocal_scores, accompaniment_scores)
