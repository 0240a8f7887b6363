"""installer/linux/install.sh and uninstall.sh for real, into a temporary HOME (no display needed):
the venv, the launcher, the menu entry with its icons, the start-at-login entry written by the same
code as the tray's check, the models folder; then everything removed again, the profile kept."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def desktop_fields(path: Path):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_install_then_uninstall_for_one_user(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local" / "share"),
        # Only pip's configured indexes: the test must not depend on download.pytorch.org.
        "WHAMSAH_TORCH_INDEX": "",
    }
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT", "PIP_CONFIG_FILE",
                 "PIP_DEFAULT_TIMEOUT", "SSL_CERT_FILE"):
        if name in os.environ:
            env[name] = os.environ[name]
    done = subprocess.run(["bash", str(REPO_ROOT / "installer" / "linux" / "install.sh"), "--no-apt",
                           "--python", sys.executable], env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    data = home / ".local" / "share"
    venv = data / "whamsah-tray" / "venv"
    launcher = home / ".local" / "bin" / "whamsah-tray"
    assert launcher.is_symlink() and launcher.resolve() == (venv / "bin" / "whamsah-tray").resolve()
    version = subprocess.run([str(launcher), "--version"], capture_output=True, text=True, timeout=120, env=env)
    assert version.returncode == 0 and version.stdout.startswith("whamsah-tray ")

    # Without a display the installed app says what to do instead of failing obscurely.
    headless = subprocess.run([str(launcher)], capture_output=True, text=True, timeout=120,
                              env={k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")})
    assert headless.returncode == 2 and "whamsah-tray run" in headless.stderr

    menu_entry = desktop_fields(data / "applications" / "io.github.whamsah.tray.desktop")  # the portal's app id
    assert menu_entry["Exec"] == str(venv / "bin" / "whamsah-tray")
    assert menu_entry["Icon"] == "whamsah-tray"
    for size in (16, 32, 48, 256):
        assert (data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "whamsah-tray.png").exists()

    autostart = home / ".config" / "autostart" / "whamsah-tray.desktop"
    assert desktop_fields(autostart)["Exec"] == str(venv / "bin" / "whamsah-tray")
    # The tray's "Start at login" check reads the same file.
    status = subprocess.run([str(venv / "bin" / "python"), "-m", "whamsah_tray.app.autostart", "status"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert "start at login: on" in status.stdout

    installed_weights = venv / "share" / "whamsah-tray" / "weights"
    shipped = sorted(path.name for path in (REPO_ROOT / "weights").iterdir() if path.is_file())
    assert sorted(path.name for path in installed_weights.iterdir()) == shipped  # not weights/in-training/
    if list((REPO_ROOT / "weights").glob("*.json")):
        # The installed app (not an editable install) finds them there on its own.
        models = subprocess.run([str(launcher), "models"], capture_output=True, text=True, timeout=120,
                                env={k: v for k, v in env.items() if k != "WHAMSAH_TRAY_WEIGHTS"})
        assert models.returncode == 0 and "* whamsah-rt " in models.stdout, models.stdout + models.stderr

    profile = home / ".config" / "whamsah-tray" / "profile.toml"
    profile.parent.mkdir(parents=True, exist_ok=True)
    profile.write_text("[levels]\nvocals = 30\n")
    done = subprocess.run(["bash", str(REPO_ROOT / "installer" / "linux" / "uninstall.sh")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not launcher.exists() and not launcher.is_symlink()
    assert not venv.exists() and not autostart.exists()
    assert not (data / "applications" / "io.github.whamsah.tray.desktop").exists()
    assert profile.read_text() == "[levels]\nvocals = 30\n"  # the user's settings are kept
