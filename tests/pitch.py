"""Pitch measurements shared by the key-change tests: a band-limited sawtooth, its measured
fundamental (an FFT peak, parabolic interpolation), and the distance in cents; bench/bench_key.py
measures with the same."""

from __future__ import annotations

import numpy as np

SR = 44100


def sawtooth(f0: float, seconds: float = 2.0, sample_rate: int = SR, vibrato: float = 0.0) -> np.ndarray:
    """Band-limited (harmonics below 16 kHz or Nyquist), mono float32; `vibrato` in semitones at 5 Hz."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    phase = 2 * np.pi * f0 * t
    if vibrato:
        phase += f0 * (2 ** (vibrato / 12) - 1) / 5 * np.sin(2 * np.pi * 5 * t)
    top = min(16000, 0.45 * sample_rate) / (f0 * 2 ** (vibrato / 12))
    return (0.2 * sum(np.sin(h * phase) / h for h in range(1, int(top) + 1))).astype(np.float32)


def measured_pitch(y: np.ndarray, expected: float, sample_rate: int = SR) -> float:
    """The strongest spectral peak within +-15 % of `expected` (Hann, 8x zero padding, parabolic
    interpolation of the log magnitude)."""
    size = 8 * len(y)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), size))
    step = sample_rate / size
    low, high = int(expected * 0.85 / step), int(expected * 1.15 / step)
    k = low + int(np.argmax(spectrum[low:high]))
    a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-30)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * step


def cents(frequency: float, target: float) -> float:
    return float(1200 * np.log2(frequency / target))
