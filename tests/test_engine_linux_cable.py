"""Our own virtual cable and per-app capture against the test desktop's real PulseAudio (pactl):
state is read back from the server, apps go back where they came from, none is ever left in a
removed cable, and the previous default sink comes back. Test cables have their own names so the
desktop's `cable` and `speakers` are never touched.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile

from tray_driver import wait_until
from whamsah_tray.engine import EngineController, EngineSettings, EngineState, LinuxCable, StreamSettings, list_devices
from whamsah_tray.engine import pulse

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sound servers only")


@pytest.fixture
def cable(desktop):
    made = LinuxCable(sink_name="whamsah_cabletest", description="WHAMSAH-CableTest")
    yield made
    made.close(remove=True)
    assert pulse.default_sink() == "speakers"


@pytest.fixture
def playing_app(desktop, tmp_path):
    """A real application playing into the speakers: paplay with a recognisable name."""
    path = tmp_path / "quiet.wav"
    soundfile.write(str(path), 0.01 * np.random.default_rng(0).standard_normal((48000 * 30, 2)), 48000)
    app = subprocess.Popen(["paplay", "--latency-msec=50", "--client-name=AppUnderTest",
                            "--stream-name=Quiet noise", "-d", "speakers", str(path)])
    try:
        for _ in range(100):
            if any(a.app_name == "AppUnderTest" for a in LinuxCable().list_apps()):
                break
            subprocess.run(["sleep", "0.05"])
        yield app
    finally:
        app.terminate()
        app.wait(5)


def _app(cable: LinuxCable):
    return next(a for a in cable.list_apps() if a.app_name == "AppUnderTest")


def test_create_and_remove_the_cable(cable):
    assert not cable.exists()
    cable.create()
    assert cable.exists()
    assert "whamsah_cabletest" in [s.name for s in pulse.sinks()]  # read back from the server
    monitor = next(d for d in list_devices(refresh=True).inputs() if d.pulse_name == "whamsah_cabletest.monitor")
    assert monitor.name == "Monitor of WHAMSAH-CableTest" and monitor.is_virtual_cable
    cable.create()  # idempotent: no second module
    assert [s.name for s in pulse.sinks()].count("whamsah_cabletest") == 1
    cable.remove()
    assert not cable.exists()
    assert not any(d.pulse_name == "whamsah_cabletest.monitor" for d in list_devices(refresh=True).inputs())


def test_default_sink_is_taken_and_given_back(cable):
    cable.create(make_default=True)
    assert pulse.default_sink() == "whamsah_cabletest" and cable.is_default()
    cable.restore_default()
    assert pulse.default_sink() == "speakers"
    cable.make_default()
    cable.remove()  # removal restores the default first
    assert pulse.default_sink() == "speakers"


def test_one_app_is_moved_into_the_cable_and_back(cable, playing_app):
    cable.create()
    app = _app(cable)
    assert app.sink == "speakers" and not app.captured and app.media_title == "Quiet noise"
    cable.capture(app.index)
    assert _app(cable).sink == "whamsah_cabletest" and _app(cable).captured
    assert cable.captured() == [app.index]
    cable.release(app.index)
    assert _app(cable).sink == "speakers"


def test_removing_the_cable_never_leaves_an_app_in_it(cable, playing_app):
    cable.create()
    cable.capture(_app(cable).index)
    cable.remove()
    assert _app(cable).sink == "speakers"  # still playing, back where it was
    assert playing_app.poll() is None


def test_engine_creates_the_cable_records_it_and_restores_everything_on_close(desktop, portaudio, cable, playing_app):
    from whamsah_tray.separation import create_untrained_model

    engine = EngineController(EngineSettings(output_device="speakers"),
                              model_factory=lambda name: create_untrained_model("identity"), cable=cable)
    try:
        engine.create_cable(make_default=True)
        engine.start()
        assert engine.wait_for(lambda s: s.state is EngineState.RUNNING, 20), engine.status
        assert engine.status.input_device == "Monitor of WHAMSAH-CableTest"
        assert pulse.default_sink() == "whamsah_cabletest"
        index = _app(cable).index
        engine.capture_app(index)
        assert engine.wait_for(lambda s: _app(cable).captured, 5)
        # the engine's own output stream is not offered as an app to capture
        assert all(a.app_name == "AppUnderTest" for a in engine.list_apps())
    finally:
        engine.close()
    assert pulse.default_sink() == "speakers"
    assert _app(cable).sink == "speakers"


def test_the_server_watch_counts_device_changes_and_not_our_own_questions(desktop):
    """pulse.change_count() (one `pactl subscribe`) moves when a sink comes and goes, and stays put
    while we only list things (each pactl call is a client coming and going on the server)."""
    first = pulse.change_count()
    assert first is not None, "no pactl subscribe running against the test desktop"
    pulse.sinks(), pulse.sink_inputs(), pulse.sources(), pulse.available()
    subprocess.run(["sleep", "0.3"])
    assert pulse.change_count() == first
    module = pulse.load_module("module-null-sink", "sink_name=whamsah_watchtest")
    try:
        assert wait_until(lambda: pulse.change_count() > first, 3)
        subprocess.run(["sleep", "0.3"])
        loaded = pulse.change_count()
    finally:
        pulse.unload_module(module)
    assert wait_until(lambda: pulse.change_count() > loaded, 3)  # the removal too


def test_an_app_that_starts_or_stops_playing_is_announced_at_once(desktop, portaudio, cable, tmp_path):
    """Capture app ▸ must list an app that started a moment ago: the engine turns the server's
    stream events into AppsChanged (the tray then reads the apps again), instead of the tray
    finding out at its next poll (every 2 s)."""
    from whamsah_tray.engine import AppsChanged
    from whamsah_tray.separation import create_untrained_model

    engine = EngineController(EngineSettings(input_device="cable_monitor", output_device="speakers",
                                             stream=StreamSettings(idle_after_s=0)),
                              model_factory=lambda name: create_untrained_model("identity"), cable=cable)
    events: list = []
    engine.subscribe(events.append)
    path = tmp_path / "quiet.wav"
    soundfile.write(str(path), 0.01 * np.random.default_rng(0).standard_normal((48000 * 5, 2)), 48000)
    try:
        engine.start()
        assert engine.wait_for(lambda s: s.state is EngineState.RUNNING, 20), engine.status
        subprocess.run(["sleep", "1"])
        events.clear()
        app = subprocess.Popen(["paplay", "--client-name=LateApp", "-d", "speakers", str(path)])
        try:
            assert wait_until(lambda: any(isinstance(e, AppsChanged) for e in events), 3), events
            assert any(a.app_name == "LateApp" for a in engine.list_apps())
            events.clear()
        finally:
            app.terminate()
            app.wait(5)
        assert wait_until(lambda: any(isinstance(e, AppsChanged) for e in events), 3), "no event when it stopped"
    finally:
        engine.close()
