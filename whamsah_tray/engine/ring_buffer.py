"""A pre-allocated ring of audio frames addressed by absolute frame position.

Frame `p` (an ever-growing int: frames since the stream started) lives in slot `p % capacity`.
Positions instead of read/write cursors let two threads share a ring without locks: each side
keeps its own position, the writer publishes how far it has written with one int assignment
(atomic under the GIL) *after* copying the data, and the reader never reads past it.

Runs on whichever thread calls it; `write_at` / `read_at` do no allocation (slicing makes views),
so the audio callback may call them.
"""

from __future__ import annotations

import numpy as np


class SampleRing:
    def __init__(self, capacity: int, channels: int) -> None:
        if capacity <= 0 or channels <= 0:
            raise ValueError("capacity and channels must be positive")
        self.capacity = capacity
        self.channels = channels
        self.data = np.zeros((capacity, channels), dtype=np.float32)

    def write_at(self, position: int, block: np.ndarray) -> None:
        """Stores block (frames, channels), frames <= capacity, at positions [position, position+frames)."""
        frames = block.shape[0]
        start = position % self.capacity
        first = min(frames, self.capacity - start)
        self.data[start:start + first] = block[:first]
        if first < frames:
            self.data[:frames - first] = block[first:]

    def read_at(self, position: int, out: np.ndarray) -> None:
        """Fills out (frames, channels), frames <= capacity, with positions [position, position+frames)."""
        frames = out.shape[0]
        start = position % self.capacity
        first = min(frames, self.capacity - start)
        out[:first] = self.data[start:start + first]
        if first < frames:
            out[first:] = self.data[:frames - first]

    def clear(self) -> None:
        self.data.fill(0.0)
