"""Turn a training checkpoint into an installed model: `weights/<name>.pt` (the state dict only,
loadable with `torch.load(weights_only=True)`) and its manifest `weights/<name>.json`.

    python -m whamsah_tray.training.export runs/whamsah-rt/best.pt --name whamsah-rt --default \
        [--evaluation eval.json] [--bench bench.json] [--weights-dir weights]

Figures from `whamsah-tray evaluate --json` and `whamsah-tray bench --json` go into the manifest's
"figures" so that `whamsah-tray models` shows what was measured, as do a calibrated checkpoint's
held-out figures (calibrate.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from whamsah_tray.separation.models import build_network
from whamsah_tray.separation.registry import sha256_of
from whamsah_tray.training.train import training_totals

TRAINING_DATA = (
    "../shared/data: MUSDB18 7-second excerpts (musdb7/train minus 6 held-out tracks), MIR-1K, "
    "PJS and Vocadito a cappella singing, 6 CC-licensed instrumentals; musdb7/test never used"
)
LICENSE = ("Research / non-commercial use only: the weights inherit the terms of MUSDB18 (academic, "
           "non-commercial), MIR-1K (research use), PJS (CC BY-SA 4.0), Vocadito (CC BY 4.0)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--description", default="")
    parser.add_argument("--default", action="store_true", help="mark as the default model")
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"))
    parser.add_argument("--evaluation", type=Path, help="JSON written by `whamsah-tray evaluate --json`")
    parser.add_argument("--bench", type=Path, help="JSON written by `whamsah-tray bench --json`")
    parser.add_argument("--training-data", default=TRAINING_DATA)
    parser.add_argument("--license", default=LICENSE)
    args = parser.parse_args(argv)

    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    config = checkpoint["config"]
    calibration = checkpoint.get("calibration")  # training/calibrate.py: a mask logit offset
    model_config = {**config["model"], **({"mask_logit_offset": calibration["chosen"]} if calibration else {})}
    network = build_network(config["architecture"], model_config)
    network.load_state_dict(checkpoint["model"])
    args.weights_dir.mkdir(parents=True, exist_ok=True)
    weights = args.weights_dir / f"{args.name}.pt"
    torch.save({k: v.float().contiguous() for k, v in network.state_dict().items()}, weights)

    manifest_path = args.weights_dir / f"{args.name}.json"
    figures = {}
    if manifest_path.exists():  # keep figures measured earlier unless new ones are given
        figures = json.loads(manifest_path.read_text()).get("figures", {})
    if args.evaluation:
        figures["evaluation"] = json.loads(args.evaluation.read_text())["summary"]
    if args.bench:
        figures["bench"] = json.loads(args.bench.read_text())
    figures["training"] = {**training_totals(checkpoint),  # with the weights the run started from
                           "this_run": {"steps": checkpoint["step"], "hours": round(checkpoint["elapsed"] / 3600, 2)},
                           "config": config}
    if calibration:  # the held-out figures of each offset tried
        figures["calibration"] = calibration
    else:
        figures.pop("calibration", None)
    if "averaged" in checkpoint:  # an average of checkpoints (training/average.py): which ones
        figures["training"]["averaged_checkpoints"] = checkpoint["averaged"]
    manifest = {
        "name": args.name,
        "description": args.description,
        "architecture": config["architecture"],
        "config": network.config,
        "sample_rate": network.sample_rate,
        "latency_samples": network.delay + network.hop,
        "latency_ms": round(1000 * (network.delay + network.hop) / network.sample_rate, 2),
        "parameters": sum(p.numel() for p in network.parameters()),
        "weights": weights.name,
        "sha256": sha256_of(weights),
        "training_data": args.training_data,
        "license": args.license,
        "figures": figures,
        "default": args.default,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB) and {manifest_path}")
    from whamsah_tray.separation.models import NUMPY_PATHS

    if manifest["architecture"] in NUMPY_PATHS:  # the live path loads these, without torch
        from whamsah_tray.separation.numpy_export import export_numpy_weights

        print(f"wrote {export_numpy_weights(args.name, args.weights_dir)} (checked against the .pt)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
