"""Telling the user: desktop notifications where the tray backend has them (pystray's
`HAS_NOTIFICATION`), plus the list of current problems that the tooltip shows, plus the log.

A problem has a key ("weights", "device", "hotkeys", "profile", "file", ...): the user is notified
once when it appears (or when its text changes), it stays in the tooltip until `resolve(key)`.

Threads: `tell`/`resolve` are called from the GUI thread, engine observer callbacks and the hotkey
thread; a lock guards the problem list. `send` is pystray's `Icon.notify`, which each backend makes
safe to call from any thread (the GTK backends queue it on the main loop).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Callable

log = logging.getLogger(__name__)


# Windows' balloon notification holds a 255-character message and a 63-character title
# (NOTIFYICONDATAW.szInfo / szInfoTitle, with the terminating NUL); pystray passes longer text
# on and Windows shows nothing at all.
WINDOWS_LIMITS = (63, 255)


def fit_notification(title: str, message: str, platform: str | None = None) -> tuple[str, str]:
    """title and message cut (with an ellipsis) to what the platform's notifications show."""
    if (platform or sys.platform) != "win32":
        return title, message
    title_limit, message_limit = WINDOWS_LIMITS

    def cut(text: str, limit: int) -> str:
        return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"
    return cut(title, title_limit), cut(message, message_limit)


class Notifier:
    def __init__(self, send: Callable[[str, str], None] | None = None, platform: str | None = None):
        """`send(message, title)` shows a desktop notification; None where the backend has none.
        platform: sys.platform (tests pass another)."""
        self._send = send
        self._platform = platform
        self._lock = threading.Lock()
        self._problems: dict[str, tuple[str, bool]] = {}  # key → (message, shown in the tooltip)
        self.history: list[tuple[str, str]] = []  # (title, message), newest last, for tests and logs

    def set_sender(self, send: Callable[[str, str], None] | None) -> None:
        self._send = send

    def tell(self, title: str, message: str, *, key: str | None = None, in_tooltip: bool = True,
             notify: bool = True) -> None:
        """Show `message`. With a `key` it is a problem: notified once, and listed in the tooltip
        until resolved unless `in_tooltip` is False (the tooltip already says it another way).
        `notify=False` records a problem without a notification (someone else already sent one)."""
        with self._lock:
            if key is not None:
                if self._problems.get(key, (None,))[0] == message:
                    return
                self._problems[key] = (message, in_tooltip)
            if not notify:
                return
            self.history.append((title, message))
            del self.history[:-50]
            send = self._send
        (log.warning if key else log.info)("%s: %s", title, message)
        if send is not None:
            shown_title, shown_message = fit_notification(title, message, self._platform)
            try:
                send(shown_message, shown_title)
            except Exception:  # no notification daemon, D-Bus gone...: the tooltip still says it
                log.warning("desktop notification failed", exc_info=True)

    def resolve(self, key: str) -> bool:
        """The problem `key` is over; returns whether there was one."""
        with self._lock:
            return self._problems.pop(key, None) is not None

    def problems(self) -> list[str]:
        """Current problems for the tooltip, oldest first."""
        with self._lock:
            return [message for message, in_tooltip in self._problems.values() if in_tooltip]

    def has_problem(self, key: str) -> bool:
        with self._lock:
            return key in self._problems
