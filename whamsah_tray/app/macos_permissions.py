"""macOS: whether the tray may record audio at all.

macOS treats every input device as a microphone, BlackHole included: without the user's grant a
recording stream opens and then delivers pure digital silence, while everything looks fine (the
tray says "running", the speakers stay silent). The grant is asked the first time an app records
from an interactive session; an app started by launchd at login may never be asked, and a user
who clicked "Don't Allow" once is not asked again. So the tray reads the authorisation status
(AVFoundation, through PyObjC) at start and, when recording is not allowed, says so and offers
the System Settings pane where it is granted.

Elsewhere there is no such permission: `microphone_access` answers "authorized".
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

MICROPHONE_SETTINGS_URL = "x-apple.systempreferences:com.apple.preference.security?Privacy_Microphone"
# AVAuthorizationStatus values
_STATUS = {0: "not_determined", 1: "restricted", 2: "denied", 3: "authorized"}
BLOCKED = ("denied", "restricted")


def microphone_access(platform: str | None = None, avfoundation: Any = None) -> str:
    """"authorized", "denied", "restricted", "not_determined" or "unknown" (no PyObjC AVFoundation
    to ask). avfoundation: the module, for tests."""
    if (platform or sys.platform) != "darwin":
        return "authorized"
    if avfoundation is None:
        try:
            import AVFoundation as avfoundation  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return "unknown"
    status = avfoundation.AVCaptureDevice.authorizationStatusForMediaType_(avfoundation.AVMediaTypeAudio)
    return _STATUS.get(int(status), "unknown")


def ask_for_microphone_access(avfoundation: Any = None) -> None:
    """Let macOS show its 'would like to access the microphone' prompt (status not_determined)."""
    if avfoundation is None:
        import AVFoundation as avfoundation  # type: ignore[import-not-found,no-redef]
    avfoundation.AVCaptureDevice.requestAccessForMediaType_completionHandler_(
        avfoundation.AVMediaTypeAudio, lambda granted: None)


def open_microphone_settings(run=subprocess.Popen) -> None:
    """System Settings ▸ Privacy & Security ▸ Microphone."""
    run(["open", MICROPHONE_SETTINGS_URL], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
