"""Whole-file separation through the streaming path, so that a file separated offline sounds exactly
like the same audio heard live: resample to the model's rate, feed the StreamingSeparator in blocks,
flush its latency with silence, cut the latency off, resample the vocals back.

The instrumental is computed last, at the input's own rate: `instrumental = input - vocals`, so the
two outputs always sum to the input exactly.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import soxr

from whamsah_tray.separation.streaming import StreamingSeparator

Progress = Callable[[int, int], None]
OFFLINE_BLOCK = 8192


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """(frames, channels) float32 at rate_in -> at rate_out (soxr, high quality)."""
    if rate_in == rate_out:
        return audio
    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


def separate_array(audio: np.ndarray, sample_rate: int, model, progress: Progress | None = None,
                   block: int = OFFLINE_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """audio: (frames, channels) at sample_rate -> (vocals, instrumental), same shape and rate."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    frames, channels = audio.shape
    if frames == 0:
        return audio.copy(), audio.copy()
    model_audio = resample(audio, sample_rate, model.network.sample_rate)
    vocals = stream_through(model_audio, StreamingSeparator(model, channels, max_block=block), progress)
    vocals = resample(vocals, model.network.sample_rate, sample_rate)
    vocals = _fit_length(vocals, frames)
    return vocals, audio - vocals


def stream_through(audio: np.ndarray, separator: StreamingSeparator, progress: Progress | None = None) -> np.ndarray:
    """The separator's vocals for `audio`, with its latency removed: (frames, channels)."""
    frames, channels = audio.shape
    latency, block = separator.latency, separator.max_block
    total = frames + latency
    vocals = np.empty((total, channels), dtype=np.float32)
    silence = np.zeros((block, channels), dtype=np.float32)
    for start in range(0, total, block):
        stop = min(start + block, total)
        piece = audio[start:stop] if stop <= frames else np.concatenate(
            [audio[start:frames], silence[: stop - max(start, frames)]])
        vocals[start:stop] = separator.process(piece)[0]
        if progress is not None:
            progress(min(stop, frames), frames)
    return vocals[latency:]


def _fit_length(audio: np.ndarray, frames: int) -> np.ndarray:
    if audio.shape[0] >= frames:
        return np.ascontiguousarray(audio[:frames])
    return np.concatenate([audio, np.zeros((frames - audio.shape[0], audio.shape[1]), np.float32)])
