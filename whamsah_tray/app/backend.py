"""Choosing the tray backend, importing pystray lazily (it fails at import time without a display).

Linux: AppIndicator when a StatusNotifier host is on the session bus (KDE, GNOME with the
AppIndicator extension...), else GTK's XEmbed status icon (both need PyGObject and give native
menus; without a host AppIndicator would fall back to the same XEmbed icon but lose the left-click
action and the hover tooltip), else plain X11 ("xorg", python-xlib only: the icon docks and left
click works, but its menu cannot open). `PYSTRAY_BACKEND` (pystray's own variable) forces one.
Windows and macOS: what pystray provides.

Threads: called once, on the thread that will run the tray's loop.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from types import ModuleType

from whamsah_tray.errors import WhamsahError

HEADLESS_HINT = "use `whamsah-tray run` for the engine without a tray (see `whamsah-tray run --help`)"


class TrayUnavailableError(WhamsahError):
    """No desktop to show a tray icon on (no display, or no usable tray backend)."""


@dataclass(frozen=True)
class TrayBackend:
    pystray: ModuleType  # for Menu and MenuItem
    icon_class: type  # the chosen backend's Icon
    name: str  # "appindicator", "gtk", "xorg", "win32", "darwin"

    @property
    def has_menu(self) -> bool:
        return bool(self.icon_class.HAS_MENU)

    @property
    def has_notifications(self) -> bool:
        return bool(self.icon_class.HAS_NOTIFICATION)

    @property
    def has_default_action(self) -> bool:
        """Whether a left click runs the default item (AppIndicator opens the menu instead)."""
        return bool(self.icon_class.HAS_DEFAULT_ACTION)

    @property
    def limitation(self) -> str | None:
        """A line for the tooltip when this backend cannot show the full menu."""
        if not self.has_menu:
            return ("menu unavailable with this basic X11 tray (install python3-gi for GTK menus); "
                    "left click mutes vocals, hotkeys work")
        return None


def has_display(environ=os.environ, platform: str = sys.platform) -> bool:
    if platform in ("win32", "darwin"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def load_backend() -> TrayBackend:
    """Import pystray and report which backend it chose; raises TrayUnavailableError."""
    if not has_display():
        raise TrayUnavailableError(f"no display to show the tray icon on (DISPLAY is not set); {HEADLESS_HINT}")
    _name_the_program()
    try:
        import pystray
    except Exception as error:  # pystray raises whatever its last backend raised (Xlib errors...)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrayUnavailableError(f"cannot show a tray icon ({reason}); {HEADLESS_HINT}") from error
    icon_class = pystray.Icon
    name = _backend_name(icon_class)
    if name == "appindicator" and not os.environ.get("PYSTRAY_BACKEND") and not status_notifier_host_present():
        import importlib

        icon_class = importlib.import_module("pystray._gtk").Icon
        name = "gtk"
    return TrayBackend(pystray=pystray, icon_class=icon_class, name=name)


def _name_the_program() -> None:
    """GTK names its windows' class after the program ("python3" otherwise): name it before GTK starts."""
    try:
        from gi.repository import GLib

        GLib.set_prgname("whamsah-tray")
        GLib.set_application_name("WHAMSAH Tray")
    except Exception:  # no PyGObject: the xorg backend does not care
        pass


def _backend_name(icon_class: type) -> str:
    return icon_class.__module__.rsplit(".", 1)[-1].lstrip("_")


def status_notifier_host_present(timeout_ms: int = 1000) -> bool:
    """Whether a StatusNotifierWatcher (the AppIndicator host) owns its name on the session bus."""
    try:
        from gi.repository import Gio, GLib

        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        reply = bus.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                              "NameHasOwner", GLib.Variant("(s)", ("org.kde.StatusNotifierWatcher",)),
                              GLib.VariantType("(b)"), Gio.DBusCallFlags.NONE, timeout_ms, None)
        return bool(reply.unpack()[0])
    except Exception:  # no session bus: no host either
        return False
