r"""`whamsah-tray ctl` on Windows: the named-pipe transport (whamsah_tray.app.control_pipe).

Windows cannot run here, so every test but the pure ones is mocked: the Win32 calls sit behind the
`PipeApi` seam, and `FakePipes` below stands in for them with socketpairs and a shared namespace
that keeps the rules these tests rely on: an instance per connection, FILE_FLAG_FIRST_PIPE_INSTANCE
refusing a taken name, only the SID the DACL names may open or add instances, the pipe's owner as
its SDDL says, and a name that vanishes with its last instance. Above the seam everything is the
real code: NamedPipeTransport, its listener and connections, ControlServer and `send()` with their
shared framing, and `whamsah-tray ctl`'s exit status. What only a real Windows can show (the ctypes
calls, the SDDL as the kernel reads it) is not checked here.
"""

from __future__ import annotations

import argparse
import re
import socket
import threading
import time
from dataclasses import replace

import pytest

from whamsah_tray.app import control
from whamsah_tray.app.control import (MAX_REQUEST_BYTES, NOT_RUNNING, ControlError, ControlServer, NotRunningError,
                                      UnsafeSocketError, send)
from whamsah_tray.app.control_pipe import NamedPipeTransport, pipe_name, pipe_sddl
from whamsah_tray.app.status import EngineView
from whamsah_tray.engine.api import EngineState

USER = "S-1-5-21-1004336348-1177238915-682003330-1001"
OTHER_USER = "S-1-5-21-1004336348-1177238915-682003330-1002"


# -- the stand-in for the Win32 calls --------------------------------------------------------------


class _Instance:
    def __init__(self, name: str, owner: str, allowed: set[str]):
        self.name = name
        self.owner = owner
        self.allowed = allowed
        self.end: socket.socket | None = None  # the server's end, once a client connected
        self.closed = False


class PipeNamespace:
    r"""The system's \\.\pipe\ folder, shared by every FakePipes ("process") of a test."""

    def __init__(self):
        self.changed = threading.Condition()
        self.pipes: dict[str, list[_Instance]] = {}
        self.handles: dict[int, _Instance | socket.socket] = {}
        self.created: list[tuple[str, str, bool]] = []  # (name, sddl, first_instance) per create
        self.instance_of: dict[int, _Instance] = {}  # a client handle's instance
        self._next = 100

    def new_handle(self, target: _Instance | socket.socket) -> int:
        self._next += 4
        self.handles[self._next] = target
        return self._next


class FakePipes:
    """PipeApi for one process of the user `sid`, over socketpairs."""

    def __init__(self, namespace: PipeNamespace, sid: str = USER):
        self.ns = namespace
        self.sid = sid

    def current_user_sid(self) -> str:
        return self.sid

    def create(self, name: str, sddl: str, first_instance: bool) -> int:
        owner, allowed = re.fullmatch(r"O:(S-[\d-]+)D:P((?:\(A;;GA;;;S-[\d-]+\))+)", sddl).groups()
        with self.ns.changed:
            self.ns.created.append((name, sddl, first_instance))
            existing = self.ns.pipes.get(name)
            if existing and (first_instance or self.sid not in existing[0].allowed):
                raise PermissionError(13, "Access is denied")
            if owner != self.sid:
                raise PermissionError(13, "not allowed to give the pipe to another owner")
            instance = _Instance(name, owner, set(re.findall(r"S-[\d-]+", allowed)))
            self.ns.pipes.setdefault(name, []).append(instance)
            return self.ns.new_handle(instance)

    def wait_for_client(self, handle: int, timeout: float | None) -> bool:
        instance = self.ns.handles[handle]
        assert isinstance(instance, _Instance)
        with self.ns.changed:
            self.ns.changed.wait_for(lambda: instance.end is not None or instance.closed, timeout)
            if instance.closed:
                raise OSError(6, "The handle is invalid")
            return instance.end is not None

    def open(self, name: str, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self.ns.changed:
            while True:
                instances = self.ns.pipes.get(name)
                if not instances:
                    raise FileNotFoundError(2, "The system cannot find the file specified")
                if self.sid not in instances[0].allowed:
                    raise PermissionError(13, "Access is denied")
                listening = [instance for instance in instances if instance.end is None]
                if listening:
                    server_end, client_end = socket.socketpair()
                    listening[0].end = server_end
                    self.ns.changed.notify_all()
                    handle = self.ns.new_handle(client_end)
                    self.ns.instance_of[handle] = listening[0]
                    return handle
                if not self.ns.changed.wait(deadline - time.monotonic()):  # every instance busy
                    raise TimeoutError("every instance stayed busy")

    def owner_sid(self, handle: int) -> str:
        return self.ns.instance_of[handle].owner

    def _socket(self, handle: int) -> socket.socket:
        target = self.ns.handles[handle]
        end = target.end if isinstance(target, _Instance) else target
        assert end is not None, "I/O on an instance no client is connected to"
        return end

    def read(self, handle: int, size: int, timeout: float | None) -> bytes:
        end = self._socket(handle)
        end.settimeout(timeout)
        return end.recv(size)  # socket.timeout is TimeoutError

    def write(self, handle: int, data: bytes, timeout: float | None) -> int:
        end = self._socket(handle)
        end.settimeout(timeout)
        return end.send(data)

    def close(self, handle: int) -> None:
        with self.ns.changed:
            target = self.ns.handles.pop(handle)
            if isinstance(target, _Instance):
                target.closed = True
                if target.end is not None:
                    target.end.close()
                self.ns.pipes[target.name].remove(target)
                if not self.ns.pipes[target.name]:
                    del self.ns.pipes[target.name]  # a pipe goes with its last instance
            else:
                target.close()
                del self.ns.instance_of[handle]
            self.ns.changed.notify_all()


class FakeActions:
    """TrayActions as far as the commands used here go; counts what reaches it."""

    def __init__(self):
        self.calls: list[tuple] = []
        self._view = EngineView(state=EngineState.RUNNING, vocals=100)

    def view(self) -> EngineView:
        return self._view

    def toggle_vocals(self) -> None:
        self.calls.append(("toggle_vocals",))
        self._view = replace(self._view, vocals=0 if self._view.vocals else 100)

    def set_bypass(self, on: bool) -> None:
        self.calls.append(("set_bypass", on))
        self._view = replace(self._view, bypass=on)


@pytest.fixture
def namespace() -> PipeNamespace:
    return PipeNamespace()


@pytest.fixture
def tray(namespace):
    """A real ControlServer on the (mocked) pipe of USER, with its handler's calls counted."""
    actions = FakeActions()
    server = ControlServer(actions, transport=NamedPipeTransport(FakePipes(namespace)))
    handled: list = []
    handle = server.handler.handle
    server.handler.handle = lambda command: (handled.append(command), handle(command))[1]
    server.start()
    yield server, actions, handled
    server.stop()


def _client(namespace: PipeNamespace, sid: str = USER) -> NamedPipeTransport:
    return NamedPipeTransport(FakePipes(namespace, sid))


def _raw(namespace: PipeNamespace, request: bytes) -> bytes:
    """Send raw bytes on the pipe as a hand-written client would, then read to the reply's end."""
    with _client(namespace).connect(5) as connection:
        connection.sendall(request)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply


# -- pure functions (no Windows needed) -----------------------------------------------------------


def test_the_pipe_name_and_its_security_descriptor_name_the_user_alone():
    assert pipe_name(USER) == r"\\.\pipe\whamsah-tray-" + USER
    sddl = pipe_sddl(USER)
    assert sddl == f"O:{USER}D:P(A;;GA;;;{USER})"
    # One allow entry, protected from inheritance, and no well-known group (Everyone, Users...).
    assert sddl.count("(A;") == 1 and "D:P" in sddl
    assert not re.search(r";(WD|AU|BU|BG|AN|NU|IU|SY|BA)\)", sddl)


@pytest.mark.parametrize("bad", ["", "S-1-5-21)(A;;GA;;;WD", "WD", "S-1-5-21-1\\..\\x", "s-1-5-21-1",
                                 "S-1-5-21-1 ", "S-1"])
def test_anything_but_a_string_sid_is_refused_before_it_reaches_an_sddl_or_a_name(bad):
    with pytest.raises(ControlError):
        pipe_sddl(bad)
    with pytest.raises(ControlError):
        pipe_name(bad)


def test_the_real_win32_calls_are_refused_off_windows():
    with pytest.raises(ControlError, match="Windows"):
        NamedPipeTransport()


# -- the transport and the real server over the stand-in ------------------------------------------


def test_a_command_goes_round_trip_and_reaches_the_engine_once(tray, namespace):
    """Mocked (Windows cannot run here): `send()` over the stand-in pipe to the real server."""
    server, actions, handled = tray
    reply = send(["toggle-vocals"], transport=_client(namespace))
    assert (reply.ok, reply.message) == (True, "vocals muted")
    assert actions.calls == [("toggle_vocals",)]
    status = send(["status", "--json"], transport=_client(namespace))
    assert status.ok and status.status["vocals"] == 0 and status.status["state"] == "running"
    # Plain words, as a hand-written client sends them, get a plain line.
    assert _raw(namespace, b"bypass on\n") == b"ok: bypass on\n"
    assert actions.calls[-1] == ("set_bypass", True) and len(handled) == 3
    # The pipe was made for the user alone, first instance first, each later one with the same ACL.
    name, sddl, first = namespace.created[0]
    assert (name, sddl, first) == (pipe_name(USER), pipe_sddl(USER), True)
    assert len(namespace.created) == 4 and all(c == (name, sddl, False) for c in namespace.created[1:])


def test_an_oversized_request_gets_one_line_and_never_reaches_the_handler(tray, namespace):
    """Mocked (Windows cannot run here): requests past MAX_REQUEST_BYTES, with and without a newline."""
    server, actions, handled = tray
    for request in (b"x" * 20_000, b"vocals 0" + b" " * MAX_REQUEST_BYTES + b"\n"):
        reply = _raw(namespace, request)
        assert reply == f"error: request longer than {MAX_REQUEST_BYTES} bytes\n".encode(), reply
    assert handled == [] and actions.calls == []
    # A long request from send() is refused by the tray too (its line is plain text: the tray
    # does not parse what it refuses, so not even as JSON); send() gives it as the tray's answer.
    reply = send(["capture", "a" * (MAX_REQUEST_BYTES + 10)], transport=_client(namespace))
    assert (reply.ok, reply.message) == (False, f"request longer than {MAX_REQUEST_BYTES} bytes")
    assert handled == [] and actions.calls == []


def test_malformed_requests_get_one_line_and_never_reach_the_handler(tray, namespace):
    """Mocked (Windows cannot run here): bytes that are no request at all."""
    server, actions, handled = tray
    for request, expected in [
        (b"\xff\xfe vocals 0\n", b"error: request is not UTF-8\n"),
        (b"vocals '0\n", b"error: malformed request: No closing quotation\n"),
        (b'{"argv": ["bypass", "on"\n', b'{"ok": false, "message": "malformed JSON request'),
        (b'{"argv": "vocals 0"}\n', b'{"ok": false, "message": "a JSON request is'),
        (b"fly\n", b"error: unknown command 'fly'"),
    ]:
        reply = _raw(namespace, request)
        assert reply.startswith(expected) and reply.count(b"\n") == 1, (request, reply)
    assert handled == [] and actions.calls == []


def test_a_request_without_its_newline_is_answered_when_the_server_stops_waiting(tray, namespace, monkeypatch):
    """Mocked (Windows cannot run here): the connection's read timeout ends a stalled request."""
    server, actions, handled = tray
    monkeypatch.setattr(control, "REQUEST_TIMEOUT_S", 0.3)
    with _client(namespace).connect(5) as connection:
        connection.sendall(b"bypass on")
        assert connection.recv(1000).startswith(b"error: request not finished in time")
    assert handled == []


def test_a_caller_that_holds_its_connection_does_not_block_the_next(tray, namespace):
    """Mocked (Windows cannot run here): each caller gets its own pipe instance."""
    server, actions, handled = tray
    with _client(namespace).connect(5):  # connected, sends nothing
        assert send(["toggle-vocals"], transport=_client(namespace)).message == "vocals muted"


def test_no_tray_means_not_running_and_ctl_exit_status_3(namespace, monkeypatch, capsys):
    """Mocked (Windows cannot run here): no pipe of that name exists."""
    with pytest.raises(NotRunningError) as raised:
        _client(namespace).connect(1)
    assert str(raised.value) == NOT_RUNNING
    from whamsah_tray.cli import ctl

    monkeypatch.setattr(control, "for_platform", lambda: _client(namespace))
    assert ctl.run(argparse.Namespace(request=["toggle-vocals"])) == ctl.EXIT_NOT_RUNNING
    assert capsys.readouterr().err == f"{NOT_RUNNING}\n"


def test_a_second_server_on_the_same_pipe_is_refused_and_the_first_goes_on(tray, namespace):
    """Mocked (Windows cannot run here): FILE_FLAG_FIRST_PIPE_INSTANCE keeps the name the first's."""
    server, actions, handled = tray
    second = ControlServer(FakeActions(), transport=NamedPipeTransport(FakePipes(namespace)))
    with pytest.raises(ControlError, match="another process already holds"):
        second.start()
    assert send(["toggle-vocals"], transport=_client(namespace)).ok


def test_a_pipe_squatted_by_another_user_is_refused_by_both_ends(namespace):
    """Mocked (Windows cannot run here): another user made our pipe's name first, with an ACL that
    lets us in (to hear our commands) or not; the tray will not serve, the client will not talk."""
    for squatter_grants in ([OTHER_USER, USER], [OTHER_USER]):
        squatter = FakePipes(namespace, OTHER_USER)
        sddl = f"O:{OTHER_USER}D:P" + "".join(f"(A;;GA;;;{sid})" for sid in squatter_grants)
        planted = squatter.create(pipe_name(USER), sddl, first_instance=True)
        server = ControlServer(FakeActions(), transport=NamedPipeTransport(FakePipes(namespace)))
        with pytest.raises(ControlError, match="another process already holds"):
            server.start()
        with pytest.raises(UnsafeSocketError, match="refusing to use it"):
            send(["play", "/home/me/secret.flac"], transport=_client(namespace))
        if USER in squatter_grants:
            assert squatter.wait_for_client(planted, 0)
            assert squatter.read(planted, 1000, 0.5) == b""  # we hung up without a word
        squatter.close(planted)
    assert namespace.pipes == {}


def test_the_server_stops_cleanly_and_leaves_no_pipe(namespace):
    """Mocked (Windows cannot run here): stop() ends the accept loop (its wait times out every
    0.25 s) and closes every instance; the name is then free and `ctl` says not running."""
    server = ControlServer(FakeActions(), transport=NamedPipeTransport(FakePipes(namespace)))
    server.start()
    assert send(["status"], transport=_client(namespace)).ok
    server.stop()
    assert server._thread is not None and not server._thread.is_alive()
    assert namespace.pipes == {} and namespace.handles == {}
    with pytest.raises(NotRunningError):
        _client(namespace).connect(1)
    again = ControlServer(FakeActions(), transport=NamedPipeTransport(FakePipes(namespace)))
    again.start()  # the name is free for the next tray
    try:
        assert send(["status"], transport=_client(namespace)).ok
    finally:
        again.stop()
