"""The adaptive margin (callback.py): when the worker delivers a mix too late, or the output
underruns, again within 30 s, the output keeps a step more lead (up to its cap), so that the next
stall of the same length plays wet; a one-off is left alone; after a quiet spell the extra lead is
dropped again. Driven on a simulated clock
like test_engine_core's two-stream tests, with a simulated worker whose mix is the input itself
(so the output must be the input, delayed, whatever path a frame took) and which can stall.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from whamsah_tray.engine import callback as callback_module
from whamsah_tray.engine.callback import LOWEST_LEAD, MARGIN_STEP_S, AudioCallback
from whamsah_tray.engine.ring_buffer import SampleRing

RATE = 44100
DELAY = 3557  # the callback's delay: the model's latency + ~1 ms compute + a 512-frame block + 10 ms margin
LATENCY = 2560  # the model's latency: the worker's mix for input p is out once it has read p + LATENCY - DELAY ...
STEP = int(MARGIN_STEP_S * RATE)


class UnderflowFlag:
    """What sounddevice hands the output callback after an underrun (a truthy CallbackFlags)."""

    def __bool__(self) -> bool:
        return True


def drive(seconds: float, worker_stalls=(), output_gaps=(), max_extra_lead=int(0.05 * RATE),
          in_block=512, out_block=496):
    """Runs the input and output sides and a worker on a simulated clock for `seconds`.
    worker_stalls: (t, s): the worker does nothing for s seconds from t (preempted by a busy
    machine), then processes all it missed at once. output_gaps: (t, s): the output's callbacks
    stop for s seconds (an underrun), the next one carries the underflow flag.
    Returns (output, input, callback, leads)."""
    frames = int(seconds * RATE)
    x = np.random.default_rng(1).standard_normal((frames, 2)).astype(np.float32) * 0.1
    capacity = DELAY + 8 * RATE
    now = [0.0]  # the simulated clock, for the callback's drift measurement
    callback = AudioCallback(SampleRing(capacity, 2), SampleRing(capacity, 2), DELAY, RATE, 4096,
                             threading.Event(), start_lag=in_block, max_extra_lead=max_extra_lead,
                             clock=lambda: now[0])
    out = np.zeros((frames + RATE, 2), np.float32)
    leads = []
    written = received = processed = 0
    t, next_in, next_out = 0.0, 0.0, in_block / RATE / 2
    flagged = False
    while received + in_block <= frames:
        t = now[0] = min(next_in, next_out)
        if t == next_in:
            callback.input_block(x[received:received + in_block], in_block, None, None)
            received += in_block
            next_in += in_block / RATE
            if not any(a <= t < a + s for a, s in worker_stalls):
                # The worker: the mix of input up to `received` (the input itself, delayed) is out
                # up to position received + DELAY - LATENCY.
                callback.output_ring.write_at(processed + DELAY, x[processed:received])
                processed = received
                callback.valid = (DELAY, processed + DELAY - LATENCY)
        else:
            next_out += out_block / RATE
            if any(a <= t < a + s for a, s in output_gaps):
                flagged = True
                continue
            callback.output_block(out[written:written + out_block], out_block, None, UnderflowFlag() if flagged else None)
            flagged = False
            leads.append(callback.position - (callback.out_position - out_block))
            written += out_block
    return out[:written], x, callback, np.array(leads)


def test_a_late_worker_raises_the_margin_and_the_same_stalls_then_play_wet():
    stalls = [(t, 0.02) for t in np.arange(2.0, 14.0, 2.0)]  # six 20 ms stalls, one every 2 s
    _, _, pinned, _ = drive(15.0, worker_stalls=stalls, max_extra_lead=0)
    _, _, adaptive, leads = drive(15.0, worker_stalls=stalls)
    # Pinned, every stall plays frames dry (the vocals come back for a moment each time).
    assert pinned.short_frames == 6 * 496, pinned.short_frames
    assert pinned.extra_lead == 0 and pinned.margin_raises == 0
    # Adaptive: the first stall is remembered, a step (10 ms) after the second, another after the
    # third; the other three play wet.
    assert adaptive.margin_raises == 2 and adaptive.extra_lead == 2 * STEP
    assert adaptive.short_frames == 3 * 496, adaptive.short_frames
    # The output now keeps the two steps more lead.
    assert np.min(leads[-200:]) >= LOWEST_LEAD + 2 * STEP - 16, np.min(leads[-200:])


def _shift(out: np.ndarray, x: np.ndarray, span: slice) -> int:
    """How many frames later the output plays the input over span (exactly, or None): out[i] ==
    x[i - shift]. (Output frame i is the i-th frame played; the output starts before the input's
    first delay has passed, hence a shift that need not equal DELAY.)"""
    for shift in range(-2 * DELAY, 2 * DELAY):
        lo, hi = span.start - shift, span.stop - shift
        if lo >= 0 and hi <= len(x) and np.allclose(out[span], x[lo:hi], atol=1e-6):
            return shift
    return None


def test_a_one_off_late_block_plays_dry_and_moves_nothing():
    _, _, quiet, _ = drive(10.0)
    _, _, callback, _ = drive(10.0, worker_stalls=[(2.0, 0.01)])
    assert callback.short_frames == 496
    assert callback.margin_raises == 0 and callback.realignments == quiet.realignments


def test_the_output_is_the_input_delayed_and_goes_back_once_crossfaded():
    out, x, callback, _ = drive(8.0, worker_stalls=[(2.0, 0.02), (3.0, 0.02), (6.0, 0.01)])
    assert callback.margin_raises == 1 and callback.extra_lead == STEP
    before = _shift(out, x, slice(int(1.0 * RATE), int(1.9 * RATE)))
    after = _shift(out, x, slice(int(4.0 * RATE), int(7.5 * RATE)))
    assert before is not None and after is not None, (before, after)
    # Up to a step more delay from the raise on (the output went back and played those frames
    # again, crossfaded), up to the step itself: the lead aims at LOWEST_LEAD + one step.
    assert 0 < after - before <= STEP, (before, after)
    assert callback.short_frames == 2 * 496  # the third stall played wet


def test_the_margin_stops_at_its_cap():
    stalls = [(t, 0.2) for t in np.arange(1.0, 19.0, 1.0)]  # stalls no margin within the cap covers
    _, _, callback, _ = drive(20.0, worker_stalls=stalls, max_extra_lead=3 * STEP)
    assert callback.extra_lead == 3 * STEP and callback.margin_raises == 3


def test_a_second_underrun_keeps_a_step_of_the_delay_it_added_instead_of_skipping_it_all():
    gaps = [(2.0, 0.05), (4.0, 0.05)]
    _, _, quiet, _ = drive(6.0)  # the start's own settling, for comparison
    _, _, pinned, pinned_leads = drive(6.0, output_gaps=gaps, max_extra_lead=0)
    _, _, adaptive, leads = drive(6.0, output_gaps=gaps)
    # Pinned: each time a catch-up skips the whole 50 ms the underrun added.
    assert pinned.catch_ups == quiet.catch_ups + 2
    assert np.min(pinned_leads[-100:]) <= LOWEST_LEAD + 16
    # Adaptive: the first as pinned; after the second a step is kept (no slip for it), only the
    # rest is skipped.
    assert adaptive.margin_raises == 1 and adaptive.extra_lead == STEP
    assert adaptive.catch_ups == quiet.catch_ups + 2 and adaptive.short_frames == 0
    assert LOWEST_LEAD + STEP - 16 <= np.min(leads[-100:]) <= LOWEST_LEAD + STEP + 16, np.min(leads[-100:])


def test_after_a_quiet_spell_the_extra_lead_is_dropped_in_one_catch_up(monkeypatch):
    # QUIET_S is two minutes; 4 s here keeps the simulated run short (the rule is the same).
    monkeypatch.setattr(callback_module, "QUIET_S", 4.0)
    _, _, quiet, _ = drive(12.0)
    _, _, callback, leads = drive(12.0, worker_stalls=[(2.0, 0.02), (3.0, 0.02)])
    assert callback.margin_raises == 1 and callback.margin_drops == 1 and callback.extra_lead == 0
    assert callback.catch_ups == quiet.catch_ups + 1  # the drop: one skip back to the usual lead
    assert np.min(leads[-100:]) <= LOWEST_LEAD + 16, np.min(leads[-100:])


def test_a_pinned_latency_never_moves_the_margin():
    stalls = [(t, 0.03) for t in np.arange(1.0, 9.0, 1.0)]
    _, _, callback, _ = drive(10.0, worker_stalls=stalls, output_gaps=[(5.5, 0.05)], max_extra_lead=0)
    assert callback.margin_raises == 0 and callback.extra_lead == 0 and callback.short_frames > 0
