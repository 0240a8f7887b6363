"""Global shortcuts on Wayland through the XDG desktop portal (`org.freedesktop.portal.GlobalShortcuts`:
KDE Plasma >= 5.27, GNOME >= 48, Hyprland), where pynput hears no keys.

The client registers the app id with the portal's host registry (`org.freedesktop.host.portal.Registry`;
the desktop names the shortcuts after the `<app id>.desktop` file it finds), creates
a session, binds the profile's hotkeys as preferred triggers (the desktop may ask the user and may
choose other keys) and runs the action of each `Activated` signal. The D-Bus side uses PyGObject's
Gio, which the GTK tray already needs: no other D-Bus library.

`hotkey_mechanism()` says which of pynput and the portal to use: the portal on a Wayland session,
pynput elsewhere; `WHAMSAH_HOTKEYS=portal|pynput` forces one.

Threads: `start`/`stop` run on the tray's setup/GUI thread. Everything D-Bus happens on the client's
own thread, on a private connection (the registry binds the app id to the connection) and its own
GLib main context, so it works under any tray backend; the actions run there and must return at
once (they only queue engine commands). `on_unavailable` and `on_bound` are called on that thread.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from typing import Callable, Mapping

from whamsah_tray.errors import WhamsahError

log = logging.getLogger(__name__)

# xdg-desktop-portal accepts only reverse-DNS ids (two or more dot-separated elements) and, from
# 1.21, no GlobalShortcuts session without one; the macOS LaunchAgent uses the same id.
APP_ID = "io.github.whamsah.tray"
PORTAL_BUS = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
SHORTCUTS_INTERFACE = "org.freedesktop.portal.GlobalShortcuts"
REGISTRY_INTERFACE = "org.freedesktop.host.portal.Registry"
REQUEST_INTERFACE = "org.freedesktop.portal.Request"
SESSION_INTERFACE = "org.freedesktop.portal.Session"
CALL_TIMEOUT_MS = 5000
SESSION_TIMEOUT_S = 10.0

# What the desktop lists beside each shortcut.
DESCRIPTIONS = {
    "toggle_vocals": "Vocals on/off",
    "vocals_up": "Vocals up",
    "vocals_down": "Vocals down",
    "instrumental_up": "Instrumental up",
    "instrumental_down": "Instrumental down",
    "bypass": "Bypass (hear the input dry)",
    "key_up": "Key up a semitone",
    "key_down": "Key down a semitone",
    "play_file": "Play a file",
}

# pynput's names (the profile's syntax) → the XDG shortcuts spec's modifiers and xkb keysym names.
_MODIFIERS = {"ctrl": "CTRL", "alt": "ALT", "shift": "SHIFT", "cmd": "LOGO", "super": "LOGO",
              "ctrl_l": "CTRL", "ctrl_r": "CTRL", "alt_l": "ALT", "alt_r": "ALT", "alt_gr": "ALT",
              "shift_l": "SHIFT", "shift_r": "SHIFT", "cmd_l": "LOGO", "cmd_r": "LOGO"}
_KEYS = {"up": "Up", "down": "Down", "left": "Left", "right": "Right", "page_up": "Page_Up",
         "page_down": "Page_Down", "home": "Home", "end": "End", "insert": "Insert", "delete": "Delete",
         "backspace": "BackSpace", "enter": "Return", "esc": "Escape", "tab": "Tab", "space": "space",
         "pause": "Pause", "print_screen": "Print", "menu": "Menu", "caps_lock": "Caps_Lock",
         "media_play_pause": "XF86AudioPlay", "media_next": "XF86AudioNext",
         "media_previous": "XF86AudioPrev", "media_volume_up": "XF86AudioRaiseVolume",
         "media_volume_down": "XF86AudioLowerVolume", "media_volume_mute": "XF86AudioMute"}


class PortalUnavailableError(WhamsahError):
    """The session has no GlobalShortcuts portal, or it refused the session."""


def hotkey_mechanism() -> str:
    """"portal" on a Linux Wayland session, else "pynput"; WHAMSAH_HOTKEYS=portal|pynput forces."""
    forced = os.environ.get("WHAMSAH_HOTKEYS", "")
    if forced in ("portal", "pynput"):
        return forced
    wayland = os.environ.get("XDG_SESSION_TYPE") == "wayland" or bool(os.environ.get("WAYLAND_DISPLAY"))
    return "portal" if sys.platform.startswith("linux") and wayland else "pynput"


def portal_trigger(combination: str) -> str:
    """The profile's pynput combination as the shortcuts spec writes it: "<ctrl>+<alt>+v" →
    "CTRL+ALT+v", "<ctrl>+<alt>+<page_down>" → "CTRL+ALT+Page_Down". ValueError if it is empty."""
    parts = [part.strip() for part in combination.split("+") if part.strip()]
    if not parts:
        raise ValueError("empty")
    out = []
    for part in parts:
        name = part[1:-1].lower() if part.startswith("<") and part.endswith(">") else part
        if name in _MODIFIERS:
            out.append(_MODIFIERS[name])
        elif name in _KEYS:
            out.append(_KEYS[name])
        elif len(name) > 1 and name[0] == "f" and name[1:].isdigit():
            out.append(name.upper())
        else:
            out.append(name.lower() if len(name) == 1 else name)
    return "+".join(out)


class PortalShortcuts:
    """One GlobalShortcuts session for the tray's hotkeys (the same interface as HotkeyManager:
    `start()`, `stop()`, `active`)."""

    _tokens = itertools.count(1)

    def __init__(self, bindings: Mapping[str, str], actions: Mapping[str, Callable[[], None]],
                 on_unavailable: Callable[[str], None] | None = None,
                 on_bound: Callable[[dict[str, str]], None] | None = None,
                 app_id: str = APP_ID, bus_address: str | None = None):
        self.bindings = {action: combo for action, combo in bindings.items() if combo and action in actions}
        self.actions = dict(actions)
        self.on_unavailable = on_unavailable
        self.on_bound = on_bound
        self.app_id = app_id
        self.bus_address = bus_address
        self.active: dict[str, str] = {}  # action → the trigger the desktop reports
        self.session_handle: str | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._context = None
        self._connection = None

    def start(self) -> None:
        """Start the client's thread; returns at once (the desktop may ask the user first)."""
        self._thread = threading.Thread(target=self._run, name="portal-shortcuts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        context = self._context
        if context is not None:
            context.wakeup()
        if self._thread is not None:
            self._thread.join(3)

    # -- the client's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        from gi.repository import GLib

        self._context = GLib.MainContext.new()
        self._context.push_thread_default()
        try:
            try:
                self._open_session()
                self._bind()
            except PortalUnavailableError as error:
                self._unavailable(str(error))
                return
            except GLib.Error as error:
                self._unavailable(f"the desktop portal failed: {error.message}")
                return
            while not self._stopped.is_set():
                self._context.iteration(True)
        finally:
            self._close()
            self._context.pop_thread_default()

    def _unavailable(self, reason: str) -> None:
        log.info("portal global shortcuts unavailable: %s", reason)
        if self.on_unavailable is not None and not self._stopped.is_set():
            self.on_unavailable(reason)

    def _open_session(self) -> None:
        from gi.repository import Gio, GLib

        try:
            address = self.bus_address or Gio.dbus_address_get_for_bus_sync(Gio.BusType.SESSION, None)
            connection = Gio.DBusConnection.new_for_address_sync(
                address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
                | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        except GLib.Error as error:
            raise PortalUnavailableError(f"no D-Bus session bus ({error.message})") from None
        self._connection = connection
        # The registry must come first on this connection; portals older than 1.19 lack it and
        # take the app id from the .desktop file of the process instead.
        try:
            connection.call_sync(PORTAL_BUS, PORTAL_PATH, REGISTRY_INTERFACE, "Register",
                                 GLib.Variant("(sa{sv})", (self.app_id, {})), None,
                                 Gio.DBusCallFlags.NONE, CALL_TIMEOUT_MS, None)
        except GLib.Error as error:
            if _is_missing_service(error):
                raise PortalUnavailableError("no desktop portal on the session bus") from None
            log.debug("the portal has no host registry (%s); going on", error.message)
        try:
            connection.call_sync(PORTAL_BUS, PORTAL_PATH, "org.freedesktop.DBus.Properties", "Get",
                                 GLib.Variant("(ss)", (SHORTCUTS_INTERFACE, "version")),
                                 GLib.VariantType("(v)"), Gio.DBusCallFlags.NONE, CALL_TIMEOUT_MS, None)
        except GLib.Error:
            raise PortalUnavailableError("the desktop's portal has no GlobalShortcuts "
                                         "(KDE Plasma 5.27+, GNOME 48+ and Hyprland have it)") from None
        connection.signal_subscribe(PORTAL_BUS, SHORTCUTS_INTERFACE, "Activated", PORTAL_PATH, None,
                                    Gio.DBusSignalFlags.NONE, self._on_activated)
        token = f"whamsah{os.getpid()}_{next(self._tokens)}"
        answer, results = self._request("CreateSession", GLib.Variant(
            "(a{sv})", ({"handle_token": GLib.Variant("s", token),
                         "session_handle_token": GLib.Variant("s", token)},)), token, SESSION_TIMEOUT_S)
        if answer != 0 or not results.get("session_handle"):
            raise PortalUnavailableError(f"the desktop refused a shortcuts session (response {answer})")
        self.session_handle = str(results["session_handle"])

    def _bind(self) -> None:
        from gi.repository import GLib

        shortcuts = []
        for action, combination in self.bindings.items():
            options = {"description": GLib.Variant("s", DESCRIPTIONS.get(action, action))}
            try:
                options["preferred_trigger"] = GLib.Variant("s", portal_trigger(combination))
            except ValueError:
                pass  # the desktop lets the user choose the keys
            shortcuts.append((action, options))
        token = f"whamsah{os.getpid()}_{next(self._tokens)}"
        # No timeout: the desktop may show the user a dialog to confirm the keys.
        answer, results = self._request("BindShortcuts", GLib.Variant(
            "(oa(sa{sv})sa{sv})", (self.session_handle, shortcuts, "",
                                   {"handle_token": GLib.Variant("s", token)})), token, None)
        if answer != 0:
            raise PortalUnavailableError("the shortcuts were not accepted on the desktop"
                                         + (" (cancelled)" if answer == 1 else f" (response {answer})"))
        self.active = {str(action): str(info.get("trigger_description", ""))
                       for action, info in results.get("shortcuts", [])}
        log.info("portal global shortcuts bound: %s", self.active)
        if self.on_bound is not None:
            self.on_bound(dict(self.active))

    def _request(self, method: str, parameters, token: str, timeout_s: float | None) -> tuple[int, dict]:
        """Call a portal method that answers with a Request's Response signal; wait for it on this
        thread's context. Subscribes before the call, to the handle the spec predicts."""
        from gi.repository import Gio, GLib

        connection = self._connection
        sender = connection.get_unique_name().lstrip(":").replace(".", "_")
        expected = f"{PORTAL_PATH}/request/{sender}/{token}"
        response: dict = {}

        def on_response(_connection, _sender, _path, _interface, _signal, params):
            response["answer"], response["results"] = params.unpack()

        subscriptions = [connection.signal_subscribe(PORTAL_BUS, REQUEST_INTERFACE, "Response", expected, None,
                                                     Gio.DBusSignalFlags.NONE, on_response)]
        try:
            reply = connection.call_sync(PORTAL_BUS, PORTAL_PATH, SHORTCUTS_INTERFACE, method, parameters,
                                         GLib.VariantType("(o)"), Gio.DBusCallFlags.NONE, CALL_TIMEOUT_MS, None)
            handle = reply.unpack()[0]
            if handle != expected:  # portals before 0.9 chose their own handle
                subscriptions.append(connection.signal_subscribe(
                    PORTAL_BUS, REQUEST_INTERFACE, "Response", handle, None, Gio.DBusSignalFlags.NONE,
                    on_response))
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while "answer" not in response and not self._stopped.is_set():
                if deadline is not None and time.monotonic() > deadline:
                    raise PortalUnavailableError(f"the desktop portal did not answer {method}")
                if not self._context.iteration(False):
                    time.sleep(0.01)
            if "answer" not in response:
                raise PortalUnavailableError("stopped")
            return int(response["answer"]), dict(response["results"])
        finally:
            for subscription in subscriptions:
                connection.signal_unsubscribe(subscription)

    def _on_activated(self, _connection, _sender, _path, _interface, _signal, params) -> None:
        session, shortcut, _timestamp, _options = params.unpack()
        if session != self.session_handle:
            return
        action = self.actions.get(shortcut)
        if action is None:
            return
        try:
            action()
        except Exception:  # one failing action must not end the client's loop
            log.exception("shortcut action %s failed", shortcut)

    def _close(self) -> None:
        from gi.repository import Gio, GLib

        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self.session_handle:
            try:
                connection.call_sync(PORTAL_BUS, self.session_handle, SESSION_INTERFACE, "Close", None, None,
                                     Gio.DBusCallFlags.NONE, 1000, None)
            except GLib.Error:
                pass  # the portal went first: its sessions went with it
        try:
            connection.close_sync(None)
        except GLib.Error:
            pass
        self.active = {}


def _is_missing_service(error) -> bool:
    text = getattr(error, "message", str(error))
    return "ServiceUnknown" in text or "was not provided by any .service files" in text \
        or "NameHasNoOwner" in text
