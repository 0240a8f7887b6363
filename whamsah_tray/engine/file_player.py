"""Async mode's source: a local audio file, decoded ahead on its own thread, pulled by the callback.

The decoder thread ("whamsah-file-decoder") reads the file in blocks (audio_io.iter_audio_blocks:
WAV, FLAC, OGG, MP3, any rate and channel count), makes it stereo (mono is doubled, more than two
channels keep the first two), resamples it to the stream's rate with soxr, and stores it in a
ring a couple of seconds ahead of playback. The audio callback calls `read_into()`, which only
copies from that ring: it never waits for the decoder; if the decoder is late (or paused, or at
the end) the rest of the block is silence, with a short fade so that pause and resume never click.

Playback starts with a lead-in of silence (LEAD_IN_S) and only once the decoder is PREBUFFER_S
ahead (or done): a freshly opened output stream often underruns in its first callbacks on a busy
machine (measured here on the ALSA `pulse` plugin: the first 100-200 ms of a file were damaged or
lost in about 1 of 4 plays while the CPU was busy); those glitches now fall on silence.

Cross-thread state (plain int/bool attributes, atomic under the GIL): `decoded` (decoder writes,
after the data), `consumed` / `requested` (callback writes), `paused` (controller writes).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import soxr

from whamsah_tray.audio_io import audio_file_info, iter_audio_blocks
from whamsah_tray.engine.ring_buffer import SampleRing
from whamsah_tray.errors import AudioFileError

DECODE_BLOCK = 8192
BUFFER_S = 3.0
FADE_S = 0.005
LEAD_IN_S = 0.25
PREBUFFER_S = 0.5


class FilePlayer:
    def __init__(self, path: str | Path, sample_rate: int, channels: int = 2, max_frames: int = 8192,
                 start_s: float = 0.0) -> None:
        """Checks the file (raises AudioFileError for a missing, empty, corrupt or non-audio one)
        on the calling thread; decoding starts with start(), at `start_s` seconds into the file
        (a restart or a seek: the first frames then fade in, so a cut mid-song never clicks)."""
        self.path = Path(path)
        info = audio_file_info(self.path)
        self.file_rate = info.sample_rate
        self.sample_rate = sample_rate
        self.channels = channels
        self.duration_s = info.duration_s
        self.start_s = min(max(0.0, float(start_s)), self.duration_s)
        self._start_frame = int(round(self.start_s * self.file_rate))
        self.total_frames: int | None = None  # known once decoding has finished
        self.ring = SampleRing(int(BUFFER_S * sample_rate), channels)
        self.decoded = 0  # frames in the ring so far (published after the copy)
        self.consumed = 0  # file frames the callback has played
        self.requested = 0  # frames the callback asked for, silence included
        self.end_requested: int | None = None  # `requested` when the last file frame was played
        self.paused = False
        self.error: AudioFileError | None = None  # a file that turned out corrupt mid-way
        self.starved_frames = 0  # frames of silence because the decoder was late
        self._lead_in = int(LEAD_IN_S * sample_rate)  # frames of silence still to play first
        self._prebuffer = int(PREBUFFER_S * sample_rate)
        self._gain = 1.0 if self._start_frame == 0 else 0.0
        self._fade_step = 1.0 / max(1.0, FADE_S * sample_rate)
        self._fade = (np.arange(1, max_frames + 1) * self._fade_step).astype(np.float32)
        self._weights = np.zeros(max_frames, dtype=np.float32)
        self._stopping = False
        self._thread = threading.Thread(target=self._decode, name="whamsah-file-decoder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        if self._thread.is_alive():
            self._thread.join(2.0)

    @property
    def finished(self) -> bool:
        """The callback has played the last frame of the file."""
        return self.end_requested is not None

    @property
    def position_s(self) -> float:
        """Seconds into the file of the next frame the callback reads."""
        return self.start_s + self.consumed / self.sample_rate

    # --- audio thread ---------------------------------------------------------------------
    def read_into(self, out: np.ndarray) -> None:
        """Fills out (frames, channels) with the next frames: copies only, never waits."""
        frames = out.shape[0]
        self.requested += frames
        if self.consumed == 0 and (self._lead_in > 0 or not self._prebuffered()):
            self._lead_in -= frames  # not started yet: the stream settles, the decoder gets ahead
            out.fill(0.0)
            return
        target = 0.0 if self.paused else 1.0
        if target == 0.0 and self._gain == 0.0:
            out.fill(0.0)
            return
        available = max(0, self.decoded - self.consumed)
        take = min(frames, available)
        self.ring.read_at(self.consumed, out[:take])
        out[take:] = 0.0
        if target != self._gain or self._gain < 1.0:  # fade over FADE_S towards the target
            weights = self._weights[:take]
            if target > self._gain:
                np.add(self._fade[:take], self._gain, out=weights)
                np.minimum(weights, 1.0, out=weights)
            else:
                np.subtract(self._gain, self._fade[:take], out=weights)
                np.maximum(weights, 0.0, out=weights)
            out[:take] *= weights[:, None]
            self._gain = float(weights[-1]) if take else target
            if target == 0.0 and self._gain == 0.0:
                # paused: only the frames we faded out count as played
                take = int(np.count_nonzero(weights))
        self.consumed += take
        if take < frames and target == 1.0:
            if self.total_frames is not None and self.consumed >= self.total_frames:
                if self.end_requested is None:
                    self.end_requested = self.requested - (frames - take)
            else:
                self.starved_frames += frames - take

    def _prebuffered(self) -> bool:
        return self.decoded >= self._prebuffer or self.total_frames is not None or self.error is not None

    # --- decoder thread ---------------------------------------------------------------------
    def _decode(self) -> None:
        resampler = None
        if self.file_rate != self.sample_rate:
            resampler = soxr.ResampleStream(self.file_rate, self.sample_rate, self.channels,
                                            dtype="float32", quality="HQ")
        try:
            for block in iter_audio_blocks(self.path, DECODE_BLOCK, self._start_frame):
                if self._stopping:
                    return
                block = self._to_channels(block)
                if resampler is not None:
                    block = resampler.resample_chunk(block)
                self._store(block)
        except AudioFileError as error:
            self.error = error
        if resampler is not None and not self._stopping:
            self._store(resampler.resample_chunk(np.zeros((0, self.channels), np.float32), last=True))
        self.total_frames = self.decoded

    def _to_channels(self, block: np.ndarray) -> np.ndarray:
        if block.shape[1] == self.channels:
            return np.ascontiguousarray(block, dtype=np.float32)
        if block.shape[1] == 1:
            return np.repeat(block, self.channels, axis=1).astype(np.float32)
        return np.ascontiguousarray(block[:, :self.channels], dtype=np.float32)

    def _store(self, block: np.ndarray) -> None:
        for start in range(0, len(block), self.ring.capacity // 4):
            piece = block[start:start + self.ring.capacity // 4]
            while self.decoded + len(piece) - self.consumed > self.ring.capacity:
                if self._stopping:
                    return
                time.sleep(0.02)
            self.ring.write_at(self.decoded, piece)
            self.decoded += len(piece)  # publish after the copy
