"""A stand-in for RealtimeKit (rtkit-daemon) on a test system bus, which records every request.

It owns org.freedesktop.RealtimeKit1 and serves /org/freedesktop/RealtimeKit1 with rtkit 0.13's
introspected interface (methods and properties), and grants the way rtkit does, within the same
checks:
- the caller's process is the D-Bus peer of the request (GetConnectionUnixProcessID), and the
  thread must be one of that process's threads (/proc/PID/task/TID);
- MakeThreadRealtime: priority at most MaxRealtimePriority, and the process's RLIMIT_RTTIME hard
  limit set and at most RTTimeUSecMax (read from /proc/PID/limits at the time of the call);
- MakeThreadHighPriority: nice level at least MinNiceLevel;
then applies the scheduling itself (os.sched_setscheduler SCHED_RR|SCHED_RESET_ON_FORK, or
os.setpriority): it must run as root, as rtkit-daemon does. A refusal is
org.freedesktop.DBus.Error.AccessDenied, as rtkit answers.

Each request prints one JSON line on stdout before it is answered: {"method", "pid", "tid", "priority",
"rttime": [soft, hard] or null for unlimited, "granted", "error"}. Prints `ready` once it owns the
name. Options: --max-realtime-priority N --min-nice-level N --rttime-usec-max N set the published
limits (rtkit's defaults: 20, -15, 200000); --refuse METHOD (repeatable) refuses that method
always, as rtkit does when polkit says no.

    DBUS_SYSTEM_BUS_ADDRESS=unix:path=... python tests/rtkit_double.py [options]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from gi.repository import Gio, GLib

BUS_NAME = "org.freedesktop.RealtimeKit1"
PATH = "/org/freedesktop/RealtimeKit1"
INTERFACE = "org.freedesktop.RealtimeKit1"
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"

# rtkit-daemon 0.13's introspection data (its Properties interface is GDBus's own here).
XML = """
<node>
  <interface name="org.freedesktop.RealtimeKit1">
    <method name="MakeThreadRealtime">
      <arg name="thread" type="t" direction="in"/><arg name="priority" type="u" direction="in"/>
    </method>
    <method name="MakeThreadRealtimeWithPID">
      <arg name="process" type="t" direction="in"/><arg name="thread" type="t" direction="in"/>
      <arg name="priority" type="u" direction="in"/>
    </method>
    <method name="MakeThreadHighPriority">
      <arg name="thread" type="t" direction="in"/><arg name="priority" type="i" direction="in"/>
    </method>
    <method name="MakeThreadHighPriorityWithPID">
      <arg name="process" type="t" direction="in"/><arg name="thread" type="t" direction="in"/>
      <arg name="priority" type="i" direction="in"/>
    </method>
    <method name="ResetKnown"/>
    <method name="ResetAll"/>
    <method name="Exit"/>
    <property name="RTTimeUSecMax" type="x" access="read"/>
    <property name="MaxRealtimePriority" type="i" access="read"/>
    <property name="MinNiceLevel" type="i" access="read"/>
  </interface>
</node>
"""


def rttime_of(pid: int) -> list[int] | None:
    """The process's RLIMIT_RTTIME as [soft, hard] microseconds (None: unlimited), as rtkit reads it."""
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max realtime timeout"):
                soft, hard = line[len("Max realtime timeout"):].split()[:2]
                if "unlimited" in (soft, hard):
                    return None
                return [int(soft), int(hard)]
    return None


class RealtimeKit:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.loop = GLib.MainLoop()

    def on_bus(self, connection: Gio.DBusConnection, _name: str) -> None:
        for interface in Gio.DBusNodeInfo.new_for_xml(XML).interfaces:
            connection.register_object(PATH, interface, self.on_call, self.on_property, None)

    def on_property(self, _connection, _sender, _path, _interface, name):
        return {"RTTimeUSecMax": GLib.Variant("x", self.options.rttime_usec_max),
                "MaxRealtimePriority": GLib.Variant("i", self.options.max_realtime_priority),
                "MinNiceLevel": GLib.Variant("i", self.options.min_nice_level)}.get(name)

    def on_call(self, connection, sender, _path, _interface, method, params, invocation):
        if method == "Exit":
            invocation.return_value(None)
            GLib.idle_add(self.loop.quit)
            return
        if method in ("ResetKnown", "ResetAll"):
            invocation.return_value(None)
            return
        peer = connection.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                    "GetConnectionUnixProcessID", GLib.Variant("(s)", (sender,)),
                                    GLib.VariantType("(u)"), Gio.DBusCallFlags.NONE, 2000, None).unpack()[0]
        args = params.unpack()
        pid, tid, priority = (args[0], args[1], args[2]) if method.endswith("WithPID") else (peer, args[0], args[1])
        record = {"method": method, "pid": pid, "peer": peer, "tid": tid, "priority": priority,
                  "rttime": rttime_of(pid)}
        error = self.check(method, pid, tid, priority, record["rttime"])
        if error is None:
            try:
                if method.startswith("MakeThreadRealtime"):
                    os.sched_setscheduler(tid, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
                else:
                    os.setpriority(os.PRIO_PROCESS, tid, priority)
            except OSError as failure:
                error = failure.strerror or str(failure)
        record.update(granted=error is None, error=error)
        # Written before the reply: once the caller has its answer, the record is there to read.
        print(json.dumps(record), flush=True)
        if error is None:
            invocation.return_value(None)
        else:
            invocation.return_dbus_error(ACCESS_DENIED, error)

    def check(self, method: str, pid: int, tid: int, priority: int, rttime: list[int] | None) -> str | None:
        """Why rtkit would refuse (None: it grants)."""
        if method in self.options.refuse:
            return "Operation not permitted"  # what rtkit answers when polkit refuses
        if not os.path.exists(f"/proc/{pid}/task/{tid}"):
            return f"Failed to look up client: thread {tid} is not in process {pid}"
        if method.startswith("MakeThreadRealtime"):
            if priority > self.options.max_realtime_priority:
                return "Operation not permitted"
            if rttime is None or rttime[1] > self.options.rttime_usec_max:
                return "Operation not permitted"  # rtkit: "Process has no RLIMIT_RTTIME set" / too high
        elif priority < self.options.min_nice_level:
            return "Operation not permitted"
        return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-realtime-priority", type=int, default=20)
    parser.add_argument("--min-nice-level", type=int, default=-15)
    parser.add_argument("--rttime-usec-max", type=int, default=200_000)
    parser.add_argument("--refuse", action="append", default=[])
    rtkit = RealtimeKit(parser.parse_args())
    Gio.bus_own_name(Gio.BusType.SYSTEM, BUS_NAME, Gio.BusNameOwnerFlags.NONE, rtkit.on_bus,
                     lambda *_: print("ready", flush=True), lambda *_: rtkit.loop.quit())
    rtkit.loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
