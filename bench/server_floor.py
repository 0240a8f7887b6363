"""How deep an output buffer this machine needs under a load, whoever the client: the floor.

    python bench/server_floor.py --load mixed --minutes 2 --buffers 45,90,120,150

For each output buffer (ms), two reference clients play a steady tone to the "speakers" sink at
once, beside the load, both at the engine's nice level (-10):
- `pacat`, PulseAudio's own C client (libpulse; `--latency-msec`), which reports each underrun
  the server tells it of ("Stream underrun.");
- a PortAudio output stream through the ALSA `pulse` plugin, the engine's own path, whose Python
  callback only copies a tone (sounddevice; `latency=`): the underflows PortAudio flags.
Neither separates anything: what underruns here is the machine and the sound server's path, not
the engine. On PipeWire (pipewire-pulse) the PortAudio stream is never told of an underrun and
the server lists no latencies: there pacat's count is the figure. Prints, per buffer and client,
what the server reports as the stream's latency (`pactl list sink-inputs`: buffer + sink), the
underruns while the load ran and that rate per 10 minutes. Prints figures; asserts nothing. Needs what bench_engine.py needs (it starts the same
headless desktop when none answers) and `sox` for the tone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

import bench_engine

from whamsah_tray.engine.realtime import ENGINE_NICE

RATE = 48000
SETTLE_S = 3.0  # both streams running before the load starts
PACAT_NAME = "whamsah-floor-pacat"
PACAT_UNDERRUN = "Stream underrun."


def portaudio_child(buffer_ms: float, seconds: float) -> int:
    """A PortAudio stream that copies a tone for `seconds`; prints the monotonic times of the
    callbacks flagged with an output underflow, as JSON."""
    import numpy as np
    import sounddevice as sd

    os.setpriority(os.PRIO_PROCESS, 0, ENGINE_NICE)  # the threads PortAudio starts inherit it
    # A second of a 440 Hz tone (a whole number of periods) and room for one more block past its
    # end, so that a block is always one slice and the position wraps at RATE.
    tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(RATE + 16384) / RATE)).astype(np.float32)[:, None]
    flagged = np.zeros(1 << 16)
    state = {"position": 0, "flagged": 0}

    def callback(outdata, frames, time_info, status):
        if status.output_underflow and state["flagged"] < len(flagged):
            flagged[state["flagged"]] = time.monotonic()
            state["flagged"] += 1
        start = state["position"]
        outdata[:] = tone[start:start + frames]
        state["position"] = (start + frames) % RATE

    with sd.OutputStream(device="speakers", samplerate=RATE, channels=2, dtype="float32",
                         latency=buffer_ms / 1000, callback=callback):
        time.sleep(seconds)
    print(json.dumps(flagged[: state["flagged"]].tolist()))
    return 0


def sink_input_latencies(pactl_text: str) -> dict[str, tuple[float, float]]:
    """`pactl list sink-inputs` → {application name: (buffer latency ms, sink latency ms)}."""
    found: dict[str, tuple[float, float]] = {}
    for block in re.split(r"\n(?=Sink Input #)", pactl_text):
        name = re.search(r'application\.name = "([^"]*)"', block)
        buffer = re.search(r"Buffer Latency: ([\d.]+) usec", block)
        sink = re.search(r"Sink Latency: ([\d.]+) usec", block)
        if name and buffer and sink:
            found[name.group(1)] = (float(buffer.group(1)) / 1000, float(sink.group(1)) / 1000)
    return found


def count_within(times: list[float], start: float, end: float) -> int:
    return sum(start <= when <= end for when in times)


class _LineTimes(threading.Thread):
    """The monotonic time of each line of a stream that contains `text`."""

    def __init__(self, stream, text: str) -> None:
        super().__init__(daemon=True)
        self.stream, self.text, self.times = stream, text, []

    def run(self) -> None:
        for line in self.stream:
            if self.text in line:
                self.times.append(time.monotonic())


def measure(buffer_ms: int, args: argparse.Namespace, scratch: str) -> list[tuple[str, str, int]]:
    seconds = args.minutes * 60
    tone = subprocess.Popen(["sox", "-n", "-t", "raw", "-r", str(RATE), "-c", "2", "-e", "signed", "-b", "16", "-",
                             "synth", str(seconds + 3 * SETTLE_S), "sine", "440", "vol", "0.1"],
                            stdout=subprocess.PIPE)
    pacat = subprocess.Popen(["nice", "-n", str(ENGINE_NICE), "pacat", "-v", "-p", "--device=speakers",
                              f"--latency-msec={buffer_ms}", f"--client-name={PACAT_NAME}", "--format=s16le",
                              f"--rate={RATE}", "--channels=2"],
                             stdin=tone.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tone.stdout.close()
    pacat_underruns = _LineTimes(pacat.stderr, PACAT_UNDERRUN)
    pacat_underruns.start()
    portaudio = subprocess.Popen([sys.executable, __file__, "--portaudio-child", str(buffer_ms),
                                  str(seconds + 2 * SETTLE_S)], stdout=subprocess.PIPE, text=True)
    load = []
    try:
        time.sleep(SETTLE_S)
        listing = subprocess.run(["pactl", "list", "sink-inputs"], capture_output=True, text=True).stdout
        start = time.monotonic()
        load = bench_engine.start_load(args.load, scratch, portaudio.pid) if args.load != "none" else []
        time.sleep(seconds)
        end = time.monotonic()
    finally:
        bench_engine.stop_load(load, portaudio.pid)
    flagged = json.loads(portaudio.communicate(timeout=60)[0] or "[]")
    pacat.terminate()
    tone.kill()
    pacat.wait(10)
    tone.wait(10)
    pacat_underruns.join(5)
    latencies = sink_input_latencies(listing)
    portaudio_name = next((name for name in latencies if name.startswith("ALSA plug-in")), "")

    def reported(name: str) -> str:
        if name not in latencies:
            return "not listed"
        buffer, sink = latencies[name]
        if buffer == sink == 0.0:  # pipewire-pulse lists its streams with zero latencies
            return "not reported"
        return f"{buffer:.1f} + {sink:.1f} ms"

    return [("pacat (libpulse, C)", reported(PACAT_NAME), count_within(pacat_underruns.times, start, end)),
            ("PortAudio (ALSA pulse plugin, Python callback)", reported(portaudio_name),
             count_within(flagged, start, end))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", choices=sorted(bench_engine.LOADS) + ["none"], default="mixed")
    parser.add_argument("--minutes", type=float, default=2.0, help="the load's length per buffer (default 2)")
    parser.add_argument("--buffers", default="45,90,120,150", help="output buffers to try, ms (default 45,90,120,150)")
    parser.add_argument("--server", choices=["pulseaudio", "pipewire"], default="pulseaudio")
    parser.add_argument("--portaudio-child", nargs=2, type=float, metavar=("MS", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.portaudio_child:
        return portaudio_child(*args.portaudio_child)
    buffers = [int(value) for value in args.buffers.split(",")]
    with bench_engine.headless_desktop(args.server, prefix="whamsah-floor-"):
        print(f"server_floor: {args.server}, --load {args.load}, {args.minutes:g} min per buffer; "
              f"machine: {os.cpu_count()} CPUs; clients at nice {ENGINE_NICE}")
        print("| buffer asked | client | server's buffer + sink latency | underruns | per 10 min |")
        print("|---|---|---|---|---|")
        for buffer_ms in buffers:
            scratch = tempfile.mkdtemp(prefix="whamsah-floor-load-")
            try:
                rows = measure(buffer_ms, args, scratch)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            for client, reported, count in rows:
                print(f"| {buffer_ms} ms | {client} | {reported} | {count} | {count * 10 / args.minutes:.0f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
