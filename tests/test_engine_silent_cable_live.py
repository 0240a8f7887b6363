"""The silent-cable warning through a running engine: the cable delivers exact zeros (nothing plays
into it) and the OS is made to say that an app plays into it. Linux cannot block a monitor's
capture, so its probe answers "cannot know" and the warning never shows there; the probe is
replaced here by one that answers True (what macOS or Windows answer when they block the capture),
the only stand-in: the zeros come from the real device through the real worker and controller."""

from __future__ import annotations

import sys
import time

import pytest

from whamsah_tray.engine import Severity, UserMessage
from whamsah_tray.engine import controller as controller_module
from whamsah_tray.engine.silent_cable import cable_client_playing, silent_cable_message

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the test desktop's sound server")


def _warnings(events):
    return [e for e in events if isinstance(e, UserMessage) and e.severity is Severity.WARNING]


def test_ten_seconds_of_zeros_while_an_app_plays_into_the_cable_warns_once(desktop, portaudio, untrained_model,
                                                                            monkeypatch):
    from test_engine_sync import start_engine

    asked = []
    monkeypatch.setattr(controller_module, "cable_client_playing", lambda name: asked.append(name) or True)
    engine, events = start_engine(lambda name: untrained_model)
    try:
        time.sleep(8.0)
        assert not _warnings(events), "warned before 10 s of zeros"
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not _warnings(events):
            time.sleep(0.1)
        warnings = _warnings(events)
        assert len(warnings) == 1, events
        assert warnings[0].text == silent_cable_message(engine.status.input_device)
        time.sleep(3.0)
        assert len(_warnings(events)) == 1  # once per run of zeros
    finally:
        engine.close()
    assert asked


def test_linux_never_warns_the_probe_cannot_know(desktop, portaudio):
    assert cable_client_playing("Monitor of WHAMSAH-Cable") is None
