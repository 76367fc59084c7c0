"""What every interop test module shares: deadlines, endpoints, the pyzmq socket factory.

The fixtures built on these (``zmq_context``, ``zmq_socket``, ``ipc_dir``, ``bind_zmq``,
``lab_factory``) are in ``conftest.py``; helpers for one kind of test are in
``_wire_helpers.py`` (a sans-IO Connection over a raw stream), ``_sock_helpers.py``
(our trio sockets against pyzmq's), ``_proxy_helpers.py`` (pyzmq peers of a proxy) and
``_tap_helpers.py`` (the tap).  No test module imports another test module.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import zmq

__all__ = [
    "DIRECTIONS",
    "TEST_TIMEOUT",
    "TIMEOUT",
    "TIMEOUT_MS",
    "TRANSPORTS",
    "BindZmq",
    "Endpoint",
    "SocketFactory",
    "ipc_path",
    "libzmq_greeting",
]

#: Upper bound for any single wait on the network; a hang fails instead of blocking CI.
TIMEOUT = 10.0
#: The same bound for pyzmq's blocking calls (RCVTIMEO/SNDTIMEO), in milliseconds.  A
#: worker thread cannot be cancelled, so the socket itself must give up.
TIMEOUT_MS = int(TIMEOUT * 1000)
#: Upper bound on one whole socket-level test.
TEST_TIMEOUT = 20

#: The transports libzmq and we both speak over a real connection.
TRANSPORTS = ["tcp", "ipc"]
#: Which side binds: ours or theirs (the other connects).
DIRECTIONS = ["we_bind", "they_bind"]


@dataclass(frozen=True)
class Endpoint:
    """Where a stream goes: ``tcp`` (host, port) or ``ipc`` (a filesystem path)."""

    transport: str
    address: str
    port: int = 0

    @property
    def zmq(self) -> str:
        """The same endpoint in libzmq's notation."""
        if self.transport == "tcp":
            return f"tcp://{self.address}:{self.port}"
        return f"ipc://{self.address}"

    @classmethod
    def from_zmq(cls, endpoint: str) -> Endpoint:
        """Parse libzmq's ``LAST_ENDPOINT`` (``tcp://127.0.0.1:PORT`` or ``ipc://PATH``)."""
        transport, _, rest = endpoint.partition("://")
        if transport == "tcp":
            host, _, port = rest.rpartition(":")
            return cls("tcp", host, int(port))
        if transport == "ipc":
            return cls("ipc", rest)
        raise ValueError(f"unsupported endpoint {endpoint!r}")


#: The ``bind_zmq`` fixture: ``bind_zmq(sock, "tcp" | "ipc")`` binds a libzmq socket on
#: a free port or a fresh path and returns where.
BindZmq = Callable[[Any, str], Endpoint]

#: Numbers the ipc paths a process makes, so that no two share one.
_ipc_counter = itertools.count(1)


def ipc_path(ipc_dir: str | os.PathLike[str], prefix: str) -> str:
    """A fresh filesystem path for an ipc socket in ``ipc_dir``."""
    return os.path.join(ipc_dir, f"{prefix}{os.getpid()}-{next(_ipc_counter)}.sock")


class SocketFactory:
    """Makes pyzmq sockets for one test and closes them all at teardown.

    ``factory(zmq.ROUTER, IDENTITY=b"x")`` returns a socket with LINGER=0, bounded
    RCVTIMEO/SNDTIMEO and the given options (by pyzmq constant name).  The
    ``zmq_socket`` fixture is one.
    """

    def __init__(self, context: zmq.Context[Any]) -> None:
        self._zmq = pytest.importorskip("zmq")
        self._context = context
        self._sockets: list[zmq.Socket[bytes]] = []

    def __call__(self, socket_type: int, **options: int | bytes) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = self._context.socket(socket_type)
        self.track(sock)
        sock.setsockopt(self._zmq.SNDTIMEO, TIMEOUT_MS)
        for name, value in options.items():
            sock.setsockopt(getattr(self._zmq, name), value)
        return sock

    def track(self, sock: zmq.Socket[bytes]) -> zmq.Socket[bytes]:
        """Adopt a socket made elsewhere (a monitor socket) for timeouts and cleanup."""
        sock.setsockopt(self._zmq.LINGER, 0)
        sock.setsockopt(self._zmq.RCVTIMEO, TIMEOUT_MS)
        self._sockets.append(sock)
        return sock

    def close_all(self) -> None:
        """Close every socket, newest first (a monitor after the socket it watches)."""
        while self._sockets:
            self._sockets.pop().close(linger=0)


def libzmq_greeting(routing_id: bytes = b"") -> bytes:
    """The 64 bytes a libzmq 4.3.5 NULL socket sends (specs/libzmq-behaviour.md §1.2),
    spelled out.

    The padding carries routing-id length + 1 (the ZMTP 1.0 compatibility trick); the
    as-server byte is 0 whatever the role.
    """
    return (
        b"\xff"
        + (len(routing_id) + 1).to_bytes(8, "big")
        + b"\x7f\x03\x01"
        + b"NULL".ljust(20, b"\x00")
        + b"\x00"
        + bytes(31)
    )
