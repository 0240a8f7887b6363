"""Which icon and tooltip the tray shows for each engine state (pure functions of EngineView)."""

from __future__ import annotations

import dataclasses

import pytest

from whamsah_tray.app.icons import IconState
from whamsah_tray.app.status import EngineView, icon_state, short_tooltip, tooltip
from whamsah_tray.engine.api import EngineState

RUNNING = EngineView(state=EngineState.RUNNING, model="whamsah-rt", model_ready=True, latency_ms=46.4)


@pytest.mark.parametrize("changes, expected", [
    ({}, IconState.RUNNING),
    ({"vocals": 0}, IconState.VOCALS_MUTED),
    ({"bypass": True}, IconState.BYPASS),
    ({"bypass": True, "vocals": 0}, IconState.BYPASS),
    ({"state": EngineState.PLAYING_FILE, "file": "/m/a.ogg"}, IconState.PLAYING_FILE),
    ({"model_ready": False, "model_problem": "missing weights"}, IconState.DRY),
    ({"state": EngineState.DEVICE_LOST}, IconState.DEVICE_LOST),
    ({"state": EngineState.DEVICE_LOST, "bypass": True}, IconState.DEVICE_LOST),
    ({"state": EngineState.ERROR, "error": "cannot open speakers"}, IconState.ERROR),
    ({"state": EngineState.STARTING}, IconState.STOPPED),
    ({"state": EngineState.STOPPED}, IconState.STOPPED),
])
def test_icon_state_puts_problems_before_choices(changes, expected):
    assert icon_state(dataclasses.replace(RUNNING, **changes)) is expected


def test_tooltip_shows_model_latency_and_levels():
    text = tooltip(dataclasses.replace(RUNNING, vocals=25, instrumental=140))
    assert text.splitlines()[0] == "WHAMSAH Tray: running"
    assert "Vocals 25 % · Instrumental 140 %" in text
    assert "Model whamsah-rt · 46 ms" in text
    assert "busy" not in text


def test_tooltip_shows_the_latency_the_engine_added_for_a_busy_machine():
    text = tooltip(dataclasses.replace(RUNNING, latency_ms=166.0, extra_latency_ms=20.0))
    assert "Model whamsah-rt · 166 ms (+20: busy machine)" in text


def test_tooltip_says_when_the_model_is_missing_and_audio_passes_through():
    view = dataclasses.replace(RUNNING, model_ready=False, model_problem="missing weights: whamsah-rt.pt")
    text = tooltip(view)
    assert "not loaded, audio passes through" in text
    assert "⚠ missing weights: whamsah-rt.pt" in text


def test_tooltip_lists_problems_and_the_backend_limitation():
    text = tooltip(dataclasses.replace(RUNNING, bypass=True), ["hotkey for bypass is not active"],
                   limitation="menu unavailable with this basic X11 tray")
    assert text.splitlines()[0] == "WHAMSAH Tray: running (bypass)"
    assert "⚠ hotkey for bypass is not active" in text
    assert text.endswith("menu unavailable with this basic X11 tray")


def test_tooltip_shows_the_file_being_played():
    view = dataclasses.replace(RUNNING, state=EngineState.PLAYING_FILE, file="/music/Song.flac", position_s=12.4,
                               duration_s=201.0, paused=True)
    assert "Paused Song.flac (0:12 / 3:21)" in tooltip(view)
    assert "(1:01:05 / 1:02:00)" in tooltip(dataclasses.replace(view, position_s=3665.4, duration_s=3720))


def test_short_tooltip_cuts_at_a_line_end_for_windows():
    text = "first line\n" + "x" * 200
    assert short_tooltip(text) == "first line…"
    assert short_tooltip("short") == "short"
    assert len(short_tooltip("y" * 300)) == 127


def test_model_menu_labels_name_the_default_and_the_latency():
    from whamsah_tray.app.engine_link import model_label
    from whamsah_tray.separation.registry import ModelInfo

    def info(name: str, samples: int, default: bool) -> ModelInfo:
        return ModelInfo(name=name, architecture="x", config={}, sample_rate=44100, latency_samples=samples,
                         weights_file=f"{name}.pt", is_default=default)

    assert model_label(info("whamsah-rt", 2560, True)) == "whamsah-rt (default, 58 ms)"
    assert model_label(info("whamsahnet", 65536, False)) == "whamsahnet (1.5 s)"


def test_tooltip_shows_the_key_and_idle():
    from whamsah_tray.app.status import EngineView, tooltip

    text = tooltip(EngineView(state=EngineState.RUNNING, model="whamsah-rt", model_ready=True, key=-2, idle=True))
    assert "Key −2" in text and "idle: no sound coming in" in text.splitlines()[0]
    assert "Key" not in tooltip(EngineView(state=EngineState.RUNNING, key=0))


def test_windows_notifications_are_cut_to_what_the_balloon_holds():
    """mocked platform: Windows' balloon shows nothing at all for a message over 255 characters
    or a title over 63 (no Windows here: the sender records what pystray would be given)."""
    from whamsah_tray.app.notifications import Notifier

    sent = []
    notifier = Notifier(lambda message, title: sent.append((title, message)), platform="win32")
    long_text = "audio device lost (" + "x" * 400 + "); waiting for it to come back"
    notifier.tell("A title that is much longer than sixty-three characters, as some are", long_text, key="device")
    title, message = sent[-1]
    assert len(message) <= 255 and message.endswith("…") and len(title) <= 63
    assert notifier.problems() == [long_text]  # the tooltip and log keep the whole text
    Notifier(lambda message, title: sent.append((title, message)), platform="linux").tell("t", long_text)
    assert sent[-1][1] == long_text
