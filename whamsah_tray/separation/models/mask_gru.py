"""WHAMSAH-RT, the default model: a causal band-compressed GRU mask network for CPUs.

    stereo STFT (2048 / 512, sqrt-Hann; or, with `synthesis_window` M, the asymmetric
    low-latency window pair of spectral.py: the same 2048-sample frames, output after M samples)
      -> per band: compressed energy, L/R coherence (how centred), L/R balance    (3 x 321 bands)
         [optional, `phase_bins` P: the phase advance of the mid signal in the lowest P bins since
          the previous frame, less a bin-centre sinusoid's, as a salience-weighted unit vector]
      -> per-frame linear projection, then Conv1d over time, kernel 3: one frame back, this
         frame, one frame ahead (the look-ahead); kernel 5 with look-ahead 3: one frame back and
         three ahead
      -> 2-layer GRU (causal) -> [GRU out, conv out] -> MLP -> mask logits per band and channel
         [optional, `refine_channels` C: a sub-band refiner corrects the logits of the lowest
          `refine_bands` bands from each band's neighbourhood (see BandRefiner); with
          `refine_memory`, also from each band's own recent past (a small per-band GRU)]
      -> sigmoid (of the logits plus `mask_logit_offset`, calibrated after training on held-out
         tracks: training/calibrate.py) -> each band's mask applied to all of its bins

Band compression keeps every bin below 2.8 kHz (where vocal harmonics are resolved) and merges
bins in groups of 2, 4 and 8 above, on the way in and on the way out: the network is small enough
to run a frame in well under a millisecond on one CPU thread. The L/R coherence and balance
features carry the stereo cue (lead vocals sit in the centre) that a mono magnitude model throws
away.

The phase features (off in the first models) carry what magnitudes cannot: where in its bin a
partial lies (a bin is 21.5 Hz wide; the phase advance resolves a partial's frequency far finer)
and how it moves from frame to frame, e.g. a voice's vibrato and glides against an instrument's
steady pitch, in the range where most of the error is (150 Hz - 1 kHz).

Latency: synthesis window + look-ahead: 2048 + 1 * 512 samples = 58.0 ms at 44.1 kHz with the
symmetric windows, 1024 + 3 * 512 = 58.0 ms with M = 1024 and three frames of look-ahead. Shapes in
docstrings are (batch, channels=2, bins, frames).
"""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange
from torch import nn

from whamsah_tray.separation.models.mask_gru_common import (
    EPS,
    LOCAL_FEATURES,
    SALIENCE_FLOOR,
)
from whamsah_tray.separation.models.spectral import SpectralMaskModel

# (first bin, last bin + 1, bins per band) for n_fft = 2048; the Nyquist bin is a band of its own.
DEFAULT_BAND_GROUPS = ((0, 128, 1), (128, 256, 2), (256, 512, 4), (512, 1024, 8))
FEATURES_PER_BAND = 3


class BandFeatures(nn.Module):
    """complex (B, 2, bins, T) -> (B, 3 * bands, T): energy^0.15, coherence, balance per band.

    `power_floor` (per bin and channel) is added to each band's power before the features are
    taken, so a band far below the music (an encoder's empty top octave, dither, the rounding noise
    of 16-bit or float16 audio) always gives the same features: energy at the floor, coherence and
    balance near 0. Without it such bands carry whatever that noise happens to be, which a network
    can learn as a cue that real audio does not have. 0 keeps the first models' tiny constant."""

    def __init__(self, n_bins: int, band_groups: tuple[tuple[int, int, int], ...], power_floor: float = 0.0) -> None:
        super().__init__()
        self.band_groups = [tuple(group) for group in band_groups]
        covered = self.band_groups[-1][1]
        if covered > n_bins or any(a[1] != b[0] for a, b in zip(self.band_groups, self.band_groups[1:])):
            raise ValueError("band groups must tile the bins from 0 upwards")
        self.rest = n_bins - covered  # bins above the last group: one band each
        self.n_bands = sum((stop - start) // width for start, stop, width in self.band_groups) + self.rest
        band_of_bin = [band for band, (start, stop, width) in enumerate(self._bands()) for _ in range(stop - start)]
        self.register_buffer("band_of_bin", torch.tensor(band_of_bin), persistent=False)
        widths = torch.tensor([width for _, _, width in self._bands()], dtype=torch.float32)
        self.register_buffer("band_floor", 2.0 * power_floor * widths + EPS, persistent=False)  # L + R

    def _bands(self) -> list[tuple[int, int, int]]:
        bands = [(lo, lo + width, width) for start, stop, width in self.band_groups
                 for lo in range(start, stop, width)]
        covered = self.band_groups[-1][1]
        return bands + [(covered + i, covered + i + 1, 1) for i in range(self.rest)]


    def band_sum(self, x: torch.Tensor) -> torch.Tensor:
        """(..., bins) -> (..., bands)"""
        parts = []
        for start, stop, width in self.band_groups:
            part = x[..., start:stop]
            if width > 1:
                part = part.unflatten(-1, ((stop - start) // width, width)).sum(-1)
            parts.append(part)
        if self.rest:
            parts.append(x[..., x.shape[-1] - self.rest:])
        return torch.cat(parts, dim=-1)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        # Frames-major layout (B, 2, T, bins): the bins are contiguous, so band sums are cheap.
        spec = spec.transpose(-1, -2)
        left, right = spec[:, 0], spec[:, 1]
        power_left = left.real.square() + left.imag.square()
        power_right = right.real.square() + right.imag.square()
        cross = (left * right.conj()).real
        bands = self.band_sum(torch.stack([power_left, power_right, cross], dim=2))  # (B, T, 3, bands)
        total = bands[:, :, 0] + bands[:, :, 1] + self.band_floor
        features = torch.stack([
            total.pow(0.15),
            2.0 * bands[:, :, 2] / total,
            (bands[:, :, 0] - bands[:, :, 1]) / total,
        ], dim=2)
        return features.flatten(2, 3).transpose(1, 2)                      # (B, 3 * bands, T)


def phase_advance(mid: torch.Tensor, previous: torch.Tensor, hop: int, n_fft: int) -> torch.Tensor:
    """mid: complex (B, P, T) low bins of L + R; previous: (B, P, 1) the frame before the first.
    -> (B, 2 * P, T): cos and sin of each bin's phase advance over one hop, less that of a sinusoid
    at the bin's centre, weighted by the bin's salience |z| / (|z| + 0.1 * mean |z| over the bins)."""
    bins = torch.arange(mid.shape[1], device=mid.device, dtype=torch.float32)
    centre = torch.polar(torch.ones_like(bins), -2 * torch.pi * bins * hop / n_fft)[:, None]
    z = mid * torch.cat([previous, mid[..., :-1]], dim=-1).conj() * centre
    size = z.abs()
    weighted = z / (size + SALIENCE_FLOOR * size.mean(dim=1, keepdim=True) + EPS)
    return torch.cat([weighted.real, weighted.imag], dim=1)


class BandRefiner(nn.Module):
    """Sub-band refinement of the band mask logits, in the spirit of FullSubNet's sub-band model.

    The full-band path (projection -> GRU -> head) sees every band but reaches each band's mask
    through a 256-wide bottleneck: it knows what is playing, not which single bin holds which
    partial. The refiner looks at each band's own neighbourhood: a convolution over the band axis
    (weights shared by all bands, so a harmonic pattern is recognised wherever the pitch puts it)
    of each band's standardised features over the time convolution's frames (the same past and
    look-ahead) and the full-band logits, then a dilated second one; the GRU output modulates the
    channels (FiLM) and a learned per-band bias tells the bands apart. Its output, a correction of
    the L and R logits per band, starts at zero (the masks of weights trained without it are
    unchanged at step 0).

        local (B, frames, 5, bands) + logits (B, 2, bands)  -> conv (kernel K) -> FiLM -> ReLU
          [-> + a GRU over time per band (`memory`)]
          -> conv (kernel K, dilation 2) -> ReLU -> 1x1 conv -> (B, 2, bands) logit corrections

    With `memory` each band also keeps a small recurrent state (a GRU of C units over the frames,
    its weights shared by all bands, added to the channels): what this band's partial has been
    doing over the last few hundred milliseconds (a voice's vibrato and glides, an instrument's
    steady pitch or decay), which the three frames of the window cannot show and the full-band GRU
    sees only through its 256-wide bottleneck.

    ReLU rather than the full-band path's GELU: the live path computes it per band and frame, and
    an exact GELU (erf) there would cost more than the convolutions.
    """

    def __init__(self, n_bands: int, hidden: int, channels: int, kernel: int, frames: int,
                 memory: bool = False) -> None:
        """n_bands: how many (of the lowest) bands it refines."""
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError("refine_kernel must be odd")
        self.channels, self.kernel = channels, kernel
        self.memory = nn.GRU(channels, channels, batch_first=True) if memory else None
        self.first = nn.Conv1d(frames * LOCAL_FEATURES + 2, channels, kernel, padding=kernel // 2)
        self.band_bias = nn.Parameter(torch.zeros(channels, n_bands))
        self.film = nn.Linear(hidden, 2 * channels)
        self.second = nn.Conv1d(channels, channels, kernel, padding=2 * (kernel // 2), dilation=2)
        self.out = nn.Conv1d(channels, 2, 1)
        for layer in (self.film, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, local: torch.Tensor, logits: torch.Tensor, recurrent: torch.Tensor,
                batch: int = 1, memory: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """local: (N, frames * 5, bands), logits: (N, 2, bands), recurrent: (N, hidden), where N is
        batch x frames (batch-major), bands the refined ones; memory: the per-band GRU state
        (1, batch x bands, C), None = zero. -> their corrected logits (N, 2, bands) and the new
        memory (None without it)."""
        scale, shift = self.film(recurrent).unsqueeze(-1).chunk(2, dim=1)    # (N, C, 1) each
        h = self.first(torch.cat([local, logits], dim=1)) + self.band_bias
        h = torch.relu(h * (1 + scale) + shift)
        if self.memory is not None:  # one sequence over the frames per band (b: batch, t: frames, r: bands)
            remembered, memory = self.memory(rearrange(h, "(b t) c r -> (b r) t c", b=batch), memory)
            h = h + rearrange(remembered, "(b r) t c -> (b t) c r", b=batch)
        h = torch.relu(self.second(h))
        return logits + self.out(h), memory


class MaskGRU(SpectralMaskModel):
    architecture = "mask-gru"

    def __init__(self, hidden: int = 256, gru_layers: int = 2, conv_kernel: int = 3,
                 band_groups: tuple[tuple[int, int, int], ...] = DEFAULT_BAND_GROUPS,
                 n_fft: int = 2048, hop: int = 512, lookahead: int = 1, sample_rate: int = 44100,
                 power_floor: float = 0.0, phase_bins: int = 0, refine_channels: int = 0,
                 refine_kernel: int = 7, refine_bands: int = 128, refine_memory: bool = False,
                 mask_logit_offset: float = 0.0, dropout: float = 0.0, **config: Any) -> None:
        band_groups = tuple(tuple(group) for group in band_groups)
        refine = ({"refine_channels": refine_channels, "refine_kernel": refine_kernel, "refine_bands": refine_bands,
                   **({"refine_memory": True} if refine_memory else {})}
                  if refine_channels else {})
        super().__init__(n_fft=n_fft, hop=hop, lookahead=lookahead, sample_rate=sample_rate,
                         hidden=hidden, gru_layers=gru_layers, conv_kernel=conv_kernel,
                         band_groups=[list(group) for group in band_groups], power_floor=power_floor,
                         **({"phase_bins": phase_bins} if phase_bins else {}), **refine,
                         **({"mask_logit_offset": mask_logit_offset} if mask_logit_offset else {}), **config)
        if not 0 <= lookahead < conv_kernel:
            raise ValueError("the look-ahead must fit inside the time convolution")
        self.hidden, self.gru_layers, self.conv_kernel = hidden, gru_layers, conv_kernel
        if not 0 <= phase_bins <= self.n_bins:
            raise ValueError(f"phase_bins must be within 0..{self.n_bins}")
        self.phase_bins = phase_bins
        # Added to every mask logit before the sigmoid: a calibration measured on held-out tracks
        # after training (training/calibrate.py), 0 while training.
        self.mask_logit_offset = float(mask_logit_offset)
        # Training only (identity in eval mode; the numpy path has none): on the GRU's input, between
        # its layers and on the head's input. No parameters, so the state dict is the same with or
        # without; and not in self.config, the record that rebuilds the network for inference (the
        # manifest's): the training config keeps it.
        self.dropout = nn.Dropout(dropout)
        self.features = BandFeatures(self.n_bins, band_groups, power_floor)
        self.compiled_features = None  # training may set a torch.compile'd self.features (objectives.py)
        n_features = FEATURES_PER_BAND * self.features.n_bands + 2 * phase_bins
        # Input standardisation, measured on training data before training starts.
        self.register_buffer("feature_mean", torch.zeros(n_features, 1))
        self.register_buffer("feature_std", torch.ones(n_features, 1))
        self.project = nn.Conv1d(n_features, hidden, 1)
        self.encoder = nn.Sequential(nn.Conv1d(hidden, hidden, conv_kernel), nn.GELU())
        self.gru = nn.GRU(hidden, hidden, num_layers=gru_layers, batch_first=True,
                          dropout=dropout if gru_layers > 1 else 0.0)
        self.head = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.GELU(),
            nn.Linear(hidden, 2 * self.features.n_bands),
        )
        if refine_channels and not 0 < refine_bands <= self.features.n_bands:
            raise ValueError(f"refine_bands must be within 1..{self.features.n_bands}")
        self.refine_bands = refine_bands if refine_channels else 0
        self.refiner = (BandRefiner(refine_bands, hidden, refine_channels, refine_kernel, conv_kernel,
                                    memory=bool(refine_memory))
                        if refine_channels else None)
        if self.refiner is not None:
            self.register_buffer("local_index", self._local_index(n_features), persistent=False)

    def inference_path(self):
        from whamsah_tray.separation.models.mask_gru_numpy import NumpyMaskGRU

        return NumpyMaskGRU.from_module(self)

    def init_net_state(self, batch: int) -> dict[str, torch.Tensor]:
        return {
            "conv": self.feature_mean.new_zeros(batch, self.hidden, self.conv_kernel - 1),
            "gru": self.feature_mean.new_zeros(self.gru_layers, batch, self.hidden),
            "phase": torch.zeros(batch, self.phase_bins, 1, dtype=torch.complex64, device=self.feature_mean.device),
            # The refiner's past frames of local features (zero: the training mean).
            **({"local": self.feature_mean.new_zeros(batch, self.conv_kernel - 1, LOCAL_FEATURES, self.refine_bands)}
               if self.refiner is not None else {}),
            # The refiner's per-band memory (GRU state of each band's C channels).
            **({"memory": self.feature_mean.new_zeros(1, batch * self.refine_bands, self.refiner.channels)}
               if self.refiner is not None and self.refiner.memory is not None else {}),
        }

    def input_features(self, spec: torch.Tensor, net_state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """complex (B, 2, bins, T) -> (B, features, T) before standardisation, and the low mid
        bins of the last frame (the next call's previous frame)."""
        features = (self.compiled_features or self.features)(spec)
        mid = spec[:, 0, :self.phase_bins] + spec[:, 1, :self.phase_bins]
        if self.phase_bins:
            features = torch.cat([features, phase_advance(mid, net_state["phase"], self.hop, self.n_fft)], dim=1)
        return features, mid[..., -1:]

    def band_masks(self, spec: torch.Tensor, net_state: Any) -> tuple[torch.Tensor, Any]:
        """Like `masks`, one value per band: (B, 2, bands, T). Training computes its loss on
        these (losses.band_separation_loss) without spreading them over the bins."""
        batch = spec.shape[0]
        if net_state is None:
            net_state = self.init_net_state(batch)
        features, last_mid = self.input_features(spec, net_state)
        features = (features - self.feature_mean) / self.feature_std
        projected = torch.cat([net_state["conv"], self.project(features)], dim=-1)
        encoded = self.encoder(projected).transpose(1, 2)                # (B, T, hidden)
        recurrent, gru_state = self.gru(self.dropout(encoded), net_state["gru"])
        logits = self.head(self.dropout(torch.cat([recurrent, encoded], dim=-1)))  # (B, T, 2 * bands)
        keep = self.conv_kernel - 1
        new_state = {"conv": projected[..., projected.shape[-1] - keep:], "gru": gru_state, "phase": last_mid}
        if self.refiner is not None:
            local = torch.cat([net_state["local"], self.local_features(features)], dim=1)  # (B, k - 1 + T, 5, R)
            logits, memory = self.refine(local, logits, recurrent, net_state.get("memory"))
            new_state["local"] = local[:, local.shape[1] - keep:]
            if memory is not None:
                new_state["memory"] = memory
        band_mask = rearrange(torch.sigmoid(logits + self.mask_logit_offset), "b t (c r) -> b c r t", c=2)
        return band_mask, new_state

    def _local_index(self, n_features: int) -> torch.Tensor:
        """(5, R): which input feature is each refined band's energy, coherence, balance, phase cos
        and sin (its bin's, in the lowest phase_bins bands); n_features (one past the last) where
        there is none: a constant 0 once standardised. The numpy path gathers with it too."""
        bands, refined = self.features.n_bands, self.refine_bands
        index = torch.full((LOCAL_FEATURES, refined), n_features)
        for kind in range(3):
            index[kind] = kind * bands + torch.arange(refined)
        both = min(self.phase_bins, refined)
        for kind in range(2):
            index[3 + kind, :both] = 3 * bands + kind * self.phase_bins + torch.arange(both)
        return index

    def local_features(self, features: torch.Tensor) -> torch.Tensor:
        """Standardised features (B, F, T) -> the refined bands' local features (B, T, 5, R)."""
        padded = torch.cat([features, features.new_zeros(features.shape[0], 1, features.shape[2])], dim=1)
        return rearrange(padded[:, self.local_index], "b k r t -> b t k r")

    def refine(self, local: torch.Tensor, logits: torch.Tensor, recurrent: torch.Tensor,
               memory: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """local: the refined bands' local features (B, kernel - 1 + T, 5, R) with the carried
        frames; logits (B, T, 2 * bands); recurrent (B, T, hidden); memory: the per-band memory or
        None -> refined logits (B, T, 2 * bands) and the new memory."""
        batch, frames = logits.shape[:2]
        refined = self.refine_bands
        window = torch.cat([local[:, j:j + frames] for j in range(self.conv_kernel)], dim=2)
        logits = rearrange(logits, "b t (c r) -> (b t) c r", c=2)
        low, memory = self.refiner(window.flatten(0, 1), logits[..., :refined], recurrent.reshape(batch * frames, -1),
                                   batch, memory)
        return rearrange(torch.cat([low, logits[..., refined:]], dim=-1), "(b t) c r -> b t (c r)", b=batch), memory

    def masks(self, spec: torch.Tensor, net_state: Any) -> tuple[torch.Tensor, Any]:
        band_mask, new_state = self.band_masks(spec, net_state)
        return band_mask[:, :, self.features.band_of_bin], new_state  # (B, 2, bins, T)
