#!/usr/bin/env bash
# The test command. On a fresh Debian 12 / Ubuntu machine (as root, or with sudo) it installs
# what the tests need, then runs the whole test suite; exits non-zero on any failure.
#
#   tests/run.sh [PYTEST ARGS...]     e.g. tests/run.sh tests/test_cli_separate.py -x
#
# 1. Debian packages (skipped when all are present): the headless desktop (Xvfb, trayer, xdotool,
#    D-Bus, PulseAudio, and PipeWire + WirePlumber + pipewire-pulse for a second pass), PortAudio
#    and ALSA's PulseAudio plugin, espeak-ng / sox / ffmpeg for test audio, and GTK +
#    AppIndicator development files for the tray's GTK backend.
#    Never pipewire-alsa (apt would remove PulseAudio) nor dbus-x11 (it leaves daemons behind).
# 2. Python: `pip install torch==2.13.0` first (pinned: a bare `torch` pulls GBs of CUDA
#    packages), then `pip install -e ".[test,gtk]"`; when PyGObject cannot be built, `.[test]`
#    (the tray's GTK tests then skip and say why). Into the active virtual environment or the
#    current python3; an "externally managed" system Python (PEP 668) gets ./.venv instead.
#    $PYTHON picks the interpreter.
# 3. pytest with WHAMSAH_REQUIRE_DESKTOP=1: a desktop test whose tools are missing fails
#    instead of skipping. The sound-server tests (PIPEWIRE_TESTS) then run again on PipeWire.
#    Tests that need ../shared/data skip with the reason when it is absent.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

APT_PACKAGES=(
  xvfb trayer xdotool dbus pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins
  pipewire pipewire-pulse wireplumber
  espeak-ng sox ffmpeg
  libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1
  # RealtimeKit and polkit, run on a private system bus by tests/test_engine_realtime.py: the real
  # daemon granting a thread priority (it asks polkit, which grants root).
  rtkit polkitd
)
PYRIGHT_VERSION=1.1.414  # tests/platform_types.py: the Windows and macOS type checks
TORCH_VERSION=2.13.0
# The Linux sound-server tests (cable, capture, first start, sync and file playback, what the
# listener hears, device loss), run on PulseAudio with the rest and again on PipeWire.
PIPEWIRE_TESTS=(
  tests/test_desktop_env.py tests/test_engine_first_start.py tests/test_engine_linux_cable.py tests/test_engine_devices.py
  tests/test_engine_sync.py tests/test_engine_file.py tests/test_listener_cli.py tests/test_engine_idle.py
)

say() { printf '==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "tests/run.sh: need root or sudo to run: $*" >&2; return 1
  fi
}

install_apt_packages() {
  local wanted=("$@") missing=() package
  command -v dpkg-query >/dev/null || { say "no dpkg: install these yourself: ${wanted[*]}"; return 0; }
  for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$package")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "Debian packages: all present"
    return 0
  fi
  say "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

externally_managed() {
  "$1" - <<'PY'
import os, sys, sysconfig
in_venv = sys.prefix != sys.base_prefix
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
raise SystemExit(0 if not in_venv and os.path.exists(marker) else 1)
PY
}

choose_python() {
  local python=${PYTHON:-python3}
  if ! command -v "$python" >/dev/null; then
    install_apt_packages python3 python3-venv python3-pip python3-dev gcc >&2
    python=python3
  fi
  if externally_managed "$python"; then
    install_apt_packages python3-venv python3-dev gcc >&2
    [ -x .venv/bin/python ] || "$python" -m venv .venv >&2
    python=$REPO_ROOT/.venv/bin/python
  fi
  echo "$python"
}

install_apt_packages "${APT_PACKAGES[@]}"
# Node.js and npm for pyright (tests/platform_types.py), unless some Node.js is there already (a
# NodeSource nodejs brings its own npm and conflicts with Debian's npm package).
command -v node >/dev/null || install_apt_packages nodejs
command -v npm >/dev/null || install_apt_packages npm

PY=$(choose_python)
say "Python: $PY ($("$PY" --version 2>&1))"
export PIP_ROOT_USER_ACTION=ignore  # CI runs as root, on purpose
pip=("$PY" -m pip install --disable-pip-version-check --quiet)

if "$PY" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  say "torch $TORCH_VERSION: already installed"
else
  say "installing torch==$TORCH_VERSION"
  "${pip[@]}" "torch==$TORCH_VERSION"
fi

say "installing whamsah-tray (editable) with the test and gtk extras"
if ! "${pip[@]}" -e ".[test,gtk]"; then
  say "PyGObject could not be installed: going on without the gtk extra"
  "${pip[@]}" -e ".[test]"
fi

export WHAMSAH_REQUIRE_DESKTOP=1
if [ "$#" -gt 0 ]; then
  say "running the tests: $*"
  exec "$PY" -m pytest -ra --durations=15 "$@"
fi
# The in-process tray tests get a Python process each, like the app: one engine and one GTK main
# loop per process (a second tray's loop in the same process, or the tests after it, met the
# first one's leftovers: its icon still docked, menus that did not open).
IN_PROCESS_TRAY_TESTS=(tests/test_app_tray.py tests/test_app_ctl.py tests/test_app_portal.py)
say "running the tests (all but the in-process trays)"
status=0
"$PY" -m pytest -ra --durations=15 "${IN_PROCESS_TRAY_TESTS[@]/#/--ignore=}" || status=$?
for tray_tests in "${IN_PROCESS_TRAY_TESTS[@]}"; do
  say "running the tests (an in-process tray: $tray_tests)"
  "$PY" -m pytest -ra "$tray_tests" || status=$?
done
# Most desktops run PipeWire (with pipewire-pulse) now: the Linux sound-server tests again on a
# private PipeWire + WirePlumber + pipewire-pulse desktop (tests/desktop_env.sh starts it).
say "running the sound-server tests on PipeWire"
env -u DISPLAY -u XDG_RUNTIME_DIR -u DBUS_SESSION_BUS_ADDRESS WHAMSAH_SOUND_SERVER=pipewire \
  "$PY" -m pytest -ra "${PIPEWIRE_TESTS[@]}" || status=$?
# Windows and macOS cannot run here: their code paths are type-checked as those systems see them.
say "type-checking the package for Windows and macOS (pyright $PYRIGHT_VERSION)"
"${pip[@]}" "pyright==$PYRIGHT_VERSION"
"$PY" tests/platform_types.py || status=$?
exit "$status"
