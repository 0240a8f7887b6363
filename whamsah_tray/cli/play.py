"""`whamsah-tray play FILE`: async mode without the tray: a local file through the live separation
to the output device, until its end. Runs on the main thread; the engine has its own.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from whamsah_tray.cli.run import add_engine_arguments, engine_settings, print_event, summary
from whamsah_tray.engine.api import EngineEvent, EngineState, FileProgress, Severity, UserMessage
from whamsah_tray.errors import DeviceError, WhamsahError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "play", help="play a file with live separation",
        description="Play a WAV/FLAC/OGG/MP3 file to the output device through the live separation, "
                    "with the chosen levels. Ctrl-C stops.")
    parser.add_argument("file", help="audio file to play")
    add_engine_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from whamsah_tray.audio_io import audio_file_info
    from whamsah_tray.engine.controller import EngineController

    info = audio_file_info(args.file)  # a bad file: AudioFileError, exit status 2, before any device opens
    errors: list[UserMessage] = []
    finished: list[bool] = []

    def on_event(event: EngineEvent) -> None:
        print_event(event)
        if isinstance(event, UserMessage) and event.severity is Severity.ERROR:
            errors.append(event)
        if isinstance(event, FileProgress) and event.finished:
            finished.append(True)

    engine = EngineController(engine_settings(args, None))
    engine.subscribe(on_event)
    try:
        engine.play_file(args.file)
        engine.wait_for(lambda s: s.state is EngineState.PLAYING_FILE or bool(errors), 30)
        if engine.state is not EngineState.PLAYING_FILE:
            raise _failure(errors)
        print(f"whamsah-tray: playing '{args.file}' ({info.duration_s:.1f} s); {summary(engine.status)}",
              file=sys.stderr, flush=True)
        playing = engine.status
        while not finished and engine.state is EngineState.PLAYING_FILE:
            time.sleep(0.1)
            playing = engine.status if engine.state is EngineState.PLAYING_FILE else playing
        # The devices, rate and latency of the playback (closed by now), with the engine's counters
        # of the whole run (they outlive the stream).
        final = engine.status
        print(summary(replace(playing, dry_frames=final.dry_frames, resyncs=final.resyncs, xruns=final.xruns,
                              output_xruns=final.output_xruns, realignments=final.realignments,
                              drift_trims=final.drift_trims)))
    finally:
        engine.close()
    return 0


def _failure(errors: list[UserMessage]) -> WhamsahError:
    """Why the playback did not start: the engine's typed error (AudioFileError for a file it could
    not read, DeviceError for the output), else a DeviceError with its last message."""
    for message in reversed(errors):
        if message.error is not None:
            return message.error
    return DeviceError(errors[-1].text if errors else "playback did not start")
