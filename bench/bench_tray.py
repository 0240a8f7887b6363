"""Benchmark the tray app as the user starts it: time from launch to the icon docked in the tray,
resident memory once idle (sync mode on a silent cable), while audio plays into the cable, and
while a file plays. Prints figures; asserts nothing.

    python bench/bench_tray.py [--runs N] [--json FILE] [--server pulseaudio|pipewire]

Needs a desktop: uses the current one when DISPLAY and PulseAudio with the `cable`/`speakers` sinks
are there (e.g. after `source tests/desktop_env.sh up`), otherwise starts tests/desktop_env.sh in a
private folder and stops it at the end. The tray runs with a throw-away profile
(XDG_CONFIG_HOME in a temporary folder) whose input is the cable's monitor and output the speakers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))  # tray_driver: find the docked icon
sys.path.insert(0, str(REPO_ROOT))

import tray_driver as drive  # noqa: E402

# Issue #25's targets for the lean live process (GTK backend, median of 3 launches): figure ->
# (most allowed, in the figure's unit, and how it reads). 150 MB = 143 MiB.
TARGETS = {"idle_rss_mib": (150e6 / 2**20, "<= 150 MB"), "time_to_icon_s_median": (1.0, "<= 1 s"),
           "idle_cpu_percent": (2.0, "<= 2 % of one core")}

DESKTOP_VARIABLES = ("DISPLAY", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DBUS_SESSION_BUS_ADDRESS")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _ticks(stat: Path) -> int:
    """User + system CPU clock ticks from a /proc .../stat file (a process's or a thread's)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int) -> float:
    return _ticks(Path(f"/proc/{pid}/stat")) / os.sysconf("SC_CLK_TCK")


def thread_ticks(pid: int) -> dict[int, tuple[str, int]]:
    """{tid: (thread name, CPU clock ticks so far)} for each thread of a process."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found[int(task.name)] = ((task / "comm").read_text().strip(), _ticks(task / "stat"))
        except OSError:  # the thread ended meanwhile
            continue
    return found


def busiest_threads(before: dict, after: dict, seconds: float, count: int = 5) -> str:
    """The threads that used the most CPU between two thread_ticks() readings, as text."""
    tick = os.sysconf("SC_CLK_TCK")
    used = sorted(((ticks - before.get(tid, (name, 0))[1], tid, name) for tid, (name, ticks) in after.items()),
                  reverse=True)
    return ", ".join(f"{name}[{tid}] {100 * ticks / tick / seconds:.2f} %" for ticks, tid, name in used[:count] if ticks)


def desktop_up(workdir: Path) -> dict[str, str] | None:
    """Start tests/desktop_env.sh unless a desktop is already there; returns its env or None."""
    if all(os.environ.get(v) for v in DESKTOP_VARIABLES):
        return None
    env_dir = workdir / "desktop"
    subprocess.run(["bash", str(REPO_ROOT / "tests" / "desktop_env.sh"), "up"],
                   env={**os.environ, "WHAMSAH_ENV_DIR": str(env_dir)}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    env = dict(line.split("=", 1) for line in (env_dir / "env").read_text().splitlines() if "=" in line)
    os.environ.update(env)
    return env


def desktop_down(workdir: Path) -> None:
    subprocess.run(["bash", str(REPO_ROOT / "tests" / "desktop_env.sh"), "down"],
                   env={**os.environ, "WHAMSAH_ENV_DIR": str(workdir / "desktop")}, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def write_profile(config: Path) -> None:
    import tomli_w

    (config / "whamsah-tray").mkdir(parents=True, exist_ok=True)
    (config / "whamsah-tray" / "profile.toml").write_text(tomli_w.dumps({
        "schema_version": 1, "audio": {"input_device": "cable_monitor", "output_device": "speakers"}}))
    alsa = Path(os.environ["XDG_CONFIG_HOME"]) / "alsa" / "asoundrc"
    (config / "alsa").mkdir(exist_ok=True)
    shutil.copy(alsa, config / "alsa" / "asoundrc")


def test_tone(path: Path, seconds: float) -> Path:
    import numpy as np
    import soundfile

    t = np.arange(int(seconds * 48000)) / 48000
    tone = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 2200 * t)
    soundfile.write(path, np.stack([tone, tone], axis=1).astype("float32"), 48000)
    return path


def one_run(workdir: Path, measure_memory: bool, idle_s: float = 60.0) -> dict:
    config = workdir / "config"
    shutil.rmtree(config, ignore_errors=True)
    write_profile(config)
    env = {**os.environ, "XDG_CONFIG_HOME": str(config), "WHAMSAH_TRAY_LOG": "WARNING"}
    log = open(workdir / "tray.log", "w")
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "whamsah_tray"], env=env, cwd=REPO_ROOT,
                               stdout=log, stderr=subprocess.STDOUT)
    figures: dict = {}
    try:
        icon = drive.docked_icon(timeout=30)
        figures["time_to_icon_s"] = time.monotonic() - started if icon else None
        if not measure_memory or icon is None:
            return figures
        # Idle: sync mode on a silent cable, after the engine and model settled (and the engine
        # went idle: 2 s of silence). CPU time comes in clock ticks of 10 ms, and a 20 s window
        # moved the figure by +-0.4 % from run to run: a minute by default.
        time.sleep(8)
        cpu0, t0, threads0 = cpu_seconds(process.pid), time.monotonic(), thread_ticks(process.pid)
        time.sleep(idle_s)
        figures["idle_rss_mib"] = rss_mib(process.pid)
        elapsed = time.monotonic() - t0
        figures["idle_cpu_percent"] = 100 * (cpu_seconds(process.pid) - cpu0) / elapsed
        figures["idle_busiest_threads"] = busiest_threads(threads0, thread_ticks(process.pid), elapsed)
        # Running: audio plays into the cable and through the engine to the speakers.
        tone = test_tone(workdir / "tone.wav", 12)
        player = subprocess.Popen(["paplay", "--latency-msec=10", "-d", "cable", str(tone)])
        time.sleep(4)
        cpu0, t0 = cpu_seconds(process.pid), time.monotonic()
        time.sleep(5)
        figures["running_rss_mib"] = rss_mib(process.pid)
        figures["running_cpu_percent"] = 100 * (cpu_seconds(process.pid) - cpu0) / (time.monotonic() - t0)
        player.terminate()
        player.wait(5)
        peak = [line for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
                if line.startswith("VmHWM:")]
        figures["peak_rss_mib"] = int(peak[0].split()[1]) / 1024 if peak else None
        return figures
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        drive.wait_until(lambda: drive.docked_icon(0) is None, 5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="launches to time (memory is measured on the first)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--server", choices=["pulseaudio", "pipewire"], default="pulseaudio",
                        help="sound server of the desktop it starts (ignored on a running desktop)")
    parser.add_argument("--idle-seconds", type=float, default=60.0,
                        help="how long the idle CPU is measured (default 60)")
    args = parser.parse_args(argv)
    os.environ["WHAMSAH_SOUND_SERVER"] = args.server

    workdir = Path(tempfile.mkdtemp(prefix="whamsah-bench-tray-"))
    started_desktop = desktop_up(workdir)
    try:
        runs = [one_run(workdir, measure_memory=(i == 0), idle_s=args.idle_seconds) for i in range(args.runs)]
    finally:
        if started_desktop is not None:
            desktop_down(workdir)
    times = [r["time_to_icon_s"] for r in runs if r.get("time_to_icon_s") is not None]
    figures = {k: v for k, v in runs[0].items() if k != "time_to_icon_s"}
    if times:
        figures["time_to_icon_s_median"] = statistics.median(times)
        figures["time_to_icon_s_max"] = max(times)
        figures["time_to_icon_runs"] = len(times)
    print(f"tray bench ({args.runs} launch{'es' if args.runs != 1 else ''}, {os.cpu_count()} CPUs)")
    for key, value in figures.items():
        line = f"  {key:24s} {value:.2f}" if isinstance(value, float) else f"  {key:24s} {value}"
        if key in TARGETS and isinstance(value, float):
            most, reads = TARGETS[key]
            line += f"   target {reads}: {'met' if value <= most else 'NOT met'}"
        print(line)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
