"""The "Play file…" dialog: a native tkinter open-file dialog in its own process, so that neither
the tray's GUI loop nor the audio ever waits for the user. The dialog's window title is exactly
"Open audio file"; it lists audio files and starts in the last folder used.

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


def ask_in_this_process(initial_dir: str | None) -> str | None:
    """Show the dialog (blocks until the user answers); the chosen path or None. Child side."""
    import tkinter
    from tkinter import filedialog

    root = tkinter.Tk()
    root.withdraw()
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
    def __init__(self, python: str = sys.executable):
        self._python = python
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
            command = [self._python, "-m", "whamsah_tray.app.file_dialog"]
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
    args = parser.parse_args(argv)
    print(json.dumps(ask_in_this_process(args.initial_dir)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
