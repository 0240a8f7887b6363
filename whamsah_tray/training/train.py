"""Train a separation model on CPU (or a GPU when one is there), resumable across sessions.

    python -m whamsah_tray.training.train --config whamsah_tray/training/configs/whamsah-rt.json \
        --data ../shared/data [--musdb18hq PATH] [--run runs/whamsah-rt] [--resume] [--hours H]

Writes `RUN/last.pt` every few minutes and `RUN/best.pt` at each validation that improves on the
held-out musdb7/train tracks; logs to `RUN/log.jsonl`. `--resume` continues from `RUN/last.pt`
(model, optimiser, step, elapsed time, random states); the learning rate follows a warmup +
cosine schedule over the run's `hours` of training time, so a resumed run with more hours simply
stretches the schedule. Export the result with `python -m whamsah_tray.training.export`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import time
from pathlib import Path

import numpy as np
import torch

from whamsah_tray.separation.models import build_network
from whamsah_tray.training.data import MixSampler, load_cached
from whamsah_tray.training.losses import segment_sdr, separation_loss


def learning_rate(config: dict, step: int, progress: float) -> float:
    warmup = min(1.0, (step + 1) / config["warmup_steps"])
    floor = config["final_lr_fraction"]
    cosine = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return config["learning_rate"] * warmup * cosine


@torch.no_grad()
def measure_feature_stats(network, sampler: MixSampler, batches: int = 24) -> None:
    """Set the network's input standardisation from typical training mixtures."""
    features = []
    for _ in range(batches):
        mixture, _ = sampler.batch(8)
        features.append(network.features(network.stft(torch.from_numpy(mixture))))
    features = torch.cat(features, dim=-1).transpose(0, 1).flatten(1)  # (features, all frames)
    network.feature_mean.copy_(features.mean(1, keepdim=True))
    network.feature_std.copy_(features.std(1, keepdim=True).clamp_min(1e-3))


@torch.no_grad()
def validate(network, validation) -> dict[str, float]:
    """Median over held-out tracks of the median 1 s segment SDR (a quick cSDR)."""
    network.eval()
    vocal_scores, accompaniment_scores = [], []
    for vocals, accompaniment in zip(validation.vocals, validation.accompaniment):
        vocals = torch.from_numpy(vocals.astype(np.float32).T[None])
        mixture = vocals + torch.from_numpy(accompaniment.astype(np.float32).T[None])
        mixture_spec, vocals_spec = network.stft(mixture), network.stft(vocals)
        mask, _ = network.masks(mixture_spec, None)
        lookahead = network.lookahead
        n = mixture_spec.shape[-1] - lookahead
        estimate = mask[..., lookahead:] * mixture_spec[..., :n]
        target, mixture_spec = vocals_spec[..., :n], mixture_spec[..., :n]
        vocal_scores.append(segment_sdr(target, estimate, mixture_spec).median().item())
        accompaniment_scores.append(
            segment_sdr(mixture_spec - target, mixture_spec - estimate, mixture_spec).median().item())
    network.train()
    return {"val_vocals": float(np.median(vocal_scores)), "val_accompaniment": float(np.median(accompaniment_scores))}


def save_checkpoint(path: Path, **payload) -> None:
    temporary = path.with_suffix(".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="../shared/data-style folder")
    parser.add_argument("--musdb18hq", type=Path, help="a MUSDB18-HQ folder (uses its train/)")
    parser.add_argument("--cache", type=Path, default=Path("data_cache/training_stems.npz"))
    parser.add_argument("--run", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--hours", type=float, help="training time of the whole run (overrides the config)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke tests)")
    args = parser.parse_args(argv)
    if not args.data and not args.musdb18hq and not args.cache.exists():
        parser.error("give --data and/or --musdb18hq")

    config = json.loads(args.config.read_text())
    if args.hours:
        config["hours"] = args.hours
    run = args.run or Path("runs") / config["name"]
    run.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    sets = load_cached(args.data, args.musdb18hq, args.cache)
    length = config["model"]["n_fft"] + (config["segment_frames"] - 1) * config["model"]["hop"]
    sampler = MixSampler(sets, length, seed=config["seed"])
    torch.manual_seed(config["seed"])
    network = build_network(config["architecture"], config["model"])
    optimizer = torch.optim.AdamW(network.parameters(), lr=config["learning_rate"],
                                  weight_decay=config["weight_decay"])
    step, elapsed, best = 0, 0.0, -math.inf
    checkpoint_path = run / "last.pt"
    if args.resume and checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        network.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step, elapsed, best = checkpoint["step"], checkpoint["elapsed"], checkpoint["best"]
        sampler.rng = pickle.loads(checkpoint["sampler_rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        print(f"resumed at step {step}, {elapsed / 3600:.2f} h trained")
    else:
        measure_feature_stats(network, sampler)
    network.to(device).train()

    log = open(run / "log.jsonl", "a")
    total_seconds = config["hours"] * 3600
    started = time.monotonic() - elapsed
    last_checkpoint = last_validation = time.monotonic()
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
        mixture_spec, vocals_spec = network.stft(mixture), network.stft(vocals)
        mask, _ = network.masks(mixture_spec, None)
        loss, figures = separation_loss(mixture_spec, vocals_spec, mask, network.lookahead)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
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
            scores = validate(network, sets["musdb_val"]) if "musdb_val" in sets else {}
            entry = {"step": step, "hours": round(elapsed / 3600, 4), **{k: round(v, 3) for k, v in scores.items()}}
            print(json.dumps(entry), flush=True)
            log.write(json.dumps(entry) + "\n"); log.flush()
            score = scores.get("val_vocals", 0) + scores.get("val_accompaniment", 0)
            if scores and score > best:
                best = score
                checkpoint("best.pt")
        if now - last_checkpoint >= 60 * config["checkpoint_minutes"]:
            last_checkpoint = now
            checkpoint()
    checkpoint()
    if "musdb_val" in sets:
        scores = validate(network, sets["musdb_val"])
        score = scores["val_vocals"] + scores["val_accompaniment"]
        print(json.dumps({"step": step, "final": True, **scores}), flush=True)
        if score > best:
            best = score
            checkpoint("best.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
