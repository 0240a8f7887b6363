"""`whamsah-tray` as the user starts it, on a display where no tray host runs (as GNOME without the
AppIndicator extension): it says so once (desktop notification and log), keeps running, and stays
controllable through `whamsah-tray ctl` (status, a change that reaches the profile, quit). A second
X server of its own (Xvfb, no trayer) stands in for that desktop; D-Bus and the sound server are
the test desktop's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

import tray_driver as drive

pytestmark = pytest.mark.desktop

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent


def _start_bare_display() -> tuple[subprocess.Popen, str]:
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    assert number, "Xvfb did not report its display"
    return xvfb, f":{number}"


def _ctl(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "whamsah_tray", "ctl", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_without_a_tray_host_it_says_so_and_stays_controllable_through_ctl(desktop, portaudio, tmp_path):
    pytest.importorskip("gi", reason="PyGObject is not installed (pip install 'PyGObject<3.50' pycairo)")
    config = tmp_path / "config"
    (config / "alsa").mkdir(parents=True)
    (config / "alsa" / "asoundrc").write_bytes((Path(os.environ["XDG_CONFIG_HOME"]) / "alsa" / "asoundrc").read_bytes())
    profile = config / "whamsah-tray" / "profile.toml"
    profile.parent.mkdir()
    profile.write_text(tomli_w.dumps({
        "schema_version": 1,
        "audio": {"input_device": desktop.cable_monitor, "output_device": desktop.speakers},
        "levels": {"vocals": 100, "instrumental": 100},
    }))
    notifications = tmp_path / "notifications.jsonl"
    recorder = subprocess.Popen([sys.executable, str(HERE / "notification_recorder.py"), str(notifications)],
                                stdout=subprocess.PIPE, text=True)
    assert recorder.stdout.readline().strip() == "ready"
    xvfb, display = _start_bare_display()
    env = {**os.environ, "DISPLAY": display, "XDG_CONFIG_HOME": str(config), "WHAMSAH_TRAY_LOG": "INFO"}
    log_path = tmp_path / "tray.log"
    with open(log_path, "w") as log:
        tray = subprocess.Popen([sys.executable, "-m", "whamsah_tray"], env=env, cwd=REPO_ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        def told() -> list[dict]:
            try:
                return [n for n in map(json.loads, notifications.read_text().splitlines())
                        if "no system tray is running" in n["body"]]
            except OSError:
                return []

        assert drive.wait_until(told, 60), f"no notification about the missing tray; log:\n{log_path.read_text()[-3000:]}"
        assert "`whamsah-tray ctl status`" in told()[0]["body"]
        assert "not docked" in log_path.read_text()
        assert tray.poll() is None, "the app ended instead of running on without a tray"

        assert drive.wait_until(lambda: _ctl("status", "--json", env=env).returncode == 0, 10)
        report = json.loads(_ctl("status", "--json", env=env).stdout)
        assert report["state"] in ("running", "starting")
        done = _ctl("toggle-vocals", env=env)
        assert done.returncode == 0, done.stderr
        assert drive.wait_until(lambda: tomllib.loads(profile.read_text())["levels"]["vocals"] == 0, 10)
        assert json.loads(_ctl("status", "--json", env=env).stdout)["vocals"] == 0

        done = _ctl("quit", env=env)
        assert done.returncode == 0 and done.stdout.strip() == "quitting", done.stderr
        assert tray.wait(30) == 0
        assert len(told()) == 1  # said once
        gone = _ctl("status", env=env)
        assert gone.returncode == 3 and gone.stderr.strip() == "WHAMSAH Tray is not running"
    finally:
        if tray.poll() is None:
            tray.terminate()
            try:
                tray.wait(20)
            except subprocess.TimeoutExpired:
                tray.kill()
                tray.wait()
        xvfb.terminate()
        xvfb.wait(5)
        recorder.terminate()
        recorder.wait(5)
