"""The silent-cable warning (engine/silent_cable.py): a cable input that records exact zeros for
10 s while the OS says an app plays into the cable.

ZeroWatch runs on a simulated clock: blocks of audio fed as the worker reads them, the decider
polled as the controller ticks. The Windows and macOS probes cannot run here: their OS calls are
replaced at the seam each takes (the list of WASAPI render endpoints with their meters; the
CoreAudio HAL properties), and the rules above that seam run for real.
"""

from __future__ import annotations

import ctypes
import struct
import sys

import numpy as np
import pytest

from whamsah_tray.engine import silent_cable
from whamsah_tray.engine.silent_cable import (
    MESSAGE_LIMIT, RECHECK_MAX_S, RECHECK_S, ZERO_RUN_S, RenderEndpoint, ZeroWatch, cable_client_playing,
    silent_cable_message,
)

RATE = 48000
BLOCK = 480  # 10 ms
SILENCE = np.zeros((BLOCK, 2), dtype=np.float32)
SOUND = np.full((BLOCK, 2), 0.1, dtype=np.float32)


def _run(watch, blocks, confirm=None, poll_every=1) -> list[float]:
    """Feed `blocks` (arrays) as the worker would and poll every `poll_every` blocks as the
    controller would; the stream times (s, at the end of the block) at which the watch fired."""
    fired = []
    for index, block in enumerate(blocks):
        watch.observe(len(block), all_zero=not block.any())
        if (index + 1) % poll_every == 0 and watch.poll(confirm):
            fired.append(round(watch._counts[0] / RATE, 3))  # frames seen since the stream's start
    return fired


def _seconds(block, seconds: float) -> list[np.ndarray]:
    return [block] * round(seconds * RATE / BLOCK)


def test_ten_seconds_of_exact_zeros_fire_once_not_before():
    watch = ZeroWatch(RATE)
    assert _run(watch, _seconds(SILENCE, 9.99)) == []
    assert watch.zero_s == pytest.approx(9.99)
    assert _run(watch, _seconds(SILENCE, 0.01)) == [10.0]
    # the same run of zeros goes on: told once
    assert _run(watch, _seconds(SILENCE, 60.0)) == []


def test_a_single_block_with_sound_starts_the_count_again():
    watch = ZeroWatch(RATE)
    blocks = _seconds(SILENCE, 9.0) + [SOUND] + _seconds(SILENCE, 9.99)
    assert _run(watch, blocks) == []
    assert watch.zero_s == pytest.approx(9.99)
    assert _run(watch, _seconds(SILENCE, 0.01)) == [19.01]  # 10 s after the block with sound


def test_a_new_run_of_zeros_is_told_again():
    watch = ZeroWatch(RATE)
    blocks = _seconds(SILENCE, 12.0) + _seconds(SOUND, 3.0) + _seconds(SILENCE, 10.0)
    assert _run(watch, blocks) == [10.0, 25.0]


def test_sound_never_fires_and_any_non_zero_sample_is_sound():
    """Dither or a denormal is not the exact zeros of a blocked capture; -0.0 is."""
    whisper = SILENCE.copy()
    whisper[100, 1] = 1e-38
    negative_zero = np.full((BLOCK, 2), -0.0, dtype=np.float32)
    assert _run(ZeroWatch(RATE), [whisper] * 3000) == []
    assert _run(ZeroWatch(RATE), [negative_zero] * 1000) == [10.0]


def test_polled_at_the_controller_tick_it_fires_at_the_first_tick_past_ten_seconds():
    watch = ZeroWatch(RATE)
    assert _run(watch, _seconds(SILENCE, 20.0), poll_every=70) == [10.5]  # ticks every 0.7 s


def test_the_scenarios_fail_a_watch_that_does_not_restart_on_sound():
    """The scenarios above can fail: a watch that counts zero blocks without starting again on a
    block with sound (or that fires on every poll) is caught by them."""

    class CountsZeroBlocks(ZeroWatch):
        def observe(self, frames, all_zero):
            if all_zero:
                super().observe(frames, True)

    class FiresEveryPoll(ZeroWatch):
        def poll(self, confirm=None):
            return self.zero_s >= ZERO_RUN_S

    restarting = _seconds(SILENCE, 9.0) + [SOUND] + _seconds(SILENCE, 9.0)
    assert _run(CountsZeroBlocks(RATE), restarting) != []
    assert len(_run(FiresEveryPoll(RATE), _seconds(SILENCE, 11.0))) > 1


def test_the_os_is_asked_at_ten_seconds_and_again_while_it_says_no():
    asked: list[float] = []
    answers = [False, None, True]
    watch = ZeroWatch(RATE)

    def confirm():
        asked.append(round(watch.zero_s, 3))
        return answers[len(asked) - 1]

    assert _run(watch, _seconds(SILENCE, 60.0), confirm=confirm) == [10.0 + 3 * RECHECK_S]
    # RECHECK_S after the first "no", twice that after the second; not again once told
    assert asked == [10.0, 10.0 + RECHECK_S, 10.0 + 3 * RECHECK_S]


def test_the_questions_space_out_to_recheck_max_while_nobody_plays():
    """A tray waiting all day in silence asks the OS every RECHECK_MAX_S, not every tick."""
    asked: list[float] = []
    watch = ZeroWatch(RATE)

    def nobody_plays():
        asked.append(round(watch.zero_s, 3))
        return False

    assert _run(watch, _seconds(SILENCE, 200.0), confirm=nobody_plays, poll_every=50) == []
    gaps = np.diff(asked)
    assert asked[0] == ZERO_RUN_S and gaps[0] == RECHECK_S
    assert list(gaps[:4]) == [5.0, 10.0, 20.0, RECHECK_MAX_S] and set(gaps[3:]) == {RECHECK_MAX_S}
    # sound, then silence again: the next run starts at the first question once more
    assert _run(watch, [SOUND] + _seconds(SILENCE, 10.0), confirm=nobody_plays) == []
    assert asked[-1] == ZERO_RUN_S


def test_an_os_that_cannot_tell_never_fires():
    """Linux's answer (None): the warning never shows."""
    assert _run(ZeroWatch(RATE), _seconds(SILENCE, 60.0), confirm=lambda: None) == []


def test_the_callback_counters_feed_the_same_decision():
    """The controller tick's way in: the callback's frames received and the position at the end
    of its last block with sound."""
    watch = ZeroWatch(RATE)
    watch.update(position=RATE * 30, sound_until=RATE * 21)
    assert not watch.poll() and watch.zero_s == pytest.approx(9.0)
    watch.update(position=RATE * 31, sound_until=RATE * 21)
    assert watch.poll() and not watch.poll()
    watch.update(position=RATE * 42 - 1, sound_until=RATE * 32)  # sound at 32 s: a new run
    assert not watch.poll()
    watch.update(position=RATE * 42, sound_until=RATE * 32)
    assert watch.poll()
    watch.update(position=RATE * 50, sound_until=RATE * 51)  # read out of order: never negative
    assert watch.zero_s == 0.0 and not watch.poll()


# --- the OS probes ------------------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux answer")
def test_linux_cannot_tell():
    """Our cable's monitor cannot be blocked: its zeros are what the apps send."""
    assert cable_client_playing("Monitor of WHAMSAH-Cable") is None
    assert cable_client_playing("CABLE Output (VB-Audio Virtual Cable)") is None


RENDER_ENDPOINTS = [
    RenderEndpoint("Speakers (Realtek(R) Audio)", 0.6, False),
    RenderEndpoint("CABLE Input (VB-Audio Virtual Cable)", 0.3, False),
    RenderEndpoint("CABLE-A Input (VB-Audio Cable A)", 0.0, False),
    RenderEndpoint("VoiceMeeter Input (VB-Audio VoiceMeeter VAIO)", 0.0, False),
    RenderEndpoint("Line 1 (Virtual Audio Cable)", 0.2, False),
]


def _wasapi(endpoints, asked: list | None = None):
    """Stands in for the COM enumeration: the endpoints whose name the probe wants."""
    def read(wanted):
        chosen = [endpoint for endpoint in endpoints if wanted(endpoint.name)]
        if asked is not None:
            asked.extend(endpoint.name for endpoint in chosen)
        return chosen
    return read


@pytest.mark.parametrize("capture, render", [
    ("CABLE Output (VB-Audio Virtual Cable)", "CABLE Input (VB-Audio Virtual Cable)"),
    ("CABLE Output (VB-Audio Virtual ", "CABLE Input (VB-Audio Virtual Cable)"),  # MME: cut to 31
    ("cable-a output (VB-Audio Cable A)", "CABLE-A Input (VB-Audio Cable A)"),
    ("VoiceMeeter Output (VB-Audio VoiceMeeter VAIO)", "VoiceMeeter Input (VB-Audio VoiceMeeter VAIO)"),
    ("Line 1 (Virtual Audio Cable)", "Line 1 (Virtual Audio Cable)"),  # VAC: one name both ways
])
def test_windows_meters_the_render_end_of_the_recorded_cable(capture, render):
    """mocked: WASAPI cannot run here; the name matching and the verdict run for real."""
    asked: list = []
    silent_cable._windows_client_playing(capture, _wasapi(RENDER_ENDPOINTS, asked))
    assert asked == [render]


def test_windows_sound_going_in_is_a_client_playing_silence_or_a_mute_is_not():
    """mocked: WASAPI cannot run here. A peak above 0 on CABLE Input: an app sends sound; 0 (a
    paused player holding its stream) or a muted endpoint: the zeros are no fault."""
    probe = silent_cable._windows_client_playing
    capture = "CABLE Output (VB-Audio Virtual Cable)"
    assert probe(capture, _wasapi([RenderEndpoint("CABLE Input (VB-Audio Virtual Cable)", 0.3, False)])) is True
    assert probe(capture, _wasapi([RenderEndpoint("CABLE Input (VB-Audio Virtual Cable)", 0.0, False)])) is False
    assert probe(capture, _wasapi([RenderEndpoint("CABLE Input (VB-Audio Virtual Cable)", 0.3, True)])) is False
    assert probe("CABLE-A Output (VB-Audio Cable A)", _wasapi(RENDER_ENDPOINTS)) is False


def test_windows_cannot_tell_for_a_microphone_or_when_com_fails():
    """mocked: WASAPI cannot run here."""
    def com_fails(wanted):
        raise OSError(-2147221164, "Class not registered")

    assert silent_cable._windows_client_playing("Microphone (USB Audio Device)", _wasapi(RENDER_ENDPOINTS)) is None
    assert silent_cable._windows_client_playing("CABLE Output (VB-Audio Virtual Cable)", com_fails) is None


def test_on_windows_the_probe_asks_wasapi(monkeypatch):
    """mocked: sys.platform says win32 and the COM enumeration is a stand-in."""
    monkeypatch.setattr(silent_cable.sys, "platform", "win32")
    monkeypatch.setattr(silent_cable, "_wasapi_render_endpoints", _wasapi(RENDER_ENDPOINTS))
    assert cable_client_playing("CABLE Output (VB-Audio Virtual Cable)") is True


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_a_device_that_is_no_cable_gets_no_answer(monkeypatch, platform):
    """mocked: sys.platform and the OS calls are stand-ins. A headset's microphone and speakers
    share a name: music on the speakers says nothing about the microphone's zeros."""
    headset = "Headset (USB Audio)"
    monkeypatch.setattr(silent_cable.sys, "platform", platform)
    monkeypatch.setattr(silent_cable, "_wasapi_render_endpoints", _wasapi([RenderEndpoint(headset, 0.5, False)]))
    monkeypatch.setattr(silent_cable, "_CoreAudioHal", lambda: FakeHal({901: (321, True, [7])}, devices=[(7, headset)]))
    # what the guard keeps out: below it, the OS would say "playing"
    probe = silent_cable._windows_client_playing if platform == "win32" else silent_cable._macos_client_playing
    assert probe(headset) is True
    assert cable_client_playing(headset) is None


def test_the_com_structures_have_the_windows_layout():
    """What can be checked here of the COM side: the structures' sizes and offsets as a 64-bit
    Windows lays them out, and the GUIDs' bytes."""
    if struct.calcsize("P") == 8:
        assert ctypes.sizeof(silent_cable._PropVariant) == 24
    assert silent_cable._PropVariant.pointer.offset == 8
    assert ctypes.sizeof(silent_cable._PropertyKey) == 20
    guid = silent_cable._guid("BCDE0395-E52F-467C-8E3D-C4579291692E")
    assert (guid.data1, guid.data2, guid.data3, bytes(guid.data4)) == (
        0xBCDE0395, 0xE52F, 0x467C, bytes.fromhex("8E3DC4579291692E"))


BLACKHOLE, SPEAKERS = 71, 55
OWN_PID = 4242


class FakeHal:
    """Stands in for CoreAudio's HAL: processes (object -> (pid, running output, output devices))."""

    def __init__(self, processes, devices=((BLACKHOLE, "BlackHole 2ch"), (SPEAKERS, "MacBook Pro Speakers")),
                 has_process_list=True, fails=False):
        self.processes = processes
        self._devices = list(devices)
        self.has_process_list = has_process_list
        self.fails = fails

    def process_objects(self):
        if self.fails:
            raise OSError(560947818, "AudioObjectGetPropertyData failed")  # '!obj'
        return list(self.processes) if self.has_process_list else None

    def devices(self):
        return self._devices

    def pid(self, process):
        return self.processes[process][0]

    def is_running_output(self, process):
        return self.processes[process][1]

    def output_devices(self, process):
        return self.processes[process][2]


def _macos(hal, name="BlackHole 2ch"):
    return silent_cable._macos_client_playing(name, hal, own_pid=OWN_PID)


def test_macos_another_process_playing_into_blackhole_is_a_client():
    """mocked: CoreAudio cannot run here; the HAL's answers are a stand-in."""
    assert _macos(FakeHal({900: (OWN_PID, True, [SPEAKERS]), 901: (321, True, [BLACKHOLE])})) is True
    assert _macos(FakeHal({901: (321, True, [BLACKHOLE])}), name="blackhole 2CH") is True


def test_macos_our_own_process_is_never_the_client():
    """mocked: CoreAudio cannot run here. The tray itself running output on the cable (a loop the
    engine refuses anyway) proves nothing about the apps."""
    assert _macos(FakeHal({900: (OWN_PID, True, [BLACKHOLE, SPEAKERS])})) is False


def test_macos_no_process_running_output_on_blackhole_is_no_client():
    """mocked: CoreAudio cannot run here."""
    hal = FakeHal({901: (321, True, [SPEAKERS]), 902: (322, False, [BLACKHOLE])})
    assert _macos(hal) is False


def test_macos_cannot_tell_before_14_2_for_an_unknown_device_or_when_the_hal_refuses():
    """mocked: CoreAudio cannot run here."""
    playing = {901: (321, True, [BLACKHOLE])}
    assert _macos(FakeHal(playing, has_process_list=False)) is None
    assert _macos(FakeHal(playing), name="Loopback Audio") is None
    assert _macos(FakeHal(playing, fails=True)) is None


def test_on_macos_the_probe_asks_coreaudio(monkeypatch):
    """mocked: sys.platform says darwin and the HAL is a stand-in."""
    monkeypatch.setattr(silent_cable.sys, "platform", "darwin")
    monkeypatch.setattr(silent_cable, "_CoreAudioHal", lambda: FakeHal({901: (321, True, [BLACKHOLE])}))
    assert cable_client_playing("BlackHole 2ch") is True


def test_the_hal_property_bytes_are_read_as_coreaudio_writes_them():
    """mocked: the HAL's raw property data, as native-endian UInt32 / pid_t values."""
    hal = object.__new__(silent_cable._CoreAudioHal)
    data = {silent_cable._PROCESS_DEVICES: struct.pack("=3I", 71, 55, 9),
            silent_cable._PROCESS_PID: struct.pack("=i", 321),
            silent_cable._PROCESS_IS_RUNNING_OUTPUT: struct.pack("=I", 1)}
    hal._read = lambda target, selector, scope=silent_cable._SCOPE_GLOBAL: data[selector]
    assert hal.output_devices(901) == [71, 55, 9]
    assert hal.pid(901) == 321 and hal.is_running_output(901) is True


def test_the_hal_is_not_there_off_macos():
    if sys.platform == "darwin":
        pytest.skip("this is macOS")
    assert silent_cable._macos_client_playing("BlackHole 2ch") is None  # CDLL fails: cannot tell


# --- the message --------------------------------------------------------------------------------
@pytest.mark.parametrize("platform, must_say", [
    ("darwin", "Privacy & Security ▸ Microphone"),
    ("win32", "Let desktop apps access your microphone"),
    ("linux", "not muted"),
])
@pytest.mark.parametrize("device", ["BlackHole 2ch", "CABLE Output (VB-Audio Virtual Cable)", "X" * 300])
def test_the_message_says_what_to_switch_on_within_windows_limit(platform, must_say, device):
    message = silent_cable_message(device, platform)
    assert must_say in message
    assert len(message) <= MESSAGE_LIMIT == 255
    assert device[:20] in message
