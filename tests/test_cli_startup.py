"""Building the command line must stay light: `whamsah-tray` (the tray) parses its arguments before
its icon appears, so nothing heavy may be imported on the way."""

import subprocess
import sys


def test_building_the_parser_imports_neither_torch_nor_portaudio():
    code = ("import sys; from whamsah_tray.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'sounddevice', 'pystray', 'pynput') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
