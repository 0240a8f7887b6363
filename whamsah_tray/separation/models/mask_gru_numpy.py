"""WHAMSAH-RT's inference path in plain numpy/scipy: the same numbers as MaskGRU.stream, faster,
and without torch.

The live engine calls the network once per hop (512 samples, 11.6 ms). In torch that call costs
~0.9 ms on one thread of the 2-core test machine, almost all of it per-operator dispatch (about a
hundred small tensor ops, an nn.GRU call, F.fold), not arithmetic: the network has ~1.5 M weights,
i.e. ~1.5 M multiply-adds per hop. Here the same computation is a few BLAS matrix-vector products
and vectorised numpy expressions, with the feature standardisation folded into the projection.
`tests/test_separation_core.py` checks it against `MaskGRU.stream` frame by frame.

Its weights are MaskGRU's tensors as numpy arrays under the same names (parameters and buffers,
the non-persistent ones too: the STFT windows, the band layout), read either from a torch module
or from a `.npz` file written by `save_weights` (see separation/numpy_export.py), so that a process
that runs only this path never imports torch:

    fast = NumpyMaskGRU.from_module(model)             # a MaskGRU: copies its current weights
    fast = NumpyMaskGRU(arrays, config)                # arrays: a .npz's (the registry reads it)
    state = fast.init_state(batch)
    vocals, state = fast.stream(x, state)    # x: float32 (batch, 2, n * hop), like MaskGRU.stream
    vocals, mix, state = fast.stream_shifted(x, state, key_shift)   # with a key change (key_shift.py)

It also stands in for the torch network in a LoadedModel (`sample_rate`, `hop`, `delay`,
`inference_path()`), so the streaming separator and the engine take either.

Not thread-safe per state; any thread (the engine's inference worker).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft
import scipy.special

from whamsah_tray.separation.models.mask_gru_common import (
    EPS,
    LOCAL_FEATURES,
    SALIENCE_FLOOR,
)

# Arrays of a MaskGRU that are not trained parameters (buffers): not counted in parameter_count.
BUFFERS = frozenset({"window", "synthesis", "features.band_of_bin", "features.band_floor",
                     "feature_mean", "feature_std", "local_index"})

_SQRT_HALF = np.float32(np.sqrt(0.5))


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU (torch's default), in place."""
    half = 0.5 * x
    scipy.special.erf(x * _SQRT_HALF, out=x)
    x += 1.0
    x *= half
    return x


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, in place, as (1 + tanh(x / 2)) / 2: the same values to float32
    rounding, and numpy's tanh is vectorised where scipy's expit is not (~10x faster here on a
    few thousand values)."""
    x *= 0.5
    np.tanh(x, out=x)
    x += 1.0
    x *= 0.5
    return x


def _gru_cell(gi: np.ndarray, gh: np.ndarray, h: np.ndarray, axis: int = -1) -> np.ndarray:
    """One step of torch.nn.GRU, gates in r, z, n order along `axis` (negative): gi = W_ih x + b_ih
    and gh = W_hh h + b_hh, each holding the 3H gates along that axis (both overwritten), and the
    state h before -> the state after."""
    hidden = h.shape[axis]
    after_axis = (slice(None),) * (-1 - axis)
    def gates(x: np.ndarray, first: int, count: int = 1) -> np.ndarray:
        return x[(Ellipsis, slice(first * hidden, (first + count) * hidden)) + after_axis]
    rz = gates(gi, 0, 2)
    rz += gates(gh, 0, 2)
    _sigmoid(rz)
    candidate = gates(gh, 2)
    candidate *= gates(rz, 0)
    candidate += gates(gi, 2)
    np.tanh(candidate, out=candidate)
    after = h - candidate                                                   # (1 - z) n + z h
    after *= gates(rz, 1)
    after += candidate
    return after


def _f32(array) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def module_arrays(model) -> dict[str, np.ndarray]:
    """A MaskGRU's parameters and buffers (the non-persistent ones too) as numpy arrays, by name."""
    tensors = dict(model.named_parameters())
    tensors.update(model.named_buffers())
    return {name: tensor.detach().cpu().numpy() for name, tensor in tensors.items()}


def save_weights(arrays: Mapping[str, np.ndarray], path: Path) -> None:
    """arrays (module_arrays) -> an uncompressed .npz, read back by the registry (np.load, no pickle)."""
    with open(path, "wb") as file:
        np.savez(file, **arrays)


class NumpyMaskGRU:
    architecture = "mask-gru"

    def __init__(self, arrays: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> None:
        """arrays: MaskGRU's tensors by name (module_arrays); config: its config (MaskGRU.config,
        the manifest's "config"). KeyError or ValueError where they do not fit together."""
        self.config = dict(config)
        self.hop, self.lookahead = int(config["hop"]), int(config["lookahead"])
        self.sample_rate = int(config["sample_rate"])
        self.window = _f32(arrays["window"])
        self.n_fft = len(self.window)
        if self.n_fft != int(config["n_fft"]):
            raise ValueError(f"the analysis window has {self.n_fft} samples, the config says n_fft {config['n_fft']}")
        self.n_bins = self.n_fft // 2 + 1
        self.synthesis = _f32(arrays["synthesis"])               # the frame's last M samples
        self.synthesis_length = len(self.synthesis)
        self.delay = self.synthesis_length - self.hop + self.lookahead * self.hop
        self.parameter_count = sum(int(np.size(value)) for name, value in arrays.items() if name not in BUFFERS)
        project_weight = _f32(arrays["project.weight"])[:, :, 0]
        conv_weight = _f32(arrays["encoder.0.weight"])
        self.hidden, self.kernel = conv_weight.shape[0], conv_weight.shape[2]
        self.band_of_bin = np.asarray(arrays["features.band_of_bin"])
        if self.band_of_bin.shape != (self.n_bins,):
            raise ValueError(f"the band layout covers {self.band_of_bin.shape} bins, not {self.n_bins}")
        self.band_floor = _f32(arrays["features.band_floor"])
        self.n_bands = len(self.band_floor)
        band_starts = np.flatnonzero(np.diff(self.band_of_bin, prepend=-1))  # first bin of each band
        self.float_band_starts = 2 * band_starts  # the same in a complex64 spectrum seen as float32 (re, im)
        self.phase_bins = int(config.get("phase_bins", 0))
        self.salience_scale = np.float32(SALIENCE_FLOOR / max(self.phase_bins, 1))  # x the sum = x the mean
        self.phase_centre = np.exp(-2j * np.pi * np.arange(self.phase_bins) * self.hop / self.n_fft).astype(np.complex64)
        # Standardisation folded into the projection: W (x - m) / s + b = (W / s) x + (b - W m / s).
        mean, std = _f32(arrays["feature_mean"])[:, 0], _f32(arrays["feature_std"])[:, 0]
        if project_weight.shape[1] != len(mean) or len(mean) != 3 * self.n_bands + 2 * self.phase_bins:
            raise ValueError(f"the projection takes {project_weight.shape[1]} features, the config gives "
                             f"{3 * self.n_bands + 2 * self.phase_bins}")
        project_w = project_weight / std
        self.project_wt = np.ascontiguousarray(project_w.T)
        self.project_b = _f32(arrays["project.bias"]) - project_w @ mean
        # The time convolution as one product: [frame t-k+1, ..., frame t] @ conv_wt (k * hidden, hidden).
        self.conv_wt = np.ascontiguousarray(np.concatenate([conv_weight[:, :, j].T for j in range(self.kernel)]))
        self.conv_b = _f32(arrays["encoder.0.bias"])
        layers = sorted(int(match.group(1)) for name in arrays
                        if (match := re.fullmatch(r"gru\.weight_ih_l(\d+)", name)))
        if layers != list(range(len(layers))) or not layers:
            raise ValueError(f"GRU layers {layers}")
        self.gru = []
        for layer in layers:
            self.gru.append((
                np.ascontiguousarray(_f32(arrays[f"gru.weight_ih_l{layer}"]).T),
                _f32(arrays[f"gru.bias_ih_l{layer}"]),
                np.ascontiguousarray(_f32(arrays[f"gru.weight_hh_l{layer}"]).T),
                _f32(arrays[f"gru.bias_hh_l{layer}"]),
            ))
        self.head1_wt, self.head1_b = np.ascontiguousarray(_f32(arrays["head.0.weight"]).T), _f32(arrays["head.0.bias"])
        self.head2_wt, self.head2_b = np.ascontiguousarray(_f32(arrays["head.2.weight"]).T), _f32(arrays["head.2.bias"])
        self.refiner = (_NumpyRefiner(arrays, mean, std, self.kernel)
                        if "refiner.first.weight" in arrays else None)
        self.logit_offset = np.float32(config.get("mask_logit_offset", 0.0))

    @classmethod
    def from_module(cls, model) -> NumpyMaskGRU:
        """model: a MaskGRU (its current weights are copied; later changes are not seen)."""
        return cls(module_arrays(model), model.config)

    def inference_path(self) -> NumpyMaskGRU:
        """Itself: the streaming separator asks a network for its fastest path (models/base.py)."""
        return self

    def init_state(self, batch: int) -> dict[str, Any]:
        return {
            "input_tail": np.zeros((batch, 2, self.n_fft - self.hop), np.float32),
            "output_tail": np.zeros((batch, 2, self.synthesis_length - self.hop), np.float32),
            "pending_spec": np.zeros((batch, 2, self.lookahead, self.n_bins), np.complex64),
            "conv": np.zeros((batch, self.kernel - 1, self.hidden), np.float32),
            "gru": np.zeros((len(self.gru), batch, self.hidden), np.float32),
            "phase": np.zeros((batch, 1, self.phase_bins), np.complex64),
            **(self.refiner.init_state(batch, self.kernel - 1) if self.refiner is not None else {}),
        }

    def stream(self, x: np.ndarray, state: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        mask, frames, new_state = self._mask_frames(x, state)
        batch, _, n, _ = frames.shape
        m = self.synthesis_length
        vocal_frames = scipy.fft.irfft(mask * frames, n=self.n_fft, axis=-1)[..., self.n_fft - m:]
        vocal_frames *= self.synthesis
        if n == 1:
            out = vocal_frames[:, :, 0]
        else:
            out = np.zeros((batch, 2, (n - 1) * self.hop + m), np.float32)
            for k in range(n):
                out[..., k * self.hop:k * self.hop + m] += vocal_frames[:, :, k]
        out[..., :m - self.hop] += state["output_tail"]
        new_state["output_tail"] = out[..., n * self.hop:].copy()
        return out[..., :n * self.hop], new_state

    def stream_shifted(self, x: np.ndarray, state: dict[str, Any],
                       key_shift) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """stream() with the key change of `key_shift` (a key_shift.KeyShift) applied to the frames
        before synthesis: x -> (vocals, the shifted mixture, state), both like stream()'s vocals."""
        mask, frames, new_state = self._mask_frames(x, state)
        vocals, mix, new_state["output_tail"] = key_shift.synthesise(frames, mask, state["output_tail"])
        return vocals, mix, new_state

    def _mask_frames(self, x: np.ndarray, state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """x: (batch, 2, n * hop) -> (masks, the frames they apply to, each (batch, 2, n, bins): the
        frames `lookahead` hops old; the state after, but for "output_tail", which synthesis sets)."""
        batch, _, n_samples = x.shape
        if n_samples % self.hop:
            raise ValueError(f"stream() takes whole hops of {self.hop} samples")
        n = n_samples // self.hop
        signal = np.concatenate([state["input_tail"], x], axis=-1)
        if n == 1:  # one hop per call (the live engine): the signal is the frame
            frames = signal[:, :, None]
        else:
            step = signal.strides[-1]  # frame k = signal[..., k * hop : k * hop + n_fft], as a view
            frames = np.lib.stride_tricks.as_strided(signal, (batch, 2, n, self.n_fft),
                                                     signal.strides[:2] + (self.hop * step, step), writeable=False)
        spec = scipy.fft.rfft(frames * self.window, axis=-1)              # (B, 2, n, bins) complex64

        encoded, conv_state, phase_state, features = self._encode(spec, state["conv"], state["phase"])
        recurrent, gru_state = self._recur(encoded, state["gru"])            # (B, n, hidden)
        head = _gelu(np.concatenate([recurrent, encoded], axis=-1) @ self.head1_wt + self.head1_b)
        logits = (head @ self.head2_wt + self.head2_b).reshape(batch, n, 2, self.n_bands)
        if self.refiner is not None:
            refiner_state = self.refiner.refine(features, state, logits, recurrent)
        if self.logit_offset:
            logits += self.logit_offset
        band_mask = _sigmoid(logits).transpose(0, 2, 1, 3)                # (B, 2, n, bands)
        mask = np.take(band_mask, self.band_of_bin, axis=-1)             # (B, 2, n, bins)

        history = np.concatenate([state["pending_spec"], spec], axis=2)
        new_state = {
            "input_tail": signal[..., n_samples:].copy(),
            "pending_spec": history[:, :, n:].copy(),
            "conv": conv_state,
            "gru": gru_state,
            "phase": phase_state,
        }
        if self.refiner is not None:
            new_state.update(refiner_state)
        return mask, history[:, :, :n], new_state

    def _encode(self, spec: np.ndarray, carried: np.ndarray,
                previous_mid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Band features (and phase advances) -> projection -> time convolution over the carried
        frames and these (the last one is the look-ahead) -> GELU. Returns (B, n, hidden), the
        frames to carry, the last frame's low mid bins and the features (B, n, F), unstandardised."""
        n = spec.shape[2]
        left, right = spec[:, 0], spec[:, 1]                             # (B, n, bins)
        # Band sums straight from (re, im) pairs: a band of bins is a run of floats, so one sum per
        # band gives |L|^2 (or |R|^2) from the squares, and Re(L R*) = Lre Rre + Lim Rim from L x R.
        floats = spec.view(np.float32)                                   # (B, 2, n, 2 bins)
        power = np.add.reduceat(floats * floats, self.float_band_starts, axis=-1)          # (B, 2, n, bands)
        cross = np.add.reduceat(floats[:, 0] * floats[:, 1], self.float_band_starts, axis=-1)  # (B, n, bands)
        total = power[:, 0] + power[:, 1] + self.band_floor
        features = np.concatenate([total ** np.float32(0.15), 2.0 * cross / total,
                                   (power[:, 0] - power[:, 1]) / total], axis=-1)
        mid = left[..., :self.phase_bins] + right[..., :self.phase_bins]  # (B, n, P)
        if self.phase_bins:
            z = mid * np.concatenate([previous_mid, mid[:, :-1]], axis=1).conj() * self.phase_centre
            size = np.abs(z)
            weight = 1 / (size + (size.sum(axis=-1, keepdims=True) * self.salience_scale + np.float32(EPS)))
            features = np.concatenate([features, z.real * weight, z.imag * weight], axis=-1)
        projected = features @ self.project_wt + self.project_b         # (B, n, hidden)
        sequence = np.concatenate([carried, projected], axis=1)        # (B, kernel - 1 + n, hidden)
        if n == 1:  # one hop per call (the live engine): the window is the whole sequence
            window = sequence.reshape(sequence.shape[0], 1, -1)
        else:
            window = np.concatenate([sequence[:, j:j + n] for j in range(self.kernel)], axis=-1)
        encoded = window @ self.conv_wt + self.conv_b                   # (B, n, hidden)
        return _gelu(encoded), sequence[:, n:].copy(), mid[:, n - 1:].copy(), features

    def _recur(self, sequence: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """torch.nn.GRU, layer by layer over the n frames (_gru_cell per frame)."""
        hidden = self.hidden
        final = np.empty_like(h0)
        for layer, (w_ih, b_ih, w_hh, b_hh) in enumerate(self.gru):
            inputs = sequence @ w_ih + b_ih                               # (B, n, 3 hidden)
            h = h0[layer]
            outputs = np.empty(sequence.shape[:2] + (hidden,), np.float32)
            for t in range(sequence.shape[1]):
                h = _gru_cell(inputs[:, t], h @ w_hh + b_hh, h)
                outputs[:, t] = h
            final[layer] = h
            sequence = outputs
        return sequence, final


def _band_windows(x: np.ndarray, kernel: int, dilation: int) -> np.ndarray:
    """x: (N, C, bands) -> (N, kernel * C, bands): each band's neighbourhood, zero-padded at the
    edges, tap by tap (the order of `_taps`)."""
    count, channels, bands = x.shape
    pad = dilation * (kernel // 2)
    padded = np.zeros((count, channels, bands + 2 * pad), np.float32)
    padded[..., pad:pad + bands] = x
    return np.concatenate([padded[..., dilation * k:dilation * k + bands] for k in range(kernel)], axis=1)


def _taps(weight: np.ndarray) -> np.ndarray:
    """A Conv1d's weight (out, in, K) as the matrix (out, K * in) for `_band_windows`."""
    return np.ascontiguousarray(weight.transpose(0, 2, 1).reshape(weight.shape[0], -1))


class _NumpyRefiner:
    """MaskGRU's BandRefiner: each band-axis convolution as one product with the bands' windows."""

    def __init__(self, arrays: Mapping[str, np.ndarray], mean: np.ndarray, std: np.ndarray,
                 time_kernel: int) -> None:
        first = _f32(arrays["refiner.first.weight"])                                 # (C, 5k + 2, K)
        self.channels, self.kernel = first.shape[0], first.shape[2]
        self.band_bias = _f32(arrays["refiner.band_bias"]) + _f32(arrays["refiner.first.bias"])[:, None]  # (C, R)
        self.refined, self.time_kernel = self.band_bias.shape[1], time_kernel
        # The model's gather of each refined band's 5 features, standardised here (the index one
        # past the last feature stands for a constant 0).
        index = np.asarray(arrays["local_index"])                                    # (5, R)
        some = index < len(mean)
        self.gather = np.where(some, index, 0)
        self.scale = np.where(some, 1 / std[self.gather], 0).astype(np.float32)
        self.offset = np.where(some, -mean[self.gather] / std[self.gather], 0).astype(np.float32)
        self.first_wt = _taps(first)
        self.film_wt = np.ascontiguousarray(_f32(arrays["refiner.film.weight"]).T)
        self.film_b = _f32(arrays["refiner.film.bias"])
        self.second_wt = _taps(_f32(arrays["refiner.second.weight"]))
        self.second_b = _f32(arrays["refiner.second.bias"])[:, None]
        self.out_wt, self.out_b = _f32(arrays["refiner.out.weight"])[:, :, 0], _f32(arrays["refiner.out.bias"])[:, None]
        self.memory = None
        if "refiner.memory.weight_ih_l0" in arrays:  # the per-band GRU: (W_ih, b_ih, W_hh, b_hh), gates r, z, n
            self.memory = tuple(                     # as (3C, C) matrices and (3C, 1) columns: bands stay last
                _f32(arrays[f"refiner.memory.{name}_l0"]) if name.startswith("weight")
                else _f32(arrays[f"refiner.memory.{name}_l0"])[:, None]
                for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"))

    def init_state(self, batch: int, frames: int) -> dict[str, np.ndarray]:
        state = {"local": np.zeros((batch, frames, LOCAL_FEATURES, self.refined), np.float32)}
        if self.memory is not None:
            state["memory"] = np.zeros((batch, self.channels, self.refined), np.float32)
        return state

    def _remember(self, h: np.ndarray, batch: int, n: int, memory: np.ndarray) -> np.ndarray:
        """The per-band GRU over the n frames: h (N, C, R) gains its output in place; memory
        (B, C, R) the state before. Returns the state after. Channels by bands, as h is: the gates
        are (B, 3C, R) products with the bands last, so no transposes and contiguous gate slices."""
        w_ih, b_ih, w_hh, b_hh = self.memory
        frames = h.reshape(batch, n, self.channels, self.refined)
        inputs = w_ih @ frames                                              # (B, n, 3C, R)
        inputs += b_ih
        for t in range(n):
            memory = _gru_cell(inputs[:, t], w_hh @ memory + b_hh, memory, axis=-2)
            frames[:, t] += memory
        return memory

    def refine(self, features: np.ndarray, state: dict[str, np.ndarray], logits: np.ndarray,
               recurrent: np.ndarray) -> dict[str, np.ndarray]:
        """features: (B, n, F) unstandardised; state["local"]: (B, k - 1, 5, R) standardised local
        features of the frames before (and state["memory"] the per-band GRU's, with one); logits:
        (B, n, 2, bands), corrected in place; recurrent: (B, n, hidden). Returns the refiner's
        new state (the frames to carry, the memory)."""
        batch, n = logits.shape[:2]
        local = features[..., self.gather] * self.scale + self.offset      # (B, n, 5, R)
        sequence = np.concatenate([state["local"], local], axis=1)          # (B, k - 1 + n, 5, R)
        count, refined = batch * n, self.refined
        if n == 1:  # one hop per call: the sequence is the window
            x = np.concatenate([sequence.reshape(batch, -1, refined), logits[:, 0, :, :refined]], axis=1)
        else:
            x = np.concatenate([sequence[:, j:j + n] for j in range(self.time_kernel)]
                               + [logits[..., :refined]], axis=2).reshape(count, -1, refined)  # (N, 5k + 2, R)
        h = self.first_wt @ _band_windows(x, self.kernel, 1)                 # (N, C, R)
        h += self.band_bias
        film = recurrent.reshape(count, -1) @ self.film_wt + self.film_b     # (N, 2C)
        h *= 1 + film[:, :self.channels, None]
        h += film[:, self.channels:, None]
        np.maximum(h, 0, out=h)
        new_state = {"local": sequence[:, n:].copy()}
        if self.memory is not None:
            new_state["memory"] = self._remember(h, batch, n, state["memory"])
        h = self.second_wt @ _band_windows(h, self.kernel, 2)
        h += self.second_b
        np.maximum(h, 0, out=h)
        correction = self.out_wt @ h + self.out_b                           # (N, 2, R)
        logits[..., :refined] += correction.reshape(batch, n, 2, refined)
        return new_state
