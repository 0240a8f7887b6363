"""Where an output underrun under load comes from: the engine's callbacks and worker, traced.

    python bench/trace_underruns.py --load mixed --minutes 3

Runs the engine as bench_engine.py does (child process; cable_monitor -> speakers, a noise source
playing into the cable) beside a load, with three records kept in preallocated arrays:
- each output and input callback's arrival (monotonic clock) and the output's PortAudio flags;
- each call of the worker's separation pipeline (start, end);
- in a separate process (its own interpreter, so no shared GIL), a thread at the engine's nice
  level that sleeps 2 ms in a loop and notes each wake-up more than 10 ms late: how long the
  machine itself held a thread of that priority off the CPU.
Then, for each output underrun (a callback flagged by PortAudio), prints the longest gap between
output callbacks before it, the longest worker call overlapping that gap, and the longest stall
the probe saw then. Everything in the callbacks is an index and a store into arrays made before
the streams start; the wrappers are this script's, the engine's code is not changed.

Prints figures; asserts nothing. Needs what bench_engine.py needs (it starts the same headless
desktop when none answers).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

import bench_engine

from whamsah_tray.engine.realtime import ENGINE_NICE

CAPACITY = 1 << 20
PROBE_SLEEP_S = 0.002
PROBE_LATE_S = 0.010
PROBE_SCRIPT = f"""
import os, sys, time
os.setpriority(os.PRIO_PROCESS, 0, int(sys.argv[1]))
end = time.monotonic() + float(sys.argv[2])
while True:
    t0 = time.monotonic()
    if t0 > end:
        break
    time.sleep({PROBE_SLEEP_S})
    late = time.monotonic() - t0 - {PROBE_SLEEP_S}
    if late > {PROBE_LATE_S}:
        print(f"{{t0:.4f}} {{late * 1000:.1f}}", flush=True)
"""


def traced_child(out_path: str, main_nice: int | None) -> int:
    """The engine child of bench_engine, with the callbacks and the worker's pipeline wrapped;
    `main_nice`: the child's main thread (which prints its status once a second) at that nice level,
    set before the engine starts, so the threads it starts inherit it."""
    from whamsah_tray.engine import callback as callback_module
    from whamsah_tray.engine import pipeline as pipeline_module

    clock = time.monotonic
    output = np.zeros((CAPACITY, 2))  # arrival, flagged
    inputs = np.zeros(CAPACITY)
    calls = np.zeros((CAPACITY, 2))  # start, end
    counts = [0, 0, 0]

    original_output = callback_module.AudioCallback.output_block
    original_input = callback_module.AudioCallback.input_block
    original_process = pipeline_module.SeparationPipeline.process

    def output_block(self, outdata, frames, time_info, status):
        n = counts[0]
        if n < CAPACITY:
            output[n, 0] = clock()
            output[n, 1] = 1.0 if status else 0.0
            counts[0] = n + 1
        original_output(self, outdata, frames, time_info, status)

    def input_block(self, indata, frames, time_info, status):
        n = counts[1]
        if n < CAPACITY:
            inputs[n] = clock()
            counts[1] = n + 1
        original_input(self, indata, frames, time_info, status)

    def process(self, block):
        started = clock()
        try:
            return original_process(self, block)
        finally:
            n = counts[2]
            if n < CAPACITY:
                calls[n, 0], calls[n, 1] = started, clock()
                counts[2] = n + 1

    callback_module.AudioCallback.output_block = output_block
    callback_module.AudioCallback.input_block = input_block
    pipeline_module.SeparationPipeline.process = process
    defaults = bench_engine_defaults()
    if main_nice is not None:
        os.setpriority(os.PRIO_PROCESS, 0, main_nice)
    try:
        return bench_engine.child(defaults)
    finally:
        np.savez(out_path, output=output[:counts[0]], inputs=inputs[:counts[1]], calls=calls[:counts[2]])


def bench_engine_defaults() -> argparse.Namespace:
    from whamsah_tray.engine import StreamSettings

    settings = StreamSettings()
    return argparse.Namespace(input_latency=settings.input_latency_s, output_latency=settings.output_latency_s,
                              margin=settings.margin_s, blocksize=0)


LONG_MS = 40.0  # a worker call, callback gap or stall this long is counted apart (the output buffer is 45 ms)


def _within(times: np.ndarray, start: float, end: float) -> np.ndarray:
    return (times >= start) & (times <= end)


def analyse(trace: dict, stalls: np.ndarray, load_start: float, load_end: float) -> None:
    output, calls = trace["output"], trace["calls"]
    print(f"output callbacks {len(output)}, input callbacks {len(trace['inputs'])}, worker calls {len(calls)}")
    durations = ((calls[:, 1] - calls[:, 0]) * 1000)[_within(calls[:, 0], load_start, load_end)]
    if len(durations):
        print(f"worker call under load: median {np.median(durations):.1f} ms, p99 {np.percentile(durations, 99):.1f}, "
              f"max {durations.max():.1f}; calls over {LONG_MS:g} ms: {(durations > LONG_MS).sum()}")
    gaps = (np.diff(output[:, 0]) * 1000)[_within(output[1:, 0], load_start, load_end)]  # each by the callback ending it
    if len(gaps):
        print(f"gap between output callbacks under load: max {gaps.max():.1f} ms, over {LONG_MS:g} ms: {(gaps > LONG_MS).sum()}")
    held = stalls[_within(stalls[:, 0], load_start, load_end), 1]
    if len(held):
        print(f"machine stalls (a nice {ENGINE_NICE} thread in another process woken > {PROBE_LATE_S * 1000:.0f} ms late): "
              f"{len(held)}, max {held.max():.1f} ms, over {LONG_MS:g} ms: {(held > LONG_MS).sum()}")
    found = underruns(output, calls, stalls, load_start, load_end)
    print(f"output underruns under load: {len(found)}")
    for when, gap, longest, stall in found:
        print(f"  {when:7.2f} s: output callbacks {gap:.1f} ms apart; "
              f"longest worker call in that gap {longest:.1f} ms; machine stall then {stall:.1f} ms")
    if found:
        covered = sum(longest >= LONG_MS for _, _, longest, _ in found)
        print(f"underruns with a worker call of >= {LONG_MS:g} ms in the gap before them: {covered} of {len(found)}")


def underruns(output: np.ndarray, calls: np.ndarray, stalls: np.ndarray, start: float,
              end: float) -> list[tuple[float, float, float, float]]:
    """For each output callback flagged between `start` and `end` (monotonic s): its time from
    `start` (s), the longest gap between output callbacks among the ten before it (ms), the longest
    worker call overlapping that gap (ms, 0 if none) and the longest machine stall the probe
    noted from 0.1 s before the gap to its end (ms, 0 if none). `output`: rows (arrival, flagged);
    `calls`: rows (start, end); `stalls`: rows (time, ms)."""
    found = []
    gaps = np.diff(output[:, 0])
    for k in np.nonzero(output[:, 1])[0]:
        if k == 0 or not start <= output[k, 0] <= end:
            continue
        first = max(1, k - 10)
        j = first + int(np.argmax(gaps[first - 1:k]))
        gap_start, gap_end = output[j - 1, 0], output[j, 0]
        overlapping = calls[(calls[:, 1] > gap_start) & (calls[:, 0] < gap_end)]
        longest = float((overlapping[:, 1] - overlapping[:, 0]).max()) * 1000 if len(overlapping) else 0.0
        near = stalls[(stalls[:, 0] > gap_start - 0.1) & (stalls[:, 0] < gap_end), 1]
        stall = float(near.max()) if len(near) else 0.0
        found.append((float(output[k, 0] - start), float(gap_end - gap_start) * 1000, longest, stall))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", choices=sorted(bench_engine.LOADS), default="mixed")
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the load (default 3)")
    parser.add_argument("--server", choices=["pulseaudio", "pipewire"], default="pulseaudio")
    parser.add_argument("--main-nice", type=int, metavar="N",
                        help="the engine process's main thread at nice N, and so each thread it starts before "
                             "asking for its own level (default: left at the user's): whether a thread of normal "
                             "priority holding the GIL matters")
    parser.add_argument("--child", metavar="TRACE.npz", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return traced_child(args.child, args.main_nice)

    with bench_engine.headless_desktop(args.server, prefix="whamsah-trace-"):
        return trace(args)


def trace(args: argparse.Namespace) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="whamsah-trace-load-"))
    trace_path = scratch / "trace.npz"
    command = [sys.executable, __file__, "--child", str(trace_path)]
    if args.main_nice is not None:
        command += ["--main-nice", str(args.main_nice)]
    engine = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    source = None
    try:
        time.sleep(8.0)  # the engine loads its model and opens its streams
        source = subprocess.Popen(["pacat", "-p", "--device=cable", "--format=s16le", "--rate=44100", "--channels=2",
                                   "--volume=3000", "/dev/urandom"])
        time.sleep(3.0)
        seconds = args.minutes * 60
        probe = subprocess.Popen([sys.executable, "-c", PROBE_SCRIPT, str(ENGINE_NICE), str(seconds + 1)],
                                 stdout=subprocess.PIPE, text=True)
        load_start = time.monotonic()
        load = bench_engine.start_load(args.load, str(scratch), engine.pid)
        time.sleep(seconds)
        load_end = time.monotonic()
        bench_engine.stop_load(load, engine.pid)
        stall_lines = probe.communicate(timeout=30)[0].split()
        stalls = np.array(stall_lines, dtype=np.float64).reshape(-1, 2)
    finally:
        if source is not None:
            source.kill()
        engine.send_signal(signal.SIGTERM)
        engine.wait(30)
    main_text = f", engine's main thread at nice {args.main_nice}" if args.main_nice is not None else ""
    print(f"trace_underruns: {args.server}, --load {args.load} for {args.minutes:g} min{main_text}; "
          f"machine: {os.cpu_count()} CPUs")
    trace_arrays = dict(np.load(trace_path))
    shutil.rmtree(scratch, ignore_errors=True)
    analyse(trace_arrays, stalls, load_start, load_end)
    return 0


if __name__ == "__main__":
    sys.exit(main())
