"""The live engine: audio devices, the inference worker, file playback, the Linux cable.

Everything the UI needs is re-exported here; see controller.py for the API and the threads.
"""

from whamsah_tray.engine.controller import EngineController, EngineSettings, EngineStatus
from whamsah_tray.engine.devices import AudioDevice, DeviceList, list_devices
from whamsah_tray.engine.events import (
    DevicesChanged,
    EngineEvent,
    EngineState,
    FileProgress,
    AppsChanged,
    KeyChanged,
    LevelsChanged,
    ModelChanged,
    Severity,
    StateChanged,
    UserMessage,
)
from whamsah_tray.engine.linux_cable import AppStream, LinuxCable
from whamsah_tray.engine.session import StreamSettings

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
