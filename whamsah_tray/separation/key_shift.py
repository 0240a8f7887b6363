"""Key change: transpose the separator's output by -6..+6 semitones on its own STFT frames.

A spectral model already holds every frame's spectrum (n_fft-sample frames every hop) and
synthesises its vocals from `mask * frame` by overlap-add. The key change moves each frame's
partials to `ratio = 2 ** (semitones / 12)` times their frequency before that synthesis, so it
adds no buffering: the latency is the model's, to the sample.

    shift = KeyShift(n_fft, hop, analysis_window, synthesis_window, batch)
    shift.set_key(-2)                                  # takes effect at the next frame
    vocals, mix, output_tail = shift.synthesise(spec, mask, output_tail)

Method: a phase vocoder that pitch-shifts in place, with identity phase locking (Laroche & Dolson,
"New phase-vocoder techniques for pitch-shifting, harmonizing and other exotic effects", WASPAA
1999). Per frame, on the two channels of each stereo pair summed (in the sign that makes them add:
a pair with one channel inverted does not cancel):
- peaks are the bins louder than the two bins on either side;
- each peak's true frequency comes from its phase advance since the previous frame (the advance of
  a sinusoid at the bin's centre frequency removed, the rest wrapped to +-pi: +-2 bins at hop
  n_fft/4);
- the peak moves by the whole number of bins closest to `(ratio - 1) * frequency`, and its phase
  becomes the phase it had in the previous output frame advanced by `ratio * frequency * hop`: the
  output partial's frequency is exact (the bin position only decides which bins carry it; being up
  to half a bin off costs at most ~1.4 dB on that partial and no pitch error);
- every output bin belongs to the nearest moved peak and takes the input bin that peak's shift
  points back to, rotated by that peak's phase change (identity phase locking: the bins around a
  peak keep their phase relations to it, so a partial keeps the shape of the analysis window).
Phases are measured at the centre of the synthesis window (n_fft - M/2 samples into the frame),
where moving a spectrum by whole bins leaves them unchanged.

The plan (source bin and rotation per output bin) is computed once per frame from the mixture and
applied to both the mixture and the vocals (`mask * frame`): the shift is then linear in the
spectrum, both stems move by the same interval with the same phases, and `vocals + instrumental`
equals the shifted mixture by construction (the separator computes the instrumental as the shifted
mixture minus the vocals). Both channels of a pair get the same rotation, so the stereo image (the
phase difference between left and right) is kept.

Switching, click-free at any frame:
- key 0 -> n: the mixture's overlap-add holds no shifted frames yet; its tail is what the frames
  already synthesised (unshifted, unmasked) contribute to the next M - hop samples: the dry input
  there times a fixed partial window sum (`tail_gain`), so `start(dry_ahead)` sets it exactly. The
  first shifted frame keeps its input phases; the overlap-add crossfades over one window.
- n -> m: each peak's output phase carries on from the previous frame at the new frequency.
- n -> 0: frames pass through unshifted (phases still followed, so a new key can resume with
  continuity) until the shifted ones have left the overlap-add, M / hop - 1 frames later; from
  then on the output is the plain, unshifted path again (`active` turns False).

Each call costs what it does; no allocation is kept per call beyond numpy's temporaries. Pure
numpy/scipy; not thread-safe: one owner (the separator, on the engine's inference worker thread).
"""

from __future__ import annotations

import numpy as np
import scipy.fft

MAX_KEY = 6
_FAR = 1 << 30  # a bin position beyond any spectrum: "no peak on this side"


def check_key(semitones) -> int:
    """semitones as an int within -MAX_KEY..MAX_KEY, or ValueError."""
    if isinstance(semitones, bool) or not isinstance(semitones, (int, np.integer, float, np.floating)) \
            or semitones != int(semitones) or not -MAX_KEY <= semitones <= MAX_KEY:
        raise ValueError(f"key must be a whole number of semitones within -{MAX_KEY}..{MAX_KEY}, got {semitones!r}")
    return int(semitones)


def key_ratio(semitones: float) -> float:
    """The frequency ratio of a key change."""
    return 2.0 ** (semitones / 12.0)


class PhaseLockedShifter:
    """Pitch shift of stereo rfft frames taken every `hop` samples, for `rows` independent pairs.

    State per (row, bin), allocated once: the previous frame (for the phase advance) and the
    phase rotation that the partial at each input bin was given (a unit phasor; the difference
    between the output's and the input's phase at the frame's centre). One plan serves both
    channels of a pair, so the phase difference between them (the stereo image) is kept."""

    def __init__(self, n_fft: int, hop: int, rows: int, centre: float) -> None:
        """centre: the sample within the frame that phases are measured at (the synthesis
        window's centre)."""
        self.n_fft, self.hop, self.rows = n_fft, hop, rows
        self.bins = n_fft // 2 + 1
        bins = np.arange(self.bins)
        self._bin_index = np.broadcast_to(bins, (rows, self.bins))
        # Region starts of all rows counted in one sequence, row r from r x (bins + 1) on (a start
        # can lie one past the top bin).
        self._row_of_bin = np.arange(rows)[:, None]
        self._row_offset = np.arange(rows) * (self.bins + 1)
        # A sinusoid at bin k's centre frequency advances by 2 pi k hop / n_fft per frame.
        self._unwind = np.exp(-2j * np.pi * bins * hop / n_fft).astype(np.complex64)
        self._deviation_to_bins = np.float32(n_fft / (2 * np.pi * hop))
        # Moving a spectrum by d bins changes its phases at the centre by -2 pi d centre / n_fft.
        self._move = np.exp(-2j * np.pi * np.arange(-self.bins, self.bins + 1) * centre / n_fft).astype(np.complex64)
        self._previous = np.zeros((rows, 2, self.bins), np.complex64)
        self._rotation = np.ones((rows, self.bins), np.complex64)
        self._fresh = True
        self.set_ratio(1.0)

    def set_ratio(self, ratio: float) -> None:
        self.ratio = float(ratio)
        self._stretch = np.float32(ratio - 1.0)
        # (ratio - 1) x a bin-centred advance, wrapped in float64 (it reaches ~650 rad at the top).
        advance = np.mod(2 * np.pi * np.arange(self.bins) * self.hop * (self.ratio - 1.0) / self.n_fft, 2 * np.pi)
        self._advance = np.exp(1j * advance).astype(np.complex64)

    def reset(self) -> None:
        """Forget the past frames: the next one is shifted with its own phases."""
        self._fresh = True

    def follow(self, frame: np.ndarray) -> None:
        """frame: complex64 (rows, 2, bins), output unshifted: tracked, so that shifting resumes
        in phase."""
        self._previous[:] = frame
        self._rotation[:] = 1
        self._fresh = False

    def _sign(self, frame: np.ndarray) -> np.ndarray | float:
        """+1 or -1 per row (a float when rows == 1): the sign in which the right channel adds to
        the left rather than cancels it (the sign of their correlation)."""
        if self.rows == 1:
            return -1.0 if np.vdot(frame[0, 1], frame[0, 0]).real < 0 else 1.0
        correlation = np.einsum("ij,ij->i", frame[:, 0], frame[:, 1].conj()).real
        return np.where(correlation < 0, np.float32(-1), np.float32(1))[:, None]

    def _regions(self, row: np.ndarray, position: np.ndarray) -> np.ndarray:
        """row, position: the peaks (row-major order, positions non-decreasing within a row) ->
        (rows, bins): the index of the peak nearest to each bin (the region it belongs to); -1,
        or a peak of another row, in a row without peaks."""
        starts = position + 1
        starts[1:] += position[:-1]
        starts >>= 1  # a region starts midway from the peak before, ties to the later peak
        np.maximum(starts, 0, out=starts)
        np.minimum(starts, self.bins, out=starts)
        if self.rows == 1:
            starts[0] = 0
        else:
            starts[np.flatnonzero(np.diff(row, prepend=-1))] = 0  # each row's first peak
            starts += self._row_offset.take(row)
        region = np.cumsum(np.bincount(starts, minlength=self.rows * (self.bins + 1)))
        region -= 1
        return region.reshape(self.rows, self.bins + 1)[:, :self.bins]

    def plan(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frame: complex64 (rows, 2, bins) -> (source, rotation), each (rows, bins): output bin j
        of both channels = their input bin source[j] times rotation[j] (a unit phasor, or 0 where
        nothing lands)."""
        bins = self.bins
        sign = self._sign(frame)
        reference = frame[:, 0] + sign * frame[:, 1]
        size = np.abs(reference)
        inner = size[:, 2:-2]
        row, peak = np.nonzero((inner > size[:, 1:-3]) & (inner > size[:, :-4])
                               & (inner >= size[:, 3:-1]) & (inner >= size[:, 4:]))
        if not len(peak):
            self.follow(frame)
            return np.broadcast_to(np.arange(bins), size.shape), np.zeros(size.shape, np.complex64)
        peak += 2
        flat = peak + row * bins if self.rows > 1 else peak
        if self._fresh:
            frequency = peak
            unit = np.ones(len(peak), np.complex64)
        else:
            left, right = self._previous[:, 0], self._previous[:, 1]
            previous = left.take(flat) + (sign if self.rows == 1 else sign.take(row)) * right.take(flat)
            deviation = np.angle(reference.take(flat) * previous.conj() * self._unwind.take(peak))
            frequency = peak + deviation * self._deviation_to_bins
            # The rotation grows by (ratio - 1) x the phase the partial advanced by since the last frame.
            deviation *= self._stretch
            unit = self._rotation.take(flat) * self._advance.take(peak) * (np.cos(deviation) + 1j * np.sin(deviation))
            unit /= np.abs(unit)
        move = np.rint(self._stretch * frequency).astype(np.intp)
        turn = unit * self._move.take(move + bins)

        # Output bins: each takes from the nearest moved peak's region.
        which = self._regions(row, peak + move)
        source = self._bin_index - move.take(which)
        lands = (source >= 0) & (source < bins)
        if self.rows > 1:
            lands &= row.take(which) == self._row_of_bin
        rotation = turn.take(which)
        rotation[~lands] = 0
        source[~lands] = 0

        # Input bins: the rotation their partial got, for the next frame's peaks.
        which = self._regions(row, peak)
        if self.rows > 1:
            unit = np.append(unit, np.complex64(1))  # rows without peaks: no rotation
            which[row.take(which) != self._row_of_bin] = -1
        unit.take(which, out=self._rotation)
        self._previous[:] = frame
        self._fresh = False
        return source, rotation


class KeyShift:
    """The key change of one streaming separator: the shifter, the shifted mixture's overlap-add
    tail and the switching between keys (see the module docstring)."""

    def __init__(self, n_fft: int, hop: int, analysis_window: np.ndarray, synthesis_window: np.ndarray,
                 batch: int) -> None:
        """analysis_window: (n_fft,); synthesis_window: (M,), the frame's last M samples with the
        overlap-add gain divided out (a spectral model's `window` and `synthesis`); batch: stereo
        pairs."""
        self.n_fft, self.hop, self.batch = n_fft, hop, batch
        self.synthesis = np.asarray(synthesis_window, np.float32)
        m = self.synthesis_length = len(self.synthesis)
        self.shifter = PhaseLockedShifter(n_fft, hop, batch, centre=n_fft - m / 2)
        product = np.asarray(analysis_window, np.float64)[n_fft - m:] * self.synthesis
        self.tail_length = m - hop
        # What the frames before the next one give the next M - hop output samples of an unshifted,
        # unmasked signal, as a fraction of it: the product window's later hops, summed.
        self.tail_gain = np.array([product[i + hop::hop].sum() for i in range(m - hop)], np.float32)
        self.mix_tail = np.zeros((batch, 2, m - hop), np.float32)
        self._channel_offset = (np.arange(batch * 2) * self.shifter.bins).reshape(batch, 2, 1)
        self.frames_to_drain = m // hop - 1
        self.key = 0
        self._running = False  # shifted frames are (or may still be) in the overlap-adds
        self._drain = 0

    def set_key(self, semitones: int) -> None:
        """-MAX_KEY..MAX_KEY semitones, 0 = off; takes effect at the next frame."""
        self.key = check_key(semitones)
        if self.key:
            self.shifter.set_ratio(key_ratio(self.key))

    @property
    def active(self) -> bool:
        """Whether the next frames must go through synthesise() rather than the plain path."""
        return bool(self.key) or self._running

    @property
    def needs_start(self) -> bool:
        """Whether the mixture's overlap-add must be primed with start() before synthesise()."""
        return not self._running

    def reset(self) -> None:
        """Forget all audio (the key stays)."""
        self._running = False
        self._drain = 0
        self.shifter.reset()

    def start(self, dry_ahead: np.ndarray) -> None:
        """dry_ahead: (batch, 2, M - hop), the input that the next M - hop output samples would be
        unshifted: primes the mixture's overlap-add with the unshifted frames' share of it."""
        np.multiply(dry_ahead, self.tail_gain, out=self.mix_tail)
        self.shifter.reset()
        self._running = True
        self._drain = 0

    def synthesise(self, spec: np.ndarray, mask: np.ndarray,
                   output_tail: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """spec: complex64 (batch, 2, n, bins), the frames due for synthesis; mask: their real
        vocal masks, same shape; output_tail: float32 (batch, 2, M - hop), the vocals' overlap-add
        tail -> (vocals, mix, output_tail after): vocals and the shifted mixture, each float32
        (batch, 2, n * hop)."""
        batch, _, n, _ = spec.shape
        stems = np.empty((2,) + spec.shape, np.complex64)  # vocals, mixture
        for f in range(n):
            frame, vocals, mix = spec[:, :, f], stems[0, :, :, f], stems[1, :, :, f]
            if self.key:
                source, rotation = self.shifter.plan(frame)
                source = source[:, None] + self._channel_offset  # into the frame's (batch x 2) rows
                np.multiply(frame.take(source), rotation[:, None], out=mix)
                np.multiply(mask[:, :, f].take(source), mix, out=vocals)
                self._drain = self.frames_to_drain
            else:
                self.shifter.follow(frame)
                mix[:] = frame
                np.multiply(mask[:, :, f], frame, out=vocals)
                self._drain -= 1
        if self._drain <= 0:
            self._running = False
        m, hop = self.synthesis_length, self.hop
        frames = scipy.fft.irfft(stems, n=self.n_fft, axis=-1)[..., self.n_fft - m:]
        frames *= self.synthesis
        if n == 1:
            out = frames[:, :, :, 0]
        else:
            out = np.zeros((2, batch, 2, (n - 1) * hop + m), np.float32)
            for k in range(n):
                out[..., k * hop:k * hop + m] += frames[:, :, :, k]
        out[0, ..., :m - hop] += output_tail
        out[1, ..., :m - hop] += self.mix_tail
        self.mix_tail[:] = out[1, ..., n * hop:]
        return out[0, ..., :n * hop], out[1, ..., :n * hop], out[0, ..., n * hop:].copy()
