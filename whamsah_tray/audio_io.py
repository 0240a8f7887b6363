"""Audio files in and out: read WAV/FLAC/OGG/MP3 as float32 arrays, write WAV/FLAC/OGG atomically.

Arrays are always float32 of shape (frames, channels). Every failure is an `AudioFileError` whose
message is one line naming the file and the reason (missing, a directory, empty, not audio or
corrupt, no audio frames, unreadable, unwritable).

Runs on whichever thread calls it (the CLI's main thread, the engine's file-playback reader); it
blocks on disk I/O, so never call it from an audio callback.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from whamsah_tray.errors import AudioFileError

# Formats we write, and the subtype each gets: WAV as 32-bit float (stems of a separation can
# exceed full scale, float keeps them exact and unclipped); FLAC as 24-bit PCM (clipped to +-1).
WRITE_SUBTYPES = {"wav": "FLOAT", "flac": "PCM_24", "ogg": "VORBIS"}

# Extensions decoded with audioread (ffmpeg / GStreamer) when this libsndfile cannot open them:
# libsndfile reads MP3 only from version 1.1.0 on.
_AUDIOREAD_FALLBACK_SUFFIXES = {".mp3"}


@dataclass(frozen=True)
class AudioFileInfo:
    """What a file holds, without decoding it."""

    path: Path
    frames: int
    sample_rate: int
    channels: int
    format: str  # e.g. "WAV", "FLAC", "OGG", "MP3"

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _name(path: Path) -> str:
    return f"'{path}'"


def _check_readable_file(path: Path) -> None:
    """Raises AudioFileError for a path that cannot hold audio we could read."""
    if not path.exists():
        raise AudioFileError(f"cannot read {_name(path)}: no such file")
    if path.is_dir():
        raise AudioFileError(f"cannot read {_name(path)}: it is a directory, not an audio file")
    if not path.is_file():
        raise AudioFileError(f"cannot read {_name(path)}: not a regular file")
    if not os.access(path, os.R_OK):
        raise AudioFileError(f"cannot read {_name(path)}: permission denied")
    if path.stat().st_size == 0:
        raise AudioFileError(f"cannot read {_name(path)}: the file is empty (0 bytes)")


def _libsndfile_reason(error: Exception) -> str:
    """The useful part of a libsndfile message ("Error opening 'x': Format not recognised.")."""
    message = str(error).strip().rstrip(".")
    if ": " in message and message.startswith("Error opening"):
        message = message.split(": ", 1)[1]
    return " ".join(message.split())  # one line


def _not_audio(path: Path, error: Exception) -> AudioFileError:
    return AudioFileError(
        f"cannot read {_name(path)}: not an audio file, or corrupt ({_libsndfile_reason(error)})"
    )


def _require_frames(path: Path, frames: int) -> None:
    if frames <= 0:
        raise AudioFileError(f"cannot read {_name(path)}: it holds no audio frames (zero length)")


def _read_with_audioread(path: Path) -> tuple[np.ndarray, int]:
    """Decodes through audioread (ffmpeg / GStreamer): the fallback for MP3 on old libsndfile."""
    import audioread  # a dependency of librosa; only needed here

    try:
        with warnings.catch_warnings():  # its backends import modules Python 3.11 deprecates
            warnings.simplefilter("ignore", DeprecationWarning)
            with audioread.audio_open(str(path)) as decoder:
                channels, sample_rate = decoder.channels, decoder.samplerate
                pcm = b"".join(decoder)
    except (audioread.DecodeError, OSError, EOFError) as error:
        raise AudioFileError(
            f"cannot read {_name(path)}: not an audio file, or corrupt "
            "(neither libsndfile nor ffmpeg/GStreamer could decode it)"
        ) from error
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    audio = samples[: len(samples) // channels * channels].reshape(-1, channels)
    return audio, int(sample_rate)


def audio_file_info(path: str | os.PathLike) -> AudioFileInfo:
    """Frames, rate, channels and format of an audio file; raises AudioFileError."""
    path = Path(path)
    _check_readable_file(path)
    try:
        info = soundfile.info(str(path))
    except (soundfile.SoundFileError, RuntimeError) as error:
        if path.suffix.lower() in _AUDIOREAD_FALLBACK_SUFFIXES:
            audio, sample_rate = _read_with_audioread(path)
            _require_frames(path, len(audio))
            return AudioFileInfo(path, len(audio), sample_rate, audio.shape[1], "MP3")
        raise _not_audio(path, error) from error
    _require_frames(path, info.frames)
    return AudioFileInfo(path, int(info.frames), int(info.samplerate), int(info.channels), info.format)


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Reads a whole file: returns (float32 array (frames, channels), sample_rate).

    Raises AudioFileError for a missing, empty, zero-length, corrupt, non-audio or unreadable
    file, or a directory.
    """
    path = Path(path)
    _check_readable_file(path)
    try:
        audio, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError) as error:
        if path.suffix.lower() not in _AUDIOREAD_FALLBACK_SUFFIXES:
            raise _not_audio(path, error) from error
        audio, sample_rate = _read_with_audioread(path)
    except MemoryError as error:
        raise AudioFileError(f"cannot read {_name(path)}: too large to hold in memory") from error
    _require_frames(path, len(audio))
    if not np.all(np.isfinite(audio)):
        raise AudioFileError(f"cannot read {_name(path)}: it holds NaN or infinite samples")
    return np.ascontiguousarray(audio, dtype=np.float32), int(sample_rate)


def iter_audio_blocks(path: str | os.PathLike, blocksize: int, start_frame: int = 0) -> Iterator[np.ndarray]:
    """Yields float32 blocks (blocksize, channels) of a file from frame `start_frame` (file rate)
    on; the last may be shorter; nothing when start_frame is past the end.

    Decodes as it goes (little memory for long files); raises AudioFileError before the first
    block for a file that cannot be read, and while iterating if it turns out corrupt.
    """
    if blocksize <= 0:
        raise ValueError(f"blocksize must be positive, got {blocksize}")
    path = Path(path)
    info = audio_file_info(path)
    try:
        sound_file = soundfile.SoundFile(str(path))
    except (soundfile.SoundFileError, RuntimeError):
        # Only the audioread fallback gets here (audio_file_info already accepted the file).
        audio, _ = _read_with_audioread(path)
        for start in range(max(0, start_frame), len(audio), blocksize):
            yield audio[start : start + blocksize]
        return
    with sound_file:
        try:
            if start_frame > 0:
                if start_frame >= sound_file.frames > 0:
                    return
                _skip_to(sound_file, start_frame, blocksize)
            for block in sound_file.blocks(blocksize, dtype="float32", always_2d=True):
                yield block
        except (soundfile.SoundFileError, RuntimeError) as error:
            raise AudioFileError(
                f"cannot read {_name(info.path)}: corrupt after {sound_file.tell()} frames "
                f"({_libsndfile_reason(error)})"
            ) from error


def _skip_to(sound_file: soundfile.SoundFile, frame: int, blocksize: int) -> None:
    """Moves to `frame`: a seek where the format allows one, else by decoding up to it."""
    if sound_file.seekable():
        try:
            sound_file.seek(frame)
            return
        except (soundfile.SoundFileError, RuntimeError):
            sound_file.seek(0)
    left = frame
    while left > 0:
        read = len(sound_file.read(min(blocksize, left), dtype="float32", always_2d=True))
        if read == 0:
            return
        left -= read


def _current_umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask sets it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _format_of(path: Path, format: str | None) -> str:
    name = (format or path.suffix.lstrip(".")).lower()
    if name not in WRITE_SUBTYPES:
        raise AudioFileError(
            f"cannot write {_name(path)}: unsupported format '{name}' "
            f"(choose one of {', '.join(sorted(WRITE_SUBTYPES))})"
        )
    return name


def _as_frames_by_channels(path: Path, data: np.ndarray) -> np.ndarray:
    array = np.asarray(data, dtype=np.float32)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] == 0:
        raise AudioFileError(f"cannot write {_name(path)}: audio must be (frames, channels), got {array.shape}")
    return array


def write_audio_files(
    outputs: Mapping[str | os.PathLike, np.ndarray],
    sample_rate: int,
    format: str | None = None,
) -> list[Path]:
    """Writes several files all or nothing: each to a temporary file beside it, then renames them.

    `outputs` maps path -> float32 array (frames, channels) or (frames,). `format` is "wav",
    "flac" or "ogg" (default: from each path's extension). If anything fails, no temporary file
    is left and no destination is touched (except when a rename itself fails part-way, which
    only an OS error between two renames in the same folder can cause). Returns the paths.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for destination, data in outputs.items():
            destination = Path(destination)
            format_name = _format_of(destination, format)
            audio = _as_frames_by_channels(destination, data)
            if WRITE_SUBTYPES[format_name].startswith("PCM"):
                audio = np.clip(audio, -1.0, 1.0)
            folder = destination.parent
            try:
                handle, temp_name = tempfile.mkstemp(
                    prefix=f".{destination.name}.", suffix=".part", dir=folder
                )
            except OSError as error:
                raise AudioFileError(
                    f"cannot write {_name(destination)}: {error.strerror or error} ({folder})"
                ) from error
            os.close(handle)
            temp = Path(temp_name)
            staged.append((temp, destination))
            os.chmod(temp, 0o666 & ~_current_umask())  # mkstemp makes it private (0600)
            try:
                soundfile.write(
                    str(temp), audio, int(sample_rate),
                    format=format_name.upper(), subtype=WRITE_SUBTYPES[format_name],
                )
            except (soundfile.SoundFileError, RuntimeError, OSError, ValueError) as error:
                raise AudioFileError(
                    f"cannot write {_name(destination)}: {_libsndfile_reason(error)}"
                ) from error
        for temp, destination in staged:
            try:
                os.replace(temp, destination)
            except OSError as error:
                raise AudioFileError(
                    f"cannot write {_name(destination)}: {error.strerror or error}"
                ) from error
    except BaseException:
        for temp, _ in staged:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise
    return [destination for _, destination in staged]


def write_audio(
    path: str | os.PathLike, data: np.ndarray, sample_rate: int, format: str | None = None
) -> Path:
    """Writes one file atomically (temporary file beside it, then rename); see write_audio_files."""
    return write_audio_files({path: data}, sample_rate, format)[0]
