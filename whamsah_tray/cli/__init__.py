"""Command line: `whamsah-tray [COMMAND] ...`. Only parses arguments and turns typed errors into
exit status 2 with one line on stderr; the work lives in the library modules.

Each subcommand is a module of this package with `add_parser(subparsers)` and `run(args) -> int`.
With no command, the tray app starts.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from whamsah_tray import __version__
from whamsah_tray.errors import WhamsahError

# Subcommand modules, in the order `--help` lists them.
COMMAND_MODULES = [
    "separate",
    "devices",
    "models",
    "evaluate",
    "bench",
    "run",
    "play",
    "ctl",
]

EXIT_USAGE = 2


def write_json_report(path, data) -> int:
    """Writes `data` as JSON to `path` after the figures were printed; a failure loses nothing
    already shown, so it is one line on stderr and exit status 2."""
    import json

    try:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        print(f"whamsah-tray: error: cannot write '{path}': {error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whamsah-tray",
        description="Live karaoke for any application's audio. Without a command, starts the tray app.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"whamsah_tray.cli.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            from whamsah_tray.cli import tray

            return tray.run(args)
        return int(args.handler(args) or 0)
    except WhamsahError as error:
        print(f"whamsah-tray: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
