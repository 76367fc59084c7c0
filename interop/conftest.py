"""Fixtures for the interop tests: real libzmq peers through pyzmq.

Every pyzmq socket is made by the :func:`zmq_socket` factory, which gives it LINGER=0
and receive/send timeouts (so a blocking call in a worker thread cannot hang the run),
and closes it at teardown.  The context is terminated afterwards in a helper thread with
a bounded join: ``zmq_ctx_term`` blocks while any socket is still open, and a leak must
fail the test rather than hang CI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .wire_helpers import TIMEOUT, TIMEOUT_MS, Endpoint

if TYPE_CHECKING:
    import zmq


@pytest.fixture
def zmq_context() -> Iterator[zmq.Context[Any]]:
    """A fresh libzmq context per test, terminated (with a timeout) at teardown."""
    libzmq = pytest.importorskip("zmq")
    ctx: zmq.Context[Any] = libzmq.Context()
    try:
        yield ctx
    finally:
        # Sockets are closed by zmq_socket's teardown, which runs before this one.
        done = threading.Event()

        def term() -> None:
            ctx.term()
            done.set()

        thread = threading.Thread(target=term, name="zmq-ctx-term", daemon=True)
        thread.start()
        thread.join(TIMEOUT)
        if not done.is_set():
            pytest.fail("zmq context did not terminate: a socket was left open")


class SocketFactory:
    """Makes pyzmq sockets for one test and closes them all at teardown.

    ``factory(zmq.ROUTER, IDENTITY=b"x")`` returns a socket with LINGER=0, bounded
    RCVTIMEO/SNDTIMEO and the given options (by pyzmq constant name).
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


@pytest.fixture
def zmq_socket(zmq_context: zmq.Context[Any]) -> Iterator[SocketFactory]:
    """A :class:`SocketFactory` whose sockets are closed before the context terminates."""
    factory = SocketFactory(zmq_context)
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture
def ipc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short directory for ipc sockets (a unix socket path is limited to ~107 bytes,
    which a per-test ``tmp_path`` named after a long parametrised test can exceed)."""
    return tmp_path_factory.mktemp("ipc", numbered=True)


@pytest.fixture
def bind_zmq(ipc_dir: Path) -> Callable[[zmq.Socket[bytes], str], Endpoint]:
    """``bind_zmq(sock, "tcp" | "ipc")``: bind on a free port or fresh path; return it."""
    libzmq = pytest.importorskip("zmq")
    counter = iter(range(1, 1 << 30))

    def bind(sock: zmq.Socket[bytes], transport: str) -> Endpoint:
        if transport == "tcp":
            sock.bind("tcp://127.0.0.1:*")
        else:
            sock.bind(f"ipc://{ipc_dir}/z{next(counter)}.sock")
        return Endpoint.from_zmq(sock.getsockopt_string(libzmq.LAST_ENDPOINT))

    return bind
