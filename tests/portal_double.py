"""A test double of the desktop's XDG portal for global shortcuts, on the test session bus: no real
GNOME or KDE can run on the headless test machine, so this service stands in for
xdg-desktop-portal. It owns org.freedesktop.portal.Desktop and serves, at
/org/freedesktop/portal/desktop, what the spec says a host app uses:

- org.freedesktop.host.portal.Registry.Register(s app_id, a{sv}): must come before any other call
  on the caller's connection (as in xdg-desktop-portal >= 1.19: later, it is an error), and the id
  must be reverse-DNS as xdg-desktop-portal's xdp_is_valid_app_id requires (two or more
  dot-separated elements of [A-Za-z0-9_], "-" also allowed in the last);
- org.freedesktop.portal.GlobalShortcuts (property version = 1): CreateSession, BindShortcuts and
  ListShortcuts return a Request object path (/org/freedesktop/portal/desktop/request/SENDER/TOKEN)
  and answer with its Response(u, a{sv}) signal; sessions live at .../session/SENDER/TOKEN with
  org.freedesktop.portal.Session.Close; a caller without a registered app id gets response 2, as
  xdg-desktop-portal >= 1.21 answers ("An app id is required");
- Activated / Deactivated(o session, s id, t timestamp, a{sv}) signals, sent to the session's owner.
  The desktop binds each shortcut to its preferred trigger (no user dialog here).

Driven from the test through stdin, one command a line: `activate ID` emits Activated then
Deactivated for every session that bound ID; `state` prints one JSON line (registrations,
sessions, bindings, closed sessions). Prints `ready` once it owns the name.

    python tests/portal_double.py
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time

from gi.repository import Gio, GLib

VALID_APP_ID = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\.[A-Za-z0-9_-]+$")
BUS_NAME = "org.freedesktop.portal.Desktop"
PATH = "/org/freedesktop/portal/desktop"

XML = """
<node>
  <interface name="org.freedesktop.host.portal.Registry">
    <method name="Register"><arg type="s" direction="in"/><arg type="a{sv}" direction="in"/></method>
    <property name="version" type="u" access="read"/>
  </interface>
  <interface name="org.freedesktop.portal.GlobalShortcuts">
    <method name="CreateSession">
      <arg type="a{sv}" direction="in"/><arg type="o" direction="out"/>
    </method>
    <method name="BindShortcuts">
      <arg type="o" direction="in"/><arg type="a(sa{sv})" direction="in"/><arg type="s" direction="in"/>
      <arg type="a{sv}" direction="in"/><arg type="o" direction="out"/>
    </method>
    <method name="ListShortcuts">
      <arg type="o" direction="in"/><arg type="a{sv}" direction="in"/><arg type="o" direction="out"/>
    </method>
    <signal name="Activated"><arg type="o"/><arg type="s"/><arg type="t"/><arg type="a{sv}"/></signal>
    <signal name="Deactivated"><arg type="o"/><arg type="s"/><arg type="t"/><arg type="a{sv}"/></signal>
    <signal name="ShortcutsChanged"><arg type="o"/><arg type="a(sa{sv})"/></signal>
    <property name="version" type="u" access="read"/>
  </interface>
</node>
"""
SESSION_XML = """
<node><interface name="org.freedesktop.portal.Session"><method name="Close"/></interface></node>
"""


class Portal:
    def __init__(self):
        self.connection: Gio.DBusConnection | None = None
        self.app_ids: dict[str, str] = {}  # sender → registered app id
        self.called: set[str] = set()  # senders that already made a portal call
        self.sessions: dict[str, dict] = {}  # session path → {"owner", "app_id", "shortcuts", "registration"}
        self.closed: list[str] = []
        self.log: list[str] = []

    # -- D-Bus ---------------------------------------------------------------------------------

    def on_bus(self, connection, _name):
        self.connection = connection
        node = Gio.DBusNodeInfo.new_for_xml(XML)
        for interface in node.interfaces:
            connection.register_object(PATH, interface, self.on_call, self.on_property, None)

    def on_name(self, _connection, _name):
        print("ready", flush=True)

    def on_property(self, _connection, _sender, _path, _interface, name):
        return GLib.Variant("u", 1) if name == "version" else None

    def on_call(self, connection, sender, _path, interface, method, params, invocation):
        self.log.append(f"{interface}.{method}")
        if interface == "org.freedesktop.host.portal.Registry":
            if sender in self.called:
                invocation.return_dbus_error("org.freedesktop.portal.Error.Failed",
                                             "Connection already associated with an application ID")
                return
            app_id = params.unpack()[0]
            self.called.add(sender)
            if len(app_id) > 255 or not VALID_APP_ID.match(app_id):
                invocation.return_dbus_error("org.freedesktop.portal.Error.InvalidArgument",
                                             f"Invalid app ID: {app_id}")
                return
            self.app_ids[sender] = app_id
            invocation.return_value(None)
            return
        self.called.add(sender)
        app_id = self.app_ids.get(sender, "")
        unique = sender.lstrip(":").replace(".", "_")
        if method == "CreateSession":
            (options,) = params.unpack()
            request = f"{PATH}/request/{unique}/{options.get('handle_token', 't')}"
            session = f"{PATH}/session/{unique}/{options.get('session_handle_token', 's')}"
            invocation.return_value(GLib.Variant("(o)", (request,)))
            if not app_id:
                self.respond(sender, request, 2, {})
                return
            registration = connection.register_object(
                session, Gio.DBusNodeInfo.new_for_xml(SESSION_XML).interfaces[0], self.on_session_call, None, None)
            self.sessions[session] = {"owner": sender, "app_id": app_id, "shortcuts": {},
                                      "registration": registration}
            self.respond(sender, request, 0, {"session_handle": GLib.Variant("s", session)})
            return
        session_path, *rest = params.unpack()
        options = rest[-1]
        request = f"{PATH}/request/{unique}/{options.get('handle_token', 't')}"
        invocation.return_value(GLib.Variant("(o)", (request,)))
        session = self.sessions.get(session_path)
        if session is None or session["owner"] != sender:
            self.respond(sender, request, 2, {})
            return
        if method == "BindShortcuts":
            shortcuts, _parent = rest[0], rest[1]
            for shortcut_id, info in shortcuts:
                session["shortcuts"][shortcut_id] = {
                    "description": info.get("description", ""),
                    "preferred_trigger": info.get("preferred_trigger", ""),
                }
        self.respond(sender, request, 0, {"shortcuts": self.shortcuts_variant(session)})

    def on_session_call(self, _connection, sender, path, _interface, _method, _params, invocation):
        session = self.sessions.pop(path, None)
        if session is not None:
            self.connection.unregister_object(session["registration"])
            self.closed.append(path)
        invocation.return_value(None)

    @staticmethod
    def shortcuts_variant(session) -> GLib.Variant:
        return GLib.Variant("a(sa{sv})", [
            (shortcut_id, {"description": GLib.Variant("s", info["description"]),
                           "trigger_description": GLib.Variant("s", info["preferred_trigger"])})
            for shortcut_id, info in session["shortcuts"].items()])

    def respond(self, owner: str, request: str, answer: int, results: dict) -> None:
        def emit():
            self.connection.emit_signal(owner, request, "org.freedesktop.portal.Request", "Response",
                                        GLib.Variant("(ua{sv})", (answer, results)))
            return False

        GLib.idle_add(emit)  # after the method's reply, as the real portal answers later

    # -- commands from the test ------------------------------------------------------------------

    def command(self, line: str) -> bool:
        words = line.split()
        if words[:1] == ["activate"] and len(words) == 2:
            stamp = int(time.time() * 1000)
            count = 0
            for path, session in self.sessions.items():
                if words[1] in session["shortcuts"]:
                    for signal in ("Activated", "Deactivated"):
                        self.connection.emit_signal(
                            session["owner"], PATH, "org.freedesktop.portal.GlobalShortcuts", signal,
                            GLib.Variant("(osta{sv})", (path, words[1], stamp, {})))
                    count += 1
            print(json.dumps({"activated": words[1], "sessions": count}), flush=True)
        elif words == ["state"]:
            print(json.dumps({
                "app_ids": sorted(self.app_ids.values()),
                "sessions": {path: {"app_id": s["app_id"], "shortcuts": s["shortcuts"]}
                             for path, s in self.sessions.items()},
                "closed": self.closed,
                "calls": self.log,
            }), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {line!r}"}), flush=True)
        return False


def main() -> int:
    portal = Portal()
    loop = GLib.MainLoop()
    Gio.bus_own_name(Gio.BusType.SESSION, BUS_NAME, Gio.BusNameOwnerFlags.NONE, portal.on_bus, portal.on_name,
                     lambda *_: loop.quit())

    def read_commands():
        for line in sys.stdin:
            if line.strip():
                GLib.idle_add(portal.command, line.strip())
        GLib.idle_add(loop.quit)

    threading.Thread(target=read_commands, daemon=True).start()
    loop.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
