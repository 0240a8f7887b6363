"""Train a separation model on CPU (or a GPU when one is there), resumable across sessions.

    python -m whamsah_tray.training.train --config whamsah_tray/training/configs/whamsah-rt.json \
        --data ../shared/data [--musdb18hq PATH] [--run runs/whamsah-rt] [--resume] [--hours H]

Writes `RUN/last.pt` every few minutes and `RUN/best.pt` at each validation that improves on the
held-out musdb7/train tracks; logs to `RUN/log.jsonl`. With "snapshot_minutes" in the config it
also keeps `RUN/snap_STEP.pt` that often, for averaging a run's last weights (average.py).
`--resume` continues from `RUN/last.pt` (model, optimiser, step, elapsed time, random states);
the learning rate follows a warmup + cosine schedule over the run's `hours` of training time, so a
resumed run with more hours simply stretches the schedule. What a step computes (segment length,
loss, validation) depends on the architecture family: see objectives.py (STFT mask models;
waveform models such as WHAMSAHNet).
Export the result with `python -m whamsah_tray.training.export`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import time
from pathlib import Path

import torch

from whamsah_tray.separation.models import build_network
from whamsah_tray.training.data import MixSampler, load_cached
from whamsah_tray.training.objectives import objective_for
from whamsah_tray.training.widen import load_initial_weights


def learning_rate(config: dict, step: int, progress: float) -> float:
    warmup = min(1.0, (step + 1) / config["warmup_steps"])
    floor = config["final_lr_fraction"]
    cosine = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return config["learning_rate"] * warmup * cosine


def save_checkpoint(path: Path, **payload) -> None:
    temporary = path.with_suffix(".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def training_totals(checkpoint: dict) -> dict[str, float]:
    """{"steps", "wall_hours"} behind a training checkpoint (or an average of them): its run's own
    plus those of the weights the run started from (config["init_from"]). The manifest's figures
    (export.py) and a later run's starting record (initial_weights) both count this way."""
    before = checkpoint.get("config", {}).get("init_from", {})
    return {"steps": checkpoint["step"] + before.get("steps", 0),
            "wall_hours": round(checkpoint.get("elapsed", 0.0) / 3600 + before.get("wall_hours", 0.0), 2)}


def initial_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The state dict to start from and the training behind it ({"steps", "wall_hours"}): of
    installed weights from their manifest, of a training checkpoint (or an average of them, or a
    calibrated one) from its own record (training_totals)."""
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if "model" in loaded and "step" in loaded:
        return loaded["model"], training_totals(loaded)
    manifest = path.with_suffix(".json")
    earlier = json.loads(manifest.read_text()).get("figures", {}).get("training", {}) if manifest.exists() else {}
    return loaded, {"steps": earlier.get("steps", 0), "wall_hours": earlier.get("wall_hours", 0.0)}


def trainable_parameters(network: torch.nn.Module, prefixes: list[str] | None) -> list[torch.nn.Parameter]:
    """All parameters, or (config `train_only`: a list of name prefixes, e.g. ["refiner."]) only
    those whose names start with one of them; the others are frozen (no gradient is computed
    for them, so a frozen trunk runs forward only)."""
    if not prefixes:
        return list(network.parameters())
    chosen = []
    for name, parameter in network.named_parameters():
        keep = any(name.startswith(prefix) for prefix in prefixes)
        parameter.requires_grad_(keep)
        if keep:
            chosen.append(parameter)
    if not chosen:
        raise ValueError(f"train_only {prefixes} matches no parameter of this network")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="../shared/data-style folder")
    parser.add_argument("--musdb18hq", type=Path, help="a MUSDB18-HQ folder (uses its train/)")
    parser.add_argument("--cache", type=Path, default=Path("data_cache/training_stems.npz"))
    parser.add_argument("--run", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init-from", type=Path, metavar="WEIGHTS", action="append",
                        help="start from installed weights (e.g. weights/whamsah-rt.pt) or a training checkpoint "
                             "(or an average of them) with a fresh optimiser: how training continues in a "
                             "later session; a narrower mask-gru "
                             "is widened to the config's hidden size, computing the same masks. Given more "
                             "than once, the files' tensors are merged in order (a later file's replace an "
                             "earlier's: e.g. the shipped weights, then a checkpoint holding only a refiner's "
                             "tensors) and the training count is the last file's")
    parser.add_argument("--restandardise", action="store_true",
                        help="with --init-from: measure the input standardisation again on this run's "
                             "training mixes (after a change of input features or data)")
    parser.add_argument("--hours", type=float, help="training time of the whole run (overrides the config)")
    parser.add_argument("--seed", type=int, help="the run's random seed (overrides the config's)")
    parser.add_argument("--learning-rate", type=float,
                        help="peak learning rate (overrides the config's), e.g. lower to fine-tune installed weights")
    parser.add_argument("--dropout", type=float,
                        help="mask-gru's train-time dropout (overrides the config's model.dropout)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--compile", action="store_true",
                        help="mask-gru: torch.compile the per-bin feature and loss work (needs a C++ compiler)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke tests)")
    args = parser.parse_args(argv)
    if not args.data and not args.musdb18hq and not args.cache.exists():
        parser.error("give --data and/or --musdb18hq")

    config = json.loads(args.config.read_text())
    if args.hours is not None:  # 0: no training step, the starting network written as last.pt
        config["hours"] = args.hours
    if args.seed is not None:
        config["seed"] = args.seed
    if args.learning_rate:
        config["learning_rate"] = args.learning_rate
    if args.dropout is not None:
        config["model"]["dropout"] = args.dropout
    run = args.run or Path("runs") / config["name"]
    run.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    sets = load_cached(args.data, args.musdb18hq, args.cache)
    torch.manual_seed(config["seed"])
    network = build_network(config["architecture"], config["model"])
    objective = objective_for(network, config.get("gain_free_weight", 0.0), args.compile)  # what a step computes, per family
    mixing = {k: tuple(v) if isinstance(v, list) else v for k, v in config.get("mixing", {}).items()}
    named = {name for key in ("vocal_sets", "accompaniment_sets", "coherent_sets", "rebalance_sets")
             for name in mixing.get(key, {})}
    if named - sets.keys():  # e.g. a cache written before a set existed: give a new --cache
        print(f"warning: the config's set tables name {sorted(named - sets.keys())}, which {args.cache} "
              f"and the data do not hold; mixing goes on without them", flush=True)
    sampler = MixSampler(sets, objective.segment_length(config), seed=config["seed"], **mixing)
    trainable = trainable_parameters(network, config.get("train_only"))
    optimizer = torch.optim.AdamW(trainable, lr=config["learning_rate"], weight_decay=config["weight_decay"])
    step, elapsed, best = 0, 0.0, -math.inf
    checkpoint_path = run / "last.pt"
    if args.resume and checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        network.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step, elapsed, best = checkpoint["step"], checkpoint["elapsed"], checkpoint["best"]
        if "init_from" in checkpoint["config"]:  # the run's own history (earlier steps) goes on
            config["init_from"] = checkpoint["config"]["init_from"]
        sampler.rng = pickle.loads(checkpoint["sampler_rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        print(f"resumed at step {step}, {elapsed / 3600:.2f} h trained")
    elif args.init_from:
        state, earlier = {}, {}
        for path in args.init_from:
            more, earlier = initial_weights(path)
            state.update(more)
        how = load_initial_weights(network, state)
        names = " + ".join(str(path) for path in args.init_from)
        config["init_from"] = {"weights": names, **earlier}
        print(f"starting from {names} ({config['init_from']['steps']} earlier steps), {how}")
        if args.restandardise:
            objective.prepare(sampler)
    else:
        objective.prepare(sampler)
    network.to(device).train()

    log = open(run / "log.jsonl", "a")
    total_seconds = config["hours"] * 3600
    started = time.monotonic() - elapsed
    last_checkpoint = last_validation = last_snapshot = time.monotonic()
    running: dict[str, float] = {}

    def checkpoint(name: str = "last.pt") -> None:
        save_checkpoint(run / name, model=network.state_dict(), optimizer=optimizer.state_dict(), step=step,
                        elapsed=time.monotonic() - started, best=best, config=config,
                        sampler_rng=pickle.dumps(sampler.rng), torch_rng=torch.get_rng_state())

    while True:
        elapsed = time.monotonic() - started
        if elapsed >= total_seconds or (args.max_steps and step >= args.max_steps):
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step, elapsed / total_seconds)
        mixture, vocals = (torch.from_numpy(a).to(device) for a in sampler.batch(config["batch_size"]))
        loss, figures = objective.loss(mixture, vocals)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 5.0)
        optimizer.step()
        step += 1
        for key, value in figures.items():
            running[key] = 0.98 * running.get(key, value) + 0.02 * value
        if step % 25 == 0:
            entry = {"step": step, "hours": round(elapsed / 3600, 4), "lr": optimizer.param_groups[0]["lr"],
                     **{k: round(v, 3) for k, v in running.items()}}
            print(json.dumps(entry), flush=True)
            log.write(json.dumps(entry) + "\n"); log.flush()
        now = time.monotonic()
        if now - last_validation >= 60 * config["validate_minutes"]:
            last_validation = now
            scores = objective.validate(sets["musdb_val"]) if "musdb_val" in sets else {}
            entry = {"step": step, "hours": round(elapsed / 3600, 4), **{k: round(v, 3) for k, v in scores.items()}}
            print(json.dumps(entry), flush=True)
            log.write(json.dumps(entry) + "\n"); log.flush()
            score = scores.get("val_vocals", 0) + scores.get("val_accompaniment", 0)
            if scores and score > best:
                best = score
                checkpoint("best.pt")
        if config.get("snapshot_minutes") and now - last_snapshot >= 60 * config["snapshot_minutes"]:
            last_snapshot = now
            checkpoint(f"snap_{step:06d}.pt")
        if now - last_checkpoint >= 60 * config["checkpoint_minutes"]:
            last_checkpoint = now
            checkpoint()
    checkpoint()
    if "musdb_val" in sets:
        scores = objective.validate(sets["musdb_val"])
        score = scores["val_vocals"] + scores["val_accompaniment"]
        print(json.dumps({"step": step, "final": True, **scores}), flush=True)
        if score > best:
            best = score
            checkpoint("best.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
