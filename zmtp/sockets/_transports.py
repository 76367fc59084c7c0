"""Transports: endpoint strings, and opening tcp and ipc connections and listeners.

Endpoints are ``tcp://host:port``, ``ipc:///path`` and ``inproc://name``; the syntax is
libzmq's (zmq_tcp(7), zmq_ipc(7), zmq_inproc(7)):

* ``tcp://*:5555`` binds every interface; ``tcp://127.0.0.1:0`` or ``tcp://host:*`` binds an
  ephemeral port; IPv6 literals go in brackets (``tcp://[::1]:5555``); host names resolve.
* ``ipc:///tmp/feed.sock`` (absolute) or ``ipc://feed.sock`` (relative); ``ipc://*`` binds a
  fresh path in a private temporary directory.  ``ipc://@name`` is Linux's abstract
  namespace.
* ``inproc://name`` connects sockets of one :class:`~zmtp.Context` directly (see
  :mod:`zmtp.sockets._inproc`; no bytes, so nothing to open here).

An ipc listener owns the socket file it created: closing it removes that file only
if it is still the same file (device and inode), so a process that has bound the same
path since (a restarted instance) keeps its file and its clients.  libzmq likewise
leaves a file it no longer owns.
"""

from __future__ import annotations

import contextlib
import os
import socket as stdsocket
import stat
import struct
import tempfile
from dataclasses import dataclass
from typing import Any

import trio

__all__ = [
    "Endpoint",
    "Listening",
    "open_listener",
    "open_stream",
    "parse_endpoint",
    "peer_address",
]

TRANSPORTS = ("tcp", "ipc", "inproc")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed endpoint.

    Attributes:
        transport: ``"tcp"``, ``"ipc"`` or ``"inproc"``.
        host: tcp host ("" for the ``*`` wildcard); empty for other transports.
        port: tcp port (0 for ephemeral); 0 for other transports.
        path: ipc path or inproc name.
    """

    transport: str
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.transport == "tcp":
            host = self.host or "*"
            if ":" in host:
                host = f"[{host}]"
            return f"tcp://{host}:{self.port}"
        return f"{self.transport}://{self.path}"

    @property
    def socket_path(self) -> str:
        """The AF_UNIX address of an ipc endpoint (a leading ``@`` becomes the
        abstract namespace's NUL)."""
        return "\0" + self.path[1:] if self.path.startswith("@") else self.path


def parse_endpoint(endpoint: str, *, bind: bool = False) -> Endpoint:
    """Parse an endpoint string.

    Args:
        endpoint: e.g. ``tcp://127.0.0.1:5555``.
        bind: wildcards (``*`` host or port, ``ipc://*``) are allowed only when binding.

    Raises:
        TypeError: not a str.
        ValueError: unknown transport or malformed address, with the reason.
    """
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a str, not {type(endpoint).__name__}")
    transport, sep, address = endpoint.partition("://")
    if not sep:
        raise ValueError(
            f"invalid endpoint {endpoint!r}: expected transport://address, e.g. tcp://host:port"
        )
    if transport not in TRANSPORTS:
        raise ValueError(
            f"invalid endpoint {endpoint!r}: unknown transport {transport!r} "
            f"(supported: {', '.join(TRANSPORTS)})"
        )
    if not address:
        raise ValueError(f"invalid endpoint {endpoint!r}: empty address")
    if transport == "inproc":
        return Endpoint("inproc", path=address)
    if transport == "ipc":
        if address == "*" and not bind:
            raise ValueError(f"invalid endpoint {endpoint!r}: ipc://* is only valid for bind")
        return Endpoint("ipc", path=address)
    host, colon, port_text = address.rpartition(":")
    if not colon or not host:
        raise ValueError(f"invalid endpoint {endpoint!r}: expected tcp://host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"invalid endpoint {endpoint!r}: IPv6 addresses go in brackets")
    if host == "*":
        if not bind:
            raise ValueError(f"invalid endpoint {endpoint!r}: cannot connect to host '*'")
        host = ""
    if port_text == "*":
        if not bind:
            raise ValueError(f"invalid endpoint {endpoint!r}: cannot connect to port '*'")
        port = 0
    else:
        if not port_text.isdigit():
            raise ValueError(f"invalid endpoint {endpoint!r}: port {port_text!r} is not a number")
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError(f"invalid endpoint {endpoint!r}: port {port} out of range")
        if port == 0 and not bind:
            raise ValueError(f"invalid endpoint {endpoint!r}: cannot connect to port 0")
    return Endpoint("tcp", host=host, port=port)


# ---------------------------------------------------------------------- opening


def _peer(stream: trio.abc.Stream) -> tuple[Any, Any]:
    """The stream's socket and its peer's address, or (None, None) if unknown."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        return None, None
    try:
        return sock, sock.getpeername()
    except OSError:
        return None, None


def peer_address(stream: trio.abc.Stream) -> str:
    """The remote end of a connected stream as an endpoint string ("" if unknown)."""
    _, addr = _peer(stream)
    if addr is None:
        return ""
    if isinstance(addr, tuple):
        host, port = addr[0], addr[1]
        return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"
    path = addr.decode(errors="replace") if isinstance(addr, bytes) else str(addr)
    if path.startswith("\0"):
        return "ipc://@" + path[1:]
    return f"ipc://{path}"


def zap_peer_address(stream: trio.abc.Stream) -> str:
    """The peer's address as libzmq puts it in a ZAP request and in the ``Peer-Address``
    message property: the numeric IP for tcp (no port); for ipc ``localhost`` (glibc's
    name for a local socket) and the peer's ``:uid:gid:pid`` from ``SO_PEERCRED``
    (checked against libzmq 4.3.5); "" when unknown."""
    sock, addr = _peer(stream)
    if addr is None:
        return ""
    if isinstance(addr, tuple):
        return str(addr[0])
    peercred = getattr(stdsocket, "SO_PEERCRED", None)
    if peercred is None:  # pragma: no cover - Linux has it
        return "localhost"
    try:
        raw = sock.getsockopt(stdsocket.SOL_SOCKET, peercred, struct.calcsize("3i"))
    except OSError:
        return "localhost"
    pid, uid, gid = struct.unpack("3i", raw)
    return f"localhost:{uid}:{gid}:{pid}"


def naming(exc: OSError, endpoint: Endpoint | str) -> OSError:
    """``exc`` again (same class and errno), its message ending with the endpoint:
    ``[Errno 98] Address already in use: tcp://127.0.0.1:5555``."""
    code, text, cls = exc.errno, exc.strerror, type(exc)
    if code is None:
        # trio's "all attempts to connect to ... failed" has no errno; the errors of
        # the attempts are its cause.  Report the first, as a single connect would
        # (OSError(errno, ...) makes the matching subclass: ConnectionRefusedError).
        attempts = getattr(exc.__cause__, "exceptions", ())
        first = next((e for e in attempts if isinstance(e, OSError) and e.errno), None)
        if first is not None and first.errno is not None:
            code, text, cls = first.errno, os.strerror(first.errno), OSError
    named = OSError(f"{exc}: {endpoint}") if code is None else cls(code, f"{text}: {endpoint}")
    named.__cause__ = exc
    return named


async def open_stream(ep: Endpoint) -> trio.SocketStream:
    """Connect to a tcp or ipc endpoint.

    Raises:
        OSError: refused, unreachable, no such file...; the message names ``ep``.
    """
    try:
        if ep.transport == "tcp":
            return await trio.open_tcp_stream(ep.host, ep.port)
        return await trio.open_unix_socket(ep.socket_path)
    except OSError as exc:
        raise naming(exc, ep) from exc


@dataclass(slots=True)
class Listening:
    """A bound listener: the listener, the endpoint it resolved to, and what to undo."""

    listener: trio.SocketListener
    #: The endpoint with wildcards resolved (``tcp://0.0.0.0:49152``).
    endpoint: str
    #: An ipc socket file we created, with its identity: (path, device, inode).
    ipc_file: tuple[str, int, int] | None = None
    #: A private directory made for ``ipc://*``.
    tmpdir: str | None = None

    async def aclose(self) -> None:
        """Close the listener and remove the socket file if it is still ours."""
        await trio.aclose_forcefully(self.listener)
        if self.ipc_file is not None:
            path, dev, ino = self.ipc_file
            with contextlib.suppress(OSError):
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == (dev, ino):
                    os.unlink(path)
        if self.tmpdir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self.tmpdir)


async def open_listener(ep: Endpoint, *, backlog: int = 256) -> Listening:
    """Bind and listen on a tcp or ipc endpoint (see :func:`_listen`).

    Raises:
        OSError: the address cannot be bound (in use, not local, ...); the message
            names the endpoint: ``[Errno 98] Address already in use: tcp://...:5555``.
    """
    try:
        return await _listen(ep, backlog)
    except OSError as exc:
        raise naming(exc, ep) from exc


async def _listen(ep: Endpoint, backlog: int) -> Listening:
    """Bind and listen on a tcp or ipc endpoint.

    ``tcp://*:port`` binds one address, preferring IPv4, as libzmq does without
    ``ZMQ_IPV6``.  An ipc socket file already at the path is removed first, as libzmq
    does (a stale one left by a dead process, but also a live one: the newcomer takes
    the path over); anything that is not a socket is never removed.
    """
    if ep.transport == "tcp":
        host = ep.host or "0.0.0.0"
        infos = await trio.socket.getaddrinfo(
            host, ep.port, type=stdsocket.SOCK_STREAM, flags=stdsocket.AI_PASSIVE
        )
        infos.sort(key=lambda info: info[0] != stdsocket.AF_INET)
        family, type_, proto, _, sockaddr = infos[0]
        sock = trio.socket.socket(family, type_, proto)
        try:
            sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR, 1)
            if family == stdsocket.AF_INET6:
                sock.setsockopt(stdsocket.IPPROTO_IPV6, stdsocket.IPV6_V6ONLY, 1)
            await sock.bind(sockaddr)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        bound = sock.getsockname()
        h = bound[0]
        resolved = f"tcp://[{h}]:{bound[1]}" if ":" in h else f"tcp://{h}:{bound[1]}"
        return Listening(trio.SocketListener(sock), resolved)
    tmpdir: str | None = None
    path = ep.path
    if path == "*":
        tmpdir = tempfile.mkdtemp(prefix="zmtp-ipc-")
        path = os.path.join(tmpdir, "socket")
    abstract = path.startswith("@")
    if not abstract:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)
    sock = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    try:
        await sock.bind("\0" + path[1:] if abstract else path)
        sock.listen(backlog)
        ipc_file = None
        if not abstract:
            st = os.stat(path)
            ipc_file = (path, st.st_dev, st.st_ino)
    except BaseException:
        sock.close()
        if tmpdir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(tmpdir)
        raise
    return Listening(trio.SocketListener(sock), f"ipc://{path}", ipc_file, tmpdir)
