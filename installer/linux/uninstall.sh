#!/usr/bin/env bash
# Remove what installer/linux/install.sh added for the current user: the venv, the launcher, the
# menu entry, the icons and the start-at-login entry. The profile (~/.config/whamsah-tray) is kept
# unless --purge is given; system packages are left alone.
#
# Usage: installer/linux/uninstall.sh [--purge]
set -euo pipefail

DATA_HOME=${XDG_DATA_HOME:-$HOME/.local/share}
CONFIG_HOME=${XDG_CONFIG_HOME:-$HOME/.config}
purge=0
[ "${1:-}" = "--purge" ] && purge=1

say() { printf '==> %s\n' "$*"; }

# A running tray would re-create nothing, but it still holds the cable: ask it to quit first.
if pgrep -u "$(id -u)" -f "whamsah-tray/venv/bin/whamsah-tray" >/dev/null 2>&1; then
  say "WHAMSAH Tray is running: choose Quit in its menu first"; exit 1
fi

rm -f "$CONFIG_HOME/autostart/whamsah-tray.desktop"
rm -f "$DATA_HOME/applications/whamsah-tray.desktop" "$DATA_HOME/applications/io.github.whamsah.tray.desktop"
for size in 16 22 24 32 48 64 128 256; do
  rm -f "$DATA_HOME/icons/hicolor/${size}x${size}/apps/whamsah-tray.png"
done
link="$HOME/.local/bin/whamsah-tray"
if [ -L "$link" ] && [ "$(readlink "$link")" = "$DATA_HOME/whamsah-tray/venv/bin/whamsah-tray" ]; then
  rm -f "$link"
fi
rm -rf "$DATA_HOME/whamsah-tray"
if [ "$purge" = 1 ]; then
  rm -rf "$CONFIG_HOME/whamsah-tray"
  say "profile removed"
else
  say "profile kept in $CONFIG_HOME/whamsah-tray (use --purge to remove it)"
fi
say "WHAMSAH Tray removed"
