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


def _tone_pitch(audio_48k: np.ndarray, expected: float) -> tuple[float, float]:
    """The recorded tone's pitch near `expected` and how far below it (dB) the original 220 Hz
    is left, over the loud middle of a recording at the sinks' 48 kHz."""
    from pitch import measured_pitch

    mono = audio_48k[:, 0].astype(np.float64)
    loud = np.flatnonzero(np.abs(mono) > 0.05)
    middle = mono[loud[0] + 24000:loud[-1] - 24000]
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    bins = np.fft.rfftfreq(len(middle), 1 / 48000)
    near = lambda f: spectrum[(bins > f * 0.99) & (bins < f * 1.01)].max()  # noqa: E731
    return measured_pitch(middle, expected, 48000), 20 * np.log10(near(220.0) / near(expected))


@pytest.mark.parametrize("key", [-2, 3])
def test_play_with_a_key_change_plays_the_file_transposed(desktop, portaudio, tmp_path, key):
    # At 100 % / 100 % the mix is the transposed input whatever the model hears in a sawtooth.
    import soundfile
    from pitch import cents, sawtooth

    path = tmp_path / "tone.wav"
    soundfile.write(str(path), np.stack([sawtooth(220.0, 3.0)] * 2, axis=1), 44100)
    expected = 220.0 * 2 ** (key / 12)
    pitch, original_db = _tone_pitch(_play(path, "--key", str(key)), expected)
    assert abs(cents(pitch, expected)) < 5, (pitch, expected)
    assert original_db < -30, f"the original pitch is still there ({original_db:.1f} dB)"


def test_run_with_a_key_change_transposes_what_plays_into_the_cable(desktop, portaudio):
    from pitch import cents, sawtooth

    tone = soxr_48k(np.stack([sawtooth(220.0, 3.0)] * 2, axis=1))
    expected = 220.0 * 2 ** (3 / 12)
    best = None
    with running("--key", "3") as record:
        for _ in range(ATTEMPTS):
            pitch, original_db = _tone_pitch(record(Excerpt(np.zeros_like(tone), tone, "a 220 Hz sawtooth", real=False)), expected)
            best = (pitch, original_db)
            if abs(cents(pitch, expected)) < 5 and original_db < -30:
                break
    assert abs(cents(best[0], expected)) < 5 and best[1] < -30, best


def soxr_48k(audio_44k: np.ndarray) -> np.ndarray:
    import soxr

    return soxr.resample(audio_44k, 44100, 48000).astype(np.float32)
