"""Tk's "Play file…" dialog (the fallback on Linux, the system's dialog on Windows and macOS) is a
real Tk window in its own process, driven here with xdotool the way a user would: it is found by
its exact title, a path is typed, Return chooses; Escape cancels. GTK's, the default on Linux:
tests/test_app_file_dialog_native.py."""

from __future__ import annotations

import threading
import time

import pytest

from whamsah_tray.app.file_dialog import DIALOG_TITLE, FileDialog

pytestmark = pytest.mark.desktop


def find_dialog(desktop, timeout=15.0) -> str:
    output = desktop.run("xdotool", "search", "--sync", "--onlyvisible", "--name", f"^{DIALOG_TITLE}$",
                         timeout=timeout)
    return output.split()[0]


def dialog_windows(desktop) -> list[str]:
    return desktop.run("xdotool", "search", "--onlyvisible", "--name", f"^{DIALOG_TITLE}$", check=False).split()


def test_dialog_starts_in_the_last_folder_and_reports_the_chosen_path(desktop, tmp_path):
    chosen_file = tmp_path / "song one.wav"
    chosen_file.write_bytes(b"RIFF")
    chosen = []
    done = threading.Event()
    dialog = FileDialog(toolkit="tk")
    opened_at = time.monotonic()
    assert dialog.open(str(tmp_path), lambda path: (chosen.append(path), done.set()))
    assert time.monotonic() - opened_at < 0.5  # open() never waits for the user
    window = find_dialog(desktop)
    assert dialog.is_open
    # Asking again while it is open does not stack a second dialog.
    assert not dialog.open(str(tmp_path), lambda path: None)
    desktop.run("xdotool", "windowfocus", "--sync", window)
    # Only the name: the dialog must have started in the folder it was given (the last folder).
    desktop.run("xdotool", "type", "--delay", "20", chosen_file.name)
    desktop.run("xdotool", "key", "Return")
    assert done.wait(10), "the dialog did not report a choice"
    assert chosen == [str(chosen_file)]
    deadline = time.monotonic() + 5
    while dialog.is_open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not dialog.is_open
    assert dialog_windows(desktop) == []


def test_cancel_does_nothing(desktop, tmp_path):
    chosen = []
    dialog = FileDialog(toolkit="tk")
    dialog.open(str(tmp_path), chosen.append, on_error=chosen.append)
    window = find_dialog(desktop)
    desktop.run("xdotool", "windowfocus", "--sync", window)
    desktop.run("xdotool", "key", "Escape")
    deadline = time.monotonic() + 10
    while dialog.is_open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not dialog.is_open
    time.sleep(0.3)  # let the waiter thread finish
    assert chosen == []


def test_close_removes_an_open_dialog(desktop, tmp_path):
    dialog = FileDialog(toolkit="tk")
    errors = []
    dialog.open(str(tmp_path), lambda p: None, on_error=errors.append)
    find_dialog(desktop)
    dialog.close()
    assert not dialog.is_open
    deadline = time.monotonic() + 5
    while dialog_windows(desktop) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dialog_windows(desktop) == []
    assert errors == []  # closing at quit is not an error to show the user
