"""Start at login: the one place that creates, removes and reads back the autostart entry. The tray's
"Start at login" check and the installers use these same files:

- Linux: an XDG autostart entry, `$XDG_CONFIG_HOME/autostart/whamsah-tray.desktop`
  (`python -m whamsah_tray.app.autostart enable|disable|status` is what installer/linux calls).
- Windows: a shortcut `WHAMSAH Tray.lnk` in the user's Startup folder, made through the
  WScript.Shell COM object by PowerShell (the same way installer/windows/install.ps1 makes it).
- macOS: a LaunchAgent, `~/Library/LaunchAgents/io.github.whamsah.tray.plist`, with RunAtLoad.

The menu shows what is on disk (`is_enabled()`), never a remembered flag.

Threads: called from the tray's GUI thread (file writes of a few hundred bytes) and from the CLI.
"""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

from whamsah_tray.app.profile import write_atomically

APP_DISPLAY_NAME = "WHAMSAH Tray"
DESKTOP_FILE_NAME = "whamsah-tray.desktop"
WINDOWS_SHORTCUT_NAME = f"{APP_DISPLAY_NAME}.lnk"
LAUNCH_AGENT_LABEL = "io.github.whamsah.tray"


def launch_command() -> list[str]:
    """How to start the tray app again: the `whamsah-tray` launcher this process was started from
    (or the one on PATH), else `python -m whamsah_tray` with this interpreter. On Windows,
    `pythonw.exe -m whamsah_tray` (no console window), as installer/windows/install.ps1 does."""
    if sys.platform == "win32":
        pythonw = Path(sys.executable).with_name("pythonw.exe")
        if pythonw.exists():
            return [str(pythonw), "-m", "whamsah_tray"]
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name.startswith("whamsah-tray") and argv0.exists():
        return [str(argv0.resolve() if not argv0.is_absolute() else argv0)]
    found = shutil.which("whamsah-tray")
    if found:
        return [found]
    return [sys.executable, "-m", "whamsah_tray"]


def _desktop_exec(command: Sequence[str]) -> str:
    """Quote arguments as the Desktop Entry spec wants: double quotes, with \\ " ` $ escaped."""
    def quote(arg: str) -> str:
        if arg and not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`'):
            return arg
        escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
        return f'"{escaped}"'

    return " ".join(quote(a) for a in command)


def desktop_entry(command: Sequence[str], *, icon: str = "whamsah-tray", autostart: bool) -> str:
    """The text of a .desktop file that starts `command` (the menu entry and the autostart entry)."""
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        f"Name={APP_DISPLAY_NAME}",
        "GenericName=Live karaoke",
        "Comment=Turns any application's audio into karaoke, live",
        f"Exec={_desktop_exec(command)}",
        f"Icon={icon}",
        "Terminal=false",
        "Categories=AudioVideo;Audio;Mixer;",
        "Keywords=karaoke;vocals;instrumental;separation;",
    ]
    if autostart:
        lines += ["X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-Delay=3"]
    return "\n".join(lines) + "\n"


class LinuxAutostart:
    def __init__(self, config_home: Path | None = None):
        if config_home is None:
            config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        self.path = Path(config_home) / "autostart" / DESKTOP_FILE_NAME

    def is_enabled(self) -> bool:
        # A user may disable an entry from their desktop's settings with Hidden=true.
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        return "\nHidden=true" not in text

    def enable(self, command: Sequence[str]) -> None:
        write_atomically(self.path, desktop_entry(command, autostart=True).encode("utf-8"))

    def disable(self) -> None:
        self.path.unlink(missing_ok=True)


CREATE_NO_WINDOW = 0x08000000  # subprocess.CREATE_NO_WINDOW, defined on Windows only


def _powershell_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


STARTUP_APPROVED_KEY = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\StartupFolder"


class StartupApproved:
    """Task Manager's (and Settings' Startup apps) switch for a Startup-folder shortcut: a binary
    value named after the .lnk under HKCU\\STARTUP_APPROVED_KEY whose first byte is even (02, 06)
    while enabled and odd (03, 07) once the user disabled it; no value: enabled. Windows only."""

    def disabled(self, name: str) -> bool:
        try:
            import winreg  # type: ignore[import-not-found]
        except ImportError:  # not Windows
            return False
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, STARTUP_APPROVED_KEY) as key:
                data, _ = winreg.QueryValueEx(key, name)
        except OSError:
            return False
        return bool(data) and bool(data[0] & 1)

    def forget(self, name: str) -> None:
        """Remove the user's earlier 'disabled', so that a shortcut made again runs."""
        try:
            import winreg  # type: ignore[import-not-found]
        except ImportError:  # not Windows
            return
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, STARTUP_APPROVED_KEY, 0, winreg.KEY_SET_VALUE) as key:
                winreg.DeleteValue(key, name)
        except OSError:
            pass


class WindowsAutostart:
    """A Startup-folder shortcut. Creating a .lnk needs the Shell's COM object, reached through
    PowerShell so that no extra Python package is needed. Enabled = the shortcut exists and the user
    has not switched it off in Task Manager (StartupApproved), which leaves the file in place."""

    def __init__(self, appdata: Path | None = None,
                 run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                 approved: StartupApproved | None = None):
        if appdata is None:
            appdata = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
        self.path = Path(appdata) / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup" / WINDOWS_SHORTCUT_NAME
        self._run = run
        self._approved = approved or StartupApproved()

    def is_enabled(self) -> bool:
        return self.path.exists() and not self._approved.disabled(self.path.name)

    def enable(self, command: Sequence[str]) -> None:
        target, *arguments = command
        script = (
            f"$s = (New-Object -ComObject WScript.Shell).CreateShortcut({_powershell_quote(str(self.path))}); "
            f"$s.TargetPath = {_powershell_quote(target)}; "
            f"$s.Arguments = {_powershell_quote(subprocess.list2cmdline(arguments))}; "
            f"$s.WorkingDirectory = {_powershell_quote(str(Path(target).parent))}; "
            "$s.WindowStyle = 7; $s.Save()"
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # CREATE_NO_WINDOW: a console window flashed up for the tray app (pythonw has none).
            result = self._run(["powershell", "-NoProfile", "-NonInteractive", "-Command", script],
                               capture_output=True, text=True, timeout=30,
                               creationflags=getattr(subprocess, "CREATE_NO_WINDOW", CREATE_NO_WINDOW))
        except subprocess.TimeoutExpired:
            raise OSError(f"could not create {self.path}: PowerShell did not answer in 30 s") from None
        if result.returncode != 0:
            raise OSError(f"could not create {self.path}: {result.stderr.strip() or result.returncode}")
        self._approved.forget(self.path.name)

    def disable(self) -> None:
        self.path.unlink(missing_ok=True)


def launch_agent_plist(command: Sequence[str]) -> bytes:
    return plistlib.dumps({
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": list(command),
        "RunAtLoad": True,
        "KeepAlive": False,
        "ProcessType": "Interactive",
    })


class MacAutostart:
    """A LaunchAgent. Enabled = the plist exists and launchd has not been told to skip it (macOS 13+
    'Allow in the Background' switched off in System Settings; `launchctl print-disabled` lists it)."""

    def __init__(self, home: Path | None = None,
                 run: Callable[..., subprocess.CompletedProcess] = subprocess.run):
        home = Path(home) if home is not None else Path.home()
        self.path = home / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT_LABEL}.plist"
        self._run = run

    def is_enabled(self) -> bool:
        return self.path.exists() and not self._disabled_by_user()

    def _disabled_by_user(self) -> bool:
        if sys.platform == "win32":  # no launchd (and no os.getuid)
            return False
        try:
            done = self._run(["launchctl", "print-disabled", f"gui/{os.getuid()}"],
                             capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return False
        for line in done.stdout.splitlines():  # '"io.github.whamsah.tray" => disabled' (older: => true)
            if f'"{LAUNCH_AGENT_LABEL}"' in line:
                return line.rsplit("=>", 1)[-1].strip() in ("disabled", "true")
        return False

    def enable(self, command: Sequence[str]) -> None:
        # launchd reads LaunchAgents at login; RunAtLoad starts the app then. `launchctl enable`
        # lifts an earlier 'disabled' (the user asked for it again, here).
        write_atomically(self.path, launch_agent_plist(command))
        if sys.platform == "win32":
            return
        try:
            self._run(["launchctl", "enable", f"gui/{os.getuid()}/{LAUNCH_AGENT_LABEL}"],
                      capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def disable(self) -> None:
        self.path.unlink(missing_ok=True)


def for_platform(platform: str | None = None) -> LinuxAutostart | WindowsAutostart | MacAutostart:
    platform = platform or sys.platform
    if platform == "win32":
        return WindowsAutostart()
    if platform == "darwin":
        return MacAutostart()
    return LinuxAutostart()


def main(argv: list[str] | None = None) -> int:
    """`python -m whamsah_tray.app.autostart enable [COMMAND...] | disable | status`."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("enable", "disable", "status"):
        print("usage: python -m whamsah_tray.app.autostart enable [COMMAND ...] | disable | status", file=sys.stderr)
        return 2
    entry = for_platform()
    if argv[0] == "enable":
        command = argv[1:] or launch_command()
        entry.enable(command)
        print(f"start at login: on ({entry.path} runs {shlex.join(command)})")
    elif argv[0] == "disable":
        entry.disable()
        print(f"start at login: off ({entry.path} removed)")
    else:
        print(f"start at login: {'on' if entry.is_enabled() else 'off'} ({entry.path})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
