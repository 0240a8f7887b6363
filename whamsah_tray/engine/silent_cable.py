"""A cable input that delivers nothing but exact zeros while an app plays into the cable.

macOS counts every input device as a microphone, BlackHole included: a tray started by launchd
without the microphone grant opens its stream and records pure digital zeros while it says
"running". Windows does the same to WASAPI capture when "Let desktop apps access your
microphone" is off. Both look like a song with no sound in it. So: when the input has been exact
zeros for ZERO_RUN_S and the OS says that some other app is sending sound into the cable, the
user is told what to switch on (`silent_cable_message`).

Two parts:
- `ZeroWatch` decides "exact zeros for ZERO_RUN_S, told once per run of zeros". It counts audio
  frames, not wall time: the decision is the same however late its feeder runs.
- `cable_client_playing(device_name)` asks the OS whether another app sends sound into the cable:
  True / False where it can tell, None where it cannot. Linux always answers None (see
  `cable_client_playing`), so the warning never shows there.

Threads (none of this runs on the audio thread):
- feeder, one of:
  - the inference worker, per block it reads: `observe(frames, all_zero=not block.any())` (it
    already tests each block for digital silence to go idle), or
  - the controller tick: `update(callback.position, callback.sound_until)`, where the input
    callback keeps `sound_until` = the frame position at the end of its last block with a
    non-zero sample (one `indata.any()`, which returns numpy's shared True/False objects, and one
    int store: no allocation, no lock).
- decider: the controller tick, `poll(confirm)` with
  `confirm=lambda: cable_client_playing(device_name)`. The probe is a COM or CoreAudio query of a
  few milliseconds: it belongs on the controller, not on the worker, which would hold up the mix.
The feeder publishes its two counters as one tuple (one attribute store, atomic under the GIL);
`poll`'s own state is touched only by the decider's thread.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import sys
import uuid
from dataclasses import dataclass
from typing import Callable, Protocol

from whamsah_tray.engine.devices import VIRTUAL_CABLE_MARKERS

ZERO_RUN_S = 10.0  # this long of exact zeros before the OS is asked
# While zeros last and the OS says nobody plays into the cable, it is asked again (an app may start
# playing later in the run): RECHECK_S of audio after the first "no", then twice as long after each
# further one, up to RECHECK_MAX_S. The silence of a tray that waits all day with nothing playing
# is such a run: a COM or CoreAudio query of a few milliseconds every RECHECK_MAX_S (120 an hour)
# keeps it off the idle CPU figure, and a blocked capture is still told within RECHECK_MAX_S of
# an app starting to play.
RECHECK_S = 5.0
RECHECK_MAX_S = 30.0
# Windows shows no notification at all past 255 characters (app/notifications.py: WINDOWS_LIMITS).
MESSAGE_LIMIT = 255
_NAME_LIMIT = 48  # a device name longer than this is cut in the message (the limit above)
_MME_NAME_LENGTH = 31  # Windows MME device names: cut to MAXPNAMELEN (32) less the NUL


class ZeroWatch:
    """Exact zeros on the cable input for `after_s`, told once per run of zeros.

    A run of zeros starts at the end of the last block that had a non-zero sample (or at the
    stream's start) and ends at the next such block, however quiet: any sample other than 0.0 /
    -0.0 (dither, a denormal) ends it. A blocked capture delivers exact zeros; an app playing quiet
    audio does not. One watch per input stream (positions start at 0 with the stream).
    """

    def __init__(self, sample_rate: int, after_s: float = ZERO_RUN_S, recheck_s: float = RECHECK_S,
                 recheck_max_s: float = RECHECK_MAX_S) -> None:
        self.sample_rate = sample_rate
        self._after = max(1, round(after_s * sample_rate))
        self._recheck = max(1, round(recheck_s * sample_rate))
        self._recheck_max = max(self._recheck, round(recheck_max_s * sample_rate))
        # (frames seen, position where the current run of zeros began): written by the feeder only,
        # as one tuple so that the decider never reads a position from one block and a run start
        # from another.
        self._counts = (0, 0)
        # The decider's own state.
        self._episode: int | None = None  # the run start of the run being judged
        self._told = False  # this run has been reported
        self._ask_at = self._after  # run length (frames) at which to ask the OS (again)
        self._wait = self._recheck  # frames from a "no" to the next question

    # --- feeder (worker or controller) ---------------------------------------------------------
    def observe(self, frames: int, all_zero: bool) -> None:
        """One block of `frames` frames read from the input; all_zero: not a single non-zero sample."""
        seen, run_start = self._counts
        seen += frames
        self._counts = (seen, run_start if all_zero else seen)

    def update(self, position: int, sound_until: int) -> None:
        """The input callback's counters: frames received, and the position at the end of its last
        block with a non-zero sample. Read sound_until first, then position: both only grow, so
        the run is never negative (it is clamped anyway)."""
        self._counts = (position, min(sound_until, position))

    # --- decider (controller tick) -------------------------------------------------------------
    @property
    def zero_s(self) -> float:
        """How long the input has been exact zeros, in seconds of audio."""
        seen, run_start = self._counts
        return max(0, seen - run_start) / self.sample_rate

    def poll(self, confirm: Callable[[], bool | None] | None = None) -> bool:
        """True once per run of zeros, when it has lasted `after_s` and `confirm()` (the OS: does an
        app play into the cable?) answers True; None for `confirm` means no question. After a
        False or None answer the question comes again `recheck_s` of audio later, then at doubling
        intervals up to `recheck_max_s`, while the run lasts."""
        seen, run_start = self._counts
        if run_start != self._episode:  # a non-zero block since: a new run of zeros
            self._episode, self._told = run_start, False
            self._ask_at, self._wait = self._after, self._recheck
        run = seen - run_start
        if self._told or run < self._ask_at:
            return False
        if confirm is None or confirm() is True:
            self._told = True
            return True
        self._ask_at = run + self._wait
        self._wait = min(2 * self._wait, self._recheck_max)
        return False


# --- does the OS say that an app plays into the cable? -------------------------------------------
def cable_client_playing(device_name: str) -> bool | None:
    """Whether an app other than ours is sending sound into the cable whose recording end is
    `device_name` (a PortAudio input name): True / False where the OS can tell, None where it
    cannot (never raises: an OS that will not answer is "cannot tell").

    - Windows: the peak meter of the cable's render endpoint ("CABLE Input" for "CABLE Output").
    - macOS 14.2 and later: CoreAudio's list of processes running output on the cable device;
      older macOS has no such list: None.
    - Linux: None. Our cable is a PulseAudio/PipeWire null sink and we record its monitor, which
      no privacy setting can block: zeros there are exactly what the apps send (paused, or
      playing silence), so a warning would be a false alarm. The same holds for any other
      platform PortAudio runs on.

    A device that is no virtual cable gets None everywhere: a headset's microphone and its
    speakers share a name, and music playing on the speakers says nothing about why the
    microphone records zeros.

    Runs on the controller thread; takes a few milliseconds.
    """
    if not _is_cable(device_name):
        return None
    if sys.platform == "win32":
        return _windows_client_playing(device_name)
    if sys.platform == "darwin":
        return _macos_client_playing(device_name)
    return None


def _is_cable(device_name: str) -> bool:
    # The engine's own notion of a cable, plus Virtual Audio Cable ("Line 1 (Virtual Audio
    # Cable)"), whose two ends the Windows probe can pair.
    name = device_name.lower()
    return any(marker in name for marker in VIRTUAL_CABLE_MARKERS + ("virtual audio cable",))


# --- Windows: the render endpoint's peak meter ---------------------------------------------------
@dataclass(frozen=True)
class RenderEndpoint:
    """One WASAPI render endpoint, as read through COM."""

    name: str  # PKEY_Device_FriendlyName, e.g. "CABLE Input (VB-Audio Virtual Cable)"
    peak: float  # IAudioMeterInformation::GetPeakValue: 0.0-1.0 over the last device period
    silenced: bool  # muted, or its volume at 0: the cable then carries zeros by the user's choice


def _render_names(capture_name: str) -> Callable[[str], bool]:
    """Which render endpoints feed the capture endpoint `capture_name`.

    VB-Audio names a cable's two ends "<X> Input (<family>)" (played into) and "<X> Output
    (<family>)" (recorded): CABLE, CABLE-A, Hi-Fi Cable, VoiceMeeter. Virtual Audio Cable gives
    both ends the same name ("Line 1 (Virtual Audio Cable)"). PortAudio's MME names are cut to 31
    characters, so a cut name matches the start of the full one."""
    cut = len(capture_name) == _MME_NAME_LENGTH
    capture = capture_name.strip().lower()
    wanted = {capture, re.sub(r"\boutput\b", "input", capture, count=1)}

    def matches(render_name: str) -> bool:
        render = render_name.strip().lower()
        return any(render == name or (cut and render.startswith(name)) for name in wanted)
    return matches


def _windows_client_playing(device_name: str,
                            read_endpoints: Callable[[Callable[[str], bool]], list[RenderEndpoint]] | None = None,
                            ) -> bool | None:
    """True when a render endpoint that feeds `device_name` carries sound (peak above 0, neither
    muted nor at volume 0); None when no render endpoint feeds it (a microphone: nothing to ask)
    or COM fails. read_endpoints(wanted): the active render endpoints whose name `wanted`
    accepts, with their meters (the COM seam; tests replace it).

    The meter rather than IAudioSessionManager2's sessions in AudioSessionStateActive: a session
    stays active while its app plays digital silence (a paused player holding its stream), and
    zeros in then give zeros out, which is no fault. A peak above 0 says sound goes in. The peak
    covers one device period (~10 ms): a gap between two songs reads 0, which only delays the
    warning until the next question (ZeroWatch.poll)."""
    try:
        endpoints = (read_endpoints or _wasapi_render_endpoints)(_render_names(device_name))
    except OSError:
        return None
    if not endpoints:
        return None
    return any(endpoint.peak > 0.0 and not endpoint.silenced for endpoint in endpoints)


class _GUID(ctypes.Structure):
    _fields_ = [("data1", ctypes.c_uint32), ("data2", ctypes.c_uint16), ("data3", ctypes.c_uint16),
                ("data4", ctypes.c_ubyte * 8)]


def _guid(text: str) -> _GUID:
    return _GUID.from_buffer_copy(uuid.UUID(text).bytes_le)  # bytes_le is GUID's memory layout


class _PropertyKey(ctypes.Structure):
    _fields_ = [("fmtid", _GUID), ("pid", ctypes.c_uint32)]


class _PropVariant(ctypes.Structure):
    # vt, three reserved WORDs, then the value union: 16 bytes on x64 (24 in all), 8 on x86 (16).
    # Only pwszVal (a pointer at offset 8) is read; `extra` pads the union to its full size.
    _fields_ = [("vt", ctypes.c_ushort), ("reserved1", ctypes.c_ushort), ("reserved2", ctypes.c_ushort),
                ("reserved3", ctypes.c_ushort), ("pointer", ctypes.c_void_p), ("extra", ctypes.c_void_p)]


_CLSID_MMDEVICE_ENUMERATOR = "BCDE0395-E52F-467C-8E3D-C4579291692E"
_IID_IMMDEVICE_ENUMERATOR = "A95664D2-9614-4F35-A746-DE8DB63617E6"
_IID_IAUDIO_METER_INFORMATION = "C02216F6-8C67-4B5B-9D00-D008E73E0064"
_IID_IAUDIO_ENDPOINT_VOLUME = "5CDF2C82-841E-4546-9722-0CF74078229A"
_PKEY_DEVICE_FRIENDLY_NAME = ("A45C254E-DF1C-4EFD-8020-67D146A850E0", 14)
_E_RENDER, _DEVICE_STATE_ACTIVE, _STGM_READ, _VT_LPWSTR = 0, 1, 0, 31
_CLSCTX_ALL = 0x17
_COINIT_MULTITHREADED = 0x0
_S_OK, _S_FALSE = 0, 1


def _wasapi_render_endpoints(wanted: Callable[[str], bool]) -> list[RenderEndpoint]:
    """The active render endpoints whose friendly name `wanted` accepts, with their peak meters.
    Raises OSError when COM fails. Plain ctypes COM: each method is called through its slot in the
    interface's vtable (slots 0-2 are IUnknown's; the others are in mmdeviceapi.h, propsys.h and
    endpointvolume.h order)."""
    if sys.platform != "win32":
        raise OSError("WASAPI exists only on Windows")
    from ctypes import wintypes

    def method(slot: int, *argtypes: type, restype: type = ctypes.HRESULT):
        # A COM method prototype: called with the interface pointer first; an HRESULT below 0
        # raises OSError.
        return ctypes.WINFUNCTYPE(restype, *argtypes)(slot, f"vtable[{slot}]")

    out = ctypes.POINTER(ctypes.c_void_p)
    release = method(2, restype=ctypes.c_ulong)  # IUnknown::Release
    enum_audio_endpoints = method(3, wintypes.DWORD, wintypes.DWORD, out)  # IMMDeviceEnumerator
    get_count = method(3, ctypes.POINTER(wintypes.UINT))  # IMMDeviceCollection
    item = method(4, wintypes.UINT, out)  # IMMDeviceCollection
    activate = method(3, ctypes.POINTER(_GUID), wintypes.DWORD, ctypes.c_void_p, out)  # IMMDevice
    open_property_store = method(4, wintypes.DWORD, out)  # IMMDevice
    get_value = method(5, ctypes.POINTER(_PropertyKey), ctypes.POINTER(_PropVariant))  # IPropertyStore
    get_peak_value = method(3, ctypes.POINTER(ctypes.c_float))  # IAudioMeterInformation
    get_master_volume_scalar = method(9, ctypes.POINTER(ctypes.c_float))  # IAudioEndpointVolume
    get_mute = method(15, ctypes.POINTER(wintypes.BOOL))  # IAudioEndpointVolume

    # Our own WinDLL object, so that setting argtypes does not change ctypes.windll.ole32 for
    # anyone else in the process.
    ole32 = ctypes.WinDLL("ole32")
    ole32.CoInitializeEx.argtypes = [ctypes.c_void_p, wintypes.DWORD]
    ole32.CoInitializeEx.restype = ctypes.c_long  # not HRESULT: RPC_E_CHANGED_MODE is no failure here
    ole32.CoUninitialize.argtypes = []
    ole32.CoUninitialize.restype = None
    ole32.CoCreateInstance.argtypes = [ctypes.POINTER(_GUID), ctypes.c_void_p, wintypes.DWORD,
                                       ctypes.POINTER(_GUID), out]
    ole32.CoCreateInstance.restype = ctypes.HRESULT
    ole32.PropVariantClear.argtypes = [ctypes.POINTER(_PropVariant)]
    ole32.PropVariantClear.restype = ctypes.HRESULT

    # COM on this thread for the length of the call. A thread already in the other apartment model
    # (RPC_E_CHANGED_MODE) can use COM as it is, and must not be uninitialised by us.
    initialised = ole32.CoInitializeEx(None, _COINIT_MULTITHREADED) in (_S_OK, _S_FALSE)
    held: list[ctypes.c_void_p] = []  # interface pointers to release, whatever happens

    def new_pointer() -> ctypes.c_void_p:
        pointer = ctypes.c_void_p()
        held.append(pointer)
        return pointer

    try:
        enumerator = new_pointer()
        ole32.CoCreateInstance(ctypes.byref(_guid(_CLSID_MMDEVICE_ENUMERATOR)), None, _CLSCTX_ALL,
                               ctypes.byref(_guid(_IID_IMMDEVICE_ENUMERATOR)), ctypes.byref(enumerator))
        collection = new_pointer()
        enum_audio_endpoints(enumerator, _E_RENDER, _DEVICE_STATE_ACTIVE, ctypes.byref(collection))
        count = wintypes.UINT()
        get_count(collection, ctypes.byref(count))
        friendly_name = _PropertyKey(_guid(_PKEY_DEVICE_FRIENDLY_NAME[0]), _PKEY_DEVICE_FRIENDLY_NAME[1])
        found = []
        for index in range(count.value):
            device = new_pointer()
            item(collection, index, ctypes.byref(device))
            store = new_pointer()
            open_property_store(device, _STGM_READ, ctypes.byref(store))
            value = _PropVariant()
            get_value(store, ctypes.byref(friendly_name), ctypes.byref(value))
            try:
                name = ctypes.wstring_at(value.pointer) if value.vt == _VT_LPWSTR and value.pointer else ""
            finally:
                ole32.PropVariantClear(ctypes.byref(value))
            if not wanted(name):
                continue
            meter = new_pointer()
            activate(device, ctypes.byref(_guid(_IID_IAUDIO_METER_INFORMATION)), _CLSCTX_ALL, None,
                     ctypes.byref(meter))
            peak = ctypes.c_float()
            get_peak_value(meter, ctypes.byref(peak))
            volume = new_pointer()
            activate(device, ctypes.byref(_guid(_IID_IAUDIO_ENDPOINT_VOLUME)), _CLSCTX_ALL, None,
                     ctypes.byref(volume))
            muted, level = wintypes.BOOL(), ctypes.c_float()
            get_mute(volume, ctypes.byref(muted))
            get_master_volume_scalar(volume, ctypes.byref(level))
            found.append(RenderEndpoint(name, peak.value, bool(muted.value) or level.value <= 0.0))
        return found
    finally:
        for pointer in reversed(held):
            if pointer.value:
                release(pointer)
        if initialised:
            ole32.CoUninitialize()


# --- macOS: CoreAudio's processes running output on the cable ------------------------------------
class CoreAudioHal(Protocol):
    """The CoreAudio HAL properties the macOS probe reads (the seam; tests replace it). Each
    method raises OSError with the OSStatus when the HAL refuses."""

    def process_objects(self) -> list[int] | None:
        """kAudioHardwarePropertyProcessObjectList; None where the HAL has no such property
        (before macOS 14.2)."""
        ...

    def devices(self) -> list[tuple[int, str]]:
        """(AudioObjectID, kAudioObjectPropertyName) of every audio device."""
        ...

    def pid(self, process: int) -> int: ...  # kAudioProcessPropertyPID

    def is_running_output(self, process: int) -> bool: ...  # kAudioProcessPropertyIsRunningOutput

    def output_devices(self, process: int) -> list[int]: ...  # kAudioProcessPropertyDevices, output scope


def _macos_client_playing(device_name: str, hal: CoreAudioHal | None = None,
                          own_pid: int | None = None) -> bool | None:
    """True when a process other than ours runs output on the device called `device_name`;
    None before macOS 14.2, when no device has that name, or when the HAL refuses.

    Our own process never counts: the tray records the cable and plays elsewhere, but a process
    that plays into the cable it records would make its own "client" (and the engine refuses such
    a loop anyway, devices.same_cable). Running output is not sound: an app that holds BlackHole
    open while paused still counts, so a tray without the grant is told while such an app is open,
    which is no false alarm either (it will hear nothing when the app plays)."""
    own_pid = os.getpid() if own_pid is None else own_pid
    try:
        hal = hal or _CoreAudioHal()
        processes = hal.process_objects()
        if processes is None:
            return None
        wanted = device_name.strip()
        devices = hal.devices()
        cable = {device for device, name in devices if name == wanted}
        cable = cable or {device for device, name in devices if name.lower() == wanted.lower()}
        if not cable:
            return None
        for process in processes:
            if hal.pid(process) == own_pid:
                continue
            if hal.is_running_output(process) and cable.intersection(hal.output_devices(process)):
                return True
        return False
    except OSError:
        return None


def _four_cc(code: bytes) -> int:
    return int.from_bytes(code, "big")


_SYSTEM_OBJECT = 1  # kAudioObjectSystemObject
_SCOPE_GLOBAL, _SCOPE_OUTPUT = _four_cc(b"glob"), _four_cc(b"outp")
_ELEMENT_MAIN = 0
_HARDWARE_DEVICES = _four_cc(b"dev#")
_HARDWARE_PROCESS_OBJECT_LIST = _four_cc(b"prs#")
_OBJECT_NAME = _four_cc(b"lnam")
_PROCESS_PID = _four_cc(b"ppid")
_PROCESS_DEVICES = _four_cc(b"pdv#")
_PROCESS_IS_RUNNING_OUTPUT = _four_cc(b"piro")
_CF_STRING_ENCODING_UTF8 = 0x08000100


class _PropertyAddress(ctypes.Structure):
    _fields_ = [("selector", ctypes.c_uint32), ("scope", ctypes.c_uint32), ("element", ctypes.c_uint32)]


class _CoreAudioHal:
    """CoreAudioHal through ctypes: AudioObjectGetPropertyData on the HAL's objects."""

    def __init__(self) -> None:
        # dlopen finds the frameworks in the dyld shared cache even where the files are not on
        # disk (macOS 11 and later); elsewhere they are missing and CDLL raises OSError.
        core_audio = ctypes.CDLL("/System/Library/Frameworks/CoreAudio.framework/CoreAudio")
        core_foundation = ctypes.CDLL("/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation")
        address = ctypes.POINTER(_PropertyAddress)
        self._has_property = core_audio.AudioObjectHasProperty
        self._has_property.argtypes = [ctypes.c_uint32, address]
        self._has_property.restype = ctypes.c_ubyte  # Boolean
        self._get_size = core_audio.AudioObjectGetPropertyDataSize
        self._get_size.argtypes = [ctypes.c_uint32, address, ctypes.c_uint32, ctypes.c_void_p,
                                   ctypes.POINTER(ctypes.c_uint32)]
        self._get_size.restype = ctypes.c_int32  # OSStatus
        self._get_data = core_audio.AudioObjectGetPropertyData
        self._get_data.argtypes = [ctypes.c_uint32, address, ctypes.c_uint32, ctypes.c_void_p,
                                   ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p]
        self._get_data.restype = ctypes.c_int32
        self._cf_string_get_c_string = core_foundation.CFStringGetCString
        self._cf_string_get_c_string.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_long, ctypes.c_uint32]
        self._cf_string_get_c_string.restype = ctypes.c_ubyte
        self._cf_release = core_foundation.CFRelease
        self._cf_release.argtypes = [ctypes.c_void_p]
        self._cf_release.restype = None

    def _read(self, target: int, selector: int, scope: int = _SCOPE_GLOBAL) -> bytes:
        address = _PropertyAddress(selector, scope, _ELEMENT_MAIN)
        size = ctypes.c_uint32(0)
        status = self._get_size(target, ctypes.byref(address), 0, None, ctypes.byref(size))
        if status != 0:
            raise OSError(status, f"AudioObjectGetPropertyDataSize({target}, {selector:#x}) failed")
        data = ctypes.create_string_buffer(max(1, size.value))
        status = self._get_data(target, ctypes.byref(address), 0, None, ctypes.byref(size), data)
        if status != 0:
            raise OSError(status, f"AudioObjectGetPropertyData({target}, {selector:#x}) failed")
        return data.raw[:size.value]

    def _ids(self, target: int, selector: int, scope: int = _SCOPE_GLOBAL) -> list[int]:
        data = self._read(target, selector, scope)
        return list(struct.unpack(f"={len(data) // 4}I", data[:len(data) // 4 * 4]))  # AudioObjectID: UInt32

    def _name(self, target: int) -> str:
        address = _PropertyAddress(_OBJECT_NAME, _SCOPE_GLOBAL, _ELEMENT_MAIN)
        string = ctypes.c_void_p()
        size = ctypes.c_uint32(ctypes.sizeof(string))
        status = self._get_data(target, ctypes.byref(address), 0, None, ctypes.byref(size), ctypes.byref(string))
        if status != 0:
            raise OSError(status, f"AudioObjectGetPropertyData({target}, 'lnam') failed")
        if not string.value:
            return ""
        try:  # the HAL hands over a CFString the caller owns
            buffer = ctypes.create_string_buffer(1024)
            if not self._cf_string_get_c_string(string, buffer, len(buffer), _CF_STRING_ENCODING_UTF8):
                return ""
            return buffer.value.decode("utf-8", "replace")
        finally:
            self._cf_release(string)

    def process_objects(self) -> list[int] | None:
        address = _PropertyAddress(_HARDWARE_PROCESS_OBJECT_LIST, _SCOPE_GLOBAL, _ELEMENT_MAIN)
        if not self._has_property(_SYSTEM_OBJECT, ctypes.byref(address)):
            return None
        return self._ids(_SYSTEM_OBJECT, _HARDWARE_PROCESS_OBJECT_LIST)

    def devices(self) -> list[tuple[int, str]]:
        named = []
        for device in self._ids(_SYSTEM_OBJECT, _HARDWARE_DEVICES):
            try:
                named.append((device, self._name(device)))
            except OSError:
                continue  # a device going away between the list and its name
        return named

    def pid(self, process: int) -> int:
        return struct.unpack("=i", self._read(process, _PROCESS_PID)[:4])[0]  # pid_t

    def is_running_output(self, process: int) -> bool:
        return struct.unpack("=I", self._read(process, _PROCESS_IS_RUNNING_OUTPUT)[:4])[0] != 0

    def output_devices(self, process: int) -> list[int]:
        return self._ids(process, _PROCESS_DEVICES, _SCOPE_OUTPUT)


# --- what the user is told -----------------------------------------------------------------------
def silent_cable_message(device_name: str, platform: str | None = None) -> str:
    """The one line that tells the user why `device_name` records only zeros and what to switch on,
    for `platform` (sys.platform by default); at most MESSAGE_LIMIT characters."""
    name = device_name if len(device_name) <= _NAME_LIMIT else device_name[:_NAME_LIMIT - 1].rstrip() + "…"
    platform = platform or sys.platform
    if platform == "darwin":
        text = (f"'{name}' records only silence while an app plays into it: macOS blocks recording. Allow "
                "WHAMSAH Tray (or the Python that runs it) in System Settings ▸ Privacy & Security ▸ "
                "Microphone, then restart the tray.")
    elif platform == "win32":
        text = (f"'{name}' records only silence while an app plays into it: Windows blocks recording. Turn "
                "on Settings ▸ Privacy & security ▸ Microphone ▸ Let desktop apps access your microphone.")
    else:
        text = (f"'{name}' records only silence while an app plays into it: check that the app plays into "
                "the cable and is not muted.")
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT - 1].rstrip() + "…"
