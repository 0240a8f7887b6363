"""Quiet when idle: with nothing playing into the cable the engine stops its output stream and
sleeps (see worker.py, "idle"); the first sound wakes it. What the listener must not notice: the
first 100 ms of a song that starts after a long silence reach the speakers, whole and in time
with the rest (recorded on the speakers' monitor and compared with what was played, by
cross-correlation in 100 ms windows: a start that was lost or played late shows as a bad first
window). The CPU it saves is a figure of bench/bench_tray.py, not a timed test.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from engine_audio import band_limited_noise, match, play_into, recording
from test_engine_sync import start_engine
from tray_driver import wait_until
from whamsah_tray.engine import EngineState
from whamsah_tray.separation import create_untrained_model

IDLE_S = 30.0  # how long nothing plays before the song starts (the figure)


@pytest.fixture(scope="module")
def random_model():
    return create_untrained_model("whamsah-rt", seed=0)


def _our_output_corked() -> bool:
    """Whether the engine's stream on the speakers is corked on the sound server (stopped)."""
    listing = subprocess.run(["pactl", "list", "sink-inputs"], capture_output=True, text=True, timeout=10).stdout
    ours = [block for block in listing.split("\n\n") if "whamsah.stream" in block]
    return bool(ours) and all("Corked: yes" in block for block in ours)


def test_a_song_after_30_s_of_silence_is_heard_from_its_first_millisecond(desktop, portaudio, random_model):
    # A random network at 100 % / 100 % gives back its input exactly (vocals + instrumental = input),
    # so any sound lost while the output wakes up shows as a mismatch.
    engine, _ = start_engine(lambda name: random_model)
    try:
        assert wait_until(lambda: engine.status.idle, 15), f"the engine never went idle: {engine.status}"
        assert _our_output_corked(), "idle, but the output stream still runs on the server"
        time.sleep(IDLE_S)
        before = engine.status
        assert before.idle
        song = band_limited_noise(1.5, seed=3)
        found = None
        for attempt in range(2):  # a loaded machine's recorder may slip: a broken wake fails both
            if attempt:
                assert wait_until(lambda: engine.status.idle, 15)
            with recording() as rec:
                play_into("cable", song)
                woke = not engine.status.idle
            found = match(song, rec["audio"])
            if found.worst_window > 0.99:
                break
        assert woke, "the sound did not wake the engine"
        assert found.correlation > 0.99 and found.worst_window > 0.99, found
        assert abs(found.gain_db) < 0.5, found
        after = engine.status  # waking cost no dry output, no resync, no slip
        assert (after.dry_frames, after.resyncs, after.realignments) == \
            (before.dry_frames, before.resyncs, before.realignments), after
    finally:
        engine.close()


def test_idle_and_awake_again_many_times_without_a_slip(desktop, portaudio, random_model):
    # Short songs with pauses between them: every start wakes the output, every pause sends it
    # back to rest, and the audio stays exact throughout.
    engine, events = start_engine(lambda name: random_model)
    try:
        worst = []
        for round_ in range(3):
            assert wait_until(lambda: engine.status.idle, 15), f"not idle before round {round_}"
            song = band_limited_noise(0.6, seed=10 + round_)
            with recording() as rec:
                play_into("cable", song)
            worst.append(match(song, rec["audio"]).worst_window)
        assert engine._session.worker.idle_periods >= 3
        # Resting is not losing the device (PipeWire lists a corked stream attached to no sink:
        # taken for a vanished device, that reopened the session at every rest).
        assert not [e for e in events if getattr(e, "state", None) is EngineState.DEVICE_LOST], events
        assert max(worst) > 0.99 and sorted(worst)[1] > 0.98, worst
    finally:
        engine.close()
