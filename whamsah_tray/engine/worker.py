"""The inference worker thread: the one owner of the separation pipeline (torch runs only here).

It sleeps until the audio callback has stored enough input for the model's next hop, takes every
frame stored since last time, runs them through the pipeline (pipeline.py) and writes the mix
into the output ring at the positions where the callback will need it:

    output position = input position + delay,   delay = pipeline latency + compute + margin

The compute term is the model's own time for a hop, measured on this thread when the worker takes
a pipeline up (pipeline.measure_compute: tiny for the real-time model, ~0.4 s for WHAMSAHNet on a
CPU). The margin covers the callback's block (input arrives a block at a time, the mix must be
there a block ahead), the resamplers' bursts and scheduling jitter. Waiting for the input that
completes the model's next hop costs no time: the pipeline then gives out everything it knows,
the output frames of the next hop's input included (StreamingSeparator.process(ahead=True)), and
a call between two hops would only move audio along. One call per hop instead of one per block
of a few milliseconds (86 instead of ~200 a second with a desktop sound server's 3.4 ms blocks)
saves a little CPU; most of what is left is the network itself. If the
worker falls behind anyway, the callback plays the dry input for the missing positions (same
latency, see callback.py); if it falls so far behind that its mix would only ever arrive too late,
it skips ahead to the newest input and restarts the pipeline from there (a resync, counted).

Idle: a tray app runs all day, mostly while nothing plays into the cable. In sync mode, once the
input has been digital silence for `idle_after` frames, the worker stops the output stream (through
`output`, the session) and marks the callback idle: the input callback then wakes the worker only
for a block with sound in it (else the worker looks every IDLE_WAKE_S), so that only the input
stream's threads keep waking. A block with sound wakes the worker at once; it processes the input
read so far (the mix of the sound's first block is then ready) and starts the output again. While
the output plays the silence before the sound it is taken up close behind the input
(AudioCallback.restart_output), so it meets the sound's first frame at the usual latency: a song
that starts is neither lost nor delayed, as long as the output starts within the delay (~0.1 s;
the stream restarts in 1-13 ms here).

A new pipeline (another model, or the first one once loaded) is handed over with `swap()` and
taken up between two blocks: swapped by reference, never built here.

Runs on "whamsah-engine-worker"; `swap`, `stop` and the counters are safe from other threads
(plain attribute assignment / reads, atomic under the GIL).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import numpy as np

from whamsah_tray.engine.callback import AudioCallback
from whamsah_tray.engine.pipeline import SeparationPipeline
from whamsah_tray.engine.priority import demote_current_thread, promote_current_thread
from whamsah_tray.engine.ring_buffer import SampleRing
from whamsah_tray.engine.silent_cable import ZeroWatch
from whamsah_tray.separation.threads import set_compute_threads

MAX_READ = 4096  # frames taken from the input ring per pipeline call
READY_TIMEOUT_S = 5.0  # start() and swap() wait this long at most for a pipeline's measurement
WAKE_S = 0.1  # the worker looks at the input at least this often
IDLE_WAKE_S = 0.5  # ... and while idle (sound, stop and swap wake it at once)


class OutputSwitch(Protocol):
    """Stops and restarts the output stream for idle periods (the session, in sync mode)."""

    def pause_output(self) -> bool: ...  # True: stopped

    def resume_output(self) -> bool: ...  # True: playing again


def delay_for(pipeline: SeparationPipeline, margin: int) -> int:
    return pipeline.latency_frames + pipeline.compute_frames + margin


class InferenceWorker:
    def __init__(self, callback: AudioCallback, pipeline: SeparationPipeline, margin: int,
                 torch_threads: int = 1, output: OutputSwitch | None = None, idle_after: int = 0) -> None:
        """output, idle_after: stop the output after idle_after frames of silent input (0: never)."""
        self.callback = callback
        self.input_ring: SampleRing = callback.input_ring
        self.output_ring: SampleRing = callback.output_ring
        self.margin = margin
        self.torch_threads = torch_threads
        self.resyncs = 0
        self.promoted = False
        self.tid: int | None = None  # the thread's kernel id once it runs (see callback.input_tid)
        self.max_process_s = 0.0  # longest single pipeline call, for the bench
        self.failure: BaseException | None = None  # set if the pipeline raised: engine goes dry
        self.output = output
        self.idle_after = idle_after
        self.idle = False  # the output is stopped: nothing plays into the input
        self.idle_periods = 0
        self._silent_frames = 0
        # Sync mode: counts runs of exact zeros on the input for the controller (silent_cable.py:
        # a capture the OS blocks delivers zeros); set by the session before start.
        self.zero_watch: ZeroWatch | None = None
        self._pipeline = pipeline
        self._next_pipeline: SeparationPipeline | None = None
        self._stopping = False
        self._ready = threading.Event()  # the first pipeline is measured and the delay set
        self._thread = threading.Thread(target=self._run, name="whamsah-engine-worker", daemon=True)
        self._block = np.zeros((MAX_READ, self.input_ring.channels), dtype=np.float32)

    @property
    def pipeline(self) -> SeparationPipeline:
        return self._pipeline

    def start(self) -> None:
        """Start the thread; returns once it has set the delay for its pipeline (before the
        streams start, so the delay does not change under a playing output)."""
        self._thread.start()
        self._ready.wait(READY_TIMEOUT_S)

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping = True
        self.callback.wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def swap(self, pipeline: SeparationPipeline, wait_s: float = READY_TIMEOUT_S) -> None:
        """Use `pipeline` from the next block on (any thread); returns once the worker has taken
        it up and set the new delay (or after `wait_s`), so the latency read next is the new one."""
        self._ready.clear()
        self._next_pipeline = pipeline
        self.callback.wake.set()
        if self._thread.is_alive():
            self._ready.wait(wait_s)

    def _run(self) -> None:
        set_compute_threads(self.torch_threads)
        self.tid = threading.get_native_id()
        self.promoted = promote_current_thread(worker=True)
        try:
            self._loop()
        finally:
            demote_current_thread()

    def _loop(self) -> None:
        if not self._take_up(self._pipeline):
            return
        read_position = self.callback.position
        self._restart(read_position)

        while not self._stopping:
            self.callback.wake.wait(IDLE_WAKE_S if self.idle else WAKE_S)
            self.callback.wake.clear()
            if self._next_pipeline is not None:
                self._pipeline, self._next_pipeline = self._next_pipeline, None
                self.callback.valid = (1 << 62, 1 << 62)  # dry from now on, until the new mix is due
                if not self._take_up(self._pipeline):
                    return
                self._restart(read_position)
            written = self.callback.position
            behind = written - read_position
            if self._too_late(read_position) or behind > self.input_ring.capacity // 2:
                read_position = written
                self.resyncs += 1
                self._restart(read_position)
                continue
            if behind < self._pipeline.frames_until_hop():
                continue  # the mix it would give is out already: wait for the hop's last frames
            waking = False
            while read_position < written and not self._stopping:
                frames = min(MAX_READ, written - read_position)
                block = self._block[:frames]
                self.input_ring.read_at(read_position, block)
                read_position += frames
                waking = self._watch_silence(block) or waking
                started = time.perf_counter()
                try:
                    mixed = self._pipeline.process(block)
                except Exception as error:  # a model bug must not kill the audio: stay dry
                    self._fail(error)
                    return
                self.max_process_s = max(self.max_process_s, time.perf_counter() - started)
                self._publish(mixed)
            if waking:  # the mix of all the input so far is out: the output may start (see idle)
                self.output.resume_output()

    def _watch_silence(self, block: np.ndarray) -> bool:
        """Idle after idle_after frames of digital silence; True at the first block with sound
        (the output is to start again once the input read so far is processed)."""
        watch = self.zero_watch
        if watch is None and (self.output is None or not self.idle_after):
            return False
        sound = bool(block.any())
        if watch is not None:
            watch.observe(len(block), all_zero=not sound)
        if self.output is None or not self.idle_after:
            return False
        if sound:
            self._silent_frames = 0
            if self.idle:
                self.idle = self.callback.idle = False
                return True
            return False
        self._silent_frames += len(block)
        if not self.idle and self._silent_frames >= self.idle_after and self.output.pause_output():
            self.idle = self.callback.idle = True
            self.idle_periods += 1
        return False

    def _take_up(self, pipeline: SeparationPipeline) -> bool:
        """Measure the pipeline's compute time and set the delay, then release whoever waits in
        start() or swap(); False if the model failed."""
        try:
            pipeline.measure_compute()
            self.callback.delay = delay_for(pipeline, self.margin)
            return True
        except Exception as error:  # a model bug must not kill the audio: stay dry
            self._fail(error)
            return False
        finally:
            self._ready.set()

    def _fail(self, error: BaseException) -> None:
        self.failure = error
        self.callback.valid = (1 << 62, 1 << 62)

    def _restart(self, read_position: int) -> None:
        """The pipeline starts afresh at input `read_position`: its first `latency` output frames
        belong to the silence before, so the mix is valid only from read_position + delay."""
        self._pipeline.reset()
        self._write_position = read_position + self.callback.delay - self._pipeline.latency_frames
        first_valid = read_position + self.callback.delay
        self.callback.valid = (first_valid, first_valid)

    def _publish(self, mixed: np.ndarray) -> None:
        frames = len(mixed)
        if frames == 0:
            return
        self.output_ring.write_at(self._write_position, mixed)
        self._write_position += frames
        first, _ = self.callback.valid
        if self._write_position > first:
            self.callback.valid = (first, self._write_position)

    def _too_late(self, read_position: int) -> bool:
        """True when even the input we have not yet processed is due at the output already."""
        played = self.callback.out_position
        return played is not None and read_position + self.callback.delay < played
