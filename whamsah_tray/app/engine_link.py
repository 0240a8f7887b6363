"""The tray's one connection to the engine: builds the EngineController from the profile when the
icon is up (importing numpy, PortAudio and the model takes a second or more, so the icon shows
first), passes on the engine's commands (api.py's typed command objects), and turns the controller's snapshots and events into what the menu and the tooltip draw
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
from typing import TYPE_CHECKING, Callable

from whamsah_tray.app.profile import Profile
from whamsah_tray.app.status import EngineView
from whamsah_tray.engine.api import (CreateCable, DevicesChanged, EngineCommand, EngineEvent, EngineSettings,
                                     EngineState, RouteAll, Severity, Start, UserMessage)

if TYPE_CHECKING:
    # The heavy engine (numpy, PortAudio) is imported only once the icon shows (see start()).
    from whamsah_tray.engine.controller import EngineController
    from whamsah_tray.engine.devices import DeviceList
    from whamsah_tray.engine.pulse import ServerLook
    from whamsah_tray.separation.registry import ModelInfo

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
LISTS_MAX_AGE_S = 30.0  # the app list is read again after this long even if the server reported no change


@dataclass(frozen=True)
class PlayingApp:
    """An application playing audio now (Linux), as the Capture app ▸ menu lists it."""

    id: str  # the engine's id for it (PulseAudio sink-input index)
    label: str
    captured: bool


def model_label(info: ModelInfo) -> str:
    """A model's Model-menu entry: its name, whether it is the default, and its latency, e.g.
    'whamsah-rt (default, 58 ms)', 'whamsahnet (1.5 s)'."""
    ms = info.latency_ms
    latency = f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"
    return f"{info.name} ({'default, ' if info.is_default else ''}{latency})"


def _percent(value: float) -> int:
    return int(round(float(value)))


# Called with each engine event, or None for "look again" (after the engine started).
Subscriber = Callable[[EngineEvent | None], None]


class EngineLink:
    def __init__(self, profile: Profile,
                 controller_factory: Callable[[EngineSettings], EngineController] | None = None):
        self._profile = profile
        self._controller_factory = controller_factory
        self._controller: EngineController | None = None
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._messages: deque[tuple[Severity, str]] = deque(maxlen=20)
        # Lists the menu shows, cached: listing runs pactl, and PortAudio may only be asked on the
        # controller thread (it re-initialises PortAudio to re-list devices).
        self._devices: DeviceList | None = None  # refreshed on the controller thread
        self._apps: list[PlayingApp] = []
        self._cable_exists = False
        self._lists_look: ServerLook | None = None  # on the controller's change count, once it is built
        self._start_error: str | None = None  # why the controller could not be built

    # -- life cycle ------------------------------------------------------------------------------

    def _settings(self) -> EngineSettings:
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
        controller = self._controller
        if controller is None:
            try:
                if self._controller_factory is None:
                    from whamsah_tray.engine.controller import EngineController

                    controller = EngineController(self._settings())
                else:
                    controller = self._controller_factory(self._settings())
            except Exception as error:
                self._start_error = str(error) or type(error).__name__
                raise
            controller.subscribe(self._on_event)
            with self._lock:
                self._controller = controller
        linux = self.linux_cable_supported()
        if self._profile.linux_cable.create_at_start and linux:
            controller.send(CreateCable())
        controller.send(Start())
        if self._profile.linux_cable.make_default_sink and linux:
            controller.send(RouteAll(True))
        self.refresh_lists()
        self._wake(None)

    def shutdown(self) -> None:
        """Stop the audio, give captured apps and the default sink back, and remove the cable if
        this tray made it (a quit leaves no cable behind)."""
        controller = self._controller
        if controller is None:
            return
        controller.close(timeout=CLOSE_TIMEOUT_S)  # removes a cable this process made

    @property
    def controller(self) -> EngineController | None:
        return self._controller

    # -- events ----------------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def _on_event(self, event: EngineEvent) -> None:
        """Controller thread: keep the device list and user messages, then wake the tray."""
        controller = self._controller
        if isinstance(event, DevicesChanged) and controller is not None:
            # On the controller thread, right after it (re)listed the devices: the one safe moment.
            try:
                devices = controller.list_devices()
            except Exception:
                log.exception("listing devices failed")
            else:
                with self._lock:
                    self._devices = devices
        elif isinstance(event, UserMessage):
            with self._lock:
                self._messages.append((event.severity, event.text))
        self._wake(event)

    def _wake(self, event: EngineEvent | None) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)

    def take_messages(self) -> list[tuple[Severity, str]]:
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
            return EngineView(state=EngineState.ERROR if self._start_error else EngineState.STARTING,
                              vocals=p.levels.vocals,
                              instrumental=p.levels.instrumental, bypass=p.levels.bypass, key=p.levels.key,
                              model=p.model.name,
                              error=self._start_error)
        s = controller.status
        playing = s.state is EngineState.PLAYING_FILE
        return EngineView(
            state=s.state,
            vocals=_percent(s.vocals),
            instrumental=_percent(s.instrumental),
            bypass=bool(s.bypass),
            model=s.model_name or controller.settings.model or "",
            model_ready=s.model_name is not None,
            model_problem=s.model_error if s.model_name is None else None,
            latency_ms=s.latency_ms or None,
            extra_latency_ms=float(s.extra_latency_ms),
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
        look = self._lists_look
        if look is None:
            from whamsah_tray.engine.pulse import ServerLook

            look = self._lists_look = ServerLook(LISTS_MAX_AGE_S, count=controller.server_changes)
        if not look.due(force=fresh):
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
        look.done()

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

    def menu_lists_key(self) -> tuple[int, tuple[PlayingApp, ...], bool]:
        """Changes when a list in the menu changes (devices, apps, cable), so the menu is rebuilt."""
        with self._lock:
            return (id(self._devices), tuple(self._apps), self._cable_exists)

    # -- commands (all queue and return) ---------------------------------------------------------

    def send(self, command: EngineCommand) -> None:
        """Queue one of the engine's commands (api.py); ignored, and logged, before the engine is
        built."""
        controller = self._controller
        if controller is None:
            log.info("engine not started yet; %s ignored", command)
            return
        controller.send(command)
