"""The streaming separator: blocks of any size in, (vocals, instrumental) out, at a fixed latency.

    sep = StreamingSeparator(model, channels=2)
    vocals, instrumental = sep.process(block)        # block: float32 (frames, channels)

Contract: `vocals + instrumental == block delayed by sep.latency samples`, to float rounding, for
any network: the instrumental is computed as the delayed dry input minus the vocal estimate.

The network consumes whole hops; this class buffers input until a hop is complete and holds back
the output by one hop so that every call, whatever its size, returns as many frames as it was given.
Hence latency = network delay + hop. All buffers are allocated once; blocks larger than
`max_block` are processed in pieces.

`process(block, ahead=True)` returns, beyond the frames given, those already known: after the
network has run on a hop, the output of the next hop's worth of input is (held-back network output
and delayed dry input). A consumer that wants its output as early as possible and feeds the
separator a hop at a time (the live engine's worker, see `frames_until_hop`) gets each hop's
output a hop before the input it belongs with, i.e. as early as per-block calls would give it,
for one call per hop instead of one per block. The count then varies per call; the stream of
output frames is the same.

Mono is fed to the stereo network as two equal channels; more than two channels are processed in
stereo pairs (as a batch), an odd last channel like mono.

The network runs through its numpy inference path when it has one (network.inference_path(),
a snapshot of its weights taken here: the same numbers, a few times faster per hop), else through
its torch stream().

Digital silence costs nothing: once the input has been exactly zero for longer than the latency
(plus a margin), every buffer inside holds silence and the network is skipped until sound comes
back (`skipped_frames` counts it); the output stays exactly zero meanwhile, as it should. A tray
app that runs all day while nothing plays then idles instead of running the network.

Pure numpy/torch, no threads: not thread-safe; one owner calls process() (in the live engine, the
inference worker thread; never the audio callback).
"""

from __future__ import annotations

import numpy as np
import torch

from whamsah_tray.separation.models.base import CHANNELS

DEFAULT_MAX_BLOCK = 16384


class _Fifo:
    """A pre-allocated first-in first-out buffer of (channels, capacity) float32 samples."""

    def __init__(self, channels: int, capacity: int) -> None:
        self.data = np.zeros((channels, capacity), dtype=np.float32)
        self.size = 0

    def clear(self, fill: int = 0) -> None:
        """Empty it, then queue `fill` samples of silence."""
        self.data[:, :fill] = 0.0
        self.size = fill

    def push(self, samples: np.ndarray) -> None:
        n = samples.shape[-1]
        self.data[:, self.size:self.size + n] = samples
        self.size += n

    def drop(self, n: int) -> None:
        self.data[:, : self.size - n] = self.data[:, n:self.size]
        self.size -= n


class StreamingSeparator:
    def __init__(self, model, channels: int = 2, max_block: int = DEFAULT_MAX_BLOCK) -> None:
        """model: a LoadedModel (or anything with `.network`, a StreamingModel)."""
        if channels < 1:
            raise ValueError("channels must be >= 1")
        self.model = model
        self.network = model.network
        self._fast = self.network.inference_path()  # None: the torch stream() runs
        self.channels = channels
        self.max_block = max_block
        self.hop = self.network.hop
        self.latency = self.network.delay + self.hop
        self.sample_rate = self.network.sample_rate
        self.pairs = (channels + 1) // 2
        # Which input channel feeds each (pair, side) of the network's batch.
        self._source_channel = np.array(
            [[min(2 * p + side, channels - 1) for side in range(CHANNELS)] for p in range(self.pairs)]
        )
        max_hops = max_block // self.hop + 2  # a piece plus an incomplete hop
        self._pending = np.zeros((self.pairs, CHANNELS, max_hops * self.hop), dtype=np.float32)
        self._pending_size = 0
        self._dry = _Fifo(channels, self.latency + max_block)
        self._vocals = _Fifo(channels, 2 * self.hop + max_hops * self.hop)
        self.skip_silence_after = self.latency + 2 * self.hop + 4096
        self.skipped_frames = 0
        self.reset()

    def reset(self) -> None:
        """Forget all audio: as if silence had been playing forever."""
        self._state = (self._fast if self._fast is not None else self.network).init_state(self.pairs)
        self._pending_size = 0
        self._dry.clear(fill=self.latency)
        self._vocals.clear(fill=self.hop)
        self._silent_frames = 0  # zero input frames in a row, up to skip_silence_after

    def frames_until_hop(self) -> int:
        """Input frames still missing before the network runs again (1..hop)."""
        return self.hop - self._pending_size

    def process(self, block: np.ndarray, ahead: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """block: (frames, channels) -> (vocals, instrumental), each (frames, channels) float32;
        with `ahead`, (frames + k, channels) where k (0..hop) are the output frames already known
        beyond the input, less those an earlier call gave out ahead."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 1 and self.channels == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"expected a (frames, {self.channels}) block, got {block.shape}")
        if not block.any():
            if self._silent_frames >= self.skip_silence_after:
                self.skipped_frames += block.shape[0]
                return np.zeros_like(block), np.zeros_like(block)
            self._silent_frames += block.shape[0]
        else:
            self._silent_frames = 0
        n = block.shape[0]
        vocals = np.empty((n + self.hop if ahead else n, self.channels), np.float32)
        instrumental = np.empty_like(vocals)
        given = 0
        for start in range(0, n, self.max_block):
            stop = min(start + self.max_block, n)
            self._take(block[start:stop].T)
            # Known output frames: all the vocals buffer holds. Of those, the ones the input taken so
            # far is owed: all but the frames_until_hop() that belong to input still to come.
            owed = self._vocals.size if ahead and stop == n else max(0, self._vocals.size - self.frames_until_hop())
            self._give(vocals[given:given + owed].T, instrumental[given:given + owed].T)
            given += owed
        return vocals[:given], instrumental[:given]

    def _take(self, piece: np.ndarray) -> None:
        """piece: (channels, n) with n <= max_block, into the buffers; runs the network on every
        hop it completes."""
        n = piece.shape[1]
        self._dry.push(piece)
        self._pending[:, :, self._pending_size:self._pending_size + n] = piece[self._source_channel]
        self._pending_size += n
        ready = self._pending_size // self.hop * self.hop
        if ready:
            self._run_network(ready)

    def _give(self, vocals: np.ndarray, instrumental: np.ndarray) -> None:
        """The next output frames into vocals, instrumental: (channels, k) views, k frames that
        are known (the vocals buffer holds them: k <= its size)."""
        k = vocals.shape[1]
        vocals[:] = self._vocals.data[:, :k]
        np.subtract(self._dry.data[:, :k], vocals, out=instrumental)
        self._vocals.drop(k)
        self._dry.drop(k)

    def _run_network(self, n: int) -> None:
        if self._fast is not None:
            estimate, self._state = self._fast.stream(self._pending[:, :, :n], self._state)
        else:
            with torch.inference_mode():
                estimate, self._state = self.network.stream(torch.from_numpy(self._pending[:, :, :n]), self._state)
            estimate = estimate.numpy()  # (pairs, 2, n)
        rest = self._pending_size - n
        self._pending[:, :, :rest] = self._pending[:, :, n:self._pending_size]
        self._pending_size = rest
        by_channel = estimate.reshape(self.pairs * CHANNELS, n)[: self.channels]
        if self.channels % 2:  # the odd last channel was fed to both sides: average them
            by_channel = by_channel.copy()
            by_channel[-1] = estimate[-1].mean(axis=0)
        self._vocals.push(by_channel)
