"""The engine's device watchdog: the open stream's health, and reopening a lost device.

Every WATCH_S the open session is asked whether its device is gone (PortAudio's stream stopped, no
callbacks any more, the sound server dropped it); a lost device puts the engine in DEVICE_LOST.
While lost, the remembered devices are tried every RETRY_S; an output that is not even listed any
more falls back to the default after FALLBACK_AFTER_S. A missing input is never replaced (the
fallback would be a microphone or a loop): the engine waits for it (NoiseTorch's rule).

Threads: the controller thread only (called from its housekeeping tick and its commands).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from whamsah_tray.engine.api import EngineState, Severity

if TYPE_CHECKING:
    from whamsah_tray.engine.controller import EngineController
    from whamsah_tray.engine.session import LiveSession

WATCH_S = 0.5  # health check of the open stream
RETRY_S = 0.4  # reopen attempts while a device is lost
FALLBACK_AFTER_S = 5.0  # a lost device not even listed any more: use the default after this long


class DeviceWatchdog:
    def __init__(self, engine: EngineController) -> None:
        self._engine = engine
        self._lost_since: float | None = None
        self._last_retry = 0.0
        self._last_watch = 0.0

    def session_opened(self) -> None:
        """A session was just installed: its first health check comes WATCH_S from now."""
        self._last_watch = time.monotonic()

    def stopped(self) -> None:
        """Sync mode stopped: nothing to wait for any more."""
        self._lost_since = None

    def enter_lost(self, text: str, waiting: str = "waiting for it to come back") -> None:
        """DEVICE_LOST from now, with why and what the engine waits for (state and one message)."""
        self._lost_since = time.monotonic()
        self._last_retry = 0.0
        self._engine._set_state(EngineState.DEVICE_LOST, f"{text}; {waiting}")
        self._engine._tell(Severity.WARNING, f"{text}; {waiting}")

    def retry_if_due(self, now: float) -> None:
        """In DEVICE_LOST: reopen the remembered devices, at most every RETRY_S."""
        if now - self._last_retry < RETRY_S:
            return
        self._last_retry = now
        allow_fallback = self._lost_since is not None and now - self._lost_since >= FALLBACK_AFTER_S
        engine = self._engine
        if engine._open_sync(first_attempt=False, allow_fallback=allow_fallback):
            self._lost_since = None
            status = engine.status
            engine._tell(Severity.INFO, f"audio device back: '{status.input_device}' -> '{status.output_device}'")

    def check(self, session: LiveSession, now: float) -> None:
        """At most every WATCH_S: whether the open session's device is gone. A lost file's output
        stops the playback (back to waiting for the devices only if sync mode was running)."""
        if now - self._last_watch < WATCH_S:
            return
        self._last_watch = now
        reason = session.lost_reason()
        if reason is None:
            return
        engine = self._engine
        engine._close_session()
        if session.player is not None:
            engine._tell(Severity.ERROR, f"output device '{session.output.name}' lost ({reason}); playback stopped")
            if not engine._sync_wanted:
                engine._set_state(EngineState.STOPPED)
                return
        self.enter_lost(f"audio device lost ({reason})")
