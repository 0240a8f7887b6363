"""bench/trace_underruns.py's reading of a trace: which gap before an underrun, and what overlapped it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from trace_underruns import underruns


def _callbacks(times: list[float], flagged: set[int]) -> np.ndarray:
    return np.array([(t, 1.0 if k in flagged else 0.0) for k, t in enumerate(times)])


def test_each_underrun_gets_the_gap_before_it_and_the_worker_call_and_stall_in_that_gap():
    times = [0.01 * k for k in range(50)]  # a callback every 10 ms ...
    times[20:] = [t + 0.08 for t in times[20:]]  # ... then one 90 ms late (callback 20)
    times[40:] = [t + 0.05 for t in times[40:]]  # ... and one 60 ms late (callback 40)
    output = _callbacks(times, flagged={22, 41})
    calls = np.array([(0.185, 0.275), (0.40, 0.401), (0.455, 0.456)])  # 90 ms over the first gap
    stalls = np.array([(0.20, 30.0), (0.30, 12.0), (0.50, 45.0), (0.70, 50.0)])  # the last after both
    found = underruns(output, calls, stalls, start=0.0, end=1.0)
    assert [round(when, 3) for when, *_ in found] == [round(times[22], 3), round(times[41], 3)]
    (_, gap1, call1, stall1), (_, gap2, call2, stall2) = found
    assert round(gap1) == 90 and round(call1) == 90 and stall1 == 30.0
    assert round(gap2) == 60 and call2 == 0.0 and stall2 == 45.0


def test_underruns_outside_the_load_or_at_the_first_callback_are_left_out():
    output = _callbacks([0.0, 0.01, 0.02, 0.10, 0.11], flagged={0, 3})
    empty = np.zeros((0, 2))
    found = underruns(output, empty, empty, start=0.05, end=0.2)
    assert [tuple(round(value, 6) for value in row) for row in found] == [(0.05, 80.0, 0.0, 0.0)]
    assert underruns(output, empty, empty, start=0.5, end=1.0) == []
