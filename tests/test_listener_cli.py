"""What the listener hears from `whamsah-tray run` (sync: an app plays into the cable) and
`whamsah-tray play FILE` (async), each in its own process with the shipped model, recorded on the
speakers' monitor and measured against the true stems (tests/listener.py): vocals 0 % removes the
voice as well as the same model offline; 0 % / 0 % is silence; 100 % / 100 % and bypass are the
input unchanged.

A recording through the sound server on a busy 2-core machine may itself slip now and then; a
measurement is repeated up to ATTEMPTS times and the clean one judged (a broken path fails all).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from engine_audio import match, play_into, recording
from listener import Excerpt, assert_silent, assert_unchanged, assert_vocals_removed, best_explained
from conftest import REPO_ROOT

pytestmark = pytest.mark.desktop

ATTEMPTS = 5  # stops at the first clean one: costs nothing when the machine is quiet


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "whamsah_tray", *args], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)


class RunningCli:
    """`whamsah-tray run ...` until stop(); stderr collected on a thread."""

    def __init__(self, *args: str) -> None:
        self.process = _cli("run", "--input", "cable_monitor", "--output", "speakers", *args)
        self.lines: list[str] = []
        self.running = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            if "engine running" in line:
                self.running.set()

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            stdout, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            stdout, _ = self.process.communicate()
        return stdout


@contextlib.contextmanager
def running(*levels: str):
    """`run` with `levels` for the block; yields a function that plays the excerpt into the
    cable and returns what the speakers played meanwhile."""
    cli = RunningCli(*levels)
    try:
        assert cli.running.wait(60), f"`run` did not start: {''.join(cli.lines)}"
        time.sleep(0.5)

        def record(excerpt: Excerpt) -> np.ndarray:
            with recording() as rec:
                play_into("cable", excerpt.mixture)
            return rec["audio"]
        yield record
    finally:
        cli.stop()


def test_run_at_vocals_0_removes_the_voice(desktop, portaudio, listener_excerpt, offline_vocals_off):
    with running("--vocals", "0") as record:
        audio = best_explained(lambda: record(listener_excerpt), listener_excerpt, ATTEMPTS)
    assert_vocals_removed(audio, listener_excerpt, offline_vocals_off, "run --vocals 0")


def test_run_at_0_and_0_is_silence_and_at_100_is_the_input(desktop, portaudio, listener_excerpt):
    with running("--vocals", "0", "--instrumental", "0") as record:
        assert_silent(record(listener_excerpt), "run --vocals 0 --instrumental 0")
    with running() as record:
        best = None
        for _ in range(ATTEMPTS):
            audio = record(listener_excerpt)
            found = match(listener_excerpt.mixture, audio)
            best = (found, audio) if best is None or found.worst_window > best[0].worst_window else best
            if found.worst_window > 0.99:
                break
    assert_unchanged(best[1], listener_excerpt, "run at 100 % / 100 %")


def _play(path, *levels: str) -> np.ndarray:
    with recording() as rec:
        process = _cli("play", str(path), "--output", "speakers", *levels)
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "dry frames 0;" in stdout, f"frames left without the mix: {stdout}"
    return rec["audio"]


def test_play_at_vocals_0_removes_the_voice(desktop, portaudio, listener_excerpt, offline_vocals_off, tmp_path):
    path = listener_excerpt.write_mixture(tmp_path / "song.wav")
    audio = best_explained(lambda: _play(path, "--vocals", "0"), listener_excerpt, ATTEMPTS)
    assert_vocals_removed(audio, listener_excerpt, offline_vocals_off, "play --vocals 0")


def test_play_at_0_and_0_is_silence_and_bypass_is_the_file(desktop, portaudio, listener_excerpt, tmp_path):
    path = listener_excerpt.write_mixture(tmp_path / "song.wav")
    assert_silent(_play(path, "--vocals", "0", "--instrumental", "0"), "play --vocals 0 --instrumental 0")
    assert_unchanged(_play(path, "--vocals", "0", "--instrumental", "0", "--bypass"), listener_excerpt,
                     "play --bypass (levels 0 / 0)")
    assert_unchanged(_play(path), listener_excerpt, "play at 100 % / 100 %")
