"""Talking to the desktop's sound server (PulseAudio, or PipeWire's pulse layer) through `pactl`.

Every answer is read back from the server at the time of the call; nothing is remembered here.
Needs `pactl` 16 or newer (JSON output). Failures raise DeviceError with pactl's own message.

Runs on the controller thread (each call is a short subprocess); never on the audio thread.

Each call costs ~7 ms of CPU (mostly the pactl process), so what watches the server for changes
(a vanished device, a moved stream, an app that starts playing) does not ask it over and over:
`change_count()` counts the server's changes to sinks, sources and their streams, as one
long-running `pactl subscribe` reports them, and callers ask again only when it has moved.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from whamsah_tray.errors import DeviceError

log = logging.getLogger(__name__)

PACTL_TIMEOUT_S = 5.0
MOVE_CHECK_S = 1.0  # how long a moved stream may take to show up on its new sink before the move is asked again
MOVE_TRIES = 3
WATCH_RESTART_S = 5.0  # a `pactl subscribe` that ended (no server yet, server restarted) is started again after this


@dataclass(frozen=True)
class PulseNode:
    """A sink or source of the sound server."""

    index: int
    name: str
    description: str
    owner_module: int | None = None


@dataclass(frozen=True)
class PulseStream:
    """A sink input (an app playing) or a source output (an app recording)."""

    index: int
    device_index: int  # the sink (for sink inputs) or source (for source outputs) it is attached to
    properties: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def app_name(self) -> str:
        return self.properties.get("application.name", "") or self.properties.get(
            "application.process.binary", "unknown")

    @property
    def icon_name(self) -> str:
        return self.properties.get("application.icon_name", "")

    @property
    def media_title(self) -> str:
        return self.properties.get("media.title", "") or self.properties.get("media.name", "")


def available() -> bool:
    """True when pactl exists and a sound server answers."""
    if shutil.which("pactl") is None:
        return False
    try:
        _run("info")
    except DeviceError:
        return False
    return True


def _run(*args: str) -> str:
    try:
        done = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=PACTL_TIMEOUT_S)
    except FileNotFoundError as error:
        raise DeviceError("pactl is not installed (package pulseaudio-utils)") from error
    except subprocess.TimeoutExpired as error:
        raise DeviceError(f"the sound server did not answer 'pactl {args[0]}' in {PACTL_TIMEOUT_S:.0f} s") from error
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise DeviceError(f"pactl {' '.join(args)}: {message[-1] if message else 'failed'}")
    return done.stdout


def _json(*args: str):
    text = _run("--format=json", *args)
    try:
        return json.loads(text) if text.strip() else []
    except json.JSONDecodeError as error:
        raise DeviceError(f"pactl {' '.join(args)}: unreadable answer (pactl 16 or newer needed)") from error


def _node(entry: dict) -> PulseNode:
    owner = entry.get("owner_module")
    return PulseNode(
        index=int(entry["index"]),
        name=str(entry["name"]),
        description=str(entry.get("description") or entry["name"]),
        owner_module=int(owner) if str(owner).isdigit() else None,
    )


def sinks() -> list[PulseNode]:
    return [_node(entry) for entry in _json("list", "sinks")]


def sources() -> list[PulseNode]:
    return [_node(entry) for entry in _json("list", "sources")]


def sink_inputs() -> list[PulseStream]:
    return [PulseStream(int(e["index"]), int(e["sink"]), dict(e.get("properties") or {}))
            for e in _json("list", "sink-inputs")]


def source_outputs() -> list[PulseStream]:
    return [PulseStream(int(e["index"]), int(e["source"]), dict(e.get("properties") or {}))
            for e in _json("list", "source-outputs")]


def default_sink() -> str:
    return str(_json("info").get("default_sink_name") or "")


def default_source() -> str:
    return str(_json("info").get("default_source_name") or "")


def set_default_sink(name: str) -> None:
    _run("set-default-sink", name)


def load_module(name: str, *arguments: str) -> int:
    return int(_run("load-module", name, *arguments).strip())


def unload_module(index: int) -> None:
    _run("unload-module", str(index))


def move_sink_input(stream_index: int, sink_name: str) -> None:
    """Moves an app's stream to the sink and returns once the server says it plays there.

    PipeWire's pulse layer answers a move at once and leaves it to WirePlumber, which now and then
    drops it (WirePlumber 0.4 on Debian 12: about one move in four right after a new sink and the
    engine's own streams appeared; the stream stayed where it was for good). So the move is read
    back and asked again, up to MOVE_TRIES times. A stream that ends meanwhile is not an error."""
    sink_index = next((sink.index for sink in sinks() if sink.name == sink_name), None)
    if sink_index is None:
        raise DeviceError(f"there is no sink '{sink_name}' to move stream #{stream_index} to")
    for attempt in range(MOVE_TRIES):
        if attempt:
            log.info("the sound server dropped the move of stream #%d to '%s': asking again", stream_index, sink_name)
        _run("move-sink-input", str(stream_index), sink_name)
        deadline = time.monotonic() + MOVE_CHECK_S
        while True:
            stream = next((s for s in sink_inputs() if s.index == stream_index), None)
            if stream is None or stream.device_index == sink_index:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    raise DeviceError(f"the sound server did not move stream #{stream_index} to '{sink_name}'")


class ServerWatch:
    """One `pactl subscribe` and the thread reading it: `changes` counts the events on sinks,
    sources, sink inputs, source outputs and the server (not those on clients and modules, which
    every pactl call makes)."""

    def __init__(self) -> None:
        self.changes = 0  # written by the reader thread only
        self.server = _server_address()
        self._process = subprocess.Popen(["pactl", "subscribe"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, name="whamsah-pactl-subscribe", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._process.stdout:
            if " on sink" in line or " on source" in line or " on server" in line:
                self.changes += 1
            if " on sink-input" in line:  # an app started, stopped or moved its stream
                index = _event_index(line)
                for listener in list(_stream_listeners):
                    try:
                        listener(index)
                    except Exception:  # a listener's bug must not end the watch
                        pass

    @property
    def alive(self) -> bool:
        return self._reader.is_alive()

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._process.kill()


_watch: ServerWatch | None = None
_stream_listeners: list[Callable[[int | None], None]] = []


def _event_index(line: str) -> int | None:
    """The stream's index in a `pactl subscribe` line ("Event 'new' on sink-input #42")."""
    _, _, number = line.rpartition("#")
    return int(number) if number.strip().isdigit() else None


def on_streams_changed(listener: Callable[[int | None], None]) -> Callable[[], None]:
    """listener(index) is called (on the watch's reader thread; it must return at once) whenever a
    playback stream (sink input `index`) appears, goes or changes, while the watch runs (see
    change_count, which starts it). Returns a function that removes the listener."""
    _stream_listeners.append(listener)

    def remove() -> None:
        if listener in _stream_listeners:
            _stream_listeners.remove(listener)
    return remove
_watch_lock = threading.Lock()
_watch_started = 0.0  # time.monotonic() when _watch was started
_watch_epoch = 0  # added to the count, so that a restarted watch never repeats an earlier count


def change_count() -> int | None:
    """A number that grows whenever the sound server's sinks, sources or streams change; None
    when no watch runs (no pactl, no server answering): then ask the server every time. Starts
    the watch at the first call (any thread)."""
    global _watch, _watch_started, _watch_epoch
    with _watch_lock:
        same_server = _watch is not None and _watch.server == _server_address()
        if same_server and _watch.alive:
            return _watch_epoch + _watch.changes
        # a watch that ended is started again after a while; one on another server at once
        if (same_server and time.monotonic() - _watch_started < WATCH_RESTART_S) or shutil.which("pactl") is None:
            return None
        if _watch is not None:
            _watch_epoch += _watch.changes + 1
            _watch.close()
        _watch_started = time.monotonic()
        try:
            _watch = ServerWatch()
        except OSError:
            _watch = None
            return None
        time.sleep(0.05)  # pactl exits at once when no server answers: do not report a dead watch as alive
        return _watch_epoch + _watch.changes if _watch.alive else None


class ServerLook:
    """When something read from the sound server is worth reading again: the server reported a
    change since the last reading (change_count), it cannot report changes, or `max_age_s`
    passed. `due()` counts from its own moment, so a change during the reading is seen next time;
    `done()` records a reading (call it after one that worked)."""

    def __init__(self, max_age_s: float, count=None) -> None:
        """count: what gives the change count (default change_count)."""
        self.max_age_s = max_age_s
        self._count = count or change_count
        self._asked: tuple[int | None, float] | None = None   # (count, time) at the last due()
        self._read: tuple[int | None, float] | None = None    # the same, of the last reading

    def due(self, force: bool = False) -> bool:
        self._asked = count, now = self._count(), time.monotonic()
        read = self._read
        return force or count is None or read is None or count != read[0] or now - read[1] >= self.max_age_s

    def done(self) -> None:
        self._read = self._asked


def _server_address() -> tuple[str | None, str | None]:
    """What pactl connects to: $PULSE_SERVER, else the socket under $XDG_RUNTIME_DIR."""
    return os.environ.get("PULSE_SERVER"), os.environ.get("XDG_RUNTIME_DIR")


@atexit.register
def _stop_watch() -> None:
    if _watch is not None:
        _watch.close()
