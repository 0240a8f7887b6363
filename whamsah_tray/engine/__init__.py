"""The live engine: audio devices, the inference worker, file playback, the Linux cable.

Everything the UI needs is re-exported here; see controller.py for the API and the threads, and
api.py for the types that cross the engine's boundary.

The re-exports load on first use (PEP 562): importing `whamsah_tray.engine.api` runs this file
first, and the tray imports api.py before its icon shows, when numpy and PortAudio must not load
yet.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from whamsah_tray.engine.api import (
    AppsChanged,
    DevicesChanged,
    EngineEvent,
    EngineSettings,
    EngineState,
    EngineStatus,
    FileProgress,
    KeyChanged,
    LevelsChanged,
    ModelChanged,
    Severity,
    StateChanged,
    UserMessage,
)

if TYPE_CHECKING:
    from whamsah_tray.engine.controller import EngineController
    from whamsah_tray.engine.devices import AudioDevice, DeviceList, list_devices
    from whamsah_tray.engine.linux_cable import AppStream, LinuxCable
    from whamsah_tray.engine.session import StreamSettings

# name -> the module that defines it (loaded when the name is first asked for)
_LAZY = {
    "EngineController": "whamsah_tray.engine.controller",
    "AudioDevice": "whamsah_tray.engine.devices",
    "DeviceList": "whamsah_tray.engine.devices",
    "list_devices": "whamsah_tray.engine.devices",
    "AppStream": "whamsah_tray.engine.linux_cable",
    "LinuxCable": "whamsah_tray.engine.linux_cable",
    "StreamSettings": "whamsah_tray.engine.session",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AppStream",
    "AudioDevice",
    "DeviceList",
    "EngineController",
    "EngineSettings",
    "EngineStatus",
    "LinuxCable",
    "StreamSettings",
    "list_devices",
    "DevicesChanged",
    "EngineEvent",
    "EngineState",
    "FileProgress",
    "AppsChanged",
    "KeyChanged",
    "LevelsChanged",
    "ModelChanged",
    "Severity",
    "StateChanged",
    "UserMessage",
]
