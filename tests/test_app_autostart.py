"""Start at login: the Linux XDG autostart entry for real (files in a temporary config home); the
Windows Startup shortcut and the macOS LaunchAgent only as far as this Linux machine allows."""

from __future__ import annotations

import configparser
import plistlib
import subprocess
import sys

import pytest

from whamsah_tray.app import autostart
from whamsah_tray.app.autostart import LinuxAutostart, MacAutostart, WindowsAutostart, desktop_entry


def read_desktop_file(path):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_linux_entry_is_created_read_back_and_removed(tmp_path):
    entry = LinuxAutostart(config_home=tmp_path)
    assert not entry.is_enabled()
    entry.enable(["/home/u/.local/bin/whamsah-tray"])
    assert entry.path == tmp_path / "autostart" / "whamsah-tray.desktop"
    assert entry.is_enabled()
    fields = read_desktop_file(entry.path)
    assert fields["Type"] == "Application"
    assert fields["Exec"] == "/home/u/.local/bin/whamsah-tray"
    assert fields["Icon"] == "whamsah-tray"
    assert fields["X-GNOME-Autostart-enabled"] == "true"
    entry.disable()
    assert not entry.is_enabled() and not entry.path.exists()
    entry.disable()  # removing twice is fine


def test_linux_entry_follows_xdg_config_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert LinuxAutostart().path == tmp_path / "cfg" / "autostart" / "whamsah-tray.desktop"


def test_linux_entry_hidden_by_the_desktop_counts_as_off(tmp_path):
    entry = LinuxAutostart(config_home=tmp_path)
    entry.enable(["whamsah-tray"])
    entry.path.write_text(entry.path.read_text() + "Hidden=true\n")
    assert not entry.is_enabled()


def test_exec_line_quotes_paths_with_spaces_as_the_desktop_spec_wants(tmp_path):
    text = desktop_entry(["/opt/my apps/python", "-m", "whamsah_tray"], autostart=False)
    assert 'Exec="/opt/my apps/python" -m whamsah_tray\n' in text
    assert "Autostart" not in text
    text = desktop_entry(['/x/"q"$'], autostart=False)
    assert 'Exec="/x/\\"q\\"\\$"' in text


def test_the_cli_entry_point_used_by_the_linux_installer(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "whamsah_tray.app.autostart", *args],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    assert "off" in run("status")
    run("enable", "/opt/venv/bin/whamsah-tray")
    assert "on" in run("status")
    assert read_desktop_file(tmp_path / "autostart" / "whamsah-tray.desktop")["Exec"] == "/opt/venv/bin/whamsah-tray"
    run("disable")
    assert "off" in run("status")


def test_launch_command_falls_back_to_this_interpreter(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])
    monkeypatch.setenv("PATH", "/nonexistent")
    assert autostart.launch_command() == [sys.executable, "-m", "whamsah_tray"]


def test_windows_startup_shortcut_is_made_through_powershell(tmp_path):
    """mocked: no Windows here. PowerShell and the WScript.Shell COM object cannot run on this
    Linux machine, so the runner is replaced; the test checks the path and the script we send."""
    calls = []

    def fake_powershell(command, **kwargs):
        calls.append(command)
        flags.append(kwargs.get("creationflags", 0))
        shortcut = tmp_path / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup" / "WHAMSAH Tray.lnk"
        shortcut.write_bytes(b"L\x00\x00\x00")  # what CreateShortcut().Save() would leave
        return subprocess.CompletedProcess(command, 0, "", "")

    flags: list[int] = []
    entry = WindowsAutostart(appdata=tmp_path, run=fake_powershell)
    assert not entry.is_enabled()
    entry.enable([r"C:\Users\O'Neil\whamsah\venv\Scripts\whamsah-tray.exe"])
    assert entry.is_enabled()
    command = calls[0]
    assert flags[0] & 0x08000000, "PowerShell must start with CREATE_NO_WINDOW (no console flashes up)"
    assert command[:2] == ["powershell", "-NoProfile"]
    script = command[-1]
    assert "CreateShortcut('" + str(entry.path) + "')" in script
    assert r"TargetPath = 'C:\Users\O''Neil\whamsah\venv\Scripts\whamsah-tray.exe'" in script  # quote doubled
    entry.disable()
    assert not entry.is_enabled()


def test_windows_failure_is_reported(tmp_path):
    """mocked: no Windows here (PowerShell's failure is simulated)."""
    def failing(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "Access denied")

    entry = WindowsAutostart(appdata=tmp_path, run=failing)
    try:
        entry.enable(["x.exe"])
    except OSError as error:
        assert "Access denied" in str(error)
    else:
        raise AssertionError("a failed shortcut must raise")


def test_windows_powershell_that_hangs_is_reported_as_an_os_error(tmp_path):
    """mocked: no Windows here (the timeout is simulated). The tray's menu action catches OSError."""
    def hanging(command, **kwargs):
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    entry = WindowsAutostart(appdata=tmp_path, run=hanging)
    with pytest.raises(OSError, match="did not answer"):
        entry.enable(["x.exe"])
    assert not entry.is_enabled()


def test_macos_launch_agent_plist(tmp_path):
    """mocked: no macOS here. The plist is written for real under a temporary home; that launchd
    starts it at login cannot be checked on Linux."""
    entry = MacAutostart(home=tmp_path)
    entry.enable(["/Users/u/.whamsah/venv/bin/whamsah-tray"])
    assert entry.path == tmp_path / "Library" / "LaunchAgents" / "io.github.whamsah.tray.plist"
    agent = plistlib.loads(entry.path.read_bytes())
    assert agent["Label"] == "io.github.whamsah.tray"
    assert agent["ProgramArguments"] == ["/Users/u/.whamsah/venv/bin/whamsah-tray"]
    assert agent["RunAtLoad"] is True
    entry.disable()
    assert not entry.is_enabled()


def test_the_installers_plist_template_is_the_same_agent():
    from pathlib import Path

    template = Path(__file__).resolve().parent.parent / "installer" / "macos" / "io.github.whamsah.tray.plist"
    agent = plistlib.loads(template.read_bytes())
    assert agent["Label"] == autostart.LAUNCH_AGENT_LABEL
    assert agent["RunAtLoad"] is True


def test_for_platform_picks_the_right_mechanism():
    assert isinstance(autostart.for_platform("linux"), LinuxAutostart)
    assert isinstance(autostart.for_platform("win32"), WindowsAutostart)
    assert isinstance(autostart.for_platform("darwin"), MacAutostart)


def test_start_at_login_runs_off_the_gui_thread_and_ignores_a_second_click(tmp_path):
    """mocked: a Windows shortcut whose PowerShell takes 1 s (no Windows here). The menu action
    returns at once (the tray's GUI thread is not frozen) and a click meanwhile changes nothing."""
    import threading
    import time

    from whamsah_tray.app.actions import TrayActions
    from whamsah_tray.app.profile import ProfileStore

    release = threading.Event()

    def slow_powershell(command, **kwargs):
        release.wait(5)
        shortcut = tmp_path / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup" / "WHAMSAH Tray.lnk"
        shortcut.write_bytes(b"L\x00\x00\x00")
        return subprocess.CompletedProcess(command, 0, "", "")

    store = ProfileStore(tmp_path / "profile.toml", debounce_s=0.0)
    store.load()
    entry = WindowsAutostart(appdata=tmp_path, run=slow_powershell)
    actions = TrayActions(engine=None, store=store, notifier=None, dialog=None, autostart=entry,
                          launch_command=lambda: [r"C:\whamsah\whamsah-tray.exe"], on_quit=lambda: None)
    started = time.monotonic()
    thread = actions.toggle_start_at_login()
    assert time.monotonic() - started < 0.5 and thread is not None
    assert actions.toggle_start_at_login() is None  # a second click while PowerShell runs
    release.set()
    thread.join(5)
    assert entry.is_enabled() and store.profile.startup.start_at_login


class _Approved:
    """mocked: the StartupApproved registry values (no Windows registry here)."""

    def __init__(self, disabled: bool) -> None:
        self.is_disabled, self.forgotten = disabled, []

    def disabled(self, name: str) -> bool:
        return self.is_disabled

    def forget(self, name: str) -> None:
        self.forgotten.append(name)
        self.is_disabled = False


def test_a_shortcut_the_user_switched_off_in_task_manager_shows_unchecked_and_is_switched_on_again(tmp_path):
    """mocked: Task Manager leaves the .lnk in place and marks it disabled in the registry; the
    menu must show that, and choosing Start at login again must clear the mark."""
    def powershell(command, **kwargs):
        (tmp_path / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup" / "WHAMSAH Tray.lnk").write_bytes(b"L")
        return subprocess.CompletedProcess(command, 0, "", "")

    approved = _Approved(disabled=True)
    entry = WindowsAutostart(appdata=tmp_path, run=powershell, approved=approved)
    entry.path.parent.mkdir(parents=True)
    entry.path.write_bytes(b"L")
    assert not entry.is_enabled()
    entry.enable([r"C:\whamsah\whamsah-tray.exe"])
    assert entry.is_enabled() and approved.forgotten == ["WHAMSAH Tray.lnk"]


def test_a_launch_agent_switched_off_in_login_items_shows_unchecked(tmp_path):
    """mocked: `launchctl print-disabled` as macOS 13 prints it once 'Allow in the Background' is off."""
    listing = '\tdisabled services = {\n\t\t"io.github.whamsah.tray" => disabled\n\t\t"com.other" => enabled\n\t}\n'
    calls = []

    def launchctl(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, listing, "")

    entry = MacAutostart(home=tmp_path, run=launchctl)
    entry.enable(["/usr/local/bin/whamsah-tray"])
    assert entry.path.exists() and not entry.is_enabled()
    assert any(c[:2] == ["launchctl", "enable"] for c in calls)
    listing = listing.replace("=> disabled", "=> enabled")
    assert entry.is_enabled()
