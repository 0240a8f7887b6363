"""The icon's GUI calls on the main thread, where the platform demands it.

macOS: pystray's darwin backend passes `icon.visible`, `icon.icon`, `icon.title`, `icon.menu`,
`update_menu()`, `notify()` and `stop()` straight to AppKit, which may only be used from the main
thread (recent macOS stops the process otherwise). The tray sets them from its setup thread and
its refresher thread, so on macOS the icon is wrapped: every such call is handed to the main run
loop with PyObjC's `AppHelper.callAfter` (PyObjC comes with pystray on macOS) and runs there in
the order it was made. pynput's keyboard listener must likewise be created on the main thread
there (it reads the keyboard layout through APIs that are main-thread only): `on_main_thread`.

Elsewhere the backends are safe to call from any thread (the GTK ones queue onto their loop;
win32 posts messages), and nothing is wrapped.

Threads: any thread calls the wrapper; the wrapped calls run on the main thread, later.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

# Icon attributes whose assignment reaches the GUI toolkit.
GUI_ATTRIBUTES = frozenset({"visible", "icon", "title", "menu"})


def main_thread_caller(platform: str | None = None) -> Callable[[Callable[[], None]], None] | None:
    """What hands a call to the main thread on `platform` (default sys.platform), or None where
    any thread may call the icon."""
    if (platform or sys.platform) != "darwin":
        return None
    from PyObjCTools import AppHelper  # type: ignore[import-not-found]

    return AppHelper.callAfter


class MainThreadIcon:
    """A pystray icon whose GUI calls all go through `call_after` (see the module docstring)."""

    def __init__(self, icon: Any, call_after: Callable[[Callable[[], None]], None]) -> None:
        object.__setattr__(self, "_icon", icon)
        object.__setattr__(self, "_call_after", call_after)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._icon, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in GUI_ATTRIBUTES:
            self._call_after(lambda: setattr(self._icon, name, value))
        else:
            setattr(self._icon, name, value)

    def update_menu(self) -> None:
        self._call_after(self._icon.update_menu)

    def notify(self, message: str, title: str | None = None) -> None:
        self._call_after(lambda: self._icon.notify(message, title))

    def stop(self) -> None:
        self._call_after(self._icon.stop)

    def run(self, setup: Callable[[Any], None] | None = None) -> None:
        """Runs the icon's loop (on the main thread, as the caller is); `setup` gets this wrapper."""
        self._icon.run(setup=(lambda _icon: setup(self)) if setup is not None else None)


def on_main_thread(icon: Any, platform: str | None = None) -> Any:
    """The icon, wrapped where the platform needs its GUI calls on the main thread."""
    call_after = main_thread_caller(platform)
    return icon if call_after is None else MainThreadIcon(icon, call_after)


def call_on_main_thread(function: Callable[[], None], platform: str | None = None) -> None:
    """function() on the main thread where the platform needs that, else right here."""
    call_after = main_thread_caller(platform)
    if call_after is None:
        function()
    else:
        call_after(function)
