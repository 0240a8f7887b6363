"""One tray per user: a second `whamsah-tray` would fight the first over the devices and the cable.
An exclusive lock on `<profile folder>/tray.lock` (released by the OS when the process ends, even
if it crashes) marks the running one; the file holds its process id for the message.

Threads: the main thread, at start and at exit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from whamsah_tray.errors import WhamsahError


class AlreadyRunningError(WhamsahError):
    """Another tray of this user holds the lock."""


class SingleInstance:
    def __init__(self, folder: Path):
        self.path = Path(folder) / "tray.lock"
        self._file = None

    def __enter__(self) -> "SingleInstance":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")
        try:
            if sys.platform == "win32":
                import msvcrt

                file.seek(0)
                msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:  # on Windows the holder's lock on byte 0 is mandatory: reading it fails there
                file.seek(0)
                other = file.read().strip() or "?"
            except OSError:
                other = "?"
            file.close()
            raise AlreadyRunningError(
                f"WHAMSAH Tray is already running (process {other}); use its tray icon, or quit it first"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            # Truncate rather than delete: deleting would let a third process lock a new file
            # while a second one still holds the old, unlinked one.
            self._file.seek(0)
            self._file.truncate()
            self._file.close()
            self._file = None
