"""EngineController: the one owner of the audio streams, the inference worker and the file player.

The tray, the hotkeys, the CLI and the tests drive the engine only through this class.

    from whamsah_tray.engine import EngineController, EngineSettings, EngineState

    engine = EngineController(EngineSettings(input_device="cable_monitor", output_device="speakers"))
    unsubscribe = engine.subscribe(on_event)       # on_event(event) for every EngineEvent
    engine.start()                                 # sync mode: input -> separation -> output
    engine.set_levels(vocals=0)                    # percent 0..150; ramps, never clicks
    engine.play_file("song.flac")                  # async mode; back to sync mode at the end
    engine.status                                  # EngineStatus snapshot (state, levels, devices...)
    engine.close()                                 # stops everything, restores routing

Commands (all thread-safe, none blocks: each is put on the command queue and done, in order, by
the controller thread; results and failures come back as events):
    start() / stop()                     open / close the sync-mode streams
    set_levels(vocals=None, instrumental=None)   percent, clamped to 0..150 (the level targets
                                         change at once, so hotkeys feel immediate)
    set_bypass(on) / toggle_bypass()     dry input at the same latency (ramped, sample-aligned)
    set_devices(input=None, output=None, host_api=None)   by name; missing -> system default
    set_model(name)                      None = default model; built off the audio path, then
                                         swapped in by reference
    play_file(path) / pause() / resume() / toggle_pause() / stop_file()
    create_cable(make_default=False) / remove_cable()     Linux: our own PulseAudio/PipeWire cable
    capture_app(index) / release_app(index)               Linux: move one app into / out of the cable
    close(timeout=5.0)                   (blocking) stop, release captured apps, restore the
                                         default sink, join the threads

Queries (thread-safe, cheap, return snapshots):
    status -> EngineStatus               state, levels, bypass, devices, model, latency_ms, file
                                         position/duration/paused, under/overrun counters
    state -> EngineState
    list_devices(refresh=False) -> DeviceList   host APIs and devices (refresh re-lists, only
                                         while no stream is open)
    list_apps() -> list[AppStream]       Linux: applications playing audio now (pactl)
    wait_for(predicate, timeout) -> bool  e.g. wait_for(lambda s: s.state is EngineState.RUNNING, 5)

Events (see events.py), delivered on the controller thread; an observer must return quickly and
must not call close() (commands are fine): StateChanged, UserMessage (meant for the user: missing
weights, device lost/back, bad file...), LevelsChanged, DevicesChanged, ModelChanged, FileProgress.

States: STOPPED -> STARTING -> RUNNING <-> PLAYING_FILE; a vanished device -> DEVICE_LOST, and the
watchdog reopens the remembered device (else the default) within 2 s of its return -> RUNNING;
devices that cannot be opened -> ERROR (start() tries again). Missing model weights are not an
error state: the engine runs dry (pass-through at the same latency) and sends ModelChanged(error=...)
plus one UserMessage.

Threads: the caller's (commands only enqueue), "whamsah-engine-control" (this class's loop: opens
and closes streams, watchdog, events), "whamsah-engine-worker" (worker.py: torch), the PortAudio
callback (callback.py: copies only), "whamsah-model-loader" (builds a separator off the audio path),
"whamsah-file-decoder" (file_player.py).
"""
