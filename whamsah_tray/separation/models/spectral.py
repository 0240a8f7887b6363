"""Streaming STFT mask models: framing, the mask network's hook, and overlap-add synthesis.

A spectral model sees frames of `n_fft` samples every `hop` samples and returns a real mask per bin
and channel for the vocals. The network may look `lookahead` frames into the future: the mask it
returns for frame k arrives with frame k + lookahead.

Windows
- symmetric (the default, `synthesis_window` 0): sqrt-Hann analysis and synthesis windows of
  n_fft samples;
- asymmetric (`synthesis_window` M < n_fft, a multiple of hop, at least 2 hops): a long analysis
  window that rises over n_fft - M/2 samples and falls over the last M/2, and a synthesis window
  that is zero but for the frame's last M samples, chosen so that analysis x synthesis is a Hann
  window of M there (constant overlap-add at this hop). The network sees n_fft-sample frames (the
  same frequency resolution) while each frame's output is complete M samples after its start:
  the latency falls by n_fft - M, which pays for more frames of look-ahead (Mauler & Martin, "A
  low delay, variable resolution, perfect reconstruction spectral analysis-synthesis system for
  speech enhancement", EUSIPCO 2007; Wang et al., "STFT-domain neural speech enhancement with very
  low algorithmic latency", 2022).

Algorithmic latency (synthesis window + look-ahead) = M + lookahead * hop samples (M = n_fft when
symmetric); the separator adds at most one hop of block buffering on top of `delay` =
M - hop + lookahead * hop, which is exactly that figure.

The same `masks()` runs over a whole sequence in training and over a few frames at a time in the
live engine, with its state carried between calls, so both give the same numbers.

`stream_shifted()` is `stream()` with a key change (key_shift.py) applied to the frames before
synthesis; it returns the shifted mixture beside the vocals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from whamsah_tray.separation.models.base import CHANNELS, StreamingModel


def sqrt_hann(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True).sqrt()


def stft_windows(n_fft: int, hop: int, synthesis_window: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(analysis window (n_fft,), synthesis window (M,) for the frame's last M samples), their
    product's overlap-add at `hop` divided out of the synthesis window, so that unmasked frames
    reconstruct the input exactly. M = synthesis_window, or n_fft when 0 (symmetric sqrt-Hann)."""
    m = synthesis_window or n_fft
    if m % hop or not 2 * hop <= m <= n_fft or m % 2:
        raise ValueError(f"the synthesis window ({m}) must be an even multiple of the hop ({hop}), "
                         f"at least 2 hops and at most n_fft ({n_fft})")
    if m == n_fft:
        analysis = synthesis = sqrt_hann(n_fft)
    else:
        rise = n_fft - m // 2
        analysis = torch.cat([sqrt_hann(2 * rise)[:rise], sqrt_hann(m)[m // 2:]])
        synthesis = torch.hann_window(m, periodic=True) / analysis[n_fft - m:]
    product = analysis[n_fft - m:] * synthesis
    ola_gain = product.reshape(m // hop, hop).sum(0).mean()
    return analysis, synthesis / ola_gain


class SpectralMaskModel(StreamingModel):
    """Base for STFT-domain models. Subclasses implement `masks(spec, net_state)`."""

    def __init__(self, n_fft: int = 2048, hop: int = 512, lookahead: int = 0,
                 sample_rate: int = 44100, synthesis_window: int = 0, **config: Any) -> None:
        super().__init__(n_fft=n_fft, hop=hop, lookahead=lookahead, sample_rate=sample_rate,
                         **({"synthesis_window": synthesis_window} if synthesis_window else {}), **config)
        if n_fft % hop:
            raise ValueError("n_fft must be a multiple of hop")
        self.n_fft, self.hop, self.lookahead, self.sample_rate = n_fft, hop, lookahead, sample_rate
        self.n_bins = n_fft // 2 + 1
        analysis, synthesis = stft_windows(n_fft, hop, synthesis_window)
        self.synthesis_length = len(synthesis)  # M
        self.delay = self.synthesis_length - hop + lookahead * hop
        self.register_buffer("window", analysis, persistent=False)
        self.register_buffer("synthesis", synthesis, persistent=False)  # (M,), overlap-add gain divided out

    @property
    def latency_samples(self) -> int:
        return self.synthesis_length + self.lookahead * self.hop

    # --- the network's hook -------------------------------------------------------------------
    def init_net_state(self, batch: int) -> Any:
        return None

    def masks(self, spec: torch.Tensor, net_state: Any) -> tuple[torch.Tensor, Any]:
        """spec: complex (batch, 2, bins, frames) -> real vocal masks (batch, 2, bins, frames) for
        the frames `lookahead` earlier, and the new net state. net_state None = whole sequence,
        zero history (training)."""
        raise NotImplementedError

    # --- sequence helpers (training, tests) -----------------------------------------------------
    def stft(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 2, samples) -> complex (batch, 2, bins, frames); frame k = x[k*hop : k*hop+n_fft]."""
        frames = x.unfold(-1, self.n_fft, self.hop) * self.window
        return torch.fft.rfft(frames, dim=-1).transpose(-1, -2)

    def istft_frames(self, spec: torch.Tensor) -> torch.Tensor:
        """complex (batch, 2, bins, frames) -> overlap-added audio (batch, 2, (frames-1)*hop + M),
        starting n_fft - M samples after frame 0 does (before that the synthesis window is zero)."""
        batch, channels, _, n_frames = spec.shape
        m = self.synthesis_length
        frames = torch.fft.irfft(spec.transpose(-1, -2), n=self.n_fft, dim=-1)[..., self.n_fft - m:]
        frames = rearrange(frames * self.synthesis, "b c t m -> (b c) m t")  # F.fold's (N, C x kernel, L)
        out = F.fold(frames, output_size=(1, (n_frames - 1) * self.hop + m),
                     kernel_size=(1, m), stride=(1, self.hop))
        return out.reshape(batch, channels, -1)

    # --- streaming --------------------------------------------------------------------------------
    def init_state(self, batch: int) -> dict[str, Any]:
        zeros = self.window.new_zeros
        return {
            "input_tail": zeros(batch, CHANNELS, self.n_fft - self.hop),
            "output_tail": zeros(batch, CHANNELS, self.synthesis_length - self.hop),
            "pending_spec": torch.zeros(batch, CHANNELS, self.n_bins, self.lookahead,
                                        dtype=torch.complex64, device=self.window.device),
            "net": self.init_net_state(batch),
        }

    def stream(self, x: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        n_samples = x.shape[-1]
        if n_samples % self.hop:
            raise ValueError(f"stream() takes whole hops of {self.hop} samples")
        n_frames = n_samples // self.hop
        signal = torch.cat([state["input_tail"], x], dim=-1)
        spec = self.stft(signal)                                   # (B, 2, bins, n_frames)
        mask, net_state = self.masks(spec, state["net"])
        history = torch.cat([state["pending_spec"], spec], dim=-1)
        vocals_spec = mask * history[..., :n_frames]
        audio = self.istft_frames(vocals_spec)                    # (B, 2, (n-1)*hop + M)
        audio[..., : self.synthesis_length - self.hop] += state["output_tail"]
        new_state = {
            "input_tail": signal[..., n_samples:],
            "output_tail": audio[..., n_samples:],
            "pending_spec": history[..., n_frames:],
            "net": net_state,
        }
        return audio[..., :n_samples], new_state

    def stream_shifted(self, x: torch.Tensor, state: dict[str, Any],
                       key_shift) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """stream() with the key change of `key_shift` (a key_shift.KeyShift, numpy) applied to the
        frames before synthesis: x -> (vocals, the shifted mixture, state), the two as float32
        numpy arrays (batch, 2, n * hop)."""
        n_samples = x.shape[-1]
        if n_samples % self.hop:
            raise ValueError(f"stream() takes whole hops of {self.hop} samples")
        n_frames = n_samples // self.hop
        signal = torch.cat([state["input_tail"], x], dim=-1)
        spec = self.stft(signal)
        mask, net_state = self.masks(spec, state["net"])
        history = torch.cat([state["pending_spec"], spec], dim=-1)
        frames = history[..., :n_frames].transpose(-1, -2).numpy()             # (B, 2, n, bins)
        masks = np.broadcast_to(mask.transpose(-1, -2).numpy(), frames.shape)
        vocals, mix, output_tail = key_shift.synthesise(frames, masks, state["output_tail"].numpy())
        new_state = {
            "input_tail": signal[..., n_samples:],
            "output_tail": torch.from_numpy(output_tail),
            "pending_spec": history[..., n_frames:],
            "net": net_state,
        }
        return vocals, mix, new_state
