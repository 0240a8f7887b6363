"""Calibrate a trained WHAMSAH-RT checkpoint on the held-out musdb7/train tracks: one offset added
to every mask logit before the sigmoid (`mask_logit_offset` in the model config), chosen from a
short grid by the sum of the four figures the model is judged by (vocals and accompaniment, cSDR
and uSDR), each measured through the live engine's streaming path, as `whamsah-tray evaluate` does.

    python -m whamsah_tray.training.calibrate runs/RUN/avg.pt runs/RUN/calibrated.pt --data ../shared/data \
        [--offsets 0 0.2 0.4 0.6 0.8]

Why: trained on 88 excerpts, the network is surer of the accompaniment on songs it has not heard
than it should be: on the held-out tracks a positive offset (more of each bin given to the vocals)
raises both cSDRs while the training tracks' figures peak at 0. The held-out tracks are never
trained on, and musdb7/test is never read here. The output is the checkpoint with the chosen
offset and every offset's figures under "calibration" (its training config stays as it was); the
export builds the model with that offset and writes the figures into the manifest. Never imported
by the app.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from whamsah_tray.evaluation import SystemScores, TrackStems, find_tracks, load_track, score_track
from whamsah_tray.separation import separate_array
from whamsah_tray.separation.models import build_network
from whamsah_tray.separation.models.mask_gru import MaskGRU
from whamsah_tray.separation.registry import LoadedModel, ModelInfo
from whamsah_tray.training.data import _is_validation
from whamsah_tray.training.train import save_checkpoint

DEFAULT_OFFSETS = (0.0, 0.2, 0.4, 0.6, 0.8)


def held_out_tracks(data: Path) -> list[TrackStems]:
    """The musdb7/train tracks that training holds out (data._is_validation)."""
    tracks = [track for track in find_tracks(data / "musdb7" / "train") if _is_validation(track.name)]
    if not tracks:
        raise SystemExit(f"no held-out tracks under {data / 'musdb7' / 'train'}")
    return tracks


def with_offset(checkpoint: dict, offset: float) -> LoadedModel:
    config = checkpoint["config"]
    if config["architecture"] != MaskGRU.architecture:
        raise SystemExit(f"architecture {config['architecture']} has no mask logits to calibrate")
    network = build_network(config["architecture"], {**config["model"], "mask_logit_offset": offset})
    network.load_state_dict(checkpoint["model"])
    network.eval()
    info = ModelInfo(name=f"offset {offset:g}", architecture=config["architecture"], config=network.config,
                     sample_rate=network.sample_rate, latency_samples=network.delay + network.hop)
    return LoadedModel(info=info, network=network)


def score(model: LoadedModel, stems: list[tuple[str, tuple]]) -> dict[str, float]:
    """evaluate()'s summary on stems read once for all the offsets (name, (vocals, accompaniment, rate))."""
    row = SystemScores(model.info.name)
    for name, (vocals, accompaniment, rate) in stems:
        row.tracks.append(score_track(name, vocals, accompaniment,
                                      *separate_array(vocals + accompaniment, rate, model), rate))
    return row.summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a training checkpoint (or an average of them)")
    parser.add_argument("output", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="../shared/data-style folder")
    parser.add_argument("--offsets", type=float, nargs="+", default=list(DEFAULT_OFFSETS))
    args = parser.parse_args(argv)

    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    stems = [(track.name, load_track(track)) for track in held_out_tracks(args.data)]
    results = []
    for offset in args.offsets:
        figures = score(with_offset(checkpoint, offset), stems)
        results.append({"offset": offset, **{key: round(value, 3) for key, value in figures.items()}})
        print(f"offset {offset:5.2f}: " + "  ".join(f"{key} {value:6.2f}" for key, value in figures.items()),
              flush=True)
    best = max(results, key=lambda r: (sum(v for k, v in r.items() if k != "offset"), -abs(r["offset"])))
    checkpoint["calibration"] = {"held_out_tracks": [name for name, _ in stems], "chosen": best["offset"],
                                 "by": "the largest sum of the four summary figures", "offsets": results}
    save_checkpoint(args.output, **checkpoint)
    print(f"chose mask_logit_offset {best['offset']:g}; wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
