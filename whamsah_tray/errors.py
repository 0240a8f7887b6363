"""Typed errors raised by library code; only the CLI and the app turn them into exit codes or
notifications (library code never calls sys.exit)."""


class WhamsahError(Exception):
    """Base class: its message is one line a user can act on."""


class ModelLoadingError(WhamsahError):
    """A model could not be loaded: missing file, bad hash, wrong shapes, unknown architecture."""


class AudioFileError(WhamsahError):
    """An audio file is missing, empty, corrupt, not audio, or cannot be written."""


class DeviceError(WhamsahError):
    """An audio device is missing, vanished, or cannot be opened."""


class NoCableError(DeviceError):
    """No input was named and no virtual cable exists: the engine waits for one rather than
    record the system's default input (a microphone, or the monitor of its own output). Its
    message starts with PREFIX, which the tray looks for in the engine's status."""

    PREFIX = "no virtual cable"


class FeedbackLoopError(DeviceError):
    """The input records what the output plays (the output's monitor, or our cable both ways)."""


class DatasetError(WhamsahError):
    """A folder of stems (e.g. for `evaluate`) is missing, empty, or a track lacks a stem."""
