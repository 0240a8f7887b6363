"""Higher priority for the engine's threads through what the OS gives audio clients (realtime.py).

Linux, the part that runs here: `raise_thread_priority` on a real thread of this process, asked by
a thread that has no right of its own (CAP_SYS_NICE dropped from its effective set: capabilities
are per thread, so the request meets the refusal a desktop user meets), answered over a real
D-Bus system bus (a private dbus-daemon) by
- a stand-in RealtimeKit (tests/rtkit_double.py) that records each request (method, pid, tid,
  priority, and the process's RLIMIT_RTTIME at the moment of the call), applies the same limits as
  rtkit and can refuse on demand: the exchange and the fallbacks (real-time refused → nice level,
  everything refused → normal) cannot be observed or provoked on the real daemon;
- the real rtkit-daemon (Debian's rtkit) with polkitd on the same private bus: polkit grants
  everything to uid 0, so as root here the real daemon grants, and the thread's scheduling is read
  back from the kernel. Without polkitd it refuses every request, in its log "Warning: PolicyKit
  call failed: The name org.freedesktop.PolicyKit1 was not provided by any .service files", and
  answers "org.freedesktop.DBus.Error.Failed: No such file or directory"; the last real-daemon
  test checks that this comes back as "normal (RealtimeKit refused: ...)".
  A desktop user's session (logind, an active seat, polkit's allow_active) is not here: that rtkit
  grants a non-root user in an active session is not tested.

Windows (MMCSS through avrt.dll) cannot run here: avrt is replaced by a fake at the module's seam
(`_load_avrt`) and `sys.platform` reads "win32" for realtime.py and priority.py only; what is
tested is the pairing of registration and revert per thread and the answers, not Windows itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import _unavailable

from whamsah_tray.engine import priority, realtime
from whamsah_tray.engine.realtime import (
    describe_thread_priority,
    enter_pro_audio,
    in_pro_audio,
    leave_pro_audio,
    raise_thread_priority,
)

TESTS = Path(__file__).resolve().parent
CAP_SYS_NICE = 23
RTKIT_DAEMON = "/usr/libexec/rtkit-daemon"
POLKITD = "/usr/lib/polkit-1/polkitd"
START_TIMEOUT_S = 10.0

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the stand-in and rtkit-daemon apply priorities as root")


# ----------------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def idle_thread():
    """A thread of this process that waits (as an engine thread between blocks); yields its tid."""
    started, done = threading.Event(), threading.Event()
    tids: list[int] = []

    def wait() -> None:
        # Start at nice 0 whatever the creating thread's level (a thread inherits it, and earlier
        # tests drive the audio callback on pytest's thread, which then asked for nice -10):
        # setting the level it already has would count as "own right" without CAP_SYS_NICE.
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 0)
        tids.append(threading.get_native_id())
        started.set()
        done.wait(30)

    thread = threading.Thread(target=wait, name="test-engine-thread", daemon=True)
    thread.start()
    assert started.wait(5)
    try:
        yield tids[0]
    finally:
        done.set()
        thread.join(5)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def without_cap_sys_nice(function, *args, **kwargs):
    """Runs function on a new thread that has dropped CAP_SYS_NICE from its effective
    capabilities (capset acts on the calling thread only), returns its result."""
    libc = ctypes.CDLL(None, use_errno=True)
    results: list = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3
            if libc.capget(ctypes.byref(header), data) != 0:
                raise OSError(ctypes.get_errno(), "capget")
            data[0].effective &= ~(1 << CAP_SYS_NICE)
            if libc.capset(ctypes.byref(header), data) != 0:
                raise OSError(ctypes.get_errno(), "capset")
            results.append(function(*args, **kwargs))
        except BaseException as error:  # handed to the test's thread
            errors.append(error)

    thread = threading.Thread(target=run, name="test-no-cap-sys-nice")
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return results[0]


def scheduling(tid: int) -> tuple[int, int, int]:
    """(policy without SCHED_RESET_ON_FORK, real-time priority, nice) of thread tid, from the kernel."""
    return (os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK, os.sched_getparam(tid).sched_priority,
            os.getpriority(os.PRIO_PROCESS, tid))


@pytest.fixture
def rttime_restored():
    """RLIMIT_RTTIME is process-wide: put back what pytest's process had. Raising the hard limit
    again needs CAP_SYS_RESOURCE, which a container's root may lack: then the lower limit stays,
    which only bounds real-time threads, and no other test runs one."""
    before = resource.getrlimit(resource.RLIMIT_RTTIME)
    yield before
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_RTTIME, before)


def start_system_bus(folder: Path) -> tuple[subprocess.Popen, str]:
    """A private dbus-daemon of type system that lets anyone own and call anything."""
    config = folder / "system-bus.conf"
    config.write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={folder}/system_bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*" eavesdrop="true"/>
<allow receive_sender="*"/></policy></busconfig>""")
    bus = subprocess.Popen(["dbus-daemon", "--config-file", str(config), "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, text=True)
    assert bus.stdout is not None
    return bus, bus.stdout.readline().strip()


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_for_name(address: str, name: str) -> bool:
    from gi.repository import Gio, GLib

    connection = Gio.DBusConnection.new_for_address_sync(
        address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
        None, None)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            owned = connection.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                         "NameHasOwner", GLib.Variant("(s)", (name,)), GLib.VariantType("(b)"),
                                         Gio.DBusCallFlags.NONE, 2000, None).unpack()[0]
            if owned:
                return True
            time.sleep(0.05)
        return False
    finally:
        connection.close_sync(None)


@pytest.fixture
def system_bus():
    """The address of a private system bus (a short socket path: unix paths hold 108 bytes)."""
    pytest.importorskip("gi", reason="PyGObject (the gtk extra) is not installed: no D-Bus client")
    if shutil.which("dbus-daemon") is None:
        _unavailable("dbus-daemon is not installed (apt-get install dbus)")
    folder = Path(tempfile.mkdtemp(prefix="rtkit-bus-"))
    folder.chmod(0o755)  # polkitd switches to its own user before it connects
    bus, address = start_system_bus(folder)
    try:
        yield address
    finally:
        stop(bus)
        shutil.rmtree(folder, ignore_errors=True)


class StandIn:
    def __init__(self, address: str, *options: str) -> None:
        self.process = subprocess.Popen([sys.executable, str(TESTS / "rtkit_double.py"), *options],
                                        stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address})
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def requests(self) -> list[dict]:
        """Every request it answered (ends it: all its lines are then written)."""
        stop(self.process)
        assert self.process.stdout is not None
        return [json.loads(line) for line in self.process.stdout.read().splitlines() if line.strip()]


@pytest.fixture
def stand_in(system_bus):
    started: list[StandIn] = []

    def start(*options: str) -> StandIn:
        started.append(StandIn(system_bus, *options))
        return started[-1]

    yield start
    for double in started:
        stop(double.process)


# --------------------------------------------------------------- Linux: the stand-in RealtimeKit


@needs_root
def test_a_thread_without_its_own_right_gets_nice_minus_10_through_realtimekit(system_bus, stand_in):
    rtkit = stand_in()
    with idle_thread() as tid:
        got = without_cap_sys_nice(raise_thread_priority, tid, bus_address=system_bus)
        assert got == "nice -10 via RealtimeKit"
        assert os.getpriority(os.PRIO_PROCESS, tid) == -10
        assert describe_thread_priority(tid) == "nice -10"
    assert [(r["method"], r["pid"], r["tid"], r["priority"]) for r in rtkit.requests()] == [
        ("MakeThreadHighPriority", os.getpid(), tid, -10)]


@needs_root
def test_the_nice_level_asked_for_stays_within_realtimekits_min_nice_level(system_bus, stand_in):
    rtkit = stand_in("--min-nice-level", "-5")
    with idle_thread() as tid:
        assert without_cap_sys_nice(raise_thread_priority, tid, bus_address=system_bus) == "nice -5 via RealtimeKit"
        assert os.getpriority(os.PRIO_PROCESS, tid) == -5
    assert [(r["method"], r["priority"], r["granted"]) for r in rtkit.requests()] == [
        ("MakeThreadHighPriority", -5, True)]


@needs_root
def test_real_time_sets_rlimit_rttime_first_and_stays_within_the_published_limits(system_bus, stand_in,
                                                                                   rttime_restored):
    rtkit = stand_in("--max-realtime-priority", "3", "--rttime-usec-max", "100000")
    with idle_thread() as tid:
        got = without_cap_sys_nice(raise_thread_priority, tid, realtime=True, rt_priority=4, bus_address=system_bus)
        assert got == "SCHED_RR 3 via RealtimeKit"
        assert scheduling(tid) == (os.SCHED_RR, 3, 0)
        assert describe_thread_priority(tid) == "SCHED_RR 3"
    (request,) = rtkit.requests()
    assert (request["method"], request["tid"], request["priority"]) == ("MakeThreadRealtime", tid, 3)
    # The limit was in place when RealtimeKit looked (it reads /proc/PID/limits during the call).
    assert request["rttime"] is not None and request["rttime"][1] <= 100_000
    assert max(resource.getrlimit(resource.RLIMIT_RTTIME)) <= 100_000


@needs_root
def test_refused_real_time_falls_back_to_the_nice_level_and_says_both(system_bus, stand_in, rttime_restored):
    rtkit = stand_in("--refuse", "MakeThreadRealtime")
    with idle_thread() as tid:
        got = without_cap_sys_nice(raise_thread_priority, tid, realtime=True, bus_address=system_bus)
        assert got == ("nice -10 via RealtimeKit (real-time refused: RealtimeKit: "
                       "org.freedesktop.DBus.Error.AccessDenied: Operation not permitted)")
        assert scheduling(tid) == (os.SCHED_OTHER, 0, -10)
    assert [(r["method"], r["tid"], r["priority"], r["granted"]) for r in rtkit.requests()] == [
        ("MakeThreadRealtime", tid, realtime.RT_PRIORITY, False), ("MakeThreadHighPriority", tid, -10, True)]


@needs_root
def test_everything_refused_leaves_the_thread_as_it_was_and_says_why(system_bus, stand_in, rttime_restored):
    rtkit = stand_in("--refuse", "MakeThreadRealtime", "--refuse", "MakeThreadHighPriority")
    with idle_thread() as tid:
        got = without_cap_sys_nice(raise_thread_priority, tid, realtime=True, bus_address=system_bus)
        assert got == "normal (RealtimeKit refused: org.freedesktop.DBus.Error.AccessDenied: Operation not permitted)"
        assert scheduling(tid) == (os.SCHED_OTHER, 0, 0)
    assert [r["method"] for r in rtkit.requests()] == ["MakeThreadRealtime", "MakeThreadHighPriority"]


@needs_root
def test_with_its_own_right_the_process_does_not_ask_realtimekit(system_bus, stand_in, rttime_restored):
    rtkit = stand_in()
    with idle_thread() as nice_tid, idle_thread() as realtime_tid:
        assert raise_thread_priority(nice_tid, bus_address=system_bus) == "nice -10 (own right)"
        got = raise_thread_priority(realtime_tid, realtime=True, bus_address=system_bus)
        assert got == f"SCHED_RR {realtime.RT_PRIORITY} (own right)"
        assert scheduling(nice_tid) == (os.SCHED_OTHER, 0, -10)
        assert scheduling(realtime_tid) == (os.SCHED_RR, realtime.RT_PRIORITY, 0)
        # The same watchdog as RealtimeKit would demand.
        assert resource.getrlimit(resource.RLIMIT_RTTIME)[1] <= realtime.DEFAULT_RTTIME_USEC_MAX
    assert rtkit.requests() == []


@needs_root
def test_no_realtimekit_on_the_bus_is_said_not_raised(system_bus):
    with idle_thread() as tid:
        got = without_cap_sys_nice(raise_thread_priority, tid, bus_address=system_bus)
        assert got.startswith("normal (no RealtimeKit: org.freedesktop.DBus.Error.ServiceUnknown")
        assert os.getpriority(os.PRIO_PROCESS, tid) == 0


def test_without_a_dbus_client_library_the_answer_says_so(monkeypatch, rttime_restored):
    # gi unimportable (PyGObject is the optional gtk extra): `from gi.repository import Gio` fails.
    monkeypatch.setitem(sys.modules, "gi", None)
    monkeypatch.setitem(sys.modules, "gi.repository", None)
    with idle_thread() as tid:
        for wants_realtime in (False, True):
            got = without_cap_sys_nice(raise_thread_priority, tid, realtime=wants_realtime,
                                       bus_address="unix:path=/nonexistent")
            if os.geteuid() == 0:  # a non-root user has no right of its own anyway
                assert got == "normal (no D-Bus client library)"
            assert got.startswith("normal") or "own right" in got
        if os.geteuid() == 0:
            assert scheduling(tid) == (os.SCHED_OTHER, 0, 0)


def test_other_systems_get_an_answer_not_an_error(monkeypatch):
    monkeypatch.setattr(realtime, "sys", SimpleNamespace(platform="darwin"))
    assert raise_thread_priority(threading.get_native_id()) == "unchanged (RealtimeKit is a Linux service)"
    assert enter_pro_audio() == "unchanged (MMCSS is a Windows service)"
    assert leave_pro_audio() is False


# ------------------------------------------------------------------- Linux: the real rtkit-daemon




@contextlib.contextmanager
def real_rtkit(address: str, log: Path, with_polkit: bool = True):
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address}
    started: list[subprocess.Popen] = []
    try:
        if with_polkit:
            started.append(subprocess.Popen([POLKITD, "--no-debug"], env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
            assert wait_for_name(address, "org.freedesktop.PolicyKit1"), "polkitd did not start"
        # Logging to stderr (no syslog here), no chroot/privilege drop/canary (they need the
        # rtkit user and a real system), and no resource limits: rtkit's own RLIMIT_FSIZE of 0
        # kills it with SIGXFSZ at its first log line to a file.
        with log.open("w") as stderr:
            started.append(subprocess.Popen(
                [RTKIT_DAEMON, "--stderr", "--no-drop-privileges", "--no-chroot", "--no-canary",
                 "--no-limit-resources"], env=env, stdout=subprocess.DEVNULL, stderr=stderr))
        assert wait_for_name(address, "org.freedesktop.RealtimeKit1"), log.read_text()
        yield
    finally:
        for process in reversed(started):
            stop(process)


@pytest.fixture
def rtkit_log(system_bus, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the test rtkit-daemon keeps root (--no-drop-privileges) to apply priorities")
    for program, package in ((RTKIT_DAEMON, "rtkit"), (POLKITD, "polkitd")):
        if not os.access(program, os.X_OK):
            _unavailable(f"{program} is not installed (apt-get install {package})")  # tests/run.sh installs it
    return tmp_path / "rtkit.log"


def test_the_real_rtkit_daemon_grants_real_time_and_nice_levels(system_bus, rtkit_log, rttime_restored):
    with real_rtkit(system_bus, rtkit_log), idle_thread() as nice_tid, idle_thread() as realtime_tid:
        assert without_cap_sys_nice(raise_thread_priority, nice_tid, bus_address=system_bus) == \
            "nice -10 via RealtimeKit"
        got = without_cap_sys_nice(raise_thread_priority, realtime_tid, realtime=True, bus_address=system_bus)
        assert got == f"SCHED_RR {realtime.RT_PRIORITY} via RealtimeKit"
        assert scheduling(nice_tid) == (os.SCHED_OTHER, 0, -10)
        assert scheduling(realtime_tid) == (os.SCHED_RR, realtime.RT_PRIORITY, 0)
        assert os.sched_getscheduler(realtime_tid) & os.SCHED_RESET_ON_FORK
    log = rtkit_log.read_text()
    assert f"Successfully made thread {nice_tid} of process {os.getpid()} owned by 'root' high priority at " \
           "nice level -10." in log
    assert f"Successfully made thread {realtime_tid} of process {os.getpid()} owned by 'root' RT at priority " \
           f"{realtime.RT_PRIORITY}." in log


def test_the_real_rtkit_daemon_without_polkit_refuses_and_the_answer_says_so(system_bus, rtkit_log):
    with real_rtkit(system_bus, rtkit_log, with_polkit=False), idle_thread() as tid:
        got = without_cap_sys_nice(raise_thread_priority, tid, bus_address=system_bus)
        assert got.startswith("normal (RealtimeKit refused: "), got
        assert os.getpriority(os.PRIO_PROCESS, tid) == 0
    assert "PolicyKit call failed" in rtkit_log.read_text()


# ------------------------------------------------------------------------------ Windows (mocked)


class FakeAvrt:
    """avrt.dll as seen through realtime._Avrt: records calls with the calling thread."""

    def __init__(self, refuse_with: int = 0) -> None:
        self.refuse_with = refuse_with
        self.calls: list[tuple] = []
        self.next_handle = 0x1000

    def avrt(self) -> realtime._Avrt:
        return realtime._Avrt(self.set_characteristics, self.revert_characteristics, lambda: self.refuse_with)

    def set_characteristics(self, task: str, task_index) -> int | None:
        self.calls.append(("AvSetMmThreadCharacteristicsW", task, threading.get_ident()))
        if self.refuse_with:
            return None  # NULL handle; the error is the thread's last error
        task_index.contents.value = 7  # MMCSS writes the task index it chose
        self.next_handle += 1
        return self.next_handle

    def revert_characteristics(self, handle: int) -> int:
        self.calls.append(("AvRevertMmThreadCharacteristics", handle, threading.get_ident()))
        return 1


@pytest.fixture
def windows(monkeypatch):
    fake = FakeAvrt()
    on_windows = SimpleNamespace(platform="win32")
    monkeypatch.setattr(realtime, "sys", on_windows)
    monkeypatch.setattr(priority, "sys", on_windows)
    monkeypatch.setattr(realtime, "_load_avrt", lambda: fake.avrt())
    return fake


def on_new_thread(function):
    results: list = []
    thread = threading.Thread(target=lambda: results.append((threading.get_ident(), function())))
    thread.start()
    thread.join(5)
    return results[0]


def test_windows_worker_registers_as_pro_audio_and_reverts_on_its_own_thread(windows):
    def worker_life():
        promoted = priority.promote_current_thread(worker=True)
        again = enter_pro_audio()  # a second call keeps the first registration
        held = in_pro_audio()
        priority.demote_current_thread()
        return promoted, again, held, in_pro_audio()

    ident, (promoted, again, held, held_after) = on_new_thread(worker_life)
    assert (promoted, again, held, held_after) == (True, "MMCSS Pro Audio (task index 7)", True, False)
    assert windows.calls == [("AvSetMmThreadCharacteristicsW", "Pro Audio", ident),
                             ("AvRevertMmThreadCharacteristics", 0x1001, ident)]


def test_windows_callback_threads_are_left_to_portaudio(windows):
    _, promoted = on_new_thread(priority.promote_current_thread)
    assert promoted is False
    assert windows.calls == []


def test_windows_registration_is_per_thread(windows):
    _, first = on_new_thread(enter_pro_audio)
    _, second = on_new_thread(enter_pro_audio)
    assert first == second == "MMCSS Pro Audio (task index 7)"
    assert [call[0] for call in windows.calls] == ["AvSetMmThreadCharacteristicsW"] * 2
    _, left = on_new_thread(leave_pro_audio)  # a thread that never registered has nothing to revert
    assert left is False and len(windows.calls) == 2


def test_windows_refusal_is_said_with_the_error_code(windows):
    windows.refuse_with = 1552  # ERROR_INVALID_TASK_NAME
    _, (promoted, described) = on_new_thread(lambda: (priority.promote_current_thread(worker=True),
                                                      enter_pro_audio()))
    assert promoted is False
    assert described == "normal (MMCSS refused: Windows error 1552)"
