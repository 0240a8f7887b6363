"""Whole-file separation through the streaming path, so that a file separated offline sounds exactly
like the same audio heard live: resample to the model's rate, feed the StreamingSeparator in blocks,
flush its latency with silence, cut the latency off, resample the vocals back.

The instrumental is computed last, at the input's own rate: `instrumental = input - vocals`, so the
two outputs always sum to the input exactly. With a key change (`key`, semitones) both are shifted
and sum to the shifted input instead: the separator's vocals + instrumental, resampled back.
"""

from __future__ import annotations

from collections.abc import Callable

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
                   block: int = OFFLINE_BLOCK, key: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """audio: (frames, channels) at sample_rate -> (vocals, instrumental), same shape and rate;
    key: both transposed by that many semitones (-6..6, see StreamingSeparator.set_key;
    ValueError for a model without a spectral path)."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    frames, channels = audio.shape
    separator = StreamingSeparator(model, channels, max_block=block)
    separator.set_key(key)
    if frames == 0:
        return audio.copy(), audio.copy()
    rate = model.network.sample_rate
    model_audio = resample(audio, sample_rate, rate)
    if not key:
        vocals = _fit_length(resample(stream_through(model_audio, separator, progress), rate, sample_rate), frames)
        return vocals, audio - vocals
    vocals, instrumental = stream_stems(model_audio, separator, progress)
    mix = _fit_length(resample(vocals + instrumental, rate, sample_rate), frames)
    vocals = _fit_length(resample(vocals, rate, sample_rate), frames)
    return vocals, mix - vocals


def stream_through(audio: np.ndarray, separator: StreamingSeparator, progress: Progress | None = None) -> np.ndarray:
    """The separator's vocals for `audio`, with its latency removed: (frames, channels)."""
    return _stream(audio, separator, progress, instrumental=False)[0]


def stream_stems(audio: np.ndarray, separator: StreamingSeparator,
                 progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The separator's (vocals, instrumental) for `audio`, with its latency removed: each
    (frames, channels)."""
    return _stream(audio, separator, progress, instrumental=True)


def _stream(audio: np.ndarray, separator: StreamingSeparator, progress: Progress | None,
            instrumental: bool) -> tuple[np.ndarray, np.ndarray | None]:
    frames, channels = audio.shape
    latency, block = separator.latency, separator.max_block
    total = frames + latency
    vocals = np.empty((total, channels), dtype=np.float32)
    rest = np.empty((total, channels), dtype=np.float32) if instrumental else None
    silence = np.zeros((block, channels), dtype=np.float32)
    for start in range(0, total, block):
        stop = min(start + block, total)
        piece = audio[start:stop] if stop <= frames else np.concatenate(
            [audio[start:frames], silence[: stop - max(start, frames)]])
        vocals[start:stop], other = separator.process(piece)
        if rest is not None:
            rest[start:stop] = other
        if progress is not None:
            progress(min(stop, frames), frames)
    return vocals[latency:], (rest[latency:] if rest is not None else None)


def _fit_length(audio: np.ndarray, frames: int) -> np.ndarray:
    if audio.shape[0] >= frames:
        return np.ascontiguousarray(audio[:frames])
    return np.concatenate([audio, np.zeros((frames - audio.shape[0], audio.shape[1]), np.float32)])
