"""Average the model weights of several checkpoints of one run (the last ones, at a low learning
rate) into one checkpoint: typically a little better than any one of them.

    python -m whamsah_tray.training.average runs/RUN/avg.pt runs/RUN/snap_A.pt ... runs/RUN/last.pt

Floating-point tensors are averaged; everything else (step, elapsed time, config, optimiser) is
taken from the last checkpoint named, and "averaged" lists the step and hours of each one (the
manifest shows it). Checkpoints of two runs from the same weights can be averaged too, and installed weights
(`weights/NAME.pt`, named before the checkpoints: e.g. a run's average and the weights it started
from). Export the result with `python -m whamsah_tray.training.export`.
Never imported by the app.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from whamsah_tray.training.train import save_checkpoint


def _load(path: Path) -> dict:
    """A training checkpoint, or installed weights (a plain state dict, e.g. weights/whamsah-rt.pt)
    as a checkpoint of no steps of its own that names the file."""
    loaded = torch.load(path, map_location="cpu", weights_only=False)
    if "model" in loaded:
        return loaded
    return {"model": loaded, "step": 0, "elapsed": 0.0, "weights": path.name}


def average_checkpoints(paths: list[Path]) -> dict:
    checkpoints = [_load(path) for path in paths]
    last = checkpoints[-1]
    if "weights" in last:
        raise ValueError("name a training checkpoint last: the average takes its record (config, steps)")
    if any(c["model"].keys() != last["model"].keys() for c in checkpoints):
        raise ValueError("the checkpoints hold different networks")
    last["model"] = {name: sum(c["model"][name] for c in checkpoints) / len(checkpoints)
                     if tensor.is_floating_point() else tensor for name, tensor in last["model"].items()}
    last["averaged_steps"] = [c["step"] for c in checkpoints]
    # What went into it, kept down to the runs (an average of averages, e.g. of two runs' last
    # weights, lists each run's checkpoints): the export writes it into the manifest.
    last["averaged"] = [{"step": c["step"], "hours": round(c["elapsed"] / 3600, 2),
                         **({"averaged": c["averaged"]} if "averaged" in c else {}),
                         **({"weights": c["weights"]} if "weights" in c else {})} for c in checkpoints]
    return last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    args = parser.parse_args(argv)
    averaged = average_checkpoints(args.checkpoints)
    save_checkpoint(args.output, **averaged)
    print(f"averaged the weights of steps {averaged['averaged_steps']} into {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
