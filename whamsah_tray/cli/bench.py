"""`whamsah-tray bench [--model NAME | --untrained ARCH] [--json FILE] [--seconds S]`: a model's
latency, real-time factor, CPU at live pace, peak memory and size (see whamsah_tray.benchmark). Runs on the main
thread."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from whamsah_tray.cli import write_json_report
from whamsah_tray.engine.api import LIVE_BLOCK_SIZES


def _blocks(text: str) -> tuple[int, ...]:
    try:
        blocks = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected block sizes like 512,1024,4096, got '{text}'") from None
    if not blocks or min(blocks) < 1:
        raise argparse.ArgumentTypeError("block sizes must be positive")
    return blocks


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure a model's latency, real-time factor, memory and size",
        description=(
            "Print a model's algorithmic latency, its real-time factor (processing time / audio "
            "time) through the live engine's streaming separator at several block sizes on one "
            "thread and on all cores, the peak RSS of a fresh process running it, and its size."
        ),
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", metavar="NAME", default=None,
                       help="installed model (default: the default model; see `whamsah-tray models`)")
    which.add_argument("--untrained", metavar="ARCH", default=None,
                       help="bench a random-weight network of this architecture instead "
                            "(e.g. whamsah-rt, whamsahnet): speed figures only")
    parser.add_argument("--json", metavar="FILE", type=Path, default=None, help="also write the figures to FILE")
    parser.add_argument("--seconds", metavar="S", type=_positive(float), default=10.0,
                        help="seconds of audio per timed repeat (default 10)")
    parser.add_argument("--repeats", metavar="N", type=_positive(int), default=3,
                        help="timed repeats per figure, the best is reported (default 3)")
    parser.add_argument("--live-seconds", metavar="S", type=_positive(float), default=5.0,
                        help="seconds of real time for the live-pace CPU figure (default 5)")
    parser.add_argument("--blocks", metavar="LIST", type=_blocks, default=LIVE_BLOCK_SIZES,
                        help="block sizes in frames, comma-separated (default "
                             f"{','.join(map(str, LIVE_BLOCK_SIZES))})")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from whamsah_tray.benchmark import format_result, run_benchmark

    def progress(message: str) -> None:
        print(f"measuring {message} ...", file=sys.stderr, flush=True)

    result = run_benchmark(args.model, args.untrained, seconds=args.seconds, repeats=args.repeats,
                           blocks=args.blocks, live_seconds=args.live_seconds, progress=progress)
    print("\n".join(format_result(result)))
    if args.json:
        return write_json_report(args.json, result.to_json())
    return 0
