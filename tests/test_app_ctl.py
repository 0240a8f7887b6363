"""`whamsah-tray ctl` end to end: a real tray (real engine on the PulseAudio null sinks, GTK icon on
the test desktop) runs in this process, and each command is the real `whamsah-tray ctl` program in a
subprocess, talking to the tray through its real socket in $XDG_RUNTIME_DIR. The tests check what
the engine does, what the profile remembers, what `status --json` reports and, for `play`, what the
speakers play. Also: the socket's modes, a socket or folder of another uid refused by both ends,
garbage and oversized requests answered with one line and never reaching the engine, and exit
status 3 when no tray runs.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tray_driver as drive
from in_process_tray import running_tray
from engine_audio import RATE, recording

pytestmark = pytest.mark.desktop

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent


def ctl(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m whamsah_tray ctl ARGS`, as a key binding would run it."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), full_env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "whamsah_tray", "ctl", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or REPO_ROOT, timeout=60, stdin=subprocess.DEVNULL, check=False)


def ok(*args: str, **kwargs) -> str:
    done = ctl(*args, **kwargs)
    assert done.returncode == 0, f"ctl {' '.join(args)} → {done.returncode}: {done.stderr.strip()}"
    return done.stdout


@pytest.fixture(scope="module")
def tray(desktop, portaudio, tmp_path_factory):
    pytest.importorskip("gi", reason="PyGObject is not installed (pip install 'PyGObject<3.50' pycairo)")
    from whamsah_tray.app.control import runtime_dir

    with running_tray(tmp_path_factory.mktemp("ctl"), "tray-under-ctl",
                      audio={"input_device": desktop.cable_monitor, "output_device": desktop.speakers},
                      levels={"vocals": 100, "instrumental": 100, "bypass": False, "key": 0}) as running:
        assert drive.wait_until(lambda: running.app.control is not None, 5), "the ctl server did not start"
        yield running
    # Quitting removes the socket: ctl then says the tray is not running.
    assert not (runtime_dir() / "control.sock").exists()
    done = ctl("status")
    assert done.returncode == 3 and done.stderr.strip() == "WHAMSAH Tray is not running"


def status_json() -> dict:
    return json.loads(ok("status", "--json"))


def test_the_socket_is_private_to_the_user(tray):
    from whamsah_tray.app.control import runtime_dir

    folder = runtime_dir()
    assert folder == Path(os.environ["XDG_RUNTIME_DIR"]) / "whamsah-tray"
    sock = folder / "control.sock"
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode) and st.st_uid == os.getuid()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700


def test_toggle_vocals_flips_the_engine_and_the_profile_and_status_reports_it(tray):
    assert ok("toggle-vocals").strip() == "vocals muted"
    tray.wait_engine(lambda s: round(s.vocals) == 0, "vocals muted by ctl")
    tray.wait_profile("levels", "vocals", 0)
    assert status_json()["vocals"] == 0
    assert ok("toggle-vocals").strip() == "vocals back"
    tray.wait_engine(lambda s: round(s.vocals) == 100, "vocals back by ctl")
    tray.wait_profile("levels", "vocals", 100)
    report = status_json()
    assert report["vocals"] == 100 and report["state"] == "running"
    assert report["input_device"] == "cable_monitor" and report["output_device"] == "speakers"
    text = ok("status")
    assert "state: running" in text and "vocals: 100 %" in text and "output: speakers" in text


def test_levels_absolute_and_relative(tray):
    try:
        ok("vocals", "40")
        tray.wait_engine(lambda s: round(s.vocals) == 40, "vocals 40")
        assert ok("vocals", "+15").strip() == "vocals 55 %"
        tray.wait_engine(lambda s: round(s.vocals) == 55, "vocals 55")
        assert ok("vocals", "-80").strip() == "vocals 0 %"  # clamped, not refused
        tray.wait_engine(lambda s: round(s.vocals) == 0, "vocals 0")
        ok("instrumental", "70")
        tray.wait_engine(lambda s: round(s.instrumental) == 70, "instrumental 70")
        assert ok("instrumental", "+100").strip() == "instrumental 150 %"
        tray.wait_engine(lambda s: round(s.instrumental) == 150, "instrumental 150")
        tray.wait_profile("levels", "instrumental", 150)
        tray.wait_profile("levels", "vocals", 0)
        report = status_json()
        assert (report["vocals"], report["instrumental"]) == (0, 150)
        # After vocals 0 via `vocals`, toggle-vocals brings back the last level above 0, as the menu does.
        ok("toggle-vocals")
        tray.wait_engine(lambda s: round(s.vocals) == 55, "vocals back to 55")
        bad = ctl("vocals", "151")
        assert bad.returncode == 2 and "outside 0..150" in bad.stderr
        bad = ctl("vocals", "loud")
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    finally:
        ok("vocals", "100")
        ok("instrumental", "100")
        tray.wait_engine(lambda s: round(s.vocals) == 100 and round(s.instrumental) == 100, "levels back")


def test_bypass_on_off_toggle(tray):
    ok("bypass", "on")
    tray.wait_engine(lambda s: s.bypass, "bypass on")
    tray.wait_profile("levels", "bypass", True)
    assert ok("bypass", "on").strip() == "bypass on"  # on stays on
    tray.wait_engine(lambda s: s.bypass, "still bypassed")
    assert status_json()["bypass"] is True
    assert ok("bypass").strip() == "bypass off"  # no argument: toggle
    tray.wait_engine(lambda s: not s.bypass, "bypass toggled off")
    ok("bypass", "toggle")
    tray.wait_engine(lambda s: s.bypass, "bypass toggled on")
    ok("bypass", "off")
    tray.wait_engine(lambda s: not s.bypass, "bypass off")
    tray.wait_profile("levels", "bypass", False)


def test_key_absolute_and_relative(tray):
    try:
        assert ok("key", "+2").strip() == "key +2"
        tray.wait_engine(lambda s: s.key == 2, "key +2")
        tray.wait_profile("levels", "key", 2)
        assert ok("key", "-3").strip() == "key -1"
        tray.wait_engine(lambda s: s.key == -1, "key -1")
        assert ok("key", "-6").strip() == "key -6"  # relative: -1 - 6 stops at -6
        tray.wait_engine(lambda s: s.key == -6, "key -6")
        ok("key", "4")
        tray.wait_engine(lambda s: s.key == 4, "key 4")
        assert status_json()["key"] == 4 and "key: +4" in ok("status")
        assert ctl("key", "7").returncode == 2
    finally:
        ok("key", "0")
        tray.wait_engine(lambda s: s.key == 0, "original key")
    tray.wait_profile("levels", "key", 0)


def _rms(desktop, seconds: float) -> float:
    with recording(f"{desktop.speakers}.monitor") as rec:
        time.sleep(seconds)
    return float(np.sqrt(np.mean(rec["audio"].astype(np.float64) ** 2)))


def test_play_pause_stop_a_file_heard_on_the_speakers(tray, desktop, tmp_path):
    import soundfile

    folder = tmp_path / "songs"
    folder.mkdir()
    t = np.arange(RATE * 8) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(folder / "tone.wav", np.stack([tone, tone], axis=1).astype("float32"), RATE)
    silence = _rms(desktop, 0.5)

    # A relative path is the caller's: ctl makes it absolute before the tray sees it.
    assert ok("play", "tone.wav", cwd=folder).strip() == "playing tone.wav"
    tray.wait_engine(lambda s: s.state.value == "playing_file", "playing the file")
    playing = _rms(desktop, 1.0)
    assert playing > 0.05 and playing > 10 * silence, f"output RMS {playing:.4f} (silence {silence:.5f})"
    tray.wait_profile("file_dialog", "last_folder", str(folder))
    report = status_json()
    assert report["state"] == "playing_file" and report["file"] == str(folder / "tone.wav")
    assert report["duration_s"] == pytest.approx(8.0, abs=0.1)
    assert "file: " + str(folder / "tone.wav") in ok("status")

    assert ok("pause").strip() == "paused"
    tray.wait_engine(lambda s: s.paused, "paused")
    assert status_json()["paused"] is True
    time.sleep(0.5)
    assert _rms(desktop, 0.6) < 0.01, "the speakers still play while paused"
    assert ok("pause").strip() == "resumed"
    tray.wait_engine(lambda s: not s.paused, "resumed")

    assert ok("stop").strip() == "stopped"
    tray.wait_engine(lambda s: s.state.value == "running", "back to live input after stop")
    refused = ctl("pause")
    assert refused.returncode == 1 and refused.stderr.strip() == "whamsah-tray ctl: error: pause: no file is playing"
    assert ok("stop").strip() == "no file was playing"
    missing = ctl("play", str(folder / "nothing.wav"))
    assert missing.returncode == 1 and "no such file" in missing.stderr
    time.sleep(0.3)
    assert tray.engine.status.state.value == "running"


def _sink_of(desktop, app_name: str) -> str | None:
    sinks = {line.split("\t")[0]: line.split("\t")[1]
             for line in desktop.pactl("list", "short", "sinks").splitlines() if "\t" in line}
    for app in json.loads(desktop.pactl("--format=json", "list", "sink-inputs")):
        if app.get("properties", {}).get("application.name") == app_name:
            return sinks.get(str(app["sink"]))
    return None


def test_capture_moves_a_playing_app_into_the_cable(tray, desktop, tmp_path):
    import soundfile

    name = "WhamsahCtlPlayer"
    quiet = tmp_path / "quiet.wav"
    soundfile.write(quiet, np.zeros((RATE * 30, 2), "float32"), RATE)
    player = subprocess.Popen(["paplay", f"--property=application.name={name}", "-d", desktop.speakers, str(quiet)])
    try:
        assert drive.wait_until(lambda: _sink_of(desktop, name) == desktop.speakers, 10)
        refused = ctl("capture", "NoSuchPlayer")
        assert refused.returncode == 1 and "no playing application matches 'NoSuchPlayer'" in refused.stderr
        assert name in refused.stderr  # the message lists what is playing
        assert ok("capture", "whamsahctl").strip().startswith("capturing ")  # part of the name, any case
        assert drive.wait_until(lambda: _sink_of(desktop, name) == "whamsah_cable", 15), \
            "the app was not moved into the cable"
        assert drive.wait_until(lambda: any(a.captured for a in tray.app.engine.playing_apps(fresh=True)), 5)
        assert ok("capture", name).strip().endswith("is already captured")
    finally:
        player.terminate()
        player.wait(5)
        if "whamsah_cable" in desktop.sink_names():
            tray.app.actions.remove_cable()
            assert drive.wait_until(lambda: "whamsah_cable" not in desktop.sink_names(), 10)
    tray.app.actions.choose_device("input", desktop.cable_monitor)
    tray.wait_engine(lambda s: s.input_device == desktop.cable_monitor and s.state.value == "running",
                     "running again on the test cable")


def _raw(request: bytes, timeout: float = 5.0) -> bytes:
    """One request on the tray's socket, as any local program could send it."""
    from whamsah_tray.app.control import runtime_dir

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(runtime_dir() / "control.sock"))
        client.sendall(request)
        data = b""
        while True:
            chunk = client.recv(65536)
            if not chunk:
                return data
            data += chunk


def test_garbage_and_oversized_requests_get_one_line_and_never_reach_the_engine(tray):
    from whamsah_tray.app.control import MAX_REQUEST_BYTES

    before = (tray.engine.status.vocals, tray.engine.status.bypass, tray.profile_file().get("levels"))
    for request, expected in [
        (b"\xff\xfe vocals 0\n", "error: request is not UTF-8"),
        (b"vocals 0" + b" " * MAX_REQUEST_BYTES + b"\n", f"error: request longer than {MAX_REQUEST_BYTES} bytes"),
        (b"x" * 20_000, f"error: request longer than {MAX_REQUEST_BYTES} bytes"),
        (b"vocals 0; rm -rf /\n", "error: usage: vocals N|+N|-N"),
        (b"vocals '0\n", "error: malformed request: No closing quotation"),
        (b"fly\n", "error: unknown command 'fly'"),
        (b"\n", "error: no command"),
        (b"play relative.wav\n", "error: play: 'relative.wav' is not an absolute path"),
        (b'{"argv": "vocals 0"}\n', '{"ok": false, "message": "a JSON request is'),
        (b'{"argv": ["vocals", 0]}\n', '{"ok": false, "message": "malformed request: every word'),
        (b'{"argv": ["bypass", "on"\n', '{"ok": false, "message": "malformed JSON request'),
    ]:
        reply = _raw(request)
        assert reply.endswith(b"\n") and reply.count(b"\n") == 1, (request[:40], reply)
        assert reply.decode().startswith(expected), (request[:40], reply)
    time.sleep(0.5)
    assert (tray.engine.status.vocals, tray.engine.status.bypass, tray.profile_file().get("levels")) == before
    # A request without its newline, from a caller that then waits: answered after the server's timeout.
    from whamsah_tray.app.control import runtime_dir

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(runtime_dir() / "control.sock"))
        client.sendall(b"bypass on")
        assert client.recv(1000).startswith(b"error: request not finished in time")
    # `ctl` itself with an argument past the limit: the tray's refusal, told as such (exit 1).
    done = ctl("capture", "a" * (MAX_REQUEST_BYTES + 10))
    assert done.returncode == 1, done
    assert done.stderr.strip() == f"whamsah-tray ctl: error: request longer than {MAX_REQUEST_BYTES} bytes", done
    # Plain words work for `socat`-style callers too.
    assert _raw(b"status\n").startswith(b"{")
    assert _raw(b"bypass off\n") == b"ok: bypass off\n"


def test_not_running_is_exit_status_3(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    done = ctl("toggle-vocals", env={"XDG_RUNTIME_DIR": str(runtime)})
    assert done.returncode == 3 and done.stderr.strip() == "WHAMSAH Tray is not running"
    # A socket left behind by a killed tray: nobody answers, same message.
    (runtime / "whamsah-tray").mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(runtime / "whamsah-tray" / "control.sock"))
    stale.close()
    done = ctl("status", "--json", env={"XDG_RUNTIME_DIR": str(runtime)})
    assert done.returncode == 3 and done.stderr.strip() == "WHAMSAH Tray is not running"
    assert done.stdout == ""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to give a socket to another uid")
def test_a_socket_or_folder_of_another_uid_is_refused_by_both_ends(tmp_path):
    from whamsah_tray.app.control import ControlServer, UnsafeSocketError, UnixSocketTransport

    other = 65534  # nobody
    runtime = tmp_path / "runtime"
    folder = runtime / "whamsah-tray"
    folder.mkdir(parents=True, mode=0o700)
    planted = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    planted.bind(str(folder / "control.sock"))
    planted.listen(1)
    os.chown(folder / "control.sock", other, other)
    try:
        done = ctl("toggle-vocals", env={"XDG_RUNTIME_DIR": str(runtime)})
        assert done.returncode == 2
        assert done.stderr.strip().endswith(f"control.sock belongs to uid {other}, not to you: refusing to use it")
        planted.settimeout(0.5)
        with pytest.raises(socket.timeout):
            planted.accept()  # the client never connected
        # The tray refuses to serve there, and leaves the other user's socket alone.
        server = ControlServer(actions=None, transport=UnixSocketTransport(folder))
        with pytest.raises(UnsafeSocketError):
            server.start()
        assert (folder / "control.sock").exists()
    finally:
        planted.close()
    os.unlink(folder / "control.sock")
    os.chown(folder, other, other)
    done = ctl("status", env={"XDG_RUNTIME_DIR": str(runtime)})
    assert done.returncode == 2 and f"belongs to uid {other}" in done.stderr
    with pytest.raises(UnsafeSocketError):
        UnixSocketTransport(folder).listen()
    # A runtime folder of someone else (e.g. a planted /tmp/runtime-UID): refused before our folder is made.
    os.chown(folder, 0, 0)
    os.rmdir(folder)
    os.chown(runtime, other, other)
    done = ctl("status", env={"XDG_RUNTIME_DIR": str(runtime)})
    assert done.returncode == 2 and f"runtime belongs to uid {other}" in done.stderr
    with pytest.raises(UnsafeSocketError):
        UnixSocketTransport(folder).listen()
    assert not folder.exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or not hasattr(socket, "SO_PEERCRED"),
                    reason="needs root (to act as another uid) and SO_PEERCRED (Linux)")
def test_the_server_refuses_a_caller_of_another_uid():
    """Even with the folder and socket opened up on purpose, the tray answers only its own user:
    a caller running as another uid (a forked child that dropped to 'nobody') is refused."""
    import shutil
    import tempfile

    from whamsah_tray.app.control import ControlServer, UnixSocketTransport

    base = Path(tempfile.mkdtemp(prefix="whamsah-ctl-"))
    try:
        os.chmod(base, 0o711)
        folder = base / "whamsah-tray"
        server = ControlServer(actions=None, transport=UnixSocketTransport(folder))
        server.start()
        try:
            os.chmod(folder, 0o711)
            os.chmod(folder / "control.sock", 0o666)
            read_end, write_end = os.pipe()
            child = os.fork()
            if child == 0:  # the other user: only socket calls, then _exit
                try:
                    os.close(read_end)
                    os.setgid(65534)
                    os.setuid(65534)
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                        client.settimeout(5)
                        client.connect(str(folder / "control.sock"))
                        client.sendall(b"bogus\n")
                        os.write(write_end, client.recv(1000))
                finally:
                    os._exit(0)
            os.close(write_end)
            with os.fdopen(read_end, "rb") as pipe:
                heard = pipe.read()
            os.waitpid(child, 0)
            assert heard == b"error: refused: the caller is another user\n"
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:  # its own user is answered
                client.settimeout(5)
                client.connect(str(folder / "control.sock"))
                client.sendall(b"bogus\n")
                assert client.recv(1000).startswith(b"error: unknown command 'bogus'")
        finally:
            server.stop()
        assert not (folder / "control.sock").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)
