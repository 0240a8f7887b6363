"""The tray app: shows the icon first (within 3 s of start), then starts the engine in sync mode with
the remembered profile, registers the global hotkeys, and keeps icon, tooltip and menu in step
with the engine's events until Quit.

Threads
- GUI thread (the thread that calls `run`, the process's main thread in `whamsah-tray`): pystray's
  loop; menu actions run here and only queue engine commands (`TrayActions`).
- pystray's setup thread: starts the engine, hotkeys and the start-up messages once the icon shows.
- Engine observer callbacks (the engine's threads): only `_request_refresh`, which sets a flag and
  wakes the refresher thread; they never touch pystray themselves.
- Refresher thread: redraws icon, tooltip and menu at most every REFRESH_INTERVAL_S; pystray's
  backends marshal these updates onto their GUI loop.
- pynput's listener thread (hotkeys; on Wayland the portal client's thread instead), the file
  dialog's waiter thread and the `ctl` server's request threads (`whamsah_tray.app.control`):
  call `TrayActions`.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from whamsah_tray.app import menu, status
from whamsah_tray.app.actions import HOTKEY_STEP, TrayActions
from whamsah_tray.app.backend import TrayBackend
from whamsah_tray.app.icons import IconState, draw_icon
from whamsah_tray.app.main_thread import call_on_main_thread, on_main_thread
from whamsah_tray.app.notifications import Notifier
from whamsah_tray.app.profile import LoadResult, ProfileStore
from whamsah_tray.engine.api import (AppsChanged, DevicesChanged, EngineEvent, EngineState, Severity, StateChanged,
                                     UserMessage)

if TYPE_CHECKING:
    from whamsah_tray.app.engine_link import EngineLink
    from whamsah_tray.app.status import EngineView

log = logging.getLogger(__name__)

APP_NAME = "WHAMSAH Tray"
MESSAGE_TITLES = {Severity.ERROR: f"{APP_NAME}: error", Severity.WARNING: APP_NAME, Severity.INFO: APP_NAME}
ICON_SIZE = 64
REFRESH_INTERVAL_S = 0.1
LIST_REFRESH_S = 2.0
# A busy machine may dock the icon late: wait this much longer before telling of no tray host.
NO_TRAY_HOST_AFTER_S = 8.0
# Engine events after which the apps and the cable are read again (not levels or file progress).
LIST_EVENTS = (StateChanged, DevicesChanged, UserMessage, AppsChanged)


class TrayApp:
    def __init__(self, backend: TrayBackend, engine: EngineLink, store: ProfileStore, load_result: LoadResult,
                 *, autostart=None, dialog=None, launch_command=None):
        from whamsah_tray.app import autostart as autostart_module
        from whamsah_tray.app.file_dialog import FileDialog

        self.backend = backend
        self.engine = engine
        self.store = store
        self.load_result = load_result
        self.notifier = Notifier()
        self.actions = TrayActions(
            engine=engine,
            store=store,
            notifier=self.notifier,
            dialog=dialog or FileDialog(),
            autostart=autostart or autostart_module.for_platform(),
            launch_command=launch_command or autostart_module.launch_command,
            on_quit=self.quit,
        )
        self.hotkeys = None
        self.control = None  # the `whamsah-tray ctl` server, once listening
        self.icon: Any = None
        self.shown = threading.Event()  # set once the icon is visible
        self.stopped = threading.Event()
        self._refresh_wanted = threading.Event()
        self._lists_wanted = threading.Event()
        self._refresher: threading.Thread | None = None
        self._drawn_state: IconState | None = None
        self._drawn_tooltip: str | None = None
        self._drawn_menu_key: Any = None

    # -- building --------------------------------------------------------------------------------

    def _make_icon(self):
        pystray = self.backend.pystray
        view = self.engine.view()
        state = status.icon_state(view)
        self._drawn_state = state
        self._drawn_tooltip = self.tooltip_text(view)
        icon = self.backend.icon_class(
            "whamsah-tray",
            draw_icon(state, ICON_SIZE),
            self._title(self._drawn_tooltip),
            menu=menu.build_menu(pystray, self.actions),
        )
        if self.backend.has_notifications:
            self.notifier.set_sender(icon.notify)
        self._set_native_tooltip(icon, self._drawn_tooltip)
        return icon

    def _wrap_icon(self, icon):
        """macOS: the icon's GUI calls go to the main thread (main_thread.py); elsewhere the icon."""
        wrapped = on_main_thread(icon)
        if wrapped is not icon and self.backend.has_notifications:
            self.notifier.set_sender(wrapped.notify)
        return wrapped

    def _title(self, text: str) -> str:
        if sys.platform == "win32":
            return status.short_tooltip(text)
        if self.backend.name == "xorg":
            # python-xlib writes the window name as Latin-1 (STRING); plain ASCII reads the same
            # in every tool that shows it.
            for fancy, plain in (("…", "..."), ("⚠", "!"), ("—", "-"), ("·", "-")):
                text = text.replace(fancy, plain)
            return text.encode("ascii", "replace").decode("ascii")
        return text

    def tooltip_text(self, view=None) -> str:
        view = view or self.engine.view()
        return status.tooltip(view, self.notifier.problems(), self.backend.limitation)

    def _set_native_tooltip(self, icon, text: str) -> None:
        """pystray's GTK backend puts the title on the status icon's title, which hosts do not
        show on hover: set the hover tooltip too (on the GTK loop)."""
        status_icon = getattr(icon, "_status_icon", None)
        if status_icon is None:
            return
        from gi.repository import GLib

        GLib.idle_add(lambda: status_icon.set_tooltip_text(text) and False)

    def _flush_xorg(self, icon) -> None:
        """pystray's xorg backend sets the window name on its loop thread but leaves the request in
        python-xlib's buffer until the next X event: send it now."""
        display = getattr(icon, "_display", None) if self.backend.name == "xorg" else None
        if display is not None:
            display.flush()

    # -- running ---------------------------------------------------------------------------------

    def run(self, handle_signals: bool = True) -> int:
        """Show the icon and serve until Quit (or SIGINT/SIGTERM). Returns the exit status."""
        self.icon = self._wrap_icon(self._make_icon())
        if handle_signals:
            self._install_signal_handlers()
        try:
            self.icon.run(setup=self._setup)
        except Exception as error:  # GLib.GError from a missing notification daemon at exit
            if not self.stopped.is_set():
                raise
            log.debug("tray loop ended with %s", error)
        finally:
            self._shutdown()
        return 0

    def _setup(self, icon) -> None:
        icon.visible = True
        docked = self._wait_until_docked(icon)
        self.shown.set()
        self._tell_profile_problems()
        self._welcome_once()
        self.actions.check_microphone_access()
        # The autostart file is the truth (the installer writes it too); the profile mirrors it.
        self.store.update("startup", start_at_login=self.actions.start_at_login())
        self.engine.subscribe(self._request_refresh)
        try:
            self.engine.start()
        except Exception as error:  # e.g. torch or PortAudio missing: keep the icon, say why
            log.exception("the audio engine could not start")
            self.notifier.tell(MESSAGE_TITLES[Severity.ERROR], f"the audio engine could not start: {error}")
        call_on_main_thread(self._start_hotkeys)  # pynput's listener: main thread only on macOS
        self._start_control()
        self._refresher = threading.Thread(target=self._refresh_loop, name="tray-refresh", daemon=True)
        self._refresher.start()
        self._request_refresh()
        if not docked and not self._wait_until_docked(icon, NO_TRAY_HOST_AFTER_S) and not self.stopped.is_set():
            self._tell_no_tray_host()

    def _welcome_once(self) -> None:
        """At the very first start, where to find the icon (Windows 11 puts a new one behind the ^
        by the clock, macOS in the menu bar) and what to do next; then never again."""
        if self.store.profile.startup.welcomed:
            return
        where = {"win32": "in the notification area: click ^ by the clock if it is hidden, and drag it "
                          "onto the taskbar to keep it in sight",
                 "darwin": "in the menu bar"}.get(sys.platform, "in the system tray")
        self.notifier.tell(APP_NAME, f"WHAMSAH Tray is running; its icon is {where}. Send an app's sound to "
                                     "the virtual cable, or choose Play file…, to hear it as karaoke.")
        self.store.update("startup", welcomed=True)

    def _tell_no_tray_host(self) -> None:
        """No tray host took the icon (e.g. GNOME without the AppIndicator extension): the app runs
        on, reachable through `whamsah-tray ctl` and its hotkeys; say so once."""
        how = ("On GNOME, install the \"AppIndicator and KStatusNotifierItem Support\" extension. " if
               sys.platform.startswith("linux") else "")
        self.notifier.tell(APP_NAME, "no system tray is running, so the icon cannot be shown; WHAMSAH Tray "
                           f"keeps running. {how}Meanwhile use `whamsah-tray ctl status`, `ctl toggle-vocals`, "
                           "`ctl quit`...", key="no-tray-host", in_tooltip=False)

    def _wait_until_docked(self, icon, timeout_s: float = 2.0) -> bool:
        """Let the GTK icon dock before the engine's start (importing torch holds the GIL for a
        second or more and would delay the docking): ask the GTK loop, on its own thread. Whether
        it docked (True where this backend cannot tell)."""
        status_icon = getattr(icon, "_status_icon", None)
        if status_icon is None:
            return True
        from gi.repository import GLib

        docked = threading.Event()

        def check() -> bool:
            if status_icon.is_embedded():
                docked.set()
                return False
            return not docked.is_set()

        GLib.timeout_add(20, check)
        if not docked.wait(timeout_s):
            docked.set()  # no tray host answered: go on (check() stops at its next call)
            log.info("the tray icon is not docked after %.0f s (is a tray host running?)", timeout_s)
            return False  # a late docking is seen by the next call's check(), on the GTK loop
        return True

    def _tell_profile_problems(self) -> None:
        result = self.load_result
        if result.error:
            moved = f"; it was kept as {result.moved_aside_to.name}" if result.moved_aside_to else ""
            self.notifier.tell("Profile reset",
                               f"{result.error}{moved}. Default settings are used.", key="profile")
        elif result.warnings:
            shown = "; ".join(result.warnings[:3]) + (" …" if len(result.warnings) > 3 else "")
            self.notifier.tell("Profile", f"some settings were invalid and use their defaults: {shown}",
                               key="profile")

    def _start_hotkeys(self) -> None:
        import dataclasses

        from whamsah_tray.app.hotkeys import HotkeyManager
        from whamsah_tray.app.portal_shortcuts import PortalShortcuts, hotkey_mechanism

        a = self.actions
        actions = {
            "toggle_vocals": a.toggle_vocals,
            "vocals_up": lambda: a.step_level("vocals", +HOTKEY_STEP),
            "vocals_down": lambda: a.step_level("vocals", -HOTKEY_STEP),
            "instrumental_up": lambda: a.step_level("instrumental", +HOTKEY_STEP),
            "instrumental_down": lambda: a.step_level("instrumental", -HOTKEY_STEP),
            "bypass": a.toggle_bypass,
            "key_up": lambda: a.step_key(+1),
            "key_down": lambda: a.step_key(-1),
            "play_file": a.open_file_dialog,
        }
        bindings = dataclasses.asdict(self.store.profile.hotkeys)
        if hotkey_mechanism() == "portal":
            # Wayland: pynput hears no keys there; the desktop's portal binds them for us.
            self.hotkeys = PortalShortcuts(bindings, actions, on_unavailable=self._hotkeys_unavailable)
            self.hotkeys.start()
            return
        try:
            self.hotkeys = HotkeyManager(bindings, actions)
            problems = self.hotkeys.start()
        except Exception as error:  # pynput could not load at all (no X keyboard access)
            self.hotkeys = None
            self._hotkeys_unavailable(str(error))
            return
        if problems:
            self.notifier.tell("Hotkeys", "; ".join(p.message() for p in problems), key="hotkeys")

    def _hotkeys_unavailable(self, reason: str) -> None:
        """Said once (the notifier's key): neither pynput nor the portal gives global keys here."""
        self.notifier.tell("Hotkeys", f"global hotkeys are unavailable ({reason}). Bind "
                           "`whamsah-tray ctl toggle-vocals` (and `ctl vocals +10`, `ctl bypass`...) "
                           "in your desktop's keyboard settings instead; see the README.", key="hotkeys")

    def _start_control(self) -> None:
        """Listen for `whamsah-tray ctl`: the way to bind keys where pynput hears none (Wayland)."""
        from whamsah_tray.app.control import ControlError, ControlServer

        server = ControlServer(self.actions)
        try:
            server.start()
        except (ControlError, OSError) as error:
            log.warning("`whamsah-tray ctl` is unavailable: %s", error)
            self.notifier.tell("Remote control", f"`whamsah-tray ctl` is unavailable: {error}", key="ctl")
            return
        self.control = server

    def _install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM quit cleanly (the engine removes its cable and returns captured apps)."""
        if self.backend.name in ("appindicator", "gtk"):
            # pystray resets SIGINT to the default (kill) when its GTK loop starts: use GLib's
            # handlers, which run on the loop and survive that.
            from gi.repository import GLib

            def handler(*_):
                self.quit()
                return False

            for signum in (signal.SIGINT, signal.SIGTERM):
                GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, handler)
        elif threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: self.quit())

    # -- keeping the icon in step ----------------------------------------------------------------

    def _request_refresh(self, event: EngineEvent | None = None) -> None:
        """Engine observer: called on engine threads for every event; must return at once."""
        if event is None or isinstance(event, LIST_EVENTS):
            self._lists_wanted.set()
        self._refresh_wanted.set()

    def _refresh_loop(self) -> None:
        while not self.stopped.is_set():
            woken = self._refresh_wanted.wait(timeout=LIST_REFRESH_S)
            self._refresh_wanted.clear()
            if self.stopped.is_set():
                return
            try:
                # Apps that start playing and the cable's existence change without engine events.
                if not woken or self._lists_wanted.is_set():
                    wanted = self._lists_wanted.is_set()  # an engine event: read them now; else only if the server changed
                    self._lists_wanted.clear()
                    self.engine.refresh_lists(fresh=wanted)
                self.refresh()
            except Exception:
                log.exception("refreshing the tray failed")
            time.sleep(REFRESH_INTERVAL_S)

    def refresh(self) -> None:
        """Redraw what changed: icon, tooltip, menu; tell the user about new problems."""
        icon = self.icon
        if icon is None or self.stopped.is_set():
            return
        view = self.engine.view()
        self._follow_problems(view)
        state = status.icon_state(view)
        if state is not self._drawn_state:
            icon.icon = draw_icon(state, ICON_SIZE)
            self._drawn_state = state
        text = self.tooltip_text(view)
        if text != self._drawn_tooltip:
            icon.title = self._title(text)
            self._set_native_tooltip(icon, text)
            self._drawn_tooltip = text
        menu_key = (menu.menu_key(view), self.actions.start_at_login(), self.engine.menu_lists_key())
        if menu_key != self._drawn_menu_key:
            self._drawn_menu_key = menu_key
            icon.update_menu()
        self._flush_xorg(icon)

    def _follow_problems(self, view: EngineView) -> None:
        """The engine's user messages (missing weights, device lost/back, bad file...) become the
        notifications; its lasting conditions are in the view, which the tooltip shows."""
        for severity, text in self.engine.take_messages():
            self.notifier.tell(MESSAGE_TITLES.get(severity, APP_NAME), text)
        if view.state in (EngineState.RUNNING, EngineState.PLAYING_FILE):
            self._follow_remembered_devices(view)

    def _follow_remembered_devices(self, view: EngineView) -> None:
        """A remembered device that is not the one open fell back to the default: keep saying so
        in the tooltip (the engine notified once; the profile keeps the name, so that the device
        is used again once it is back)."""
        audio = self.store.profile.audio
        for kind, remembered, actual in (("input", audio.input_device, view.input_device),
                                         ("output", audio.output_device, view.output_device)):
            key = f"missing-{kind}"
            # Our own cable, once created, is the input whatever was remembered.
            ours = kind == "input" and self.engine.cable_exists() and "whamsah" in actual.lower()
            if remembered and actual and actual != remembered and not ours:
                self.notifier.tell("Audio device missing",
                                   f"{kind} device '{remembered}' not found; using '{actual}'",
                                   key=key, notify=False)
            else:
                self.notifier.resolve(key)

    # -- quitting --------------------------------------------------------------------------------

    def quit(self) -> None:
        """Leave the loop; `run` then stops the engine and saves the profile on the GUI thread."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        self._refresh_wanted.set()
        if self.icon is not None:
            self.icon.visible = False  # queued before stop: the icon leaves the tray at once
            self.icon.stop()

    def _shutdown(self) -> None:
        self.stopped.set()
        if self.control is not None:
            self.control.stop()
        if self.hotkeys is not None:
            self.hotkeys.stop()
        self.actions.dialog.close()
        try:
            self.engine.shutdown()
        except Exception:
            log.exception("stopping the engine failed")
        self.store.flush()
