"""Helpers for the engine tests: play a signal into the virtual cable with paplay, record what
reaches the speakers with parecord (separate processes), and compare recordings with the reference by cross-correlation: lag, fractional-lag
corrected correlation, per-window correlation (a dropout or a slip shows as a bad window).
Nothing here measures wall-clock time.

paplay runs with 50 ms of buffering: at the harness's 10 ms it slipped in most runs on a busy
2-core machine (measured: cable -> cable.monitor, no engine, 5/5 runs slipped at 10 ms, 0/5 at
50 ms); with no explicit latency it drifts. parecord keeps a short buffer (its timing does not
matter, only completeness).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

RATE = 48000  # the null sinks' rate


def band_limited_noise(seconds: float, rate: int = RATE, top_hz: float = 12000.0, seed: int = 0,
                       level: float = 0.2) -> np.ndarray:
    """Stereo noise (independent channels) band-limited to top_hz: every lag gives a sharp peak."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * rate)
    noise = rng.standard_normal((frames, 2))
    spectrum = np.fft.rfft(noise, axis=0)
    spectrum[np.fft.rfftfreq(frames, 1 / rate) > top_hz] = 0
    noise = np.fft.irfft(spectrum, frames, axis=0)
    return (level * noise / noise.std()).astype(np.float32)


@contextlib.contextmanager
def recording(source: str = "speakers.monitor", rate: int = RATE):
    """Records `source` (a PulseAudio source) while the block runs; yields a dict whose "audio"
    holds the float32 (frames, 2) recording afterwards."""
    result: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="whamsah-rec-") as folder:
        path = Path(folder) / "rec.wav"
        recorder = subprocess.Popen(
            ["parecord", "--latency-msec=20", "-d", source, f"--rate={rate}", "--channels=2",
             "--format=float32le", "--file-format=wav", str(path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(0.3)
            yield result
            time.sleep(0.2)
        finally:
            recorder.send_signal(signal.SIGINT)
            try:
                recorder.wait(5)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
        audio, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
        result["audio"] = audio


def play_into(sink: str, audio: np.ndarray, rate: int = RATE) -> None:
    """Plays audio (frames, channels) into a PulseAudio sink and returns when it has been played."""
    with tempfile.TemporaryDirectory(prefix="whamsah-play-") as folder:
        path = Path(folder) / "play.wav"
        soundfile.write(str(path), audio, rate, subtype="FLOAT")
        subprocess.run(["paplay", "--latency-msec=50", "-d", sink, str(path)], check=True, timeout=120)


@dataclass(frozen=True)
class Match:
    lag: float  # frames (fractional) by which the recording lags the reference
    correlation: float  # over the whole reference, after fractional alignment
    worst_window: float  # lowest correlation of any 100 ms window that is not near-silent (dropouts, slips)
    gain_db: float  # level of the recording relative to the reference


def _shift(signal_1d: np.ndarray, fraction: float) -> np.ndarray:
    """Delays a signal by a fraction of a sample (FFT phase shift)."""
    n = len(signal_1d)
    spectrum = np.fft.rfft(signal_1d, 2 * n)
    spectrum *= np.exp(-2j * np.pi * np.fft.rfftfreq(2 * n) * fraction)
    return np.fft.irfft(spectrum, 2 * n)[:n]


def match(reference: np.ndarray, recording: np.ndarray, rate: int = RATE, window_s: float = 0.1) -> Match:
    """Finds reference (frames, channels) inside recording (longer) and compares them (channel 0
    for the lag, all channels for the correlation)."""
    x, y = reference[:, 0].astype(np.float64), recording[:, 0].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(x) + len(y))))
    cross = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)[: len(y)]
    lag = int(np.argmax(cross))
    # Parabolic refinement of the peak gives the fractional part of the lag.
    fraction = 0.0
    if 0 < lag < len(cross) - 1:
        a, b, c = cross[lag - 1], cross[lag], cross[lag + 1]
        if a - 2 * b + c != 0:
            fraction = 0.5 * (a - c) / (a - 2 * b + c)
    frames = min(len(x), len(y) - lag - 2)
    ref = np.stack([_shift(reference[:frames, ch].astype(np.float64), fraction)
                    for ch in range(reference.shape[1])], axis=1)
    rec = recording[lag:lag + frames].astype(np.float64)
    skip = int(0.01 * rate)  # the FFT shift wraps a few samples at the start
    ref, rec = ref[skip:], rec[skip:]

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-20))

    window = int(window_s * rate)
    starts = range(0, len(ref) - window + 1, window)
    power = np.array([np.mean(ref[i:i + window] ** 2) for i in starts])
    # Near-silent reference windows (an MP3's encoder delay, a fade) cannot be judged by correlation.
    judged = [i for i, p in zip(starts, power) if p > 0.01 * np.median(power)]
    windows = [corr(ref[i:i + window], rec[i:i + window]) for i in judged]
    gain = 10 * np.log10((rec ** 2).sum() / max((ref ** 2).sum(), 1e-20) + 1e-20)
    return Match(lag + fraction, corr(ref, rec), min(windows) if windows else 0.0, float(gain))
