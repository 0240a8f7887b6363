"""Reading and writing audio files: formats, shapes, every bad-file case, all-or-nothing writes."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile

from whamsah_tray.audio_io import (
    _read_with_audioread,
    audio_file_info,
    iter_audio_blocks,
    read_audio,
    write_audio,
    write_audio_files,
)
from whamsah_tray.errors import AudioFileError


def tone(frames: int, channels: int, rate: int) -> np.ndarray:
    t = np.arange(frames) / rate
    return np.stack([0.4 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)], axis=1).astype(np.float32)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
@pytest.mark.parametrize("channels,rate", [(1, 16000), (2, 44100), (3, 48000)])
def test_write_then_read_keeps_shape_rate_and_signal(tmp_path, fmt, channels, rate):
    audio = tone(rate // 2, channels, rate)
    path = write_audio(tmp_path / f"x.{fmt}", audio, rate)
    back, back_rate = read_audio(path)
    assert back.dtype == np.float32 and back.shape == audio.shape and back_rate == rate
    tolerance = {"wav": 1e-7, "flac": 1e-6, "ogg": 0.05}[fmt]  # float, 24-bit, lossy
    assert np.sqrt(np.mean((back - audio) ** 2)) < tolerance
    info = audio_file_info(path)
    assert (info.frames, info.sample_rate, info.channels) == (len(audio), rate, channels)
    assert info.duration_s == pytest.approx(0.5)


def test_reads_mp3(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (needed to make an MP3)")
    source = write_audio(tmp_path / "x.wav", tone(44100, 2, 44100), 44100)
    mp3 = tmp_path / "x.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(source), str(mp3)], check=True)
    audio, rate = read_audio(mp3)
    assert rate == 44100 and audio.shape[1] == 2
    assert abs(len(audio) - 44100) < 2000  # encoder padding
    # The audioread fallback (for libsndfile < 1.1, which cannot read MP3) decodes the same file.
    fallback, fallback_rate = _read_with_audioread(mp3)
    assert fallback_rate == 44100 and fallback.shape[1] == 2 and abs(len(fallback) - 44100) < 2000


def test_write_clips_pcm_formats_but_keeps_float_wav_unclipped(tmp_path):
    loud = np.array([[1.5], [-2.0], [0.5]], dtype=np.float32)
    wav, _ = read_audio(write_audio(tmp_path / "x.wav", loud, 8000))
    flac, _ = read_audio(write_audio(tmp_path / "x.flac", loud, 8000))
    assert np.array_equal(wav, loud)
    assert flac.max() <= 1.0 and flac.min() >= -1.0


def test_iter_audio_blocks_yields_the_whole_file_in_order(tmp_path):
    audio = tone(10000, 2, 8000)
    path = write_audio(tmp_path / "x.flac", audio, 8000)
    blocks = list(iter_audio_blocks(path, 3000))
    assert [len(block) for block in blocks] == [3000, 3000, 3000, 1000]
    assert np.allclose(np.concatenate(blocks), audio, atol=1e-6)


def _bad_file(tmp_path, case: str):
    path = tmp_path / "bad.wav"
    if case == "missing":
        return tmp_path / "nope.wav", "no such file"
    if case == "directory":
        return tmp_path, "directory"
    if case == "empty":
        path.write_bytes(b"")
        return path, "empty"
    if case == "zero-length":
        soundfile.write(path, np.zeros((0, 2), np.float32), 44100)
        return path, "no audio frames"
    if case == "text":
        path.write_text("this is not audio\n" * 50)
        return path, "not an audio file"
    if case == "truncated-flac":
        good = write_audio(tmp_path / "good.flac", tone(44100, 2, 44100), 44100)
        path = tmp_path / "bad.flac"
        path.write_bytes(good.read_bytes()[:3000])
        return path, "corrupt"
    if case == "random-mp3":
        path = tmp_path / "bad.mp3"
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
        return path, "not an audio file"
    if case == "header-only":
        good = write_audio(tmp_path / "good.wav", tone(100, 1, 8000), 8000)
        path.write_bytes(good.read_bytes()[:30])
        return path, "not an audio file"
    raise AssertionError(case)


BAD_FILES = ["missing", "directory", "empty", "zero-length", "text", "truncated-flac", "random-mp3", "header-only"]


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_raise_one_line_audio_file_error(tmp_path, case):
    path, reason = _bad_file(tmp_path, case)
    with pytest.raises(AudioFileError) as error:
        read_audio(path)
    message = str(error.value)
    assert reason in message and "\n" not in message and str(path) in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_raises(tmp_path):
    path = write_audio(tmp_path / "x.wav", tone(100, 1, 8000), 8000)
    path.chmod(0)
    with pytest.raises(AudioFileError, match="permission denied"):
        read_audio(path)


def test_write_is_all_or_nothing(tmp_path):
    """The second destination's folder does not exist: neither file appears, no temp file stays."""
    first = tmp_path / "a.wav"
    with pytest.raises(AudioFileError) as error:
        write_audio_files({first: tone(100, 1, 8000), tmp_path / "missing" / "b.wav": tone(100, 1, 8000)}, 8000)
    assert "missing" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_an_existing_file_atomically(tmp_path):
    path = write_audio(tmp_path / "x.wav", tone(100, 1, 8000), 8000)
    write_audio(path, np.zeros((50, 2), np.float32), 8000)
    audio, _ = read_audio(path)
    assert audio.shape == (50, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_unsupported_write_format_is_refused(tmp_path):
    with pytest.raises(AudioFileError, match="unsupported format 'mp3'"):
        write_audio(tmp_path / "x.mp3", tone(100, 1, 8000), 8000)
    assert list(tmp_path.iterdir()) == []
