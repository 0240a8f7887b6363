"""The headless test desktop itself: tests/desktop_env.sh and the `desktop` / `portaudio` fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import DESKTOP_PROGRAMS, DESKTOP_SCRIPT, wanted_sound_server


def test_desktop_has_both_null_sinks(desktop):
    assert {"cable", "speakers"} <= set(desktop.sink_names())
    assert os.environ["DISPLAY"] == desktop.display


def test_the_sound_server_is_the_one_asked_for(desktop):
    """PulseAudio, or PipeWire with WHAMSAH_SOUND_SERVER=pipewire (tests/run.sh's second pass)."""
    info = desktop.pactl("info")
    wanted = wanted_sound_server()
    assert ("PipeWire" in info) == (wanted == "pipewire"), f"asked for {wanted}; pactl info says:\n{info}"


def test_x_display_answers(desktop):
    width, height = desktop.run("xdotool", "getdisplaygeometry").split()
    assert int(width) > 0 and int(height) > 0


def test_portaudio_lists_cable_and_speakers(portaudio, desktop):
    names = [device["name"] for device in portaudio.query_devices()]
    for name in (desktop.cable, desktop.cable_monitor, desktop.speakers, desktop.speakers_monitor):
        assert name in names


def test_sound_played_into_the_cable_comes_out_of_its_monitor(portaudio, desktop):
    rate = 48000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    recording = portaudio.playrec(
        np.column_stack([tone, tone]), rate, channels=2, dtype="float32",
        device=(desktop.cable_monitor, desktop.cable), blocking=True,
    )
    # The round trip delays the tone by some milliseconds: look at its second half.
    assert np.sqrt(np.mean(recording[rate // 2 :, 0] ** 2)) > 0.1


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent (in a container init may reap late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(
    any(shutil.which(program) is None for program in DESKTOP_PROGRAMS),
    reason="desktop programs missing (run tests/run.sh)",
)
def test_script_down_stops_exactly_what_up_started():
    workdir = Path(tempfile.mkdtemp(prefix="whamsah-desk-"))
    env_dir = workdir / "desktop"
    env = {**os.environ, "WHAMSAH_ENV_DIR": str(env_dir)}
    try:
        up = subprocess.run(["bash", str(DESKTOP_SCRIPT), "up"], env=env, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
        assert up.returncode == 0, up.stderr
        started = [line.split() for line in (env_dir / "pids").read_text().splitlines()]
        server = ["pipewire", "wireplumber", "pipewire-pulse"] if wanted_sound_server() == "pipewire" else ["pulseaudio"]
        assert [name for _, name in started] == ["Xvfb", "trayer", "dbus-daemon", *server, "pacat", "pacat"]
        pids = [int(pid) for pid, _ in started]
        assert all(_alive(pid) for pid in pids)
        again = subprocess.run(["bash", str(DESKTOP_SCRIPT), "up"], env=env, capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
        assert again.returncode != 0 and "down" in again.stderr
    finally:
        subprocess.run(["bash", str(DESKTOP_SCRIPT), "down"], env=env, timeout=60, check=False)
    assert not any(_alive(pid) for pid in pids)
    shutil.rmtree(workdir, ignore_errors=True)
