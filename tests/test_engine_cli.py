"""`whamsah-tray run` and `whamsah-tray play` in a subprocess, on the test desktop's devices:
exit status, the summary line, and one clear line for bad input."""

from __future__ import annotations

import numpy as np
import soundfile

from conftest import TEST_MODEL, run_cli


def test_run_captures_the_cable_for_a_while_and_reports(desktop, portaudio, untrained_model_installed):
    done = run_cli("run", "--input", "cable_monitor", "--output", "speakers", "--vocals", "0",
                   "--model", TEST_MODEL, "--duration", "2", extra_env=untrained_model_installed, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"model {TEST_MODEL}" in done.stdout and "cable_monitor -> speakers" in done.stdout
    assert "engine running" in done.stderr


def test_run_without_weights_passes_audio_through_and_says_why(desktop, portaudio, tmp_path):
    done = run_cli("run", "--input", "cable_monitor", "--output", "speakers", "--duration", "1",
                   extra_env={"WHAMSAH_TRAY_WEIGHTS": str(tmp_path)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "dry pass-through" in done.stdout and "no separation" in done.stderr


def test_play_plays_a_file_to_its_end(desktop, portaudio, tmp_path, untrained_model_installed):
    path = tmp_path / "short.wav"
    soundfile.write(str(path), 0.1 * np.random.default_rng(0).standard_normal((22050, 2)), 44100)
    done = run_cli("play", str(path), "--output", "speakers", "--model", TEST_MODEL,
                   extra_env=untrained_model_installed, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "playing" in done.stderr and "engine stopped" in done.stderr


def test_play_a_bad_file_exits_2_with_one_line(desktop, tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not audio")
    done = run_cli("play", str(path), timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "notes.wav" in done.stderr, done.stderr


def test_levels_out_of_range_are_refused(desktop):
    done = run_cli("run", "--vocals", "200", "--duration", "0", timeout=60)
    assert done.returncode == 2 and "--vocals" in done.stderr
