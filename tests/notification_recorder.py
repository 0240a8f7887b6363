"""A minimal desktop notification server for the test desktop, which has none: it owns
org.freedesktop.Notifications on the session bus, answers Notify/CloseNotification/GetCapabilities/
GetServerInformation like a real daemon, and appends each notification as a JSON line to a file.

Run as a process: `python tests/notification_recorder.py OUT.jsonl` (prints "ready" when it owns the
name). It replaces only the notification daemon; the app talks to it over real D-Bus.
"""

from __future__ import annotations

import json
import sys

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

INTERFACE = """
<node>
  <interface name="org.freedesktop.Notifications">
    <method name="Notify">
      <arg type="s" direction="in"/><arg type="u" direction="in"/><arg type="s" direction="in"/>
      <arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="as" direction="in"/>
      <arg type="a{sv}" direction="in"/><arg type="i" direction="in"/><arg type="u" direction="out"/>
    </method>
    <method name="CloseNotification"><arg type="u" direction="in"/></method>
    <method name="GetCapabilities"><arg type="as" direction="out"/></method>
    <method name="GetServerInformation">
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
    </method>
  </interface>
</node>
"""


def main(out_path: str) -> int:
    counter = [0]
    loop = GLib.MainLoop()

    def on_call(connection, sender, path, interface, method, parameters, invocation):
        if method == "Notify":
            app, replaces, icon, summary, body, *_ = parameters.unpack()
            counter[0] += 1
            with open(out_path, "a", encoding="utf-8") as out:
                out.write(json.dumps({"app": app, "summary": summary, "body": body, "icon": icon}) + "\n")
            invocation.return_value(GLib.Variant("(u)", (counter[0],)))
        elif method == "CloseNotification":
            invocation.return_value(None)
        elif method == "GetCapabilities":
            invocation.return_value(GLib.Variant("(as)", (["body"],)))
        else:
            invocation.return_value(GLib.Variant("(ssss)", ("recorder", "whamsah-tests", "1", "1.2")))

    node = Gio.DBusNodeInfo.new_for_xml(INTERFACE)

    def on_bus(connection, name):
        connection.register_object("/org/freedesktop/Notifications", node.interfaces[0], on_call, None, None)

    def on_name(connection, name):
        print("ready", flush=True)

    def on_lost(connection, name):
        loop.quit()

    Gio.bus_own_name(Gio.BusType.SESSION, "org.freedesktop.Notifications",
                     Gio.BusNameOwnerFlags.NONE, on_bus, on_name, on_lost)
    loop.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
