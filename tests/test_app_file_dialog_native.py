"""The GTK "Play file…" dialog (Gtk.FileChooserNative; with no file chooser portal on the test
session bus, GTK shows its own chooser) as a real window on the test desktop, driven with xdotool
the way a user would: found by its exact title, a file name typed, Return chooses; Escape cancels.
On Linux it is the default; Tk's dialog stays the fallback (tests/test_app_file_dialog.py).
"""

from __future__ import annotations

import threading
import time

import pytest

from whamsah_tray.app.file_dialog import DIALOG_TITLE, FileDialog, default_toolkit

pytestmark = pytest.mark.desktop


@pytest.fixture
def gtk(desktop):
    gi = pytest.importorskip("gi", reason="PyGObject is not installed (pip install 'PyGObject<3.50' pycairo)")
    try:
        gi.require_version("Gtk", "3.0")
    except ValueError:
        pytest.skip("GTK 3 typelibs are not installed (apt-get install gir1.2-gtk-3.0)")
    return desktop


def find_dialog(desktop, timeout=20.0) -> str:
    return desktop.run("xdotool", "search", "--sync", "--onlyvisible", "--name", f"^{DIALOG_TITLE}$",
                       timeout=timeout).split()[0]


def dialog_windows(desktop) -> list[str]:
    return desktop.run("xdotool", "search", "--onlyvisible", "--name", f"^{DIALOG_TITLE}$", check=False).split()


def wait_closed(dialog: FileDialog, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while dialog.is_open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not dialog.is_open


def is_gtk_window(desktop, window: str) -> bool:
    """GTK names a window's class after the program (file_dialog.py); Tk's class is Tk."""
    search = lambda *how: desktop.run("xdotool", "search", "--onlyvisible", *how, check=False).split()
    return window in search("--classname", "file_dialog") and window not in search("--class", "Tk")


def test_gtk_is_the_default_on_linux(monkeypatch):
    monkeypatch.delenv("WHAMSAH_FILE_DIALOG", raising=False)
    assert default_toolkit() == "gtk"
    assert FileDialog().toolkit == "auto"  # GTK, falling back to Tk where GTK cannot start
    monkeypatch.setenv("WHAMSAH_FILE_DIALOG", "tk")
    assert FileDialog().toolkit == "tk"


def test_gtk_dialog_starts_in_the_last_folder_and_reports_the_chosen_file(gtk, tmp_path):
    desktop = gtk
    (tmp_path / "notes.txt").write_text("not audio")
    chosen_file = tmp_path / "song one.flac"
    chosen_file.write_bytes(b"fLaC")
    chosen, done = [], threading.Event()
    errors: list[str] = []
    dialog = FileDialog(toolkit="gtk")
    assert dialog.open(str(tmp_path), lambda path: (chosen.append(path), done.set()), on_error=errors.append)
    window = find_dialog(desktop)
    assert is_gtk_window(desktop, window), "the dialog is Tk's, not GTK's"
    assert not dialog.open(str(tmp_path), lambda path: None)  # one at a time
    desktop.run("xdotool", "windowfocus", "--sync", window)
    time.sleep(0.5)  # GTK reads the folder after mapping the window
    # Only the name: GTK's location entry completes it in the folder the dialog started in.
    desktop.run("xdotool", "type", "--delay", "30", chosen_file.name)
    time.sleep(0.4)  # GTK's location entry ignores a Return within ~0.1 s of the last key (still completing)
    desktop.run("xdotool", "key", "Return")
    assert done.wait(10), f"the dialog did not report a choice (errors: {errors})"
    assert chosen == [str(chosen_file)]
    wait_closed(dialog)
    assert dialog_windows(desktop) == []


def test_gtk_dialog_cancel_does_nothing(gtk, tmp_path):
    desktop = gtk
    chosen: list[str] = []
    dialog = FileDialog(toolkit="gtk")
    dialog.open(str(tmp_path), chosen.append, on_error=chosen.append)
    window = find_dialog(desktop)
    desktop.run("xdotool", "windowfocus", "--sync", window)
    time.sleep(0.3)
    desktop.run("xdotool", "key", "Escape")
    wait_closed(dialog)
    time.sleep(0.3)  # the waiter thread
    assert chosen == []


def test_gtk_dialog_closes_at_quit(gtk, tmp_path):
    desktop = gtk
    errors: list[str] = []
    dialog = FileDialog(toolkit="gtk")
    dialog.open(str(tmp_path), lambda p: None, on_error=errors.append)
    find_dialog(desktop)
    dialog.close()
    assert not dialog.is_open
    deadline = time.monotonic() + 5
    while dialog_windows(desktop) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dialog_windows(desktop) == []
    assert errors == []


def test_macos_uses_its_own_open_dialog_through_osascript(monkeypatch):
    """mocked: no macOS here; osascript's answers (a chosen file, the user's cancel -128) are
    stand-ins for what `choose file` prints. Homebrew's Python has no tkinter, so the Mac dialog
    must not need it."""
    import subprocess

    from whamsah_tray.app import file_dialog

    monkeypatch.setattr(file_dialog.sys, "platform", "darwin")
    monkeypatch.delenv("WHAMSAH_FILE_DIALOG", raising=False)
    assert file_dialog.default_toolkit() == "osascript"
    assert file_dialog.FileDialog().toolkit == "osascript"
    command = file_dialog.osascript_command("/Users/ana/Music")
    assert command[:3] == ["osascript", "-e", "tell me to activate"]
    assert 'choose file with prompt "Open audio file" of type {"wav", "flac", "mp3", "ogg"' in command[4]
    assert 'default location (POSIX file "/Users/ana/Music")' not in command[4]  # no such folder here

    def chose(command, **kwargs):
        return subprocess.CompletedProcess(command, 0, "/Users/ana/Music/song.flac\n", "")

    def cancelled(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "execution error: User canceled. (-128)\n")
    assert file_dialog.ask_with_osascript(None, run=chose) == "/Users/ana/Music/song.flac"
    assert file_dialog.ask_with_osascript(None, run=cancelled) is None
