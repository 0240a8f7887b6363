"""Higher scheduling priority for the engine's threads from the services the OS gives audio clients.

Linux: `raise_thread_priority(tid)` is called by the controller thread for another thread of this
process (an audio callback's, the inference worker's), never on the audio callback itself: it may
talk D-Bus and wait for the answer. It first uses the process's own right (root, CAP_SYS_NICE or
an RLIMIT_NICE / RLIMIT_RTPRIO that allows it); a desktop user usually has none, and then asks
RealtimeKit (org.freedesktop.RealtimeKit1 on the system bus), as PulseAudio, PipeWire and JACK
clients do. RealtimeKit grants within its published limits (MinNiceLevel, MaxRealtimePriority,
RTTimeUSecMax), and only to a process whose RLIMIT_RTTIME is at most RTTimeUSecMax for real-time
scheduling. It identifies the requesting process through the D-Bus connection (the peer's pid),
so the request must come from this process's own connection: the thread is looked up among that
process's threads. The D-Bus client is PyGObject's Gio (the `gtk` extra, also used for the
desktop portal); without it the answer says so and nothing changes.

Real-time (`realtime=True`) is for a thread that never computes longer than RTTimeUSecMax
(200 ms by RealtimeKit's default) without blocking: RLIMIT_RTTIME, which the kernel enforces for
the whole process, then ends the process (SIGXCPU at the soft limit, SIGKILL at the hard one).
It is set whoever grants the real-time scheduling, so that a runaway real-time thread fails the
same way for root as for a desktop user instead of taking a core from the sound server. The
callback threads are not made real-time at all (priority.py says why).

Windows: `enter_pro_audio()` / `leave_pro_audio()` register / unregister the calling thread with
MMCSS as a "Pro Audio" task (avrt.dll), the class Windows audio applications use; the inference
worker calls them on its own thread (priority.promote_current_thread(worker=True)). PortAudio
already does this for its WASAPI callback threads. macOS: PortAudio's CoreAudio threads already run
at real-time priority; nothing here.

Every function returns a short description of what the thread got, for the log; none raises.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ENGINE_NICE = -10  # the nice level priority.py gives with the process's own right
# Below the sound servers' own real-time threads (PulseAudio asks for 5, PipeWire's data loop
# for 88, which RealtimeKit caps at its MaxRealtimePriority, 20 by default), so that they still
# run before the engine.
RT_PRIORITY = 4
# RealtimeKit's defaults (rtkit-daemon's built-in limits), used when it does not publish its own
# (RealtimeKit before 0.11 has no properties) and for the watchdog when we grant ourselves.
DEFAULT_RTTIME_USEC_MAX = 200_000
DEFAULT_MAX_REALTIME_PRIORITY = 20
DEFAULT_MIN_NICE_LEVEL = -15

RTKIT_BUS_NAME = "org.freedesktop.RealtimeKit1"
RTKIT_PATH = "/org/freedesktop/RealtimeKit1"
RTKIT_INTERFACE = "org.freedesktop.RealtimeKit1"
# RealtimeKit answers in milliseconds (one polkit query); a missing or stuck daemon must not hold
# the controller thread, which also runs the tray's commands, for long.
CALL_TIMEOUT_MS = 2000

PRO_AUDIO_TASK = "Pro Audio"


def raise_thread_priority(tid: int, realtime: bool = False, *, rt_priority: int = RT_PRIORITY,
                          bus_address: str | None = None) -> str:
    """Asks for nice -10 (or, with `realtime`, SCHED_RR at `rt_priority`) for thread `tid` of this
    process; returns what it got, e.g. "nice -10 (own right)", "SCHED_RR 4 via RealtimeKit",
    "normal (RealtimeKit refused: ...)". Call it from a thread that may block (the controller).
    realtime: only for a thread that blocks at least every RTTimeUSecMax (module docstring).

    bus_address: the system bus to find RealtimeKit on (default: the system bus, which
    DBUS_SYSTEM_BUS_ADDRESS may point elsewhere)."""
    if sys.platform != "linux":
        return "unchanged (RealtimeKit is a Linux service)"
    rtkit = _RealtimeKit(bus_address)
    try:
        refused_realtime = ""
        if realtime:
            got, refused_realtime = _make_realtime(tid, rt_priority, rtkit)
            if got:
                return got
        got = _make_high_priority(tid, rtkit)
        # Nothing granted: the high-priority answer already says why (the same reason, mostly).
        if refused_realtime and not got.startswith("normal"):
            return f"{got} (real-time refused: {refused_realtime})"
        return got
    finally:
        rtkit.close()


def describe_thread_priority(tid: int) -> str:
    """What thread `tid` runs at now ("SCHED_RR 4", "nice -10", "nice 0"), e.g. for the log line
    about an audio callback's thread, which promotes itself (priority.py) and cannot log."""
    if sys.platform != "linux":  # os has no per-thread scheduling queries on Windows or macOS
        return "unknown"
    try:
        policy = os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK
        if policy in (os.SCHED_FIFO, os.SCHED_RR):
            name = "SCHED_FIFO" if policy == os.SCHED_FIFO else "SCHED_RR"
            return f"{name} {os.sched_getparam(tid).sched_priority}"
        return f"nice {os.getpriority(os.PRIO_PROCESS, tid)}"
    except OSError as error:  # the thread has ended
        return f"unknown ({_reason(error)})"


# ---------------------------------------------------------------------------------------- Linux


def _make_realtime(tid: int, priority: int, rtkit: _RealtimeKit) -> tuple[str, str]:
    """(what it got or "", why real-time was refused or "")."""
    if sys.platform != "linux":  # (each Linux-only helper says so, for the Windows/macOS type checks)
        return "", "not Linux"
    _limit_rttime(DEFAULT_RTTIME_USEC_MAX)
    try:
        # SCHED_RESET_ON_FORK: a process started from this thread does not inherit real-time
        # scheduling (RealtimeKit sets the same flag).
        os.sched_setscheduler(tid, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
        return f"SCHED_RR {priority} (own right)", ""
    except PermissionError:
        pass
    except OSError as error:
        return "", _reason(error)
    if not rtkit.connect():
        return "", rtkit.failure
    max_rttime = rtkit.property("RTTimeUSecMax", DEFAULT_RTTIME_USEC_MAX)
    priority = min(priority, rtkit.property("MaxRealtimePriority", DEFAULT_MAX_REALTIME_PRIORITY))
    # RealtimeKit refuses a process whose RLIMIT_RTTIME it would not bound: set it before asking.
    if not _limit_rttime(max_rttime):
        return "", f"cannot limit RLIMIT_RTTIME to {max_rttime} us"
    if rtkit.call("MakeThreadRealtime", "(tu)", (tid, priority)):
        return f"SCHED_RR {priority} via RealtimeKit", ""
    return "", f"RealtimeKit: {rtkit.failure}"


def _make_high_priority(tid: int, rtkit: _RealtimeKit) -> str:
    if sys.platform != "linux":
        return "normal (not Linux)"
    try:
        os.setpriority(os.PRIO_PROCESS, tid, ENGINE_NICE)
        return f"nice {ENGINE_NICE} (own right)"
    except PermissionError:
        pass
    except OSError as error:
        return f"normal ({_reason(error)})"
    if not rtkit.connect():
        return f"normal ({rtkit.failure})"
    nice = max(ENGINE_NICE, rtkit.property("MinNiceLevel", DEFAULT_MIN_NICE_LEVEL))
    if rtkit.call("MakeThreadHighPriority", "(ti)", (tid, nice)):
        return f"nice {nice} via RealtimeKit"
    return f"normal (RealtimeKit refused: {rtkit.failure})"


def _limit_rttime(max_usec: int) -> bool:
    """Lowers RLIMIT_RTTIME (soft and hard, process-wide) to at most max_usec; never raises it."""
    if sys.platform != "linux":
        return False
    import resource

    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_RTTIME)
        new_hard = max_usec if hard == resource.RLIM_INFINITY else min(hard, max_usec)
        new_soft = new_hard if soft == resource.RLIM_INFINITY else min(soft, new_hard)
        if (new_soft, new_hard) != (soft, hard):
            resource.setrlimit(resource.RLIMIT_RTTIME, (new_soft, new_hard))
    except (AttributeError, ValueError, OSError):
        return False
    return True


class _RealtimeKit:
    """A private connection to the system bus, opened on the first request that needs it (a
    process with its own right never touches D-Bus). `failure` says why the last step failed."""

    def __init__(self, bus_address: str | None) -> None:
        self.bus_address = bus_address
        self.connection: Any = None
        self.failure = ""
        self._tried = False

    def connect(self) -> bool:
        if self._tried:
            return self.connection is not None
        self._tried = True
        if sys.platform != "linux":  # (PyGObject's D-Bus bindings are typed from Linux typelibs)
            return False
        try:
            from gi.repository import Gio, GLib
        except (ImportError, ValueError):  # ValueError: gi without the Gio typelib
            self.failure = "no D-Bus client library"
            return False
        try:
            address = self.bus_address or Gio.dbus_address_get_for_bus_sync(Gio.BusType.SYSTEM, None)
            # A private connection (not Gio's shared singleton): closed at the end of the request
            # and pointed at whichever bus the caller names.
            self.connection = Gio.DBusConnection.new_for_address_sync(
                address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
                | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        except GLib.Error as error:
            self.failure = f"no system bus: {_dbus_message(error)}"
            return False
        # Is anyone there? Asking a property starts RealtimeKit by bus activation when it is not
        # running, as a Make* call would; its absence is then told apart from a refusal.
        if self._get("MinNiceLevel") is None and self.failure.startswith("no RealtimeKit"):
            self.close()
            return False
        return True

    def property(self, name: str, default: int) -> int:
        value = self._get(name)
        return default if value is None else int(value)

    def _get(self, name: str) -> Any:
        if sys.platform != "linux":
            return None
        from gi.repository import Gio, GLib

        try:
            reply = self.connection.call_sync(
                RTKIT_BUS_NAME, RTKIT_PATH, "org.freedesktop.DBus.Properties", "Get",
                GLib.Variant("(ss)", (RTKIT_INTERFACE, name)), GLib.VariantType("(v)"),
                Gio.DBusCallFlags.NONE, CALL_TIMEOUT_MS, None)
        except GLib.Error as error:
            missing = Gio.DBusError.is_remote_error(error) and Gio.DBusError.get_remote_error(error) in (
                "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner")
            self.failure = f"no RealtimeKit: {_dbus_message(error)}" if missing else _dbus_message(error)
            return None
        return reply.unpack()[0]

    def call(self, method: str, signature: str, args: tuple[int, int]) -> bool:
        if sys.platform != "linux":
            return False
        from gi.repository import Gio, GLib

        try:
            self.connection.call_sync(RTKIT_BUS_NAME, RTKIT_PATH, RTKIT_INTERFACE, method,
                                      GLib.Variant(signature, args), None, Gio.DBusCallFlags.NONE,
                                      CALL_TIMEOUT_MS, None)
        except GLib.Error as error:
            self.failure = _dbus_message(error)
            return False
        return True

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if sys.platform == "linux" and connection is not None:
            from gi.repository import GLib

            with contextlib.suppress(GLib.Error):  # a connection the bus already closed: nothing to release
                connection.close_sync(None)


def _dbus_message(error: Any) -> str:
    """"NAME: text" of a D-Bus error reply (GDBus writes "GDBus.Error:NAME: text"), else the text."""
    return str(error.message).removeprefix("GDBus.Error:")


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


# -------------------------------------------------------------------------------------- Windows


@dataclass(frozen=True)
class _Avrt:
    """The two avrt.dll functions and the thread's last Win32 error: the seam the tests replace."""

    set_characteristics: Callable[[str, Any], Any]  # AvSetMmThreadCharacteristicsW(task, LPDWORD)
    revert_characteristics: Callable[[Any], Any]  # AvRevertMmThreadCharacteristics(HANDLE)
    last_error: Callable[[], int]


_mmcss = threading.local()  # .handle: this thread's MMCSS registration (MMCSS tasks are per thread)


def _load_avrt() -> _Avrt | None:
    if sys.platform == "win32":
        import ctypes
        from ctypes import wintypes

        try:
            avrt = ctypes.WinDLL("avrt", use_last_error=True)
        except OSError:
            return None
        avrt.AvSetMmThreadCharacteristicsW.argtypes = [wintypes.LPCWSTR, ctypes.POINTER(wintypes.DWORD)]
        avrt.AvSetMmThreadCharacteristicsW.restype = wintypes.HANDLE
        avrt.AvRevertMmThreadCharacteristics.argtypes = [wintypes.HANDLE]
        avrt.AvRevertMmThreadCharacteristics.restype = wintypes.BOOL
        return _Avrt(avrt.AvSetMmThreadCharacteristicsW, avrt.AvRevertMmThreadCharacteristics,
                     ctypes.get_last_error)
    return None


def enter_pro_audio() -> str:
    """Registers the calling thread with MMCSS as a "Pro Audio" task (Windows; elsewhere nothing).
    The handle is kept for leave_pro_audio() on the same thread; a second call keeps the first."""
    if sys.platform == "win32":
        import ctypes

        if getattr(_mmcss, "handle", None):
            return f"MMCSS {PRO_AUDIO_TASK} (task index {_mmcss.task_index})"
        avrt = _load_avrt()
        if avrt is None:
            return "normal (no avrt.dll)"
        task_index = ctypes.c_ulong(0)  # DWORD; 0 asks MMCSS for a new task
        handle = avrt.set_characteristics(PRO_AUDIO_TASK, ctypes.pointer(task_index))
        if not handle:
            return f"normal (MMCSS refused: Windows error {avrt.last_error()})"
        _mmcss.handle, _mmcss.task_index, _mmcss.avrt = handle, task_index.value, avrt
        return f"MMCSS {PRO_AUDIO_TASK} (task index {task_index.value})"
    return "unchanged (MMCSS is a Windows service)"


def in_pro_audio() -> bool:
    """Whether the calling thread holds an MMCSS registration from enter_pro_audio()."""
    return bool(getattr(_mmcss, "handle", None))


def leave_pro_audio() -> bool:
    """Ends the calling thread's MMCSS registration (AvRevertMmThreadCharacteristics); returns
    whether there was one and Windows released it."""
    if sys.platform == "win32":
        handle = getattr(_mmcss, "handle", None)
        if not handle:
            return False
        _mmcss.handle = None
        return bool(_mmcss.avrt.revert_characteristics(handle))
    return False
