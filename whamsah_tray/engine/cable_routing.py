"""The engine's Linux cable commands: our own PulseAudio/PipeWire cable (made, removed, recorded),
apps captured into it, all audio routed through it, the routing a killed run left behind put
back, and the sound server's stream events that keep Capture app ▸ current.

`LinuxCable` (linux_cable.py) talks to the sound server; this module decides what the engine does
around it (which input it records, whether it reopens, what the user is told).

Threads: the controller thread only, except the stream listener's callback (pulse.py's thread),
which only posts a `StreamsChanged` command.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from whamsah_tray.engine import pulse
from whamsah_tray.engine.api import AppsChanged, EngineCommand, Severity
from whamsah_tray.engine.devices import AudioDevice, list_devices
from whamsah_tray.engine.linux_cable import LinuxCable
from whamsah_tray.errors import DeviceError

if TYPE_CHECKING:
    from whamsah_tray.engine.controller import EngineController

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoverRouting(EngineCommand):
    """Undo what a killed run of ours left in the sound server's routing (the controller's first
    command)."""


@dataclass(frozen=True)
class StreamsChanged(EngineCommand):
    """The sound server reported a playback stream that came, went or moved (index None: unknown)."""

    index: int | None


class CableRouting:
    def __init__(self, engine: EngineController, cable: LinuxCable,
                 post: Callable[[EngineCommand], None]) -> None:
        self._engine = engine
        self.cable = cable
        self._post = post
        self.declined = False  # the user removed our cable: never made again unasked
        self._forget_streams_listener: Callable[[], None] | None = None

    # -- commands --------------------------------------------------------------------------------

    def create(self, make_default: bool) -> None:
        self.declined = False
        self.cable.create(make_default=make_default)
        monitor = self.monitor()
        name = monitor.name if monitor is not None else self.cable.monitor_name
        self._engine._tell(Severity.INFO, f"virtual cable '{self.cable.description}' ready"
                           + (" and made the default output" if make_default else ""))
        self._engine._set_devices(name, None, None)

    def remove(self) -> None:
        engine = self._engine
        session = engine._session
        uses_cable = session is not None and session.input is not None and \
            session.input.pulse_name == self.cable.monitor_name
        monitor = self.monitor()
        if uses_cable:
            engine._close_session(fade=True)
        self.cable.remove()
        self.declined = True
        if engine._settings.input_device in (self.cable.monitor_name, monitor.name if monitor else None):
            engine._settings = replace(engine._settings, input_device=None)  # gone for good, not "lost"
        engine._tell(Severity.INFO, f"virtual cable '{self.cable.description}' removed")
        if uses_cable and engine._sync_wanted:
            # The remembered input if one was chosen, else wait for a cable (never made again unasked).
            engine._open_sync(first_attempt=True)

    def route_all(self, on: bool) -> None:
        engine = self._engine
        if not on:
            self.cable.restore_default()
            self.cable.release_all()
            engine._tell(Severity.INFO, "apps play to their own outputs again")
            return
        if not engine._settings.output_device:
            # The engine's output follows the default sink, which is about to become the cable:
            # pin it to the speakers it plays to now (else it would play into its own input).
            default = pulse.default_sink()
            if default and default != self.cable.sink_name:
                engine._set_devices(None, default, None)
        self.ensure()
        self.cable.route_all()
        engine._tell(Severity.INFO, f"all audio now plays through WHAMSAH ('{self.cable.description}' "
                                    "is the default output)")

    def capture(self, index: int) -> None:
        """One click: creates the cable if needed (the engine then records it), then routes the app."""
        self.ensure()
        self.cable.capture(index)

    def release(self, index: int) -> None:
        self.cable.release(index)

    def recover(self) -> None:
        if not sys.platform.startswith("linux") or not pulse.available():
            return
        try:
            done = self.cable.recover()
        except DeviceError as error:
            log.warning("could not put back the routing a previous run left: %s", error)
            return
        if done:
            self._engine._tell(Severity.INFO, f"put back the audio routing that a WHAMSAH Tray which ended "
                                              f"unexpectedly had left: {done}")

    def streams_changed(self, index: int | None) -> None:
        session = self._engine._session
        if session is not None and index is not None and index in session.own_sink_inputs:
            return  # our own output (corked and uncorked as the engine rests): not an app
        self._engine._emit(AppsChanged())

    # -- for the controller's sync mode ----------------------------------------------------------

    def monitor(self) -> AudioDevice | None:
        """The input device that records our cable's monitor (None while the cable is absent)."""
        return next((d for d in list_devices(refresh=self._engine._session is None).devices
                     if d.pulse_name == self.cable.monitor_name), None)

    def ensure(self) -> None:
        """Our cable, made if absent (the engine then records it; removed at close)."""
        if not self.cable.exists():
            self.create(False)

    def make_own(self, wanted: bool) -> bool:
        """Linux with a PulseAudio/PipeWire server: creates our cable for an input with no name
        (as NoiseTorch creates its device), to be removed at close. False where it cannot, or
        where it is not `wanted` (the settings' own_cable) or the user removed it."""
        if not wanted or self.declined or not sys.platform.startswith("linux") or not pulse.available():
            return False
        try:
            existed = self.cable.exists()
            self.cable.create()
        except DeviceError as error:
            log.warning("could not create the virtual cable: %s", error)
            return False
        if not existed:
            self._engine._tell(Severity.INFO, f"virtual cable '{self.cable.description}' created: play an app "
                                              "into it (tray menu: Capture app) and hear it as karaoke")
        return True

    def watch_streams(self) -> None:
        """Capture app ▸ is current when the menu opens: the server's events, not a poll."""
        if self._forget_streams_listener is None and sys.platform.startswith("linux") and pulse.available():
            self._forget_streams_listener = pulse.on_streams_changed(lambda index: self._post(StreamsChanged(index)))
            pulse.change_count()  # starts the watch

    def stop_watching(self) -> None:
        if self._forget_streams_listener is not None:
            self._forget_streams_listener()
            self._forget_streams_listener = None

    def restore(self) -> None:
        """At close, after the streams closed: the sound server's routing as it was."""
        try:
            if pulse.available():
                self.cable.close(remove=self.cable.created_here)  # a cable this process made goes
        except DeviceError as error:
            log.warning("restoring the sound server's routing failed: %s", error)
