"""`whamsah-tray separate INPUT --out DIR [--model NAME] [--format wav|flac]`: a file into its
vocals and instrumental stems (see whamsah_tray.file_separation). Runs on the main thread."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from whamsah_tray.audio_io import read_audio
from whamsah_tray.cli.run import add_key_argument
from whamsah_tray.file_separation import OUTPUT_FORMATS, plan_outputs, separate_to_files

# Files at least this long get a progress bar when stderr is a terminal.
PROGRESS_MIN_SECONDS = 10.0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "separate",
        help="separate a file into vocals and instrumental",
        description=(
            "Separate INPUT (WAV, FLAC, OGG or MP3; any rate and channel count) into "
            "DIR/vocals.FMT and DIR/instrumental.FMT at the input's rate and length, through the "
            "same streaming path the live engine uses. Existing stems of those names in DIR are "
            "replaced; the input is never overwritten."
        ),
    )
    parser.add_argument("input", metavar="INPUT", type=Path, help="audio file to separate")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output folder (created if missing)")
    parser.add_argument("--model", metavar="NAME", default=None,
                        help="installed model to use (default: the default model; see `whamsah-tray models`)")
    add_key_argument(parser)
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="wav",
                        help="output format: wav (32-bit float) or flac (24-bit); default wav")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help=f"show a progress bar (default: on a terminal, for files of "
                             f"{PROGRESS_MIN_SECONDS:.0f} s or more)")
    parser.set_defaults(handler=run)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hides what C decoders print straight to file descriptor 2 (mpg123's "Note: Illegal
    Audio-MPEG-Header" on a corrupt MP3), so that an error stays one line; Python's own
    messages are unaffected once it is restored."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced by a non-file (e.g. capture)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _progress_bar(duration_s: float, wanted: bool | None):
    """A `progress(done, total)` callback drawing a tqdm bar in seconds of audio, or None."""
    show = wanted if wanted is not None else (sys.stderr.isatty() and duration_s >= PROGRESS_MIN_SECONDS)
    if not show:
        return None, contextlib.nullcontext()
    from tqdm import tqdm

    bar = tqdm(total=round(duration_s, 1), unit="s", desc="separating", file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s "
                          "[{elapsed}<{remaining}]")

    def progress(done: int, total: int) -> None:
        bar.n = round(duration_s * done / max(total, 1), 1)
        bar.refresh()

    return progress, bar


def run(args: argparse.Namespace) -> int:
    # Bad input and unusable --out fail here, before any model loads.
    outputs = plan_outputs(args.input, args.out, args.format)
    with _native_stderr_silenced():
        audio, sample_rate = read_audio(args.input)
    progress, bar = _progress_bar(audio.shape[0] / sample_rate, args.progress)
    with bar:
        result = separate_to_files(audio, sample_rate, outputs, model_name=args.model,
                                   format=args.format, progress=progress, key=args.key)
    print(f"vocals:       {result.vocals}")
    print(f"instrumental: {result.instrumental}")
    print(f"{result.duration_s:.1f} s, {result.sample_rate} Hz, {result.channels} channel(s), "
          f"model {result.model_name}" + (f", key {args.key:+d}" if args.key else ""))
    return 0
