#!/usr/bin/env bash
# Install WHAMSAH Tray for the current user on macOS: a venv in
# ~/Library/Application Support/whamsah-tray/venv with torch and the app, the launcher
# ~/.local/bin/whamsah-tray and, unless --no-autostart, the LaunchAgent
# ~/Library/LaunchAgents/io.github.whamsah.tray.plist (the same file the tray's "Start at login"
# check writes). Untested here: written for macOS, which the project's CI cannot run.
#
# Virtual cable: install BlackHole (2ch) first - see installer/macos/README.md.
# Usage: installer/macos/install.sh [--no-autostart]
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
APP_HOME="$HOME/Library/Application Support/whamsah-tray"
VENV="$APP_HOME/venv"
BIN_DIR="$HOME/.local/bin"
AGENT="$HOME/Library/LaunchAgents/io.github.whamsah.tray.plist"
autostart=1
[ "${1:-}" = "--no-autostart" ] && autostart=0

say() { printf '==> %s\n' "$*"; }

# PyTorch publishes no x86-64 macOS wheels after 2.2, so torch 2.13.0 installs on Apple silicon only.
[ "$(uname -m)" = "arm64" ] || { echo "install.sh: needs a Mac with Apple silicon (arm64): torch 2.13.0 has no Intel macOS build" >&2; exit 1; }

python=$(command -v python3) || { echo "install.sh: python3 (>= 3.11) is needed: https://www.python.org/downloads/macos/" >&2; exit 1; }
"$python" -c 'import sys; raise SystemExit(sys.version_info < (3, 11))' \
  || { echo "install.sh: Python >= 3.11 is needed ($python)" >&2; exit 1; }
# An Intel build of Python (Homebrew in /usr/local, under Rosetta) passes the machine check above
# and then finds no torch wheel: the interpreter's own architecture is what pip installs for.
"$python" -c 'import platform; raise SystemExit(platform.machine() != "arm64")' \
  || { echo "install.sh: $python is an Intel (x86_64) build running under Rosetta; torch needs an arm64 Python (python.org's installer, or Homebrew in /opt/homebrew)" >&2; exit 1; }

say "virtual environment: $VENV"
mkdir -p "$APP_HOME"
[ -x "$VENV/bin/python" ] || "$python" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"   # macOS wheels are CPU/MPS builds
"$VENV/bin/python" -m pip install --quiet "$REPO_ROOT"

# The models: an installed app looks in <venv>/share/whamsah-tray/weights (the registry's
# weights_dirs). The top-level files only: weights/in-training/ holds parts of unfinished runs.
say "models: $VENV/share/whamsah-tray/weights"
mkdir -p "$VENV/share/whamsah-tray/weights"
find "$REPO_ROOT/weights" -maxdepth 1 -type f -exec cp {} "$VENV/share/whamsah-tray/weights/" \;

mkdir -p "$BIN_DIR"
ln -sf "$VENV/bin/whamsah-tray" "$BIN_DIR/whamsah-tray"

if [ "$autostart" = 1 ]; then
  mkdir -p "$(dirname "$AGENT")"
  sed "s|WHAMSAH_TRAY_LAUNCHER|$VENV/bin/whamsah-tray|" "$REPO_ROOT/installer/macos/io.github.whamsah.tray.plist" > "$AGENT"
  say "start at login: on ($AGENT)"
fi

if ! system_profiler SPAudioDataType 2>/dev/null | grep -q "BlackHole"; then
  say "no BlackHole device found: install it for the virtual cable (see installer/macos/README.md)"
fi
say "done. Start it with: $BIN_DIR/whamsah-tray"
