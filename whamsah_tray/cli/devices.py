"""`whamsah-tray devices`: the host APIs and audio devices PortAudio sees, as a table.

Uses sounddevice directly (PortAudio's own listing); the engine's device logic is not needed to
print it. Runs on the main thread.
"""

from __future__ import annotations

import argparse

from whamsah_tray.errors import DeviceError

PORTAUDIO_HINT = (
    "install PortAudio (Debian/Ubuntu: apt-get install libportaudio2; "
    "the sounddevice wheels for Windows and macOS include it)"
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="list audio host APIs and devices",
        description="List the audio host APIs and the input/output devices PortAudio sees "
                    "(index, channels, default sample rate). '>' marks the default input, "
                    "'<' the default output, '*' both, per host API.",
    )
    parser.set_defaults(handler=run)


def _sounddevice():
    try:
        import sounddevice
    except OSError as error:  # the wheel does not bundle PortAudio on Linux
        raise DeviceError(f"PortAudio library not found ({error}); {PORTAUDIO_HINT}") from error
    return sounddevice


def format_device_table(host_apis, devices) -> list[str]:
    """Lines of the listing for sounddevice.query_hostapis() / query_devices() results."""
    lines = ["Host APIs:"]
    if not host_apis:
        lines.append("  (none)")
    for index, api in enumerate(host_apis):
        count = len(api["devices"])
        lines.append(f"  {index:>2}  {api['name']}  ({count} device{'s' if count != 1 else ''})")
    lines += ["", "Devices:", f"  {'':2}{'idx':>4}  {'in':>3}  {'out':>3}  {'rate':>7}  {'host API':<12} name"]
    if not devices:
        lines.append("  (none)")
    for index, device in enumerate(devices):
        api = host_apis[device["hostapi"]] if 0 <= device["hostapi"] < len(host_apis) else {}
        marks = ("> " if api.get("default_input_device") == index else "  ")
        if api.get("default_output_device") == index:
            marks = "* " if marks == "> " else "< "
        lines.append(
            f"  {marks}{index:>4}  {device['max_input_channels']:>3}  {device['max_output_channels']:>3}  "
            f"{device['default_samplerate']:>7.0f}  {api.get('name', '?'):<12} {device['name']}"
        )
    return lines


def format_server_table(sources, sinks) -> list[str]:
    """Lines for the sound server's sources and sinks (pulse.PulseNode), by description and name:
    `run`/`play` accept either as --input/--output, opened through the ALSA `pulse` device."""
    lines = ["", "Sound server (PulseAudio/PipeWire): --input/--output also accept these, by description or name:",
             f"  {'kind':<6}  {'description':<36} name"]
    for kind, nodes in (("input", sources), ("output", sinks)):
        lines += [f"  {kind:<6}  {node.description:<36} {node.name}" for node in nodes]
    return lines


def _server_nodes():
    """(sources, sinks) of the sound server on Linux, or None where there is none to ask."""
    import sys

    if not sys.platform.startswith("linux"):
        return None
    from whamsah_tray.engine import pulse

    if not pulse.available():
        return None
    try:
        return pulse.sources(), pulse.sinks()
    except DeviceError:
        return None


def run(args: argparse.Namespace) -> int:
    sounddevice = _sounddevice()
    try:
        host_apis = list(sounddevice.query_hostapis())
        devices = list(sounddevice.query_devices())
    except sounddevice.PortAudioError as error:
        raise DeviceError(f"PortAudio could not list devices: {error}") from error
    lines = format_device_table(host_apis, devices)
    nodes = _server_nodes()
    if nodes is not None:
        lines += format_server_table(*nodes)
    print("\n".join(lines))
    return 0
