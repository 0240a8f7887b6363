"""The profile's [audio] latency = "auto" | "low" | "balanced" | "safe": how much buffering the
engine runs with (auto: the margin adapts, see test_engine_core's adaptive-margin tests). Through real devices (the headless desktop's null sinks): each preset plays the input
through exactly, and the latency the engine reports grows from low to safe."""

from __future__ import annotations

import pytest

from engine_audio import band_limited_noise, match, play_into, recording
from test_engine_sync import start_engine
from whamsah_tray.app.engine_link import EngineLink
from whamsah_tray.app.profile import Profile, profile_from_document
from whamsah_tray.engine.session import LATENCY_PRESETS, StreamSettings, stream_settings_for
from whamsah_tray.separation import create_untrained_model


def test_the_profile_names_a_preset_and_the_engine_gets_its_buffers():
    profile, warnings = profile_from_document({"schema_version": 1, "audio": {"latency": "safe"}})
    assert profile.audio.latency == "safe" and not warnings
    settings = EngineLink(profile)._settings()
    assert settings.stream == StreamSettings(**LATENCY_PRESETS["safe"])
    assert EngineLink(Profile())._settings().stream == StreamSettings()  # balanced: the defaults
    assert StreamSettings().adaptive_margin_s == 0  # balanced, pinned
    assert stream_settings_for("auto").adaptive_margin_s > 0
    assert all(stream_settings_for(name).adaptive_margin_s == 0 for name in ("low", "balanced", "safe"))
    profile, warnings = profile_from_document({"schema_version": 1, "audio": {"latency": "instant"}})
    assert profile.audio.latency == "balanced" and "not one of auto, low, balanced, safe" in warnings[0]


@pytest.fixture(scope="module")
def random_model():
    return create_untrained_model("whamsah-rt", seed=0)


def test_each_preset_plays_the_input_through_and_safe_waits_longer_than_low(desktop, portaudio, random_model):
    latency = {}
    for preset in ("low", "safe"):
        engine, _ = start_engine(lambda name: random_model, stream=stream_settings_for(preset))
        try:
            latency[preset] = engine.status.latency_ms
            reference = band_limited_noise(1.5, seed=4)
            best = None
            for _ in range(3):
                with recording() as rec:
                    play_into("cable", reference)
                found = match(reference, rec["audio"])
                best = found if best is None or found.worst_window > best.worst_window else best
                if best.worst_window > 0.99:
                    break
            assert best.correlation > 0.99 and best.worst_window > 0.99, (preset, best)
        finally:
            engine.close()
    # safe's buffers and margin are 95 ms longer than low's (LATENCY_PRESETS)
    print("reported latency (ms):", latency)
    assert latency["safe"] - latency["low"] > 60, latency
