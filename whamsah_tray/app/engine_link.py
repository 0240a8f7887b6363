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
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from whamsah_tray.app.profile import Profile
from whamsah_tray.app.status import EngineView

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
# Listing the apps runs `pactl`: the tray asks at most this often.
APPS_CACHE_S = 1.5


@dataclass(frozen=True)
class PlayingApp:
    """An application playing audio now (Linux), as the Capture app ▸ menu lists it."""

    id: str  # the engine's id for it (PulseAudio sink-input index)
    label: str
    captured: bool


def _percent(value: Any) -> int:
    return int(round(float(value)))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "name", value))


class EngineLink:
    def __init__(self, profile: Profile, controller_factory: Callable[..., Any] | None = None):
        self._profile = profile
        self._controller_factory = controller_factory
        self._controller: Any = None
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Any], None]] = []
        self._messages: deque[str] = deque(maxlen=20)
        self._model_error: str | None = None
        self._model_name: str | None = None
        self._model_latency_ms: float | None = None
        self._file: tuple[str, float, float, bool] | None = None  # path, position, duration, paused
        self._closed = False
        self._apps_cache: tuple[float, list[PlayingApp]] = (0.0, [])

    # -- life cycle ------------------------------------------------------------------------------

    def _settings(self):
        from whamsah_tray.engine import controller as controller_module

        p = self._profile
        return controller_module.EngineSettings(
            host_api=p.audio.host_api or None,
            input_device=p.audio.input_device or None,
            output_device=p.audio.output_device or None,
            vocals=p.levels.vocals,
            instrumental=p.levels.instrumental,
            bypass=p.levels.bypass,
            model=p.model.name or None,
        )

    def start(self) -> None:
        """Build the controller from the profile and start sync mode (on the tray's setup thread)."""
        if self._controller is None:
            if self._controller_factory is None:
                from whamsah_tray.engine.controller import EngineController

                factory = EngineController
            else:
                factory = self._controller_factory
            controller = factory(self._settings())
            controller.subscribe(self._on_event)
            with self._lock:
                self._controller = controller
        if self._profile.linux_cable.create_at_start and self.linux_cable_supported():
            self._controller.create_cable(make_default=self._profile.linux_cable.make_default_sink)
        self._controller.start()
        self._wake(None)

    def shutdown(self) -> None:
        """Stop the audio, return captured apps, remove our cable, restore the default sink."""
        with self._lock:
            controller, self._closed = self._controller, True
        if controller is not None:
            controller.close(timeout=CLOSE_TIMEOUT_S)

    @property
    def controller(self) -> Any:
        return self._controller

    # -- events ----------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Any], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def _on_event(self, event: Any) -> None:
        """Controller thread: record what the snapshot lacks, then wake the tray."""
        from whamsah_tray.engine import events

        with self._lock:
            if isinstance(event, events.ModelChanged):
                self._model_name = event.name
                self._model_error = event.error
                self._model_latency_ms = event.latency_ms
            elif isinstance(event, events.FileProgress):
                self._file = None if event.finished else (event.path, event.position_s, event.duration_s, event.paused)
            elif isinstance(event, events.UserMessage):
                self._messages.append(event.text)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)

    def _wake(self, event: Any) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)

    def take_messages(self) -> list[str]:
        """User messages from the engine since the last call (for notifications)."""
        with self._lock:
            messages = list(self._messages)
            self._messages.clear()
        return messages

    # -- reading ---------------------------------------------------------------------------------

    def view(self) -> EngineView:
        controller = self._controller
        if controller is None:
            p = self._profile
            return EngineView(state="starting", vocals=p.levels.vocals, instrumental=p.levels.instrumental,
                              bypass=p.levels.bypass, model=p.model.name)
        s = controller.status
        with self._lock:
            model_error, model_name, latency = self._model_error, self._model_name, self._model_latency_ms
            file = self._file
        model = _text(getattr(s, "model", None)) or (model_name or "")
        model_error = getattr(s, "model_error", None) or model_error
        state = _text(getattr(s, "state", "stopped")).lower()
        state = getattr(getattr(s, "state", None), "value", state)
        file_path = getattr(s, "file", None) or (file[0] if file else None)
        return EngineView(
            state=state,
            vocals=_percent(s.vocals),
            instrumental=_percent(s.instrumental),
            bypass=bool(s.bypass),
            model=model,
            model_ready=bool(model) and not model_error,
            model_problem=model_error,
            latency_ms=getattr(s, "latency_ms", None) or latency,
            host_api=_text(getattr(s, "host_api", "")),
            input_device=_text(getattr(s, "input_device", "")),
            output_device=_text(getattr(s, "output_device", "")),
            file=file_path if state == "playing_file" else None,
            paused=bool(getattr(s, "paused", file[3] if file else False)),
            position_s=float(getattr(s, "position_s", file[1] if file else 0.0) or 0.0),
            duration_s=getattr(s, "duration_s", file[2] if file else None),
            error=getattr(s, "error", None),
        )

    def devices(self, kind: str) -> list[tuple[str, list[str]]]:
        """(host API, device names) pairs for "input" or "output", from the engine's last listing."""
        controller = self._controller
        if controller is None:
            return []
        listing = controller.list_devices()
        wanted = "max_input_channels" if kind == "input" else "max_output_channels"
        grouped: dict[str, list[str]] = {}
        for device in listing.devices:
            if getattr(device, wanted, 0) > 0:
                grouped.setdefault(device.host_api, []).append(device.name)
        return list(grouped.items())

    def host_apis(self) -> list[str]:
        controller = self._controller
        if controller is None:
            return []
        return [_text(api) for api in controller.list_devices().host_apis]

    def models(self) -> list[tuple[str, str]]:
        """Installed models (name, menu label), the default first."""
        try:
            from whamsah_tray.separation.registry import list_models

            infos = list_models()
        except Exception:  # a broken weights folder must not break the menu
            log.exception("listing models failed")
            return []
        return [(info.name, f"{info.name} (default)" if info.is_default else info.name) for info in infos]

    def linux_cable_supported(self) -> bool:
        return sys.platform.startswith("linux")

    def cable_exists(self) -> bool:
        controller = self._controller
        return bool(controller is not None and controller.status.cable_loaded)

    def playing_apps(self, fresh: bool = False) -> list[PlayingApp]:
        controller = self._controller
        if controller is None or not self.linux_cable_supported():
            return []
        now = time.monotonic()
        with self._lock:
            when, cached = self._apps_cache
        if not fresh and now - when < APPS_CACHE_S:
            return cached
        apps = []
        for app in controller.list_apps():
            title = f" — {app.media_title}" if getattr(app, "media_title", "") else ""
            apps.append(PlayingApp(id=str(app.index), label=f"{app.app_name}{title}", captured=bool(app.captured)))
        with self._lock:
            self._apps_cache = (now, apps)
        return apps

    def menu_lists_key(self) -> tuple:
        """Changes when a list in the menu changes (devices, apps, cable), so the menu is rebuilt."""
        if self._controller is None:
            return ()
        return (tuple(self.host_apis()), tuple(map(tuple, (x for _, x in self.devices("input")))),
                tuple(map(tuple, (x for _, x in self.devices("output")))), tuple(self.playing_apps()),
                self.cable_exists())

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

    def play_file(self, path: str) -> None:
        self._command("play_file", path)

    def pause(self) -> None:
        self._command("pause")

    def resume(self) -> None:
        self._command("resume")

    def stop_file(self) -> None:
        self._command("stop_file")

    def set_device(self, kind: str, name: str) -> None:
        self._command("set_devices", **{kind: name or None})

    def set_host_api(self, name: str) -> None:
        self._command("set_devices", host_api=name or None)

    def set_model(self, name: str) -> None:
        self._command("set_model", name or None)

    def create_cable(self, make_default: bool = False) -> None:
        self._command("create_cable", make_default=make_default)

    def remove_cable(self) -> None:
        self._command("remove_cable")

    def capture_app(self, app_id: str) -> None:
        self._apps_cache = (0.0, [])
        self._command("capture_app", int(app_id))

    def release_app(self, app_id: str) -> None:
        self._apps_cache = (0.0, [])
        self._command("release_app", int(app_id))
