"""WHAMSAHNet, the seed's architecture: a waveform U-Net on 1.5 s chunks, for GPUs and comparisons.

    mixture chunk (B, 2, 65536), standardised per chunk (mean and std over channels and time)
      encoder, 6 levels:   Conv1d k=3 -> GELU  (= the skip)  -> AvgPool 2
      bottleneck:          6 repeats x 9 residual blocks, dilation 2^j (j = 0..8) at 1/64 rate
      decoder, 6 levels:   ConvTranspose1d k=4 s=2 (+) skip -> 1x1 conv -> GLU -> GELU,
                           then Conv1d k=3 -> GELU (no GELU on the last level)
      un-standardised      -> the instrumental; vocals = mixture - instrumental

Channel plan (doubling from the 2 stereo channels, the decoder mirrors the encoder):

    level               1      2      3      4      5       6
    encoder conv      2->4   4->8   8->16  16->32  32->64  64->128   at 65536 ... 2048 samples
    bottleneck        128 channels at 1024 samples (65536 / 2^6)
    decoder upsample  4->4   8->8   16->16 32->32  64->64  128->128  (ConvTranspose1d, padding 1:
                                                                      length exactly doubles)
    decoder skip      1x1 conv c->2c, GLU -> c, GELU, added to the upsampled signal
    decoder conv      4->2   8->4   16->8  32->16  64->32  128->64   (level 1's output: stereo)

A residual block is `x + GN(PReLU(conv_k3_dilated(GN(PReLU(conv_1x1(x))))))` with GroupNorm of
`norm_groups` groups at 128 channels; one repeat of 9 blocks sees +-511 bottleneck frames, the
whole chunk. About 3.7 M parameters.

Streaming (the StreamingModel contract): chunks of 65536 samples every hop = 32768 samples, each
chunk's vocal estimate weighted by a periodic Hann window (which sums to exactly 1 at 50 % overlap)
and overlap-added. The model keeps the previous half-chunk of input and the second half of the last
windowed output, so delay = 32768 and the separator's latency = delay + hop = 65536 samples
(1486 ms at 44.1 kHz).

Pure torch; runs on whichever thread calls it (the engine's inference worker, the CLI, the trainer).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from whamsah_tray.separation.models.base import CHANNELS, StreamingModel

CHUNK = 65536
LEVELS = 6
EPS = 1e-5  # keeps a silent chunk's standardisation finite; its output then is ~EPS * net output


class ResidualBlock(nn.Module):
    """(B, C, T) -> (B, C, T): 1x1 conv, PReLU, GroupNorm, dilated k=3 conv, PReLU, GroupNorm, + x."""

    def __init__(self, channels: int, dilation: int, norm_groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, 1), nn.PReLU(), nn.GroupNorm(norm_groups, channels),
            nn.Conv1d(channels, channels, 3, dilation=dilation, padding=dilation), nn.PReLU(),
            nn.GroupNorm(norm_groups, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class EncoderLevel(nn.Module):
    """(B, c_in, T) -> (skip (B, c_out, T), pooled (B, c_out, T / 2))."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(c_in, c_out, 3, padding=1), nn.GELU())
        self.pool = nn.AvgPool1d(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.conv(x)
        return skip, self.pool(skip)


class DecoderLevel(nn.Module):
    """(B, c, T / 2) and skip (B, c, T) -> (B, c_out, T)."""

    def __init__(self, c: int, c_out: int, last: bool) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose1d(c, c, 4, stride=2, padding=1)  # (T/2 - 1) * 2 - 2 + 4 = T
        self.skip = nn.Sequential(nn.Conv1d(c, 2 * c, 1), nn.GLU(dim=1), nn.GELU())
        self.conv = nn.Conv1d(c, c_out, 3, padding=1) if last else nn.Sequential(
            nn.Conv1d(c, c_out, 3, padding=1), nn.GELU())

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(self.upsample(x) + self.skip(skip))


class WHAMSAHNet(StreamingModel):
    architecture = "whamsahnet"

    def __init__(self, chunk: int = CHUNK, levels: int = LEVELS, bottleneck_repeats: int = 6,
                 bottleneck_blocks: int = 9, norm_groups: int = 8, sample_rate: int = 44100,
                 **config: Any) -> None:
        super().__init__(chunk=chunk, levels=levels, bottleneck_repeats=bottleneck_repeats,
                         bottleneck_blocks=bottleneck_blocks, norm_groups=norm_groups,
                         sample_rate=sample_rate, **config)
        if chunk % (2 ** levels) or chunk % 2:
            raise ValueError(f"chunk must be a multiple of 2^levels = {2 ** levels}")
        self.chunk, self.levels, self.sample_rate = chunk, levels, sample_rate
        self.hop = chunk // 2
        self.delay = chunk // 2
        channels = [CHANNELS * 2 ** level for level in range(levels + 1)]  # 2, 4, ..., 128
        width = channels[-1]
        if width % norm_groups:
            raise ValueError(f"norm_groups must divide the bottleneck width {width}")
        self.encoder = nn.ModuleList(EncoderLevel(channels[i], channels[i + 1]) for i in range(levels))
        self.bottleneck = nn.Sequential(*(
            ResidualBlock(width, 2 ** j, norm_groups)
            for _ in range(bottleneck_repeats) for j in range(bottleneck_blocks)))
        # Deepest level first, as they run.
        self.decoder = nn.ModuleList(
            DecoderLevel(channels[i + 1], channels[i], last=i == 0) for i in reversed(range(levels)))
        self.register_buffer("window", torch.hann_window(chunk, periodic=True), persistent=False)

    # --- the network ------------------------------------------------------------------------------
    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """mixture (B, 2, chunk) -> instrumental estimate (B, 2, chunk). Any length that is a
        multiple of 2^levels works (training and tests may use other lengths than `chunk`)."""
        if mixture.shape[-1] % 2 ** self.levels:
            raise ValueError(f"length must be a multiple of 2^levels = {2 ** self.levels}")
        mean = mixture.mean(dim=(1, 2), keepdim=True)
        std = mixture.std(dim=(1, 2), keepdim=True)
        x = (mixture - mean) / (std + EPS)
        skips = []
        for level in self.encoder:
            skip, x = level(x)
            skips.append(skip)
        x = self.bottleneck(x)
        for level, skip in zip(self.decoder, reversed(skips)):
            x = level(x, skip)
        return x * (std + EPS) + mean

    def chunk_vocals(self, chunks: torch.Tensor) -> torch.Tensor:
        """chunks (B, 2, chunk) -> vocal estimates (B, 2, chunk), not windowed."""
        return chunks - self(chunks)

    # --- streaming --------------------------------------------------------------------------------
    def init_state(self, batch: int) -> dict[str, Any]:
        zeros = self.window.new_zeros
        return {"input_tail": zeros(batch, CHANNELS, self.hop), "output_tail": zeros(batch, CHANNELS, self.hop)}

    def stream(self, x: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        batch, channels, n_samples = x.shape
        if n_samples % self.hop:
            raise ValueError(f"stream() takes whole hops of {self.hop} samples")
        n_chunks = n_samples // self.hop
        signal = torch.cat([state["input_tail"], x], dim=-1)               # (B, 2, (n + 1) * hop)
        chunks = signal.unfold(-1, self.chunk, self.hop).transpose(1, 2)  # (B, n, 2, chunk)
        vocals = self.chunk_vocals(chunks.reshape(batch * n_chunks, channels, self.chunk)) * self.window
        vocals = vocals.reshape(batch, n_chunks, channels, self.chunk).transpose(1, 2)  # (B, 2, n, chunk)
        first, second = vocals[..., : self.hop], vocals[..., self.hop:]
        # Hop k's output = the first half of chunk k + the second half of chunk k - 1.
        previous = torch.cat([state["output_tail"].unsqueeze(2), second[:, :, :-1]], dim=2)
        out = (first + previous).reshape(batch, channels, n_samples)
        new_state = {"input_tail": signal[..., n_samples:].clone(), "output_tail": second[:, :, -1].clone()}
        return out, new_state
