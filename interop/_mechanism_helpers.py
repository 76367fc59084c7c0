"""A blocking raw ZMTP peer for driving the sans-IO mechanisms against libzmq.

:class:`RawPeer` owns one TCP socket (with a timeout, so nothing hangs): it exchanges
greetings for a given mechanism, then reads and writes whole frames.  The handshake
itself is done by the test, which hands the command bodies to a mechanism object
(``zmtp.protocol.mechanisms``) and writes back what it returns.  No zmtp Connection is
involved: these tests pin the mechanisms' bytes alone against libzmq.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from zmtp.protocol.commands import Command, parse_command
from zmtp.protocol.framing import FLAG_COMMAND, FLAG_LONG
from zmtp.protocol.greeting import GREETING_LEN, Greeting, build_greeting
from zmtp.protocol.mechanisms import Mechanism, MechanismStatus

from ._helpers import TIMEOUT

__all__ = ["RawPeer", "accept_raw", "connect_raw", "run_handshake"]


class RawPeer:
    """One blocking TCP connection speaking raw ZMTP frames."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(TIMEOUT)
        self.sock = sock
        self.greeting: Greeting | None = None

    def close(self) -> None:
        self.sock.close()

    def recv_exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError(f"peer closed after {len(data)} of {n} bytes")
            data += chunk
        return bytes(data)

    def exchange_greetings(self, mechanism: bytes, *, as_server: bool) -> Greeting:
        self.sock.sendall(build_greeting(mechanism, as_server=as_server))
        self.greeting = Greeting.parse(self.recv_exactly(GREETING_LEN))
        return self.greeting

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_frame(self) -> tuple[int, bytes]:
        flags = self.recv_exactly(1)[0]
        size_len = 8 if flags & FLAG_LONG else 1
        size = int.from_bytes(self.recv_exactly(size_len), "big")
        return flags, self.recv_exactly(size)

    def recv_command(self) -> Command:
        flags, body = self.recv_frame()
        assert flags & FLAG_COMMAND, f"expected a command frame, got flags {flags:#04x}"
        return parse_command(body)

    def at_eof(self) -> bool:
        """True once the peer has closed (reads until EOF, dropping anything before)."""
        try:
            while self.sock.recv(4096):
                pass
        except (ConnectionResetError, TimeoutError):
            return False
        return True


def connect_raw(endpoint: str) -> RawPeer:
    """Connect to libzmq's ``tcp://127.0.0.1:PORT`` endpoint."""
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    return RawPeer(socket.create_connection((host, int(port)), timeout=TIMEOUT))


def accept_raw(connect: Callable[[str], None]) -> RawPeer:
    """Listen on a fresh port, have ``connect(endpoint)`` make libzmq connect, accept."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]
        connect(f"tcp://127.0.0.1:{port}")
        sock, _ = listener.accept()
    return RawPeer(sock)


def run_handshake(
    peer: RawPeer, mechanism: Mechanism, properties: list[tuple[str, bytes]]
) -> list[bytes]:
    """Greet, then pump commands between ``peer`` and ``mechanism`` until it is READY.

    Returns the command frames we sent, in order.
    """
    peer.exchange_greetings(mechanism.name, as_server=mechanism.as_server)
    sent = mechanism.start(properties)
    for frame in sent:
        peer.send(frame)
    while mechanism.status is not MechanismStatus.READY:
        replies = mechanism.receive_command(peer.recv_command())
        for frame in replies:
            peer.send(frame)
        sent += replies
    return sent
