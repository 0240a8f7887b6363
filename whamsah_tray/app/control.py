"""Remote control of the running tray: what `whamsah-tray ctl COMMAND` sends, the tray's server that
answers it, and the local socket between them. A desktop's keyboard settings (GNOME, KDE, Wayland
compositors, where pynput hears no keys) bind a key to `whamsah-tray ctl toggle-vocals`.

Protocol: one request per connection, one line of at most MAX_REQUEST_BYTES, either JSON
(`{"argv": ["vocals", "+10"]}`) or plain words (`vocals +10`, shell quoting, for `socat`); one reply
line: JSON (`{"ok": true, "message": "vocals 60 %", "status": {...}}`) for a JSON request, else
`ok: ...` / `error: ...` (`status --json`: the status object). A request that is malformed or too
long gets a one-line error and never reaches the engine.

Transport (`for_platform()`): on Linux and macOS a Unix socket `control.sock` in the user's runtime
folder ($XDG_RUNTIME_DIR/whamsah-tray on Linux), in a folder of mode 0700, the socket 0600; a folder
or socket owned by another user is refused by both ends, and on Linux the server also checks the
peer's uid. On Windows the named pipe `whamsah-tray-<user SID>`, whose ACL admits only the
user (`whamsah_tray.app.control_pipe`). Never TCP. Both sit behind `Transport`, whose `Listener`
and `Connection` a socket already is; the framing (size limit, timeouts, one-line errors) is
`ControlServer`'s and `send()`'s, shared by both.

Threads: the server's accept thread, and one short-lived thread per connection that parses the
request and calls `TrayActions` (which only queue engine commands and debounce the profile write),
so no connection ever waits for the audio. The client side runs on the CLI's main thread.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import socket
import stat
import struct
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, Self

from whamsah_tray.engine.api import MAX_KEY, MAX_LEVEL_PERCENT, MIN_LEVEL_PERCENT
from whamsah_tray.errors import WhamsahError

if TYPE_CHECKING:
    from whamsah_tray.app.actions import TrayActions

APP_DIR_NAME = "whamsah-tray"
SOCKET_NAME = "control.sock"
MAX_REQUEST_BYTES = 4096
MAX_REPLY_BYTES = 1 << 20
REQUEST_TIMEOUT_S = 2.0
CLIENT_TIMEOUT_S = 5.0
NOT_RUNNING = "WHAMSAH Tray is not running"
KEY_RANGE = (-MAX_KEY, MAX_KEY)
LEVEL_RANGE = (MIN_LEVEL_PERCENT, MAX_LEVEL_PERCENT)


class ControlError(WhamsahError):
    """A request that cannot be carried out (bad words, nothing playing...): one line for the user."""


class NotRunningError(ControlError):
    """No tray answers on the socket."""

    def __init__(self, detail: str = ""):
        super().__init__(NOT_RUNNING)
        self.detail = detail


class UnsafeSocketError(ControlError):
    """The socket or its folder belongs to another user or is open to others: never used."""


# -- commands: what a request means, as typed values ------------------------------------------------


@dataclass(frozen=True)
class ToggleVocals:
    pass


@dataclass(frozen=True)
class SetLevel:
    which: str  # "vocals" or "instrumental"
    value: int  # percent, or a change in percent when relative
    relative: bool


@dataclass(frozen=True)
class SetBypass:
    mode: str  # "on", "off" or "toggle"


@dataclass(frozen=True)
class SetKey:
    value: int  # semitones, or a change in semitones when relative
    relative: bool


@dataclass(frozen=True)
class PlayFile:
    path: str  # absolute


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class StopFile:
    pass


@dataclass(frozen=True)
class CaptureApp:
    app: str  # part of the app's name as the Capture app menu shows it, or its stream id


@dataclass(frozen=True)
class Status:
    as_json: bool


@dataclass(frozen=True)
class Quit:
    pass


Command = (ToggleVocals | SetLevel | SetBypass | SetKey | PlayFile | Pause | StopFile | CaptureApp | Status
           | Quit)

USAGE = {
    "toggle-vocals": "toggle-vocals",
    "vocals": "vocals N|+N|-N",
    "instrumental": "instrumental N|+N|-N",
    "bypass": "bypass [on|off|toggle]",
    "key": "key N|+N|-N",
    "play": "play FILE",
    "pause": "pause",
    "stop": "stop",
    "capture": "capture APP",
    "status": "status [--json]",
    "quit": "quit",
}


def _number(word: str, what: str) -> tuple[int, bool]:
    """'N', '+N' or '-N' → (value, relative)."""
    relative = word[:1] in "+-" and len(word) > 1
    try:
        value = int(word, 10)
    except ValueError:
        raise ControlError(f"{what}: expected N, +N or -N, got {word!r}") from None
    return value, relative


def parse_command(argv: list[str]) -> Command:
    """The command that `argv` (e.g. ["vocals", "+10"]) asks for; ControlError if it is not one.
    Relative paths are refused: the client makes them absolute, as the tray's folder is not the
    caller's."""
    if not all(isinstance(word, str) for word in argv):
        raise ControlError("malformed request: every word must be a string")
    if not argv:
        raise ControlError("no command; one of: " + ", ".join(USAGE.values()))
    name, args = argv[0], argv[1:]
    if name not in USAGE:
        raise ControlError(f"unknown command {name!r}; one of: " + ", ".join(USAGE))

    def arity(low: int, high: int) -> None:
        if not low <= len(args) <= high:
            raise ControlError(f"usage: {USAGE[name]}")

    if name == "toggle-vocals":
        arity(0, 0)
        return ToggleVocals()
    if name in ("vocals", "instrumental"):
        arity(1, 1)
        value, relative = _number(args[0], name)
        if not relative and not LEVEL_RANGE[0] <= value <= LEVEL_RANGE[1]:
            raise ControlError(f"{name}: {value} is outside {LEVEL_RANGE[0]}..{LEVEL_RANGE[1]} %")
        return SetLevel(name, value, relative)
    if name == "bypass":
        arity(0, 1)
        mode = args[0] if args else "toggle"
        if mode not in ("on", "off", "toggle"):
            raise ControlError(f"usage: {USAGE[name]}")
        return SetBypass(mode)
    if name == "key":
        arity(1, 1)
        value, relative = _number(args[0], name)
        if not relative and not KEY_RANGE[0] <= value <= KEY_RANGE[1]:
            raise ControlError(f"key: {value} is outside {KEY_RANGE[0]}..{KEY_RANGE[1]} semitones")
        return SetKey(value, relative)
    if name == "play":
        arity(1, 1)
        if not os.path.isabs(args[0]):
            raise ControlError(f"play: {args[0]!r} is not an absolute path")
        return PlayFile(args[0])
    if name == "pause":
        arity(0, 0)
        return Pause()
    if name == "stop":
        arity(0, 0)
        return StopFile()
    if name == "capture":
        arity(1, 1)
        if not args[0].strip():
            raise ControlError(f"usage: {USAGE[name]}")
        return CaptureApp(args[0])
    if name == "quit":
        arity(0, 0)
        return Quit()
    arity(0, 1)
    if args and args[0] != "--json":
        raise ControlError(f"usage: {USAGE[name]}")
    return Status(as_json=bool(args))


# -- what the tray does with a command -------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    ok: bool
    message: str
    status: dict | None = None

    def to_json(self) -> str:
        data: dict = {"ok": self.ok, "message": self.message}
        if self.status is not None:
            data["status"] = self.status
        return json.dumps(data)

    def to_text(self) -> str:
        if self.status is not None:
            return json.dumps(self.status)
        return f"{'ok' if self.ok else 'error'}: {self.message}"


def status_of(view) -> dict:
    """The engine's state as `status --json` reports it (an EngineView, as plain data)."""
    return dataclasses.asdict(view)


class CommandHandler:
    """Carries out commands through `TrayActions`, so that each change reaches the engine and the
    profile exactly as the same choice in the menu does."""

    def __init__(self, actions: "TrayActions"):
        self.actions = actions
        self._handlers: dict[type, Callable] = {
            ToggleVocals: self._toggle_vocals,
            SetLevel: self._set_level,
            SetBypass: self._set_bypass,
            SetKey: self._set_key,
            PlayFile: self._play_file,
            Pause: self._pause,
            StopFile: self._stop_file,
            CaptureApp: self._capture_app,
            Status: self._status,
            Quit: self._quit,
        }

    def handle(self, command: Command) -> Reply:
        try:
            message = self._handlers[type(command)](command)
        except ControlError as error:
            return Reply(False, str(error))
        if isinstance(command, Status):
            return Reply(True, message, status_of(self.actions.view()))
        return Reply(True, message)

    def _toggle_vocals(self, _: ToggleVocals) -> str:
        muting = self.actions.view().vocals > 0
        self.actions.toggle_vocals()
        return "vocals muted" if muting else "vocals back"

    def _set_level(self, command: SetLevel) -> str:
        current = getattr(self.actions.view(), command.which)
        target = current + command.value if command.relative else command.value
        target = max(LEVEL_RANGE[0], min(LEVEL_RANGE[1], target))
        self.actions.set_level(command.which, target)
        return f"{command.which} {target} %"

    def _set_bypass(self, command: SetBypass) -> str:
        on = not self.actions.view().bypass if command.mode == "toggle" else command.mode == "on"
        self.actions.set_bypass(on)
        return f"bypass {'on' if on else 'off'}"

    def _set_key(self, command: SetKey) -> str:
        target = self.actions.view().key + command.value if command.relative else command.value
        target = max(KEY_RANGE[0], min(KEY_RANGE[1], target))
        self.actions.set_key(target)
        return f"key {target:+d}" if target else "key 0 (original)"

    def _play_file(self, command: PlayFile) -> str:
        path = command.path
        if not os.path.isfile(path):
            raise ControlError(f"play: no such file: {path}")
        if not os.access(path, os.R_OK):
            raise ControlError(f"play: cannot read {path}")
        self.actions.play_file(path)
        return f"playing {os.path.basename(path)}"

    def _pause(self, _: Pause) -> str:
        view = self.actions.view()
        if not view.playing_file:
            raise ControlError("pause: no file is playing")
        self.actions.toggle_pause()
        return "resumed" if view.paused else "paused"

    def _stop_file(self, _: StopFile) -> str:
        if not self.actions.view().playing_file:
            return "no file was playing"
        self.actions.stop_file()
        return "stopped"

    def _capture_app(self, command: CaptureApp) -> str:
        if not self.actions.engine.linux_cable_supported():
            raise ControlError("capture: needs PulseAudio or PipeWire (Linux)")
        apps = self.actions.engine.playing_apps(fresh=True)
        wanted = command.app.casefold()
        matches = [app for app in apps if app.id == command.app] or \
                  [app for app in apps if wanted in app.label.casefold()]
        if not matches:
            playing = ", ".join(app.label for app in apps) or "none"
            raise ControlError(f"capture: no playing application matches {command.app!r} (playing: {playing})")
        if len(matches) > 1:
            raise ControlError(f"capture: {command.app!r} matches several applications: "
                               + ", ".join(app.label for app in matches))
        app = matches[0]
        if app.captured:
            return f"{app.label} is already captured"
        self.actions.toggle_capture(app.id)
        return f"capturing {app.label}"

    def _status(self, _: Status) -> str:
        return self.actions.view().state.value

    def _quit(self, _: Quit) -> str:
        # A moment later, so that this reply leaves before the tray shuts its server down.
        threading.Timer(0.1, self.actions.quit).start()
        return "quitting"


def answer(line: bytes, handler: CommandHandler) -> str:
    """The reply line (without newline) to one request line."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return Reply(False, "request is not UTF-8").to_text()
    text = text.strip()
    as_json = text.startswith("{")
    try:
        if as_json:
            try:
                request = json.loads(text)
            except ValueError as error:
                raise ControlError(f"malformed JSON request: {error}") from None
            argv = request.get("argv") if isinstance(request, dict) else None
            if not isinstance(argv, list):
                raise ControlError('a JSON request is {"argv": ["command", "arg", ...]}')
        else:
            try:
                argv = shlex.split(text)
            except ValueError as error:
                raise ControlError(f"malformed request: {error}") from None
        command = parse_command(argv)
    except ControlError as error:
        reply = Reply(False, str(error))
    else:
        reply = handler.handle(command)
    return reply.to_json() if as_json else reply.to_text()


# -- transport -------------------------------------------------------------------------------------


class Connection(Protocol):
    """One request's byte stream, as much of a socket as the framing uses (a socket is one).
    `recv` returns b"" at the end of the stream; past the `settimeout` limit it raises
    TimeoutError (socket.timeout is the same class)."""

    def recv(self, bufsize: int, /) -> bytes: ...

    def sendall(self, data: bytes, /) -> None: ...

    def settimeout(self, value: float | None, /) -> None: ...

    def shutdown(self, how: int, /) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *args: object) -> None: ...


class Listener(Protocol):
    """The tray's end: `accept()` waits at most the `settimeout` limit (then TimeoutError), so
    the server's loop can look at its stop flag; a listening socket is one."""

    def accept(self) -> tuple[Connection, object]: ...

    def settimeout(self, value: float | None, /) -> None: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Where the tray listens and the client connects; a platform's local, per-user channel."""

    def listen(self) -> Listener: ...

    def connect(self, timeout: float) -> Connection: ...

    def close(self) -> None: ...

    def peer_allowed(self, connection: Connection) -> bool: ...


def runtime_dir() -> Path:
    """The user's runtime folder for the app: $XDG_RUNTIME_DIR/whamsah-tray where set (Linux),
    else platformdirs' choice (which, on a Linux without XDG_RUNTIME_DIR, is under /tmp: the
    ownership checks below matter there)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and sys.platform.startswith("linux"):
        return Path(base) / APP_DIR_NAME
    import platformdirs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir(APP_DIR_NAME, appauthor=False))


class UnixSocketTransport:
    """`control.sock` in a private folder. Both ends refuse a folder or socket of another uid."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder is not None else runtime_dir()
        self.path = self.folder / SOCKET_NAME
        self._bound: tuple[int, int] | None = None  # (st_dev, st_ino) of the socket we made

    def _check_folder(self, create: bool) -> None:
        assert sys.platform != "win32"  # a Unix socket (Windows: see the Transport docstring)
        if create and not self.folder.parent.exists():  # e.g. platformdirs' /tmp/runtime-UID
            self.folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Whoever owns the parent could swap our folder for theirs: it must be ours (or root's).
        parent_owner = os.stat(self.folder.parent).st_uid
        if parent_owner not in (os.getuid(), 0):
            raise UnsafeSocketError(f"{self.folder.parent} belongs to uid {parent_owner}, not to you: "
                                    "refusing to use it")
        if create:
            self.folder.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(self.folder)
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeSocketError(f"{self.folder} is not a folder: refusing to use it")
        if st.st_uid != os.getuid():
            raise UnsafeSocketError(f"{self.folder} belongs to uid {st.st_uid}, not to you: refusing to use it")
        if st.st_mode & 0o077:
            if not create:
                raise UnsafeSocketError(f"{self.folder} is open to other users: refusing to use it")
            os.chmod(self.folder, 0o700)

    def _check_socket(self) -> os.stat_result:
        assert sys.platform != "win32"  # a Unix socket (Windows: see the Transport docstring)
        st = os.lstat(self.path)
        if not stat.S_ISSOCK(st.st_mode):
            raise UnsafeSocketError(f"{self.path} is not a socket: refusing to use it")
        if st.st_uid != os.getuid():
            raise UnsafeSocketError(f"{self.path} belongs to uid {st.st_uid}, not to you: refusing to use it")
        return st

    def listen(self) -> socket.socket:
        assert sys.platform != "win32"  # a Unix socket (Windows: see the Transport docstring)
        self._check_folder(create=True)
        if os.path.lexists(self.path):
            self._check_socket()
            try:
                probe = self.connect(0.5)
            except NotRunningError:
                os.unlink(self.path)  # left behind by a tray that was killed
            else:
                probe.close()
                raise ControlError(f"another tray already answers on {self.path}")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.bind(str(self.path))
            os.chmod(self.path, 0o600)  # the folder (0700) already keeps others out meanwhile
            server.listen(8)
        except OSError:
            server.close()
            raise
        st = os.lstat(self.path)
        self._bound = (st.st_dev, st.st_ino)
        return server

    def connect(self, timeout: float) -> socket.socket:
        assert sys.platform != "win32"  # a Unix socket (Windows: see the Transport docstring)
        try:
            self._check_folder(create=False)
            self._check_socket()
        except FileNotFoundError:
            raise NotRunningError(f"{self.path} does not exist") from None
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(timeout)
        try:
            client.connect(str(self.path))
        except (ConnectionRefusedError, FileNotFoundError) as error:
            client.close()
            raise NotRunningError(str(error)) from None
        except OSError:
            client.close()
            raise
        return client

    def peer_allowed(self, connection: Connection) -> bool:
        assert isinstance(connection, socket.socket)  # accepted on the socket listen() made
        if sys.platform != "linux":
            return True  # macOS/BSD have no SO_PEERCRED: the 0700 folder is the guard
        credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", credentials)
        return uid == os.getuid()

    def close(self) -> None:
        """Remove the socket, if it is still the one this transport made."""
        if self._bound is None:
            return
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._bound:
                os.unlink(self.path)
        except OSError:
            pass
        self._bound = None


def for_platform() -> Transport:
    if sys.platform == "win32":
        from whamsah_tray.app.control_pipe import NamedPipeTransport

        return NamedPipeTransport()
    return UnixSocketTransport()


# -- server (in the tray) --------------------------------------------------------------------------


class ControlServer:
    """Answers `ctl` requests while the tray runs. `start()` raises ControlError (UnsafeSocketError
    included) or OSError when it cannot listen; the tray then tells the user and goes on."""

    def __init__(self, actions: "TrayActions", transport: Transport | None = None):
        self.handler = CommandHandler(actions)
        self.transport = transport or for_platform()
        self._socket: Listener | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._socket = self.transport.listen()
        self._socket.settimeout(0.25)  # the accept loop looks at _stopped this often
        self._thread = threading.Thread(target=self._serve, name="ctl-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        server = self._socket
        while not self._stopped.is_set():
            try:
                connection, _ = server.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stopped.is_set():
                    return
                raise
            threading.Thread(target=self._serve_one, args=(connection,), name="ctl-request",
                             daemon=True).start()

    def _serve_one(self, connection: Connection) -> None:
        with connection:
            connection.settimeout(REQUEST_TIMEOUT_S)
            try:
                if not self.transport.peer_allowed(connection):
                    reply = Reply(False, "refused: the caller is another user").to_text()
                else:
                    reply = self._reply_to(connection)
                connection.sendall(reply.encode("utf-8") + b"\n")
                self._drain(connection)
            except OSError:
                pass  # the caller went away or stalled: nothing reached the engine

    @staticmethod
    def _drain(connection: Connection, limit: int = 1 << 20) -> None:
        """Read what an oversized request still sends (bounded): closing with unread data would
        reset the connection and lose the reply on the caller's side (a pipe has no half-close:
        there the caller's close after the reply's newline ends this)."""
        connection.shutdown(socket.SHUT_WR)
        connection.settimeout(0.5)
        received = 0
        while received < limit:
            chunk = connection.recv(65536)
            if not chunk:
                return
            received += len(chunk)

    def _reply_to(self, connection: Connection) -> str:
        data = b""
        while b"\n" not in data and len(data) <= MAX_REQUEST_BYTES:
            try:
                chunk = connection.recv(MAX_REQUEST_BYTES + 1 - len(data) or 1)
            except socket.timeout:
                return Reply(False, "request not finished in time (end it with a newline)").to_text()
            if not chunk:
                break
            data += chunk
        line = data.split(b"\n", 1)[0]
        if len(line) > MAX_REQUEST_BYTES:
            return Reply(False, f"request longer than {MAX_REQUEST_BYTES} bytes").to_text()
        return answer(line, self.handler)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self.transport.close()


# -- client (`whamsah-tray ctl`) -------------------------------------------------------------------


def send(argv: list[str], transport: Transport | None = None, timeout: float = CLIENT_TIMEOUT_S) -> Reply:
    """Send one command to the running tray and return its reply. NotRunningError when no tray
    answers; UnsafeSocketError for a socket of another user."""
    transport = transport or for_platform()
    with transport.connect(timeout) as connection:
        connection.sendall(json.dumps({"argv": argv}).encode("utf-8") + b"\n")
        data = b""
        while b"\n" not in data and len(data) < MAX_REPLY_BYTES:
            try:
                chunk = connection.recv(65536)
            except socket.timeout:
                raise ControlError("the tray did not answer in time") from None
            if not chunk:
                break
            data += chunk
    if not data.strip():
        raise NotRunningError("the tray closed the connection without answering")
    line = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    for prefix, ok in (("error: ", False), ("ok: ", True)):
        if line.startswith(prefix):  # a refusal of what the tray did not parse (too long) is plain text
            return Reply(ok, line[len(prefix):])
    try:
        reply = json.loads(line)
        return Reply(bool(reply["ok"]), str(reply["message"]), reply.get("status"))
    except (ValueError, KeyError, TypeError):
        raise ControlError(f"unexpected reply from the tray: {data[:200]!r}") from None
