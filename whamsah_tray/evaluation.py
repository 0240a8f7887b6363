"""Scoring a separation model on a folder of stems, the way the model card reports it.

    DATA_DIR/<track>/{vocals,accompaniment}.{ogg,flac,wav}     the mixture is vocals + accompaniment

Systems (rows)
- the model: each mixture goes through `separate_array`, i.e. the StreamingSeparator the live
  engine uses (same blocks of hops, same latency compensation), not a separate offline path;
- "mixture" (reference row): both estimates are the mixture itself (doing nothing);
- "oracle IRM" (reference row): the ideal ratio mask |V|^2 / (|V|^2 + |A|^2) per channel on an
  STFT of 2048 / 512 (periodic Hann), an upper bound for masking models.

Metrics, for vocals and accompaniment
- cSDR: museval BSSEval v4 SDR on 1 s windows (`museval.evaluate(refs, ests, win=rate, hop=rate)`),
  the median over a track's windows (NaN windows, where the reference is silent, ignored), then
  the median over tracks. (museval's v4 SDR is the "images" one: |s|^2 / |s - s_hat|^2 per
  window, no gain allowed, so a wrong level costs as much here as in uSDR. A window where any
  reference or estimate is silent is NaN.)
- uSDR: the plain energy ratio 10 log10(sum s^2 / sum (s - s_hat)^2) over the whole track and all
  channels (no distortion filter, so gain errors count), then the mean over tracks. This is the
  "uSDR" of recent literature (e.g. the Music Demixing Challenge), not museval with one window.
On ../shared/data/musdb7/test these definitions reproduce the folder's README: mixture
-4.84 / 4.84 cSDR, -5.52 / 5.52 uSDR; oracle IRM 9.84 / 14.84 cSDR, 10.13 / 15.65 uSDR.

Runs on the caller's thread (the CLI's main thread). CPU heavy: museval takes a few seconds per
7 s track and system.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from whamsah_tray.audio_io import read_audio
from whamsah_tray.errors import DatasetError, WhamsahError
from whamsah_tray.separation import separate_array

SOURCES = ("vocals", "accompaniment")
STEM_SUFFIXES = (".ogg", ".flac", ".wav")
MIXTURE_ROW = "mixture"
ORACLE_ROW = "oracle IRM"
REFERENCE_ROWS = (MIXTURE_ROW, ORACLE_ROW)
ORACLE_N_FFT, ORACLE_HOP = 2048, 512
SUMMARY_KEYS = ("vocals_csdr", "accompaniment_csdr", "vocals_usdr", "accompaniment_usdr")


@dataclass(frozen=True)
class TrackStems:
    name: str
    vocals: Path
    accompaniment: Path


@dataclass
class TrackScore:
    name: str
    vocals_csdr: float
    accompaniment_csdr: float
    vocals_usdr: float
    accompaniment_usdr: float


@dataclass
class SystemScores:
    """One row: a system's scores on every track."""
    system: str
    tracks: list[TrackScore] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, float]:
        """cSDR: median over tracks; uSDR: mean over tracks (NaN tracks ignored)."""
        def column(key: str) -> np.ndarray:
            return np.array([getattr(track, key) for track in self.tracks], dtype=np.float64)
        with _quiet_nan_warnings():
            return {key: float(np.nanmedian(column(key)) if key.endswith("csdr") else np.nanmean(column(key)))
                    for key in SUMMARY_KEYS}


    def tail(self, worst: int = 5) -> dict[str, Any]:
        """The tracks a median hides: the 10th and 25th percentiles of per-track vocals cSDR and
        the `worst` tracks by it, lowest first (NaN tracks left out of both)."""
        scored = sorted((t for t in self.tracks if math.isfinite(t.vocals_csdr)), key=lambda t: t.vocals_csdr)
        values = [t.vocals_csdr for t in scored]
        p10, p25 = np.percentile(values, [10, 25]) if values else (math.nan, math.nan)
        return {"vocals_csdr_p10": float(p10), "vocals_csdr_p25": float(p25),
                "worst_tracks": [{"name": t.name, "vocals_csdr": t.vocals_csdr,
                                  "accompaniment_csdr": t.accompaniment_csdr} for t in scored[:worst]]}


@dataclass
class Evaluation:
    data_dir: Path
    rows: list[SystemScores]  # the model's row first (when a model was evaluated), then references
    model: str | None
    seconds: float

    def row(self, system: str) -> SystemScores:
        return next(row for row in self.rows if row.system == system)

    def to_json(self) -> dict[str, Any]:
        """{"model", "summary", "tail", "tracks", "reference_rows": {name: {"summary", "tail",
        "tracks"}}, ...} (tail: SystemScores.tail); non-finite figures become null."""
        def part(row: SystemScores) -> dict[str, Any]:
            tail = row.tail()
            tail["worst_tracks"] = [_finite(t) for t in tail["worst_tracks"]]
            return {"summary": _finite(row.summary), "tail": _finite(tail),
                    "tracks": [_finite(asdict(t)) for t in row.tracks]}
        model_rows = [row for row in self.rows if row.system not in REFERENCE_ROWS]
        result: dict[str, Any] = {"model": self.model, "data_dir": str(self.data_dir)}
        if model_rows:
            result.update(part(model_rows[0]))
        result["reference_rows"] = {row.system: part(row) for row in self.rows if row.system in REFERENCE_ROWS}
        result["metrics"] = {
            "csdr": "museval BSSEval v4 SDR, 1 s windows: median over windows, then median over tracks",
            "usdr": "10 log10(|s|^2 / |s - s_hat|^2) over the whole track, then mean over tracks",
        }
        result["seconds"] = round(self.seconds, 1)
        return result


@contextlib.contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    """All-NaN medians and silent references are expected here: they simply give NaN or inf."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in values.items()}


# --- the data folder -------------------------------------------------------------------------------
def _stem_file(track: Path, source: str) -> Path | None:
    for suffix in STEM_SUFFIXES:
        if (track / f"{source}{suffix}").is_file():
            return track / f"{source}{suffix}"
    return None


def find_tracks(data_dir: Path) -> list[TrackStems]:
    """The tracks of DATA_DIR, by name; raises DatasetError for a missing or empty folder or a
    track folder that lacks a stem."""
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise DatasetError(f"data folder '{data_dir}' does not exist")
    if not data_dir.is_dir():
        raise DatasetError(f"'{data_dir}' is not a folder (expected <track>/vocals.ogg, <track>/accompaniment.ogg ...)")
    tracks = []
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        stems = {source: _stem_file(folder, source) for source in SOURCES}
        missing = [source for source, path in stems.items() if path is None]
        if missing:
            wanted = "|".join(s.lstrip(".") for s in STEM_SUFFIXES)
            raise DatasetError(f"track '{folder.name}' in '{data_dir}' has no {missing[0]}.{{{wanted}}}")
        tracks.append(TrackStems(folder.name, stems["vocals"], stems["accompaniment"]))
    if not tracks:
        raise DatasetError(f"no tracks in '{data_dir}' (expected <track>/vocals.ogg and <track>/accompaniment.ogg, "
                           f"or .flac / .wav)")
    return tracks


def load_track(track: TrackStems) -> tuple[np.ndarray, np.ndarray, int]:
    """(vocals, accompaniment, rate), float32 (frames, channels); a mono stem beside a stereo one
    is duplicated. Raises AudioFileError (unreadable stem) or DatasetError (stems that disagree)."""
    vocals, rate = read_audio(track.vocals)
    accompaniment, accompaniment_rate = read_audio(track.accompaniment)
    if rate != accompaniment_rate:
        raise DatasetError(f"track '{track.name}': stems at different rates ({rate} / {accompaniment_rate} Hz)")
    if len(vocals) != len(accompaniment):
        raise DatasetError(f"track '{track.name}': stems of different lengths "
                           f"({len(vocals)} / {len(accompaniment)} frames)")
    if vocals.shape[1] != accompaniment.shape[1]:
        if 1 not in (vocals.shape[1], accompaniment.shape[1]):
            raise DatasetError(f"track '{track.name}': stems with {vocals.shape[1]} and "
                               f"{accompaniment.shape[1]} channels")
        channels = max(vocals.shape[1], accompaniment.shape[1])
        vocals, accompaniment = (np.repeat(s, channels // s.shape[1], axis=1) for s in (vocals, accompaniment))
    return vocals, accompaniment, rate


# --- systems and scores ------------------------------------------------------------------------------
def oracle_irm(vocals: np.ndarray, accompaniment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ideal (power) ratio mask estimates, (frames, channels) each; they sum to the mixture."""
    window = torch.hann_window(ORACLE_N_FFT)
    def stft(x: np.ndarray) -> torch.Tensor:
        return torch.stft(torch.from_numpy(np.ascontiguousarray(x.T)), ORACLE_N_FFT, ORACLE_HOP,
                          window=window, return_complex=True)
    mixture = vocals + accompaniment
    vocals_power, accompaniment_power = stft(vocals).abs().square(), stft(accompaniment).abs().square()
    mask = vocals_power / (vocals_power + accompaniment_power + 1e-10)
    estimate = torch.istft(mask * stft(mixture), ORACLE_N_FFT, ORACLE_HOP, window=window,
                           length=len(mixture)).numpy().T.astype(np.float32)
    return estimate, mixture - estimate


def usdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Whole-track SDR in dB: 10 log10(sum s^2 / sum (s - s_hat)^2)."""
    reference = reference.astype(np.float64)
    signal, error = np.sum(reference ** 2), np.sum((reference - estimate) ** 2)
    with _quiet_nan_warnings():
        return float(10 * np.log10(signal / error))


class MissingExtraError(WhamsahError):
    """An optional dependency is not installed; the message says which extra brings it."""


def museval_module():
    """museval, imported here: slow to import, only evaluation needs it, and it comes with the
    `eval` extra. Raises MissingExtraError where it is not installed."""
    try:
        import museval
    except ImportError as error:
        raise MissingExtraError("evaluate needs museval: pip install 'whamsah-tray[eval]'") from error
    return museval


def score_track(name: str, vocals: np.ndarray, accompaniment: np.ndarray, vocals_estimate: np.ndarray,
                accompaniment_estimate: np.ndarray, rate: int) -> TrackScore:
    museval = museval_module()
    references = np.stack([vocals, accompaniment])
    estimates = np.stack([vocals_estimate, accompaniment_estimate])
    with _quiet_nan_warnings():
        sdr = museval.evaluate(references, estimates, win=rate, hop=rate)[0]  # (sources, windows)
        csdr = np.nanmedian(sdr, axis=1)
    return TrackScore(name, float(csdr[0]), float(csdr[1]),
                      usdr(vocals, vocals_estimate), usdr(accompaniment, accompaniment_estimate))


def evaluate(data_dir: Path, model=None, reference_rows: Sequence[str] = (),
             progress_bar: bool = False) -> Evaluation:
    """Scores `model` (a LoadedModel, or None for reference rows only) and the named reference rows
    (of REFERENCE_ROWS) on every track of data_dir. Raises DatasetError / AudioFileError."""
    unknown = set(reference_rows) - set(REFERENCE_ROWS)
    if unknown:
        raise ValueError(f"unknown reference rows {sorted(unknown)}")
    if model is None and not reference_rows:
        raise ValueError("nothing to evaluate: give a model or reference rows")
    started = time.monotonic()
    tracks = find_tracks(data_dir)
    rows = ([SystemScores(model.info.name)] if model is not None else []) + [
        SystemScores(name) for name in REFERENCE_ROWS if name in reference_rows]
    for track in tqdm(tracks, desc="evaluating", unit="track", file=sys.stderr, disable=not progress_bar):
        vocals, accompaniment, rate = load_track(track)
        mixture = vocals + accompaniment
        for row in rows:
            if row.system == MIXTURE_ROW:
                estimates = mixture, mixture
            elif row.system == ORACLE_ROW:
                estimates = oracle_irm(vocals, accompaniment)
            else:
                estimates = separate_array(mixture, rate, model)
            row.tracks.append(score_track(track.name, vocals, accompaniment, *estimates, rate))
    return Evaluation(Path(data_dir), rows, model.info.name if model is not None else None,
                      time.monotonic() - started)
