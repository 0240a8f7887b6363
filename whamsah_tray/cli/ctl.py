"""`whamsah-tray ctl COMMAND [ARG]`: sends one command to the running tray over its local socket
(see whamsah_tray.app.control) and prints the reply. Meant to be bound to keys in a desktop's
keyboard settings, where the tray's own hotkeys cannot work (Wayland).

Exit status: 0 done, 1 the tray refused the command (e.g. `pause` with no file playing), 2 bad
usage or an unsafe socket, 3 the tray is not running. Runs on the main thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3

COMMANDS_HELP = """commands:
  toggle-vocals              mute the vocals, or bring them back
  vocals N|+N|-N             vocals level in percent (0..150), or a change
  instrumental N|+N|-N       instrumental level, the same way
  bypass [on|off|toggle]     hear the input dry (default: toggle)
  key N|+N|-N                transpose by N semitones (-6..+6), or a change
  play FILE                  play a local audio file through the separation
  pause                      pause the playing file (again: resume)
  stop                       stop the file, back to live input
  capture APP                move a playing app (part of its name) into the virtual cable (Linux)
  status [--json]            state, levels, key, devices, model, file and position
  quit                       quit the tray (it gives back the apps and removes its cable)

exit status: 0 done, 1 refused by the tray, 2 usage, 3 the tray is not running"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "ctl", help="control the running tray (for keyboard shortcuts)",
        description="Send one command to the running WHAMSAH Tray; each change is remembered in the "
                    "profile as if made from the menu.",
        epilog=COMMANDS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    # REMAINDER: `ctl vocals -10` must not read "-10" as an option.
    parser.add_argument("request", nargs=argparse.REMAINDER, metavar="COMMAND [ARG]")
    parser.set_defaults(handler=run)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def format_status(status: dict) -> str:
    model = status.get("model") or "none"
    if status.get("model_ready"):
        latency = status.get("latency_ms")
        extra = status.get("extra_latency_ms") or 0
        model += (f" ({latency:.0f} ms" + (f", +{extra:.0f} for a busy machine" if extra >= 1 else "") + ")") if latency else ""
    else:
        model += f" (not loaded: {status.get('model_problem') or 'audio passes through dry'})"
    key = int(status.get("key") or 0)
    lines = [
        f"state: {status.get('state')}" + (" (idle: no sound coming in)" if status.get("idle") else ""),
        f"vocals: {status.get('vocals')} %",
        f"instrumental: {status.get('instrumental')} %",
        f"bypass: {'on' if status.get('bypass') else 'off'}",
        f"key: {key:+d}" if key else "key: 0 (original)",
        f"model: {model}",
        f"input: {status.get('input_device') or '-'}",
        f"output: {status.get('output_device') or '-'}",
    ]
    if status.get("file"):
        lines.append(f"file: {status['file']} ({_clock(status.get('position_s'))} / "
                     f"{_clock(status.get('duration_s'))})" + (" paused" if status.get("paused") else ""))
    if status.get("error"):
        lines.append(f"problem: {status['error']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from whamsah_tray.app.control import ControlError, NotRunningError, UnsafeSocketError, parse_command, send

    words = list(args.request)
    if len(words) == 2 and words[0] == "play":
        # The tray's working folder is not the caller's.
        words[1] = os.path.abspath(words[1])
    try:
        command = parse_command(words)  # bad usage never reaches the tray
    except ControlError as error:
        print(f"whamsah-tray ctl: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        reply = send(words)
    except NotRunningError as error:
        print(str(error), file=sys.stderr)
        return EXIT_NOT_RUNNING
    except UnsafeSocketError as error:
        print(f"whamsah-tray ctl: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ControlError as error:
        print(f"whamsah-tray ctl: error: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as error:
        print(f"whamsah-tray ctl: error: cannot reach the tray: {error.strerror or error}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    if not reply.ok:
        print(f"whamsah-tray ctl: error: {reply.message}", file=sys.stderr)
        return EXIT_REFUSED
    if reply.status is not None:
        as_json = getattr(command, "as_json", False)
        print(json.dumps(reply.status, indent=2) if as_json else format_status(reply.status))
    else:
        print(reply.message)
    return 0
