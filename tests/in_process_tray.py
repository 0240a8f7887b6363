"""A real TrayApp run in the test's own process (GTK loop on a thread), with a notification
recorder on the test bus and a throw-away profile: what the in-process tray tests (tray, ctl,
portal) share. tests/run.sh runs each such test file in a process of its own (one GTK loop and
one engine per process, as the app has)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import tomli_w

import tray_driver as drive

HERE = Path(__file__).resolve().parent
ENGINE_TIMEOUT_S = 20


class RunningTray:
    def __init__(self, app, store, config_home: Path, notifications: Path):
        self.app = app
        self.store = store
        self.config_home = config_home
        self.notifications_file = notifications

    @property
    def engine(self):
        return self.app.engine.controller

    def status(self):
        return self.engine.status

    def wait_engine(self, predicate, what: str, timeout: float = ENGINE_TIMEOUT_S):
        ok = self.engine.wait_for(predicate, timeout)
        assert ok, f"engine never reached: {what} (status: {self.status()})"

    def profile_file(self) -> dict:
        try:
            return tomllib.loads(self.store.path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return {}

    def wait_profile(self, section: str, key: str, value, timeout: float = 10.0):
        ok = drive.wait_until(lambda: self.profile_file().get(section, {}).get(key) == value, timeout)
        assert ok, f"profile.toml never had {section}.{key} = {value!r}: {self.profile_file().get(section)}"

    def icon_geometry(self):
        g = drive.docked_icon(10)
        assert g is not None, "the tray icon is not docked"
        return g

    def choose(self, *path: str):
        drive.choose(self.app.icon, self.icon_geometry(), list(path))

    def notifications(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.notifications_file.read_text().splitlines()]
        except OSError:
            return []


@contextlib.contextmanager
def running_tray(home: Path, thread_name: str, **profile_sections) -> Iterator[RunningTray]:
    """The tray with a profile of `profile_sections` under `home`, running (engine RUNNING) for
    the block; quit and joined after it."""
    from whamsah_tray.app.autostart import LinuxAutostart
    from whamsah_tray.app.backend import load_backend
    from whamsah_tray.app.engine_link import EngineLink
    from whamsah_tray.app.profile import ProfileStore
    from whamsah_tray.app.tray import TrayApp

    notifications = home / "notifications.jsonl"
    recorder = subprocess.Popen([sys.executable, str(HERE / "notification_recorder.py"), str(notifications)],
                                stdout=subprocess.PIPE, text=True)
    assert recorder.stdout.readline().strip() == "ready"
    profile_path = home / "config" / "whamsah-tray" / "profile.toml"
    profile_path.parent.mkdir(parents=True, exist_ok=True)
    profile_path.write_text(tomli_w.dumps({"schema_version": 1, **profile_sections}))
    store = ProfileStore(profile_path, debounce_s=0.1)
    result = store.load()
    app = TrayApp(load_backend(), EngineLink(store.profile), store, result,
                  autostart=LinuxAutostart(config_home=home / "config"))
    thread = threading.Thread(target=app.run, kwargs={"handle_signals": False}, name=thread_name)
    thread.start()
    try:
        assert app.shown.wait(10), "the tray never showed its icon"
        running = RunningTray(app, store, home / "config", notifications)
        drive.wait_until(lambda: app.engine.controller is not None, 10)
        running.wait_engine(lambda s: s.state.value == "running", "RUNNING")
        yield running
    finally:
        app.quit()
        thread.join(20)
        recorder.terminate()
        recorder.wait(5)
    assert not thread.is_alive(), "the tray did not stop after quit()"
