"""Speed, memory and size of a separation model, measured the way the live engine runs it.

- Algorithmic latency: the manifest's `latency_samples` and the network's own `delay + hop` (the
  StreamingSeparator's latency), in samples and ms.
- Real-time factor (RTF) = processing time / audio time, through a StreamingSeparator fed stereo
  noise at the model's rate in the live engine's block sizes (512, 1024, 4096 frames), on one
  thread and on all cores (torch's and numpy's BLAS pools alike: separation/threads.py); each
  figure is the best of a few repeats after a warm-up (the machine's load average is reported
  beside it: a background job slows everything down).
  Beside each RTF, the longest single `process()` call: a chunked model computes a whole chunk
  in the call that completes its hop, and the engine's worker must absorb that spike.
- Live pace: one hop per call at the pace of real time (a sleep until the next hop is due), one
  thread, the CPU time of the calls / audio time. That is what the live engine's worker pays: back
  to back (the RTF) the weights stay in the CPU's caches, at live pace whatever else runs between
  two hops pushes them out (on the 2-core test machine beside a training job: 0.91 ms per hop
  instead of 0.30). Depends on the machine's state more than the RTF does.
- Peak RSS: the peak resident memory of a fresh Python process that loads the model and streams a
  few seconds through it, so the figure is the model's and not this harness's (VmHWM on Linux,
  where a child's `ru_maxrss` starts from its parent's peak; `ru_maxrss` elsewhere); beside it the
  same for a process that only imports the separation core (numpy, scipy, soxr; torch only for a
  torch model), the floor any model pays.
- Size: the weights file the model was loaded from (the .npz of a numpy-path model, else the .pt)
  in MB (10^6 bytes) and the parameter count.

`untrained=ARCH` benches a random-weight network of an architecture (for speed only; its
separation is meaningless and every report says "untrained").

Runs on the caller's thread (the CLI's main thread); starts two short-lived subprocesses.
Never imported by the app.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from whamsah_tray.engine.api import LIVE_BLOCK_SIZES
from whamsah_tray.errors import WhamsahError
from whamsah_tray.separation import StreamingSeparator, create_untrained_model, load_model
from whamsah_tray.separation.threads import compute_threads

RSS_PROBE_SECONDS = 3.0


@dataclass
class BenchResult:
    model: str
    architecture: str
    untrained: bool
    sample_rate: int
    latency_samples_manifest: int | None  # None for an untrained network (no manifest)
    latency_samples_network: int
    parameters: int
    weights_mb: float
    weights_file: str | None  # None: untrained, weights_mb is the size its state dict would have
    threads_all: int
    seconds_of_audio: float
    repeats: int
    rtf: dict[str, dict[str, float]] = field(default_factory=dict)  # threads -> block -> RTF
    max_call_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # threads -> block -> ms
    live_seconds: float = 0.0
    live_cpu_percent: float | None = None  # of one core, one hop per call at real-time pace
    live_ms_per_hop: float | None = None
    peak_rss_mb: float | None = None  # None where the OS has no getrusage (Windows)
    baseline_rss_mb: float | None = None
    load_average: float | None = None

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples_network / self.sample_rate

    def worst_rtf(self, threads: int) -> float:
        """The slowest block size's RTF: the one that must stay below 1 for live use."""
        return max(self.rtf[str(threads)].values())

    def to_json(self) -> dict[str, Any]:
        result = asdict(self)
        result["latency_ms"] = round(self.latency_ms, 2)
        result["rtf_one_thread"] = self.worst_rtf(1)
        result["rtf_all_threads"] = self.worst_rtf(self.threads_all)
        return result


def bench_model(name: str | None = None, untrained: str | None = None):
    """The installed model `name` (None: the default), or a random-weight `untrained` architecture."""
    if untrained:
        return create_untrained_model(untrained, seed=0)
    return load_model(name)


def parameter_count(network) -> int:
    """A torch network's parameter count, or a numpy path's (it keeps the figure)."""
    if hasattr(network, "parameter_count"):
        return int(network.parameter_count)
    return sum(parameter.numel() for parameter in network.parameters())


def state_dict_bytes(network) -> int:
    """The size of a torch network's saved state dict."""
    import torch

    buffer = io.BytesIO()
    torch.save(network.state_dict(), buffer)
    return buffer.tell()


def _noise(frames: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((frames, 2))).astype(np.float32)


def measure_rtf(model, block: int, threads: int, seconds: float, repeats: int) -> tuple[float, float]:
    """(RTF, longest call in s): best-of-`repeats` processing time / audio time of `seconds` of
    stereo audio fed in `block`s, and the longest single process() call of that best repeat."""
    rate = model.network.sample_rate
    n_blocks = max(1, round(seconds * rate / block))
    audio = _noise(n_blocks * block)
    separator = StreamingSeparator(model, channels=2)
    with compute_threads(threads):
        # Warm-up: at least two network runs (a chunked model runs only once per hop).
        warm_blocks = -(-max(2 * separator.hop, block) // block)
        for i in range(min(warm_blocks, n_blocks)):
            separator.process(audio[i * block:(i + 1) * block])
        best, best_longest = float("inf"), 0.0
        call_times = np.empty(n_blocks)
        for _ in range(repeats):
            separator.reset()
            for i in range(n_blocks):
                started = time.perf_counter()
                separator.process(audio[i * block:(i + 1) * block])
                call_times[i] = time.perf_counter() - started
            if call_times.sum() < best:
                best, best_longest = float(call_times.sum()), float(call_times.max())
    return best / (n_blocks * block / rate), best_longest


def measure_live_pace(model, seconds: float) -> tuple[float, float]:
    """(CPU time / audio time, ms of CPU per hop): one thread, `seconds` of stereo noise fed a hop
    per call, each call when its hop is due in real time."""
    separator = StreamingSeparator(model, channels=2)
    hop, rate = separator.hop, model.network.sample_rate
    warm = -(-separator.latency // hop) + 2
    n_hops = max(2, round(seconds * rate / hop))
    audio = _noise((warm + n_hops) * hop)
    with compute_threads(1):
        for i in range(warm):
            separator.process(audio[i * hop:(i + 1) * hop])
        cpu, started = 0.0, time.perf_counter()
        for i in range(warm, warm + n_hops):
            time.sleep(max(0.0, started + (i - warm + 1) * hop / rate - time.perf_counter()))
            before = time.thread_time()
            separator.process(audio[i * hop:(i + 1) * hop])
            cpu += time.thread_time() - before
    return cpu / (n_hops * hop / rate), 1000 * cpu / n_hops


# --- peak RSS in a fresh process ------------------------------------------------------------------
_PROBE = """
import json, sys
from whamsah_tray.benchmark import _probe
print(json.dumps(_probe(*json.loads(sys.argv[1]))))
"""


def _max_rss_mb() -> float:
    """This process's peak resident memory. On Linux the mm's own high-water mark (VmHWM): the
    kernel hands a child the parent's `ru_maxrss` across fork/exec, so getrusage in a process
    started by a big parent reports at least the parent's peak. Elsewhere ru_maxrss."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    if sys.platform == "win32":  # no `resource` module: the process's peak working set
        import ctypes
        from ctypes import wintypes

        class ProcessMemoryCounters(ctypes.Structure):
            _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD),
                        *((name, ctypes.c_size_t) for name in (
                            "PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage",
                            "QuotaPagedPoolUsage", "QuotaPeakNonPagedPoolUsage", "QuotaNonPagedPoolUsage",
                            "PagefileUsage", "PeakPagefileUsage"))]

        counters = ProcessMemoryCounters()
        counters.cb = ctypes.sizeof(counters)
        ctypes.windll.psapi.GetProcessMemoryInfo(ctypes.windll.kernel32.GetCurrentProcess(),
                                                 ctypes.byref(counters), counters.cb)
        return counters.PeakWorkingSetSize / (1024 * 1024)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB elsewhere


def _probe(name: str | None, untrained: str | None, load: bool) -> dict[str, float]:
    """In the probe process: load the model and stream a few seconds through it (or not)."""
    if load:
        model = bench_model(name, untrained)
        separator = StreamingSeparator(model, channels=2)
        frames = max(int(RSS_PROBE_SECONDS * model.network.sample_rate), 2 * separator.latency)
        audio = _noise(frames)
        for start in range(0, frames, 1024):
            separator.process(audio[start:start + 1024])
    return {"peak_rss_mb": _max_rss_mb()}


def measure_peak_rss(name: str | None, untrained: str | None, load: bool = True) -> float | None:
    """Peak RSS (MB) of a fresh process that loads and runs the model (load=False: that only
    imports the separation core). None where the OS has no getrusage."""
    if not Path("/proc/self/status").exists():
        try:
            import resource  # noqa: F401  (not on Windows)
        except ImportError:
            return None
    package_parent = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps([name, untrained, load])],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise WhamsahError(f"the memory probe process failed: {last}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def run_benchmark(name: str | None = None, untrained: str | None = None, seconds: float = 10.0,
                  repeats: int = 3, blocks: tuple[int, ...] = LIVE_BLOCK_SIZES, live_seconds: float = 5.0,
                  progress=None) -> BenchResult:
    """All the figures for one model. Raises ModelLoadingError for a missing/broken model.
    progress(message) is called before each measurement, if given."""
    say = progress or (lambda message: None)
    model = bench_model(name, untrained)
    network, info = model.network, model.info
    if untrained:
        weights_file, weights_bytes = None, state_dict_bytes(network)
    else:
        numpy_path = hasattr(network, "parameter_count")  # loaded from the manifest's numpy weights
        path = info.manifest_path.parent / (info.numpy_weights_file if numpy_path else info.weights_file)
        weights_file, weights_bytes = str(path), path.stat().st_size
    all_threads = os.cpu_count() or 1
    result = BenchResult(
        model=info.name, architecture=info.architecture, untrained=bool(untrained),
        sample_rate=network.sample_rate,
        latency_samples_manifest=None if untrained else info.latency_samples,
        latency_samples_network=network.delay + network.hop,
        parameters=parameter_count(network), weights_mb=weights_bytes / 1e6, weights_file=weights_file,
        threads_all=all_threads, seconds_of_audio=seconds, repeats=repeats,
        load_average=os.getloadavg()[0] if sys.platform != "win32" else None,
    )
    for threads in sorted({1, all_threads}):
        result.rtf[str(threads)], result.max_call_ms[str(threads)] = {}, {}
        for block in blocks:
            say(f"RTF, {threads} thread(s), blocks of {block}")
            rtf, longest = measure_rtf(model, block, threads, seconds, repeats)
            result.rtf[str(threads)][str(block)] = rtf
            result.max_call_ms[str(threads)][str(block)] = 1000 * longest
    say(f"CPU at live pace, {live_seconds:g} s in real time")
    result.live_seconds = live_seconds
    fraction, per_hop = measure_live_pace(model, live_seconds)
    result.live_cpu_percent, result.live_ms_per_hop = 100 * fraction, per_hop
    say("peak RSS (fresh processes)")
    result.peak_rss_mb = measure_peak_rss(name, untrained, load=True)
    result.baseline_rss_mb = measure_peak_rss(name, untrained, load=False)
    return result


def format_result(result: BenchResult) -> list[str]:
    label = f"{result.model} ({result.architecture})"
    if result.untrained:
        label += "  [UNTRAINED: random weights, speed figures only]"
    manifest = ("-" if result.latency_samples_manifest is None
                else f"{result.latency_samples_manifest} samples")
    lines = [
        f"model:        {label}",
        f"latency:      {result.latency_ms:.1f} ms algorithmic = {result.latency_samples_network} samples "
        f"at {result.sample_rate} Hz (network delay + hop; manifest: {manifest})",
        f"size:         {result.parameters:,} parameters, "
        + (f"weights {result.weights_mb:.2f} MB ({Path(result.weights_file).name})" if result.weights_file
           else f"state dict {result.weights_mb:.2f} MB (not installed)"),
    ]
    blocks = list(next(iter(result.rtf.values())))
    lines.append("real-time factor (processing time / audio time, best of "
                 f"{result.repeats} x {result.seconds_of_audio:g} s, stereo):")
    lines.append("    threads  " + "".join(f"{'block ' + b:>12}" for b in blocks) + f"{'worst':>10}")
    for threads, by_block in result.rtf.items():
        lines.append(f"    {threads:>7}  " + "".join(f"{value:>12.4f}" for value in by_block.values())
                     + f"{max(by_block.values()):>10.4f}")
    durations = " / ".join(f"{1000 * int(b) / result.sample_rate:.1f}" for b in blocks)
    lines.append(f"longest single process() call, ms (the blocks last {durations} ms):")
    for threads, by_block in result.max_call_ms.items():
        lines.append(f"    {threads:>7}  " + "".join(f"{value:>12.1f}" for value in by_block.values()))
    if result.live_cpu_percent is not None:
        lines.append(f"live pace:    {result.live_cpu_percent:.1f} % of one core, {result.live_ms_per_hop:.2f} ms per hop "
                     f"(one hop per call when due in real time, one thread, {result.live_seconds:g} s: "
                     "what the live engine's worker pays; caches go cold between hops)")
    if result.peak_rss_mb is None:
        lines.append("peak RSS:     not measurable on this OS")
    else:
        lines.append(f"peak RSS:     {result.peak_rss_mb:.0f} MB loading and running the model "
                     f"(a process importing only the separation core: {result.baseline_rss_mb:.0f} MB)")
    if result.load_average is not None:
        lines.append(f"machine:      {result.threads_all} cores, load average {result.load_average:.2f} "
                     f"when the benchmark started")
    return lines
