"""The tray's one connection to the engine: builds the EngineController from the profile when the
icon is up (importing torch takes a second or two, so the icon shows first), forwards commands,
and turns the controller's snapshots and events into what the menu and the tooltip draw
(`EngineView`, device and app lists, messages for the user).

Threads: commands and queries come from the GUI thread, the hotkey thread and the dialog's waiter
thread; the controller makes them thread-safe (commands only enqueue). `_on_event` runs on the
engine's controller thread: it stores the few facts that the snapshot does not carry, queues user
messages and wakes the tray's subscribers (which only set a flag), under a short lock.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from whamsah_tray.app.profile import Profile
from whamsah_tray.app.status import EngineView

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
LISTS_MAX_AGE_S = 30.0  # the app list is read again after this long even if the server reported no change


@dataclass(frozen=True)
class PlayingApp:
    """An application playing audio now (Linux), as the Capture app ▸ menu lists it."""

    id: str  # the engine's id for it (PulseAudio sink-input index)
    label: str
    captured: bool


def model_label(info) -> str:
    """A model's Model-menu entry: its name, whether it is the default, and its latency, e.g.
    'whamsah-rt (default, 58 ms)', 'whamsahnet (1.5 s)'."""
    ms = info.latency_ms
    latency = f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"
    return f"{info.name} ({'default, ' if info.is_default else ''}{latency})"


def _percent(value: Any) -> int:
    return int(round(float(value)))


class EngineLink:
    def __init__(self, profile: Profile, controller_factory: Callable[..., Any] | None = None):
        self._profile = profile
        self._controller_factory = controller_factory
        self._controller: Any = None
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Any], None]] = []
        self._messages: deque[tuple[str, str]] = deque(maxlen=20)  # (severity, text)
        # Lists the menu shows, cached: listing runs pactl, and PortAudio may only be asked on the
        # controller thread (it re-initialises PortAudio to re-list devices).
        self._devices: Any = None  # DeviceList, refreshed on the controller thread
        self._apps: list[PlayingApp] = []
        self._cable_exists = False
        self._lists_look: Any = None  # pulse.ServerLook on the controller's change count, once it is built
        self._start_error: str | None = None  # why the controller could not be built

    # -- life cycle ------------------------------------------------------------------------------

    def _settings(self):
        from whamsah_tray.engine import EngineSettings
        from whamsah_tray.engine.session import stream_settings_for

        p = self._profile
        return EngineSettings(
            stream=stream_settings_for(p.audio.latency),
            host_api=p.audio.host_api or None,
            input_device=p.audio.input_device or None,
            output_device=p.audio.output_device or None,
            vocals=float(p.levels.vocals),
            instrumental=float(p.levels.instrumental),
            bypass=p.levels.bypass,
            key=p.levels.key,
            model=p.model.name or None,
        )

    def start(self) -> None:
        """Build the controller from the profile and start sync mode (on the tray's setup thread)."""
        if self._controller is None:
            try:
                if self._controller_factory is None:
                    from whamsah_tray.engine import EngineController

                    factory = EngineController
                else:
                    factory = self._controller_factory
                controller = factory(self._settings())
            except Exception as error:
                self._start_error = str(error) or type(error).__name__
                raise
            controller.subscribe(self._on_event)
            with self._lock:
                self._controller = controller
        linux = self.linux_cable_supported()
        if self._profile.linux_cable.create_at_start and linux:
            self.create_cable()
        self._controller.start()
        if self._profile.linux_cable.make_default_sink and linux:
            self.route_all(True)
        self.refresh_lists()
        self._wake(None)

    def start_sync(self) -> None:
        """Start (or keep running) sync mode, e.g. after the input it recorded went away."""
        self._command("start")

    def shutdown(self) -> None:
        """Stop the audio, give captured apps and the default sink back, and remove the cable if
        this tray made it (a quit leaves no cable behind)."""
        controller = self._controller
        if controller is None:
            return
        controller.close(timeout=CLOSE_TIMEOUT_S)  # removes a cable this process made

    @property
    def controller(self) -> Any:
        return self._controller

    # -- events ----------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Any], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def _on_event(self, event: Any) -> None:
        """Controller thread: keep the device list and user messages, then wake the tray."""
        from whamsah_tray.engine import DevicesChanged, UserMessage

        if isinstance(event, DevicesChanged):
            # On the controller thread, right after it (re)listed the devices: the one safe moment.
            try:
                devices = self._controller.list_devices()
            except Exception:
                log.exception("listing devices failed")
            else:
                with self._lock:
                    self._devices = devices
        elif isinstance(event, UserMessage):
            with self._lock:
                self._messages.append((event.severity.value, event.text))
        self._wake(event)

    def _wake(self, event: Any) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)

    def take_messages(self) -> list[tuple[str, str]]:
        """(severity, text) of the engine's user messages since the last call."""
        with self._lock:
            messages = list(self._messages)
            self._messages.clear()
        return messages

    # -- reading ---------------------------------------------------------------------------------

    def view(self) -> EngineView:
        controller = self._controller
        p = self._profile
        if controller is None:
            return EngineView(state="error" if self._start_error else "starting", vocals=p.levels.vocals,
                              instrumental=p.levels.instrumental, bypass=p.levels.bypass, key=p.levels.key,
                              model=p.model.name,
                              error=self._start_error)
        s = controller.status
        state = s.state.value
        playing = state == "playing_file"
        return EngineView(
            state=state,
            vocals=_percent(s.vocals),
            instrumental=_percent(s.instrumental),
            bypass=bool(s.bypass),
            model=s.model_name or controller.settings.model or "",
            model_ready=s.model_name is not None,
            model_problem=s.model_error if s.model_name is None else None,
            latency_ms=s.latency_ms or None,
            host_api=s.host_api or "",
            input_device=s.input_device or "",
            output_device=s.output_device or "",
            file=s.file_path if playing else None,
            paused=bool(s.paused) and playing,
            position_s=float(s.position_s),
            duration_s=float(s.duration_s) if s.duration_s else None,
            error=s.problem,
            idle=bool(s.idle),
            key=int(s.key),
        )

    def refresh_lists(self, fresh: bool = False) -> None:
        """Re-read the running apps and whether the cable exists (pactl; the refresher thread),
        unless the sound server reported no change since the last time (fresh=True: always)."""
        controller = self._controller
        if controller is None or not self.linux_cable_supported():
            return
        if self._lists_look is None:
            from whamsah_tray.engine.pulse import ServerLook

            self._lists_look = ServerLook(LISTS_MAX_AGE_S, count=controller.server_changes)
        if not self._lists_look.due(force=fresh):
            return
        try:
            apps = [PlayingApp(id=str(a.index), label=a.label, captured=bool(a.captured))
                    for a in controller.list_apps()]
            exists = controller.cable.exists()
        except Exception as error:  # no sound server (DeviceError), pactl gone...: keep the last lists
            log.warning("listing the apps playing audio failed: %s", error)
            return
        with self._lock:
            self._apps, self._cable_exists = apps, exists
        self._lists_look.done()

    def devices(self, kind: str) -> list[tuple[str, list[str]]]:
        """(host API, device names) for "input" or "output", from the engine's last listing."""
        with self._lock:
            listing = self._devices
        if listing is None:
            return []
        grouped: dict[str, list[str]] = {}
        for device in listing.devices:
            if device.channels(kind) > 0:
                grouped.setdefault(device.host_api, []).append(device.name)
        return list(grouped.items())

    def host_apis(self) -> list[str]:
        with self._lock:
            listing = self._devices
        if listing is None:
            return []
        used = {d.host_api for d in listing.devices}
        return [api for api in listing.host_apis if api in used]

    def models(self) -> list[tuple[str, str]]:
        """Installed models (name, menu label), the default first."""
        try:
            from whamsah_tray.separation.registry import list_models

            infos = list_models()
        except Exception:  # a broken weights folder must not break the menu
            log.exception("listing models failed")
            return []
        return [(info.name, model_label(info)) for info in infos]

    def linux_cable_supported(self) -> bool:
        return sys.platform.startswith("linux")

    def cable_exists(self) -> bool:
        with self._lock:
            return self._cable_exists

    def playing_apps(self, fresh: bool = False) -> list[PlayingApp]:
        if fresh:
            self.refresh_lists(fresh=True)
        with self._lock:
            return list(self._apps)

    def menu_lists_key(self) -> tuple:
        """Changes when a list in the menu changes (devices, apps, cable), so the menu is rebuilt."""
        with self._lock:
            return (id(self._devices), tuple(self._apps), self._cable_exists)

    # -- commands (all queue and return) ---------------------------------------------------------

    def _command(self, name: str, *args, **kwargs) -> None:
        controller = self._controller
        if controller is None:
            log.info("engine not started yet; %s ignored", name)
            return
        getattr(controller, name)(*args, **kwargs)

    def set_levels(self, vocals: int | None = None, instrumental: int | None = None) -> None:
        self._command("set_levels", vocals=vocals, instrumental=instrumental)

    def set_bypass(self, on: bool) -> None:
        self._command("set_bypass", on)

    def set_key(self, semitones: int) -> None:
        self._command("set_key", semitones)

    def play_file(self, path: str) -> None:
        self._command("play_file", path)

    def pause(self) -> None:
        self._command("pause")

    def resume(self) -> None:
        self._command("resume")

    def stop_file(self) -> None:
        self._command("stop_file")

    def restart_file(self) -> None:
        self._command("restart")

    def seek_file(self, seconds: float) -> None:
        """On (or back, negative) from where the file is now."""
        self._command("seek", seconds, relative=True)

    def set_device(self, kind: str, name: str) -> None:
        """`name` "" is the system default (None would mean "unchanged" to the controller)."""
        self._command("set_devices", **{kind: name})

    def set_devices(self, input: str, output: str, host_api: str) -> None:
        """Both devices (by name, "" the default) on `host_api` at once: one reopening."""
        self._command("set_devices", input=input, output=output, host_api=host_api)

    def set_model(self, name: str) -> None:
        self._command("set_model", name or None)

    def create_cable(self, make_default: bool = False) -> None:
        self._command("create_cable", make_default=make_default)

    def remove_cable(self) -> None:
        self._command("remove_cable")

    def route_all(self, on: bool) -> None:
        self._command("route_all", on)

    def capture_app(self, app_id: str) -> None:
        self._command("capture_app", int(app_id))

    def release_app(self, app_id: str) -> None:
        self._command("release_app", int(app_id))
