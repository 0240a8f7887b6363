"""`whamsah-tray --version`, `devices` and `models`."""

from __future__ import annotations

import builtins

import pytest

import whamsah_tray
from conftest import TEST_MODEL, run_cli
from whamsah_tray.cli import devices as devices_command
from whamsah_tray.cli import main


def test_version():
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"whamsah-tray {whamsah_tray.__version__}"


def test_help_lists_the_commands():
    done = run_cli("--help")
    assert done.returncode == 0
    for command in ("separate", "devices", "models"):
        assert command in done.stdout


def test_devices_lists_the_null_sinks(portaudio, desktop):
    done = run_cli("devices")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("ALSA" in line for line in lines[: lines.index("Devices:")])
    table = lines[lines.index("Devices:") + 2:]
    table = table[:table.index("")] if "" in table else table
    rows = {line.split()[-1]: line for line in table}
    for name in (desktop.cable, desktop.cable_monitor, desktop.speakers, desktop.speakers_monitor):
        assert name in rows, done.stdout
    # Index, input and output channel counts, default rate: as PortAudio reports them.
    index = [device["name"] for device in portaudio.query_devices()].index(desktop.speakers)
    fields = rows[desktop.speakers].lstrip("<>* ").split()
    device = portaudio.query_devices(index)
    assert fields[:4] == [str(index), str(device["max_input_channels"]),
                          str(device["max_output_channels"]), f"{device['default_samplerate']:.0f}"]
    # The sound server's sources and sinks, which `run --input/--output` accept by description
    # or name, are listed too: the cable's monitor as an input, the speakers as an output.
    server = lines[next(i for i, line in enumerate(lines) if line.startswith("Sound server")) + 2:]
    assert any(line.split()[0] == "input" and line.split()[-1] == "cable.monitor" for line in server), done.stdout
    assert any(line.split()[0] == "output" and line.split()[-1] == "speakers" for line in server), done.stdout


def test_devices_without_portaudio_says_what_to_install(monkeypatch, capsys):
    # Mock: PortAudio is installed here, so its absence is simulated the way sounddevice reports
    # it (OSError at import time).
    real_import = builtins.__import__

    def import_without_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", import_without_portaudio)
    assert main(["devices"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "libportaudio2" in error[0]


def test_device_table_marks_defaults():
    host_apis = [{"name": "ALSA", "devices": [0, 1], "default_input_device": 0, "default_output_device": 1}]
    devices = [
        {"name": "mic", "hostapi": 0, "max_input_channels": 2, "max_output_channels": 0, "default_samplerate": 48000.0},
        {"name": "out", "hostapi": 0, "max_input_channels": 0, "max_output_channels": 2, "default_samplerate": 44100.0},
    ]
    lines = devices_command.format_device_table(host_apis, devices)
    assert lines[-2].split() == [">", "0", "2", "0", "48000", "ALSA", "mic"]
    assert lines[-1].split() == ["<", "1", "0", "2", "44100", "ALSA", "out"]


def test_models_lists_installed_manifests_with_figures(untrained_model_installed):
    done = run_cli("models", extra_env=untrained_model_installed)
    assert done.returncode == 0, done.stderr
    assert TEST_MODEL in done.stdout
    assert "vocals_cSDR_dB" in done.stdout and "-9.5" in done.stdout
    assert "latency" in done.stdout and "44100 Hz" in done.stdout


def test_models_reports_the_shipped_models():
    from whamsah_tray.separation import list_models

    done = run_cli("models")
    assert done.returncode == 0, done.stderr
    installed = list_models()
    if not installed:
        assert "No models installed" in done.stdout
    for info in installed:
        assert info.name in done.stdout


@pytest.mark.parametrize("argv", [["separate"], ["separate", "x.wav"], ["nonsense"]])
def test_usage_errors_exit_2(argv):
    done = run_cli(*argv)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "usage:" in done.stderr
