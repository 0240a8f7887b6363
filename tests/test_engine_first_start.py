"""The first start on the test desktop (PulseAudio with the null sinks `cable` and `speakers`; no
microphone, so the server's default source is the speakers' monitor, as on many machines): the
engine records a virtual cable, never the default input. With no input named it creates our
cable and records its monitor (removed again at close); the speakers stay silent until an app
plays into the cable; an input that records the output is refused (a feedback loop); a
remembered input that is missing is waited for; Capture app works in one command with no cable.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile

from conftest import run_cli
from engine_audio import band_limited_noise, match, play_into, recording
from tray_driver import wait_until
from whamsah_tray.engine import (EngineController, EngineSettings, EngineState, LinuxCable, Severity, UserMessage,
                                 pulse)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sound servers only")

OUR_CABLE = "whamsah_cable"


def _engine(random_model, **settings) -> tuple[EngineController, list]:
    events: list = []
    engine = EngineController(EngineSettings(output_device="speakers", **settings),
                              model_factory=lambda name: random_model)
    engine.subscribe(events.append)
    return engine, events


def _sinks() -> list[str]:
    return [sink.name for sink in pulse.sinks()]


def _source_outputs() -> dict[str, str]:
    """Recording stream index -> index of the source it records."""
    lines = subprocess.run(["pactl", "list", "short", "source-outputs"], capture_output=True, text=True).stdout
    return {fields[0]: fields[1] for fields in (line.split("\t") for line in lines.splitlines()) if len(fields) > 1}


@pytest.fixture
def no_cable(desktop, portaudio):
    """Our cable absent before and after the test; the server's default source is the speakers'
    monitor, like a machine without a microphone."""
    assert OUR_CABLE not in _sinks(), "an earlier test left our cable behind"
    before = subprocess.run(["pactl", "get-default-source"], capture_output=True, text=True).stdout.strip()
    # A change of default source moves the streams recording the old default (PulseAudio 16 and
    # PipeWire alike), the desktop's own low-latency monitor readers included: put them back.
    readers = _source_outputs()
    subprocess.run(["pactl", "set-default-source", "speakers.monitor"], check=True)
    yield
    subprocess.run(["pactl", "set-default-source", before or "speakers.monitor"], check=False)
    now = _source_outputs()
    for index, source in readers.items():
        if index in now and now[index] != source:
            subprocess.run(["pactl", "move-source-output", index, source], check=False)
    if OUR_CABLE in _sinks():
        LinuxCable().close(remove=True)
        pytest.fail("the engine left its cable behind")


def test_with_no_input_named_the_engine_creates_and_records_its_own_cable(no_cable, untrained_model):
    engine, events = _engine(untrained_model)
    try:
        engine.start()
        assert engine.wait_for(lambda s: s.state is EngineState.RUNNING, 30), (engine.status, events)
        assert OUR_CABLE in _sinks()
        assert engine.status.input_device == "Monitor of WHAMSAH-Cable"
        assert any(isinstance(e, UserMessage) and "created" in e.text for e in events)
        # What an app plays into our cable reaches the speakers (the random model at 100 %/100 %
        # adds back up to its input).
        reference = band_limited_noise(2.0, seed=11)
        found = []
        for _ in range(3):  # a recording on a busy machine may slip: the best of three
            with recording() as rec:
                play_into(OUR_CABLE, reference)
            found.append(match(reference, rec["audio"]))
            print(found[-1])
            if found[-1].worst_window > 0.99:
                break
        assert max(f.correlation for f in found) > 0.99, found
    finally:
        engine.close()
    assert OUR_CABLE not in _sinks()  # made by the engine: removed at close


def test_the_speakers_stay_silent_after_an_app_stops_no_loop(no_cable, untrained_model):
    """A sound played straight to the speakers must not come back through the engine: before, the
    default input was the speakers' monitor and a burst kept sounding at -4 dBFS."""
    engine, _ = _engine(untrained_model)
    try:
        engine.start()
        assert engine.wait_for(lambda s: s.state is EngineState.RUNNING, 30)
        play_into("speakers", band_limited_noise(0.5, seed=12))
        with recording() as rec:
            time.sleep(1.5)
        peak = float(np.abs(rec["audio"]).max())
        assert peak < 1e-3, f"the speakers still play {20 * np.log10(peak):.1f} dBFS after the app stopped"
    finally:
        engine.close()


def test_without_a_cable_the_engine_waits_instead_of_opening_the_default_input(no_cable, untrained_model):
    engine, events = _engine(untrained_model, own_cable=False)  # as on Windows/macOS with no VB-Cable
    try:
        engine.start()
        assert engine.wait_for(lambda s: s.state is EngineState.DEVICE_LOST, 30), engine.status
        assert wait_until(lambda: any(isinstance(e, UserMessage) for e in events), 5)
        message = next(e for e in events if isinstance(e, UserMessage))
        assert message.severity is Severity.WARNING and "no virtual cable" in message.text
        assert engine.status.sample_rate == 0  # no stream is open
        # A cable appears (the user made one): the engine starts recording it by itself.
        LinuxCable().create()
        assert engine.wait_for(lambda s: s.state is EngineState.RUNNING, 10), engine.status
        assert engine.status.input_device == "Monitor of WHAMSAH-Cable"
    finally:
        engine.close()
        LinuxCable().close(remove=True)


def test_a_missing_remembered_input_is_waited_for_not_replaced(no_cable, untrained_model):
    engine, events = _engine(untrained_model, input_device="USB microphone that was unplugged")
    try:
        engine.start()
        assert engine.wait_for(lambda s: s.state is EngineState.DEVICE_LOST, 30), engine.status
        assert wait_until(lambda: any(isinstance(e, UserMessage) and "unplugged" in e.text and "waiting" in e.text
                                      for e in events), 5), events
        time.sleep(1.0)
        assert engine.state is EngineState.DEVICE_LOST and engine.status.sample_rate == 0
        engine.set_devices(input="cable_monitor")  # the user picks another input
        assert engine.wait_for(lambda s: s.state is EngineState.RUNNING, 10), engine.status
    finally:
        engine.close()


@pytest.mark.parametrize("monitor", ["speakers_monitor", "Monitor of speakers"])
def test_an_input_that_records_the_output_is_refused(desktop, portaudio, untrained_model, monitor):
    engine, events = _engine(untrained_model, input_device=monitor)
    try:
        engine.start()
        assert engine.wait_for(lambda s: s.state is EngineState.ERROR, 30), engine.status
        assert wait_until(lambda: any(isinstance(e, UserMessage) and "feedback loop" in e.text for e in events), 5)
    finally:
        engine.close()


def test_run_refuses_a_feedback_loop_with_exit_status_2(desktop, portaudio):
    done = run_cli("run", "--input", "speakers_monitor", "--output", "speakers", "--duration", "2", timeout=120)
    assert done.returncode == 2, done.stderr
    assert "feedback loop" in done.stderr


def test_capture_app_with_no_cable_creates_it_and_routes_the_app_in_one_command(no_cable, untrained_model, tmp_path):
    path = tmp_path / "quiet.wav"
    soundfile.write(str(path), 0.01 * np.random.default_rng(0).standard_normal((48000 * 30, 2)), 48000)
    app = subprocess.Popen(["paplay", "--latency-msec=50", "--client-name=KaraokeApp", "-d", "speakers", str(path)])
    engine, events = _engine(untrained_model, input_device="cable_monitor")
    try:
        engine.start()
        assert engine.wait_for(lambda s: s.state is EngineState.RUNNING, 30)
        listed = wait_until(lambda: [a for a in engine.list_apps() if a.app_name == "KaraokeApp"], 10)
        assert listed, engine.list_apps()
        engine.capture_app(listed[0].index)
        assert wait_until(lambda: any(a.app_name == "KaraokeApp" and a.captured for a in engine.list_apps()), 10), \
            (engine.list_apps(), events)
        assert engine.wait_for(lambda s: s.state is EngineState.RUNNING and s.input_device == "Monitor of WHAMSAH-Cable",
                               10), engine.status
        engine.release_app(listed[0].index)
        assert wait_until(lambda: any(a.app_name == "KaraokeApp" and a.sink == "speakers"
                                      for a in engine.list_apps()), 10)
    finally:
        engine.close()
        app.terminate()
        app.wait(5)
