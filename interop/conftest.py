"""Fixtures for the interop tests: real libzmq peers through pyzmq.

Every pyzmq socket is made by the :func:`zmq_socket` factory, which gives it LINGER=0
and receive/send timeouts (so a blocking call in a worker thread cannot hang the run),
and closes it at teardown.  The context is terminated afterwards in a helper thread with
a bounded join: ``zmq_ctx_term`` blocks while any socket is still open, and a leak must
fail the test rather than hang CI.

The plain helpers these build on, and those tests call, are in the ``_*helpers.py``
modules (see ``_helpers.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import zmtp

from ._helpers import TIMEOUT, BindZmq, Endpoint, SocketFactory, ipc_path

if TYPE_CHECKING:
    import zmq

    from ._sock_helpers import Lab


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
def bind_zmq(ipc_dir: Path) -> BindZmq:
    """``bind_zmq(sock, "tcp" | "ipc")``: bind on a free port or fresh path; return it."""
    libzmq = pytest.importorskip("zmq")

    def bind(sock: zmq.Socket[bytes], transport: str) -> Endpoint:
        if transport == "tcp":
            sock.bind("tcp://127.0.0.1:*")
        else:
            sock.bind(f"ipc://{ipc_path(ipc_dir, 'z')}")
        return Endpoint.from_zmq(sock.getsockopt_string(libzmq.LAST_ENDPOINT))

    return bind


@pytest.fixture
def lab_factory(
    zmq_socket: SocketFactory, bind_zmq: BindZmq, ipc_dir: Path
) -> Callable[[zmtp.Context], Lab]:
    """``lab_factory(ctx)``: a :class:`Lab` of this test's pyzmq fixtures and ``ctx``."""
    from ._sock_helpers import Lab  # noqa: PLC0415 - it skips whoever imports it without pyzmq

    return lambda ctx: Lab(ctx, zmq_socket, bind_zmq, ipc_dir)
