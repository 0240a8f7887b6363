"""The live engine: audio devices, the inference worker, file playback, the Linux cable.

Everything the UI needs is re-exported here; see controller.py for the API and the threads.
"""

from whamsah_tray.engine.events import (
    DevicesChanged,
    EngineEvent,
    EngineState,
    FileProgress,
    LevelsChanged,
    ModelChanged,
    Severity,
    StateChanged,
    UserMessage,
)

__all__ = [
    "DevicesChanged",
    "EngineEvent",
    "EngineState",
    "FileProgress",
    "LevelsChanged",
    "ModelChanged",
    "Severity",
    "StateChanged",
    "UserMessage",
]
