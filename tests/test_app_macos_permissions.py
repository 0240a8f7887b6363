"""macOS's recording permission. mocked: AVFoundation (PyObjC) cannot exist here, so a stand-in
module answers authorizationStatusForMediaType_ as macOS does, and `open` is recorded, not run."""

from __future__ import annotations

import types

import pytest

from whamsah_tray.app import macos_permissions
from whamsah_tray.app.macos_permissions import MICROPHONE_SETTINGS_URL, microphone_access


def _avfoundation(status: int, asked: list):
    device = types.SimpleNamespace(
        authorizationStatusForMediaType_=lambda media: status,
        requestAccessForMediaType_completionHandler_=lambda media, handler: asked.append(media))
    return types.SimpleNamespace(AVCaptureDevice=device, AVMediaTypeAudio="soun")


@pytest.mark.parametrize("status, answer", [(0, "not_determined"), (1, "restricted"), (2, "denied"), (3, "authorized")])
def test_the_status_macos_reports_is_read(status, answer):
    assert microphone_access("darwin", _avfoundation(status, [])) == answer


def test_no_permission_to_ask_about_elsewhere():
    assert microphone_access("linux") == "authorized" and microphone_access("win32") == "authorized"


def test_a_refused_recording_is_told_and_the_menu_offers_the_settings(tmp_path, monkeypatch):
    from whamsah_tray.app.actions import TrayActions
    from whamsah_tray.app.notifications import Notifier
    from whamsah_tray.app.profile import ProfileStore

    asked: list = []
    opened: list = []
    monkeypatch.setattr(macos_permissions.sys, "platform", "darwin")
    monkeypatch.setitem(__import__("sys").modules, "AVFoundation", _avfoundation(2, asked))
    store = ProfileStore(tmp_path / "profile.toml", debounce_s=0.0)
    store.load()
    notifier = Notifier()
    actions = TrayActions(engine=None, store=store, notifier=notifier, dialog=None, autostart=None,
                          launch_command=list, on_quit=lambda: None)
    assert not actions.microphone_blocked()
    actions.check_microphone_access()
    assert actions.microphone_blocked() and not asked
    assert any("Privacy & Security" in problem for problem in notifier.problems())
    macos_permissions.open_microphone_settings(run=lambda command, **kwargs: opened.append(command))
    assert opened == [["open", MICROPHONE_SETTINGS_URL]]

    monkeypatch.setitem(__import__("sys").modules, "AVFoundation", _avfoundation(0, asked))
    actions.check_microphone_access()  # never decided: macOS is asked to show its prompt
    assert asked == ["soun"] and not actions.microphone_blocked()
