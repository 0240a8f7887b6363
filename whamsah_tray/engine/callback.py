"""The PortAudio callback: the only code on the audio thread.

It copies, nothing else: the new input block goes into the input ring (for the inference worker,
and as the dry history), and the output block is read from the output ring where the worker wrote
the mix for exactly these positions. The output for frame position p is the processed input of
position p - delay. When the worker has not delivered position p (late, resynchronising, no model
yet), the callback plays the input of position p - delay itself: the dry signal at the same
latency, so a shortfall never means silence or garbage. Coming back from dry to wet fades in over
a few milliseconds.

Rules kept here (the audio callback is sacred): no torch, no logging, no locks, no allocation of
arrays (all buffers are made in __init__; numpy slicing only creates views), no exception escapes
(an unexpected one outputs silence and is counted).

Cross-thread state, all plain attribute reads/writes of ints/tuples (atomic under the GIL):
- `position` (written here after the input is stored; read by the worker): frames received.
- `valid` = (first, end) positions of the output ring that hold the worker's mix (written by the
  worker only, as one tuple so the two ends always match).
- `delay` (written by the controller before start, or by the worker on a model swap).
- counters (written here, read by the controller).
"""

from __future__ import annotations

import threading

import numpy as np

from whamsah_tray.engine.priority import promote_callback_thread
from whamsah_tray.engine.ring_buffer import SampleRing

FADE_IN_S = 0.005


class AudioCallback:
    def __init__(self, input_ring: SampleRing, output_ring: SampleRing, delay: int, sample_rate: int,
                 max_frames: int, wake: threading.Event, source=None) -> None:
        """source: None for a duplex stream (the input device), else an object with
        `read_into(out) -> None` filling out (frames, channels) without blocking (file playback)."""
        channels = input_ring.channels
        self.input_ring = input_ring
        self.output_ring = output_ring
        self.delay = delay
        self.source = source
        self.wake = wake
        self.position = 0
        self.valid = (delay, delay)  # nothing is due before the first full delay
        # counters
        self.callbacks = 0
        self.short_frames = 0  # frames played dry because the worker's mix was missing
        self.status_flags = 0  # callbacks whose PortAudio status reported an over/underflow
        self.errors = 0
        self.realtime: bool | None = None  # None until the first callback asked for SCHED_FIFO
        self._wet_weight = 0.0
        self._fade_step = 1.0 / max(1.0, FADE_IN_S * sample_rate)
        self._max_frames = max_frames
        self._source_block = np.zeros((max_frames, channels), dtype=np.float32)
        self._dry = np.zeros((max_frames, channels), dtype=np.float32)
        self._wet = np.zeros((max_frames, channels), dtype=np.float32)
        self._mix = np.zeros((max_frames, channels), dtype=np.float32)
        self._weights = np.zeros(max_frames, dtype=np.float32)
        self._fade_ramp = (np.arange(1, max_frames + 1) * self._fade_step).astype(np.float32)

    # sounddevice calls one of these two, depending on the stream kind.
    def duplex(self, indata, outdata, frames, time, status) -> None:
        if status:
            self.status_flags += 1
        try:
            self._step(indata, outdata, frames)
        except Exception:  # never let anything escape into PortAudio; silence is the safe output
            self.errors += 1
            outdata.fill(0.0)

    def output_only(self, outdata, frames, time, status) -> None:
        if status:
            self.status_flags += 1
        try:
            block = self._source_block[:frames]
            self.source.read_into(block)
            self._step(block, outdata, frames)
        except Exception:
            self.errors += 1
            outdata.fill(0.0)

    def _step(self, indata, outdata, frames: int) -> None:
        if self.realtime is None:  # once, on the audio thread itself
            self.realtime = promote_callback_thread()
        self.callbacks += 1
        if frames > self._max_frames:
            raise ValueError("block larger than the buffers")
        start = self.position
        self.input_ring.write_at(start, indata)  # a mono input broadcasts to both channels
        self.position = start + frames  # publish only after the data is in place
        self.wake.set()
        dry = self._dry[:frames]
        self.input_ring.read_at(start - self.delay, dry)  # positions < 0 read never-written zeros
        first, end = self.valid
        mix = self._mix[:frames]
        if first <= start and start + frames <= end:
            wet = self._wet[:frames]
            self.output_ring.read_at(start, wet)
            if self._wet_weight >= 1.0:
                mix[:] = wet
            else:  # fade from dry to wet: mix = dry + w * (wet - dry)
                weights = self._weights[:frames]
                np.add(self._fade_ramp[:frames], self._wet_weight, out=weights)
                np.minimum(weights, 1.0, out=weights)
                np.subtract(wet, dry, out=wet)
                np.multiply(wet, weights[:, None], out=wet)
                np.add(dry, wet, out=mix)
                self._wet_weight = float(weights[-1])
        else:
            mix[:] = dry
            self._wet_weight = 0.0
            if first <= start:  # the mix was due (not a warm-up after a start or model swap)
                self.short_frames += frames
        if outdata.shape[1] == mix.shape[1]:
            outdata[:] = mix
        else:  # a mono output gets the left channel
            outdata[:, 0] = mix[:, 0]
