"""The wheel carries the models: built from this tree and installed into a fresh virtual
environment, `whamsah-tray models` lists whamsah-rt as the default and `separate` works, with the
weights found under the environment's share/whamsah-tray/weights (pyproject's data-files).

The environment sees the running Python's packages (numpy, soxr, ... are not downloaded again:
--system-site-packages, and a .pth naming this environment's site-packages where the tests run in
a virtual environment themselves) and the wheel is installed with --no-deps; the test checks that the package and the weights it uses
are the installed copies, not this source tree. The tree is copied first, so that setuptools'
build folder is private to this test.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from whamsah_tray.audio_io import read_audio, write_audio

ROOT = Path(__file__).resolve().parents[1]
DATA_PREFIX = "whamsah_tray-{version}.data/data/share/whamsah-tray/weights/"

pytestmark = pytest.mark.slow


def clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("WHAMSAH_TRAY_WEIGHTS", "PYTHONPATH")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "whamsah_tray", source / "whamsah_tray", ignore=ignore)
    shutil.copytree(ROOT / "weights", source / "weights", ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", str(source), "-w", str(out), "--no-deps", "-q"]
    # With this Python's setuptools first (no download); an old one (no bdist_wheel without the
    # `wheel` package) falls back to pip's isolated build, which fetches a current setuptools.
    for isolation in (["--no-build-isolation"], []):
        done = subprocess.run(command + isolation, capture_output=True, text=True, check=False, timeout=300,
                              cwd=source, env=clean_env())
        if done.returncode == 0:
            break
    assert done.returncode == 0, done.stderr
    wheels = list(out.glob("whamsah_tray-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_the_wheel_lists_every_shipped_weights_file(wheel):
    from whamsah_tray import __version__

    names = set(zipfile.ZipFile(wheel).namelist())
    prefix = DATA_PREFIX.format(version=__version__)
    shipped = sorted(path.name for path in (ROOT / "weights").iterdir()
                     if path.suffix in (".json", ".npz", ".pt"))
    assert "whamsah-rt.npz" in shipped and "whamsah-rt.json" in shipped
    assert [name for name in shipped if prefix + name not in names] == []
    assert "whamsah_tray/py.typed" in names


def test_the_installed_wheel_lists_and_runs_its_default_model(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    bin_dir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    python = bin_dir / "python"
    if sys.prefix != sys.base_prefix:  # a venv's --system-site-packages is the base Python's, not ours
        purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        Path(purelib, "outer-environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                          capture_output=True, text=True, check=False, timeout=300, env=clean_env())
    assert done.returncode == 0, done.stderr

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=120, cwd=tmp_path, env=clean_env())

    where = run(str(python), "-c", "import whamsah_tray; from whamsah_tray.separation import find_model; "
                                   "print(whamsah_tray.__file__); print(find_model().manifest_path)")
    assert where.returncode == 0, where.stderr
    package, manifest = where.stdout.split()
    assert Path(package).is_relative_to(venv) and Path(manifest).is_relative_to(venv)
    assert Path(manifest).parent == venv / "share" / "whamsah-tray" / "weights"

    listing = run(str(bin_dir / "whamsah-tray"), "models")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.startswith("* whamsah-rt ")
    assert "whamsahnet" in listing.stdout

    rate = 44100
    t = np.arange(2 * rate) / rate
    audio = np.stack([0.3 * np.sin(2 * np.pi * 330 * t), 0.2 * np.sin(2 * np.pi * 110 * t)], axis=1)
    write_audio(tmp_path / "song.wav", audio.astype(np.float32), rate)
    separated = run(str(bin_dir / "whamsah-tray"), "separate", "song.wav", "--out", "stems")
    assert separated.returncode == 0, separated.stderr
    vocals, _ = read_audio(tmp_path / "stems" / "vocals.wav")
    instrumental, _ = read_audio(tmp_path / "stems" / "instrumental.wav")
    source, _ = read_audio(tmp_path / "song.wav")
    assert vocals.shape == source.shape
    np.testing.assert_allclose(vocals + instrumental, source, atol=1e-3)


def test_evaluate_without_the_eval_extra_says_so_in_one_line(tmp_path):
    """museval missing (blocked in the child): one line naming the extra, exit status 2."""
    code = ("import sys; sys.modules['museval'] = None\n"
            "from whamsah_tray.cli import main; sys.exit(main(['evaluate', sys.argv[1]]))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False,
                          timeout=120, env=clean_env())
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "whamsah-tray: error: evaluate needs museval: pip install 'whamsah-tray[eval]'"]
    assert done.stdout == ""
