"""What the listener hears in each way of making sound, on real songs: a file made of excerpts of
the first N musdb7/test tracks (each `--seconds` long, at 44.1 kHz, or with `--rate 48000` at
48 kHz), played through

    run   (sync mode: the file played into the cable, the engine recording its monitor)
    play  (async mode: `whamsah-tray play FILE`)
    separate (offline: the instrumental stem)

at vocals 0 % (and, for play and run, at 0 % / 0 %). The speakers' monitor is recorded and, excerpt
by excerpt, projected onto the true vocal and accompaniment stems: the gain of each stem in what
the listener hears. Prints a table per flow (per-excerpt figures and their median); asserts
nothing.

    python bench/bench_karaoke.py [--tracks 6] [--seconds 6] [--rate 44100] [--flows run play separate]

Needs ../shared/data and a desktop: uses the current one when its variables are set (e.g. after
`source tests/desktop_env.sh up`), otherwise starts tests/desktop_env.sh in a private folder.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import soxr

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
sys.path.insert(0, str(REPO_ROOT))

from bench_tray import desktop_down, desktop_up  # noqa: E402  (the same desktop handling)
from engine_audio import RATE, match, play_into, recording  # noqa: E402
from listener import Excerpt, stem_gains_db  # noqa: E402

SHARED = REPO_ROOT.parent / "shared" / "data"


def load_tracks(count: int, seconds: float) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, vocals, accompaniment) at 44.1 kHz stereo, the first `seconds` of each track."""
    from whamsah_tray.audio_io import read_audio

    tracks = sorted(p for p in (SHARED / "musdb7" / "test").iterdir() if (p / "vocals.ogg").exists())[:count]
    found = []
    for track in tracks:
        vocals, rate = read_audio(track / "vocals.ogg")
        accompaniment, _ = read_audio(track / "accompaniment.ogg")
        frames = int(seconds * rate)
        found.append((track.name, vocals[:frames], accompaniment[:frames]))
    return found


def excerpt_gains(audio: np.ndarray, tracks, lag: float) -> list[tuple[str, float, float]]:
    """Per excerpt: (name, vocal dB, accompaniment dB) of the 48 kHz recording aligned at lag."""
    rows, offset = [], 0
    for name, vocals, accompaniment in tracks:
        stems = [soxr.resample(s, 44100, RATE).astype(np.float32) for s in (vocals, accompaniment)]
        piece = Excerpt(stems[0], stems[1], name, True)
        vocal_db, accompaniment_db, _ = stem_gains_db(audio, piece, lag + offset)
        rows.append((name, vocal_db, accompaniment_db))
        offset += len(stems[0])
    return rows


def print_table(title: str, rows) -> None:
    print(f"\n{title}")
    for name, vocal_db, accompaniment_db in rows:
        print(f"  {name[:40]:40s}  vocal stem {vocal_db:+6.1f} dB   accompaniment {accompaniment_db:+6.1f} dB")
    print(f"  {'median':40s}  vocal stem {statistics.median(r[1] for r in rows):+6.1f} dB   "
          f"accompaniment {statistics.median(r[2] for r in rows):+6.1f} dB")


def peak_dbfs(audio: np.ndarray) -> float:
    return 20 * np.log10(max(float(np.abs(audio).max()) if len(audio) else 0.0, 1e-10))


def cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "whamsah_tray", *args], cwd=REPO_ROOT, **kwargs)


def flow_play(path: Path, levels: list[str]) -> np.ndarray:
    with recording() as rec:
        done = cli("play", str(path), "--output", "speakers", *levels,
                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        out, _ = done.communicate(timeout=600)
    print(f"  play {' '.join(levels)}: {out.strip()}")
    return rec["audio"]


def flow_run(mixture_48k: np.ndarray, levels: list[str]) -> np.ndarray:
    engine = cli("run", "--input", "cable_monitor", "--output", "speakers", *levels,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in engine.stderr:
            if "engine running" in line:
                break
        time.sleep(1.0)
        with recording() as rec:
            play_into("cable", mixture_48k)
    finally:
        engine.send_signal(signal.SIGINT)
        out, _ = engine.communicate(timeout=60)
    print(f"  run {' '.join(levels)}: {out.strip()}")
    return rec["audio"]


def flow_separate(path: Path) -> np.ndarray:
    from whamsah_tray.audio_io import read_audio

    with tempfile.TemporaryDirectory(prefix="whamsah-bench-sep-") as folder:
        subprocess.run([sys.executable, "-m", "whamsah_tray", "separate", str(path), "--out", folder, "--no-progress"],
                       cwd=REPO_ROOT, check=True, capture_output=True)
        instrumental, rate = read_audio(Path(folder) / "instrumental.wav")
    return soxr.resample(instrumental, rate, RATE).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rate", type=int, default=44100, help="the file's sample rate (44100 or 48000)")
    parser.add_argument("--flows", nargs="+", default=["run", "play", "separate"], choices=["run", "play", "separate"])
    args = parser.parse_args()
    if not (SHARED / "musdb7" / "test").is_dir():
        print(f"no {SHARED / 'musdb7' / 'test'}: nothing to measure")
        return 1
    tracks = load_tracks(args.tracks, args.seconds)
    mixture = np.concatenate([v + a for _, v, a in tracks])
    mixture_48k = soxr.resample(mixture, 44100, RATE).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="whamsah-bench-karaoke-") as folder:
        started_desktop = desktop_up(Path(folder))
        try:
            path = Path(folder) / f"songs-{args.rate}.wav"
            audio = mixture if args.rate == 44100 else soxr.resample(mixture, 44100, args.rate)
            soundfile.write(str(path), audio, args.rate, subtype="FLOAT")
            print(f"{len(tracks)} excerpts of {args.seconds:g} s, file at {args.rate} Hz ({len(mixture) / 44100:.1f} s)")
            for flow in args.flows:
                if flow == "separate":
                    instrumental = flow_separate(path)
                    print_table("separate: the instrumental stem", excerpt_gains(instrumental, tracks, 0.0))
                    continue
                take = (lambda levels: flow_play(path, levels)) if flow == "play" else \
                    (lambda levels: flow_run(mixture_48k, levels))
                heard = take(["--vocals", "0"])
                lag = match(mixture_48k, heard).lag
                print_table(f"{flow} --vocals 0", excerpt_gains(heard, tracks, lag))
                silent = take(["--vocals", "0", "--instrumental", "0"])
                print(f"\n{flow} --vocals 0 --instrumental 0: the output peaks at {peak_dbfs(silent):.1f} dBFS")
        finally:
            if started_desktop is not None:
                desktop_down(Path(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
