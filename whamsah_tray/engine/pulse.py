"""Talking to the desktop's sound server (PulseAudio, or PipeWire's pulse layer) through `pactl`.

Every answer is read back from the server at the time of the call; nothing is remembered here.
Needs `pactl` 16 or newer (JSON output). Failures raise DeviceError with pactl's own message.

Runs on the controller thread (each call is a short subprocess); never on the audio thread.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field

from whamsah_tray.errors import DeviceError

PACTL_TIMEOUT_S = 5.0


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
    _run("move-sink-input", str(stream_index), sink_name)
