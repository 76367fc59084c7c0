"""Helpers for the security interop tests (``interop/test_security_*.py``): our sockets
with CURVE, PLAIN and ZAP against libzmq 4.3.5 (pyzmq) and omq.rs (pyomq) peers.

* :class:`CurveKeys` hands out one server and one client key pair per test and says
  which options each side sets for a given role;
* :class:`ZmqMonitor` reads a libzmq socket's monitor from a worker thread (bounded by
  RCVTIMEO, as every pyzmq socket of the ``zmq_socket`` fixture);
* :func:`events_until` collects our own monitor's events up to one of a kind;
* :class:`FrameRelay` stands between two peers, forwards their bytes frame by frame and
  records the frames of each direction after the greeting, so that a test can count
  the sealed CURVE MESSAGEs that went by (heartbeats are MESSAGEs too once CURVE seals
  them) or alter one of them on its way;
* the publish/subscribe synchronisation (a PUB drops what it sends before the
  subscription has arrived) without sleeps: probes until one gets through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

import zmtp
from zmtp.protocol.framing import FLAG_LONG
from zmtp.sockets import Socket

from ._helpers import Endpoint, SocketFactory, ipc_path
from ._sock_helpers import Theirs
from ._wire_helpers import open_stream

zmq = pytest.importorskip("zmq")
parse_monitor_message = pytest.importorskip("zmq.utils.monitor").parse_monitor_message

__all__ = [
    "PASSWORD",
    "USERNAME",
    "ZMQ_EVENT_NAMES",
    "CurveKeys",
    "FrameRelay",
    "KeyPair",
    "RelayLink",
    "ZmqMonitor",
    "events_until",
    "our_security",
    "recv_poking",
    "sync_ours_to_theirs",
    "sync_theirs_to_ours",
    "their_security",
    "thread_authenticator",
]

_S = zmtp.SocketType

#: libzmq's monitor event numbers by name (``HANDSHAKE_FAILED_AUTH``...), for messages.
ZMQ_EVENT_NAMES: dict[int, str] = {
    getattr(zmq, name): name.removeprefix("EVENT_")
    for name in dir(zmq)
    if name.startswith("EVENT_")
    and name not in ("EVENT_ALL", "EVENT_ALL_V1", "EVENT_ALL_V2")
    and isinstance(getattr(zmq, name), int)
}


# ----------------------------------------------------------------------- keys


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair in Z85 (40 bytes each), as ``zmtp.curve_keypair`` makes it."""

    public: bytes
    secret: bytes

    @classmethod
    def new(cls) -> KeyPair:
        public, secret = zmtp.curve_keypair()
        return cls(public, secret)


@dataclass(frozen=True)
class CurveKeys:
    """The key pairs of one test: the server's and a client's."""

    server: KeyPair = field(default_factory=KeyPair.new)
    client: KeyPair = field(default_factory=KeyPair.new)

    def ours(self, server: bool) -> dict[str, Any]:
        """Our socket's options for a CURVE server or client."""
        if server:
            return {"curve_server": True, "curve_secretkey": self.server.secret}
        return {"curve_serverkey": self.server.public, "curve_secretkey": self.client.secret}

    def theirs(self, server: bool) -> dict[str, Any]:
        """A libzmq (or pyomq) socket's options for a CURVE server or client.

        A server sets its public key too: libzmq does not need it, pyomq runs NULL
        without it (it then ignores ``CURVE_SERVER``).
        """
        if server:
            return {
                "CURVE_SERVER": 1,
                "CURVE_PUBLICKEY": self.server.public,
                "CURVE_SECRETKEY": self.server.secret,
            }
        return {
            "CURVE_SERVERKEY": self.server.public,
            "CURVE_PUBLICKEY": self.client.public,
            "CURVE_SECRETKEY": self.client.secret,
        }


#: The PLAIN credentials the tests' ZAP handlers accept.
USERNAME, PASSWORD = "admin", "secret"


def our_security(mechanism: str, server: bool, keys: CurveKeys) -> dict[str, Any]:
    """Our socket's options for ``mechanism`` (NULL, PLAIN, CURVE) in a role."""
    if mechanism == "CURVE":
        return keys.ours(server)
    if mechanism == "PLAIN":
        if server:
            return {"plain_server": True}
        return {"plain_username": USERNAME, "plain_password": PASSWORD}
    return {}


def their_security(mechanism: str, server: bool, keys: CurveKeys) -> dict[str, Any]:
    """A libzmq socket's options (pyzmq names) for ``mechanism`` in a role."""
    if mechanism == "CURVE":
        return keys.theirs(server)
    if mechanism == "PLAIN":
        if server:
            return {"PLAIN_SERVER": 1}
        return {"PLAIN_USERNAME": USERNAME.encode(), "PLAIN_PASSWORD": PASSWORD.encode()}
    return {}


@contextmanager
def thread_authenticator(
    zmq_context: Any,
    *,
    passwords: dict[str, str] | None = None,
    certificates: str | Path | None = None,
) -> Iterator[Any]:
    """pyzmq's ``ThreadAuthenticator`` on ``zmq_context`` (its libzmq servers' ZAP
    handler), configured for PLAIN ``passwords`` and for a CURVE ``certificates``
    directory (any client key without one), stopped (its thread joined) on the way
    out."""
    thread_auth = pytest.importorskip("zmq.auth.thread")
    auth = thread_auth.ThreadAuthenticator(zmq_context)
    auth.start()
    try:
        if passwords is not None:
            auth.configure_plain(domain="*", passwords=passwords)
        location = zmq.auth.CURVE_ALLOW_ANY if certificates is None else str(certificates)
        auth.configure_curve(domain="*", location=location)
        yield auth
    finally:
        auth.stop()


# ----------------------------------------------------------------------- monitors


class ZmqMonitor:
    """A libzmq socket's monitor, read from worker threads (one at a time)."""

    def __init__(self, factory: SocketFactory, sock: Any, events: int | None = None) -> None:
        mask = zmq.EVENT_ALL if events is None else events
        self.sock = factory.track(sock.get_monitor_socket(mask))
        self.seen: list[dict[str, Any]] = []

    def _recv(self) -> dict[str, Any]:
        event: dict[str, Any] = parse_monitor_message(self.sock.recv_multipart())
        self.seen.append(event)
        return event

    async def until(self, *kinds: int) -> list[dict[str, Any]]:
        """Every event up to and including the first whose kind is one of ``kinds``."""

        def read() -> list[dict[str, Any]]:
            got = []
            while True:
                event = self._recv()
                got.append(event)
                if event["event"] in kinds:
                    return got

        return await trio.to_thread.run_sync(read)

    def pending(self) -> list[dict[str, Any]]:
        """The events queued right now (does not block)."""
        got = []
        while self.sock.poll(0):
            got.append(self._recv())
        return got

    @staticmethod
    def names(events: list[dict[str, Any]]) -> list[str]:
        return [ZMQ_EVENT_NAMES.get(ev["event"], str(ev["event"])) for ev in events]


async def events_until(mon: zmtp.Monitor, *kinds: zmtp.EventType) -> list[zmtp.SocketEvent]:
    """Our monitor's events up to and including the first of one of ``kinds``."""
    got = []
    async for event in mon:
        got.append(event)
        if event.type in kinds:
            return got
    raise AssertionError(f"monitor ended before any of {kinds}: {got}")


# ----------------------------------------------------------------------- relay


#: The length of a ZMTP 3.x greeting, which precedes the frames of each direction.
_GREETING = 64
_RELAY_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)

#: ``tamper(direction, frame_index, flags, body) -> body``: may return an altered body
#: (of the same length) for a frame that goes ``"up"`` (from whoever connected to the
#: relay to the target) or ``"down"``; ``frame_index`` counts that direction's frames
#: after the greeting from 0.
Tamper = Callable[[str, int, int, bytes], bytes]


@dataclass
class RelayLink:
    """One relayed connection: the frames each way after the greetings."""

    up: list[tuple[int, bytes]] = field(default_factory=list)
    down: list[tuple[int, bytes]] = field(default_factory=list)
    closed: trio.Event = field(default_factory=trio.Event)

    def messages(self, direction: str) -> int:
        """How many CURVE MESSAGE frames went ``direction``."""
        frames = self.up if direction == "up" else self.down
        return sum(1 for _, body in frames if body[:8] == b"\x07MESSAGE")


class FrameRelay:
    """Accepts connections and relays each to ``target``, whole frames at a time.

    The greeting is forwarded as it arrives; after it, bytes are forwarded once a frame
    is complete, which lets :data:`Tamper` change a frame before it goes on.  A side
    that closes closes the other, as a network path would.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        target: Endpoint,
        ipc_dir: Path,
        tamper: Tamper | None = None,
    ) -> None:
        self._nursery = nursery
        self._target = target
        self._ipc_dir = ipc_dir
        self._tamper = tamper
        self.links: list[RelayLink] = []
        self.endpoint = ""
        self.linked = trio.Event()

    async def start(self, transport: str) -> str:
        """Listen (a free tcp port of 127.0.0.1, or a fresh ipc path); return where."""
        listener: trio.SocketListener
        if transport == "tcp":
            (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
            self.endpoint = f"tcp://127.0.0.1:{listener.socket.getsockname()[1]}"
        else:
            path = ipc_path(self._ipc_dir, "relay")
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            await sock.bind(path)
            sock.listen()
            listener = trio.SocketListener(sock)
            self.endpoint = f"ipc://{path}"
        self._nursery.start_soon(self._serve, listener)
        return self.endpoint

    async def _serve(self, listener: trio.SocketListener) -> None:
        async with listener:
            while True:
                client = await listener.accept()
                try:
                    server = await open_stream(self._target)
                except OSError:
                    await client.aclose()
                    continue
                link = RelayLink()
                self.links.append(link)
                self.linked.set()
                self._nursery.start_soon(self._pump, client, server, link, "up")
                self._nursery.start_soon(self._pump, server, client, link, "down")

    async def _pump(
        self, src: trio.SocketStream, dst: trio.SocketStream, link: RelayLink, direction: str
    ) -> None:
        record = link.up if direction == "up" else link.down
        buf = bytearray()
        greeted = 0
        try:
            while True:
                data = await src.receive_some(1 << 16)
                if not data:
                    break
                buf += data
                out = bytearray()
                if greeted < _GREETING:
                    # The greeting goes on as it comes: each side sends it in pieces,
                    # each waiting for the other's (specs/libzmq-behaviour.md §1.2).
                    n = min(_GREETING - greeted, len(buf))
                    out += buf[:n]
                    del buf[:n]
                    greeted += n
                while True:
                    frame = _split_frame(buf)
                    if frame is None:
                        break
                    flags, header, body = frame
                    if self._tamper is not None:
                        body = self._tamper(direction, len(record), flags, body)
                    record.append((flags, body))
                    out += header + body
                if out:
                    await dst.send_all(bytes(out))
        except _RELAY_ERRORS:
            pass
        finally:
            await trio.aclose_forcefully(src)
            await trio.aclose_forcefully(dst)
            link.closed.set()


def _split_frame(buf: bytearray) -> tuple[int, bytes, bytes] | None:
    """Take one whole frame off ``buf``: (flags, header, body), or None if incomplete."""
    if len(buf) < 2:
        return None
    flags = buf[0]
    size_len = 8 if flags & FLAG_LONG else 1
    if len(buf) < 1 + size_len:
        return None
    size = int.from_bytes(buf[1 : 1 + size_len], "big")
    end = 1 + size_len + size
    if len(buf) < end:
        return None
    header, body = bytes(buf[: 1 + size_len]), bytes(buf[1 + size_len : end])
    del buf[:end]
    return flags, header, body


# ----------------------------------------------------------------------- pub/sub


async def sync_ours_to_theirs(pub: Socket, sub: Theirs, probe: bytes) -> None:
    """Publish ``probe`` from our PUB until their SUB (subscribed to it) has one, then
    a marker, and drain up to the marker: the subscription is in, nothing is left."""
    while True:
        await pub.send_multipart([probe])
        if await trio.to_thread.run_sync(sub.sock.poll, 20):
            break
    await pub.send_multipart([probe + b"-end"])
    while (await sub.recv())[0] != probe + b"-end":
        pass


async def sync_theirs_to_ours(pub: Theirs, sub: Socket, probe: bytes) -> None:
    """Publish ``probe`` from their PUB until our SUB has one; drain as above."""
    while True:
        await pub.send([probe])
        with trio.move_on_after(0.02):
            await sub.recv_multipart()
            break
    await pub.send([probe + b"-end"])
    while (await sub.recv_multipart())[0] != probe + b"-end":
        pass


async def recv_poking(ours: Socket, theirs: Theirs) -> list[bytes]:
    """Our next message, while making libzmq act on its pending commands.

    A libzmq SUB or XSUB sends its subscriptions to a new connection only when its
    application next enters the socket (specs/libzmq-behaviour.md §3.1), so a test
    waiting for them touches the libzmq socket now and then, as an application would.
    """
    while True:
        with trio.move_on_after(0.02):
            return await ours.recv_multipart()
        theirs.sock.getsockopt(zmq.EVENTS)
