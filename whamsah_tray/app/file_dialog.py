"""The "Play file…" dialog, in its own process, so that neither the tray's GUI loop nor the audio
ever waits for the user. The dialog's window title is exactly "Open audio file"; it lists audio
files and starts in the last folder used.

Which dialog: on Linux with GTK 3 (PyGObject), `Gtk.FileChooserNative`, the desktop's own file
chooser (through the xdg-desktop-portal FileChooser where a portal runs, so KDE shows its own);
on Windows and macOS, and as the fallback, Tk's, which there is the system's dialog.
`WHAMSAH_FILE_DIALOG=gtk|tk` overrides the choice.

`FileDialog.open(initial_dir, on_chosen)` starts `python -m whamsah_tray.app.file_dialog` and returns
at once; a waiter thread reads the chosen path from the child's stdout and calls `on_chosen(path)`
(cancel: nothing is called). One dialog at a time; asking again while one is open does nothing.

Threads: `open` runs on the tray's GUI thread or a hotkey thread; `on_chosen` runs on the waiter
thread (it should only send a command to the engine). The child process runs Tk on its main thread.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

DIALOG_TITLE = "Open audio file"
AUDIO_EXTENSIONS = ("wav", "flac", "mp3", "ogg", "oga", "opus", "aif", "aiff")


def _patterns() -> str:
    # Tk's patterns are case-sensitive on X11: list both cases.
    return " ".join(f"*.{e} *.{e.upper()}" for e in AUDIO_EXTENSIONS)


def default_toolkit() -> str:
    """gtk on Linux, osascript on macOS (the system's own dialog, brought to the front; Homebrew's
    Python has no tkinter), tk on Windows (Tk uses the system's dialog there) and as the fallback."""
    wanted = os.environ.get("WHAMSAH_FILE_DIALOG", "auto")
    if wanted in ("gtk", "tk", "osascript"):
        return wanted
    if sys.platform == "darwin":
        return "osascript"
    return "gtk" if sys.platform.startswith("linux") else "tk"


def _file_chooser_portal_runs() -> bool:
    """Whether the session bus has xdg-desktop-portal's FileChooser, which shows the desktop's own
    dialog (KDE's on Plasma). GTK 3 outside a sandbox uses it only when GTK_USE_PORTAL=1."""
    try:
        from gi.repository import Gio, GLib

        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        bus.call_sync("org.freedesktop.portal.Desktop", "/org/freedesktop/portal/desktop",
                      "org.freedesktop.DBus.Properties", "Get",
                      GLib.Variant("(ss)", ("org.freedesktop.portal.FileChooser", "version")),
                      GLib.VariantType("(v)"), Gio.DBusCallFlags.NONE, 1500, None)
        return True
    except Exception:  # no portal, no FileChooser in it, no session bus: GTK's own dialog then
        return False


def ask_with_gtk(initial_dir: str | None) -> str | None:
    """Gtk.FileChooserNative (blocks until the user answers); the chosen path or None. Child side.
    ImportError/ValueError/RuntimeError when GTK 3 cannot be used here."""
    import gi

    if "GTK_USE_PORTAL" not in os.environ and _file_chooser_portal_runs():
        os.environ["GTK_USE_PORTAL"] = "1"
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk

    if not Gtk.init_check(None)[0]:
        raise RuntimeError("GTK cannot open the display")
    dialog = Gtk.FileChooserNative.new(DIALOG_TITLE, None, Gtk.FileChooserAction.OPEN, "_Open", "_Cancel")
    audio = Gtk.FileFilter()
    audio.set_name("Audio files")
    for pattern in _patterns().split():
        audio.add_pattern(pattern)
    everything = Gtk.FileFilter()
    everything.set_name("All files")
    everything.add_pattern("*")
    dialog.add_filter(audio)
    dialog.add_filter(everything)
    if not initial_dir or not os.path.isdir(initial_dir):
        initial_dir = str(Path.home())
    dialog.set_current_folder(initial_dir)
    answer = dialog.run()
    chosen = dialog.get_filename() if answer == Gtk.ResponseType.ACCEPT else None
    dialog.destroy()
    while Gtk.events_pending():  # let the window go before the process ends
        Gtk.main_iteration()
    return chosen or None


def osascript_command(initial_dir: str | None) -> list[str]:
    """macOS's own Open dialog through AppleScript's `choose file`, in front of other windows."""
    types = ", ".join(f'"{e}"' for e in AUDIO_EXTENSIONS)

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    script = [f"set chosen to choose file with prompt {quoted(DIALOG_TITLE)} of type {{{types}}}"]
    if initial_dir and os.path.isdir(initial_dir):
        script[0] += f" default location (POSIX file {quoted(initial_dir)})"
    return ["osascript", "-e", "tell me to activate", "-e", script[0], "-e", "POSIX path of chosen"]


def ask_with_osascript(initial_dir: str | None, run=subprocess.run) -> str | None:
    done = run(osascript_command(initial_dir), capture_output=True, text=True)
    if done.returncode != 0:  # -128: the user cancelled
        if "-128" in done.stderr:
            return None
        raise RuntimeError(done.stderr.strip() or f"osascript exit status {done.returncode}")
    return done.stdout.strip() or None


def ask_in_this_process(initial_dir: str | None, toolkit: str = "tk") -> str | None:
    """Show the dialog (blocks until the user answers); the chosen path or None. Child side.
    toolkit "auto" tries GTK and falls back to Tk."""
    if toolkit == "osascript":
        return ask_with_osascript(initial_dir)
    if toolkit in ("gtk", "auto"):
        try:
            return ask_with_gtk(initial_dir)
        except (ImportError, ValueError, RuntimeError) as error:
            if toolkit == "gtk":
                raise
            log.info("GTK's file dialog is unavailable (%s): Tk's is used", error)
    import tkinter
    from tkinter import filedialog

    root = tkinter.Tk()
    root.withdraw()
    # Started from the tray (no window of its own), the dialog could open behind other windows.
    root.attributes("-topmost", True)
    root.lift()
    try:
        if not initial_dir or not os.path.isdir(initial_dir):
            initial_dir = str(Path.home())
        chosen = filedialog.askopenfilename(
            parent=root,
            title=DIALOG_TITLE,
            initialdir=initial_dir,
            filetypes=[("Audio files", _patterns()), ("All files", "*")],
        )
    finally:
        root.destroy()
    return chosen or None


class FileDialog:
    def __init__(self, python: str = sys.executable, toolkit: str | None = None):
        """toolkit: "gtk", "tk", or "auto" (GTK, else Tk); None: `default_toolkit()`, with the
        fallback to Tk when it is gtk."""
        self._python = python
        chosen = default_toolkit()
        self.toolkit = toolkit or ("auto" if chosen == "gtk" else chosen)
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._process is not None and self._process.poll() is None

    def open(self, initial_dir: str | None, on_chosen: Callable[[str], None],
             on_error: Callable[[str], None] | None = None) -> bool:
        """Open the dialog unless one is open already; returns whether a new one was started."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return False
            command = [self._python, "-m", "whamsah_tray.app.file_dialog", "--toolkit", self.toolkit]
            if initial_dir:
                command += ["--initial-dir", initial_dir]
            try:
                process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           stdin=subprocess.DEVNULL, text=True)
            except OSError as error:
                if on_error:
                    on_error(f"could not open the file dialog: {error}")
                return False
            self._process = process
        threading.Thread(target=self._wait, args=(process, on_chosen, on_error),
                         name="file-dialog-waiter", daemon=True).start()
        return True

    def _wait(self, process: subprocess.Popen, on_chosen, on_error) -> None:
        out, err = process.communicate()
        with self._lock:
            if self._process is process:
                self._process = None
        if process.returncode != 0:
            message = (err.strip().splitlines() or [f"exit status {process.returncode}"])[-1]
            if process.returncode > 0 and on_error:  # < 0: killed by close(), nothing to report
                on_error(f"the file dialog failed: {message}")
            return
        try:
            chosen = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
        except (ValueError, IndexError):
            chosen = None
        if chosen:
            on_chosen(chosen)

    def close(self) -> None:
        """Close an open dialog (at quit)."""
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                process.kill()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Show the 'Open audio file' dialog; print the choice as JSON.")
    parser.add_argument("--initial-dir", default=None)
    parser.add_argument("--toolkit", choices=("gtk", "tk", "auto", "osascript"), default="tk")
    args = parser.parse_args(argv)
    print(json.dumps(ask_in_this_process(args.initial_dir, args.toolkit)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
