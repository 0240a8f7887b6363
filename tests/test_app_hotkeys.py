"""Global hotkeys fire on real X key events (xdotool on the test display); a bad or conflicting
binding is reported and skipped while the others keep working."""

from __future__ import annotations

import threading
import time

import pytest

from whamsah_tray.app.hotkeys import HotkeyManager, check_bindings
from whamsah_tray.app.profile import HotkeySettings

pytestmark = pytest.mark.desktop


class Recorder:
    def __init__(self):
        self.calls: list[str] = []
        self.event = threading.Event()

    def action(self, name):
        def run():
            self.calls.append(name)
            self.event.set()
        return run

    def wait_for(self, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.calls


def test_default_bindings_all_parse(desktop):
    import dataclasses

    usable, problems = check_bindings(dataclasses.asdict(HotkeySettings()))
    assert problems == []
    assert set(usable) == {"toggle_vocals", "vocals_up", "vocals_down", "instrumental_up",
                           "instrumental_down", "bypass", "key_up", "key_down", "play_file"}


def test_bad_and_conflicting_hotkeys_are_reported_and_the_others_fire(desktop):
    recorder = Recorder()
    bindings = {
        "toggle_vocals": "<ctrl>+<alt>+v",
        "vocals_up": "<ctrl>+<alt>+<up>",
        "bypass": "<ctrl>+<nosuchkey>+b",   # cannot be parsed
        "play_file": "<ctrl>+<alt>+v",       # same keys as toggle vocals
        "vocals_down": "",                   # disabled on purpose: no problem
    }
    actions = {name: recorder.action(name) for name in
               ("toggle_vocals", "vocals_up", "vocals_down", "bypass", "play_file")}
    manager = HotkeyManager(bindings, actions)
    problems = manager.start()
    try:
        assert {p.action for p in problems} == {"bypass", "play_file"}
        messages = " | ".join(p.message() for p in problems)
        assert "cannot parse" in messages and "already used for toggle vocals" in messages
        assert set(manager.active) == {"toggle_vocals", "vocals_up"}
        time.sleep(0.3)  # the X record context needs a moment after start
        desktop.run("xdotool", "key", "ctrl+alt+v")
        desktop.run("xdotool", "key", "ctrl+alt+Up")
        desktop.run("xdotool", "key", "ctrl+alt+v")
        assert recorder.wait_for(3) == ["toggle_vocals", "vocals_up", "toggle_vocals"]
        # Keys without the modifiers do nothing.
        desktop.run("xdotool", "key", "v")
        time.sleep(0.3)
        assert len(recorder.calls) == 3
    finally:
        manager.stop()


def test_an_action_that_raises_does_not_kill_the_other_hotkeys(desktop):
    recorder = Recorder()

    def broken():
        raise RuntimeError("boom")

    manager = HotkeyManager({"bypass": "<ctrl>+<alt>+b", "toggle_vocals": "<ctrl>+<alt>+v"},
                            {"bypass": broken, "toggle_vocals": recorder.action("toggle_vocals")})
    assert manager.start() == []
    try:
        time.sleep(0.3)
        desktop.run("xdotool", "key", "ctrl+alt+b")
        desktop.run("xdotool", "key", "ctrl+alt+v")
        assert recorder.wait_for(1) == ["toggle_vocals"]
    finally:
        manager.stop()


def test_after_stop_the_keys_do_nothing(desktop):
    recorder = Recorder()
    manager = HotkeyManager({"toggle_vocals": "<ctrl>+<alt>+v"}, {"toggle_vocals": recorder.action("t")})
    manager.start()
    time.sleep(0.3)
    manager.stop()
    desktop.run("xdotool", "key", "ctrl+alt+v")
    time.sleep(0.4)
    assert recorder.calls == []


def test_without_accessibility_permission_on_macos_every_hotkey_is_reported(desktop, monkeypatch):
    """mocked: no macOS here. sys.platform and the permission check are patched; pynput's own
    behaviour there (a logged warning, then no key events) is what this guards against."""
    from whamsah_tray.app import hotkeys

    assert hotkeys.macos_may_watch_keys()  # no pyobjc here: it cannot tell, so it lets pynput try
    monkeypatch.setattr(hotkeys.sys, "platform", "darwin")
    monkeypatch.setattr(hotkeys, "macos_may_watch_keys", lambda: False)
    manager = HotkeyManager({"toggle_vocals": "<ctrl>+<alt>+v", "bypass": "nonsense+++"},
                            {"toggle_vocals": lambda: None, "bypass": lambda: None})
    problems = manager.start()
    assert {p.action for p in problems} == {"toggle_vocals", "bypass"}
    assert any("Accessibility" in p.message() for p in problems if p.action == "toggle_vocals")
    assert manager.active == {} and manager._listener is None
