"""Training audio: load the stems once (resampled to 44.1 kHz, cached as float32), then mix
training examples on the fly.

Float32, not float16: float16's rounding noise (about -95 dBFS) fills the quiet bands of every
training mix with a noise the real input does not have, and a model trained on it learns that
noise as a cue (on the held-out tracks, the earlier WHAMSAH-RT scored 9.5 dB accompaniment SDR
in the training's validation, which used float16-rounded stems, and 6.9 dB cSDR under museval
on the same stems in float32). A cache written in float16 by an
earlier version is rebuilt.

Sources
- `../shared/data` layout: musdb7/train/<track>/{vocals,accompaniment}.ogg, mir1k/<clip>/...,
  solo_vocals/**.ogg (vocals only), instrumentals/*.ogg (accompaniment only), and two sets that
  no table names by default (a config names them in its set tables to use them):
  `multitrack` (multitrack/<track>/{vocals,accompaniment}.ogg: raw summed channels of full-band
  multitracks, stored mono; not a mix, so `rebalance_sets` should set their balance) and
  `solo_studio` (solo_vocals/gtsinger, solo_vocals/m4singer: studio a cappella, kept apart from
  `solo` so that the tables written before them draw what they drew).
- a MUSDB18-HQ folder: train/<track>/{vocals,bass,drums,other}.wav (accompaniment = the sum).
`musdb7/test` is never read here.

Mixing (see `MixSampler`): coherent mixes (a track's own stems) and incoherent ones (vocals of one
track over another's accompaniment), random vocal-to-accompaniment ratios and levels, channel
swap, mono sources panned into stereo, silence-aware cropping, levels from -32 to -8 dBFS and,
in half the mixes, a white noise floor between -105 and -75 dBFS (it belongs to the accompaniment).
Optionally (`speed_range`, `speed_probability`) a tape-speed change of the stems (pitch and tempo
together, by resampling): one factor for both stems of a coherent mix, one per stem otherwise.
Optionally (`eq_probability`, `eq_db`) each stem gets its own random equalisation (a smooth gain
curve over log frequency, up to +-`eq_db` at seven points from 60 Hz to 16 kHz), the accompaniment
a random stereo width (`width_probability`, `width_range`: its side signal scaled), and
(`second_accompaniment_probability`) a second accompaniment from another track under the first.
Which sets the stems come from, by weight: `vocal_sets`, `accompaniment_sets` (incoherent mixes)
and `coherent_sets` (a set's own pairs), each a {set name: weight} table (defaults: the class's
tables; a set that is not loaded is left out), e.g. to lean on the full-band musdb excerpts.
With only 88 full-band stereo excerpts (17 minutes of full-band accompaniment in all) these
multiply the distinct musdb-like mixes: new timbres, stereo images and denser arrangements.
Mixes like the ones the model fails on (all off by default): `rebalance_sets` ({set: [low, high]
dB}) gives a coherent mix of that set a vocal-to-accompaniment ratio drawn from the range,
measured on the whole tracks (so a crop without singing stays without); `low_ratio_probability`
draws an incoherent mix's ratio from `low_ratio_db` instead of -10..+4 dB (vocals buried in the
band); `saturation_probability` drives the accompaniment into a soft clipper by
`saturation_db` (a dense, distorted band: new partials everywhere, little dynamics).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft
import soundfile
import soxr
from tqdm import tqdm

SAMPLE_RATE = 44100
VALIDATION_TRACKS = 6  # musdb7/train tracks held out for the quick validation


@dataclass
class StemSet:
    """Stems at 44.1 kHz, float32, each (frames, channels) with channels 1 or 2."""
    vocals: list[np.ndarray] = field(default_factory=list)
    accompaniment: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def _read(path: Path) -> np.ndarray:
    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
    return audio  # float32: soundfile decodes to it and soxr keeps it


def _is_validation(track: str) -> bool:
    """A fixed ~6 % of musdb7/train, chosen by name hash, never trained on."""
    return int(hashlib.sha1(track.encode()).hexdigest(), 16) % 16 == 0


STUDIO_SOLO_FOLDERS = ("gtsinger", "m4singer")  # solo_vocals/<folder>: the `solo_studio` set


def _mono(audio: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames, 1): the multitracks are mono written in two channels; kept
    mono they are panned like every other mono source and take half the cache."""
    return audio.mean(axis=1, keepdims=True, dtype=np.float32)


def load_shared_data(root: Path) -> dict[str, StemSet]:
    """The training sets of ../shared/data (see its README). Never touches musdb7/test."""
    sets = {name: StemSet() for name in ("musdb", "musdb_val", "mir1k", "solo", "instrumentals",
                                         "multitrack", "solo_studio")}
    tracks = sorted(p for p in (root / "musdb7" / "train").iterdir() if p.is_dir())
    for track in tqdm(tracks, desc="musdb7/train", leave=False):
        target = sets["musdb_val" if _is_validation(track.name) else "musdb"]
        target.vocals.append(_read(track / "vocals.ogg"))
        target.accompaniment.append(_read(track / "accompaniment.ogg"))
        target.names.append(track.name)
    clips = sorted(p for p in (root / "mir1k").iterdir() if p.is_dir())
    for clip in tqdm(clips, desc="mir1k", leave=False):
        sets["mir1k"].vocals.append(_read(clip / "vocals.ogg"))
        sets["mir1k"].accompaniment.append(_read(clip / "accompaniment.ogg"))
        sets["mir1k"].names.append(clip.name)
    for path in tqdm(sorted((root / "solo_vocals").rglob("*.ogg")), desc="solo_vocals", leave=False):
        folder = path.relative_to(root / "solo_vocals").parts[0]
        target = sets["solo_studio" if folder in STUDIO_SOLO_FOLDERS else "solo"]
        target.vocals.append(_read(path))
        target.names.append(path.stem)
    multitracks = root / "multitrack"
    for track in sorted(p for p in multitracks.iterdir() if p.is_dir()) if multitracks.is_dir() else []:
        sets["multitrack"].vocals.append(_mono(_read(track / "vocals.ogg")))
        sets["multitrack"].accompaniment.append(_mono(_read(track / "accompaniment.ogg")))
        sets["multitrack"].names.append(track.name)
    for path in sorted((root / "instrumentals").glob("*.ogg")):
        sets["instrumentals"].accompaniment.append(_read(path))
        sets["instrumentals"].names.append(path.stem)
    return {name: stems for name, stems in sets.items() if stems.vocals or stems.accompaniment or name in
            ("musdb", "musdb_val", "mir1k", "solo", "instrumentals")}


def load_musdb18hq(root: Path) -> StemSet:
    """train/<track>/{vocals,bass,drums,other}.wav of a MUSDB18-HQ folder."""
    stems = StemSet()
    for track in tqdm(sorted(p for p in (root / "train").iterdir() if p.is_dir()), desc="MUSDB18-HQ"):
        stems.vocals.append(_read(track / "vocals.wav"))
        stems.accompaniment.append(sum(_read(track / f"{s}.wav") for s in ("bass", "drums", "other")))
        stems.names.append(track.name)
    return stems


def _read_cache(cache: Path) -> dict[str, StemSet] | None:
    """The cached sets, or None for an earlier version's float16 cache."""
    with np.load(cache, allow_pickle=False) as archive:
        sets: dict[str, StemSet] = {}
        for key in archive.files:
            array = archive[key]
            if array.dtype == np.float16:
                return None
            set_name, kind, index = key.rsplit("/", 2)
            stems = sets.setdefault(set_name, StemSet())
            getattr(stems, kind).append((int(index), array))
    for stems in sets.values():
        stems.vocals = [a for _, a in sorted(stems.vocals, key=lambda t: t[0])]
        stems.accompaniment = [a for _, a in sorted(stems.accompaniment, key=lambda t: t[0])]
    return sets


def load_cached(data_root: Path | None, musdb18hq: Path | None, cache: Path) -> dict[str, StemSet]:
    """Decode and resample once; later runs read the cache (a git-ignored .npz)."""
    if cache.exists():
        sets = _read_cache(cache)
        if sets is not None:
            return sets
        print(f"{cache} holds float16 stems (an earlier version's cache): rebuilding it in float32")
    sets = load_shared_data(data_root) if data_root else {}
    if musdb18hq:
        sets["musdb18hq"] = load_musdb18hq(musdb18hq)
    cache.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{name}/{kind}/{i}": array for name, stems in sets.items()
              for kind in ("vocals", "accompaniment") for i, array in enumerate(getattr(stems, kind))}
    np.savez(cache, **arrays)
    return sets


def _to_stereo(audio: np.ndarray, rng: np.random.Generator, max_pan: float) -> np.ndarray:
    """(frames, 1|2) -> (2, frames) float32; mono is panned with a constant-power law."""
    audio = audio.astype(np.float32).T
    if audio.shape[0] == 2:
        return audio
    angle = (0.5 + rng.uniform(-max_pan, max_pan) / 2) * np.pi / 2
    return np.stack([audio[0] * np.cos(angle), audio[0] * np.sin(angle)]) * np.sqrt(2)


EQ_POINTS_HZ = np.geomspace(60.0, 16000.0, 7)


def random_eq(audio: np.ndarray, rng: np.random.Generator, max_db: float) -> np.ndarray:
    """(channels, frames) -> the same audio through a random smooth zero-phase EQ, one curve for
    both channels: gains drawn in [-max_db, max_db] at EQ_POINTS_HZ, linear in dB over log
    frequency between them, flat beyond. Applied in the frequency domain over the whole crop,
    zero-padded to a fast FFT length, in float32 (the curve is smooth, so its impulse response is
    short: what wraps around is a few samples of the filter's tail)."""
    n = audio.shape[-1]
    size = scipy.fft.next_fast_len(n, real=True)
    frequencies = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
    gains_db = rng.uniform(-max_db, max_db, EQ_POINTS_HZ.size)
    curve = 10 ** (np.interp(np.log(np.maximum(frequencies, 1.0)), np.log(EQ_POINTS_HZ), gains_db) / 20)
    spectrum = scipy.fft.rfft(audio.astype(np.float32, copy=False), n=size, axis=-1) * curve.astype(np.float32)
    return scipy.fft.irfft(spectrum, n=size, axis=-1)[..., :n]


def scale_width(audio: np.ndarray, side_gain: float) -> np.ndarray:
    """(2, frames) stereo with its side signal (L - R) / 2 scaled by `side_gain`; the mid kept."""
    mid, side = (audio[0] + audio[1]) / 2, (audio[0] - audio[1]) / 2 * side_gain
    return np.stack([mid + side, mid - side])


def saturate(audio: np.ndarray, drive_db: float) -> np.ndarray:
    """`audio` (channels, frames) through a tanh soft clipper `drive_db` above its RMS level of
    -20 dBFS, returned at its original RMS: the higher the drive, the flatter the dynamics and the
    more partials (a distorted, dense band)."""
    level = _rms(audio)
    driven = np.tanh(audio * np.float32(10 ** (drive_db / 20) * 0.1 / level))
    return (driven * np.float32(level / _rms(driven))).astype(np.float32, copy=False)


def sung_balance_db(vocals: np.ndarray, accompaniment: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Vocal-to-accompaniment power ratio in dB over the 1 s blocks where the vocals are within
    30 dB of their loudest block (the sung parts: a multitrack's silent verses do not count)."""
    blocks = min(len(vocals), len(accompaniment)) // rate
    if blocks == 0:
        return 10 * np.log10(_rms(vocals) ** 2 / _rms(accompaniment) ** 2)
    def powers(audio: np.ndarray) -> np.ndarray:
        return np.mean(np.square(audio[:blocks * rate], dtype=np.float64).reshape(blocks, -1), axis=1)
    vocal_power, accompaniment_power = powers(vocals), powers(accompaniment)
    sung = vocal_power >= vocal_power.max() * 1e-3
    return float(10 * np.log10(vocal_power[sung].sum() / (accompaniment_power[sung].sum() + 1e-20) + 1e-20))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


class MixSampler:
    """Draws (mixture, vocals) training pairs of `length` samples, stereo, float32 (2, length)."""

    VOCAL_SETS = {"musdb": 0.45, "musdb18hq": 0.45, "mir1k": 0.3, "solo": 0.25}
    ACCOMPANIMENT_SETS = {"musdb": 0.55, "musdb18hq": 0.55, "instrumentals": 0.3, "mir1k": 0.15}
    COHERENT_SETS = {"musdb": 1.0, "musdb18hq": 1.0, "mir1k": 1.0}  # sets with (vocals, accompaniment) pairs

    def __init__(self, sets: dict[str, StemSet], length: int, seed: int = 0,
                 coherent_probability: float = 0.3, silent_vocals_probability: float = 0.05,
                 noise_probability: float = 0.5, speed_range: tuple[float, float] = (1.0, 1.0),
                 speed_probability: float = 0.0, eq_probability: float = 0.0, eq_db: float = 6.0,
                 width_probability: float = 0.0, width_range: tuple[float, float] = (1.0, 1.0),
                 second_accompaniment_probability: float = 0.0, vocal_sets: dict[str, float] | None = None,
                 accompaniment_sets: dict[str, float] | None = None,
                 coherent_sets: dict[str, float] | None = None,
                 rebalance_sets: dict[str, tuple[float, float]] | None = None,
                 low_ratio_probability: float = 0.0, low_ratio_db: tuple[float, float] = (-16.0, -6.0),
                 saturation_probability: float = 0.0, saturation_db: tuple[float, float] = (6.0, 24.0)) -> None:
        self.sets, self.length = sets, length
        self.rebalance_sets = {name: tuple(span) for name, span in (rebalance_sets or {}).items()}
        self._balance: dict[tuple[str, int], float] = {}  # (set, track) -> its sung parts' ratio, dB
        self.low_ratio_probability, self.low_ratio_db = low_ratio_probability, tuple(low_ratio_db)
        self.saturation_probability, self.saturation_db = saturation_probability, tuple(saturation_db)
        self.speed_range, self.speed_probability = speed_range, speed_probability
        self.eq_probability, self.eq_db = eq_probability, eq_db
        self.width_probability, self.width_range = width_probability, width_range
        self.second_accompaniment_probability = second_accompaniment_probability
        self.rng = np.random.default_rng(seed)
        self.coherent_probability = coherent_probability
        self.silent_vocals_probability = silent_vocals_probability
        self.noise_probability = noise_probability
        self.vocal_sets = self._weights(vocal_sets or self.VOCAL_SETS, "vocals")
        self.accompaniment_sets = self._weights(accompaniment_sets or self.ACCOMPANIMENT_SETS, "accompaniment")
        self.coherent_sets = self._weights(coherent_sets or self.COHERENT_SETS, "vocals", "accompaniment",
                                           required=False)  # None: no pairs, incoherent mixes only

    def _weights(self, weights: dict[str, float], *kinds: str,
                 required: bool = True) -> tuple[list[str], np.ndarray] | None:
        """(names, probabilities) of the loaded sets with a positive weight that hold every kind."""
        names = [n for n in weights if weights[n] > 0 and n in self.sets
                 and all(getattr(self.sets[n], kind) for kind in kinds)]
        if not names:
            if required:
                raise ValueError(f"no training {' and '.join(kinds)} found")
            return None
        p = np.array([weights[n] for n in names])
        return names, p / p.sum()

    def _speed(self) -> float:
        if self.speed_probability and self.rng.random() < self.speed_probability:
            return float(self.rng.uniform(*self.speed_range))
        return 1.0

    def _crop(self, audio: np.ndarray, start: int | None = None, speed: float = 1.0,
              tries: int = 6) -> tuple[np.ndarray, int]:
        """A `length` crop, preferring one with signal in it, and where it starts in `audio`: crop[i]
        is audio[start + i], zeros outside `audio` (start <= 0 when `audio` is shorter than the crop
        and got zero-padded). Given a `start`, the crop is taken there (clamped), so a coherent mix's
        second stem lines up with its first even when both are padded. With a speed other than 1,
        `length * speed` frames played back `speed` times faster."""
        if speed != 1.0:
            crop, start = self._crop_frames(audio, int(np.ceil(self.length * speed)) + 16, start, tries)
            faster = soxr.resample(crop, SAMPLE_RATE * speed, SAMPLE_RATE, quality="MQ")[:self.length]
            if faster.shape[0] < self.length:
                faster = np.pad(faster, ((0, self.length - faster.shape[0]), (0, 0)))
            return faster, start
        return self._crop_frames(audio, self.length, start, tries)

    def _crop_frames(self, audio: np.ndarray, length: int, start: int | None,
                     tries: int) -> tuple[np.ndarray, int]:
        n = audio.shape[0]
        if n <= length:
            out = np.zeros((length, audio.shape[1]), dtype=audio.dtype)
            if start is None:
                offset = int(self.rng.integers(0, length - n + 1))
            else:
                offset = min(max(-start, 0), length - n)
            out[offset:offset + n] = audio
            return out, -offset
        if start is not None:
            start = min(max(start, 0), n - length)
            return audio[start:start + length], start
        best, best_rms, best_start = None, -1.0, 0
        for _ in range(tries):
            s = int(self.rng.integers(0, n - length + 1))
            crop = audio[s:s + length]
            level = _rms(crop[:: 64])
            if level > best_rms:
                best, best_rms, best_start = crop, level, s
            if level > 0.01:
                break
        return best, best_start

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        if self.coherent_sets and rng.random() < self.coherent_probability:
            names, p = self.coherent_sets
            name = names[rng.choice(len(names), p=p)]
            stems = self.sets[name]
            i = int(rng.integers(len(stems.vocals)))
            speed = self._speed()
            vocals, start = self._crop(stems.vocals[i], speed=speed)
            accompaniment, _ = self._crop(stems.accompaniment[i], start, speed=speed)
            vocals, accompaniment = _to_stereo(vocals, rng, 0.3), _to_stereo(accompaniment, rng, 0.6)
            if name in self.rebalance_sets:
                vocals *= 10 ** ((rng.uniform(*self.rebalance_sets[name]) - self._track_balance(name, i)) / 20)
            else:
                vocals *= 10 ** (rng.uniform(-4, 4) / 20)
        else:
            vocals = self._draw(self.vocal_sets, "vocals", 0.3)
            accompaniment = self._draw(self.accompaniment_sets, "accompaniment", 0.6)
            low = self.low_ratio_probability and rng.random() < self.low_ratio_probability
            ratio_db = rng.uniform(*self.low_ratio_db) if low else rng.uniform(-10, 4)
            vocals *= 10 ** (ratio_db / 20) * _rms(accompaniment) / _rms(vocals)
        if self.saturation_probability and rng.random() < self.saturation_probability:
            accompaniment = saturate(accompaniment, rng.uniform(*self.saturation_db))
        vocals, accompaniment = self._colour(vocals), self._colour(accompaniment)
        if self.width_probability and rng.random() < self.width_probability:
            accompaniment = scale_width(accompaniment, rng.uniform(*self.width_range))
        if self.second_accompaniment_probability and rng.random() < self.second_accompaniment_probability:
            accompaniment = accompaniment + self._second_accompaniment(_rms(accompaniment))
        if rng.random() < self.silent_vocals_probability:
            vocals[:] = 0.0
        if rng.random() < 0.5:  # swap left and right (the stems are (2, frames) here)
            vocals, accompaniment = vocals[::-1].copy(), accompaniment[::-1].copy()
        mixture = vocals + accompaniment
        gain = 10 ** (rng.uniform(-32, -8) / 20) / _rms(mixture)
        peak = np.abs(mixture).max() * gain
        if peak > 0.99:
            gain *= 0.99 / peak
        mixture *= gain
        if rng.random() < self.noise_probability:
            mixture += rng.standard_normal(mixture.shape).astype(np.float32) * 10 ** (rng.uniform(-105, -75) / 20)
        # float32 (mono sources come out of _to_stereo in float64); no copy when already so
        return mixture.astype(np.float32, copy=False), (vocals * gain).astype(np.float32, copy=False)

    def _track_balance(self, name: str, index: int) -> float:
        """A track's vocal-to-accompaniment ratio in dB over its sung parts, measured once."""
        key = (name, index)
        if key not in self._balance:
            stems = self.sets[name]
            self._balance[key] = sung_balance_db(stems.vocals[index], stems.accompaniment[index])
        return self._balance[key]

    def _colour(self, stem: np.ndarray) -> np.ndarray:
        if self.eq_probability and self.rng.random() < self.eq_probability:
            return random_eq(stem, self.rng, self.eq_db)
        return stem

    def _draw(self, weighted_sets: tuple[list[str], np.ndarray], kind: str, max_pan: float) -> np.ndarray:
        """A stereo crop of one `kind` stem ("vocals" or "accompaniment") of a set drawn by weight."""
        names, p = weighted_sets
        stems = getattr(self.sets[names[self.rng.choice(len(names), p=p)]], kind)
        return _to_stereo(self._crop(stems[self.rng.integers(len(stems))], speed=self._speed())[0], self.rng, max_pan)

    def _second_accompaniment(self, level: float) -> np.ndarray:
        """Another accompaniment, from 12 to 3 dB under `level` (the first one's RMS)."""
        other = self._colour(self._draw(self.accompaniment_sets, "accompaniment", 0.6))
        return other * (10 ** (self.rng.uniform(-12, -3) / 20) * level / _rms(other))

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.sample() for _ in range(size)]
        return np.stack([m for m, _ in pairs]), np.stack([v for _, v in pairs])
