"""Training objective: signal-to-distortion ratio of vocals and accompaniment, per 1 s segment,
computed on the STFT (Parseval), so the loss follows the cSDR metric the model is judged by."""

from __future__ import annotations

import torch

SEGMENT_FRAMES = 86  # ~1 s at hop 512 / 44.1 kHz, like museval's 1 s windows


def segment_sdr(target: torch.Tensor, estimate: torch.Tensor, reference_energy: torch.Tensor) -> torch.Tensor:
    """complex (B, 2, bins, T) -> SDR in dB per (batch, segment): (B, segments).
    A small floor relative to the mixture keeps silent targets from dominating."""
    frames = target.shape[-1] // SEGMENT_FRAMES * SEGMENT_FRAMES or target.shape[-1]
    def energy(x: torch.Tensor) -> torch.Tensor:
        power = x[..., :frames].real.square() + x[..., :frames].imag.square()
        return power.sum(dim=(1, 2)).unflatten(-1, (-1, min(SEGMENT_FRAMES, frames))).sum(-1)
    floor = 1e-3 * energy(reference_energy) + 1e-10
    return 10 * torch.log10((energy(target) + floor) / (energy(target - estimate) + floor))


def separation_loss(mixture_spec: torch.Tensor, vocals_spec: torch.Tensor, mask: torch.Tensor,
                    lookahead: int) -> tuple[torch.Tensor, dict[str, float]]:
    """mask[..., k] belongs to frame k - lookahead (see SpectralMaskModel.masks)."""
    n = mixture_spec.shape[-1] - lookahead
    mixture, vocals = mixture_spec[..., :n], vocals_spec[..., :n]
    vocals_estimate = mask[..., lookahead:] * mixture
    vocals_sdr = segment_sdr(vocals, vocals_estimate, mixture)
    accompaniment_sdr = segment_sdr(mixture - vocals, mixture - vocals_estimate, mixture)
    loss = -(vocals_sdr.mean() + accompaniment_sdr.mean()) / 2
    return loss, {"vocals_sdr": vocals_sdr.detach().mean().item(), "accompaniment_sdr": accompaniment_sdr.detach().mean().item()}
