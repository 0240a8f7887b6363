#!/usr/bin/env bash
# Install WHAMSAH Tray for the current user on Linux (tested on Debian 12):
#   - system packages (PortAudio, ALSA's PulseAudio plugin, pactl, Tk, GTK + AppIndicator bindings)
#     when run as root or when sudo works without a password prompt; otherwise prints the command;
#   - a virtual environment in ~/.local/share/whamsah-tray/venv with the CPU build of torch and the app;
#   - the launcher ~/.local/bin/whamsah-tray;
#   - a menu entry (~/.local/share/applications) and its icons (~/.local/share/icons/hicolor);
#   - the "Start at login" entry (~/.config/autostart/whamsah-tray.desktop), written by the same
#     code as the tray's "Start at login" check (python -m whamsah_tray.app.autostart).
# Needs no display: the tray starts later, with `~/.local/bin/whamsah-tray`.
#
# Usage: installer/linux/install.sh [--no-apt] [--no-autostart] [--python PYTHON]
# Undo:  installer/linux/uninstall.sh
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DATA_HOME=${XDG_DATA_HOME:-$HOME/.local/share}
APP_HOME="$DATA_HOME/whamsah-tray"
VENV="$APP_HOME/venv"
BIN_DIR="$HOME/.local/bin"
TORCH_VERSION=2.13.0
# PyTorch's CPU-only index (a bare `pip install torch` on Linux pulls GBs of CUDA packages).
# WHAMSAH_TORCH_INDEX= (empty) uses only pip's configured indexes.
TORCH_INDEX=${WHAMSAH_TORCH_INDEX-https://download.pytorch.org/whl/cpu}
APT_PACKAGES=(python3 python3-venv python3-tk libportaudio2 libasound2-plugins pulseaudio-utils
              python3-gi python3-gi-cairo gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1)

use_apt=1
autostart=1
python=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-apt) use_apt=0 ;;
    --no-autostart) autostart=0 ;;
    --python) python=$2; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '==> %s\n' "$*"; }

install_system_packages() {
  command -v apt-get >/dev/null || { say "not a Debian/Ubuntu system: install PortAudio, Tk and GTK's Python bindings yourself"; return; }
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && { say "system packages: already installed"; return; }
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo)
    else
      say "please run as root: apt-get install --no-install-recommends ${missing[*]}"
      say "(going on; the app tells you what is missing when it starts)"
      return
    fi
  fi
  say "installing system packages: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

[ "$use_apt" = 1 ] && install_system_packages

# The system Python, so that the venv can see apt's python3-gi (GTK tray menus) through
# --system-site-packages; packages installed in the venv still come first.
if [ -z "$python" ]; then
  if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python=$(command -v python3); fi
fi
"$python" - <<'PY' || { echo "install.sh: Python >= 3.11 is needed ($python)" >&2; exit 1; }
import sys
raise SystemExit(0 if sys.version_info >= (3, 11) else 1)
PY

say "virtual environment: $VENV"
mkdir -p "$APP_HOME"
if [ ! -x "$VENV/bin/python" ]; then
  "$python" -m venv --system-site-packages "$VENV"
fi
pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
if "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  say "torch $TORCH_VERSION: already there"
else
  torch_source=()
  # Only use the CPU index when it answers: an unreachable index costs minutes of pip retries.
  if [ -n "$TORCH_INDEX" ] && "$VENV/bin/python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=5)" "$TORCH_INDEX/torch/" 2>/dev/null; then
    torch_source=(--index-url "$TORCH_INDEX")
  fi
  say "installing torch $TORCH_VERSION ${torch_source[*]:-(from the configured pip indexes)}"
  "${pip[@]}" "torch==$TORCH_VERSION" "${torch_source[@]}"
fi
say "installing the app from $REPO_ROOT"
"${pip[@]}" "$REPO_ROOT"

# The models: the registry looks in <venv>/share/whamsah-tray/weights once installed.
if compgen -G "$REPO_ROOT/weights/*.json" >/dev/null; then
  say "models: $VENV/share/whamsah-tray/weights"
  mkdir -p "$VENV/share/whamsah-tray/weights"
  # The top-level files only (manifests, weights, model card): weights/in-training/ holds parts of
  # unfinished runs that no manifest names.
  find "$REPO_ROOT/weights" -maxdepth 1 -type f -exec cp {} "$VENV/share/whamsah-tray/weights/" \;
else
  say "note: no model in $REPO_ROOT/weights yet; the tray passes audio through until one is installed"
fi

if ! "$VENV/bin/python" -c "import gi; gi.require_version('Gtk', '3.0'); from gi.repository import Gtk" 2>/dev/null; then
  if command -v pkg-config >/dev/null && pkg-config --exists gobject-introspection-1.0 cairo 2>/dev/null; then
    say "building PyGObject in the venv"
    "${pip[@]}" "PyGObject<3.50" pycairo || true
  fi
fi
"$VENV/bin/python" -c "import gi" 2>/dev/null \
  || say "note: no GTK bindings (python3-gi); the tray uses the basic X11 icon whose menu cannot open"
"$VENV/bin/python" -c "import tkinter" 2>/dev/null \
  || say "note: no Tk (python3-tk); 'Play file…' cannot show its dialog"

say "launcher: $BIN_DIR/whamsah-tray"
mkdir -p "$BIN_DIR"
ln -sf "$VENV/bin/whamsah-tray" "$BIN_DIR/whamsah-tray"

say "menu entry and icons"
for size in 16 22 24 32 48 64 128 256; do
  dir="$DATA_HOME/icons/hicolor/${size}x${size}/apps"
  mkdir -p "$dir"
  cp "$REPO_ROOT/assets/icons/whamsah-tray-running-$size.png" "$dir/whamsah-tray.png"
done
mkdir -p "$DATA_HOME/applications"
# Named after the app id the desktop's shortcuts portal knows the tray by (portal_shortcuts.APP_ID):
# the portal shows the app's name and icon next to its shortcuts from this file.
rm -f "$DATA_HOME/applications/whamsah-tray.desktop"  # the name an earlier install used
"$VENV/bin/python" - "$DATA_HOME/applications/io.github.whamsah.tray.desktop" "$VENV/bin/whamsah-tray" <<'PY'
import sys
from pathlib import Path
from whamsah_tray.app.autostart import desktop_entry
Path(sys.argv[1]).write_text(desktop_entry([sys.argv[2]], autostart=False), encoding="utf-8")
PY
command -v update-desktop-database >/dev/null && update-desktop-database -q "$DATA_HOME/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$DATA_HOME/icons/hicolor" 2>/dev/null || true

if [ "$autostart" = 1 ]; then
  "$VENV/bin/python" -m whamsah_tray.app.autostart enable "$VENV/bin/whamsah-tray"
else
  say "start at login: left off (turn it on from the tray menu)"
fi

case ":$PATH:" in *":$BIN_DIR:"*) ;; *) say "note: $BIN_DIR is not on your PATH" ;; esac
say "done. Start it with: $BIN_DIR/whamsah-tray   (headless: $BIN_DIR/whamsah-tray run --help)"
