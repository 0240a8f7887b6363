"""`whamsah-tray` (no command) as the user starts it: a separate process on the test desktop.
Quit leaves no process and no virtual cable behind (menu Quit and SIGTERM); a corrupt profile is
moved aside and the user is told; a missing remembered device falls back to the default and says
so; a second tray refuses to start; the basic X11 backend and the AppIndicator backend also dock;
no display → a clear message.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

import tray_driver as drive

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
CABLE_SINK = "whamsah_cable"


def test_without_a_display_it_points_to_the_headless_command(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "whamsah_tray"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=REPO_ROOT)
    assert done.returncode == 2
    assert "no display" in done.stderr and "whamsah-tray run" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "whamsah-tray" / "profile.toml").exists()  # nothing written


class TrayProcess:
    """`python -m whamsah_tray` with its own config home (profile, autostart) on the desktop."""

    def __init__(self, desktop, home: Path, profile: dict | str | bytes | None, extra_env=None):
        self.desktop = desktop
        self.config = home / "config"
        self.profile_path = self.config / "whamsah-tray" / "profile.toml"
        self.profile_path.parent.mkdir(parents=True, exist_ok=True)
        # ALSA finds the desktop's device names (cable, speakers...) in $XDG_CONFIG_HOME/alsa.
        alsa = Path(os.environ["XDG_CONFIG_HOME"]) / "alsa"
        (self.config / "alsa").mkdir(exist_ok=True)
        (self.config / "alsa" / "asoundrc").write_bytes((alsa / "asoundrc").read_bytes())
        if isinstance(profile, dict):
            self.profile_path.write_text(tomli_w.dumps(profile))
        elif isinstance(profile, str):
            self.profile_path.write_text(profile)
        elif isinstance(profile, bytes):
            self.profile_path.write_bytes(profile)
        self.notifications_file = home / "notifications.jsonl"
        self.recorder = subprocess.Popen([sys.executable, str(HERE / "notification_recorder.py"),
                                          str(self.notifications_file)], stdout=subprocess.PIPE, text=True)
        assert self.recorder.stdout.readline().strip() == "ready"
        env = {**os.environ, "XDG_CONFIG_HOME": str(self.config), "WHAMSAH_TRAY_LOG": "INFO",
               **(extra_env or {})}
        self.log_path = home / "tray.log"
        self.log = open(self.log_path, "w")
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "whamsah_tray"], env=env, cwd=REPO_ROOT,
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def icon(self, timeout: float = 15):
        g = drive.docked_icon(timeout)
        assert g is not None, f"the icon never docked; log:\n{self.output()[-3000:]}"
        return g

    def notifications(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.notifications_file.read_text().splitlines()]
        except OSError:
            return []

    def icon_title(self) -> str:
        return drive.icon_title()

    def wait_exit(self, timeout: float = 20) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the tray did not exit; log:\n{self.output()[-3000:]}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.recorder.terminate()
        self.recorder.wait(5)
        self.log.close()


@pytest.fixture
def start_tray(desktop, portaudio, tmp_path):
    pytest.importorskip("gi", reason="PyGObject is not installed (pip install 'PyGObject<3.50' pycairo)")
    started = []

    def start(profile=None, extra_env=None) -> TrayProcess:
        tray = TrayProcess(desktop, tmp_path / f"run{len(started)}", profile, extra_env)
        started.append(tray)
        return tray

    yield start
    for tray in started:
        tray.close()
    drive.wait_until(lambda: drive.docked_icon(0) is None, 5)


def base_profile(desktop, **sections) -> dict:
    profile = {"schema_version": 1,
               "audio": {"input_device": desktop.cable_monitor, "output_device": desktop.speakers}}
    profile.update(sections)
    return profile


def tray_children(pid: int) -> list[str]:
    """Command lines of live processes started by `pid` (the file dialog, pactl...)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            state = stat.rsplit(")", 1)[1].split()[0]
            if ppid == pid and state != "Z":
                found.append((entry / "cmdline").read_text().replace("\0", " "))
        except (OSError, ValueError, IndexError):
            continue
    return found


def sinks(desktop) -> list[str]:
    return desktop.sink_names()


def test_menu_quit_leaves_no_process_and_no_cable(start_tray, desktop):
    tray = start_tray(base_profile(desktop, linux_cable={"create_at_start": True}))
    g = tray.icon()
    assert drive.wait_until(lambda: CABLE_SINK in sinks(desktop), 20), \
        f"the tray did not create its cable; log:\n{tray.output()[-3000:]}"
    assert drive.open_menu(lambda: g)
    time.sleep(0.2)
    drive.xdotool("key", "Up")  # from nothing selected, Up selects the last item: Quit
    drive.xdotool("key", "Return")
    assert tray.wait_exit() == 0, tray.output()[-3000:]
    assert CABLE_SINK not in sinks(desktop)
    assert tray_children(tray.process.pid) == []
    assert drive.wait_until(lambda: drive.docked_icon(0) is None, 5), "the icon stayed in the tray"
    profile = tomllib.loads(tray.profile_path.read_text())
    assert profile["linux_cable"]["create_at_start"] is True  # the preference survives the quit


def test_sigterm_quits_cleanly_and_removes_the_cable(start_tray, desktop):
    tray = start_tray(base_profile(desktop, linux_cable={"create_at_start": True}))
    tray.icon()
    assert drive.wait_until(lambda: CABLE_SINK in sinks(desktop), 20)
    tray.process.send_signal(signal.SIGTERM)
    assert tray.wait_exit() == 0, tray.output()[-3000:]
    assert CABLE_SINK not in sinks(desktop)


def test_a_second_tray_says_the_first_is_running(start_tray, desktop):
    first = start_tray(base_profile(desktop))
    first.icon()
    env = {**os.environ, "XDG_CONFIG_HOME": str(first.config)}
    done = subprocess.run([sys.executable, "-m", "whamsah_tray"], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "already running" in done.stderr
    assert first.process.poll() is None


def test_corrupt_profile_is_moved_aside_and_the_user_is_told(start_tray, desktop):
    garbage = b"[audio\ninput_device = 'cable_monitor\n\x00\xff"
    tray = start_tray(garbage)
    tray.icon()
    broken = drive.wait_until(lambda: list(tray.profile_path.parent.glob("profile.toml.broken-*")), 10)
    assert broken and broken[0].read_bytes() == garbage
    assert drive.wait_until(lambda: any("Default settings are used" in n["body"] for n in tray.notifications()), 10), \
        tray.notifications()
    assert drive.wait_until(lambda: "not valid TOML" in tray.icon_title(), 5), tray.icon_title()


def test_invalid_settings_and_a_bad_hotkey_are_reported_and_the_rest_works(start_tray, desktop):
    profile = base_profile(desktop, levels={"vocals": 400, "instrumental": 80},
                           hotkeys={"bypass": "<ctrl>+<nosuchkey>"})
    tray = start_tray(profile)
    tray.icon()
    assert drive.wait_until(lambda: any("levels.vocals" in n["body"] for n in tray.notifications()), 10), \
        tray.notifications()
    assert drive.wait_until(lambda: any("hotkey for bypass" in n["body"] for n in tray.notifications()), 10), \
        tray.notifications()
    title = tray.icon_title()
    assert "⚠ hotkey for bypass" in title and "Vocals 100 % · Instrumental 80 %" in title, title
    time.sleep(0.5)
    desktop.run("xdotool", "key", "ctrl+alt+v")  # the other hotkeys still work
    assert drive.wait_until(lambda: "Vocals 0 %" in tray.icon_title(), 10), tray.icon_title()


def test_missing_remembered_output_falls_back_to_the_default_and_says_so(start_tray, desktop):
    profile = base_profile(desktop)
    profile["audio"]["output_device"] = "Headphones that were unplugged"
    tray = start_tray(profile)
    tray.icon()
    said = drive.wait_until(
        lambda: [n for n in tray.notifications() if "Headphones that were unplugged" in n["body"]], 20)
    assert said, f"no notification about the missing device: {tray.notifications()}\n{tray.output()[-2000:]}"
    # Still remembered by name, so that it is used again when it comes back.
    time.sleep(0.5)
    assert tomllib.loads(tray.profile_path.read_text() if tray.profile_path.exists() else "") \
        .get("audio", {}).get("output_device", "Headphones that were unplugged") == "Headphones that were unplugged"


def test_basic_x11_backend_docks_says_the_menu_is_limited_and_hotkeys_work(start_tray, desktop):
    """The python-xlib backend: the icon docks and its tooltip says the menu is limited. Mouse
    clicks never reach this backend's icon under Xvfb + trayer (see ../shared/harness/README.md),
    so the left-click action is tested with the GTK backend (test_app_tray.py); here the hotkeys,
    which work whatever the backend, change the levels."""
    tray = start_tray(base_profile(desktop), extra_env={"PYSTRAY_BACKEND": "xorg"})
    tray.icon()
    assert drive.wait_until(lambda: "menu unavailable" in tray.icon_title(), 10), tray.icon_title()
    # The engine is up (whatever the audio does: this test is about the backend).
    assert drive.wait_until(lambda: "starting" not in tray.icon_title(), 20), tray.icon_title()
    time.sleep(0.5)
    desktop.run("xdotool", "key", "ctrl+alt+v")
    assert drive.wait_until(
        lambda: tray.profile_path.exists()
        and tomllib.loads(tray.profile_path.read_text()).get("levels", {}).get("vocals") == 0, 10), \
        tray.output()[-2000:]
    # By name, not by docked size: after earlier tests' icons leave, trayer sometimes squeezes
    # this backend's window to 1 px wide (a trayer/python-xlib layout quirk, not seen alone).
    assert drive.wait_until(lambda: any("Vocals 0 %" in name for name in _icon_window_names()), 5), \
        _icon_window_names()


def _icon_window_names() -> list[str]:
    return [drive.xdotool("getwindowname", window, check=False).strip() for window in drive.icon_windows()]


def test_appindicator_backend_docks_and_its_menu_opens(start_tray, desktop):
    tray = start_tray(base_profile(desktop), extra_env={"PYSTRAY_BACKEND": "appindicator"})

    def locate():
        g = drive.docked_icon(1)
        if g is None:
            # AppIndicator's fallback icon is named after the app id, not the tooltip.
            windows = drive.xdotool("search", "--onlyvisible", "--name", "^whamsah-tray$", check=False).split()
            g = drive.window_geometry(windows[0]) if windows else None
        return g

    assert drive.wait_until(locate, 15), f"the AppIndicator icon never docked; log:\n{tray.output()[-2000:]}"
    assert drive.open_menu(locate), "right-click did not open the AppIndicator menu"
    drive.xdotool("key", "Escape")


def _default_sink() -> str:
    return subprocess.run(["pactl", "get-default-sink"], capture_output=True, text=True).stdout.strip()


def _app_sink(name: str) -> str | None:
    from whamsah_tray.engine import LinuxCable

    return next((app.sink for app in LinuxCable().list_apps() if app.app_name == name), None)


@pytest.fixture
def playing_app(desktop, tmp_path):
    """A real app playing quiet noise to the speakers, as a user's music player would."""
    import numpy as np
    import soundfile

    path = tmp_path / "quiet.wav"
    soundfile.write(str(path), 0.01 * np.random.default_rng(0).standard_normal((48000 * 60, 2)), 48000)
    app = subprocess.Popen(["paplay", "--latency-msec=50", "--client-name=MusicPlayer", "-d", "speakers", str(path)])
    assert drive.wait_until(lambda: _app_sink("MusicPlayer") == "speakers", 10)
    yield "MusicPlayer"
    app.terminate()
    app.wait(5)


def _routed_all(app: str) -> bool:
    return _default_sink() == CABLE_SINK and _app_sink(app) == CABLE_SINK


def test_route_all_audio_through_whamsah_and_back_at_quit(start_tray, desktop, playing_app, tmp_path):
    state = tmp_path / "state"
    tray = start_tray(base_profile(desktop, linux_cable={"make_default_sink": True}),
                      extra_env={"XDG_STATE_HOME": str(state)})
    tray.icon()
    assert drive.wait_until(lambda: _routed_all(playing_app), 20), (_default_sink(), _app_sink(playing_app), tray.output()[-2000:])
    assert list(state.rglob("routing-whamsah_cable.json"))  # the journal of what to undo
    tray.process.send_signal(signal.SIGTERM)
    assert tray.wait_exit() == 0, tray.output()[-3000:]
    assert _default_sink() == "speakers" and _app_sink(playing_app) == "speakers"
    assert CABLE_SINK not in sinks(desktop)
    assert not list(state.rglob("routing-*.json"))  # nothing left to undo


def test_a_killed_tray_s_routing_is_put_back_at_the_next_start(start_tray, desktop, playing_app, tmp_path):
    from conftest import run_cli

    state = tmp_path / "state"
    tray = start_tray(base_profile(desktop, linux_cable={"make_default_sink": True}),
                      extra_env={"XDG_STATE_HOME": str(state)})
    tray.icon()
    assert drive.wait_until(lambda: _routed_all(playing_app), 20), tray.output()[-2000:]
    tray.process.kill()  # SIGKILL: no chance to put anything back
    tray.process.wait(10)
    assert _routed_all(playing_app)  # what a killed tray leaves: the music goes into a dead cable
    done = run_cli("run", "--input", "cable_monitor", "--output", "speakers", "--duration", "1",
                   extra_env={"XDG_STATE_HOME": str(state)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "put back the audio routing" in done.stderr, done.stderr
    assert _default_sink() == "speakers" and _app_sink(playing_app) == "speakers"
    assert CABLE_SINK not in sinks(desktop)
    assert not list(state.rglob("routing-*.json"))
