"""What the user can do from the tray menu, the hotkeys and `ctl`, in one place: each action sends
a command to the engine (one of api.py's command objects, through `EngineLink`, which only queues
it) and records the choice in the profile. `view()` is the engine's state these decisions (and
the menu's check marks) are made from; the menu reads the lists it shows (devices, models, apps)
from the link itself.

Threads: actions run on the tray's GUI thread (menu), on pynput's listener thread (hotkeys) and on
the file dialog's waiter thread. None of them waits for the audio: engine commands are queued, the
profile write is debounced on a timer thread; a lock guards the remembered pre-mute level.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from whamsah_tray.app.macos_permissions import (BLOCKED, ask_for_microphone_access, microphone_access,
                                               open_microphone_settings)
from whamsah_tray.app.status import EngineView
from whamsah_tray.engine.api import (MAX_KEY, MAX_LEVEL_PERCENT, MIN_LEVEL_PERCENT, CaptureApp, CreateCable,
                                     EngineState, PlayFile, ReleaseApp, RemoveCable, RouteAll, Seek, SetBypass,
                                     SetDevices, SetKey, SetLevels, SetModel, SetPaused, Start, StopFile)
from whamsah_tray.errors import NoCableError

if TYPE_CHECKING:
    from whamsah_tray.app.autostart import LinuxAutostart, MacAutostart, WindowsAutostart
    from whamsah_tray.app.engine_link import EngineLink
    from whamsah_tray.app.file_dialog import FileDialog
    from whamsah_tray.app.notifications import Notifier
    from whamsah_tray.app.profile import ProfileStore

log = logging.getLogger(__name__)

# How to get a virtual cable where we cannot make one ourselves.
CABLE_GUIDES = {
    "win32": "https://vb-audio.com/Cable/",
    "darwin": "https://github.com/ExistentialAudio/BlackHole#installation",
}

HOTKEY_STEP = 10


class TrayActions:
    def __init__(
        self,
        engine: "EngineLink",
        store: "ProfileStore",
        notifier: "Notifier",
        dialog: "FileDialog",
        autostart: "LinuxAutostart | WindowsAutostart | MacAutostart",
        launch_command: Callable[[], list[str]],
        on_quit: Callable[[], None],
    ):
        self.engine = engine
        self.store = store
        self.notifier = notifier
        self.dialog = dialog
        self.autostart = autostart
        self.launch_command = launch_command
        self.on_quit = on_quit
        self._lock = threading.Lock()
        self._autostart_busy = threading.Lock()
        self._microphone_access = "authorized"  # until check_microphone_access asked macOS
        self._vocals_before_mute = store.profile.levels.vocals or 100

    # -- reading ---------------------------------------------------------------------------------

    def view(self) -> EngineView:
        return self.engine.view()

    # -- levels and bypass -----------------------------------------------------------------------

    def set_level(self, which: str, percent: int) -> None:
        """`which` is "vocals" or "instrumental"; `percent` is clamped to the level bounds."""
        percent = int(max(MIN_LEVEL_PERCENT, min(MAX_LEVEL_PERCENT, percent)))
        if which == "vocals" and percent > 0:
            with self._lock:
                self._vocals_before_mute = percent
        self.engine.send(SetLevels(**{which: percent}))
        self.store.update("levels", **{which: percent})

    def step_level(self, which: str, delta: int) -> None:
        """One hotkey step up (delta > 0) or down, landing on multiples of 10 % (65 → 70 or 60)."""
        current = getattr(self.view(), which)
        if delta > 0:
            target = (current // HOTKEY_STEP + 1) * HOTKEY_STEP
        else:
            target = ((current + HOTKEY_STEP - 1) // HOTKEY_STEP - 1) * HOTKEY_STEP
        self.set_level(which, target)

    def set_key(self, semitones: int) -> None:
        """Transpose what the user hears by -MAX_KEY..+MAX_KEY semitones (0: the original key);
        remembered."""
        semitones = int(max(-MAX_KEY, min(MAX_KEY, semitones)))
        self.engine.send(SetKey(semitones))
        self.store.update("levels", key=semitones)

    def step_key(self, delta: int) -> None:
        """One hotkey step: a semitone up or down, stopping at ±MAX_KEY."""
        self.set_key(self.view().key + delta)

    def toggle_vocals(self) -> None:
        """Mute the vocals, or bring them back to the level they had before."""
        if self.view().vocals > 0:
            with self._lock:
                self._vocals_before_mute = self.view().vocals
            self.engine.send(SetLevels(vocals=0))
            self.store.update("levels", vocals=0)
        else:
            with self._lock:
                restored = self._vocals_before_mute or 100
            self.set_level("vocals", restored)

    def toggle_bypass(self) -> None:
        self.set_bypass(not self.view().bypass)

    def set_bypass(self, on: bool) -> None:
        """Hear the input dry (on) or separated; remembered."""
        self.engine.send(SetBypass(on))
        self.store.update("levels", bypass=on)

    # -- files -----------------------------------------------------------------------------------

    def open_file_dialog(self) -> None:
        self.dialog.open(self.store.profile.file_dialog.last_folder or None, self.play_file,
                         on_error=lambda message: self.notifier.tell("Play file", message))

    def play_file(self, path: str) -> None:
        folder = str(Path(path).parent)
        self.store.update("file_dialog", last_folder=folder)
        # A file that cannot be played (vanished since the dialog, not audio) comes back as the
        # engine's user message, which the tray shows.
        self.engine.send(PlayFile(path))

    def toggle_pause(self) -> None:
        self.engine.send(SetPaused(not self.view().paused))

    def stop_file(self) -> None:
        self.engine.send(StopFile())

    def restart_file(self) -> None:
        self.engine.send(Seek(0.0))

    def back_10_s(self) -> None:
        self.engine.send(Seek(-10.0, relative=True))

    # -- devices, host API, model ----------------------------------------------------------------

    def remembered_device(self, kind: str) -> str:
        audio = self.store.profile.audio
        return audio.input_device if kind == "input" else audio.output_device

    def choose_device(self, kind: str, name: str, host_api: str = "") -> None:
        """`name` "" means the automatic choice (the system default, for the input a virtual cable
        first). `host_api`: the API the menu listed the device under. Both streams open through one
        host API, so a device of another API (on Windows the menu lists MME, DirectSound, WASAPI...)
        moves the engine to that API; the other direction keeps its device if that API has one of
        the same name, else takes its default there."""
        if not name or not host_api or host_api == self.view().host_api:
            self.store.update("audio", **{f"{kind}_device": name})
            # "" is the system default (None would leave the device as it is).
            self.engine.send(SetDevices(**{kind: name}))
            return
        other = "output" if kind == "input" else "input"
        kept = self.remembered_device(other)
        if kept not in dict(self.engine.devices(other)).get(host_api, []):
            kept = ""
        self._use_host_api(host_api, **{kind: name, other: kept})

    def choose_host_api(self, name: str) -> None:
        # Devices are remembered per host API by name; a new API starts from its defaults.
        self._use_host_api(name, input="", output="")

    def _use_host_api(self, host_api: str, input: str, output: str) -> None:
        """Both devices (by name, "" the default) on `host_api`: remembered, and one reopening."""
        self.store.update("audio", host_api=host_api, input_device=input, output_device=output)
        self.engine.send(SetDevices(input=input, output=output, host_api=host_api))

    def choose_model(self, name: str) -> None:
        self.store.update("model", name=name)
        self.engine.send(SetModel(name or None))

    # -- Linux cable and per-app capture ---------------------------------------------------------

    def create_cable(self) -> None:
        # The engine records the new cable at once; remembering "" (automatic) lets the next start
        # pick our cable again, the first choice for an input without a name.
        self.store.update("linux_cable", create_at_start=True)
        self.store.update("audio", input_device="")
        self.engine.send(CreateCable())

    def routing_all(self) -> bool:
        return self.store.profile.linux_cable.make_default_sink

    def toggle_route_all(self) -> None:
        on = not self.routing_all()
        self.store.update("linux_cable", make_default_sink=on)
        self.engine.send(RouteAll(on))

    def remove_cable(self) -> None:
        self.store.update("linux_cable", create_at_start=False, make_default_sink=False)
        # The engine stops if it was recording the cable: go on with the remembered input (or the
        # default); both commands queue behind the removal.
        self.engine.send(RemoveCable())
        self.engine.send(SetDevices(input=self.store.profile.audio.input_device))
        self.engine.send(Start())

    def toggle_capture(self, app_id: str) -> None:
        apps = {app.id: app for app in self.engine.playing_apps(fresh=True)}
        app = apps.get(app_id)
        if app is None:
            self.notifier.tell("Capture app", "that application stopped playing")
            return
        index = int(app_id)
        self.engine.send(ReleaseApp(index) if app.captured else CaptureApp(index))

    # -- desktop ---------------------------------------------------------------------------------

    def start_at_login(self) -> bool:
        return self.autostart.is_enabled()

    def toggle_start_at_login(self) -> threading.Thread | None:
        """Turn start at login on or off, on a thread of its own: on Windows it runs PowerShell
        (1-3 s), which on the GUI thread froze the tray meanwhile. A click while one change is
        under way is ignored. Returns the thread (tests wait for it)."""
        if not self._autostart_busy.acquire(blocking=False):
            return None
        thread = threading.Thread(target=self._change_start_at_login, name="start-at-login", daemon=True)
        thread.start()
        return thread

    def _change_start_at_login(self) -> None:
        try:
            if self.autostart.is_enabled():
                self.autostart.disable()
            else:
                self.autostart.enable(self.launch_command())
        except OSError as error:
            self.notifier.tell("Start at login", f"could not change {self.autostart.path}: {error}")
        finally:
            self._autostart_busy.release()
        self.store.update("startup", start_at_login=self.autostart.is_enabled())

    def microphone_blocked(self) -> bool:
        """macOS: recording is not allowed (the cable would deliver only silence); see macos_permissions."""
        return self._microphone_access in BLOCKED

    def check_microphone_access(self) -> None:
        """At start: macOS's recording permission, asked for once if never decided, told if refused."""
        self._microphone_access = microphone_access()
        if self._microphone_access == "not_determined":
            ask_for_microphone_access()
        elif self._microphone_access in BLOCKED:
            self.notifier.tell("Microphone access", "macOS does not let WHAMSAH Tray record, and a virtual cable "
                               "counts as a microphone: it would hear only silence. Allow it in System Settings ▸ "
                               "Privacy & Security ▸ Microphone (menu: Allow microphone access…), then restart "
                               "the tray.", key="microphone")

    def open_microphone_settings(self) -> None:
        open_microphone_settings()

    def open_profile_folder(self) -> None:
        folder = self.store.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        try:
            if sys.platform == "win32":
                os.startfile(folder)  # type: ignore[attr-defined]
            else:
                opener = "open" if sys.platform == "darwin" else "xdg-open"
                subprocess.Popen([opener, str(folder)], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as error:
            self.notifier.tell("Open profile folder", f"cannot open {folder}: {error.strerror or error}")

    # -- no virtual cable ------------------------------------------------------------------------

    def waiting_for_cable(self) -> bool:
        """The engine waits because there is no virtual cable to record (see NoCableError)."""
        view = self.view()
        return view.state is EngineState.DEVICE_LOST and (view.error or "").startswith(NoCableError.PREFIX)

    def get_a_cable(self) -> None:
        """Linux: make our cable (the engine records it at once). Windows/macOS: open the guide to
        installing VB-Cable / BlackHole in the browser."""
        if self.engine.linux_cable_supported():
            self.create_cable()
            return
        import webbrowser

        if not webbrowser.open(CABLE_GUIDES.get(sys.platform, CABLE_GUIDES["win32"])):
            self.notifier.tell("No virtual cable", "could not open the browser: see the README's "
                               "'Routing an app's audio into it'")

    def quit(self) -> None:
        self.on_quit()
