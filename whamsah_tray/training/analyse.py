"""Where a model fails: per-track and per-second scores beside what each track's stems look like,
the worst tracks against the rest.

    python -m whamsah_tray.training.analyse ../shared/data/musdb7/test [--model whamsah-rt] \
        [--worst 5] [--json runs/analysis.json]

Every track goes through the streaming path `whamsah-tray evaluate` uses; museval's 1 s windows
give the per-second vocal SDR (its median is the track's cSDR). For each track, from the true stems:
- var_db: vocal-to-accompaniment power ratio over the sung seconds (vocals within 30 dB of their
  loudest second), sung: the fraction of seconds that are sung, and median_second_var_db: the
  median ratio over the seconds museval scores (what the track's cSDR, a median, is made of);
- vocal_side_db / accompaniment_side_db: side over mid power (L-R vs L+R), a stereo width; very
  negative is mono in the centre;
- accompaniment_high_db: the accompaniment's power above 2 kHz relative to its total, and its
  spectral centroid (Hz): bright, dense bands (distorted guitars, cymbals) have more up there;
- accompaniment_crest_db: peak over RMS of the accompaniment: low for compressed, distorted bands;
- error bands: where the vocal estimate's error energy lies (STFT 2048 / 512), as fractions.
Per second over all tracks: the median vocal SDR of the sung seconds at each vocal-to-accompaniment
ratio, and its gain over the mixture (whose SDR is that ratio). Runs on the main thread, on one compute thread; never imported by the app.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ERROR_BANDS_HZ = (0, 150, 400, 1000, 2000, 5000, 22050)
RATIO_BINS_DB = (-np.inf, -15, -10, -5, 0, np.inf)


def _db(x: float) -> float:
    return float(10 * np.log10(max(x, 1e-20)))


def stem_features(vocals: np.ndarray, accompaniment: np.ndarray, rate: int) -> dict[str, float]:
    """What a track's true stems (frames, channels) look like: see the module docstring."""
    seconds = len(vocals) // rate
    def per_second(x: np.ndarray) -> np.ndarray:
        return np.mean(np.square(x[:seconds * rate], dtype=np.float64).reshape(seconds, -1), axis=1)
    vocal_power, accompaniment_power = per_second(vocals), per_second(accompaniment)
    sung = vocal_power >= vocal_power.max() * 1e-3
    def side_db(x: np.ndarray) -> float:
        if x.shape[1] < 2:
            return -120.0
        mid, side = x[:, 0] + x[:, 1], x[:, 0] - x[:, 1]
        return _db(np.sum(side.astype(np.float64) ** 2) / max(np.sum(mid.astype(np.float64) ** 2), 1e-20))
    spectrum = np.abs(np.fft.rfft(accompaniment.mean(axis=1).astype(np.float64))) ** 2
    frequencies = np.fft.rfftfreq(len(accompaniment), 1 / rate)
    peak = float(np.abs(accompaniment).max())
    return {
        "var_db": _db(vocal_power[sung].sum() / max(accompaniment_power[sung].sum(), 1e-20)),
        "sung": float(sung.mean()),
        "vocal_side_db": side_db(vocals),
        "accompaniment_side_db": side_db(accompaniment),
        "accompaniment_high_db": _db(spectrum[frequencies >= 2000].sum() / spectrum.sum()),
        "accompaniment_centroid_hz": float(np.sum(frequencies * spectrum) / spectrum.sum()),
        "accompaniment_crest_db": 20 * np.log10(peak / np.sqrt(np.mean(np.square(accompaniment, dtype=np.float64)))),
    }


def error_bands(vocals: np.ndarray, estimate: np.ndarray, rate: int) -> list[float]:
    """Fractions of the vocal estimate's error energy in each ERROR_BANDS_HZ band."""
    import torch
    window = torch.hann_window(2048)
    error = torch.from_numpy(np.ascontiguousarray((estimate - vocals).T, dtype=np.float32))
    power = torch.stft(error, 2048, 512, window=window, return_complex=True).abs().square().sum(dim=(0, 2)).numpy()
    frequencies = np.fft.rfftfreq(2048, 1 / rate)
    total = power.sum()
    return [float(power[(frequencies >= lo) & (frequencies < hi)].sum() / total)
            for lo, hi in zip(ERROR_BANDS_HZ[:-1], ERROR_BANDS_HZ[1:])]


def analyse(data_dir: Path, model_name: str | None, worst: int) -> dict:
    import museval

    from whamsah_tray.evaluation import find_tracks, load_track
    from whamsah_tray.separation import load_model, separate_array

    model = load_model(model_name)
    tracks, seconds = [], []
    for track in find_tracks(data_dir):
        vocals, accompaniment, rate = load_track(track)
        vocal_estimate, accompaniment_estimate = separate_array(vocals + accompaniment, rate, model)
        with np.errstate(all="ignore"):
            sdr = museval.evaluate(np.stack([vocals, accompaniment]),
                                   np.stack([vocal_estimate, accompaniment_estimate]), win=rate, hop=rate)[0]
        features = stem_features(vocals, accompaniment, rate)
        tracks.append({"name": track.name, "vocals_csdr": float(np.nanmedian(sdr[0])),
                       "accompaniment_csdr": float(np.nanmedian(sdr[1])), **features,
                       "error_bands": error_bands(vocals, vocal_estimate, rate)})
        n = min(sdr.shape[1], len(vocals) // rate)
        power = lambda x: np.mean(np.square(x[:n * rate], dtype=np.float64).reshape(n, -1), axis=1)
        vocal_power, accompaniment_power = power(vocals), power(accompaniment)
        scored = np.isfinite(sdr[0, :n])
        tracks[-1]["median_second_var_db"] = _db(float(np.median(vocal_power[scored] / np.maximum(
            accompaniment_power[scored], 1e-20)))) if scored.any() else float("nan")
        for second in range(n):
            if vocal_power[second] >= vocal_power.max() * 1e-3 and np.isfinite(sdr[0, second]):
                seconds.append((_db(vocal_power[second] / max(accompaniment_power[second], 1e-20)), float(sdr[0, second])))
    tracks.sort(key=lambda t: t["vocals_csdr"])
    keys = [k for k in tracks[0] if k not in ("name", "error_bands")]
    def medians(group: list[dict]) -> dict:
        return {**{k: float(np.median([t[k] for t in group])) for k in keys},
                "error_bands": np.median([t["error_bands"] for t in group], axis=0).tolist()}
    ratios, sdrs = np.array(seconds).T
    def bin_figures(lo: float, hi: float) -> dict:
        inside = (ratios >= lo) & (ratios < hi)
        return {"ratio_db": [lo, hi], "seconds": int(inside.sum()),
                "median_vocal_sdr": float(np.median(sdrs[inside])) if inside.any() else None,
                # the mixture as the estimate scores the ratio itself, so SDR - ratio is the gain
                "median_improvement": float(np.median(sdrs[inside] - ratios[inside])) if inside.any() else None}
    by_ratio = [bin_figures(lo, hi) for lo, hi in zip(RATIO_BINS_DB[:-1], RATIO_BINS_DB[1:])]
    return {"model": model.info.name, "data_dir": str(data_dir), "tracks": tracks,
            "worst": medians(tracks[:worst]), "rest": medians(tracks[worst:]),
            "per_second_by_ratio": by_ratio,
            "per_second_ratio_sdr_correlation": float(np.corrcoef(ratios, sdrs)[0, 1])}


def format_report(result: dict, worst: int) -> list[str]:
    columns = ("vocals_csdr", "accompaniment_csdr", "var_db", "median_second_var_db", "sung", "vocal_side_db", "accompaniment_side_db",
               "accompaniment_high_db", "accompaniment_centroid_hz", "accompaniment_crest_db")
    titles = ("voc cSDR", "acc cSDR", "VAR dB", "VAR 1 s", "sung", "voc S/M", "acc S/M", "acc>2k", "acc cent", "acc crest")
    bands = [f"{lo}-{hi}" for lo, hi in zip(ERROR_BANDS_HZ[:-1], ERROR_BANDS_HZ[1:])]
    lines = [f"{'track':<44}" + "".join(f"{t:>10}" for t in titles) + "   vocal error by band (Hz " + " ".join(bands) + ")"]
    def row(name: str, values: dict) -> str:
        return (f"{name[:44]:<44}" + "".join(f"{values[c]:>10.2f}" for c in columns)
                + "   " + " ".join(f"{100 * f:3.0f}%" for f in values["error_bands"]))
    lines += [row(t["name"], t) for t in result["tracks"][:worst]]
    lines.append(row(f"median of the {worst} worst", result["worst"]))
    lines.append(row(f"median of the other {len(result['tracks']) - worst}", result["rest"]))
    lines.append("sung seconds of all tracks, median vocal SDR by vocal-to-accompaniment ratio: " + ", ".join(
        f"{b['ratio_db'][0]:g}..{b['ratio_db'][1]:g} dB: {b['median_vocal_sdr']:.2f} "
        f"(+{b['median_improvement']:.1f} over the mixture, {b['seconds']} s)"
        for b in result["per_second_by_ratio"] if b["median_vocal_sdr"] is not None)
        + f"; correlation {result['per_second_ratio_sdr_correlation']:.2f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--model", default=None, help="installed model (default: the default model)")
    parser.add_argument("--worst", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from whamsah_tray.separation.threads import set_compute_threads
    set_compute_threads(1)
    result = analyse(args.data_dir, args.model, args.worst)
    print("\n".join(format_report(result, args.worst)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
