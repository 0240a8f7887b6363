r"""The Windows transport of `whamsah-tray ctl`: a named pipe `\\.\pipe\whamsah-tray-<user SID>` that
only the user can open, behind control.py's `Transport` (the framing, the size limit and the
one-line errors stay `ControlServer`'s and `send()`'s).

Security, and why each part:
- The pipe's security descriptor is `O:<SID>D:P(A;;GA;;;<SID>)`: owned by the user, and a
  protected DACL with a single entry for the user. Every other account (other users, services,
  app containers) fails the DACL in CreateFileW, and a low-integrity sandbox of this user the
  default medium-integrity label; so the server needs no per-caller check, where the Unix socket
  checks SO_PEERCRED. SYSTEM is left out: neither end runs as SYSTEM.
- PIPE_REJECT_REMOTE_CLIENTS: no other machine reaches it (there is no TCP at all).
- FILE_FLAG_FIRST_PIPE_INSTANCE on the first instance: if another process already holds the name
  (a second tray, or a squatter who made it first to hear our commands), the tray refuses to serve
  instead of sharing the name. Later instances are made while one of ours still exists, so the
  name is never free for someone else to take; and only our SID may add instances (the DACL).
- The client reads the pipe's owner (GetSecurityInfo) and refuses one that is not the user, so
  `ctl` never talks to a squatter. The owner, not GetNamedPipeServerProcessId and that process's
  token: a tray run elevated is a process the client may not open, while the owner is on the
  handle the client already has (READ_CONTROL), and only the user (or an administrator, who owns
  the machine anyway) can make the user a pipe's owner. It also opens with SECURITY_IDENTIFICATION,
  so a server can never impersonate the client.

The Win32 calls are all in `_Win32Pipes` (ctypes over kernel32/advapi32, no pywin32: one
dependency less in the installer, and these are few calls), behind the small `PipeApi` seam; the
tests run the rest of this module and the real ControlServer over a stand-in made of sockets.

Handles are overlapped, so that a wait can end: `accept()` honours the listener's timeout like a
socket does (ControlServer's loop looks at its stop flag every 0.25 s, and `stop()` cancels the
pending ConnectNamedPipe before closing), and reads and writes honour the connection's timeout.
A blocking ConnectNamedPipe woken by the server connecting to itself would also stop, but would
have to be told that apart from a caller, and blocking reads could not time out at all.

Threads: as control.py's (the server's accept thread, one thread per request, the CLI's main
thread); a handle is used by one thread at a time.
"""

from __future__ import annotations

import re
import sys
import time
from typing import Protocol, Self

from whamsah_tray.app.control import APP_DIR_NAME, ControlError, NotRunningError, UnsafeSocketError

PIPE_PREFIX = "\\\\.\\pipe\\"
PIPE_BUFFER_BYTES = 65536  # each way: a request (4 KiB at most) and a reply fit without a wait
_SID = re.compile(r"S-1-\d+(-\d+)+")


def pipe_name(sid: str) -> str:
    r"""The tray's pipe for the user of `sid`: `\\.\pipe\whamsah-tray-S-1-5-21-...`."""
    return f"{PIPE_PREFIX}{APP_DIR_NAME}-{_checked_sid(sid)}"


def pipe_sddl(sid: str) -> str:
    """The pipe's security descriptor: owned by `sid`, and a protected DACL that grants `sid`
    alone everything (GA: read, write, make instances) and nobody else anything."""
    sid = _checked_sid(sid)
    return f"O:{sid}D:P(A;;GA;;;{sid})"


def _checked_sid(sid: str) -> str:
    """A string SID, or ControlError: it goes into an SDDL and a pipe name, where `)` or `\\`
    would change their meaning."""
    if not _SID.fullmatch(sid):
        raise ControlError(f"not a user SID: {sid!r}")
    return sid


class PipeApi(Protocol):
    """The Win32 calls, as small as the transport needs them. Handles are ints. Errors are
    OSError subclasses: FileNotFoundError (no such pipe), PermissionError (access denied, or the
    name taken when `first_instance`), TimeoutError, BrokenPipeError (the other end closed)."""

    def current_user_sid(self) -> str:
        """This process's user, as a string SID."""
        ...

    def create(self, name: str, sddl: str, first_instance: bool) -> int:
        """A new listening instance of pipe `name` with the security descriptor `sddl`."""
        ...

    def wait_for_client(self, handle: int, timeout: float | None) -> bool:
        """True once a client is connected to the instance; False after `timeout` seconds (the
        wait goes on at the next call)."""
        ...

    def open(self, name: str, timeout: float) -> int:
        """The client end of `name`, waiting up to `timeout` while every instance is busy."""
        ...

    def owner_sid(self, handle: int) -> str:
        """The string SID of the pipe's owner."""
        ...

    def read(self, handle: int, size: int, timeout: float | None) -> bytes:
        """Up to `size` bytes; b"" once the other end has closed."""
        ...

    def write(self, handle: int, data: bytes, timeout: float | None) -> int:
        """Bytes written (BrokenPipeError once the other end has closed)."""
        ...

    def close(self, handle: int) -> None:
        """Cancel what is pending on the handle and close it."""
        ...


class PipeConnection:
    """One end of a connected pipe instance, as control.Connection."""

    def __init__(self, api: PipeApi, handle: int):
        self._api = api
        self._handle: int | None = handle
        self._timeout: float | None = None

    def _live(self) -> int:
        if self._handle is None:
            raise OSError("the pipe connection is closed")
        return self._handle

    def settimeout(self, value: float | None, /) -> None:
        self._timeout = value

    def recv(self, bufsize: int, /) -> bytes:
        return self._api.read(self._live(), bufsize, self._timeout)

    def sendall(self, data: bytes, /) -> None:
        view = memoryview(data)
        while view:
            view = view[self._api.write(self._live(), bytes(view), self._timeout):]

    def shutdown(self, how: int, /) -> None:
        """A pipe has no half-close; the reply's newline ends the caller's read, and its close
        ends the server's drain. (DisconnectNamedPipe would discard the unread reply.)"""

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            self._api.close(handle)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


class PipeListener:
    """The tray's end, as control.Listener: one instance waits for a caller; when one connects,
    the next instance is made before that one is handed over, so the name always has one of ours."""

    def __init__(self, api: PipeApi, name: str, sddl: str, first: int):
        self._api = api
        self._name = name
        self._sddl = sddl
        self._waiting: int | None = first
        self._timeout: float | None = None

    def settimeout(self, value: float | None, /) -> None:
        self._timeout = value

    def accept(self) -> tuple[PipeConnection, object]:
        if self._waiting is None:
            raise OSError("the pipe listener is closed")
        # An overlapped ConnectNamedPipe waited on with the timeout, rather than a blocking one
        # that stop() would wake by connecting to itself: the server's loop then stops as it does
        # on a socket, and no caller is ever mistaken for the wake-up.
        if not self._api.wait_for_client(self._waiting, self._timeout):
            raise TimeoutError("timed out")
        connected = self._waiting
        try:
            self._waiting = self._api.create(self._name, self._sddl, first_instance=False)
        except OSError:
            self._waiting = None
            self._api.close(connected)
            raise
        return PipeConnection(self._api, connected), None

    def close(self) -> None:
        if self._waiting is not None:
            handle, self._waiting = self._waiting, None
            self._api.close(handle)


class NamedPipeTransport:
    """The user's pipe, as control.Transport. `api` and `sid` are for the tests."""

    def __init__(self, api: PipeApi | None = None, sid: str | None = None):
        self.api = api if api is not None else _system_pipes()
        self.sid = _checked_sid(sid if sid is not None else self.api.current_user_sid())
        self.name = pipe_name(self.sid)
        self.sddl = pipe_sddl(self.sid)

    def listen(self) -> PipeListener:
        try:
            first = self.api.create(self.name, self.sddl, first_instance=True)
        except PermissionError:
            raise ControlError(f"another process already holds {self.name} (another tray running?): "
                               "refusing to share it") from None
        return PipeListener(self.api, self.name, self.sddl, first)

    def connect(self, timeout: float) -> PipeConnection:
        try:
            handle = self.api.open(self.name, timeout)
        except FileNotFoundError:
            raise NotRunningError(f"{self.name} does not exist") from None
        except PermissionError:
            raise UnsafeSocketError(f"{self.name} belongs to another user: refusing to use it") from None
        except TimeoutError:
            raise ControlError("the tray did not answer in time") from None
        connection = PipeConnection(self.api, handle)
        try:
            owner = self.api.owner_sid(handle)
        except OSError:
            connection.close()
            raise
        if owner != self.sid:
            connection.close()
            raise UnsafeSocketError(f"{self.name} belongs to {owner}, not to you: refusing to use it")
        connection.settimeout(timeout)
        return connection

    def peer_allowed(self, connection: object) -> bool:
        return True  # the DACL already turned away anyone but the user, in their CreateFileW

    def close(self) -> None:
        """Nothing to remove: a pipe goes with its last handle (the listener's)."""


def _system_pipes() -> PipeApi:
    if sys.platform == "win32":
        return _Win32Pipes()
    raise ControlError("named pipes are the Windows transport; this system uses a Unix socket")


if sys.platform == "win32":
    import ctypes
    from ctypes import wintypes

    _kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    _advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)

    PIPE_ACCESS_DUPLEX = 0x00000003
    FILE_FLAG_FIRST_PIPE_INSTANCE = 0x00080000
    FILE_FLAG_OVERLAPPED = 0x40000000
    PIPE_TYPE_BYTE = PIPE_READMODE_BYTE = PIPE_WAIT = 0
    PIPE_REJECT_REMOTE_CLIENTS = 0x00000008
    PIPE_UNLIMITED_INSTANCES = 255
    GENERIC_READ = 0x80000000
    GENERIC_WRITE = 0x40000000
    OPEN_EXISTING = 3
    SECURITY_SQOS_PRESENT = 0x00100000
    SECURITY_IDENTIFICATION = 0x00010000
    SDDL_REVISION_1 = 1
    TOKEN_QUERY = 0x0008
    TOKEN_USER_CLASS = 1  # TokenUser
    SE_KERNEL_OBJECT = 6
    OWNER_SECURITY_INFORMATION = 0x00000001
    INFINITE = 0xFFFFFFFF
    WAIT_OBJECT_0 = 0
    ERROR_FILE_NOT_FOUND = 2
    ERROR_ACCESS_DENIED = 5
    ERROR_BROKEN_PIPE = 109
    ERROR_SEM_TIMEOUT = 121
    ERROR_PIPE_BUSY = 231
    ERROR_NO_DATA = 232
    ERROR_PIPE_NOT_CONNECTED = 233
    ERROR_PIPE_CONNECTED = 535
    ERROR_OPERATION_ABORTED = 995
    ERROR_IO_PENDING = 997
    INVALID_HANDLE_VALUE = ctypes.c_void_p(-1).value

    class OVERLAPPED(ctypes.Structure):
        _fields_ = [("Internal", ctypes.c_size_t), ("InternalHigh", ctypes.c_size_t),
                    ("Offset", wintypes.DWORD), ("OffsetHigh", wintypes.DWORD), ("hEvent", wintypes.HANDLE)]

    class SECURITY_ATTRIBUTES(ctypes.Structure):
        _fields_ = [("nLength", wintypes.DWORD), ("lpSecurityDescriptor", ctypes.c_void_p),
                    ("bInheritHandle", wintypes.BOOL)]

    def _declare(dll, name: str, restype, *argtypes):
        function = getattr(dll, name)
        function.restype = restype
        function.argtypes = list(argtypes)
        return function

    _POVERLAPPED = ctypes.POINTER(OVERLAPPED)
    _PVOID = ctypes.POINTER(ctypes.c_void_p)
    _PDWORD = ctypes.POINTER(wintypes.DWORD)
    _CreateNamedPipeW = _declare(_kernel32, "CreateNamedPipeW", ctypes.c_void_p, wintypes.LPCWSTR, wintypes.DWORD,
                                 wintypes.DWORD, wintypes.DWORD, wintypes.DWORD, wintypes.DWORD, wintypes.DWORD,
                                 ctypes.POINTER(SECURITY_ATTRIBUTES))
    _ConnectNamedPipe = _declare(_kernel32, "ConnectNamedPipe", wintypes.BOOL, wintypes.HANDLE, _POVERLAPPED)
    _CreateFileW = _declare(_kernel32, "CreateFileW", ctypes.c_void_p, wintypes.LPCWSTR, wintypes.DWORD,
                            wintypes.DWORD, ctypes.c_void_p, wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE)
    _WaitNamedPipeW = _declare(_kernel32, "WaitNamedPipeW", wintypes.BOOL, wintypes.LPCWSTR, wintypes.DWORD)
    _ReadFile = _declare(_kernel32, "ReadFile", wintypes.BOOL, wintypes.HANDLE, ctypes.c_void_p, wintypes.DWORD,
                         _PDWORD, _POVERLAPPED)
    _WriteFile = _declare(_kernel32, "WriteFile", wintypes.BOOL, wintypes.HANDLE, ctypes.c_void_p, wintypes.DWORD,
                          _PDWORD, _POVERLAPPED)
    _GetOverlappedResult = _declare(_kernel32, "GetOverlappedResult", wintypes.BOOL, wintypes.HANDLE, _POVERLAPPED,
                                    _PDWORD, wintypes.BOOL)
    _CancelIoEx = _declare(_kernel32, "CancelIoEx", wintypes.BOOL, wintypes.HANDLE, _POVERLAPPED)
    _CreateEventW = _declare(_kernel32, "CreateEventW", ctypes.c_void_p, ctypes.c_void_p, wintypes.BOOL,
                             wintypes.BOOL, wintypes.LPCWSTR)
    _WaitForSingleObject = _declare(_kernel32, "WaitForSingleObject", wintypes.DWORD, wintypes.HANDLE,
                                    wintypes.DWORD)
    _CloseHandle = _declare(_kernel32, "CloseHandle", wintypes.BOOL, wintypes.HANDLE)
    _LocalFree = _declare(_kernel32, "LocalFree", ctypes.c_void_p, ctypes.c_void_p)
    _GetCurrentProcess = _declare(_kernel32, "GetCurrentProcess", wintypes.HANDLE)
    _OpenProcessToken = _declare(_advapi32, "OpenProcessToken", wintypes.BOOL, wintypes.HANDLE, wintypes.DWORD,
                                 ctypes.POINTER(wintypes.HANDLE))
    _GetTokenInformation = _declare(_advapi32, "GetTokenInformation", wintypes.BOOL, wintypes.HANDLE,
                                    ctypes.c_int, ctypes.c_void_p, wintypes.DWORD, _PDWORD)
    _ConvertSidToStringSidW = _declare(_advapi32, "ConvertSidToStringSidW", wintypes.BOOL, ctypes.c_void_p, _PVOID)
    _ConvertStringSecurityDescriptorToSecurityDescriptorW = _declare(
        _advapi32, "ConvertStringSecurityDescriptorToSecurityDescriptorW", wintypes.BOOL, wintypes.LPCWSTR,
        wintypes.DWORD, _PVOID, _PDWORD)
    _GetSecurityInfo = _declare(_advapi32, "GetSecurityInfo", wintypes.DWORD, wintypes.HANDLE, ctypes.c_int,
                                wintypes.DWORD, _PVOID, _PVOID, _PVOID, _PVOID, _PVOID)

    def _error(code: int) -> OSError:
        """The OSError subclass PipeApi promises for a Win32 error code."""
        message = ctypes.FormatError(code).strip()
        if code == ERROR_FILE_NOT_FOUND:
            return FileNotFoundError(message)
        if code == ERROR_ACCESS_DENIED:
            return PermissionError(message)
        if code in (ERROR_BROKEN_PIPE, ERROR_NO_DATA, ERROR_PIPE_NOT_CONNECTED):
            return BrokenPipeError(message)
        if code in (ERROR_SEM_TIMEOUT, ERROR_OPERATION_ABORTED):
            return TimeoutError(message)
        return ctypes.WinError(code)

    def _last_error() -> OSError:
        return _error(ctypes.get_last_error())

    def _milliseconds(timeout: float | None) -> int:
        return INFINITE if timeout is None else max(0, min(INFINITE - 1, int(timeout * 1000)))

    def _new_event() -> int:
        event = _CreateEventW(None, True, False, None)  # manual reset, as overlapped I/O wants
        if not event:
            raise _last_error()
        return event

    def _sid_string(sid: int | None) -> str:
        text = ctypes.c_void_p()
        if not _ConvertSidToStringSidW(sid, ctypes.byref(text)):
            raise _last_error()
        try:
            return ctypes.wstring_at(text.value or 0)
        finally:
            _LocalFree(text)

    class _Win32Pipes:
        """PipeApi over kernel32/advapi32. Every handle is overlapped; `_connecting` keeps the
        OVERLAPPED of a ConnectNamedPipe still pending between two accept() calls (the system
        writes into it until it completes or is cancelled). Only the server's accept thread
        touches a listening handle; ControlServer.stop() closes it after joining that thread."""

        def __init__(self) -> None:
            self._connecting: dict[int, tuple[OVERLAPPED, int]] = {}

        def current_user_sid(self) -> str:
            token = wintypes.HANDLE()
            if not _OpenProcessToken(_GetCurrentProcess(), TOKEN_QUERY, ctypes.byref(token)):
                raise _last_error()
            try:
                needed = wintypes.DWORD()
                _GetTokenInformation(token, TOKEN_USER_CLASS, None, 0, ctypes.byref(needed))
                buffer = ctypes.create_string_buffer(needed.value)
                if not _GetTokenInformation(token, TOKEN_USER_CLASS, buffer, needed, ctypes.byref(needed)):
                    raise _last_error()
                # TOKEN_USER starts with SID_AND_ATTRIBUTES, which starts with the SID's pointer.
                return _sid_string(ctypes.cast(buffer, _PVOID).contents.value)
            finally:
                _CloseHandle(token)

        def create(self, name: str, sddl: str, first_instance: bool) -> int:
            descriptor = ctypes.c_void_p()
            if not _ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1,
                                                                        ctypes.byref(descriptor), None):
                raise _last_error()
            try:
                attributes = SECURITY_ATTRIBUTES(ctypes.sizeof(SECURITY_ATTRIBUTES), descriptor, False)
                open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED
                if first_instance:
                    open_mode |= FILE_FLAG_FIRST_PIPE_INSTANCE
                handle = _CreateNamedPipeW(name, open_mode,
                                           PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                                           PIPE_UNLIMITED_INSTANCES, PIPE_BUFFER_BYTES, PIPE_BUFFER_BYTES, 0,
                                           ctypes.byref(attributes))
                if handle is None or handle == INVALID_HANDLE_VALUE:
                    raise _last_error()
                return handle
            finally:
                _LocalFree(descriptor)  # the pipe keeps its own copy

        def wait_for_client(self, handle: int, timeout: float | None) -> bool:
            pending = self._connecting.pop(handle, None)
            if pending is None:
                overlapped = OVERLAPPED(hEvent=_new_event())
                if not _ConnectNamedPipe(handle, ctypes.byref(overlapped)):
                    code = ctypes.get_last_error()
                    # Connected (and maybe gone again) between CreateNamedPipeW and now.
                    if code in (ERROR_PIPE_CONNECTED, ERROR_NO_DATA):
                        _CloseHandle(overlapped.hEvent)
                        return True
                    if code != ERROR_IO_PENDING:
                        _CloseHandle(overlapped.hEvent)
                        raise _error(code)
                pending = (overlapped, overlapped.hEvent)
            overlapped, event = pending
            if _WaitForSingleObject(event, _milliseconds(timeout)) != WAIT_OBJECT_0:
                self._connecting[handle] = pending  # still pending: the next accept() waits on
                return False
            _CloseHandle(event)
            done = wintypes.DWORD()
            if not _GetOverlappedResult(handle, ctypes.byref(overlapped), ctypes.byref(done), False):
                code = ctypes.get_last_error()
                if code != ERROR_NO_DATA:  # the caller came and went: its reads end at once
                    raise _error(code)
            return True

        def open(self, name: str, timeout: float) -> int:
            deadline = time.monotonic() + timeout
            while True:
                handle = _CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, None, OPEN_EXISTING,
                                      FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, None)
                if handle is not None and handle != INVALID_HANDLE_VALUE:
                    return handle
                code = ctypes.get_last_error()
                if code != ERROR_PIPE_BUSY:
                    raise _error(code)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{name}: every instance stayed busy")
                # 0 would mean the pipe's default wait: at least 1 ms.
                if not _WaitNamedPipeW(name, max(1, _milliseconds(left))):
                    raise _last_error()

        def owner_sid(self, handle: int) -> str:
            owner = ctypes.c_void_p()
            descriptor = ctypes.c_void_p()
            code = _GetSecurityInfo(handle, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION, ctypes.byref(owner),
                                    None, None, None, ctypes.byref(descriptor))
            if code:
                raise _error(code)
            try:
                return _sid_string(owner.value)  # points into the descriptor
            finally:
                _LocalFree(descriptor)

        def _io(self, handle: int, start, timeout: float | None) -> int:
            """Run an overlapped ReadFile/WriteFile (`start(overlapped)`) to its end, cancelled
            after `timeout`; the bytes moved."""
            event = _new_event()
            try:
                overlapped = OVERLAPPED(hEvent=event)
                if not start(ctypes.byref(overlapped)):
                    code = ctypes.get_last_error()
                    if code != ERROR_IO_PENDING:
                        raise _error(code)
                    if _WaitForSingleObject(event, _milliseconds(timeout)) != WAIT_OBJECT_0:
                        _CancelIoEx(handle, ctypes.byref(overlapped))
                done = wintypes.DWORD()
                # Waits for the end (or the cancel) either way: the buffers must outlive the I/O.
                if not _GetOverlappedResult(handle, ctypes.byref(overlapped), ctypes.byref(done), True):
                    raise _last_error()  # ERROR_OPERATION_ABORTED (cancelled): TimeoutError
                return done.value
            finally:
                _CloseHandle(event)

        def read(self, handle: int, size: int, timeout: float | None) -> bytes:
            buffer = ctypes.create_string_buffer(size)
            try:
                done = self._io(handle, lambda overlapped: _ReadFile(handle, buffer, size, None, overlapped), timeout)
            except BrokenPipeError:
                return b""
            return buffer.raw[:done]

        def write(self, handle: int, data: bytes, timeout: float | None) -> int:
            buffer = ctypes.create_string_buffer(data, len(data))
            return self._io(handle, lambda overlapped: _WriteFile(handle, buffer, len(data), None, overlapped),
                            timeout)

        def close(self, handle: int) -> None:
            pending = self._connecting.pop(handle, None)
            if pending is not None:
                overlapped, event = pending
                _CancelIoEx(handle, ctypes.byref(overlapped))
                _GetOverlappedResult(handle, ctypes.byref(overlapped), ctypes.byref(wintypes.DWORD()), True)
                _CloseHandle(event)
            _CloseHandle(handle)
