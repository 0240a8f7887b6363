"""Audio devices: list host APIs and devices, pick one by name with the system default as
fallback, recognise virtual cables.

Devices are remembered by name (indexes change when devices come and go), per host API. On Linux
every PulseAudio/PipeWire source and sink is listed too, by its description (e.g. "Monitor of
WHAMSAH-Cable"): PortAudio only sees ALSA, so such a device is opened as the ALSA `pulse` device
with PULSE_SOURCE / PULSE_SINK naming the server's node (`open_environment()`); the pulse plugin
reads them when the stream is opened. That is how the engine records our own cable's monitor
without any ALSA configuration.

PortAudio lists devices once, when it is initialised: `list_devices(refresh=True)` re-initialises
it, which is only allowed while no stream is open (the controller makes sure).

Runs on the controller thread (and the CLI's); never on the audio thread.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

from whamsah_tray.engine import pulse
from whamsah_tray.errors import DeviceError, NoCableError

INPUT, OUTPUT = "input", "output"

# What to do when there is no virtual cable to record, per platform.
_NO_CABLE = {
    "linux": f"{NoCableError.PREFIX}: create one (tray menu: Create virtual cable, or "
             "`pactl load-module module-null-sink sink_name=whamsah_cable`) or choose an input",
    "win32": f"{NoCableError.PREFIX}: install VB-Cable (https://vb-audio.com/Cable/) and play the app into "
             "'CABLE Input', or choose an input",
    "darwin": f"{NoCableError.PREFIX}: install BlackHole 2ch (brew install blackhole-2ch) and make it the app's "
              "output, or choose an input",
}
# Substrings (case-insensitive) of the names of virtual cables we know.
VIRTUAL_CABLE_MARKERS = ("whamsah-cable", "whamsah_cable", "cable output", "vb-audio", "blackhole", "loopback")
# One cable's two ends share a family name: VB-Cable's "CABLE Input (VB-Audio Virtual Cable)" is
# played into and "CABLE Output (VB-Audio Virtual Cable)" records it; BlackHole is one device both
# ways; our cable is whamsah_cable and its monitor.
CABLE_FAMILIES = ("whamsah", "vb-audio", "blackhole", "loopback")
# Windows: PortAudio's default host API is MME (names cut to 31 characters, ~100 ms more latency);
# WASAPI in shared mode with auto-conversion (session._host_settings) is what the engine wants.
PREFERRED_HOST_APIS = {"win32": "Windows WASAPI"}


@dataclass(frozen=True)
class AudioDevice:
    name: str
    host_api: str
    index: int  # PortAudio device index (for a pulse node: that of the ALSA `pulse` device)
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    pulse_name: str | None = None  # the PulseAudio/PipeWire node this entry opens, if any

    @property
    def is_virtual_cable(self) -> bool:
        text = f"{self.name} {self.pulse_name or ''}".lower()
        return any(marker in text for marker in VIRTUAL_CABLE_MARKERS)

    @property
    def cable_family(self) -> str | None:
        """Which known cable this is an end of (see CABLE_FAMILIES), or None."""
        if not self.is_virtual_cable:
            return None
        text = f"{self.name} {self.pulse_name or ''}".lower()
        return next((family for family in CABLE_FAMILIES if family in text), "cable")

    def channels(self, kind: str) -> int:
        return self.max_input_channels if kind == INPUT else self.max_output_channels

    def open_environment(self, kind: str) -> dict[str, str]:
        """Environment variables to set while PortAudio opens this device."""
        if self.pulse_name is None:
            return {}
        return {"PULSE_SOURCE" if kind == INPUT else "PULSE_SINK": self.pulse_name}


@dataclass(frozen=True)
class DeviceList:
    host_apis: tuple[str, ...]
    default_host_api: str
    devices: tuple[AudioDevice, ...]
    default_input: dict[str, int]  # host API -> PortAudio index of its default input (-1: none)
    default_output: dict[str, int]

    def of_kind(self, kind: str, host_api: str | None = None) -> list[AudioDevice]:
        host_api = host_api or self.default_host_api
        return [d for d in self.devices if d.host_api == host_api and d.channels(kind) > 0]

    def inputs(self, host_api: str | None = None) -> list[AudioDevice]:
        return self.of_kind(INPUT, host_api)

    def outputs(self, host_api: str | None = None) -> list[AudioDevice]:
        return self.of_kind(OUTPUT, host_api)

    def virtual_cables(self, host_api: str | None = None) -> list[AudioDevice]:
        """Inputs that are known virtual cables, our own cable first."""
        cables = [d for d in self.inputs(host_api) if d.is_virtual_cable]
        return sorted(cables, key=lambda d: "whamsah" not in f"{d.name} {d.pulse_name}".lower())

    def default_device(self, kind: str, host_api: str | None = None) -> AudioDevice:
        """The system default of `kind`; for an output never a virtual cable (the installers'
        guides have users make the cable the system output: the engine would play into its own
        input), but the first other output instead."""
        host_api = host_api or self.default_host_api
        candidates = self.of_kind(kind, host_api)
        if kind == OUTPUT:
            candidates = [d for d in candidates if not d.is_virtual_cable]
        if not candidates:
            detail = " other than a virtual cable" if kind == OUTPUT and self.of_kind(kind, host_api) else ""
            raise DeviceError(f"no audio {kind} device{detail} on {host_api}")
        wanted = (self.default_input if kind == INPUT else self.default_output).get(host_api, -1)
        plain = [d for d in candidates if d.pulse_name is None]
        return next((d for d in plain if d.index == wanted), (plain or candidates)[0])

    def select(self, name: str | None, kind: str, host_api: str | None = None) -> tuple[AudioDevice, bool]:
        """The device called `name` (exact, then case-insensitive, then a unique substring match),
        else the fallback. Returns (device, True if `name` was given but not found).

        The fallback for an output is the system default. For an input it is a virtual cable
        (ours first), never the system default input: that is a microphone on a laptop (the tray
        would play the room through the speakers) or, on a machine without one, the monitor of
        the speakers (a loop). With no cable: NoCableError."""
        host_api = self.resolve_host_api(host_api)
        candidates = self.of_kind(kind, host_api)
        if name:
            found = _match(name, candidates)
            if found is not None:
                return found, False
        if kind == INPUT:
            cables = self.virtual_cables(host_api)
            if not cables:
                raise NoCableError(_NO_CABLE.get(sys.platform, _NO_CABLE["linux"]))
            return cables[0], bool(name)
        return self.default_device(kind, host_api), bool(name)

    def resolve_host_api(self, host_api: str | None) -> str:
        if not host_api:
            return self.default_host_api
        for known in self.host_apis:
            if known.lower() == host_api.lower():
                return known
        return self.default_host_api


def preferred_host_api(default_api: str, apis_with_devices: list[str], platform: str | None = None) -> str:
    """PREFERRED_HOST_APIS[platform] when it has devices, else PortAudio's default."""
    preferred = PREFERRED_HOST_APIS.get(platform or sys.platform)
    return preferred if preferred in apis_with_devices else default_api


def same_cable(input: AudioDevice, output: AudioDevice) -> bool:
    """Whether playing into `output` would feed `input`: two ends of one virtual cable."""
    family = input.cable_family
    return family is not None and family == output.cable_family


def _match(name: str, candidates: list[AudioDevice]) -> AudioDevice | None:
    for test in (lambda d: d.name == name, lambda d: d.pulse_name == name,
                 lambda d: d.name.lower() == name.lower()):
        found = [d for d in candidates if test(d)]
        if found:
            return found[0]
    partial = [d for d in candidates if name.lower() in d.name.lower()]
    return partial[0] if len(partial) == 1 else None


def _sounddevice():
    try:
        import sounddevice
    except OSError as error:  # the Linux wheel does not bundle PortAudio
        raise DeviceError(f"PortAudio is not installed ({error}); on Debian/Ubuntu: apt install libportaudio2") from error
    return sounddevice


# PortAudio is one per process: re-initialising it while any stream is open (another engine, a
# test's probe) would pull the devices from under that stream. Streams opened through
# session.py are counted here; the lock serialises re-initialising, opening and closing.
PORTAUDIO_LOCK = threading.RLock()
_open_streams = 0


def stream_opened() -> None:
    global _open_streams
    with PORTAUDIO_LOCK:
        _open_streams += 1


def stream_closed() -> None:
    global _open_streams
    with PORTAUDIO_LOCK:
        _open_streams = max(0, _open_streams - 1)


def refresh_portaudio() -> bool:
    """Re-initialises PortAudio so that it lists devices anew; skipped (False) while one of our
    streams is open. Raises DeviceError if PortAudio cannot be initialised again."""
    sd = _sounddevice()
    with PORTAUDIO_LOCK:
        if _open_streams:
            return False
        try:
            sd._terminate()
        except sd.PortAudioError:
            pass  # not initialised (an earlier initialisation failed): initialise below
        try:
            sd._initialize()
        except sd.PortAudioError as error:
            raise DeviceError(f"PortAudio could not list the audio devices: {error}") from error
    return True


def list_devices(refresh: bool = False) -> DeviceList:
    sd = _sounddevice()
    with PORTAUDIO_LOCK:
        if refresh:
            refresh_portaudio()
        try:
            host_apis = sd.query_hostapis()
            infos = sd.query_devices()
        except sd.PortAudioError as error:
            raise DeviceError(f"PortAudio could not list the audio devices: {error}") from error
    names = tuple(api["name"] for api in host_apis)
    devices = []
    for index, info in enumerate(infos):
        devices.append(AudioDevice(
            name=info["name"], host_api=names[info["hostapi"]], index=index,
            max_input_channels=info["max_input_channels"], max_output_channels=info["max_output_channels"],
            default_samplerate=info["default_samplerate"]))
    devices.extend(_pulse_nodes(devices))
    try:
        default_api = names[sd.default.hostapi] if sd.default.hostapi >= 0 else names[0]
    except (IndexError, sd.PortAudioError):
        default_api = names[0] if names else ""
    # Prefer a host API that has devices (on Linux OSS is listed but usually empty).
    if not any(d.host_api == default_api for d in devices):
        default_api = next((d.host_api for d in devices), default_api)
    default_api = preferred_host_api(default_api, [d.host_api for d in devices])
    return DeviceList(
        host_apis=names, default_host_api=default_api, devices=tuple(devices),
        default_input={api["name"]: api["default_input_device"] for api in host_apis},
        default_output={api["name"]: api["default_output_device"] for api in host_apis},
    )


def _pulse_nodes(devices: list[AudioDevice]) -> list[AudioDevice]:
    """PulseAudio/PipeWire sources and sinks, reachable through the ALSA `pulse` device."""
    if not sys.platform.startswith("linux"):
        return []
    plugin = next((d for d in devices if d.name == "pulse" and d.host_api == "ALSA"), None)
    if plugin is None or not pulse.available():
        return []
    try:
        sources, sinks = pulse.sources(), pulse.sinks()
    except DeviceError:
        return []
    taken = {d.name for d in devices}
    nodes = []
    for node, kind in [(s, INPUT) for s in sources] + [(s, OUTPUT) for s in sinks]:
        name = node.description if node.description not in taken else f"{node.description} ({node.name})"
        taken.add(name)
        nodes.append(AudioDevice(
            name=name, host_api="ALSA", index=plugin.index,
            max_input_channels=2 if kind == INPUT else 0, max_output_channels=2 if kind == OUTPUT else 0,
            default_samplerate=plugin.default_samplerate, pulse_name=node.name))
    return nodes
