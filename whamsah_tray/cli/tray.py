"""`whamsah-tray` with no command: the tray app. Not a subcommand (cli/__init__.py calls `run` when
no command is given). Loads the profile, picks the tray backend (a missing display is a clear error
that points to `whamsah-tray run`), and runs the tray on the main thread until Quit.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_MAX_BYTES = 1_000_000  # one file of at most 1 MB and the one before it


def log_file_path() -> Path:
    """whamsah-tray.log in the user's log folder (Linux ~/.local/state/whamsah-tray/log, Windows
    %LOCALAPPDATA%\\whamsah-tray\\whamsah-tray\\Logs, macOS ~/Library/Logs/whamsah-tray)."""
    import platformdirs

    return Path(platformdirs.user_log_dir("whamsah-tray", appauthor=False)) / "whamsah-tray.log"


def configure_logging(path: Path | None = None) -> Path | None:
    """Log to stderr and to a rotated file: started at login (pythonw on Windows, launchd on
    macOS, a desktop's autostart) the tray's stderr goes nowhere, and a failed start would leave
    no trace. Returns the file's path, or None when it cannot be written (stderr only)."""
    level = os.environ.get("WHAMSAH_TRAY_LOG", "INFO").upper()
    handlers: list[logging.Handler] = []
    if sys.stderr is not None:  # pythonw has none
        handlers.append(logging.StreamHandler())
    path = path or log_file_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(path, maxBytes=LOG_MAX_BYTES, backupCount=1,
                                                             encoding="utf-8"))
    except OSError as error:
        path = None
        if sys.stderr is not None:
            print(f"whamsah-tray: warning: no log file ({error})", file=sys.stderr)
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)
    return path


def run(args: argparse.Namespace) -> int:
    configure_logging()
    # A tray icon draws nothing with OpenGL, but GDK opens a GL context on X11 when it can: on a
    # machine without a GPU driver that maps Mesa's software rasteriser and LLVM (52 MB of the
    # tray's 186 MB here). The user's own GDK_GL setting wins.
    os.environ.setdefault("GDK_GL", "disable")
    from whamsah_tray.app.backend import load_backend
    from whamsah_tray.app.engine_link import EngineLink
    from whamsah_tray.app.profile import ProfileStore
    from whamsah_tray.app.single_instance import SingleInstance
    from whamsah_tray.app.tray import TrayApp

    backend = load_backend()  # TrayUnavailableError: cli.main prints it and exits with status 2
    store = ProfileStore()
    with SingleInstance(store.path.parent):
        load_result = store.load()
        engine = EngineLink(store.profile)  # cheap: the controller is built when the icon shows
        app = TrayApp(backend, engine, store, load_result)
        return app.run()
