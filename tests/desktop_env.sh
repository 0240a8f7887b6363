#!/usr/bin/env bash
# The headless test desktop: a real X server (Xvfb), a tray host (trayer), a private D-Bus
# session bus and a PulseAudio server with two null sinks, on a machine with no screen and
# no sound card.
#   "cable"    = the virtual audio cable (apps play into it, the engine records its monitor)
#   "speakers" = the output the engine plays to (tests record its monitor)
# PortAudio sees them through the ALSA pulse plugin as devices cable, cable_monitor,
# speakers, speakers_monitor (plus pulse and default).
#
# Two ways to use it:
#   source tests/desktop_env.sh up     # starts everything, exports the variables below
#   source tests/desktop_env.sh down   # stops exactly the processes it started
#   bash tests/desktop_env.sh restart-server   # kills the sound server, starts it again (same sinks)
# or, from a program (tests/conftest.py does this):
#   WHAMSAH_ENV_DIR=/some/dir bash tests/desktop_env.sh up   # then read /some/dir/env
#   WHAMSAH_ENV_DIR=/some/dir bash tests/desktop_env.sh down
#
# Exported by "up" (and written as KEY=VALUE lines to $WHAMSAH_ENV_DIR/env):
#   DISPLAY, XDG_RUNTIME_DIR, XDG_CONFIG_HOME, DBUS_SESSION_BUS_ADDRESS, NO_AT_BRIDGE,
#   WHAMSAH_ENV_DIR, WHAMSAH_SOUND_SERVER
# WHAMSAH_SOUND_SERVER=pipewire (before "up") runs PipeWire + WirePlumber + pipewire-pulse instead
# of PulseAudio (Debian: pipewire wireplumber pipewire-pulse; never pipewire-alsa, which removes
# PulseAudio): pactl, the ALSA pulse plugin and so PortAudio talk to either the same way.
# Each environment lives in its own folder (default /tmp/whamsah-desktop-$UID), so several can
# run side by side: Xvfb picks a free display, PulseAudio and D-Bus live under the folder.
# $WHAMSAH_ENV_DIR/pids holds "PID NAME" for every process started; "down" kills a PID only
# while /proc/PID/comm still says NAME.
#
# Needs (Debian 12): xvfb trayer xdotool dbus pulseaudio pulseaudio-utils libportaudio2
#                    libasound2-plugins
# Facts behind the choices (latency of null sinks, asoundrc, XDG_RUNTIME_DIR): README.md.

_whamsah_desk_log() { echo "desktop_env: $*" >&2; }

# Starts a background process with all output to a log file, and records "PID NAME".
_whamsah_desk_spawn() {
  local name=$1 log=$2; shift 2
  "$@" </dev/null >"$log" 2>&1 &
  echo "$! $name" >> "$WHAMSAH_ENV_DIR/pids"
}

# The sound server with the two null sinks and their low-latency monitor readers ("PID NAME"
# lines appended to pids). Also used by "restart-server".
_whamsah_desk_server_up() {
  local d=$WHAMSAH_ENV_DIR i tool
  # The sound server, each daemon in the foreground of its own background job, so that its PID
  # is ours to kill: PulseAudio, or with WHAMSAH_SOUND_SERVER=pipewire PipeWire + WirePlumber +
  # pipewire-pulse (what most desktops run now; apps and pactl talk to it as to PulseAudio).
  case "${WHAMSAH_SOUND_SERVER:-pulseaudio}" in
    pipewire)
      for tool in pipewire wireplumber pipewire-pulse; do
        command -v "$tool" >/dev/null 2>&1 || { _whamsah_desk_log "missing program $tool (apt-get install pipewire wireplumber pipewire-pulse)"; return 1; }
      done
      _whamsah_desk_spawn pipewire "$d/pipewire.log" pipewire
      for i in $(seq 100); do [ -S "$XDG_RUNTIME_DIR/pipewire-0" ] && break; sleep 0.05; done
      _whamsah_desk_spawn wireplumber "$d/wireplumber.log" wireplumber
      _whamsah_desk_spawn pipewire-pulse "$d/pipewire-pulse.log" pipewire-pulse
      ;;
    pulseaudio)
      _whamsah_desk_spawn pulseaudio "$d/pulse.out" \
        pulseaudio --daemonize=no -n --exit-idle-time=-1 --disallow-exit \
          --load=module-native-protocol-unix --log-target="file:$d/pulse.log"
      ;;
    *) _whamsah_desk_log "WHAMSAH_SOUND_SERVER must be pulseaudio or pipewire"; return 1 ;;
  esac
  # Up to 30 s: on CI, PipeWire once did not answer within the 10 s this waited before (why is not
  # known: the logs below were not printed then).
  local deadline=$((SECONDS + 30))
  until pactl info >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      _whamsah_desk_log "the sound server did not start in 30 s (see the logs in $d)"
      _whamsah_desk_server_report
      return 1
    fi
    sleep 0.05
  done
  pactl load-module module-null-sink sink_name=cable rate=48000 channels=2 \
    sink_properties=device.description=VirtualCable >/dev/null || return 1
  pactl load-module module-null-sink sink_name=speakers rate=48000 channels=2 \
    sink_properties=device.description=Speakers >/dev/null || return 1
  pactl set-default-sink speakers || return 1
  pactl set-default-source cable.monitor || return 1


  # A null sink renders in 2 s blocks until a low-latency client is attached to its monitor.
  _whamsah_desk_spawn pacat /dev/null pacat -r --latency-msec=10 -d cable.monitor
  _whamsah_desk_spawn pacat /dev/null pacat -r --latency-msec=10 -d speakers.monitor
  sleep 2.2
}

# What a failed start leaves to go on: which server daemons still run, and the end of their logs.
_whamsah_desk_server_report() {
  local d=$WHAMSAH_ENV_DIR pid name state log
  while read -r pid name; do
    case "$name" in
      pulseaudio|pipewire|wireplumber|pipewire-pulse)
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "${name:0:15}" ]; then state=running
        else state="not running"; fi
        _whamsah_desk_log "$name (pid $pid): $state" ;;
    esac
  done < "$d/pids"
  for log in "$d"/pulse.log "$d"/pulse.out "$d"/pipewire.log "$d"/wireplumber.log "$d"/pipewire-pulse.log; do
    [ -s "$log" ] || continue
    _whamsah_desk_log "--- end of ${log##*/}:"
    tail -n 15 "$log" >&2
  done
}

# Stops the sound server and the monitor readers (their lines leave pids); the rest keeps running.
_whamsah_desk_server_down() {
  local d=$WHAMSAH_ENV_DIR pid name i kept=""
  while read -r pid name; do
    [ -n "$pid" ] || continue
    case "$name" in
      pulseaudio|pipewire|wireplumber|pipewire-pulse|pacat)
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "${name:0:15}" ] && kill -9 "$pid" 2>/dev/null ;;
      *) kept="$kept$pid $name"$'\n' ;;
    esac
  done < "$d/pids"
  printf '%s' "$kept" > "$d/pids"
  for i in $(seq 100); do pactl info >/dev/null 2>&1 || break; sleep 0.05; done
  # PulseAudio leaves its pid file and socket behind when killed: a new one must not find them.
  rm -rf "$XDG_RUNTIME_DIR/pulse" "$XDG_RUNTIME_DIR"/pipewire-0* 2>/dev/null || true
}

_whamsah_desk_up() {
  local d=$WHAMSAH_ENV_DIR tool
  for tool in Xvfb trayer dbus-daemon pulseaudio pactl pacat; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      _whamsah_desk_log "missing program $tool (apt-get install xvfb trayer dbus pulseaudio pulseaudio-utils)"
      return 1
    fi
  done
  rm -rf "$d" && mkdir -p "$d" || return 1
  : > "$d/pids"

  # X server: -displayfd writes the number of the first free display to fd 7.
  _whamsah_desk_spawn Xvfb "$d/xvfb.log" \
    Xvfb -displayfd 7 -screen 0 1280x800x24 -nolisten tcp 7>"$d/display"
  local i
  for i in $(seq 200); do [ -s "$d/display" ] && break; sleep 0.05; done
  if ! [ -s "$d/display" ]; then _whamsah_desk_log "Xvfb did not start (see $d/xvfb.log)"; return 1; fi
  export DISPLAY=":$(head -n1 "$d/display")" NO_AT_BRIDGE=1

  _whamsah_desk_spawn trayer "$d/trayer.log" \
    trayer --edge top --align right --widthtype request --height 32 --SetDockType true

  export XDG_RUNTIME_DIR="$d/xdg" XDG_CONFIG_HOME="$d/config"
  mkdir -p -m 700 "$XDG_RUNTIME_DIR" && mkdir -p "$XDG_CONFIG_HOME/alsa" || return 1

  # Private session bus; --fork returns once it listens. (No dbus-x11: it leaves daemons behind.)
  if ! dbus-daemon --session --fork --print-address=1 --print-pid=3 \
      --address="unix:path=$XDG_RUNTIME_DIR/bus" 3>"$d/dbus.pid" >"$d/dbus.addr" 2>"$d/dbus.log" \
      </dev/null; then
    _whamsah_desk_log "dbus-daemon did not start (see $d/dbus.log)"; return 1
  fi
  echo "$(head -n1 "$d/dbus.pid") dbus-daemon" >> "$d/pids"
  export DBUS_SESSION_BUS_ADDRESS="$(head -n1 "$d/dbus.addr")"

  _whamsah_desk_server_up || return 1

  # ALSA (hence PortAudio) reads $XDG_CONFIG_HOME/alsa/asoundrc: name the null sinks.
  cat > "$XDG_CONFIG_HOME/alsa/asoundrc" <<'ASOUNDRC'
pcm.cable            { type pulse; device "cable";            hint { show on; description "virtual cable (playback side)" } }
pcm.cable_monitor    { type pulse; device "cable.monitor";    hint { show on; description "virtual cable (capture side)" } }
pcm.speakers         { type pulse; device "speakers";         hint { show on; description "speakers" } }
pcm.speakers_monitor { type pulse; device "speakers.monitor"; hint { show on; description "what the speakers play" } }
ASOUNDRC

  {
    echo "DISPLAY=$DISPLAY"
    echo "NO_AT_BRIDGE=1"
    echo "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"
    echo "XDG_CONFIG_HOME=$XDG_CONFIG_HOME"
    echo "DBUS_SESSION_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS"
    echo "WHAMSAH_ENV_DIR=$d"
    echo "WHAMSAH_SOUND_SERVER=${WHAMSAH_SOUND_SERVER:-pulseaudio}"
  } > "$d/env"
  export WHAMSAH_ENV_DIR=$d
  _whamsah_desk_log "up: DISPLAY=$DISPLAY, ${WHAMSAH_SOUND_SERVER:-pulseaudio} with sinks cable and speakers, folder $d"
}

_whamsah_desk_down() {
  local d=$WHAMSAH_ENV_DIR pid name alive i
  [ -f "$d/pids" ] || return 0
  # Newest first: the readers and PulseAudio before D-Bus and X.
  alive=""
  while read -r pid name; do
    [ -n "$pid" ] || continue
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "${name:0:15}" ]; then
      # Services the bus started on demand (e.g. the at-spi bus) are ours too.
      if [ "$name" = dbus-daemon ] && command -v pgrep >/dev/null; then
        local child
        for child in $(pgrep -P "$pid"); do kill "$child" 2>/dev/null || true; done
      fi
      kill "$pid" 2>/dev/null && alive="$alive $pid:$name"
    fi
  done < <(tac "$d/pids")
  for i in $(seq 40); do
    local left=""
    for entry in $alive; do
      pid=${entry%%:*}; name=${entry#*:}
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "${name:0:15}" ] && left="$left $entry"
    done
    alive=$left
    [ -z "$alive" ] && break
    sleep 0.05
  done
  for entry in $alive; do kill -9 "${entry%%:*}" 2>/dev/null || true; done
  rm -f "$d/pids" "$d/env"
}

WHAMSAH_ENV_DIR=${WHAMSAH_ENV_DIR:-/tmp/whamsah-desktop-$(id -u)}
case "${1:-up}" in
  up)
    if [ -s "$WHAMSAH_ENV_DIR/pids" ]; then
      _whamsah_desk_log "$WHAMSAH_ENV_DIR/pids exists: an environment may run there; 'down' it first"
      false
    elif ! _whamsah_desk_up; then
      _whamsah_desk_down  # leave nothing behind from a half-started environment
      false
    fi ;;
  down) _whamsah_desk_down ;;
  restart-server)
    # The sound server killed (as a crash would) and started again with the same sinks.
    if [ ! -s "$WHAMSAH_ENV_DIR/env" ]; then
      _whamsah_desk_log "no environment runs in $WHAMSAH_ENV_DIR"; false
    else
      set -a; . "$WHAMSAH_ENV_DIR/env"; set +a
      _whamsah_desk_server_down && _whamsah_desk_server_up
    fi ;;
  *) echo "usage: source tests/desktop_env.sh up|down|restart-server" >&2; false ;;
esac
