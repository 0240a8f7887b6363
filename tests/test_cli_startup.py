"""Building the command line must stay light: `whamsah-tray` (the tray) parses its arguments before
its icon appears, so nothing heavy may be imported on the way."""

import subprocess
import sys


def test_building_the_parser_imports_neither_torch_nor_portaudio():
    code = ("import sys; from whamsah_tray.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'sounddevice', 'pystray', 'pynput') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_tray_logs_to_a_rotated_file_in_the_user_log_folder(tmp_path, monkeypatch):
    """Started at login, the tray's stderr goes nowhere: its log goes to a file too, at most
    1 MB and the one before it."""
    import logging

    from whamsah_tray.cli.tray import LOG_MAX_BYTES, configure_logging, log_file_path

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert log_file_path() == tmp_path / "state" / "whamsah-tray" / "log" / "whamsah-tray.log"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        path = configure_logging()
        assert path == log_file_path()
        line = "x" * 1000
        for _ in range(2500):  # 2.5 MB of log
            logging.getLogger("whamsah_tray.test").warning(line)
        for handler in root.handlers:
            handler.flush()
        files = sorted(path.parent.iterdir())
        assert [f.name for f in files] == ["whamsah-tray.log", "whamsah-tray.log.1"]
        assert all(f.stat().st_size <= LOG_MAX_BYTES for f in files)
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
