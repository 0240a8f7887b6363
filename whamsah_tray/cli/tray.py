"""`whamsah-tray` with no command: the tray app. Not a subcommand (cli/__init__.py calls `run` when
no command is given). Loads the profile, picks the tray backend (a missing display is a clear error
that points to `whamsah-tray run`), and runs the tray on the main thread until Quit.
"""

from __future__ import annotations

import argparse
import logging
import os


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=os.environ.get("WHAMSAH_TRAY_LOG", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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
