"""`whamsah-tray run`: the live engine without the tray (sync mode: input device -> separation ->
output device), for power users, scripts and tests. Prints the engine's messages on stderr and a
summary line (latency, dropouts) at the end. Runs on the main thread; the engine has its own.
"""

from __future__ import annotations

import argparse
import sys
import time

from whamsah_tray.engine.api import (DEFAULT_LEVEL_PERCENT, MAX_KEY, MAX_LEVEL_PERCENT, MIN_LEVEL_PERCENT,
                                    EngineEvent, EngineSettings, EngineState, EngineStatus, StateChanged,
                                    UserMessage)
from whamsah_tray.errors import DeviceError

LEVELS = f"{MIN_LEVEL_PERCENT}-{MAX_LEVEL_PERCENT}"


def percent(text: str) -> float:
    """argparse type: a level in percent, MIN_LEVEL_PERCENT..MAX_LEVEL_PERCENT."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not MIN_LEVEL_PERCENT <= value <= MAX_LEVEL_PERCENT:
        raise argparse.ArgumentTypeError(f"{value:g} is outside {LEVELS}")
    return value


def key(text: str) -> int:
    """argparse type: a key change in whole semitones, -MAX_KEY..+MAX_KEY."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of semitones") from None
    if not -MAX_KEY <= value <= MAX_KEY:
        raise argparse.ArgumentTypeError(f"{value} is outside -{MAX_KEY}..+{MAX_KEY} semitones")
    return value


def add_key_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", type=key, default=0, metavar="N",
                        help=f"transpose by N semitones, -{MAX_KEY}..+{MAX_KEY} (default 0: the original key)")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `play`."""
    parser.add_argument("--output", metavar="NAME", help="output device (default: the system default)")
    parser.add_argument("--host-api", metavar="NAME", help="host API to pick devices from (default: the system's)")
    default = float(DEFAULT_LEVEL_PERCENT)
    parser.add_argument("--vocals", type=percent, default=default, metavar="PCT",
                        help=f"vocal level, {LEVELS} %% (default {DEFAULT_LEVEL_PERCENT})")
    parser.add_argument("--instrumental", type=percent, default=default, metavar="PCT",
                        help=f"instrumental level, {LEVELS} %% (default {DEFAULT_LEVEL_PERCENT})")
    parser.add_argument("--bypass", action="store_true", help="play the input unchanged (same latency)")
    add_key_argument(parser)
    parser.add_argument("--model", metavar="NAME", help="installed model (default: the default model)")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run the live engine without the tray (sync mode)",
        description="Capture the input device (e.g. the virtual cable), separate live, and play the "
                    "mix with the chosen levels to the output device. Ctrl-C stops.")
    parser.add_argument("--input", metavar="NAME",
                        help="input device (default: a detected virtual cable, else the system default)")
    add_engine_arguments(parser)
    parser.add_argument("--input-latency", type=float, metavar="S",
                        help="PortAudio input buffer latency in seconds (default 0.015)")
    parser.add_argument("--output-latency", type=float, metavar="S",
                        help="PortAudio output buffer latency in seconds (default 0.045)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: run until Ctrl-C)")
    parser.set_defaults(handler=run)


def engine_settings(args: argparse.Namespace, input_device: str | None) -> EngineSettings:
    from whamsah_tray.engine.session import StreamSettings

    buffers = {name: value for name, value in (("input_latency_s", getattr(args, "input_latency", None)),
                                                ("output_latency_s", getattr(args, "output_latency", None)))
               if value is not None}
    stream = StreamSettings(**buffers)
    return EngineSettings(host_api=args.host_api, input_device=input_device, output_device=args.output,
                          vocals=args.vocals, instrumental=args.instrumental, bypass=args.bypass,
                          key=args.key, model=args.model, stream=stream)


def print_event(event: EngineEvent) -> None:
    if isinstance(event, UserMessage):
        print(f"whamsah-tray: {event.severity.value}: {event.text}", file=sys.stderr, flush=True)
    elif isinstance(event, StateChanged):
        print(f"whamsah-tray: engine {event.state.value}", file=sys.stderr, flush=True)


def summary(status: EngineStatus) -> str:
    model = status.model_name or "none (dry pass-through)"
    return (f"model {model}; {status.input_device or '-'} -> {status.output_device} at {status.sample_rate} Hz; "
            f"latency {status.latency_ms:.0f} ms; dry frames {status.dry_frames}; resyncs {status.resyncs}; "
            f"xruns {status.xruns}; realignments {status.realignments}; drift trims {status.drift_trims}")


def run(args: argparse.Namespace) -> int:
    from whamsah_tray.engine.controller import EngineController

    engine = EngineController(engine_settings(args, args.input))
    engine.subscribe(print_event)
    try:
        engine.start()
        engine.wait_for(lambda s: s.state not in (EngineState.STOPPED, EngineState.STARTING), 30)
        if engine.state is EngineState.ERROR:
            raise DeviceError("the engine could not open the audio devices (see the message above)")
        print(f"whamsah-tray: {summary(engine.status)}", file=sys.stderr, flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic())))
        except KeyboardInterrupt:  # Ctrl-C is how `run` usually ends: the summary all the same
            print(summary(engine.status), flush=True)
            raise
        print(summary(engine.status))
    finally:
        engine.close()
    return 0
