"""Vocal and instrumental gains with per-sample linear ramps (at most 20 ms), bypass, and the key.

Targets are set from any thread (the controller) by plain attribute assignment, which is atomic
under the GIL; the inference worker thread reads them once per block and produces per-sample gain
ramps into pre-allocated arrays. Bypass is one flag: it ramps the gains to (1, 1), and since
vocals + instrumental == the delayed input (the separator's contract), that is the dry signal at
exactly the wet path's latency: switching never jumps. The key (semitones, -6..+6) is what the
listener chose to hear too; the pipeline hands it to the separator, whose key change crossfades
(separation/key_shift.py). Bypass plays the input as it is, in its own key.
"""

from __future__ import annotations

import numpy as np

from whamsah_tray.engine.api import MAX_KEY, MAX_LEVEL_PERCENT, MIN_LEVEL_PERCENT

DEFAULT_RAMP_S = 0.015  # below the 20 ms limit; a full 0 -> 100 % swing takes this long


def clamp_key(semitones: float) -> int:
    """The nearest key in -MAX_KEY..+MAX_KEY semitones."""
    if not np.isfinite(semitones):
        raise ValueError(f"key must be a number, got {semitones}")
    return int(min(max(round(semitones), -MAX_KEY), MAX_KEY))


def clamp_percent(percent: float) -> float:
    if not np.isfinite(percent):
        raise ValueError(f"level must be a number, got {percent}")
    return float(min(max(percent, MIN_LEVEL_PERCENT), MAX_LEVEL_PERCENT))


class LevelRamp:
    """Per-sample gains for (vocals, instrumental) that follow their targets with linear ramps."""

    def __init__(self, sample_rate: int, vocals: float = 100.0, instrumental: float = 100.0,
                 bypass: bool = False, ramp_s: float = DEFAULT_RAMP_S, max_block: int = 16384,
                 key: int = 0) -> None:
        # Written by any thread (atomic assignments), read by the worker.
        self.vocals_percent = clamp_percent(vocals)
        self.instrumental_percent = clamp_percent(instrumental)
        self.bypass = bool(bypass)
        self.key = clamp_key(key)
        self.dry_gain = self._louder_target()
        # A step of 1.0 (0 -> 100 %) takes ramp_s; bigger steps take proportionally longer but are
        # still linear, so the slope never exceeds that of a full-scale 0 -> 100 % ramp.
        self._step = 1.0 / max(1.0, ramp_s * sample_rate)
        self._current = np.array(self.targets(), dtype=np.float64)
        self._ramp = np.arange(1, max_block + 1, dtype=np.float64)
        self.vocal_gain = np.zeros(max_block, dtype=np.float32)
        self.instrumental_gain = np.zeros(max_block, dtype=np.float32)

    def targets(self) -> tuple[float, float]:
        if self.bypass:
            return 1.0, 1.0
        return self.vocals_percent / 100.0, self.instrumental_percent / 100.0

    def set(self, vocals: float | None = None, instrumental: float | None = None,
            bypass: bool | None = None, key: int | None = None) -> None:
        if vocals is not None:
            self.vocals_percent = clamp_percent(vocals)
        if instrumental is not None:
            self.instrumental_percent = clamp_percent(instrumental)
        if bypass is not None:
            self.bypass = bool(bypass)
        if key is not None:
            self.key = clamp_key(key)
        self.dry_gain = self._louder_target()

    def _louder_target(self) -> float:
        """The gain the audio callback puts on the dry input when the mix runs short: the louder
        of the two levels. Equal levels make the dry input exactly the mix; at 0 % / 0 % a
        shortfall stays silent (the whole song at full volume was what a muted user heard); and
        it is never louder than the louder part the user chose."""
        return max(self.targets())

    def wanted_key(self) -> int:
        """The key the separator should play in: the chosen one, or 0 in bypass."""
        return 0 if self.bypass else self.key

    def jump_to_targets(self) -> None:
        """No ramp: used when a new stream starts from silence."""
        self._current[:] = self.targets()

    def advance(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Gains for the next `frames` samples: two float32 views of length frames (worker thread).
        More frames than `max_block` grow the buffers once (a chunked model's hop: 32768)."""
        if frames > len(self._ramp):
            self._ramp = np.arange(1, frames + 1, dtype=np.float64)
            self.vocal_gain = np.zeros(frames, dtype=np.float32)
            self.instrumental_gain = np.zeros(frames, dtype=np.float32)
        targets = self.targets()
        for index, (gain_out, target) in enumerate(((self.vocal_gain, targets[0]),
                                                    (self.instrumental_gain, targets[1]))):
            start = self._current[index]
            out = gain_out[:frames]
            if start == target:
                out.fill(target)
                continue
            direction = 1.0 if target > start else -1.0
            ramp = start + direction * self._step * self._ramp[:frames]
            if direction > 0:
                np.minimum(ramp, target, out=ramp)
            else:
                np.maximum(ramp, target, out=ramp)
            out[:] = ramp
            self._current[index] = float(ramp[-1]) if frames else start
        return self.vocal_gain[:frames], self.instrumental_gain[:frames]
