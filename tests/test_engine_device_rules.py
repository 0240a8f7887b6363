"""Which devices the engine picks and refuses, on device lists as Windows and macOS show them.
PortAudio on this Linux machine cannot list WASAPI, MME or CoreAudio devices, so these lists are
written by hand from the names those systems give (VB-Cable, BlackHole): a stand-in for the real
listing, which the Linux tests exercise through PortAudio itself."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from whamsah_tray.engine.devices import (INPUT, OUTPUT, AudioDevice, DeviceList, preferred_host_api,
                                         same_cable)
from whamsah_tray.engine.session import LiveSession
from whamsah_tray.errors import DeviceError

WASAPI, MME = "Windows WASAPI", "MME"


def _device(index, name, api=WASAPI, inputs=0, outputs=2):
    return AudioDevice(name=name, host_api=api, index=index, max_input_channels=inputs,
                       max_output_channels=outputs, default_samplerate=48000.0)


def _windows(default_output: int) -> DeviceList:
    devices = (
        _device(0, "CABLE Input (VB-Audio Virtual Cable)"),  # apps play into this end
        _device(1, "CABLE Output (VB-Audio Virtual Cable)", inputs=2, outputs=0),  # the engine records this one
        _device(2, "Speakers (Realtek(R) Audio)"),
        _device(3, "Microphone (Realtek(R) Audio)", inputs=2, outputs=0),
        _device(4, "CABLE Input (VB-Audio Virtual C", api=MME),
        _device(5, "Speakers (Realtek(R) Audio)", api=MME),
    )
    return DeviceList(host_apis=(MME, WASAPI), default_host_api=WASAPI, devices=devices,
                      default_input={WASAPI: 3, MME: -1}, default_output={WASAPI: default_output, MME: 4})


def test_the_output_never_falls_back_to_the_cable_the_user_made_the_system_output():
    # install.ps1's guide has the user make VB-Cable the system output (so apps play into it).
    devices = _windows(default_output=0)
    chosen, missing = devices.select(None, OUTPUT)
    assert chosen.name == "Speakers (Realtek(R) Audio)" and not missing
    assert devices.select("Headphones", OUTPUT)[0].name == "Speakers (Realtek(R) Audio)"  # a vanished name too
    assert devices.select(None, OUTPUT, MME)[0].name == "Speakers (Realtek(R) Audio)"
    assert devices.select(None, INPUT)[0].name == "CABLE Output (VB-Audio Virtual Cable)"


def test_with_only_cables_to_play_into_there_is_no_output_rather_than_a_loop():
    devices = DeviceList(host_apis=("Core Audio",), default_host_api="Core Audio",
                         devices=(_device(0, "BlackHole 2ch", api="Core Audio", inputs=2),),
                         default_input={"Core Audio": 0}, default_output={"Core Audio": 0})
    with pytest.raises(DeviceError, match="other than a virtual cable"):
        devices.select(None, OUTPUT)


def test_two_ends_of_one_cable_are_refused_as_a_feedback_loop():
    vb_in, vb_out = _device(0, "CABLE Input (VB-Audio Virtual Cable)"), \
        _device(1, "CABLE Output (VB-Audio Virtual Cable)", inputs=2, outputs=0)
    blackhole = _device(2, "BlackHole 2ch", api="Core Audio", inputs=2)
    speakers = _device(3, "Speakers (Realtek(R) Audio)")
    assert same_cable(vb_out, vb_in) and same_cable(blackhole, blackhole)
    assert not same_cable(vb_out, speakers) and not same_cable(blackhole, vb_in)
    session = SimpleNamespace(input=vb_out, output=vb_in, server_nodes={})
    assert "feedback loop" in LiveSession._feedback_loop(session)
    assert LiveSession._feedback_loop(SimpleNamespace(input=vb_out, output=speakers, server_nodes={})) is None


def test_wasapi_is_preferred_to_mme_on_windows_only():
    assert preferred_host_api(MME, [MME, WASAPI], platform="win32") == WASAPI
    assert preferred_host_api(MME, [MME], platform="win32") == MME  # no WASAPI device: keep the default
    assert preferred_host_api("ALSA", ["ALSA"], platform="linux") == "ALSA"
