"""The engine's state enum and the events it sends to observers (tray, CLI, tests).

Events are small frozen dataclasses, created on the controller thread and handed to every
subscribed observer on that same thread (see controller.py). Nothing here runs on the audio thread.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EngineState(str, enum.Enum):
    """What the engine is doing. Exactly one at a time; every change is a StateChanged event."""

    STOPPED = "stopped"  # no stream open
    STARTING = "starting"  # opening devices
    RUNNING = "running"  # sync mode: input device -> separation -> output device
    PLAYING_FILE = "playing_file"  # async mode: a file -> separation -> output device (maybe paused)
    DEVICE_LOST = "device_lost"  # a device vanished; the watchdog reopens it when it returns
    ERROR = "error"  # could not open the devices; a UserMessage says why; start() retries


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class EngineEvent:
    """Base class of everything an observer receives."""


@dataclass(frozen=True)
class StateChanged(EngineEvent):
    state: EngineState
    previous: EngineState


@dataclass(frozen=True)
class UserMessage(EngineEvent):
    """One line meant for the user (a notification), e.g. missing weights, device lost/back."""

    severity: Severity
    text: str


@dataclass(frozen=True)
class KeyChanged(EngineEvent):
    key: int  # semitones, -6..+6


@dataclass(frozen=True)
class LevelsChanged(EngineEvent):
    vocals: float  # percent, 0..150
    instrumental: float  # percent, 0..150
    bypass: bool


@dataclass(frozen=True)
class AppsChanged(EngineEvent):
    """An app started, stopped or moved its playback stream (Linux: the sound server said so):
    what Capture app ▸ lists may have changed."""


@dataclass(frozen=True)
class DevicesChanged(EngineEvent):
    host_api: str
    input_device: str  # name of the device actually open (or selected, when none is open)
    output_device: str


@dataclass(frozen=True)
class ModelChanged(EngineEvent):
    """The separation model in use. name None: none loaded, the engine passes audio through (dry);
    error says why (e.g. missing weights)."""

    name: str | None
    latency_ms: float  # total input->output latency of the engine's processing (not device buffers)
    error: str | None = None


@dataclass(frozen=True)
class FileProgress(EngineEvent):
    """Sent about 4 times a second while a file plays, and once when it ends (finished=True)."""

    path: str
    position_s: float
    duration_s: float
    paused: bool
    finished: bool = False
