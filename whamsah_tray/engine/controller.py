"""EngineController: the one owner of the audio streams, the inference worker and the file player.

The tray, the hotkeys, the CLI and the tests drive the engine only through this class; the types
they exchange with it (settings, status, states, events, commands) are in api.py.

    from whamsah_tray.engine import EngineController, EngineSettings, EngineState

    engine = EngineController(EngineSettings(input_device="cable_monitor", output_device="speakers"))
    unsubscribe = engine.subscribe(on_event)       # on_event(event) for every EngineEvent
    engine.start()                                 # sync mode: input -> separation -> output
    engine.set_levels(vocals=0)                    # percent 0..150; ramps, never clicks
    engine.play_file("song.flac")                  # async mode; back to sync mode at the end
    engine.status                                  # EngineStatus snapshot (state, levels, devices...)
    engine.close()                                 # stops everything, restores routing

Commands (all thread-safe, none blocks: each is put on the command queue and done, in order, by
the controller thread; results and failures come back as events). `send(command)` takes any of
api.py's command objects (`send(SetLevels(vocals=0))`); the methods below are typed shorthands for it:
    start() / stop()                     open / close the sync-mode streams
    set_levels(vocals=None, instrumental=None)   percent, clamped to 0..150 (the level targets
                                         change at once, so hotkeys feel immediate)
    set_bypass(on) / toggle_bypass()     dry input at the same latency (ramped, sample-aligned)
    set_key(n) / step_key(delta)         transpose both stems by n semitones (-6..+6), no added latency
    set_devices(input=None, output=None, host_api=None)   by name; missing -> system default
    set_model(name)                      None = default model; built off the audio path, then
                                         swapped in by reference
    play_file(path) / pause() / resume() / toggle_pause() / stop_file()   a new file replaces the
                                         one playing; every switch fades out what plays first
    seek(seconds, relative=False) / restart()   the playing file from another position
    create_cable(make_default=False) / remove_cable()     Linux: our own PulseAudio/PipeWire cable
    capture_app(index) / release_app(index)               Linux: move one app into / out of the cable
    close(timeout=5.0)                   (blocking) stop, release captured apps, restore the
                                         default sink, join the threads

Queries (thread-safe, cheap, return snapshots):
    status -> EngineStatus               state, levels, bypass, devices, model, latency_ms, file
                                         position/duration/paused, dropout counters
    state -> EngineState
    settings -> EngineSettings           current levels, remembered device names, model (for the
                                         profile)
    cable -> LinuxCable                  e.g. cable.exists(), read back from the sound server
    list_devices(refresh=False) -> DeviceList   host APIs and devices (refresh re-lists, only
                                         while no stream is open)
    list_apps() -> list[AppStream]       Linux: applications playing audio now (pactl)
    server_changes() -> int | None       Linux: grows when the sound server's devices or streams
                                         change (None: cannot tell; ask list_apps every time)
    wait_for(predicate, timeout) -> bool  e.g. wait_for(lambda s: s.state is EngineState.RUNNING, 5)

Events (see api.py), delivered on the controller thread; an observer must return quickly and
must not call close() (commands are fine): StateChanged, UserMessage (meant for the user: missing
weights, device lost/back, bad file...), LevelsChanged, DevicesChanged, ModelChanged, FileProgress.

States: STOPPED -> STARTING -> RUNNING <-> PLAYING_FILE; a vanished device -> DEVICE_LOST, and the
watchdog reopens the remembered device (else the default) within 2 s of its return -> RUNNING;
devices that cannot be opened -> ERROR (start() tries again). Missing model weights are not an
error state: the engine runs dry (pass-through at the same latency) and sends ModelChanged(error=...)
plus one UserMessage.

Latency (input -> output): the model's latency + two callback blocks + the worker's margin
(StreamSettings.margin_s) + soxr's bursts when the device runs at another rate than the model, all
at the same fixed value for the wet mix and the dry fallback, plus PortAudio's buffers
(StreamSettings.input_latency_s, output_latency_s). status.latency_ms reports PortAudio's estimate of the total;
bench/bench_engine.py measures it through the null sinks.

Garbage collection: a full collection walks every object the collector tracks, ~170 000 once torch,
sounddevice and a model are loaded: 75-80 ms on the 2-core test machine with the GIL held, which
the audio callbacks need (an underrun, the worker late). So once a model is loaded and once a
session is open the controller calls gc.freeze(): everything alive then moves to the permanent
generation, which collections skip. Dropped objects are still freed by reference counting; close()
calls gc.unfreeze(), so that the interpreter's exit finalises the rest (nanobind, under soxr,
reports objects it never saw freed).

This module is the command loop and the state machine (sync mode, async mode, the sessions they
open); its helpers each have one job: model_slot.py (loading models, the last request wins),
watchdog.py (the open stream's health, reopening a lost device), cable_routing.py (the Linux
cable and the apps captured into it). They run on the controller thread and call back into it.

Threads: the caller's (commands only enqueue), "whamsah-engine-control" (this class's loop: opens
and closes streams, watchdog, events), "whamsah-engine-worker" (worker.py: torch), PortAudio's
input and output callback threads (callback.py: copies only), "whamsah-model-loader" (builds a separator off the audio path),
"whamsah-file-decoder" (file_player.py).
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from whamsah_tray.engine import pulse
from whamsah_tray.engine.api import (
    CaptureApp,
    CreateCable,
    DevicesChanged,
    EngineCommand,
    EngineEvent,
    EngineSettings,
    EngineState,
    EngineStatus,
    FileProgress,
    KeyChanged,
    LevelsChanged,
    ModelChanged,
    PlayFile,
    ReleaseApp,
    RemoveCable,
    RouteAll,
    Seek,
    SetBypass,
    SetDevices,
    SetKey,
    SetLevels,
    SetModel,
    SetPaused,
    Severity,
    Start,
    StateChanged,
    Stop,
    StopFile,
    UserMessage,
)
from whamsah_tray.engine.cable_routing import CableRouting, RecoverRouting, StreamsChanged
from whamsah_tray.engine.devices import INPUT, OUTPUT, DeviceList, list_devices
from whamsah_tray.engine.levels import LevelRamp
from whamsah_tray.engine.linux_cable import AppStream, LinuxCable
from whamsah_tray.engine.model_slot import ModelLoaded, ModelSlot
from whamsah_tray.engine.pipeline import SeparationPipeline
from whamsah_tray.engine.priority import promote_current_thread
from whamsah_tray.engine.session import LiveSession, StreamSettings
from whamsah_tray.engine.silent_cable import cable_client_playing, silent_cable_message
from whamsah_tray.engine.thread_priorities import ThreadPriorities
from whamsah_tray.engine.watchdog import WATCH_S, DeviceWatchdog
from whamsah_tray.errors import AudioFileError, DeviceError, NoCableError, WhamsahError

log = logging.getLogger(__name__)

TICK_S = 0.1  # controller housekeeping period (events, end of file)
PROGRESS_S = 0.25
MODEL_WAIT_S = 5.0  # start() waits this long for a model being loaded, to start at its latency

Observer = Callable[[EngineEvent], None]


@dataclass(frozen=True)
class Close(EngineCommand):
    """The controller's last command (close() sends it): stop everything, then set `done`."""

    done: threading.Event


class EngineController:
    def __init__(self, settings: EngineSettings | None = None,
                 model_factory: Callable[[str | None], object] | None = None,
                 cable: LinuxCable | None = None) -> None:
        """model_factory(name) -> LoadedModel; default separation.load_model (tests pass an
        untrained model). It runs on the model-loader thread."""
        settings = settings or EngineSettings()
        # The stream settings never change after this: every session opens with these.
        self._stream = settings.stream or StreamSettings()
        self._settings = settings = replace(settings, stream=self._stream)
        self._levels = LevelRamp(44100, settings.vocals, settings.instrumental, settings.bypass, key=settings.key)
        self._commands: queue.Queue[EngineCommand] = queue.Queue()
        # The loader's result always reaches the queue (a close waits for nothing it brings).
        self._model_slot = ModelSlot(model_factory, self._commands.put)
        self._routing = CableRouting(self, cable or LinuxCable(), self._put)
        self._watchdog = DeviceWatchdog(self)
        self._priorities = ThreadPriorities()
        self._observers: list[Observer] = []
        self._observers_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._state = EngineState.STOPPED
        self._session: LiveSession | None = None
        self._problem: str | None = None  # why ERROR / DEVICE_LOST, for the status
        self._closed_counters = _counters(None)  # of the sessions closed so far
        self._sync_wanted = False  # sync mode should run (start() given, stop() not)
        self._last_progress = 0.0
        self._closed = False
        self._handlers = self._command_handlers()
        # Level, bypass and key targets change on the caller's thread, at once (hotkeys feel
        # immediate; the worker ramps to them); their handlers then only send the event.
        self._apply_now: dict[type[EngineCommand], Callable[[Any], None]] = {
            SetLevels: lambda c: self._levels.set(vocals=c.vocals, instrumental=c.instrumental),
            SetBypass: lambda c: self._levels.set(bypass=c.on),
            SetKey: lambda c: self._levels.set(key=c.semitones),
        }
        # First of all: undo what a killed run of ours left in the sound server's routing.
        self._commands.put(RecoverRouting())
        self._thread = threading.Thread(target=self._loop, name="whamsah-engine-control", daemon=True)
        self._thread.start()

    def _command_handlers(self) -> dict[type[EngineCommand], Callable[[Any], None]]:
        """One handler per command class, run on the controller thread (tests check that every
        command class has one)."""
        routing = self._routing
        return {
            Start: lambda c: self._start(),
            Stop: lambda c: self._stop(),
            SetLevels: lambda c: self._levels_changed(),
            SetBypass: lambda c: self._levels_changed(),
            SetKey: lambda c: self._key_changed(),
            SetDevices: lambda c: self._set_devices(c.input, c.output, c.host_api),
            SetModel: lambda c: self._set_model(c.name),
            PlayFile: lambda c: self._play_file(c.path, c.start_s),
            SetPaused: lambda c: self._pause(c.paused),
            StopFile: lambda c: self._stop_file(),
            Seek: lambda c: self._seek(c.seconds, c.relative),
            CreateCable: lambda c: routing.create(c.make_default),
            RemoveCable: lambda c: routing.remove(),
            RouteAll: lambda c: routing.route_all(c.on),
            CaptureApp: lambda c: routing.capture(c.index),
            ReleaseApp: lambda c: routing.release(c.index),
            RecoverRouting: lambda c: routing.recover(),
            StreamsChanged: lambda c: routing.streams_changed(c.index),
            ModelLoaded: self._model_loaded,
            Close: lambda c: self._close(),
        }

    # ------------------------------------------------------------------ observers, queries
    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """observer(event) is called on the controller thread for every event from now on.
        Returns a function that unsubscribes it."""
        with self._observers_lock:
            self._observers.append(observer)

        def unsubscribe() -> None:
            with self._observers_lock:
                if observer in self._observers:
                    self._observers.remove(observer)
        return unsubscribe

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def settings(self) -> EngineSettings:
        """The current choices (levels, remembered device names, model), e.g. to save a profile."""
        return replace(self._settings, vocals=self._levels.vocals_percent,
                       instrumental=self._levels.instrumental_percent, bypass=self._levels.bypass,
                       key=self._levels.key)

    @property
    def status(self) -> EngineStatus:
        with self._status_lock:
            session, state = self._session, self._state
            settings = self._settings
            closed = self._closed_counters
            problem = self._problem
        model_name, model_error = self._model_slot.snapshot()
        player = session.player if session is not None else None
        callback = session.callback if session is not None else None
        position = duration = 0.0
        if player is not None:
            played = max(0, player.consumed - (callback.delay if not player.paused else 0))
            position = min(player.start_s + played / player.sample_rate, player.duration_s)
            duration = player.duration_s
        return EngineStatus(
            state=state,
            vocals=self._levels.vocals_percent,
            instrumental=self._levels.instrumental_percent,
            bypass=self._levels.bypass,
            key=self._levels.key,
            host_api=session.output.host_api if session is not None else settings.host_api,
            input_device=(session.input.name if session.input is not None else None) if session is not None
            else settings.input_device,
            output_device=session.output.name if session is not None else settings.output_device,
            model_name=model_name,
            model_error=model_error,
            latency_ms=1000.0 * session.latency_s if session is not None else 0.0,
            sample_rate=session.sample_rate if session is not None else 0,
            file_path=str(player.path) if player is not None else None,
            position_s=position,
            duration_s=duration,
            paused=bool(player.paused) if player is not None else False,
            problem=problem,
            idle=bool(session.worker.idle) if session is not None else False,
            extra_latency_ms=1000.0 * callback.extra_lead / session.sample_rate if session is not None else 0.0,
            **_add(closed, _counters(session)),
        )

    def wait_for(self, predicate: Callable[[EngineStatus], bool], timeout: float) -> bool:
        """Polls status until predicate(status) is true; False on timeout. Not for the UI thread."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.status):
                return True
            time.sleep(0.02)
        return predicate(self.status)

    def list_devices(self, refresh: bool = False) -> DeviceList:
        """Host APIs and devices. refresh=True re-lists (ignored while a stream is open)."""
        return list_devices(refresh=refresh and self._session is None)

    def list_apps(self) -> list[AppStream]:
        """Linux: apps playing audio now (raises DeviceError without a sound server)."""
        return self._routing.cable.list_apps()

    def server_changes(self) -> int | None:
        """See pulse.change_count: list_apps() gives the same answer while this stays the same."""
        return pulse.change_count()

    @property
    def cable(self) -> LinuxCable:
        return self._routing.cable

    # ------------------------------------------------------------------ commands
    def send(self, command: EngineCommand) -> None:
        """Queue `command` (any thread; never blocks); the controller thread carries it out in
        order. A command class without a handler is refused here, on the sender's thread."""
        if type(command) not in self._handlers:
            raise TypeError(f"the engine has no handler for {type(command).__name__}")
        apply_now = self._apply_now.get(type(command))
        if apply_now is not None:
            apply_now(command)
        self._put(command)

    def _put(self, command: EngineCommand) -> None:
        if not self._closed:
            self._commands.put(command)

    def start(self) -> None:
        self.send(Start())

    def stop(self) -> None:
        self.send(Stop())

    def set_levels(self, vocals: float | None = None, instrumental: float | None = None) -> None:
        self.send(SetLevels(vocals, instrumental))

    def set_bypass(self, on: bool) -> None:
        self.send(SetBypass(bool(on)))

    def toggle_bypass(self) -> None:
        self.set_bypass(not self._levels.bypass)

    def set_key(self, semitones: int) -> None:
        """Transpose what the listener hears (both stems) by -6..+6 semitones, 0 = off; heard from
        the separator's next hop on, crossfaded (separation/key_shift.py). A model without a
        spectral path (WHAMSAHNet) keeps playing in the original key: the engine says so."""
        self.send(SetKey(semitones))

    def step_key(self, delta: int) -> None:
        self.set_key(self._levels.key + delta)

    def set_devices(self, input: str | None = None, output: str | None = None, host_api: str | None = None) -> None:
        self.send(SetDevices(input, output, host_api))

    def set_model(self, name: str | None) -> None:
        self.send(SetModel(name))

    def play_file(self, path: str | Path) -> None:
        self.send(PlayFile(str(path)))

    def pause(self) -> None:
        self.send(SetPaused(True))

    def resume(self) -> None:
        self.send(SetPaused(False))

    def toggle_pause(self) -> None:
        self.send(SetPaused(None))

    def stop_file(self) -> None:
        self.send(StopFile())

    def seek(self, seconds: float, relative: bool = False) -> None:
        """The playing file from `seconds` into it (relative: that far on from where it is now;
        negative goes back). Nothing without a file."""
        self.send(Seek(float(seconds), bool(relative)))

    def restart(self) -> None:
        self.seek(0.0)

    def create_cable(self, make_default: bool = False) -> None:
        self.send(CreateCable(make_default))

    def remove_cable(self) -> None:
        self.send(RemoveCable())

    def capture_app(self, index: int) -> None:
        self.send(CaptureApp(index))

    def route_all(self, on: bool) -> None:
        """Linux: every app's audio through the cable (the cable the default output, playing apps
        moved in; the engine's output pinned to the speakers first), or back as it was."""
        self.send(RouteAll(bool(on)))

    def release_app(self, index: int) -> None:
        self.send(ReleaseApp(index))

    def close(self, timeout: float = 5.0) -> None:
        """Stops the streams and threads; captured apps and the default sink are given back."""
        if self._closed:
            return
        done = threading.Event()
        self._commands.put(Close(done))
        self._closed = True
        done.wait(timeout)
        self._thread.join(timeout)
        gc.unfreeze()  # stopped: pauses no longer matter

    def __enter__(self) -> EngineController:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ controller thread
    def _tick_s(self) -> float:
        """How long the loop waits for a command: TICK_S, or while the engine rests (idle, no
        file) only as long as the health check allows (each wake-up costs a tray that runs all
        day ~0.02 % of a core)."""
        session = self._session
        if session is not None and session.player is None and session.worker.idle:
            return WATCH_S
        return TICK_S

    def _loop(self) -> None:
        # While this thread holds the GIL the audio callback cannot run: keep it from being
        # preempted for long by ordinary processes (where the OS allows it).
        promote_current_thread()
        while True:
            try:
                command: EngineCommand | None = self._commands.get(timeout=self._tick_s())
            except queue.Empty:
                command = None
            if command is not None:
                self._dispatch(command)
                if isinstance(command, Close):
                    command.done.set()
                    return
            try:
                self._tick()
            except Exception:
                log.exception("engine housekeeping failed")

    def _dispatch(self, command: EngineCommand) -> None:
        try:
            self._handlers[type(command)](command)
        except WhamsahError as error:
            self._tell(Severity.ERROR, str(error), error)
        except Exception as error:  # a bug must not kill the engine's thread
            name = type(command).__name__
            log.exception("engine command %s failed", name)
            self._tell(Severity.ERROR, f"internal error in '{name}': {error}")

    def _emit(self, event: EngineEvent) -> None:
        with self._observers_lock:
            observers = list(self._observers)
        for observer in observers:
            try:
                observer(event)
            except Exception:
                log.exception("engine observer failed on %r", event)

    def _tell(self, severity: Severity, text: str, error: WhamsahError | None = None) -> None:
        log.log(logging.ERROR if severity is Severity.ERROR else logging.INFO, "%s", text)
        self._emit(UserMessage(severity, text, error))

    def _set_state(self, state: EngineState, problem: str | None = None) -> None:
        """problem: why the engine is in ERROR or DEVICE_LOST (shown until the state changes)."""
        with self._status_lock:
            previous, self._state = self._state, state
            self._problem = problem
        if previous is not state:
            self._emit(StateChanged(state, previous))

    # --- model ---------------------------------------------------------------------------
    def _set_model(self, name: str | None) -> None:
        self._settings = replace(self._settings, model=name)
        self._model_slot.request(name)

    def _model_loaded(self, loaded: ModelLoaded) -> None:
        slot = self._model_slot
        if not slot.accept(loaded):
            return  # a newer request is on its way: this load lost its purpose
        if loaded.model is None:
            # Keep a model that works; without one, run dry.
            self._tell(Severity.WARNING, f"{loaded.error} — playing the audio unchanged (no separation)"
                       if slot.model is None else f"{loaded.error} — keeping model '{slot.name}'")
        else:
            if self._session is not None:
                self._session.worker.swap(self._make_pipeline(self._session.sample_rate))
            gc.freeze()  # the model's objects: never walked by a collection again (see the top)
        latency = 1000.0 * self._session.latency_s if self._session is not None else 0.0
        name, error = slot.snapshot()
        self._emit(ModelChanged(name, latency, error))

    def _make_pipeline(self, rate: int) -> SeparationPipeline:
        separator = None
        model = self._model_slot.model
        if model is not None:
            from whamsah_tray.separation import StreamingSeparator

            separator = StreamingSeparator(model, channels=2)
        return SeparationPipeline(separator, rate, 2, self._levels)

    def _wait_for_model(self) -> None:
        """Starts loading the model on first use (so that observers subscribed after the
        constructor hear about a missing model) and lets it arrive before a stream opens, for
        up to MODEL_WAIT_S; other commands stay queued meanwhile, in order."""
        slot = self._model_slot
        if not slot.requested:
            slot.request(self._settings.model)
        deadline = time.monotonic() + MODEL_WAIT_S
        pending: list[EngineCommand] = []
        while slot.loading and time.monotonic() < deadline:
            try:
                command = self._commands.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(command, ModelLoaded):
                self._model_loaded(command)
            else:
                pending.append(command)
        for command in pending:  # keep their order, ahead of anything queued since
            self._commands.put(command)

    # --- sync mode -----------------------------------------------------------------------
    def _start(self) -> None:
        self._sync_wanted = True
        self._routing.watch_streams()
        if self._session is not None or self._state is EngineState.DEVICE_LOST:
            return  # running already (sync, or a file that returns to sync mode at its end), or waiting
        self._open_sync(first_attempt=True)

    def _stop(self) -> None:
        self._sync_wanted = False
        self._close_session(fade=True)
        self._watchdog.stopped()
        self._set_state(EngineState.STOPPED)

    def _open_sync(self, first_attempt: bool, allow_fallback: bool = True) -> bool:
        """Opens the sync-mode stream with the remembered devices. Returns success."""
        if first_attempt:
            self._set_state(EngineState.STARTING)
            self._wait_for_model()
        try:
            devices = list_devices(refresh=True)
        except DeviceError as error:
            if first_attempt:
                self._set_state(EngineState.ERROR, str(error))
                self._tell(Severity.ERROR, str(error), error)
            return False
        settings = self._settings
        host_api = devices.resolve_host_api(settings.host_api)
        if not settings.input_device and not devices.virtual_cables(host_api) and \
                self._routing.make_own(settings.own_cable):
            devices = list_devices(refresh=True)
        try:
            input_device, input_missing = devices.select(settings.input_device, INPUT, host_api)
        except NoCableError as error:
            if settings.input_device:  # a named input that is missing: said below
                input_missing = True
            else:
                if first_attempt:
                    self._watchdog.enter_lost(str(error), waiting="waiting for a virtual cable")
                return False
        if input_missing:
            # Never another input in its place (the fallback would be a microphone or a loop):
            # wait for it; the user can choose another input meanwhile.
            if first_attempt:
                self._watchdog.enter_lost(f"input device '{settings.input_device}' not found",
                                          waiting="waiting for it (or choose another input)")
            return False
        output_device, output_missing = devices.select(settings.output_device, OUTPUT, host_api)
        if output_missing and not allow_fallback:
            return False
        try:
            session = LiveSession(output_device, input_device, self._make_pipeline, self._stream)
            self._priorities.before_open()
            session.open()
            self._priorities.after_open()
        except DeviceError as error:
            if first_attempt:
                self._set_state(EngineState.ERROR, str(error))
                self._tell(Severity.ERROR, str(error), error)
            return False
        if output_missing:  # (a missing input is waited for, above)
            self._tell(Severity.WARNING, f"output device '{settings.output_device}' not found; "
                                         f"using '{output_device.name}'")
        self._install(session)
        self._set_state(EngineState.RUNNING)
        return True

    def _install(self, session: LiveSession) -> None:
        with self._status_lock:
            self._session = session
        gc.freeze()  # the session's objects (and all before): never walked again
        self._watchdog.session_opened()
        self._emit(DevicesChanged(session.output.host_api, session.input.name if session.input else "",
                                  session.output.name))
        model_name, model_error = self._model_slot.snapshot()
        self._emit(ModelChanged(model_name, 1000.0 * session.latency_s, model_error))

    def _close_session(self, fade: bool = False) -> None:
        """fade: the user still hears this stream (not one that ended or whose device is lost):
        fade it to silence before closing it, so that the switch never clicks."""
        session = self._session
        if session is None:
            return
        if fade:
            session.fade_out()
        with self._status_lock:
            self._session = None
            self._closed_counters = _add(self._closed_counters, _counters(session))
        session.close()

    def _set_devices(self, input: str | None, output: str | None, host_api: str | None) -> None:
        changes = {}
        if input is not None:
            changes["input_device"] = input
        if output is not None:
            changes["output_device"] = output
        if host_api is not None:
            changes["host_api"] = host_api
        self._settings = replace(self._settings, **changes)
        if self._session is not None and self._session.player is None:
            self._close_session(fade=True)
            self._open_sync(first_attempt=True)
        elif self._session is None:
            self._emit(DevicesChanged(self._settings.host_api or "", self._settings.input_device or "",
                                      self._settings.output_device or ""))

    # --- async mode ----------------------------------------------------------------------
    def _play_file(self, path: str, start_s: float = 0.0) -> None:
        self._wait_for_model()
        devices = list_devices(refresh=self._session is None)
        if self._session is not None:
            # PortAudio can only re-list with no stream open: use the open session's output.
            output = self._session.output
        else:
            output, missing = devices.select(self._settings.output_device, OUTPUT, self._settings.host_api)
        try:
            session = LiveSession(output, None, self._make_pipeline, self._stream, file_path=path,
                                  file_start_s=start_s)
        except AudioFileError as error:
            self._tell(Severity.ERROR, str(error), error)
            return
        self._close_session(fade=True)  # what plays now (another file, sync mode) fades out first
        try:
            self._priorities.before_open()
            session.open()
            self._priorities.after_open()
        except DeviceError as error:
            self._tell(Severity.ERROR, str(error), error)
            self._after_file()
            return
        self._install(session)
        self._set_state(EngineState.PLAYING_FILE)
        self._last_progress = 0.0

    def _pause(self, paused: bool | None) -> None:
        player = self._session.player if self._session is not None else None
        if player is None:
            return
        player.paused = (not player.paused) if paused is None else paused
        self._progress(finished=False)

    def _stop_file(self) -> None:
        if self._session is None or self._session.player is None:
            return
        self._progress(finished=True)
        self._close_session(fade=True)
        self._after_file()

    def _seek(self, seconds: float, relative: bool) -> None:
        """The playing file from another position (seconds into it, or on from where it is now):
        its stream fades out and a new one starts there with a short fade-in."""
        session = self._session
        if session is None or session.player is None:
            return
        status = self.status
        target = status.position_s + seconds if relative else seconds
        target = min(max(0.0, target), max(0.0, status.duration_s - 0.05))
        paused = session.player.paused
        self._play_file(str(session.player.path), start_s=target)
        if paused and self._session is not None and self._session.player is not None:
            self._session.player.paused = True

    def _after_file(self) -> None:
        """Back to sync mode if it was running, else stopped."""
        if self._sync_wanted:
            if not self._open_sync(first_attempt=False):
                self._watchdog.enter_lost("the devices could not be reopened after the file")
        else:
            self._set_state(EngineState.STOPPED)

    def _progress(self, finished: bool) -> None:
        status = self.status
        if status.file_path is None:
            return
        self._emit(FileProgress(status.file_path, status.duration_s if finished else status.position_s,
                                status.duration_s, status.paused, finished))

    # --- events, end of file, housekeeping ------------------------------------------------
    def _key_changed(self) -> None:
        key = self._levels.key
        if key and not self._model_slot.can_change_key():
            self._tell(Severity.WARNING, f"the model '{self._model_slot.name}' cannot change the key: "
                                         "choose whamsah-rt for a key change")
        self._emit(KeyChanged(key))

    def _levels_changed(self) -> None:
        self._emit(LevelsChanged(self._levels.vocals_percent, self._levels.instrumental_percent, self._levels.bypass))

    def _tick(self) -> None:
        now = time.monotonic()
        session = self._session
        if self._state is EngineState.DEVICE_LOST:
            self._watchdog.retry_if_due(now)
            return
        if session is None:
            return
        if session.player is not None:
            if session.player.error is not None:
                self._tell(Severity.ERROR, f"{session.player.error}; playing what could be read")
                session.player.error = None
            if self._file_done(session):
                self._progress(finished=True)
                self._close_session()
                self._after_file()
                return
            if now - self._last_progress >= PROGRESS_S:
                self._last_progress = now
                self._progress(finished=False)
        if session.worker.failure is not None:
            failure, session.worker.failure = session.worker.failure, None
            self._tell(Severity.ERROR, f"the separation failed ({failure}); playing the audio unchanged")
        self._priorities.check(session)
        self._check_silent_cable(session)
        self._watchdog.check(session, now)

    def _check_silent_cable(self, session: LiveSession) -> None:
        """Sync mode: exact zeros from the cable for 10 s while the OS says an app plays into it
        (a capture the OS blocks: silent_cable.py) is told once per run of zeros."""
        watch = session.worker.zero_watch
        if watch is None or session.input is None:
            return
        name = session.input.name
        if watch.poll(confirm=lambda: cable_client_playing(name)):
            self._tell(Severity.WARNING, silent_cable_message(name))

    def _file_done(self, session: LiveSession) -> bool:
        player = session.player
        if not player.finished:
            return False
        # The mix of the last frames, through the device's buffers (closing drops what they hold).
        tail = session.callback.delay + session.output_buffer_frames + session.sample_rate // 20
        return session.callback.position >= player.end_requested + tail

    def _close(self) -> None:
        self._sync_wanted = False
        self._routing.stop_watching()
        self._close_session(fade=True)
        self._routing.restore()
        self._set_state(EngineState.STOPPED)


def _counters(session: LiveSession | None) -> dict[str, int]:
    """The dropout counters of one session (zeros for None), named as in EngineStatus."""
    if session is None:
        return dict.fromkeys(("dry_frames", "resyncs", "xruns", "output_xruns", "realignments", "margin_changes",
                              "drift_trims"), 0)
    callback = session.callback
    return {"dry_frames": callback.short_frames, "resyncs": session.worker.resyncs,
            "xruns": callback.status_flags, "output_xruns": callback.output_flags,
            "realignments": callback.realignments, "margin_changes": callback.margin_raises + callback.margin_drops,
            "drift_trims": callback.drift_trims}


def _add(first: dict[str, int], second: dict[str, int]) -> dict[str, int]:
    return {key: first[key] + second[key] for key in first}
