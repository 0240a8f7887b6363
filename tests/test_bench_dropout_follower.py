"""bench/bench_engine.py's dropout follower: what it counts as a dropout decides the figures of the
load soak, so it is tested on recordings whose faults are known.

The recordings are made the way the engine makes them in the bench: the probe's 48 kHz noise loop
resampled to the engine's 44.1 kHz, moved there by whole frames (drift trims: a few frames,
crossfaded over 5 ms), and resampled back to 48 kHz, so that each move is a fractional lag at
48 kHz; plus a real gap and a burst of garbage that must stay events.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import soxr

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_engine.py"
ENGINE_RATE = 44100


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_engine_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _recording(bench, seconds: int, trims: dict[float, int], gap_s: float, garbage_s: float):
    rate = bench.RATE
    loop = (0.1 * np.random.default_rng(0).standard_normal(int(bench.LOOP_S * rate))).astype(np.float32)
    engine_side = soxr.resample(np.tile(loop, seconds // int(bench.LOOP_S) + 2), rate, ENGINE_RATE, quality="HQ")
    fade = int(0.005 * ENGINE_RATE)
    moves = np.zeros(len(engine_side), np.int64)
    for at, frames in trims.items():
        moves[int(at * ENGINE_RATE):] += frames
    index = np.arange(len(engine_side)) + 2000
    played = engine_side[np.minimum(index + moves, len(engine_side) - 1)]
    for at in trims:  # each move crossfaded from the old position, as callback._move_to does
        i = int(at * ENGINE_RATE)
        ramp = np.arange(1, fade + 1) / fade
        played[i:i + fade] = engine_side[index[i:i + fade] + moves[i - 1]] * (1 - ramp) + played[i:i + fade] * ramp
    recording = soxr.resample(played, ENGINE_RATE, rate, quality="HQ").astype(np.float32)[:seconds * rate]
    recording[int(gap_s * rate):int((gap_s + 0.02) * rate)] = 0.0  # 20 ms lost
    recording[int(garbage_s * rate):int(garbage_s * rate) + 300] *= -1.0  # 300 frames of garbage
    return loop, recording


def test_small_crossfaded_moves_are_one_slip_each_and_a_gap_and_garbage_stay_dropouts():
    bench = _bench_module()
    trims = {t + 0.037: (7 if t % 4 else -4) for t in range(4, 30, 2)}
    loop, recording = _recording(bench, 30, trims, gap_s=13.03, garbage_s=21.5)
    shifts, kinds = {}, {}
    events = bench.discontinuities(loop, recording, 1.5, shifts=shifts, splice_within=106, kinds=kinds)
    slips = sorted(shifts.items())
    assert len(slips) == len(trims), kinds
    for (at, frames), (trim_at, engine_frames) in zip(slips, sorted(trims.items())):
        assert abs(at - trim_at) <= 0.1
        assert frames == round(engine_frames * bench.RATE / ENGINE_RATE)  # 7 -> +8, -4 -> -4 at 48 kHz
    faults = [t for t in events if t not in shifts]
    assert [round(t, 1) for t in faults] == [13.0, 21.5], kinds


def test_a_slip_larger_than_the_search_is_found_again_and_counted_once():
    """A resync skips the output ahead by more than the follower's ±50 ms search: it finds the
    loop again anywhere, counts one slip, and follows from there (before, every window after it
    counted as a dropout: 4053 in a 10-minute run). The window that holds the cut is the one event."""
    bench = _bench_module()
    rate = bench.RATE
    loop = (0.1 * np.random.default_rng(0).standard_normal(int(bench.LOOP_S * rate))).astype(np.float32)
    played = np.tile(loop, 3)
    recording = np.concatenate([played[:int(5.03 * rate)], played[int(5.03 * rate) + int(0.3 * rate):]])[:20 * rate]
    kinds = {}
    events = bench.discontinuities(loop, recording, 1.5, kinds=kinds)
    assert events == [5.0], kinds  # the window with the cut; the next one is found again, not counted
    assert kinds[5.0].endswith(f"then slip {int(0.3 * rate):+.1f}"), kinds


def test_without_splicing_a_crossfaded_move_also_counts_its_crossfade():
    """The splice rule is what makes a trim one slip: without it the window holding the crossfade
    matches neither lag (white noise a few frames apart does not correlate)."""
    bench = _bench_module()
    trims = {t + 0.037: 7 for t in range(4, 20, 4)}
    loop, recording = _recording(bench, 20, trims, gap_s=17.03, garbage_s=18.5)
    events = bench.discontinuities(loop, recording, 1.5)
    assert len(events) == 2 * len(trims) + 2


def test_a_crossfaded_catch_up_of_hundreds_of_frames_is_one_dropout_window_not_two():
    """A catch-up or fall-back moves the output by hundreds of frames with the same 5 ms crossfade:
    one slip the listener hears, in one window. The window after it plays intact at the new lag
    and is not counted again (the bench's follower did, when only slips up to a drift trim's size
    were taken as splices)."""
    bench = _bench_module()
    moves = {5.037: 600, 9.537: -450}
    loop, recording = _recording(bench, 14, moves, gap_s=12.03, garbage_s=13.0)
    shifts, kinds = {}, {}
    events = bench.discontinuities(loop, recording, 1.5, shifts=shifts, splice_within=bench.SEARCH_FRAMES,
                                   kinds=kinds)
    assert [round(t, 1) for t in events] == [5.0, 9.5, 12.0, 13.0], kinds
    assert [shifts[t] for t in sorted(shifts)] == [round(f * bench.RATE / ENGINE_RATE) for f in moves.values()], kinds


def test_a_few_milliseconds_of_silence_are_a_dropout_though_the_window_still_correlates():
    """An underrun of 6 ms leaves a 100 ms window correlating at ~0.97 with the loop: the
    follower also looks for a run of silence in every window (the loop is never silent)."""
    bench = _bench_module()
    loop, recording = _recording(bench, 10, {}, gap_s=6.03, garbage_s=9.5)
    recording[int(4.05 * bench.RATE):int(4.056 * bench.RATE)] = 0.0  # 6 ms
    kinds = {}
    events = bench.discontinuities(loop, recording, 1.5, splice_within=bench.SEARCH_FRAMES, kinds=kinds)
    assert [round(t, 1) for t in events] == [4.0, 6.0, 9.5], kinds
    assert kinds[events[0]].startswith("silence of"), kinds


def test_a_short_silence_that_delays_what_follows_is_one_dropout():
    """An underrun: 6 ms of silence near a window's end, after which the sound goes on where it
    stopped (later by those 6 ms). The window holding the silence still follows the loop; the next
    one is at the new lag. One event, not a silence and a slip."""
    bench = _bench_module()
    rate = bench.RATE
    loop = (0.1 * np.random.default_rng(0).standard_normal(int(bench.LOOP_S * rate))).astype(np.float32)
    played = np.tile(loop, 3)
    cut, hole = int(5.092 * rate), int(0.006 * rate)
    recording = np.concatenate([played[:cut], np.zeros(hole, np.float32), played[cut:]])[:12 * rate]
    kinds = {}
    events = bench.discontinuities(loop, recording, 1.5, splice_within=bench.SEARCH_FRAMES, kinds=kinds)
    assert [round(t, 1) for t in events] == [5.0], kinds
    assert kinds[events[0]].startswith("silence of") and "then slip" in kinds[events[0]], kinds


def test_the_latency_followed_through_a_run_takes_out_the_two_sinks_clocks():
    """The loop's lag after the engine less its lag before it, window by window: the two monitors'
    recordings run on two sinks' clocks (41 ppm apart here), which part them by ~2.5 ms a minute;
    anchored at the probe's burst figures before and after the run, what is left is the latency,
    here 150 ms with 10 ms more from 4 to 6 minutes."""
    bench = _bench_module()
    rate, loop_frames = bench.RATE, int(bench.LOOP_S * bench.RATE)
    times = [round(0.1 * i, 1) for i in range(60, 600 * 10)]  # 6 s to 10 min, every window
    cable = {t: 1234.0 for t in times}
    true_ms = {t: 150.0 + (10.0 if 240 <= t < 360 else 0.0) for t in times}
    speakers = {t: (1234.0 + 500.0 + true_ms[t] * rate / 1000 + 41e-6 * rate * t) % loop_frames for t in times}
    followed = dict(bench.latency_followed(cable, speakers, 0.150, 0.150, loop_frames))
    assert max(abs(followed[t] - true_ms[t]) for t in times) < 0.2
