"""Training objective: signal-to-distortion ratio of vocals and accompaniment, per 1 s segment,
computed on the STFT (Parseval) for spectral models and on the waveform for waveform models, so the
loss follows the cSDR metric the model is judged by."""

from __future__ import annotations

import functools

import torch

SEGMENT_FRAMES = 86  # ~1 s at hop 512 / 44.1 kHz, like museval's 1 s windows


def _segment_sums(per_frame: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., segments): sums over `SEGMENT_FRAMES` frames (a remainder is dropped;
    fewer frames than that make one segment)."""
    frames = per_frame.shape[-1] // SEGMENT_FRAMES * SEGMENT_FRAMES or per_frame.shape[-1]
    return per_frame[..., :frames].unflatten(-1, (-1, min(SEGMENT_FRAMES, frames))).sum(-1)


def segment_sdr(target: torch.Tensor, estimate: torch.Tensor, reference_energy: torch.Tensor) -> torch.Tensor:
    """complex (B, 2, bins, T) -> SDR in dB per (batch, segment): (B, segments).
    A small floor relative to the mixture keeps silent targets from dominating."""
    def energy(x: torch.Tensor) -> torch.Tensor:
        return _segment_sums((x.real.square() + x.imag.square()).sum(dim=(1, 2)))
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


GAIN_GROUP_BINS = 4  # ~86 Hz: about the frequency resolution of museval's 512-tap distortion filters


@functools.lru_cache(maxsize=8)
def gain_groups(features) -> torch.Tensor:
    """(bands, groups) 0/1 matrix joining consecutive bands of `features` (a BandFeatures) into
    groups of at least GAIN_GROUP_BINS bins: the frequency regions within which museval lets an
    estimate differ from its reference by a gain (its SDR allows a 512-tap filter per 1 s window).
    Made once per BandFeatures (cached), not at every training step."""
    group_of_band, group, width = [], 0, 0
    for bins in torch.bincount(features.band_of_bin).tolist():
        if width >= GAIN_GROUP_BINS:
            group, width = group + 1, 0
        group_of_band.append(group)
        width += bins
    matrix = torch.zeros(len(group_of_band), group + 1)
    matrix[torch.arange(len(group_of_band)), torch.tensor(group_of_band)] = 1.0
    return matrix


def _gain_free_sdr(dot: torch.Tensor, estimate: torch.Tensor, reference: torch.Tensor,
                   groups: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Per-frame band sums (B, 2, bands, T) of <estimate, reference>, |estimate|^2, |reference|^2
    -> SDR (B, segments) after the best gain per channel, gain group and segment: the estimate's
    part along the reference, dot^2 / |reference|^2, is the target; the rest is the error."""
    def per_group(x: torch.Tensor) -> torch.Tensor:  # -> (B, 2, segments, groups)
        return _segment_sums(x).transpose(-1, -2) @ groups
    dot, estimate, reference = per_group(dot), per_group(estimate), per_group(reference)
    target = dot.square() / (reference + 1e-12)
    error = (estimate - target).clamp_min(0)
    return 10 * torch.log10((target.sum(dim=(1, 3)) + floor) / (error.sum(dim=(1, 3)) + floor))


@torch.no_grad()
def band_power_sums(features, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Mixture and vocal spectra (B, 2, bins, T) -> (3, B, 2, bands, T): per band, sum |v|^2,
    sum Re(v x*) and sum |x|^2."""
    x, v = x.transpose(-1, -2), v.transpose(-1, -2)                       # bins last: cheap band sums
    return features.band_sum(torch.stack([
        v.real.square() + v.imag.square(),
        v.real * x.real + v.imag * x.imag,
        x.real.square() + x.imag.square(),
    ])).transpose(-1, -2)


def band_separation_loss(features, mixture_spec: torch.Tensor, vocals_spec: torch.Tensor,
                         band_mask: torch.Tensor, lookahead: int, gain_free_weight: float = 0.0,
                         power_sums=band_power_sums) -> tuple[torch.Tensor, dict[str, float]]:
    """`separation_loss` for masks that are constant over each band of `features` (a BandFeatures),
    computed from per-band sums instead of per bin: with vocals v, mixture x and a band's mask m,
    sum over the band |v - m x|^2 = V - 2 m R + m^2 X, where V = sum |v|^2, R = sum Re(v x*) and
    X = sum |x|^2 need no gradient. The same numbers as separation_loss on the expanded masks, at
    a fraction of the cost (no bin-sized tensors in the backward pass).

    gain_free_weight w: the loss is (1 - w) * that SDR + w * the SDR after the best gain per
    channel, ~86 Hz group (gain_groups) and segment, as museval's distortion filter allows (a
    mask that takes too little of a source in a region loses less than one that lets the other
    source in). band_mask: (B, 2, bands, T), [..., k] belonging to frame k - lookahead.
    power_sums: band_power_sums or a compiled form of it (training's --compile)."""
    n = mixture_spec.shape[-1] - lookahead
    with torch.no_grad():
        vocal_power, cross, mixture_power = power_sums(features, mixture_spec[..., :n], vocals_spec[..., :n])
        accompaniment_power = mixture_power - 2 * cross + vocal_power
        def frame_energy(power: torch.Tensor) -> torch.Tensor:
            return power.sum(dim=(1, 2))                                  # (B, T)
        vocals_energy = _segment_sums(frame_energy(vocal_power))
        accompaniment_energy = _segment_sums(frame_energy(accompaniment_power))
        floor = 1e-3 * _segment_sums(frame_energy(mixture_power)) + 1e-10
    m = band_mask[..., lookahead:]
    error = (vocal_power - 2 * m * cross + m.square() * mixture_power).clamp_min(0)
    error_energy = _segment_sums(frame_energy(error))  # the same for both stems: v - m x = -(a - (x - m x))
    vocals_sdr = 10 * torch.log10((vocals_energy + floor) / (error_energy + floor))
    accompaniment_sdr = 10 * torch.log10((accompaniment_energy + floor) / (error_energy + floor))
    loss = -(vocals_sdr.mean() + accompaniment_sdr.mean()) / 2
    figures = {"vocals_sdr": vocals_sdr.detach().mean().item(), "accompaniment_sdr": accompaniment_sdr.detach().mean().item()}
    if gain_free_weight:
        groups = gain_groups(features).to(m.device)
        rest = 1 - m
        vocals_free = _gain_free_sdr(m * cross, m.square() * mixture_power, vocal_power, groups, floor)
        accompaniment_free = _gain_free_sdr(rest * (mixture_power - cross), rest.square() * mixture_power,
                                            accompaniment_power, groups, floor)
        free_loss = -(vocals_free.mean() + accompaniment_free.mean()) / 2
        loss = (1 - gain_free_weight) * loss + gain_free_weight * free_loss
        figures.update(vocals_gain_free_sdr=vocals_free.detach().mean().item(),
                       accompaniment_gain_free_sdr=accompaniment_free.detach().mean().item())
    return loss, figures


SEGMENT_SAMPLES = 44100  # ~1 s, like museval's windows


def waveform_segment_sdr(target: torch.Tensor, estimate: torch.Tensor, reference_energy: torch.Tensor) -> torch.Tensor:
    """(B, 2, samples) -> SDR in dB per (batch, segment): (B, segments), the time-domain twin of
    `segment_sdr`. The samples are cut into round(samples / 1 s) equal segments (at least one), so
    a 65536-sample training chunk is one segment rather than 1 s plus a dropped remainder."""
    n_segments = max(1, round(target.shape[-1] / SEGMENT_SAMPLES))
    length = target.shape[-1] // n_segments
    def energy(x: torch.Tensor) -> torch.Tensor:
        return x[..., : n_segments * length].square().sum(dim=1).unflatten(-1, (n_segments, length)).sum(-1)
    floor = 1e-3 * energy(reference_energy) + 1e-10
    return 10 * torch.log10((energy(target) + floor) / (energy(target - estimate) + floor))


def waveform_separation_loss(mixture: torch.Tensor, vocals: torch.Tensor,
                             vocals_estimate: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative mean segment SDR of vocals and accompaniment, all (B, 2, samples) waveforms."""
    vocals_sdr = waveform_segment_sdr(vocals, vocals_estimate, mixture)
    accompaniment_sdr = waveform_segment_sdr(mixture - vocals, mixture - vocals_estimate, mixture)
    loss = -(vocals_sdr.mean() + accompaniment_sdr.mean()) / 2
    return loss, {"vocals_sdr": vocals_sdr.detach().mean().item(), "accompaniment_sdr": accompaniment_sdr.detach().mean().item()}
