"""Live engine bench: end-to-end latency through the PulseAudio null sinks, CPU % and RSS of the
engine process in sync mode, and dropouts over a long run. Prints figures; asserts nothing.

    python bench/bench_engine.py                 # 10-minute run (the figure the README quotes)
    python bench/bench_engine.py --minutes 1     # quicker
    python bench/bench_engine.py --input-latency 0.02 --output-latency 0.06 --margin 0.02
    python bench/bench_engine.py --server pipewire --minutes 1   # on PipeWire + pipewire-pulse
    python bench/bench_engine.py --load blas --minutes 10        # a soak beside a busy machine

Loads (`--load`, normal priority, started with the dropout run and stopped at its end; then
`--after-minutes` more with no load, to see the latency come back down):
  cpu    two busy Python loops (a browser's or a game's busy threads)
  blas   a 2-thread float32 matrix multiply (cache and memory-bandwidth pressure, like a game
         engine or a training job)
  mixed  one busy loop, 512 MB of memory allocated and touched over and over, and 64 MB files
         written, fsynced and deleted in a loop
  memory, disk  one part of mixed alone (to tell which part a dropout comes from)
  stall  the engine's process stopped (SIGSTOP) for 70 ms every 4 s, longer than its output
         buffer: the late output thread of a machine that holds it off the CPU, made repeatable

Needs the headless desktop's sinks `cable` and `speakers` (source tests/desktop_env.sh up; when
no sound server of the kind asked for answers, this script starts one with tests/desktop_env.sh
and stops it after).

How it measures
- The engine runs in a child process (this script with --child), as in the app: input
  cable_monitor, output speakers, levels 100/100. Model: the default model if installed, else a
  random-weight network of the default architecture (same compute; says which).
- Latency: a probe in this process plays noise bursts into `cable` and records `speakers_monitor`
  in one duplex stream; the same probe recording `cable_monitor` (no engine in the path) gives
  the probe's own round trip, which is subtracted. The lag comes from cross-correlation.
- Dropouts: for the long run the probe plays a 10 s noise loop into `cable` continuously and
  records both `speakers_monitor` (after the engine) and `cable_monitor` (before it). Each
  recording is followed window by window (100 ms): a window that matches the loop at no lag near
  the previous one (gap, garbage) or at another lag (frames lost or repeated) is an event. Events
  after the engine with no event in the probe's own playback around the same time are the
  engine's. With levels at 100/100 the engine's output is its input exactly (the separator's
  contract), so any difference is the engine's fault.
  They are counted from SETTLE_S (6 s) into the run: the probe's streams joining the server
  disturb it for a moment (reported on a line of its own). Around each dropout the bench prints
  what the engine counted (dry frames, PortAudio xruns, realignments of the output).
- CPU % (of one core) from /proc/PID/stat over the run, and that of the pactl processes it ran
  (the sound-server checks); RSS and its peak from /proc/PID/status.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RATE = 48000
LOOP_S = 10.0
WINDOW_S = 0.1
# The probe's three streams joining the sound server make it re-plan its sinks' latencies, and the
# engine's streams feel that for a few seconds (as when a new app starts playing into the cable).
# Dropouts are counted after this; what happens before is reported on its own line.
SETTLE_S = 6.0


# ------------------------------------------------------------------ the engine (child process)
def child(args: argparse.Namespace) -> int:
    from whamsah_tray.engine import EngineController, EngineSettings, EngineState, StreamSettings
    from whamsah_tray.errors import ModelLoadingError
    from whamsah_tray.separation import create_untrained_model, load_model

    def model_factory(name):
        try:
            return load_model(name)
        except ModelLoadingError as error:
            print(json.dumps({"note": f"default model unavailable ({error}); using a random-weight "
                                      "network of the default architecture"}), flush=True)
            return create_untrained_model("whamsah-rt", seed=0)

    stream = StreamSettings(input_latency_s=args.input_latency, output_latency_s=args.output_latency,
                            margin_s=args.margin, blocksize=args.blocksize)
    engine = EngineController(EngineSettings(input_device="cable_monitor", output_device="speakers", stream=stream),
                              model_factory=model_factory)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine.start()
    engine.wait_for(lambda s: s.state is EngineState.RUNNING and s.model_name is not None, 60)
    try:
        while not stop.wait(1.0):
            s = engine.status
            print(json.dumps({"t": time.monotonic(), "state": s.state.value, "model": s.model_name, "latency_ms": s.latency_ms,
                              "rate": s.sample_rate, "dry_frames": s.dry_frames, "resyncs": s.resyncs,
                              "xruns": s.xruns, "output_xruns": s.output_xruns,
                              "realignments": s.realignments, "extra_latency_ms": s.extra_latency_ms,
                              "margin_changes": s.margin_changes, "drift_trims": s.drift_trims}), flush=True)
    finally:
        engine.close()
    return 0


# ------------------------------------------------------------------ measuring (parent)
def _noise(frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(frames)
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(frames, 1 / RATE) > 12000] = 0
    x = np.fft.irfft(spectrum, frames)
    return (0.2 * x / x.std()).astype(np.float32)


def _lag(reference: np.ndarray, recording: np.ndarray) -> int:
    size = 1 << int(np.ceil(np.log2(len(reference) + len(recording))))
    cross = np.fft.irfft(np.fft.rfft(recording, size) * np.conj(np.fft.rfft(reference, size)), size)
    return int(np.argmax(cross[:len(recording)]))


def probe_round_trip(sd, input_device: str, bursts: int = 8) -> list[float]:
    """Plays `bursts` noise bursts into `cable` and records input_device; lag of each in ms."""
    burst = _noise(int(0.1 * RATE), seed=11)
    period = int(0.6 * RATE)
    signal_out = np.zeros(period * bursts + RATE, np.float32)
    for k in range(bursts):
        signal_out[k * period:k * period + len(burst)] = burst
    recorded = np.zeros_like(signal_out)
    position = [0]

    def callback(indata, outdata, frames, time_info, status):
        p = position[0]
        n = max(0, min(frames, len(signal_out) - p))
        outdata[:n, 0] = outdata[:n, 1] = signal_out[p:p + n]
        outdata[n:] = 0
        recorded[p:p + n] = indata[:n, 0]
        position[0] = p + frames
        if n < frames:
            raise sd.CallbackStop

    with sd.Stream(device=(input_device, "cable"), samplerate=RATE, channels=2, dtype="float32",
                   latency=0.1, callback=callback) as stream:
        while stream.active:
            time.sleep(0.05)
    lags = []
    for k in range(bursts):
        segment = recorded[k * period:(k + 1) * period]
        lag = _lag(burst, segment)
        found = segment[lag:lag + len(burst)]
        if len(found) == len(burst):
            corr = _correlation(found, burst)
            if corr > 0.9:  # a burst that arrived whole (a slip or a gap in the probe is skipped)
                lags.append(1000.0 * lag / RATE)
    return lags or [float("nan")]


def long_run(sd, seconds: float) -> dict[str, np.ndarray]:
    """Plays the noise loop into `cable` for `seconds`, recording speakers_monitor and cable_monitor."""
    loop = _noise(int(LOOP_S * RATE), seed=12)
    frames = int(seconds * RATE)
    recordings = {name: np.zeros(frames + RATE, np.float32) for name in ("speakers_monitor", "cable_monitor")}
    positions = {"out": 0, "speakers_monitor": 0, "cable_monitor": 0}
    flagged: dict[str, list[int]] = {name: [] for name in positions}  # positions of over/underflows

    def play(outdata, n, time_info, status):
        p = positions["out"]
        if status:
            flagged["out"].append(p)
        index = (p + np.arange(n)) % len(loop)
        outdata[:, 0] = outdata[:, 1] = loop[index]
        positions["out"] = p + n

    def recorder(name):
        def callback(indata, n, time_info, status):
            p = positions[name]
            if status:
                flagged[name].append(p)
            take = max(0, min(n, len(recordings[name]) - p))
            recordings[name][p:p + take] = indata[:take, 0]
            positions[name] = p + n
        return callback

    streams = [sd.InputStream(device=name, samplerate=RATE, channels=2, dtype="float32", latency=0.1,
                              callback=recorder(name)) for name in recordings]
    streams.append(sd.OutputStream(device="cable", samplerate=RATE, channels=2, dtype="float32", latency=0.1,
                                   callback=play))
    for stream in streams:
        stream.start()
    time.sleep(seconds)
    for stream in streams:
        stream.stop()
        stream.close()
    return {"loop": loop, **{name: rec[:min(positions[name], len(rec))] for name, rec in recordings.items()},
            "flagged": {name: np.array(found, dtype=np.float64) / RATE for name, found in flagged.items()}}


def discontinuities(loop: np.ndarray, recording: np.ndarray, start_s: float = 1.0,
                    end_s: float | None = None, shifts: dict[float, int] | None = None,
                    splice_within: int = 0, kinds: dict[float, str] | None = None,
                    phases: dict[float, float] | None = None) -> list[float]:
    """Times (s) where the recording stops following the loop: a 100 ms window that matches it
    at no lag near the previous one (a gap, garbage), or matches at another lag (a slip: frames
    lost or repeated). Followed window by window, so one slip counts once, not for ever after.
    Lags are followed to a fraction of a frame: the engine runs at the model's 44.1 kHz between
    48 kHz devices, so a move of whole frames there is a fractional one here, and white noise
    compared at the nearest whole lag then correlates ~0.9 where it is intact.
    shifts: filled with each slip's size in frames (> 0: frames lost), by its time.
    splice_within: a window that matches neither lag is still one slip (not a gap as well) when
    the next window matches at a lag at most this far away and the window is the old lag up to
    some frame and the new one after it, but for SPLICE_S around that frame (a crossfade).
    kinds: filled with what each event was ("silence", "slip +5.4", "corr 0.42 at +0.0"), by its time.
    phases: filled with the loop's lag in the recording (frames) at each window that follows it."""
    window = int(WINDOW_S * RATE)
    search = SEARCH_FRAMES
    events: list[float] = []
    first = int(start_s * RATE)
    last = len(recording) - window if end_s is None else min(len(recording) - window, int(end_s * RATE))
    doubled = np.concatenate([loop, loop, loop])
    head = recording[first:first + RATE]  # one second: found in the loop before anything moves it
    phase = float((first - _lag(head, doubled[:2 * len(loop)])) % len(loop))  # rec[t] = loop[t - phase]

    def match_at(start: int) -> tuple[float, float, np.ndarray, float]:
        """(lag change, correlation, reference, expected offset) of the window at `start`."""
        base = int(np.floor(start - phase - search))
        expected = start - phase - base  # where the window should sit in the reference if nothing slipped
        reference = doubled[base % len(loop) + len(loop):][:window + 2 * search + 1]
        offset, corr = _best_match(recording[start:start + window], reference)
        return offset - expected, corr, reference, expected

    def followed(start: int) -> None:
        if phases is not None:
            phases[start / RATE] = phase

    def note(start: int, text: str) -> None:
        events.append(start / RATE)
        if kinds is not None:
            kinds[start / RATE] = text

    if first < last:  # the whole lag found above, refined to a fraction of a frame
        change, corr, _, _ = match_at(first)
        if corr >= 0.9 and abs(change) <= 1.5:
            phase -= change
    starts = list(range(first, last, window))
    spliced = None  # the window whose slip was already counted with the splice before it
    holes: set[int] = set()  # windows that follow the loop but hold a short silence
    for index, start in enumerate(starts):
        piece = recording[start:start + window]
        if not piece.any():
            note(start, "silence")
            continue
        change, corr, reference, expected = match_at(start)
        if start == spliced or (corr >= 0.9 and abs(change) < SLIP_MIN):
            phase -= change  # a fraction of a frame: the resamplers' own wander, followed
            followed(start)
            hole = _silent_hole(piece)
            if hole:  # a short gap (an underrun of a few ms) barely lowers the window's correlation
                note(start, f"silence of {1000 * hole / RATE:.1f} ms")
                holes.add(start)
            continue
        if corr < 0.9 and splice_within and index + 1 < len(starts):
            new_change, new_corr, _, _ = match_at(starts[index + 1])
            if (new_corr >= 0.9 and SLIP_MIN <= abs(new_change) <= splice_within
                    and _is_splice(piece, _at(reference, expected, window), _at(reference, expected + new_change, window))):
                change, corr, spliced = new_change, 1.0, starts[index + 1]
        if corr < 0.9:
            # Matched nowhere near: a slip larger than the search (a resync, a long stall) or
            # garbage. Found anywhere in the loop, it is one slip; else a gap, and looked for again.
            found = float((start - _lag(piece, doubled[:2 * len(loop)])) % len(loop))
            jump = _around_zero(phase - found, len(loop))  # the frames lost (> 0)
            phase, kept = found, phase
            refined, found_corr, _, _ = match_at(start)
            if found_corr >= 0.9:
                phase -= refined
                followed(start)
                if events and round(events[-1] * RATE) == start - window:  # the window before held the cut
                    if kinds is not None:
                        kinds[events[-1]] += f", then slip {jump + refined:+.1f}"
                else:
                    note(start, f"slip {jump + refined:+.1f}")
                continue
            phase = kept
            note(start, f"corr {corr:.2f} at {change:+.1f}")
        else:
            if start - window in holes:
                # The window before held a short silence and this one follows the loop at a new
                # lag: the silence delayed what came after it (an underrun), one event.
                if kinds is not None:
                    kinds[events[-1]] += f", then slip {change:+.1f}"
            else:
                note(start, f"slip {change:+.1f}")
                if shifts is not None:
                    shifts[start / RATE] = round(change)
            phase -= change
            followed(start)
    return events


def latency_followed(cable: dict[float, float], speakers: dict[float, float], start_s: float, end_s: float,
                     loop_frames: int) -> list[tuple[float, float]]:
    """(time, ms): the engine's end-to-end latency through the run, from the loop's lag in the
    recording after the engine less its lag before it (windows both recordings follow), anchored
    at `start_s` and `end_s` seconds, the latency the probe's bursts measured before and after the
    run. The two recordings start at moments a few ms apart (the first anchor removes that) and
    run on two sinks' clocks, ~41 ppm apart on this machine's null sinks: their lags part by ~2.5 ms
    a minute, a line through the two anchors takes that out."""
    times = sorted(set(cable) & set(speakers))
    if len(times) < 40:
        return []
    difference = np.array([speakers[t] - cable[t] for t in times])
    change = 1000.0 * _around_zero(difference - difference[0], loop_frames) / RATE
    clocks = np.median(change[-20:]) - 1000.0 * (end_s - start_s)  # ms the two clocks parted by the end
    span = np.array(times) - times[0]
    change -= clocks * span / span[-1]
    return [(t, 1000.0 * start_s + ms) for t, ms in zip(times, change)]


def _around_zero(frames, loop_frames: int):
    """A difference of lags in the loop (frames), taken within half a loop of zero."""
    return (frames + loop_frames / 2) % loop_frames - loop_frames / 2


SLIP_MIN = 0.75  # frames: a lag that moves by less is the same lag
SEARCH_FRAMES = int(0.05 * RATE)  # how far from the last lag each window is looked for
SPLICE_S = 0.02  # a splice's crossfade (the engine's is 5 ms), with room for the resamplers' ringing
_REFINE = np.linspace(-1.0, 1.0, 41)  # fractions of a frame around the best whole lag


def _best_match(piece: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(offset, correlation): reference[offset + i] ~ piece[i] best, offset in frames to a
    twentieth, between 0 and len(reference) - len(piece); the correlation at that offset
    (the band-limited cross-correlation, normalised)."""
    window = len(piece)
    size = 1 << int(np.ceil(np.log2(len(reference) + window)))
    spectrum = np.fft.rfft(reference, size) * np.conj(np.fft.rfft(piece, size))
    cross = np.fft.irfft(spectrum, size)
    whole = int(np.argmax(cross[:len(reference) - window + 1]))
    at_whole = spectrum * np.exp(2j * np.pi * whole * np.arange(len(spectrum)) / size)
    values = (_refine_table(size) * at_whole).real.sum(axis=1)  # the cross-correlation at whole + _REFINE
    best = int(np.argmax(values))
    offset = float(np.clip(whole + _REFINE[best], 0.0, len(reference) - window))
    found = _at(reference, offset, window)
    norm = np.sqrt((piece ** 2).sum() * (found ** 2).sum()) + 1e-20
    return offset, float(values[best] / norm)


@functools.lru_cache(maxsize=4)
def _refine_table(size: int) -> np.ndarray:
    """The inverse real DFT's terms (of a spectrum of `size` points) for each lag of _REFINE: one
    table for every window, the whole lag applied to the spectrum."""
    bins = np.arange(size // 2 + 1)
    weights = np.full(len(bins), 2.0)
    weights[0] = weights[-1] = 1.0
    return np.exp(2j * np.pi * np.outer(_REFINE, bins) / size) * weights / size


def _at(reference: np.ndarray, offset: float, window: int) -> np.ndarray:
    """reference[offset : offset + window] for a fractional offset (band-limited interpolation)."""
    whole = int(np.floor(offset))
    fraction = offset - whole
    if fraction == 0.0:
        return reference[whole:whole + window]
    size = 1 << int(np.ceil(np.log2(len(reference) + 1)))
    spectrum = np.fft.rfft(reference, size) * np.exp(2j * np.pi * np.arange(size // 2 + 1) * fraction / size)
    return np.fft.irfft(spectrum, size)[whole:whole + window]


def _is_splice(piece: np.ndarray, old: np.ndarray, new: np.ndarray) -> bool:
    """piece follows `old` up to some frame and `new` after it, but for SPLICE_S around that frame."""
    old_error = np.cumsum((piece - old) ** 2)
    new_error = np.cumsum(((piece - new) ** 2)[::-1])[::-1]
    split = int(np.argmin(old_error + new_error))
    joined = np.concatenate([old[:split], new[split:]])
    keep = np.ones(len(piece), bool)
    keep[max(0, split - int(SPLICE_S * RATE / 2)):split + int(SPLICE_S * RATE / 2)] = False
    if keep.sum() < len(piece) // 2:
        return False
    return _correlation(piece[keep], joined[keep]) >= 0.9


HOLE_S = 0.0025  # the silence a window may hold unnoticed: less than this


def _silent_hole(piece: np.ndarray) -> int:
    """Frames of a run of silence in `piece` (the noise loop, which is never silent) if it holds one
    of HOLE_S or longer, else 0: a short underrun lowers a 100 ms window's correlation too little
    to be seen (6 ms of silence: 0.97). Silence: 20 dB or more below the window's median level in
    every 1 ms of it (a crossfade of two noises never comes near that)."""
    chunk = RATE // 1000
    energy = (piece[:len(piece) // chunk * chunk].reshape(-1, chunk) ** 2).mean(axis=1)
    quiet = energy < 0.01 * np.median(energy)
    longest = run = 0
    for value in quiet:
        run = run + 1 if value else 0
        longest = max(longest, run)
    return longest * chunk if longest * chunk >= HOLE_S * RATE else 0


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.sqrt((a ** 2).sum() * (b ** 2).sum() + 1e-20))


LOAD_SCRIPTS = {
    "busy": "while True: pass",
    "blas": ("import numpy as np\n"
             "a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)\n"
             "while True: a @ a"),
    "memory": ("import numpy as np\n"
               "while True:\n"
               "    block = np.ones(512 * 2**20 // 8)\n"
               "    block *= 2.0\n"
               "    del block"),
    "disk": ("import os, sys\n"
             "data = os.urandom(64 * 2**20)\n"
             "path = os.path.join(sys.argv[1], 'churn')\n"
             "while True:\n"
             "    with open(path, 'wb') as f:\n"
             "        f.write(data); f.flush(); os.fsync(f.fileno())\n"
             "    os.remove(path)"),
    # The engine's whole process held off the CPU for 70 ms every 4 s (longer than its 45 ms output
    # buffer): the output underruns the mixed load causes now and then, made repeatable.
    "stall": ("import os, signal, sys, time\n"
              "pid = int(sys.argv[2])\n"
              "while True:\n"
              "    time.sleep(4.0)\n"
              "    os.kill(pid, signal.SIGSTOP)\n"
              "    time.sleep(0.07)\n"
              "    os.kill(pid, signal.SIGCONT)"),
}
LOADS = {"cpu": ["busy", "busy"], "blas": ["blas"], "mixed": ["busy", "memory", "disk"],
         "memory": ["memory"], "disk": ["disk"], "stall": ["stall"]}


def _counted_near(states: list[dict], when: float, key: str, seconds: float) -> bool:
    """The engine's counter `key` rose within `seconds` of the monotonic time `when` (its status
    lines come once a second)."""
    near = [line[key] for line in states if abs(line["t"] - when) <= seconds and key in line]
    return len(near) > 1 and near[-1] > near[0]


def start_load(kind: str, folder: str, engine_pid: int) -> list[subprocess.Popen]:
    """The load's processes, at this script's priority (run it at nice 0, as the user's apps run);
    `folder` for the disk churn's file, `engine_pid` for the stalls."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    return [subprocess.Popen([sys.executable, "-c", LOAD_SCRIPTS[part], folder, str(engine_pid)], env=env)
            for part in LOADS[kind]]


def stop_load(processes: list[subprocess.Popen], engine_pid: int) -> None:
    for process in processes:
        process.kill()
    for process in processes:
        process.wait(10)
    try:
        os.kill(engine_pid, signal.SIGCONT)  # a stall killed between its stop and its continue
    except ProcessLookupError:
        pass


def proc_figures(pid: int) -> tuple[float, float, int, int]:
    """(CPU seconds, CPU seconds of the children it waited for (pactl calls), RSS kB, peak RSS kB)
    of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu, children = (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return cpu, children, int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0])


def _desktop_running(server: str) -> bool:
    """A desktop with the test sinks answers, on the sound server asked for."""
    try:
        sinks = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True, timeout=5).stdout
        info = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    names = {line.split()[1] for line in sinks.splitlines() if line.strip()}
    return {"cable", "speakers"} <= names and ("PipeWire" in info) == (server == "pipewire")


@contextlib.contextmanager
def headless_desktop(server: str, prefix: str = "whamsah-bench-"):
    """The desktop's sinks on `server`: the one running when it answers, else one started here with
    tests/desktop_env.sh (its variables put into os.environ) and stopped on leaving."""
    if _desktop_running(server):
        yield
        return
    started_dir = Path(tempfile.mkdtemp(prefix=prefix))
    for name in ("DISPLAY", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "XDG_CONFIG_HOME"):
        os.environ.pop(name, None)  # a desktop of the other server: not ours to use
    env = {**os.environ, "WHAMSAH_ENV_DIR": str(started_dir / "desk"), "WHAMSAH_SOUND_SERVER": server}
    try:
        subprocess.run(["bash", str(REPO / "tests" / "desktop_env.sh"), "up"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        os.environ.update(dict(line.split("=", 1) for line in (started_dir / "desk" / "env").read_text().splitlines()
                               if "=" in line))
        yield
    finally:
        subprocess.run(["bash", str(REPO / "tests" / "desktop_env.sh"), "down"],
                       env={**os.environ, "WHAMSAH_ENV_DIR": str(started_dir / "desk")}, check=False)
        shutil.rmtree(started_dir, ignore_errors=True)


def parent(args: argparse.Namespace) -> int:
    with headless_desktop(args.server):
        return _measure(args)


def _measure(args: argparse.Namespace) -> int:
    import sounddevice as sd

    sd._terminate()
    sd._initialize()
    after_minutes = args.after_minutes if args.load else 0.0
    scratch = tempfile.mkdtemp(prefix="whamsah-bench-load-")
    try:
        return _measure_with(args, sd, after_minutes, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _measure_with(args: argparse.Namespace, sd, after_minutes: float, scratch: str) -> int:
    from whamsah_tray.engine.callback import TRIM_MAX

    load_text = f"under --load {args.load} then {after_minutes:g} min without" if args.load else "no load"
    print(f"bench_engine: {args.server}; {args.minutes:g} min run, {load_text}; PortAudio latency input {args.input_latency} s, output "
          f"{args.output_latency} s, margin {args.margin} s, "
          f"blocksize {args.blocksize}; machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    baseline = probe_round_trip(sd, "cable_monitor")
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--input-latency", str(args.input_latency),
               "--output-latency", str(args.output_latency),
               "--margin", str(args.margin), "--blocksize", str(args.blocksize)]
    engine = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=str(REPO))
    lines: list[dict] = []

    def read_lines() -> None:
        for line in engine.stdout:
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                pass

    reader = threading.Thread(target=read_lines, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while not any(line.get("state") == "running" for line in lines):
            if time.monotonic() > deadline or engine.poll() is not None:
                print("bench_engine: the engine did not start", lines)
                return 1
            time.sleep(0.2)
        time.sleep(1.0)
        through = probe_round_trip(sd, "speakers_monitor")
        cpu0, children0, _, _ = proc_figures(engine.pid)
        wall0 = time.monotonic()
        load: list[subprocess.Popen] = []
        if args.load:
            load = start_load(args.load, scratch, engine.pid)
            stopper = threading.Timer(args.minutes * 60, stop_load, (load, engine.pid))
            stopper.daemon = True
            stopper.start()
        recorded = long_run(sd, (args.minutes + after_minutes) * 60)
        cpu1, children1, rss, peak = proc_figures(engine.pid)
        wall1 = time.monotonic()
        final_trip = probe_round_trip(sd, "speakers_monitor")
    finally:
        if load:
            stop_load(load, engine.pid)
        engine.send_signal(signal.SIGTERM)
        engine.wait(30)
    reader.join(2)
    for name in ("cable_monitor", "speakers_monitor"):
        if len(recorded[name]) < (SETTLE_S + LOOP_S + 3) * RATE:
            print(f"bench_engine: the probe recorded only {len(recorded[name]) / RATE:.1f} s from {name}")
            return 1
    if args.keep:
        np.savez(args.keep, loop=recorded["loop"], cable_monitor=recorded["cable_monitor"],
                 speakers_monitor=recorded["speakers_monitor"])
    notes = [line["note"] for line in lines if "note" in line]
    states = [line for line in lines if "state" in line]  # the child's status lines, one a second
    final = states[-1]
    at_start = [line for line in states if line["t"] <= wall0 + SETTLE_S][-1]
    cable_phases: dict[float, float] = {}
    speakers_phases: dict[float, float] = {}
    before = np.array(discontinuities(recorded["loop"], recorded["cable_monitor"], SETTLE_S, phases=cable_phases))
    trim_max = int(TRIM_MAX * RATE / final["rate"]) + 1  # the engine's trims at its rate, in frames at RATE
    shifts: dict[float, int] = {}
    kinds: dict[float, str] = {}
    after = discontinuities(recorded["loop"], recorded["speakers_monitor"], SETTLE_S, shifts=shifts,
                            splice_within=SEARCH_FRAMES, kinds=kinds, phases=speakers_phases)
    settling = discontinuities(recorded["loop"], recorded["speakers_monitor"], 1.0, SETTLE_S)
    # The two recordings start at slightly different moments; an event after the engine whose
    # cause is already in the probe's own playback (seen before the engine) is not the engine's.
    latency_s = (np.median(through) - np.median(baseline)) / 1000.0
    end_latency_s = (np.median(final_trip) - np.median(baseline)) / 1000.0
    followed = latency_followed(cable_phases, speakers_phases, latency_s, end_latency_s, len(recorded["loop"]))
    engine_events = [t for t in after if not np.any(np.abs(before - t) < 0.5 + latency_s)]
    # The probe is an ordinary process beside the load: its own recorder of the speakers may
    # overflow (PortAudio flags it) and slip, which is no fault of the engine's.
    probe_flags = recorded["flagged"]
    own_slips = probe_flags["speakers_monitor"]
    probe_events = [t for t in engine_events if np.any(np.abs(own_slips - t) < 0.2)]
    engine_events = [t for t in engine_events if t not in probe_events]
    # A drift trim (callback.py, "Drift") skips or repeats a few frames, crossfaded: no dropout,
    # but a slip to this follower. A slip of at most TRIM_MAX frames within 2 s of a trim the
    # engine counted is that trim; every other slip, small or not, stays a dropout.
    trims = [t for t in engine_events if t in shifts and abs(shifts[t]) <= trim_max
             and _counted_near(states, wall0 + t - latency_s, "drift_trims", 2.0)]
    engine_events = [t for t in engine_events if t not in trims]
    for note in notes:
        print(f"note: {note}")
    print(f"model: {final['model']} at {final['rate']} Hz")
    print(f"probe round trip without engine: median {np.median(baseline):.1f} ms (min {min(baseline):.1f}, "
          f"max {max(baseline):.1f}, {len(baseline)} bursts)")
    print(f"probe round trip through engine: median {np.median(through):.1f} ms (min {min(through):.1f}, "
          f"max {max(through):.1f}, {len(through)} bursts)")
    print(f"end-to-end latency of the engine (cable -> speakers): {1000 * latency_s:.1f} ms "
          f"(engine's own estimate {final['latency_ms']:.1f} ms)")
    if followed:
        values = [ms for _, ms in followed]
        print(f"end to end through the run, followed from the loop (anchored at the bursts' figures before "
              f"and after it): median {np.median(values):.1f} ms, min {min(values):.1f}, max {max(values):.1f}")
    print(f"engine CPU: {100 * (cpu1 - cpu0) / (wall1 - wall0):.1f} % of one core over {wall1 - wall0:.0f} s, "
          f"plus {100 * (children1 - children0) / (wall1 - wall0):.1f} % in the pactl calls it made")
    print(f"engine RSS: {rss / 1024:.0f} MB (peak {peak / 1024:.0f} MB)")
    if args.load:
        load_end = args.minutes * 60
        during_load = [t for t in engine_events if t < load_end]
        print(f"under --load {args.load}: {len(during_load)} dropout windows caused by the engine in "
              f"{args.minutes:g} min; after it ({after_minutes:g} min): {len(engine_events) - len(during_load)}")
        estimates = [(line["t"] - wall0, line["latency_ms"]) for line in states if line["t"] >= wall0]
        loaded = [ms for t, ms in estimates if SETTLE_S <= t < load_end]
        if loaded:
            print(f"  latency (engine's estimate) under load: median {np.median(loaded):.1f} ms, "
                  f"max {max(loaded):.1f} ms")
        extra = [line["extra_latency_ms"] for line in states if line["t"] >= wall0]
        print(f"  adaptive margin: {final['margin_changes']} changes, highest +{max(extra, default=0):.0f} ms, "
              f"+{final['extra_latency_ms']:.0f} ms at the end")
        under = [ms for t, ms in followed if t < load_end]
        if under:
            print(f"  end to end under load (followed): median {np.median(under):.1f} ms, max {max(under):.1f} ms")
        # Back down: from when on every 100 ms window after the load is at or under 150 ms.
        later = [(t, ms) for t, ms in followed if t >= load_end]
        back = next((t for i, (t, _) in enumerate(later) if all(ms <= 150.0 for _, ms in later[i:])), None)
        print("  end to end back to <= 150 ms: " + (f"{back - load_end:.0f} s after the load stopped"
                                                    if back is not None else "not within the run"))
        print(f"  end-to-end latency measured at the end: {1000 * end_latency_s:.1f} ms")
    print(f"dropouts in {args.minutes + after_minutes:g} min: {len(engine_events)} caused by the engine (gaps or slips in "
          f"100 ms windows after it; {len(after)} in all, {len(before)} already in the probe's own playback), "
          f"counted from {SETTLE_S:g} s on")
    print(f"  drift trims: {final.get('drift_trims', 0)} counted by the engine ({final.get('drift_trims', 0) - at_start.get('drift_trims', 0)} "
          f"from {SETTLE_S:g} s on, {sum(shifts[t] for t in trims):+d} frames in all), {len(trims)} of them seen as "
          f"slips of <= {trim_max} frames (at {RATE} Hz) after the engine and not counted above")
    print(f"  the probe's own streams flagged over/underflows: speakers recorder {len(own_slips)}, cable recorder "
          f"{len(probe_flags['cable_monitor'])}, player {len(probe_flags['out'])}; {len(probe_events)} windows "
          f"after the engine lie within 0.2 s of the speakers recorder's and are not counted above")
    timeline = []
    for minute in range(int(np.ceil((args.minutes + after_minutes)))):
        inside = [line for line in states if minute * 60 <= line["t"] - wall0 < (minute + 1) * 60]
        measured = [ms for t, ms in followed if minute * 60 <= t < (minute + 1) * 60]
        if len(inside) > 1:
            timeline.append(f"{minute}: {np.median([line['latency_ms'] for line in inside]):.0f} ms, "
                            f"{np.median(measured) if measured else float('nan'):.0f} ms, "
                            f"dry +{inside[-1]['dry_frames'] - inside[0]['dry_frames']}")
    print("  per minute (latency: estimate, followed; frames played dry): " + "; ".join(timeline))
    print(f"  while the probe's streams joined the server (1-{SETTLE_S:g} s): {len(settling)} windows with a gap or slip")
    print(f"engine counters: dry frames {final['dry_frames']}, resyncs {final['resyncs']}, "
          f"PortAudio xruns {final['xruns']} ({final['output_xruns']} output), realignments {final['realignments']}")
    during = {key: final[key] - at_start[key] for key in ("dry_frames", "xruns", "output_xruns", "realignments")}
    print(f"  of which from {SETTLE_S:g} s into the run on: dry frames {during['dry_frames']}, PortAudio xruns "
          f"{during['xruns']} ({during['output_xruns']} output), realignments {during['realignments']}")
    if engine_events:
        print("  engine's events at (s), with what the engine counted in the 2 s around each:")
        for t in engine_events[:40]:
            now = wall0 + t
            near = [line for line in states if abs(line["t"] - now) <= 1.0]
            if near:
                first, last = near[0], near[-1]
                counted = {key: last[key] - first[key] for key in ("dry_frames", "xruns", "realignments", "drift_trims")
                           if key in last}
                print(f"    {t:6.1f} s ({kinds.get(t, '?')}): "
                      + ", ".join(f"{key} +{value}" for key, value in counted.items()))
            else:
                print(f"    {t:6.1f} s ({kinds.get(t, '?')})")
        if len(engine_events) > 40:
            print(f"    ... and {len(engine_events) - 40} more")
    return 0


def main() -> int:
    sys.path.insert(0, str(REPO))
    from whamsah_tray.engine import StreamSettings

    defaults = StreamSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the dropout run (default 10)")
    parser.add_argument("--input-latency", type=float, default=defaults.input_latency_s,
                        help=f"PortAudio latency of the engine's input stream (s, default {defaults.input_latency_s})")
    parser.add_argument("--output-latency", type=float, default=defaults.output_latency_s,
                        help=f"PortAudio latency of the engine's output stream (s, default {defaults.output_latency_s})")
    parser.add_argument("--margin", type=float, default=defaults.margin_s,
                        help=f"engine worker margin (s, default {defaults.margin_s})")
    parser.add_argument("--blocksize", type=int, default=0, help="engine callback block (frames, 0: PortAudio's)")
    parser.add_argument("--server", choices=["pulseaudio", "pipewire"], default="pulseaudio",
                        help="sound server of the desktop started when none of that kind runs (default pulseaudio)")
    parser.add_argument("--load", choices=sorted(LOADS), help="run beside this load (see above)")
    parser.add_argument("--after-minutes", type=float, default=5.0,
                        help="with --load: minutes more without it (default 5)")
    parser.add_argument("--keep", metavar="FILE.npz",
                        help="also save the loop and both recordings there (to look at a dropout)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    return child(args) if args.child else parent(args)


if __name__ == "__main__":
    sys.exit(main())
