"""Global shortcuts through the XDG GlobalShortcuts portal, as on a Wayland desktop. No real GNOME or
KDE can run on the headless test machine, so the desktop's portal is a test double
(tests/portal_double.py) on the test session bus, implementing the host registry and the
GlobalShortcuts interface as the spec says. Everything on our side is real: a tray with its real
engine on the PulseAudio null sinks, forced to the portal (WHAMSAH_HOTKEYS=portal, as a Wayland
session would choose), registers, opens a session, binds the profile's hotkeys, and a scripted
`Activated` signal changes the engine and the profile.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import tray_driver as drive
from in_process_tray import running_tray
from whamsah_tray.app.portal_shortcuts import PortalShortcuts, hotkey_mechanism, portal_trigger

pytestmark = pytest.mark.desktop

HERE = Path(__file__).resolve().parent


class PortalDouble:
    def __init__(self):
        self.process = subprocess.Popen([sys.executable, str(HERE / "portal_double.py")], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().strip()
        assert line == "ready", f"the portal double did not start: {line!r}"

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def state(self) -> dict:
        return self.ask("state")

    def activate(self, shortcut: str) -> int:
        return self.ask(f"activate {shortcut}")["sessions"]

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def portal(desktop):
    pytest.importorskip("gi", reason="PyGObject is not installed (pip install 'PyGObject<3.50' pycairo)")
    double = PortalDouble()
    yield double
    double.close()


@pytest.fixture(scope="module")
def tray(portal, desktop, portaudio, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("WHAMSAH_HOTKEYS", "portal")
    with running_tray(tmp_path_factory.mktemp("portal"), "tray-with-portal",
                      audio={"input_device": desktop.cable_monitor, "output_device": desktop.speakers},
                      levels={"vocals": 100, "instrumental": 100, "bypass": False},
                      hotkeys={"instrumental_down": ""}) as running:  # turned off: not offered to the desktop
        yield running


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_profile_hotkeys_become_the_specs_triggers():
    assert portal_trigger("<ctrl>+<alt>+v") == "CTRL+ALT+v"
    assert portal_trigger("<ctrl>+<alt>+<page_down>") == "CTRL+ALT+Page_Down"
    assert portal_trigger("<shift>+<cmd>+<f5>") == "SHIFT+LOGO+F5"
    assert portal_trigger("<ctrl>+<alt>+<up>") == "CTRL+ALT+Up"
    with pytest.raises(ValueError):
        portal_trigger("")


def test_the_portal_is_chosen_on_wayland_and_pynput_on_x11(monkeypatch):
    monkeypatch.delenv("WHAMSAH_HOTKEYS", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
    assert hotkey_mechanism() == "pynput"
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    assert hotkey_mechanism() == "portal"
    monkeypatch.setenv("XDG_SESSION_TYPE", "tty")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert hotkey_mechanism() == "portal"
    monkeypatch.setenv("WHAMSAH_HOTKEYS", "pynput")
    assert hotkey_mechanism() == "pynput"


def test_the_tray_registers_and_binds_the_profile_hotkeys(tray, portal):
    assert isinstance(tray.app.hotkeys, PortalShortcuts)
    assert drive.wait_until(lambda: tray.app.hotkeys.active, 10), "the shortcuts were never bound"
    state = portal.state()
    assert state["app_ids"] == ["io.github.whamsah.tray"]  # reverse-DNS: the portal refuses others
    assert state["calls"][0] == "org.freedesktop.host.portal.Registry.Register"  # before anything else
    (session,) = state["sessions"].values()
    assert session["app_id"] == "io.github.whamsah.tray"
    shortcuts = session["shortcuts"]
    assert shortcuts["toggle_vocals"] == {"description": "Vocals on/off", "preferred_trigger": "CTRL+ALT+v"}
    assert shortcuts["key_down"]["preferred_trigger"] == "CTRL+ALT+Page_Down"
    assert shortcuts["bypass"]["preferred_trigger"] == "CTRL+ALT+b"
    assert "instrumental_down" not in shortcuts  # turned off in the profile
    assert tray.app.hotkeys.active["toggle_vocals"] == "CTRL+ALT+v"  # what the desktop reported back


def test_activated_toggles_vocals_and_the_profile(tray, portal):
    assert drive.wait_until(lambda: tray.app.hotkeys.active, 10)
    assert portal.activate("toggle_vocals") == 1
    tray.wait_engine(lambda s: round(s.vocals) == 0, "vocals muted by the portal's Activated")
    tray.wait_profile("levels", "vocals", 0)
    portal.activate("toggle_vocals")
    tray.wait_engine(lambda s: round(s.vocals) == 100, "vocals back by Activated")
    tray.wait_profile("levels", "vocals", 100)
    portal.activate("vocals_down")
    tray.wait_engine(lambda s: round(s.vocals) == 90, "vocals down a step")
    portal.activate("bypass")
    tray.wait_engine(lambda s: s.bypass, "bypass by Activated")
    portal.activate("bypass")
    tray.wait_engine(lambda s: not s.bypass, "bypass off by Activated")
    portal.activate("key_up")
    tray.wait_engine(lambda s: s.key == 1, "key up by Activated")
    portal.activate("key_down")
    portal.activate("vocals_up")
    tray.wait_engine(lambda s: s.key == 0 and round(s.vocals) == 100, "key and vocals back")


def test_an_app_id_the_portal_refuses_means_no_session_and_says_why(portal):
    """xdg-desktop-portal refuses a non-reverse-DNS id (the double does the same) and then gives
    no shortcuts session to an unidentified host app: the client reports it instead of waiting."""
    reasons: list[str] = []
    told = threading.Event()
    client = PortalShortcuts({"toggle_vocals": "<ctrl>+<alt>+v"}, {"toggle_vocals": lambda: None},
                             on_unavailable=lambda reason: (reasons.append(reason), told.set()),
                             app_id="whamsah-tray")
    client.start()
    assert told.wait(10)
    client.stop()
    assert reasons == ["the desktop refused a shortcuts session (response 2)"]


def test_without_a_portal_the_user_is_told_to_bind_ctl(desktop, tmp_path):
    """No portal on the bus: the client says why, once; the tray turns that into the hint to bind
    `whamsah-tray ctl` (checked on a second, private bus so that the double above does not answer)."""
    pytest.importorskip("gi", reason="PyGObject is not installed")
    config = tmp_path / "bus.conf"
    config.write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={tmp_path}/bus</listen>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/></policy></busconfig>""")
    bus = subprocess.Popen(["dbus-daemon", "--config-file", str(config), "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, text=True)
    try:
        address = bus.stdout.readline().strip()
        reasons: list[str] = []
        told = threading.Event()
        client = PortalShortcuts({"toggle_vocals": "<ctrl>+<alt>+v"}, {"toggle_vocals": lambda: None},
                                 on_unavailable=lambda reason: (reasons.append(reason), told.set()),
                                 bus_address=address)
        client.start()
        assert told.wait(10), "the client never said the portal is missing"
        client.stop()
        assert reasons == ["no desktop portal on the session bus"]
        assert client.active == {}
    finally:
        bus.terminate()
        bus.wait(5)


def test_a_failed_portal_becomes_one_notification_pointing_to_ctl(tray):
    tray.app._hotkeys_unavailable("no desktop portal on the session bus")
    tray.app._hotkeys_unavailable("no desktop portal on the session bus")
    told = [message for title, message in tray.app.notifier.history if title == "Hotkeys"]
    assert len(told) == 1
    assert "no desktop portal" in told[0] and "`whamsah-tray ctl toggle-vocals`" in told[0]
    tray.app.notifier.resolve("hotkeys")


def test_quitting_closes_the_portal_session(tray, portal):
    """Last in the module: stopping the client closes its session on the desktop."""
    session = tray.app.hotkeys.session_handle
    tray.app.hotkeys.stop()
    assert drive.wait_until(lambda: session in portal.state()["closed"], 5)
