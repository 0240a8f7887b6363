"""`whamsah-tray separate`: round trips on synthetic audio and the shared song, and every bad input.

The real command runs in a subprocess (`python -m whamsah_tray`), so exit status, stderr and the
absence of tracebacks are what a user sees. Besides the shipped model (skipped until installed),
the model is an untrained (random-weight) network installed into a temporary weights folder (the
`untrained_model_installed` fixture): the full path (registry, sha256 check, torch.load, streaming
separation, writing) runs, only the weights are random. The separation contract
(vocals + instrumental == input) holds for any weights.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from whamsah_tray.audio_io import read_audio, write_audio
from whamsah_tray.errors import AudioFileError, ModelLoadingError
from whamsah_tray.file_separation import plan_outputs, separate_file

from conftest import TEST_MODEL, run_cli


def error_relative_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    return 20 * np.log10(np.linalg.norm(estimate - reference) / np.linalg.norm(reference) + 1e-30)


def synthetic_song(frames: int, channels: int, rate: int) -> np.ndarray:
    """A 'voice' (vibrato tone with harmonics) over a 'band' (chord + noise), per channel."""
    t = np.arange(frames) / rate
    rng = np.random.default_rng(1)
    voice = sum(np.sin(2 * np.pi * k * (330 * t + 3 * np.sin(2 * np.pi * 5 * t))) / k for k in (1, 2, 3))
    band = sum(np.sin(2 * np.pi * f * t) for f in (110, 138.6, 164.8))
    columns = [0.2 * voice * (1 - 0.3 * c) + 0.15 * band + 0.02 * rng.standard_normal(frames) for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("channels,rate,fmt,suffix", [
    (2, 44100, "wav", "wav"),
    (1, 16000, "flac", "flac"),
    (3, 48000, "wav", "ogg"),
    (2, 22050, "flac", "wav"),
])
def test_separate_file_round_trip_on_synthetic_audio(tmp_path, untrained_model, channels, rate, fmt, suffix):
    song = synthetic_song(rate * 3 + 123, channels, rate)
    source = write_audio(tmp_path / f"song.{suffix}", song, rate)
    original, _ = read_audio(source)
    result = separate_file(source, tmp_path / "stems", model=untrained_model, format=fmt)
    vocals, vocals_rate = read_audio(result.vocals)
    instrumental, instrumental_rate = read_audio(result.instrumental)
    assert result.vocals == tmp_path / "stems" / f"vocals.{fmt}"
    assert vocals_rate == instrumental_rate == rate
    assert vocals.shape == instrumental.shape == original.shape
    assert error_relative_db(vocals + instrumental, original) < -40
    # A random network still changes the sound: the stems are not silence, nor the input.
    assert np.abs(vocals).max() > 1e-3 and error_relative_db(instrumental, original) > -40


def test_separate_file_reads_mp3(tmp_path, untrained_model):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (needed to make an MP3)")
    wav = write_audio(tmp_path / "song.wav", synthetic_song(44100 * 2, 2, 44100), 44100)
    mp3 = tmp_path / "song.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(wav), str(mp3)], check=True)
    original, rate = read_audio(mp3)
    result = separate_file(mp3, tmp_path / "out", model=untrained_model)
    vocals, _ = read_audio(result.vocals)
    instrumental, _ = read_audio(result.instrumental)
    assert vocals.shape == original.shape and result.sample_rate == rate
    assert error_relative_db(vocals + instrumental, original) < -40


def test_cli_separate_round_trip_with_installed_model(tmp_path, untrained_model_installed):
    rate = 32000
    source = write_audio(tmp_path / "in.flac", synthetic_song(rate * 2, 2, rate), rate)
    original, _ = read_audio(source)
    out = tmp_path / "new" / "folder"
    done = run_cli("separate", source, "--out", out, "--model", TEST_MODEL, "--format", "flac",
                   extra_env=untrained_model_installed)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["instrumental.flac", "vocals.flac"]
    vocals, vocals_rate = read_audio(out / "vocals.flac")
    instrumental, _ = read_audio(out / "instrumental.flac")
    assert vocals_rate == rate and vocals.shape == instrumental.shape == original.shape
    assert error_relative_db(vocals + instrumental, original) < -40
    assert f"model {TEST_MODEL}" in done.stdout


def test_cli_progress_bar_on_request(tmp_path, untrained_model_installed):
    source = write_audio(tmp_path / "in.wav", synthetic_song(44100, 1, 44100), 44100)
    done = run_cli("separate", source, "--out", tmp_path / "out", "--model", TEST_MODEL,
                   "--progress", extra_env=untrained_model_installed)
    assert done.returncode == 0, done.stderr
    assert "separating" in done.stderr and "100%" in done.stderr
    quiet = run_cli("separate", source, "--out", tmp_path / "out2", "--model", TEST_MODEL,
                    extra_env=untrained_model_installed)
    assert quiet.returncode == 0 and quiet.stderr == ""  # not a terminal: no bar by default


@pytest.mark.slow
def test_cli_separate_the_shared_song(tmp_path, shared_song, untrained_model_installed):
    original, rate = read_audio(shared_song)
    done = run_cli("separate", shared_song, "--out", tmp_path, "--model", TEST_MODEL,
                   extra_env=untrained_model_installed)
    assert done.returncode == 0, done.stderr
    vocals, vocals_rate = read_audio(tmp_path / "vocals.wav")
    instrumental, instrumental_rate = read_audio(tmp_path / "instrumental.wav")
    assert vocals_rate == instrumental_rate == rate
    assert vocals.shape == instrumental.shape == original.shape
    assert error_relative_db(vocals + instrumental, original) < -40


@pytest.mark.slow
def test_cli_separate_the_shared_song_with_the_default_model(tmp_path, shared_song):
    """The shipped model, exactly as a user runs it (skips until trained weights are installed)."""
    from whamsah_tray.separation import find_model

    try:
        find_model(None)
    except ModelLoadingError as error:
        pytest.skip(f"no default model installed yet: {error}")
    original, rate = read_audio(shared_song)
    done = run_cli("separate", shared_song, "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    vocals, vocals_rate = read_audio(tmp_path / "vocals.wav")
    instrumental, _ = read_audio(tmp_path / "instrumental.wav")
    assert vocals_rate == rate and vocals.shape == instrumental.shape == original.shape
    assert error_relative_db(vocals + instrumental, original) < -40


# --- bad input ---------------------------------------------------------------------------------


def make_bad_input(tmp_path: Path, case: str) -> Path:
    if case == "missing":
        return tmp_path / "missing.wav"
    if case == "directory":
        folder = tmp_path / "a_folder"
        folder.mkdir()
        return folder
    path = tmp_path / "input.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "zero-length":
        write_audio(path, np.zeros((0, 2), np.float32), 44100)
    elif case == "text":
        path.write_text("not audio at all\n" * 100)
    elif case == "corrupt-flac":
        path = tmp_path / "input.flac"
        good = write_audio(tmp_path / "good.flac", synthetic_song(44100, 2, 44100), 44100)
        path.write_bytes(good.read_bytes()[:4000])
        good.unlink()
    elif case == "random-mp3":
        path = tmp_path / "input.mp3"
        path.write_bytes(np.random.default_rng(2).integers(0, 256, 30000, dtype=np.uint8).tobytes())
    else:
        raise AssertionError(case)
    return path


BAD_INPUTS = {
    "missing": "no such file",
    "directory": "directory",
    "empty": "empty",
    "zero-length": "no audio frames",
    "text": "not an audio file",
    "corrupt-flac": "corrupt",
    "random-mp3": "not an audio file",
}


def assert_one_line_error(done: subprocess.CompletedProcess, expected: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("whamsah-tray: error: ") and expected in lines[0], lines[0]
    assert done.stdout == ""


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, case):
    source = make_bad_input(tmp_path, case)
    before = files_under(tmp_path)
    done = run_cli("separate", source, "--out", tmp_path / "out")
    assert_one_line_error(done, BAD_INPUTS[case])
    assert files_under(tmp_path) == before  # no out folder, no partial or temporary files


def bad_out_dir(tmp_path: Path, case: str) -> Path:
    if case == "a-file":
        (tmp_path / "file.txt").write_text("x")
        return tmp_path / "file.txt"
    if case == "under-a-file":
        (tmp_path / "file.txt").write_text("x")
        return tmp_path / "file.txt" / "out"
    if case == "read-only-filesystem":
        if not Path("/sys").is_dir():
            pytest.skip("no /sys here to stand for a read-only place")
        return Path("/sys/whamsah-test-out")
    if case == "read-only-folder":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        return folder
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["a-file", "under-a-file", "read-only-filesystem", "read-only-folder"])
def test_unwritable_out_exits_2_with_one_line(tmp_path, case):
    source = write_audio(tmp_path / "in.wav", synthetic_song(8000, 1, 8000), 8000)
    out = bad_out_dir(tmp_path, case)
    before = files_under(tmp_path)
    done = run_cli("separate", source, "--out", out)
    assert_one_line_error(done, "cannot write to --out")
    assert files_under(tmp_path) == before
    assert not out.exists() or out.is_file() or not any(out.iterdir())


@pytest.mark.parametrize("case", ["named-vocals", "named-instrumental-flac", "symlink", "hard-link"])
def test_out_that_would_overwrite_the_input_is_refused(tmp_path, case):
    audio = synthetic_song(8000, 2, 8000)
    fmt = "wav"
    if case == "named-vocals":
        source = write_audio(tmp_path / "vocals.wav", audio, 8000)
        out = tmp_path
    elif case == "named-instrumental-flac":
        source = write_audio(tmp_path / "instrumental.flac", audio, 8000)
        out, fmt = tmp_path / "." / "sub" / "..", "flac"
        (tmp_path / "sub").mkdir()
    elif case == "symlink":
        # The input is a link in another folder to out/vocals.wav: writing would replace it.
        (tmp_path / "out").mkdir()
        real = write_audio(tmp_path / "out" / "vocals.wav", audio, 8000)
        source = tmp_path / "link.wav"
        source.symlink_to(real)
        out = tmp_path / "out"
    else:
        (tmp_path / "out").mkdir()
        real = write_audio(tmp_path / "out" / "vocals.wav", audio, 8000)
        source = tmp_path / "hard.wav"
        os.link(real, source)
        out = tmp_path / "out"
    digest, before = sha256_file(source), files_under(tmp_path)
    done = run_cli("separate", source, "--out", out, "--format", fmt)
    assert_one_line_error(done, "would overwrite the input")
    assert sha256_file(source) == digest and files_under(tmp_path) == before


def test_unknown_model_exits_2_and_writes_nothing(tmp_path, untrained_model_installed):
    source = write_audio(tmp_path / "in.wav", synthetic_song(8000, 1, 8000), 8000)
    before = files_under(tmp_path)
    done = run_cli("separate", source, "--out", tmp_path / "out", "--model", "no-such-model",
                   extra_env=untrained_model_installed)
    assert_one_line_error(done, "no-such-model")
    assert files_under(tmp_path) == before


def test_plan_outputs_names_both_stems(tmp_path):
    source = write_audio(tmp_path / "song.wav", synthetic_song(800, 1, 8000), 8000)
    assert plan_outputs(source, tmp_path / "x", "flac") == {
        "vocals": tmp_path / "x" / "vocals.flac",
        "instrumental": tmp_path / "x" / "instrumental.flac",
    }
    with pytest.raises(AudioFileError, match="unsupported output format"):
        plan_outputs(source, tmp_path / "x", "mp3")


def test_cli_separate_with_a_key_change_transposes_both_stems(tmp_path):
    """`separate --key 2` with the shipped model: both stems two semitones up, and their sum is
    the input transposed (measured on a 220 Hz sawtooth, whatever the model calls it)."""
    from pitch import cents, measured_pitch, sawtooth
    from whamsah_tray.separation import find_model

    try:
        find_model(None)
    except ModelLoadingError as error:
        pytest.skip(f"no default model installed yet: {error}")
    source = write_audio(tmp_path / "tone.wav", np.stack([sawtooth(220.0, 2.0)] * 2, axis=1), 44100)
    done = run_cli("separate", source, "--out", tmp_path / "out", "--key", "2")
    assert done.returncode == 0, done.stderr
    assert "key +2" in done.stdout
    vocals, _ = read_audio(tmp_path / "out" / "vocals.wav")
    instrumental, _ = read_audio(tmp_path / "out" / "instrumental.wav")
    expected = 220.0 * 2 ** (2 / 12)
    middle = (vocals + instrumental)[22050:-22050, 0]
    assert abs(cents(measured_pitch(middle, expected), expected)) < 5
    for stem in (vocals, instrumental):
        if np.abs(stem).max() > 0.01:  # a stem the model left (nearly) empty has no pitch to measure
            assert abs(cents(measured_pitch(stem[22050:-22050, 0], expected), expected)) < 5


def test_cli_key_outside_six_semitones_exits_2(tmp_path):
    done = run_cli("separate", tmp_path / "x.wav", "--out", tmp_path / "out", "--key", "7")
    assert done.returncode == 2 and "outside -6..+6" in done.stderr
