"""Our own virtual audio cable on Linux, and per-application capture, through the sound server.

The cable is a null sink (`module-null-sink`, PulseAudio and PipeWire alike): apps play into the
sink "whamsah_cable" and the engine records its monitor "whamsah_cable.monitor" (opened through
the ALSA `pulse` device with PULSE_SOURCE set, see devices.py). Optionally it becomes the default
sink, so that every app plays into it; the previous default comes back on `restore_default()`.

Per-app capture moves one app's stream (a sink input) into the cable and remembers where it came
from; `release()` moves it back there (or to the default sink if that one is gone). Before the
cable is removed every stream still playing into it is moved out, so no app is ever left routed
into a dead cable.

Whether the cable exists, where each stream plays and which sink is the default are read back from
the server on every call, never assumed. What only we can know (where a captured app came from,
which default sink we replaced, whether we made the cable) lives in this object and, so that a
killed process's changes can be undone at the next start (`recover()`), in a routing journal on
disk (routing_journal.py).

"Route all audio through WHAMSAH" (`route_all()`) is the cable made the default sink plus every
playing app captured; apps that start later play into the default, the cable.

Runs on the controller thread (pactl subprocesses); never on the audio thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from whamsah_tray.engine import pulse
from whamsah_tray.engine.routing_journal import RoutingJournal, RoutingState
from whamsah_tray.errors import DeviceError

CABLE_SINK = "whamsah_cable"
CABLE_DESCRIPTION = "WHAMSAH-Cable"
CABLE_RATE = 44100  # the model's rate: what apps play into the cable reaches the engine unresampled


@dataclass(frozen=True)
class AppStream:
    """An application playing audio now (one sink input)."""

    index: int
    app_name: str
    icon_name: str
    media_title: str
    sink: str  # name of the sink it plays into
    captured: bool  # True when it plays into our cable

    @property
    def label(self) -> str:
        return f"{self.app_name} — {self.media_title}" if self.media_title else self.app_name


class LinuxCable:
    def __init__(self, sink_name: str = CABLE_SINK, description: str = CABLE_DESCRIPTION,
                 journal: RoutingJournal | None = None) -> None:
        """journal: where routing changes are recorded (None: the user's state folder)."""
        self.sink_name = sink_name
        self.description = description
        self.monitor_name = f"{sink_name}.monitor"
        self.created_here = False  # this process loaded the cable's module
        self._previous_default: str | None = None  # the default sink we replaced, if we did
        self._came_from: dict[int, str] = {}  # sink input index -> sink it played into before
        self._journal = journal or RoutingJournal(cable=sink_name)
        self._recorded = RoutingState()  # what the journal holds now

    def _record(self) -> None:
        """Writes what is ours to undo to the journal (removes it when nothing is), if it changed."""
        state = RoutingState(self.created_here, self._previous_default, dict(self._came_from))
        if state == self._recorded:
            return
        try:
            self._journal.write(state)
            self._recorded = state
        except OSError:
            pass  # an unwritable state folder must not stop the audio; only crash recovery is lost

    # --- the cable -------------------------------------------------------------------------
    def exists(self) -> bool:
        return self._sink() is not None

    def _sink(self) -> pulse.PulseNode | None:
        return next((sink for sink in pulse.sinks() if sink.name == self.sink_name), None)

    def create(self, make_default: bool = False) -> None:
        """Loads the null sink unless it is there already (e.g. left by an earlier run)."""
        if not self.exists():
            pulse.load_module(
                "module-null-sink", f"sink_name={self.sink_name}", f"rate={CABLE_RATE}", "channels=2",
                f"sink_properties=device.description={self.description}")
            if not self.exists():
                raise DeviceError(f"the sound server did not create the cable '{self.sink_name}'")
            self.created_here = True
            self._record()
        if make_default:
            self.make_default()

    def remove(self) -> None:
        """Moves every stream out of the cable, restores the default sink, unloads the cable."""
        sink = self._sink()
        if sink is None:
            self._came_from.clear()
            return
        self.restore_default()
        self.release_all()
        self.evacuate()
        if sink.owner_module is None:
            raise DeviceError(f"cannot remove the cable '{self.sink_name}': the server does not say which module owns it")
        pulse.unload_module(sink.owner_module)
        self._came_from.clear()
        self.created_here = False
        self._record()

    # --- default sink ----------------------------------------------------------------------
    def is_default(self) -> bool:
        return pulse.default_sink() == self.sink_name

    def make_default(self) -> None:
        current = pulse.default_sink()
        if current == self.sink_name:
            return
        if not self.exists():
            raise DeviceError(f"the cable '{self.sink_name}' does not exist")
        self._previous_default = current or None
        self._record()  # before the change: a crash right after it is still undone
        pulse.set_default_sink(self.sink_name)

    def restore_default(self) -> None:
        """Gives the default back to the sink we replaced (if it still exists, else any other)."""
        if not self.is_default():
            self._previous_default = None
            return
        target = self._previous_default
        names = [sink.name for sink in pulse.sinks()]
        if target not in names:
            target = next((name for name in names if name != self.sink_name), None)
        if target:
            pulse.set_default_sink(target)
        self._previous_default = None
        self._record()

    def evacuate(self) -> None:
        """Moves every stream still playing into the cable to the default sink (or another)."""
        sink = self._sink()
        fallback = self._fallback_sink()
        if sink is None or fallback is None:
            return
        for stream in pulse.sink_inputs():
            if stream.device_index == sink.index:
                pulse.move_sink_input(stream.index, fallback)

    def _fallback_sink(self) -> str | None:
        """Where a stream leaving the cable goes when its own sink is gone: the default sink, or
        else any sink that is not the cable."""
        names = [sink.name for sink in pulse.sinks() if sink.name != self.sink_name]
        default = pulse.default_sink()
        if default in names:
            return default
        return names[0] if names else None

    # --- per-app capture --------------------------------------------------------------------
    def list_apps(self) -> list[AppStream]:
        """Every app playing audio now, ours (the engine's own output) excluded."""
        names = {sink.index: sink.name for sink in pulse.sinks()}
        apps = []
        for stream in pulse.sink_inputs():
            if "whamsah.stream" in stream.properties:
                continue
            sink = names.get(stream.device_index, "")
            apps.append(AppStream(stream.index, stream.app_name, stream.icon_name, stream.media_title,
                                  sink, sink == self.sink_name))
        return apps

    def capture(self, stream_index: int) -> None:
        """Moves the app's stream into the cable, remembering where it played before."""
        app = next((app for app in self.list_apps() if app.index == stream_index), None)
        if app is None:
            raise DeviceError(f"no application is playing as stream #{stream_index} any more")
        if not self.exists():
            raise DeviceError(f"the cable '{self.sink_name}' does not exist: create it first")
        if app.captured:
            return
        self._came_from[stream_index] = app.sink
        self._record()
        pulse.move_sink_input(stream_index, self.sink_name)

    def release(self, stream_index: int) -> None:
        """Moves a captured app back to where it played before (or to the default sink)."""
        came_from = self._came_from.pop(stream_index, None)
        self._record()
        app = next((app for app in self.list_apps() if app.index == stream_index), None)
        if app is None or not app.captured:
            return  # the app has stopped playing, or was moved elsewhere by the user
        names = {sink.name for sink in pulse.sinks()}
        target = came_from if came_from in names and came_from != self.sink_name else self._fallback_sink()
        if target is None:
            raise DeviceError("there is no other sink to move the app back to")
        pulse.move_sink_input(stream_index, target)

    def release_all(self) -> None:
        for stream_index in list(self._came_from):
            self.release(stream_index)

    def captured(self) -> list[int]:
        """Stream indexes we moved into the cable that still play there."""
        playing = {app.index for app in self.list_apps() if app.captured}
        return [index for index in self._came_from if index in playing]

    def route_all(self) -> None:
        """Every app into the cable: the cable becomes the default sink (apps that start later
        play there) and each app playing elsewhere now is captured (released one by one, or all
        by restore_default() + release_all(), or at close)."""
        if not self.exists():
            raise DeviceError(f"the cable '{self.sink_name}' does not exist")
        self.make_default()
        for app in self.list_apps():
            if not app.captured:
                self.capture(app.index)

    def recover(self) -> str | None:
        """Undoes what a killed process of ours left in the journal, as that process would have
        at its quit: the default sink back, the apps it moved back where they played, its cable
        removed. Returns what was done (for the user), or None when there was nothing to undo."""
        left = self._journal.left_behind()
        if left is None:
            return None
        # Take the dead process's state over (and its journal: ours from now on), then undo it.
        self.created_here, self._previous_default, self._came_from = \
            left.cable_created, left.previous_default, dict(left.came_from)
        self._recorded = left
        done = []
        if self._previous_default and self.is_default():
            done.append("the default output put back")
        moved = len(self.captured())
        self.restore_default()
        self.release_all()
        if moved:
            done.append(f"{moved} app{'s' if moved != 1 else ''} moved back")
        if self.created_here and self.exists():
            self.remove()
            done.append(f"its cable '{self.description}' removed")
        self.created_here = False
        self._record()  # nothing left: the journal goes
        return "; ".join(done) if done else None

    def close(self, remove: bool = False) -> None:
        """On quit: the default sink back, captured apps back where they came from, any other
        stream out of the cable (nobody listens to it any more); the cable removed if asked."""
        if not self.exists():
            return
        if remove:
            self.remove()
            return
        self.restore_default()
        self.release_all()
        self.evacuate()
