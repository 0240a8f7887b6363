"""`whamsah-tray evaluate DATA_DIR [--model NAME] [--json FILE] [--reference-rows]`: a model's cSDR
and uSDR on a folder of stems (see whamsah_tray.evaluation). Runs on the main thread."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from whamsah_tray.cli import write_json_report

COLUMNS = (("vocals_csdr", "vocals cSDR"), ("accompaniment_csdr", "accomp. cSDR"),
           ("vocals_usdr", "vocals uSDR"), ("accompaniment_usdr", "accomp. uSDR"))


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model on a folder of stems (museval cSDR / uSDR)",
        description=(
            "Separate every DATA_DIR/<track>/ (vocals + accompaniment as .ogg, .flac or .wav; the "
            "mixture is their sum) through the same streaming path the live engine uses and score "
            "it with museval BSSEval v4 on 1 s windows. cSDR = median over windows, then median "
            "over tracks; uSDR = whole-track energy-ratio SDR, mean over tracks; in dB."
        ),
    )
    parser.add_argument("data_dir", metavar="DATA_DIR", type=Path, help="folder of <track>/{vocals,accompaniment}.*")
    parser.add_argument("--model", metavar="NAME", default=None,
                        help="installed model to score (default: the default model; see `whamsah-tray models`)")
    parser.add_argument("--json", metavar="FILE", type=Path, default=None,
                        help="also write the summary and per-track scores to FILE")
    parser.add_argument("--reference-rows", action="store_true",
                        help="add the 'mixture' (doing nothing) and 'oracle IRM' rows for scale")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show a progress bar per track on stderr (default: on)")
    parser.set_defaults(handler=run)


def _figure(value: float) -> str:
    return f"{value:8.2f}" if math.isfinite(value) else f"{'n/a':>8}"


def format_table(evaluation) -> list[str]:
    width = max(len("system"), *(len(row.system) for row in evaluation.rows))
    lines = [f"{'system':<{width}}  " + "  ".join(f"{title:>12}" for _, title in COLUMNS)]
    for row in evaluation.rows:
        summary = row.summary
        lines.append(f"{row.system:<{width}}  " + "  ".join(f"{_figure(summary[key]):>12}" for key, _ in COLUMNS))
    tail = evaluation.rows[0].tail()  # the model's row when there is one
    lines.append(f"{evaluation.rows[0].system}: per-track vocals cSDR 10th percentile "
                 f"{_figure(tail['vocals_csdr_p10']).strip()}, 25th {_figure(tail['vocals_csdr_p25']).strip()}; "
                 f"worst (vocals / accomp. cSDR):")
    lines += [f"  {_figure(t['vocals_csdr'])} {_figure(t['accompaniment_csdr'])}  {t['name']}"
              for t in tail["worst_tracks"]]
    tracks = len(evaluation.rows[0].tracks)
    lines.append(f"{tracks} tracks in {evaluation.data_dir}, {evaluation.seconds:.0f} s; dB; cSDR: museval "
                 f"BSSEval v4, 1 s windows, median of medians; uSDR: whole-track SDR, mean over tracks")
    return lines


def run(args: argparse.Namespace) -> int:
    from whamsah_tray.evaluation import (
        REFERENCE_ROWS,
        evaluate,
        find_tracks,
        museval_module,
    )
    from whamsah_tray.separation import load_model

    museval_module()  # without the eval extra: one line and exit status 2, before any work
    find_tracks(args.data_dir)  # a bad folder fails before the model is loaded
    model = load_model(args.model)
    evaluation = evaluate(args.data_dir, model, REFERENCE_ROWS if args.reference_rows else (),
                          progress_bar=args.progress)
    print("\n".join(format_table(evaluation)))
    if args.json:
        return write_json_report(args.json, evaluation.to_json())
    return 0
