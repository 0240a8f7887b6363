"""Streaming STFT mask models: framing, the mask network's hook, and overlap-add synthesis.

A spectral model sees frames of `n_fft` samples every `hop` samples (sqrt-Hann analysis and
synthesis windows) and returns a real mask per bin and channel for the vocals. The network may look
`lookahead` frames into the future: the mask it returns for frame k arrives with frame k + lookahead.

Algorithmic latency (window + look-ahead) = n_fft + lookahead * hop samples; the separator adds at
most one hop of block buffering on top of `delay` = n_fft - hop + lookahead * hop, which is exactly
that figure.

The same `masks()` runs over a whole sequence in training and over a few frames at a time in the
live engine, with its state carried between calls, so both give the same numbers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from whamsah_tray.separation.models.base import CHANNELS, StreamingModel


def sqrt_hann(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True).sqrt()


class SpectralMaskModel(StreamingModel):
    """Base for STFT-domain models. Subclasses implement `masks(spec, net_state)`."""

    def __init__(self, n_fft: int = 2048, hop: int = 512, lookahead: int = 0,
                 sample_rate: int = 44100, **config: Any) -> None:
        super().__init__(n_fft=n_fft, hop=hop, lookahead=lookahead, sample_rate=sample_rate, **config)
        if n_fft % hop:
            raise ValueError("n_fft must be a multiple of hop")
        self.n_fft, self.hop, self.lookahead, self.sample_rate = n_fft, hop, lookahead, sample_rate
        self.n_bins = n_fft // 2 + 1
        self.delay = n_fft - hop + lookahead * hop
        window = sqrt_hann(n_fft)
        self.register_buffer("window", window, persistent=False)
        # Overlap-add of analysis * synthesis windows is constant for these hops: divide it out.
        overlap = n_fft // hop
        ola = (window ** 2).reshape(overlap, hop).sum(0)
        self.register_buffer("ola_gain", ola.mean(), persistent=False)

    @property
    def latency_samples(self) -> int:
        return self.n_fft + self.lookahead * self.hop

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
        """complex (batch, 2, bins, frames) -> overlap-added audio (batch, 2, (frames-1)*hop + n_fft)."""
        batch, channels, _, n_frames = spec.shape
        frames = torch.fft.irfft(spec.transpose(-1, -2), n=self.n_fft, dim=-1) * (self.window / self.ola_gain)
        frames = frames.reshape(batch * channels, n_frames, self.n_fft).transpose(1, 2)
        out = F.fold(frames, output_size=(1, (n_frames - 1) * self.hop + self.n_fft),
                     kernel_size=(1, self.n_fft), stride=(1, self.hop))
        return out.reshape(batch, channels, -1)

    # --- streaming --------------------------------------------------------------------------------
    def init_state(self, batch: int) -> dict[str, Any]:
        tail = self.n_fft - self.hop
        zeros = self.window.new_zeros
        return {
            "input_tail": zeros(batch, CHANNELS, tail),
            "output_tail": zeros(batch, CHANNELS, tail),
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
        audio = self.istft_frames(vocals_spec)                    # (B, 2, (n-1)*hop + n_fft)
        audio[..., : self.n_fft - self.hop] += state["output_tail"]
        new_state = {
            "input_tail": signal[..., n_samples:],
            "output_tail": audio[..., n_samples:],
            "pending_spec": history[..., n_frames:],
            "net": net_state,
        }
        return audio[..., :n_samples], new_state
