"""The engine's typed boundary: what the tray, the CLI and the tests send to the engine and get back.

- shared bounds (levels in percent, the key in semitones), defined here once;
- `EngineState` and `Severity`;
- `EngineSettings` (what to start with) and `EngineStatus` (a snapshot of what it does);
- events (`EngineEvent` and its subclasses), which the controller hands to its observers;
- commands (`EngineCommand` and its subclasses), which `EngineController.send` queues and the
  controller's thread carries out, dispatched by type (controller.py).

Standard library only: the tray imports this before its icon shows, and the heavy engine
(numpy, PortAudio, the model) only once the icon is up. Everything here is a frozen dataclass or an
enum, so any thread may hold and pass these values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from whamsah_tray.errors import WhamsahError

if TYPE_CHECKING:
    from whamsah_tray.engine.session import StreamSettings

# -- bounds shared by the engine, the profile, the tray, `ctl` and the CLI ---------------------------

MIN_LEVEL_PERCENT = 0
MAX_LEVEL_PERCENT = 150  # a stem up to 1.5 x its level in the mix
DEFAULT_LEVEL_PERCENT = 100
# Semitones either way (separation.key_shift.MAX_KEY, which the separator checks; kept here so that
# the tray and the CLI know the range without importing the DSP).
MAX_KEY = 6
# Block sizes (frames) the live engine hands its separator: sync mode's input blocks
# (StreamSettings.input_blocksize), PortAudio's own periods, a file's deeper buffers. `bench`
# (whamsah_tray.benchmark) times models at these; here, so that its parser needs no numpy.
LIVE_BLOCK_SIZES = (512, 1024, 4096)


# -- states ---------------------------------------------------------------------------------------


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


# -- settings and status ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineSettings:
    """What to start with. Device names as listed by list_devices(); None = the fallback (for the
    input: a detected virtual cable, else the system default)."""

    host_api: str | None = None
    input_device: str | None = None
    output_device: str | None = None
    vocals: float = float(DEFAULT_LEVEL_PERCENT)
    instrumental: float = float(DEFAULT_LEVEL_PERCENT)
    bypass: bool = False
    key: int = 0  # semitones, -MAX_KEY..+MAX_KEY: both stems transposed (a spectral model only)
    model: str | None = None  # None = the default model
    # PortAudio's buffers and block sizes; None = StreamSettings() (the controller fills it in:
    # StreamSettings lives with the streams, which this module must not import).
    stream: StreamSettings | None = None
    # Linux: with no input named and no virtual cable present, create our own cable and record
    # it (removed again at close). Without a cable the engine waits: never the default input.
    own_cable: bool = True


@dataclass(frozen=True)
class EngineStatus:
    """A snapshot of everything the UI shows."""

    state: EngineState
    vocals: float
    instrumental: float
    bypass: bool
    key: int  # semitones
    host_api: str | None
    input_device: str | None  # open (or, when none is open, remembered) device names
    output_device: str | None
    model_name: str | None  # None: no model, dry pass-through
    model_error: str | None
    latency_ms: float  # input -> output, device buffers included (0 when stopped)
    sample_rate: int
    file_path: str | None
    position_s: float
    duration_s: float
    paused: bool
    problem: str | None  # in ERROR or DEVICE_LOST: why, and what the engine waits for
    idle: bool  # sync mode with a silent input: the output stream rests until sound comes
    # Sync mode: the lead the output keeps beyond its usual one after the machine was too busy
    # (the adaptive margin, callback.py), included in latency_ms.
    extra_latency_ms: float
    # Counters since the engine was made, over every session (sync and files) it opened and closed,
    # so that a summary after a file ended or a device switch still says what the listener got:
    dry_frames: int  # output frames that left without the full mix (dry, or fading to dry)
    resyncs: int
    xruns: int  # callbacks whose PortAudio status flagged an over/underflow
    output_xruns: int  # of which on the output side
    realignments: int  # times the output was put back in step with the input (an audible slip)
    margin_changes: int  # times the adaptive margin rose or was dropped again
    # times the output skipped or repeated a few frames (crossfaded, inaudible) to keep in step with
    # an input on another clock (a virtual cable against a sound card: callback.py, "Drift")
    drift_trims: int


# -- events: created on the controller thread, handed to every observer on that thread ------------


@dataclass(frozen=True)
class EngineEvent:
    """Base class of everything an observer receives."""


@dataclass(frozen=True)
class StateChanged(EngineEvent):
    state: EngineState
    previous: EngineState


@dataclass(frozen=True)
class UserMessage(EngineEvent):
    """One line meant for the user (a notification), e.g. missing weights, device lost/back.
    `error`: the typed error behind it, where there is one (e.g. AudioFileError or DeviceError for
    a file that could not be played), so that a caller tells causes apart by type, not by text."""

    severity: Severity
    text: str
    error: WhamsahError | None = None


@dataclass(frozen=True)
class KeyChanged(EngineEvent):
    key: int  # semitones, -MAX_KEY..+MAX_KEY


@dataclass(frozen=True)
class LevelsChanged(EngineEvent):
    vocals: float  # percent, MIN_LEVEL_PERCENT..MAX_LEVEL_PERCENT
    instrumental: float
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


# -- commands: queued by EngineController.send, carried out in order on the controller thread -------


@dataclass(frozen=True)
class EngineCommand:
    """Base class of every command. The controller keeps one handler per command class; a test
    checks that every subclass has one."""


@dataclass(frozen=True)
class Start(EngineCommand):
    """Open the sync-mode streams (input -> separation -> output), or keep them running."""


@dataclass(frozen=True)
class Stop(EngineCommand):
    """Close the sync-mode streams."""


@dataclass(frozen=True)
class SetLevels(EngineCommand):
    """Percent, clamped to MIN_LEVEL_PERCENT..MAX_LEVEL_PERCENT; None leaves a level as it is. The
    targets change when the command is sent (hotkeys feel immediate); the worker ramps to them."""

    vocals: float | None = None
    instrumental: float | None = None


@dataclass(frozen=True)
class SetBypass(EngineCommand):
    """The dry input at the same latency (on), or the separated mix; ramped, sample-aligned."""

    on: bool


@dataclass(frozen=True)
class SetKey(EngineCommand):
    """Transpose both stems by `semitones` (clamped to -MAX_KEY..+MAX_KEY; 0: the original key)."""

    semitones: int


@dataclass(frozen=True)
class SetDevices(EngineCommand):
    """Devices by name ("" the system default); None leaves that choice as it is."""

    input: str | None = None
    output: str | None = None
    host_api: str | None = None


@dataclass(frozen=True)
class SetModel(EngineCommand):
    """An installed model by name (None: the default model); built off the audio path and swapped
    in by reference. The last one asked for wins."""

    name: str | None


@dataclass(frozen=True)
class PlayFile(EngineCommand):
    """Async mode: a file through the separation (replacing one that plays), from `start_s` on."""

    path: str
    start_s: float = 0.0


@dataclass(frozen=True)
class SetPaused(EngineCommand):
    """Pause (True) or resume (False) the playing file; None toggles."""

    paused: bool | None


@dataclass(frozen=True)
class StopFile(EngineCommand):
    """Stop the file; back to sync mode if it was running."""


@dataclass(frozen=True)
class Seek(EngineCommand):
    """The playing file from `seconds` into it (relative: that far on from where it is now;
    negative goes back)."""

    seconds: float
    relative: bool = False


@dataclass(frozen=True)
class CreateCable(EngineCommand):
    """Linux: our own PulseAudio/PipeWire cable, recorded by the engine at once."""

    make_default: bool = False


@dataclass(frozen=True)
class RemoveCable(EngineCommand):
    """Linux: remove our cable (and never make it again unasked)."""


@dataclass(frozen=True)
class RouteAll(EngineCommand):
    """Linux: every app's audio through the cable (the cable the default output, playing apps moved
    in; the engine's output pinned to the speakers first), or back as it was."""

    on: bool


@dataclass(frozen=True)
class CaptureApp(EngineCommand):
    """Linux: move one app's playback stream (sink-input index) into the cable (made if absent)."""

    index: int


@dataclass(frozen=True)
class ReleaseApp(EngineCommand):
    """Linux: give a captured app back to the output it played to."""

    index: int
