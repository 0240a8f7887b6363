"""The PortAudio callbacks: the only code on the audio threads.

They copy, nothing else. Sync mode has two streams (measured here: one duplex stream over two
ALSA `pulse` plugin devices makes PortAudio's thread poll in a loop, 40-70 % of a core; separate
input and output streams cost 3 %): the input callback stores each block in the input ring (for
the inference worker, and as the dry history); the output callback reads the mix that the worker
wrote into the output ring for exactly its positions. Both streams run on the same sound-server
clock, so their positions advance together; the output starts one input block behind the input.
Async mode has one output stream whose callback takes its input from the file player.

The output for frame position p is the processed input of position p - delay. When the worker
has not delivered position p (late, resynchronising, no model yet), the output callback plays the
input of position p - delay itself: the dry signal at the same latency, so a shortfall never means
silence or garbage. The dry signal goes out at the louder of the user's two levels (0 % / 0 %
stays silent; equal levels are exact). When the mix is about to run out (less than 5 ms of it left
ahead) the output already fades to dry over those last milliseconds of mix, and it fades back to
wet once the worker is ahead again: a late worker does not click.

Keeping the output in step with the input ("lead" = input frames received minus the output's
position, measured at each output callback). The output starts `start_lag` (one input block)
behind the input; the two streams' callbacks then interleave and the lead wanders by a block or
so. Two things move it for good: an input callback that comes late (the lead dips, then its
blocks arrive in a burst) and an output underrun (the sound server drops or delays output frames:
the lead grows and stays). So:
- a dip is ridden out: positions whose mix is missing play dry; only when the lead falls so low
  that the dry input for the block has not arrived either (lead < block - delay) is the output put
  back `start_lag` behind at once;
- a lead that stays high (its minimum over WINDOW_S above CATCH_UP_ABOVE) means the chain
  carries latency it does not need: the output skips ahead until that minimum would have been
  LOWEST_LEAD ("catch-up"). This also settles the lead at the same place whatever the phase of
  the two streams at the start (a mix is due `margin` frames before its input, so even a lead
  a few hundred frames below zero still plays wet);
- a lead that stays below zero (its maximum over WINDOW_S) means the output runs ahead of the
  input it needs and plays dry: the output goes back to `start_lag` behind ("fall-back");
both crossfaded over FADE_S.

Output blocks: the session's margin has the mix ready one input block (`start_lag`) ahead of its
input, enough for an output block as long. PortAudio may call the output back in longer blocks
(a quarter of its buffer on the ALSA pulse plugin: 992 frames at 90 ms, 1323 at 120 ms; longer
still on other hosts), and a block's mix must be whole when it plays. So the output keeps
`block_lead` = (its longest block so far - start_lag) more lead than the rules above name: it is
placed that much further behind the input (taken up after idle, one input block further still:
the lead then wanders by up to an input block below where it was placed), and catch-ups stop that
much higher and start only an input block higher still (with such blocks the window's lowest
lead wanders by that much from one window to the next: the two streams' periods beat). Two
windows running whose lowest lead is below `block_lead` less the crossfade (a longer block's mix
then starts fading to dry; with the default 10 ms margin a block needs `block_lead`) send the
output back to where catch-ups stop; one such window is a late input callback's dip, ridden out
like the others. A block longer than any before moves the output back by the difference, once.
Without this a 120 ms output buffer played 12 % of a soak dry (docs/figures.md).

Drift: the input (a virtual cable) and the output (a sound card) run on two clocks that never
agree exactly (measured here on two PulseAudio null sinks: the output ~50 ppm faster; a sound card
against a cable is typically 10-100 ppm off). Left alone, the lead sinks (or grows) a few frames a
second until the mix runs short (dry frames: the vocals come back) and a fall-back or catch-up
moves the output by a block or more, minutes apart. So the output keeps its lead where it settled,
in small steps: every DRIFT_S the median of the lead, measured with sub-block precision (the input
position extrapolated to the output callback's moment by the time since the last input block: a
lead read in whole input blocks does not see the drift until it has grown by a block), is compared
with the median it had after the output last moved; a difference of TRIM_MIN frames or more, in
the same direction two periods running (drift persists; the median's wander on one clock, a few
frames, does not), is trimmed away by a crossfaded skip or repeat of that many frames ("drift
trim": measured here at 41 ppm, about 11 frames, a quarter of a millisecond, every 6 s). A
difference larger than TRIM_MAX is not drift (an underrun, a stall): the rules above deal with it
and the median is taken afresh.

Adaptive margin (when the session allows one, `max_extra_lead` > 0): on a busy machine the worker
may deliver a mix too late (those frames play dry: the vocals come back for a moment) or the output
may underrun. Either marks the window as troubled. Trouble that comes back within REPEAT_S of the
last raises, at the window's end, the lead the output keeps by a step (MARGIN_STEP_S, up to
max_extra_lead): the output goes back that far, crossfaded (it plays a few milliseconds again),
which gives the worker that much more time from then on; after an underrun, which has already
delayed the output, the step is kept instead of being skipped away by a catch-up. Catch-ups aim at
LOWEST_LEAD + extra_lead. After QUIET_S of output with no trouble the extra lead is dropped again in
one crossfaded catch-up (one skip rather than one per step). A one-off late block is left alone:
each raise and each drop is itself a slip (measured with bench_engine.py --load blas on PulseAudio,
raising at the first trouble: three isolated late blocks of 496 frames in 10 minutes became three
raises and their drops, 6 dropout windows where the dry blocks alone made none).
Measured before these rules, on the 2-core test machine: realigning
at every dip left the lead about 1000 frames (23 ms) higher for the rest of the run, and an
underrun's extra delay stayed until the lead passed 8000 frames; riding out dips without the
fall-back let a stream start leave the output 1500 frames ahead, dry, for 11 s.

Rules kept here (the audio callback is sacred): no torch, no logging, no locks, no allocation of
arrays (all buffers are made in __init__; numpy slicing only creates views), no exception escapes
(an unexpected one outputs silence and is counted).

Cross-thread state, all plain attribute reads/writes of ints/tuples (atomic under the GIL):
- `position` (written by the input side after the data is stored; read by the worker and the
  output side): frames received. `out_position` (output side): frames played. `_input_mark`
  (input side, one tuple): the newest block's end position and the clock's time at its arrival.
- `valid` = (first, end) positions of the output ring that hold the worker's mix (written by the
  worker only, as one tuple so the two ends always match).
- `delay` (written by the controller before start, or by the worker on a model swap).
- counters (written here, read by the controller).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from whamsah_tray.engine.priority import promote_current_thread
from whamsah_tray.engine.ring_buffer import SampleRing

FADE_S = 0.005  # wet <-> dry crossfade when the worker's mix runs short or comes back
WINDOW_S = 0.5  # the lead's range over this long decides whether the output moves
FIRST_WINDOW_S = 0.05  # ... and over this long while the output settles after its start
SETTLE_S = 0.5  # how long after the output's start those short windows apply
LOWEST_LEAD = 128  # frames: where a catch-up puts the lowest lead of the window
CATCH_UP_ABOVE = LOWEST_LEAD + 128  # frames: a lowest lead above this is latency not needed
MARGIN_STEP_S = 0.010  # adaptive margin: how much more lead one troubled window adds
QUIET_S = 120.0  # ... and how long without trouble before the extra lead is dropped
REPEAT_S = 30.0  # trouble this soon after the last raises the margin; a one-off does not
DRIFT_S = 2.0  # drift: the lead's median over this long is kept where it settled ...
TRIM_MIN = 3  # frames: ... once it moved by this much (less is the median's own wander)
TRIM_MAX = 96  # frames: ... up to this much (more is not drift: ~1500 ppm at 44.1 kHz)


class AudioCallback:
    def __init__(self, input_ring: SampleRing, output_ring: SampleRing, delay: int, sample_rate: int,
                 max_frames: int, wake: threading.Event, source=None, start_lag: int = 0,
                 max_extra_lead: int = 0, levels=None, clock=time.perf_counter) -> None:
        """source: None in sync mode, else an object with `read_into(out) -> None` filling out
        (frames, channels) without blocking (file playback). start_lag: see output_block.
        max_extra_lead: the adaptive margin's cap in frames (0: the lead is pinned; see above).
        levels: an object whose float attribute `dry_gain` is the gain for the dry input (the
        user's louder level, levels.LevelRamp; read once per block); None: the dry input as is.
        clock: seconds, monotonic, for the drift measurement (a simulated one in tests)."""
        channels = input_ring.channels
        self.input_ring = input_ring
        self.output_ring = output_ring
        self.delay = delay
        self.source = source
        self.levels = levels
        self._dry_gain = levels.dry_gain if levels is not None else 1.0  # ramps to levels.dry_gain
        self.wake = wake
        self.position = 0
        self.valid = (delay, delay)  # nothing is due before the first full delay
        # counters
        self.callbacks = 0
        # frames that left without the full mix (dry, or fading to dry) because the worker's mix
        # was missing or about to run out: whatever the path, the status counts them
        self.short_frames = 0
        self.status_flags = 0  # callbacks whose PortAudio status reported an over/underflow
        self.output_flags = 0  # of which on the output side (an underflow: the device ran dry)
        self.errors = 0
        self.promoted: bool | None = None  # None until the input thread asked for a higher priority
        self.output_promoted: bool | None = None
        # The audio threads' kernel ids, for the controller to ask RealtimeKit on their behalf when
        # their own right to a higher priority was refused (a D-Bus call: never from here).
        self.input_tid: int | None = None
        self.output_tid: int | None = None
        self.input_callbacks = 0
        # Output position of the first output block: one input block behind the input, so that
        # the two streams' phases never put the output ahead of the input it depends on.
        self.start_lag = start_lag
        self.out_position: int | None = None  # frames played (written by the output callback)
        self.max_lead = 8 * start_lag + 4096  # beyond this the output has fallen behind the input
        self.realignments = 0  # times the output was put back in step (catch-ups, fall-backs included)
        self.catch_ups = 0  # of which: skipped ahead to the input (extra latency removed)
        self.fall_backs = 0  # of which: gone back (the output had run ahead of its input)
        self.mean_lead = float(start_lag)  # running average of the lead, for the latency figure
        # adaptive margin (see the module docstring)
        self.max_extra_lead = max_extra_lead
        self.extra_lead = 0  # frames of lead kept beyond LOWEST_LEAD after trouble
        self.block_lead = 0  # frames of lead kept for output blocks longer than start_lag (see above)
        self._windows_short_of_lead = 0  # windows running whose lowest lead was too low for such blocks
        self.margin_raises = 0
        self.margin_drops = 0
        # drift (see the module docstring)
        self.drift_trims = 0  # small crossfaded skips/repeats that kept the lead in place
        self.drift_trimmed = 0  # their sum in frames (> 0: the output skipped ahead, its clock is slower)
        self._clock = clock
        self._sample_rate = sample_rate
        self._input_mark = (0, 0.0)  # (position, clock time) of the newest input block
        self._drift_period = int(DRIFT_S * sample_rate)
        self._drift_leads = np.zeros(8192, dtype=np.float64)  # the period's fine leads
        self._drift_count = self._drift_frames = 0
        self._drift_reference: float | None = None  # the median after the output last moved
        self._drift_last = 0.0  # the last period's deviation from it, if it called for a trim
        self._margin_step = max(1, int(MARGIN_STEP_S * sample_rate))
        self._quiet_total = int(QUIET_S * sample_rate)
        self._repeat_total = int(REPEAT_S * sample_rate)
        # output frames since the last troubled window (as if long ago: the first trouble is a one-off)
        self._quiet_frames = self._repeat_total
        self._trouble = False  # this window: the mix came short, or the output underran
        # For SETTLE_S after the output starts, short windows also judge a lead below zero: a
        # sound server may prefill the output's buffer in a burst of callbacks before the input
        # has delivered as much (seen on PipeWire: the output 1700-2000 frames ahead of its
        # input), and judging that over whole WINDOW_S windows played the start dry for ~0.9 s:
        # the first notes of a song unseparated. (Catch-ups wait for whole windows: over short
        # ones the lead's usual wander of a block would look like latency to remove.)
        self._window = int(WINDOW_S * sample_rate)
        self._short_window = int(FIRST_WINDOW_S * sample_rate)
        self._settling_total = int(SETTLE_S * sample_rate)
        self._settling_frames = self._settling_total
        self._short_max_lead, self._short_frames_seen = -(1 << 62), 0
        self._window_frames = 0
        self._window_min_lead, self._window_max_lead = 1 << 62, -(1 << 62)
        self._wet_weight = 0.0
        self._fading_in = True
        self._fade_frames = int(FADE_S * sample_rate)
        self._fade_step = 1.0 / max(1.0, FADE_S * sample_rate)
        self._max_frames = max_frames
        self._source_block = np.zeros((max_frames, channels), dtype=np.float32)
        self._dry = np.zeros((max_frames, channels), dtype=np.float32)
        self._wet = np.zeros((max_frames, channels), dtype=np.float32)
        self._mix = np.zeros((max_frames, channels), dtype=np.float32)
        self._weights = np.zeros(max_frames, dtype=np.float32)
        self._fade_ramp = (np.arange(1, max_frames + 1) * self._fade_step).astype(np.float32)
        self._moved = np.zeros((max_frames, channels), dtype=np.float32)
        self._crossfade = np.minimum(self._fade_ramp, 1.0)
        # Set by the controller before it closes a stream the user still hears (another file, a
        # seek, Stop file, a device switch): the output fades to silence over FADE_S and stays
        # silent, so that the stream can be closed without a click.
        self.closing = False
        self._closing_gain = 1.0
        # Set by the worker while nothing plays into the input (see worker.py, "idle"): the output
        # stream is stopped and the worker is woken only by a block with sound in it.
        self.idle = False
        # See restart_output: a stream's first start is taken up the same way while it plays silence
        # (the burst that fills a new stream's buffer left PipeWire's output ~1700 frames ahead).
        self._resuming = True
        self._lead_in = False  # the output block now played is such silence (see _play)

    # --- entry points: sounddevice calls these on its audio threads ---------------------------
    def input_block(self, indata, frames, time, status) -> None:
        """Sync mode, input stream: store the block for the worker and as the dry history."""
        if status:
            self.status_flags += 1
        try:
            self._store_input(indata, frames)
        except Exception:  # never let anything escape into PortAudio
            self.errors += 1

    def output_block(self, outdata, frames, time, status) -> None:
        """Sync mode, output stream: play the mix (or the dry input) for the next positions."""
        if status:
            self.status_flags += 1
            self.output_flags += 1
            if not self._resuming:  # not the stream's own start (a first underrun, a priming flag)
                self._trouble = True
        try:
            received = self.position
            if self.out_position is None and received == 0:  # the input has not started yet
                outdata.fill(0.0)
                return
            self._lead_in = False
            longer = frames - self.start_lag - self.block_lead
            if longer > 0:  # the longest output block so far (see "Output blocks")
                self.block_lead += longer
            if self._resuming:
                self._take_up_after_idle(received, frames)
            if self.out_position is None:  # first block: start one input block behind the input
                self.out_position = received - self.start_lag - self.block_lead
                longer = 0  # (placed for this block already)
            lead = received - self.out_position
            trim = 0
            self.mean_lead += (lead - self.mean_lead) * 0.01
            move = 0
            if lead < frames - self.delay or lead > self.max_lead:
                # The two streams drifted apart (a stream restarted after an xrun, two device
                # clocks, a long stall; below: even the dry input for this block is missing):
                # play one input block behind the input again.
                self.realignments += 1
                self.out_position = received - self.start_lag - self.block_lead
                self._new_window()
                self._forget_drift()
            elif longer > 0 and not self._lead_in:  # a longer block than any before: back by the difference
                move = -longer
                self._new_window()
                self._forget_drift()
            else:
                move = self._out_of_step(lead, frames, received)
                if move:
                    self._forget_drift()
                elif not self._resuming:
                    trim = self._drift_trim(frames)
            if move:
                self._move_to(self.out_position + move, outdata, frames)
            elif trim:
                self.drift_trims += 1
                self.drift_trimmed += trim
                self._move_to(self.out_position + trim, outdata, frames, slip=False)
            else:
                start = self.out_position
                self._play(start, outdata, frames)
                self.out_position = start + frames
            if self.closing:
                self._fade_out(outdata, frames)
        except Exception:  # silence is the safe output
            self.errors += 1
            outdata.fill(0.0)

    def output_only(self, outdata, frames, time, status) -> None:
        """Async mode: the source (a file) stands in for the input device, in step with the output."""
        if status:
            self.status_flags += 1
            self.output_flags += 1
        try:
            block = self._source_block[:frames]
            self.source.read_into(block)
            self._store_and_play(block, outdata, frames)
        except Exception:
            self.errors += 1
            outdata.fill(0.0)

    def duplex(self, indata, outdata, frames, time, status) -> None:
        """One stream for both directions (input and output positions coincide)."""
        if status:
            self.status_flags += 1
        try:
            self._store_and_play(indata, outdata, frames)
        except Exception:
            self.errors += 1
            outdata.fill(0.0)

    def restart_output(self) -> None:
        """The output stream is about to start again after idle. Until the output reaches the sound
        that woke the engine it plays silence, and while it does its position is free: each of
        those blocks is taken up at LOWEST_LEAD behind the newest input, so that the output meets
        the sound at the lead a catch-up would have settled on, whatever the phase of the two
        streams and the size of the sound server's first burst (taken up once, one input block
        behind as at a stream's start, the output either ran ahead of its input after the burst
        that fills the device buffer, ~2500 frames on PulseAudio: a fall-back; or stayed behind
        by more than it needs on PipeWire: a catch-up; either moved the output in the song's
        first second). Only while the output stream is stopped."""
        self.out_position = None
        self.output_promoted = None  # a restarted stream may call back on a new thread
        self._resuming = True
        self._settling_frames = 0
        self._new_window()
        self._forget_drift()
        self._wet_weight, self._fading_in = 0.0, True

    # --- the work --------------------------------------------------------------------------
    def _take_up_after_idle(self, received: int, frames: int) -> None:
        """See restart_output: this block at LOWEST_LEAD behind the input if it is silence. Such a
        block is not counted in short_frames even when the worker's mix does not reach it yet (an
        input block came in between the worker's last round and this callback): its dry signal is
        the same digital silence the mix would be."""
        start = received - LOWEST_LEAD - self.extra_lead - self.block_lead
        if self.block_lead:  # the lead then wanders by up to an input block below where it is taken up
            start -= self.start_lag
        dry = self._dry[:frames]
        self.input_ring.read_at(start - self.delay, dry)
        if dry.any():  # the sound: from here on the output moves only by the usual rules
            self._resuming = False
        else:
            self.out_position = start
            self._new_window()
            self._lead_in = True

    def _forget_drift(self) -> None:
        """The output moved: the lead's median is measured afresh before any drift trim."""
        self._drift_count = self._drift_frames = 0
        self._drift_reference = None
        self._drift_last = 0.0

    def _drift_trim(self, frames: int) -> int:
        """Frames to skip (> 0) or repeat (< 0) now to keep the lead's median where it settled
        (see the module docstring, "Drift"); 0 most of the time."""
        if self._settling_frames > 0:
            return 0
        position, stamp = self._input_mark
        since = (self._clock() - stamp) * self._sample_rate
        if 0.0 <= since <= 4 * self.start_lag + 1024:  # else the input stalls: no clock reading
            count = self._drift_count
            if count < len(self._drift_leads):
                self._drift_leads[count] = position + since - self.out_position
                self._drift_count = count + 1
        self._drift_frames += frames
        if self._drift_frames < self._drift_period:
            return 0
        count, self._drift_count, self._drift_frames = self._drift_count, 0, 0
        if count == 0:
            return 0
        leads = self._drift_leads[:count]
        leads.partition(count // 2)
        median = float(leads[count // 2])
        reference = self._drift_reference
        if reference is None:
            self._drift_reference = median
            return 0
        deviation = median - reference
        if abs(deviation) > TRIM_MAX:  # not drift: left to the rules above, measured afresh
            self._forget_drift()
            return 0
        if abs(deviation) < TRIM_MIN:
            self._drift_last = 0.0
            return 0
        # Drift persists, the median's wander does not: trim only a deviation that the last
        # period already showed, in the same direction.
        last, self._drift_last = self._drift_last, deviation
        if last * deviation <= 0.0:
            return 0
        self._drift_last = 0.0
        return round(deviation)

    def _new_window(self) -> None:
        self._window_frames, self._window_min_lead, self._window_max_lead = 0, 1 << 62, -(1 << 62)

    def _out_of_step(self, lead: int, frames: int, received: int) -> int:
        """At the end of each WINDOW_S: how far the output should move (0: not at all) because
        the lead stayed above CATCH_UP_ABOVE, or below zero (the output ahead of its input), all
        window long. While the output settles after its start, also at the end of each
        FIRST_WINDOW_S whose lead stayed below zero."""
        if lead < self._window_min_lead:
            self._window_min_lead = lead
        if lead > self._window_max_lead:
            self._window_max_lead = lead
        self._window_frames += frames
        if self._settling_frames > 0:
            self._settling_frames -= frames
            self._short_max_lead = max(self._short_max_lead, lead)
            self._short_frames_seen += frames
            if self._short_frames_seen >= self._short_window:
                highest, self._short_max_lead, self._short_frames_seen = self._short_max_lead, -(1 << 62), 0
                if highest < 0:
                    self._new_window()
                    self.fall_backs += 1
                    return received - self.start_lag - self.block_lead - self.out_position
        if self._window_frames < self._window:
            return 0
        lowest, highest, frames_seen = self._window_min_lead, self._window_max_lead, self._window_frames
        self._new_window()
        if highest < 0:  # the output ran ahead of its input (its dry frames are not the worker's fault)
            self.fall_backs += 1
            self._trouble = False
            return received - self.start_lag - self.block_lead - self.out_position
        if self.max_extra_lead:
            move = self._adapt_margin(lowest, frames_seen)
            if move:
                return move
        kept = self.extra_lead + self.block_lead
        if self.block_lead and lowest < self.block_lead - self._fade_frames:
            # The longer blocks' mix came short. A late input callback's dip does that for one
            # window and is ridden out (going back for it, then catching up after its burst, made
            # two slips of each dip under a load); short two windows running, the output goes
            # back to where catch-ups stop.
            self._windows_short_of_lead += 1
            if self._windows_short_of_lead >= 2:
                self._windows_short_of_lead = 0
                return lowest - LOWEST_LEAD - kept
            return 0
        self._windows_short_of_lead = 0
        # With longer output blocks the window's lowest lead wanders by up to an input block from
        # one window to the next (the two streams' periods beat): a catch-up within that would
        # only move the output back and forth.
        if lowest > CATCH_UP_ABOVE + kept + (self.start_lag if self.block_lead else 0):
            self.catch_ups += 1
            return lowest - LOWEST_LEAD - kept
        return 0

    def _adapt_margin(self, lowest: int, frames_seen: int) -> int:
        """At a window's end: raise the extra lead a step after trouble (returning how far the
        output goes back: a negative move), or drop it after QUIET_S without trouble (the catch-up
        rule then skips the output ahead). 0: the output stays."""
        if not self._trouble:
            self._quiet_frames += frames_seen
            if self.extra_lead and self._quiet_frames >= self._quiet_total:
                self.extra_lead = 0
                self.margin_drops += 1
            return 0
        self._trouble = False
        repeated = self._quiet_frames < self._repeat_total
        self._quiet_frames = 0
        if not repeated:  # a one-off so far: remembered (by the quiet count), not acted on
            return 0
        step = min(self._margin_step, self.max_extra_lead - self.extra_lead)
        if step <= 0:
            return 0
        self.extra_lead += step
        self.margin_raises += 1
        target = LOWEST_LEAD + self.extra_lead + self.block_lead
        # An underrun has already delayed the output (its lead is high): nothing to go back for.
        return -min(step, target - lowest) if lowest < target else 0

    def _ramp(self, start: float, target: float, frames: int) -> np.ndarray:
        """Per-sample gains for the next `frames` from `start` towards `target` at the crossfade's
        slope (a full swing in FADE_S), held at `target` once there: a view of self._weights."""
        weights = self._weights[:frames]
        if target > start:
            np.add(self._fade_ramp[:frames], start, out=weights)
            np.minimum(weights, target, out=weights)
        else:
            np.subtract(start, self._fade_ramp[:frames], out=weights)
            np.maximum(weights, target, out=weights)
        return weights

    def _scale_dry(self, dry, frames: int) -> None:
        """The dry input at the user's level (see levels.LevelRamp.dry_gain), following a change
        of it at the crossfade's slope so that it never clicks."""
        gain, target = self._dry_gain, self.levels.dry_gain
        if gain == target:
            if gain != 1.0:
                np.multiply(dry, gain, out=dry)
            return
        weights = self._ramp(gain, target, frames)
        np.multiply(dry, weights[:, None], out=dry)
        self._dry_gain = float(weights[-1])

    def _fade_out(self, outdata, frames: int) -> None:
        """Closing: the output ramps from its current gain to silence over FADE_S, then stays silent."""
        if self._closing_gain <= 0.0:
            outdata.fill(0.0)
            return
        weights = self._ramp(self._closing_gain, 0.0, frames)
        outdata *= weights[:, None]
        self._closing_gain = float(weights[-1])

    def _move_to(self, new_start: int, outdata, frames: int, slip: bool = True) -> None:
        """Plays from new_start instead of the next position, crossfading from the old one.
        slip: count it in `realignments` (a drift trim of a few frames is not counted there)."""
        old = self._moved[:frames, :outdata.shape[1]]
        dry_gain = self._dry_gain
        self._play(self.out_position, old, frames)
        self._dry_gain = dry_gain  # the same block again: the same step of a dry-gain ramp
        self._play(new_start, outdata, frames)
        outdata -= old
        outdata *= self._crossfade[:frames, None]
        outdata += old
        if slip:
            self.realignments += 1  # still a slip, if a smooth one: counted with the others
        self.out_position = new_start + frames

    def _store_and_play(self, block, outdata, frames: int) -> None:
        """Input and output in step: the output plays the block's own position."""
        start = self.position
        self._store_input(block, frames)
        self.out_position = start
        self._play(start, outdata, frames)
        self.out_position = start + frames
        if self.closing:
            self._fade_out(outdata, frames)

    def _store_input(self, indata, frames: int) -> None:
        if self.promoted is None:  # once per stream thread that gets here first
            self.input_tid = threading.get_native_id()
            self.promoted = promote_current_thread()
        self.input_callbacks += 1
        if frames > self._max_frames:
            raise ValueError("block larger than the buffers")
        start = self.position
        self.input_ring.write_at(start, indata)  # a mono input broadcasts to both channels
        self.position = start + frames  # publish only after the data is in place
        self._input_mark = (start + frames, self._clock())
        if not self.idle or indata.any():
            self.wake.set()

    def _play(self, start: int, outdata, frames: int) -> None:
        if self.output_promoted is None:
            self.output_tid = threading.get_native_id()
            self.output_promoted = promote_current_thread()
        self.callbacks += 1
        if frames > self._max_frames:
            raise ValueError("block larger than the buffers")
        dry = self._dry[:frames]
        self.input_ring.read_at(start - self.delay, dry)  # positions < 0 read never-written zeros
        if self.levels is not None:
            self._scale_dry(dry, frames)
        first, end = self.valid
        mix = self._mix[:frames]
        if first <= start and start + frames <= end:
            wet = self._wet[:frames]
            self.output_ring.read_at(start, wet)
            # Running out of mix (the worker is late): fade to dry while there is still mix to
            # fade from; fade back in only once the worker is comfortably ahead again.
            ahead = end - (start + frames)
            if ahead < self._fade_frames:
                fading_in = False
            elif ahead >= 2 * self._fade_frames:
                fading_in = True
            else:
                fading_in = self._fading_in
            self._fading_in = fading_in
            if not fading_in and not self._lead_in:  # fading to dry, or dry: the mix came too close
                self.short_frames += frames
                self._trouble = True
            if fading_in and self._wet_weight >= 1.0:
                mix[:] = wet
            elif not fading_in and self._wet_weight <= 0.0:
                mix[:] = dry
            else:  # mix = dry + w * (wet - dry), w ramping towards 1 or 0
                weights = self._ramp(self._wet_weight, 1.0 if fading_in else 0.0, frames)
                np.subtract(wet, dry, out=wet)
                np.multiply(wet, weights[:, None], out=wet)
                np.add(dry, wet, out=mix)
                self._wet_weight = float(weights[-1])
        else:
            mix[:] = dry
            self._wet_weight = 0.0
            if first <= start and not self._lead_in:  # the mix was due (not a warm-up, not silence
                self.short_frames += frames          # before the sound that woke the output)
                self._trouble = True
        if outdata.shape[1] == mix.shape[1]:
            outdata[:] = mix
        else:  # a mono output gets the left channel
            outdata[:, 0] = mix[:, 0]
