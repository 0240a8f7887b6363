"""The inference worker's signal chain: device-rate frames in, mixed device-rate frames out, at a
fixed latency that is a whole number of device frames.

    device rate --soxr--> model rate --StreamingSeparator--> (vocals, instrumental)
        --per-sample gains (levels.py)--> mix --soxr--> device rate

soxr's ResampleStream compensates its filter delay (output frame j is input time j), it only holds
output back in bursts; so the chain's delay is the model's latency alone. At 48 kHz <-> 44.1 kHz a
model latency is a whole number of device frames only in multiples of 147 model samples, so the
mix is delayed by a few extra model samples up to the next multiple: then the dry fallback in the
audio callback (an integer delay) lines up with the wet path to the sample.

Without a model (weights missing, still loading) the same chain runs with a plain delay line of
the default model's latency instead of the separator: dry pass-through at the same latency.

Runs on the inference worker thread only (the network, allocation); not thread-safe. Imports no
torch: a numpy-path model runs without it (separation/threads.py sets torch's threads where a
torch model has imported it).
"""

from __future__ import annotations

import math
import time
import weakref

import numpy as np
import soxr

from whamsah_tray.engine.levels import LevelRamp
from whamsah_tray.separation.threads import compute_thread_count, sync_torch_threads

# Latency of the dry pass-through when no model is loaded: that of the default real-time model
# (hop 512 + 2048-sample STFT window at 44.1 kHz), so that loading it later changes nothing.
DRY_LATENCY_SAMPLES = 2560
DRY_SAMPLE_RATE = 44100
RESAMPLER_QUALITY = "HQ"  # flat to 20 kHz; its bursts are covered by the measured holdback
MAX_CHUNK = 4096  # frames per separator call; larger inputs are cut
# The mix of a hop is ready only once the model has run on it: a chunked model (WHAMSAHNet: a
# network run per 32768-sample hop, ~0.15 s on one core here) needs that time on top of its latency,
# or the first part of every hop plays dry. Measured when the worker takes the pipeline up, with
# headroom for a busier machine; at most MAX_COMPUTE_S (a model slower than that cannot run live).
COMPUTE_HEADROOM = 2.5
MAX_COMPUTE_S = 1.0
# A model's measured hop time, per loaded network, channel count and compute thread count: measured
# once per loaded model, not at each session (WHAMSAHNet's measurement takes ~1 s, during which a
# file would wait to start). Forgotten with the model.
_measured_hop_s: "weakref.WeakKeyDictionary[object, dict[tuple[int, int], float]]" = weakref.WeakKeyDictionary()


class DelayLine:
    """A fixed delay of `delay` samples on (frames, channels) blocks of any size."""

    def __init__(self, delay: int, channels: int) -> None:
        self.delay = delay
        self._buffer = np.zeros((delay, channels), dtype=np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        if self.delay == 0:
            return block
        joined = np.concatenate([self._buffer, block])
        self._buffer = joined[len(block):].copy()
        return joined[:len(block)]


class SeparationPipeline:
    """separator: a StreamingSeparator (owned by this pipeline from now on) or None for dry."""

    def __init__(self, separator, device_rate: int, channels: int, levels: LevelRamp) -> None:
        self.separator = separator
        self.channels = channels
        self.device_rate = device_rate
        self.levels = levels
        self.model_rate = separator.sample_rate if separator is not None else DRY_SAMPLE_RATE
        model_latency = separator.latency if separator is not None else DRY_LATENCY_SAMPLES
        self.resampling = device_rate != self.model_rate
        if self.resampling:
            # Smallest number of model samples that is a whole number of device frames.
            unit = self.model_rate // math.gcd(self.model_rate, device_rate)
            padded = -(-model_latency // unit) * unit
        else:
            padded = model_latency
        self.model_latency_samples = padded
        self.latency_frames = padded * device_rate // self.model_rate
        self._padding = DelayLine(padded - model_latency, channels)
        self._dry = DelayLine(model_latency, channels) if separator is None else None
        self._refused_key: int | None = None  # a key the separator cannot play (see _mix)
        self._to_model = self._from_model = None
        self.compute_frames = 0  # device frames the worker needs for a hop: see measure_compute()
        self.reset()

    @property
    def has_model(self) -> bool:
        return self.separator is not None

    def reset(self) -> None:
        """Forget all audio (as if silence had been playing); the latency stays the same."""
        if self.separator is not None:
            self.separator.reset()
        for line in (self._padding, self._dry):
            if line is not None:
                line._buffer.fill(0.0)
        if self.resampling:
            self._to_model = _resampler(self.device_rate, self.model_rate, self.channels)
            self._from_model = _resampler(self.model_rate, self.device_rate, self.channels)

    def measure_compute(self) -> None:
        """Time the model's work for one hop, on the calling thread with its compute threads (the
        worker's, before it uses this pipeline), and keep it in `compute_frames`: the fastest of
        three warm hops, times COMPUTE_HEADROOM, in device frames. Resets the separator after.
        A model already measured with these channels and threads is not measured again."""
        if self.separator is None:
            return
        sync_torch_threads()  # a torch model loaded since the worker set its threads: this thread's pool
        per_setting = _measured_hop_s.setdefault(self.separator.network, {})
        setting = (self.channels, compute_thread_count())
        if setting not in per_setting:
            per_setting[setting] = self._time_one_hop()
        compute_s = min(COMPUTE_HEADROOM * per_setting[setting], MAX_COMPUTE_S)
        self.compute_frames = math.ceil(compute_s * self.device_rate)

    def _time_one_hop(self) -> float:
        """Seconds for one hop: the fastest of three, warm, on noise; the separator reset after."""
        separator, hop = self.separator, self.separator.hop
        rng = np.random.default_rng(0)
        def feed(frames: int) -> None:  # noise, not silence: the separator skips digital silence
            separator.process((0.01 * rng.standard_normal((frames, self.channels))).astype(np.float32))
        feed(separator.latency + hop)
        fastest = math.inf
        for _ in range(3):
            started = time.perf_counter()
            feed(hop)
            fastest = min(fastest, time.perf_counter() - started)
        self.reset()
        return fastest

    def frames_until_hop(self) -> int:
        """Device frames still missing before the model runs again (0 without a model): until
        then a call only moves audio along. With resampling an estimate (soxr holds a few samples
        back at times, then the hop completes a call later)."""
        if self.separator is None:
            return 0
        missing = self.separator.frames_until_hop()
        return -(-missing * self.device_rate // self.model_rate) if self.resampling else missing

    def process(self, block: np.ndarray) -> np.ndarray:
        """block (frames, channels) float32 at the device rate -> output frames at the device rate.

        The count varies per call: the separator gives out what it already knows (up to a hop
        beyond the input, see StreamingSeparator.process(ahead=True)) and soxr works in bursts;
        output frame j always belongs to input frame j - latency_frames.
        """
        model_block = self._to_model.resample_chunk(block) if self.resampling else block
        pieces = [self._mix(model_block[start:start + MAX_CHUNK])
                  for start in range(0, len(model_block), MAX_CHUNK)] or [model_block]
        mix = self._padding.process(pieces[0] if len(pieces) == 1 else np.concatenate(pieces))
        return self._from_model.resample_chunk(mix) if self.resampling else mix

    def _mix(self, block: np.ndarray) -> np.ndarray:
        if self.separator is None:
            return self._dry.process(block)
        key = self.levels.wanted_key()
        if key != self.separator.key and key != self._refused_key:
            try:
                self.separator.set_key(key)
            except ValueError:  # a model without a spectral path (WHAMSAHNet): it plays in its key
                self._refused_key = key
        vocals, instrumental = self.separator.process(block, ahead=True)  # up to a hop more frames
        vocal_gain, instrumental_gain = self.levels.advance(len(vocals))
        vocals *= vocal_gain[:, None]
        instrumental *= instrumental_gain[:, None]
        vocals += instrumental
        return vocals

    def resampler_holdback(self, blocksize: int, seconds: float = 1.0) -> int:
        """Most device frames the resamplers ever hold back when fed `blocksize` frames at a time
        (0 without resampling), measured on fresh resamplers with noise."""
        if not self.resampling:
            return 0
        to_model = _resampler(self.device_rate, self.model_rate, self.channels)
        from_model = _resampler(self.model_rate, self.device_rate, self.channels)
        noise = np.random.default_rng(0).standard_normal((blocksize, self.channels)).astype(np.float32)
        fed = produced = worst = 0
        for _ in range(int(seconds * self.device_rate / blocksize) + 1):
            produced += len(from_model.resample_chunk(to_model.resample_chunk(noise)))
            fed += blocksize
            worst = max(worst, fed - produced)
        return worst


def _resampler(from_rate: int, to_rate: int, channels: int) -> soxr.ResampleStream:
    return soxr.ResampleStream(from_rate, to_rate, channels, dtype="float32", quality=RESAMPLER_QUALITY)
