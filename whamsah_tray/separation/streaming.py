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
a snapshot of its weights taken here: the same numbers, a few times faster per hop; a model
loaded from numpy weights is that path itself), else through its torch stream(). torch is
imported only for the latter: with a numpy path this module never loads it.

Digital silence costs nothing: once the input has been exactly zero for longer than the latency
(plus a margin), every buffer inside holds silence and the network is skipped until sound comes
back (`skipped_frames` counts it); the output stays exactly zero meanwhile, as it should. A tray
app that runs all day while nothing plays then idles instead of running the network.

Key change (`set_key(semitones)`, -6..+6, 0 = off; see key_shift.py): a spectral model's frames
are pitch-shifted before its own overlap-add, so the latency does not change. Both stems move by
the same interval, and the contract becomes `vocals + instrumental == the shifted input` (what
key_shift makes of the mixture, delayed by the same latency): the instrumental is the shifted
mixture minus the vocals. At key 0 nothing of it runs and the output is the same, to the bit, as
without it. A model without a spectral path (whamsahnet) refuses a key other than 0.

Pure numpy (and torch for a torch network), no threads: not thread-safe; one owner calls
process() (in the live engine, the inference worker thread; never the audio callback).
"""

from __future__ import annotations

import numpy as np

from whamsah_tray.separation.key_shift import KeyShift, check_key
from whamsah_tray.separation.models import CHANNELS

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
        """model: a LoadedModel (or anything with `.network`: a StreamingModel or a numpy path)."""
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
        self._key_shift: KeyShift | None = None  # made at the first key other than 0
        self.reset()

    def reset(self) -> None:
        """Forget all audio: as if silence had been playing forever."""
        self._state = (self._fast if self._fast is not None else self.network).init_state(self.pairs)
        self._pending_size = 0
        self._dry.clear(fill=self.latency)
        self._vocals.clear(fill=self.hop)
        self._silent_frames = 0  # zero input frames in a row, up to skip_silence_after
        if self._key_shift is not None:
            self._key_shift.reset()

    @property
    def key(self) -> int:
        """The key change in semitones (0 = off)."""
        return self._key_shift.key if self._key_shift is not None else 0

    def set_key(self, semitones: int) -> None:
        """Transpose both outputs by `semitones` (-6..+6, 0 = off) from the next hop the network
        runs on. The shift applies to the frames synthesised next, whose input is already in, so
        it is heard from the next hop of output on (not a latency later), crossfading over one
        synthesis window: click-free (key_shift.py). Call it from the thread that calls process().
        ValueError for a value out of range, or for a key other than 0 on a model without a
        spectral path."""
        semitones = check_key(semitones)
        if self._key_shift is None:
            if not semitones:
                return
            path = self._fast if self._fast is not None else self.network
            if not hasattr(path, "stream_shifted"):
                raise ValueError("key change needs a spectral model")
            self._key_shift = KeyShift(path.n_fft, path.hop, np.asarray(path.window, np.float32),
                                       np.asarray(path.synthesis, np.float32), self.pairs)
        self._key_shift.set_key(semitones)

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
        shift = self._key_shift
        if shift is not None and shift.active:
            self._run_shifted(n, shift)
        elif self._fast is not None:
            estimate, self._state = self._fast.stream(self._pending[:, :, :n], self._state)
            self._vocals.push(self._by_channel(estimate))
        else:
            import torch  # a torch network: torch is loaded already

            with torch.inference_mode():
                estimate, self._state = self.network.stream(torch.from_numpy(self._pending[:, :, :n]), self._state)
            self._vocals.push(self._by_channel(estimate.numpy()))
        rest = self._pending_size - n
        self._pending[:, :, :rest] = self._pending[:, :, n:self._pending_size]
        self._pending_size = rest

    def _run_shifted(self, n: int, shift: KeyShift) -> None:
        """The network's hops with a key change: the shifted mixture it returns replaces the dry
        input in the delay line, so that _give's `instrumental = dry - vocals` is the shifted
        mixture minus the vocals."""
        start = self._vocals.size  # where this output lands, in the vocals and the dry buffers alike
        if shift.needs_start:
            # The dry buffer runs `delay` >= M - hop samples ahead of the vocals: it holds the input
            # that the mixture's overlap-add tail is made of.
            shift.start(self._dry.data[self._source_channel, start:start + shift.tail_length])
        if self._fast is not None:
            estimate, mix, self._state = self._fast.stream_shifted(self._pending[:, :, :n], self._state, shift)
        else:
            import torch  # a torch network: torch is loaded already

            with torch.inference_mode():
                estimate, mix, self._state = self.network.stream_shifted(
                    torch.from_numpy(self._pending[:, :, :n]), self._state, shift)
        self._vocals.push(self._by_channel(estimate))
        self._dry.data[:, start:start + n] = self._by_channel(mix)

    def _by_channel(self, estimate: np.ndarray) -> np.ndarray:
        """(pairs, 2, n) -> (channels, n)."""
        n = estimate.shape[-1]
        by_channel = estimate.reshape(self.pairs * CHANNELS, n)[: self.channels]
        if self.channels % 2:  # the odd last channel was fed to both sides: average them
            by_channel = by_channel.copy()
            by_channel[-1] = estimate[-1].mean(axis=0)
        return by_channel
