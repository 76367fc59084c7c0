"""Golden bytes of ZMTP 2.0 and 1.0 conversations, checked against libzmq, then ours.

Every test runs one script of a raw-socket peer posing as an old peer, first against a
libzmq 4.3.5 socket (pyzmq: the oracle that the bytes are right) and then against ours,
over tcp and ipc, with that peer connecting to a bound socket and the other way round.
The steps follow specs/libzmq-behaviour.md §8: signature (padding = routing-id length
+ 1), our major version only to a versioned peer, the socket-type octet and identity
frame of 2.0, the identity body after a 1.0 peer's first frame, and frames at the
short/long boundaries (255/256 bytes for 2.0, 253/254 for 1.0).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import zmtp

from ._helpers import TRANSPORTS, BindZmq, Endpoint, SocketFactory
from ._legacy_helpers import RawPeer, sig, v1_frame, v2_frame
from ._wire_helpers import open_stream, serve_one

pytestmark = pytest.mark.interop
zmq = pytest.importorskip("zmq")

SERVERS = ["libzmq", "ours"]
ROLES = ["they_connect", "they_accept"]  # the raw old peer connects, or is connected to


class App:
    """The socket under test, libzmq's or ours, behind one interface."""

    def __init__(
        self,
        send: Callable[[list[bytes]], Awaitable[None]],
        recv: Callable[[], Awaitable[list[bytes]]],
    ) -> None:
        self.send = send
        self.recv = recv


@asynccontextmanager
async def wire(
    impl: str,
    stype: zmtp.SocketType,
    transport: str,
    role: str,
    *,
    routing_id: bytes,
    zmq_socket: SocketFactory,
    bind_zmq: BindZmq,
    ipc_dir: Path,
    **opts: Any,
) -> AsyncIterator[tuple[RawPeer, App]]:
    """A raw old peer linked to a socket of ``impl``: it connects (``they_connect``)
    or the socket connects to it (``they_accept``)."""
    async with zmtp.Context() as ctx:
        if impl == "libzmq":
            zopts = {"ROUTING_ID": routing_id} if routing_id else {}
            zopts.update({k.upper(): v for k, v in opts.items()})
            zs = zmq_socket(int(stype), **zopts)

            async def zsend(frames: list[bytes]) -> None:
                await trio.to_thread.run_sync(zs.send_multipart, frames)

            async def zrecv() -> list[bytes]:
                return await trio.to_thread.run_sync(zs.recv_multipart)

            app = App(zsend, zrecv)

            async def bind() -> Endpoint:
                return bind_zmq(zs, transport)

            async def connect(ep: Endpoint) -> None:
                zs.connect(ep.zmq)
        else:
            sock = ctx.socket(stype, routing_id=routing_id, **opts)
            app = App(sock.send_multipart, sock.recv_multipart)

            async def bind() -> Endpoint:
                addr = "tcp://127.0.0.1:0" if transport == "tcp" else f"ipc://{ipc_dir}/l.sock"
                return Endpoint.from_zmq(await sock.bind(addr))

            async def connect(ep: Endpoint) -> None:
                await sock.connect(ep.zmq)

        if role == "they_connect":
            ep = await bind()
            stream = await open_stream(ep)
        else:
            async with serve_one(transport, ipc_dir) as (ep, listener):
                await connect(ep)
                with trio.fail_after(10):
                    stream = await listener.accept()
        async with stream:
            yield RawPeer(stream), app


Case = Callable[..., Any]
params = pytest.mark.parametrize(
    ("impl", "transport", "role"),
    [(i, t, r) for i in SERVERS for t in TRANSPORTS for r in ROLES],
)


@pytest.fixture
def link(zmq_socket: SocketFactory, bind_zmq: BindZmq, ipc_dir: Path) -> Case:
    def make(*args: Any, **kwargs: Any) -> Any:
        return wire(*args, zmq_socket=zmq_socket, bind_zmq=bind_zmq, ipc_dir=ipc_dir, **kwargs)

    return make


@params
async def test_zmtp20_dealer_to_router(impl: str, transport: str, role: str, link: Case) -> None:
    """A 2.0 DEALER with identity "ID" and a ROUTER with identity "SRV"."""
    async with link(impl, zmtp.ROUTER, transport, role, routing_id=b"SRV") as (peer, app):
        await peer.send(sig(b"ID"))
        # Piece 1 at once; piece 2 (the major version) once our signature is in.
        await peer.expect(sig(b"SRV") + b"\x03")
        await peer.send(b"\x01\x05")  # revision 1 (ZMTP 2.0), socket type 5 (DEALER)
        # Socket type 6 (ROUTER), then the identity frame, and no 3.x greeting tail.
        await peer.expect(b"\x06" + v2_frame(b"SRV"))
        big, bigger = b"x" * 255, b"y" * 256
        await peer.send(
            v2_frame(b"ID") + v2_frame(b"hi", more=True) + v2_frame(big, True) + v2_frame(bigger)
        )
        assert await app.recv() == [b"ID", b"hi", big, bigger]  # routed by its identity
        await app.send([b"ID", big, bigger])
        await peer.expect(b"\x01\xff" + big + b"\x02" + (256).to_bytes(8, "big") + bigger)


@params
async def test_zmtp10_peer_to_router(impl: str, transport: str, role: str, link: Case) -> None:
    """An unversioned 1.0 peer: its first byte is a frame length, not FF."""
    async with link(impl, zmtp.ROUTER, transport, role, routing_id=b"SRV") as (peer, app):
        await peer.send(v1_frame(b"ID"))  # 03 00 'ID': its identity frame
        # Our signature was the header of a 1.0 identity frame of length 4 (flags 7F):
        # the body follows, and never the 03 of a versioned greeting.
        await peer.expect(sig(b"SRV") + b"SRV")
        small, large = b"s" * 253, b"L" * 254
        await peer.send(v1_frame(b"hi", more=True) + v1_frame(small, True) + v1_frame(large))
        assert await app.recv() == [b"ID", b"hi", small, large]
        await app.send([b"ID", small, large])
        long_header = b"\xff" + (255).to_bytes(8, "big") + b"\x00"
        await peer.expect(b"\xfe\x01" + small + long_header + large)


@params
async def test_zmtp10_subscriber_gets_every_topic(
    impl: str, transport: str, role: str, link: Case
) -> None:
    """libzmq subscribes a 1.0 peer to everything: it filters for itself."""
    async with link(impl, zmtp.XPUB, transport, role, routing_id=b"") as (peer, app):
        await peer.send(v1_frame(b""))
        await peer.expect(sig() + b"")
        assert await app.recv() == [b"\x01"]  # the subscribe-all, as XPUB reports it
        await app.send([b"a", b"1"])
        await app.send([b"b"])
        await peer.expect(v1_frame(b"a", True) + v1_frame(b"1") + v1_frame(b"b"))


@params
async def test_zmtp20_subscriber_filters_upstream(
    impl: str, transport: str, role: str, link: Case
) -> None:
    async with link(impl, zmtp.XPUB, transport, role, routing_id=b"") as (peer, app):
        await peer.send(sig())
        await peer.expect(sig() + b"\x03")
        await peer.send(b"\x01\x02" + v2_frame(b"") + v2_frame(b"\x01a"))  # SUB, subscribe "a"
        await peer.expect(b"\x09" + v2_frame(b""))  # XPUB = 9, beyond RFC 15's table
        assert await app.recv() == [b"\x01a"]
        for topic in (b"a1", b"b1", b"a2"):
            await app.send([topic])
        await peer.expect(v2_frame(b"a1") + v2_frame(b"a2"))


@params
async def test_subscriptions_to_a_zmtp20_publisher_are_data_frames(
    impl: str, transport: str, role: str, link: Case
) -> None:
    async with link(impl, zmtp.XSUB, transport, role, routing_id=b"") as (peer, app):
        await peer.send(sig())
        await peer.expect(sig() + b"\x03")
        await peer.send(b"\x01\x01" + v2_frame(b""))  # PUB
        await peer.expect(b"\x0a" + v2_frame(b""))  # XSUB = 10
        await app.send([b"\x01topic"])
        await peer.expect(v2_frame(b"\x01topic"))  # no SUBSCRIBE command
        await peer.send(v2_frame(b"topic!"))
        assert await app.recv() == [b"topic!"]


@params
async def test_revision_0_is_versioned_zmtp10_framing(
    impl: str, transport: str, role: str, link: Case
) -> None:
    """A versioned peer announcing revision 0: 2.0's greeting, then 1.0 frames."""
    async with link(impl, zmtp.DEALER, transport, role, routing_id=b"") as (peer, app):
        await peer.send(sig())
        await peer.expect(sig() + b"\x03")
        await peer.send(b"\x00\x05" + v1_frame(b""))
        await peer.expect(b"\x05" + v1_frame(b""))
        await peer.send(v1_frame(b"q", more=True) + v1_frame(b"r"))
        assert await app.recv() == [b"q", b"r"]
        await app.send([b"back"])
        await peer.expect(v1_frame(b"back"))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_libzmq_refuses_zmtp20_under_plain(
    transport: str, zmq_socket: SocketFactory, bind_zmq: BindZmq
) -> None:
    """The oracle for Connection's refusal hook (tests/test_legacy_connection.py): with a
    security mechanism, libzmq cuts a 2.0 peer off once its revision octet is in."""
    zs = zmq_socket(zmq.ROUTER, PLAIN_SERVER=1)
    ep = bind_zmq(zs, transport)
    async with await open_stream(ep) as stream:
        peer = RawPeer(stream)
        await peer.send(sig())
        await peer.expect(sig() + b"\x03")
        await peer.send(b"\x01\x05" + v2_frame(b""))
        assert await peer.expect_closed() == b""  # no socket type, no identity
