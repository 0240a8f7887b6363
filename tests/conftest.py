"""Shared pytest fixtures: the headless test desktop and the shared data folder.

Fixtures
- `desktop` (session): a real X display with a tray host, a private D-Bus session bus and a
  PulseAudio server with null sinks `cable` and `speakers` (see tests/desktop_env.sh). Reuses an
  environment that is already running when DISPLAY, XDG_RUNTIME_DIR, XDG_CONFIG_HOME and
  DBUS_SESSION_BUS_ADDRESS are set and that PulseAudio answers with both sinks (e.g. after
  `source tests/desktop_env.sh up`); otherwise starts its own in a private temporary folder and
  stops exactly what it started at the end of the session. While it lives, os.environ carries the
  desktop's variables, so subprocesses started by tests see the same display and audio server.
- `portaudio` (session): the `sounddevice` module with PortAudio (re)initialised inside the
  desktop, so that the ALSA devices cable, cable_monitor, speakers, speakers_monitor exist.
- `shared_data` (session): Path of ../shared/data (relative to the repository root).
- `shared_song`: Path of the full song in shared_data/songs.
- `untrained_model` (session): a random-weight "whamsah-rt" LoadedModel (seed 0), for plumbing tests.
- `untrained_model_installed` (session): that model saved with a manifest as the installed model
  TEST_MODEL in a temporary weights folder; returns {"WHAMSAH_TRAY_WEIGHTS": folder} to pass to
  `run_cli(..., extra_env=...)`. Never a shipped model.
- `listener_excerpt` (session): stems for the listener tests (tests/listener.py): a musdb7/test
  excerpt, or a synthetic stand-in without the shared data. `offline_vocals_off`: the default
  model's offline instrumental of it, as (vocal dB, accompaniment dB).

Helper: `run_cli(*args, extra_env=None)` runs `python -m whamsah_tray ARGS` from this source tree
in a subprocess and returns the CompletedProcess (text stdout/stderr).

Tests that need a missing tool or folder are skipped with the reason. With
WHAMSAH_REQUIRE_DESKTOP=1 (tests/run.sh sets it after installing everything) a missing desktop
tool fails the test instead, so that CI cannot pass by skipping.

Tests using `desktop` / `portaudio` get the `desktop` marker, tests using `shared_data` /
`shared_song` the `shared_data` marker, automatically (`pytest -m "not desktop"` deselects them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DESKTOP_SCRIPT = REPO_ROOT / "tests" / "desktop_env.sh"

DESKTOP_PROGRAMS = ("bash", "Xvfb", "trayer", "dbus-daemon", "pulseaudio", "pactl", "pacat")
DESKTOP_VARIABLES = ("DISPLAY", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DBUS_SESSION_BUS_ADDRESS")
DESKTOP_SINKS = ("cable", "speakers")
DESKTOP_APT_PACKAGES = (
    "xvfb trayer xdotool dbus pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins"
)
START_TIMEOUT_S = 60


def _unavailable(reason: str) -> None:
    """Skip, or fail when the run promised the desktop (WHAMSAH_REQUIRE_DESKTOP=1)."""
    if os.environ.get("WHAMSAH_REQUIRE_DESKTOP") == "1":
        pytest.fail(f"{reason} (WHAMSAH_REQUIRE_DESKTOP=1)", pytrace=False)
    pytest.skip(reason)


@dataclass
class Desktop:
    """A running headless desktop. Device names are those PortAudio shows through ALSA."""

    env: dict[str, str]
    env_dir: Path | None
    started_here: bool
    cable: str = "cable"  # where apps play (the virtual cable's playback side)
    cable_monitor: str = "cable_monitor"  # what the engine records
    speakers: str = "speakers"  # where the engine plays
    speakers_monitor: str = "speakers_monitor"  # what a test records to check the output
    sinks: tuple[str, ...] = field(default=DESKTOP_SINKS)

    @property
    def display(self) -> str:
        return self.env["DISPLAY"]

    def run(self, *command: str, timeout: float = 30, check: bool = True) -> str:
        """Runs a program on this desktop (skips the test when it is not installed); returns stdout."""
        if shutil.which(command[0]) is None:
            _unavailable(f"{command[0]} is not installed (apt-get install {DESKTOP_APT_PACKAGES})")
        done = subprocess.run(
            command, env={**os.environ, **self.env}, capture_output=True, text=True,
            timeout=timeout, check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def pactl(self, *args: str) -> str:
        return self.run("pactl", *args)

    def sink_names(self) -> list[str]:
        lines = self.pactl("list", "short", "sinks").splitlines()
        return [line.split("\t")[1] for line in lines if "\t" in line]


def wanted_sound_server() -> str:
    """pulseaudio (default) or pipewire: WHAMSAH_SOUND_SERVER, as tests/desktop_env.sh reads it."""
    return os.environ.get("WHAMSAH_SOUND_SERVER", "pulseaudio")


def _server_name(env: dict[str, str]) -> str:
    """Which sound server pactl talks to: pipewire or pulseaudio."""
    info = subprocess.run(["pactl", "info"], env=env, capture_output=True, text=True, timeout=10, check=False)
    return "pipewire" if "PipeWire" in info.stdout else "pulseaudio"


def _answers(env: dict[str, str]) -> bool:
    """Whether PulseAudio (with both sinks) and, when xdotool exists, the X display answer."""
    full_env = {**os.environ, **env}
    try:
        sinks = subprocess.run(
            ["pactl", "list", "short", "sinks"], env=full_env, capture_output=True, text=True,
            timeout=10, check=False,
        )
        if sinks.returncode != 0:
            return False
        names = {line.split("\t")[1] for line in sinks.stdout.splitlines() if "\t" in line}
        if not set(DESKTOP_SINKS) <= names:
            return False
        if _server_name(full_env) != wanted_sound_server():
            return False  # e.g. a PulseAudio desktop running while the PipeWire pass is asked for
        if shutil.which("xdotool"):
            x = subprocess.run(
                ["xdotool", "getdisplaygeometry"], env=full_env, capture_output=True, timeout=10,
                check=False,
            )
            return x.returncode == 0
        return True
    except (OSError, subprocess.TimeoutExpired):
        return False


def _running_desktop() -> Desktop | None:
    if not all(os.environ.get(name) for name in DESKTOP_VARIABLES):
        return None
    env = {name: os.environ[name] for name in DESKTOP_VARIABLES}
    if not _answers(env):
        return None
    env_dir = os.environ.get("WHAMSAH_ENV_DIR")
    return Desktop(env=env, env_dir=Path(env_dir) if env_dir else None, started_here=False)


def _script(action: str, env_dir: Path, log: Path) -> int:
    with open(log, "a") as log_file:
        done = subprocess.run(
            ["bash", str(DESKTOP_SCRIPT), action],
            env={**os.environ, "WHAMSAH_ENV_DIR": str(env_dir)},
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            timeout=START_TIMEOUT_S, check=False,
        )
    return done.returncode


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


START_ATTEMPTS = 2


def _start_desktop(workdir: Path) -> Desktop:
    """Starts the desktop; a second try when the first fails (the PipeWire pass once met a sound
    server that did not come up on a fresh CI host, and every sound test of the pass failed with
    it). A start that needed the second try says so, with what the first one printed."""
    env_dir = workdir / "desktop"
    env_file = env_dir / "env"
    failures: list[str] = []
    for attempt in range(1, START_ATTEMPTS + 1):
        log = workdir / f"desktop_env.{attempt}.log"
        try:
            returncode = _script("up", env_dir, log)
        except subprocess.TimeoutExpired:
            returncode = -1
        if returncode == 0 and env_file.exists():
            break
        # desktop_env.sh prints the server daemons' states and the end of their logs itself.
        failures.append(f"tests/desktop_env.sh up failed ({returncode}), try {attempt}:\n{_tail(log, 80)}")
        _script("down", env_dir, log)
    else:
        pytest.fail("\n".join(failures), pytrace=False)
    if failures:
        warnings.warn("the desktop started at the second try; the first:\n" + failures[0], stacklevel=1)
    env = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
    )
    return Desktop(env=env, env_dir=env_dir, started_here=True)


def _reinitialise_portaudio() -> None:
    """PortAudio lists ALSA devices once, at initialisation: redo it inside the desktop."""
    sounddevice = sys.modules.get("sounddevice")
    if sounddevice is not None:
        sounddevice._terminate()
        sounddevice._initialize()


@pytest.fixture(scope="session")
def desktop(tmp_path_factory: pytest.TempPathFactory):
    """The headless desktop (see module docstring); yields a Desktop."""
    running = _running_desktop()
    if running is not None:
        _reinitialise_portaudio()
        yield running
        return
    missing = [program for program in DESKTOP_PROGRAMS if shutil.which(program) is None]
    if missing:
        _unavailable(
            f"headless desktop unavailable, missing {', '.join(missing)} "
            f"(apt-get install {DESKTOP_APT_PACKAGES}, or run tests/run.sh)"
        )
    # A short private folder: Unix socket paths under it must stay below 108 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="whamsah-desk-"))
    started = _start_desktop(workdir)
    saved = {name: os.environ.get(name) for name in (*started.env, "WHAMSAH_ENV_DIR")}
    os.environ.update(started.env)
    _reinitialise_portaudio()
    try:
        yield started
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _script("down", started.env_dir, workdir / "desktop_env.log")
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def portaudio(desktop: Desktop):
    """The sounddevice module, with the desktop's ALSA devices listed."""
    try:
        import sounddevice
    except OSError as error:  # the wheel does not bundle PortAudio on Linux
        _unavailable(f"PortAudio library missing ({error}); apt-get install libportaudio2")
    _reinitialise_portaudio()
    names = {device["name"] for device in sounddevice.query_devices()}
    wanted = {desktop.cable, desktop.cable_monitor, desktop.speakers, desktop.speakers_monitor}
    if not wanted <= names:
        _unavailable(
            f"PortAudio does not list {sorted(wanted - names)} (is libasound2-plugins installed?)"
        )
    return sounddevice


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data relative to the repository root (skips when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_song(shared_data: Path) -> Path:
    """The full song in shared_data/songs (skips when there is none)."""
    songs = sorted((shared_data / "songs").glob("*.ogg"))
    if not songs:
        pytest.skip(f"no song in {shared_data / 'songs'}")
    return songs[0]


@pytest.fixture(scope="session")
def listener_excerpt():
    """An excerpt with true stems for the listener tests (tests/listener.py): the first
    musdb7/test track when ../shared/data is there, else a synthetic stand-in (never skips for
    the data's absence: the weaker check keeps running)."""
    from listener import load_excerpt

    return load_excerpt(SHARED_DATA if SHARED_DATA.is_dir() else None)


@pytest.fixture(scope="session")
def offline_vocals_off(listener_excerpt):
    """(vocal dB, accompaniment dB) of the default model's instrumental stem of that excerpt,
    separated offline: what vocals 0 % should sound like on every path."""
    from listener import offline_gains_db
    from whamsah_tray.errors import ModelLoadingError
    from whamsah_tray.separation import load_model

    try:
        model = load_model()
    except ModelLoadingError as error:
        pytest.fail(f"the shipped default model does not load: {error}")
    return offline_gains_db(listener_excerpt, model)


TEST_MODEL = "test-untrained"


def run_cli(*args, extra_env: dict[str, str] | None = None, timeout: float = 600):
    """`python -m whamsah_tray ARGS` from this source tree, in a subprocess."""
    env = {**os.environ, **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "whamsah_tray", *map(str, args)], capture_output=True, text=True,
        env=env, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
    )


@pytest.fixture(scope="session")
def untrained_model():
    """A random-weight whamsah-rt network (seed 0): for plumbing tests, never shipped."""
    from whamsah_tray.separation import create_untrained_model

    return create_untrained_model("whamsah-rt", seed=0)


@pytest.fixture(scope="session")
def untrained_model_installed(tmp_path_factory, untrained_model) -> dict[str, str]:
    """untrained_model installed as TEST_MODEL in a temporary weights folder; returns the env."""
    import torch

    folder = tmp_path_factory.mktemp("weights")
    weights = folder / f"{TEST_MODEL}.pt"
    torch.save(untrained_model.network.state_dict(), weights)
    info = untrained_model.info
    manifest = {
        "name": TEST_MODEL,
        "architecture": info.architecture,
        "config": info.config,
        "sample_rate": info.sample_rate,
        "latency_samples": info.latency_samples,
        "weights": weights.name,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "description": "random weights, for tests only",
        "training_data": "none",
        "license": "MIT",
        "figures": {"note": "untrained", "vocals_cSDR_dB": -9.5},
        "default": False,
    }
    (folder / f"{TEST_MODEL}.json").write_text(json.dumps(manifest))
    return {"WHAMSAH_TRAY_WEIGHTS": str(folder)}


_FIXTURE_MARKERS = {
    "desktop": "desktop",
    "portaudio": "desktop",
    "shared_data": "shared_data",
    "shared_song": "shared_data",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture_name in getattr(item, "fixturenames", ()):
            marker = _FIXTURE_MARKERS.get(fixture_name)
            if marker is not None:
                item.add_marker(marker)
