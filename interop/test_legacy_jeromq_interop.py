"""Our sockets against a real ZMTP 2.0 implementation: JeroMQ 0.3.6 (Debian's
``libjeromq-java``), driven through :file:`jeromq/LegacyPeer.java`.

Every pattern runs both ways (we bind and JeroMQ connects, and the reverse).  tcp only:
JeroMQ 0.3.6's ``ipc://`` is not a Unix domain socket (it emulates ipc over loopback
tcp), so ipc against old peers is covered by the raw-socket scripts of
``test_legacy_wire_interop.py``.  Without Java or JeroMQ these tests skip, loudly;
``.ci/run`` installs both.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import proxy
import zmtp

from ._helpers import DIRECTIONS, TIMEOUT, SocketFactory
from ._legacy_helpers import JeroPeer, compile_jeromq_peer

pytestmark = pytest.mark.interop


@pytest.fixture(scope="session")
def jeromq_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_jeromq_peer(tmp_path_factory.mktemp("jeromq"))


def free_port() -> int:
    # JeroMQ 0.3.6 cannot report the port it bound to: pick one for it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def linked(
    classes: Path,
    ctx: zmtp.Context,
    ours_type: zmtp.SocketType,
    theirs_type: str,
    direction: str,
    *,
    identity: bytes = b"",
    **opts: Any,
) -> AsyncIterator[tuple[zmtp.Socket, JeroPeer, list[zmtp.SocketEvent]]]:
    """One of our sockets and a JeroMQ one, linked; yields once our handshake is done.

    The third item is our HANDSHAKE_SUCCEEDED monitor event (it carries the version)."""
    ours = ctx.socket(ours_type, **opts)
    mon = ours.monitor()
    if direction == "we_bind":
        ep = await ours.bind("tcp://127.0.0.1:0")
        mode = "connect"
    else:
        ep = f"tcp://127.0.0.1:{free_port()}"
        mode = "bind"
    async with JeroPeer.open(classes, theirs_type, mode, ep, identity) as peer:
        if direction == "they_bind":
            await ours.connect(ep)
        with trio.fail_after(TIMEOUT):
            async for event in mon:
                if event.type is zmtp.EventType.HANDSHAKE_SUCCEEDED:
                    break
        yield ours, peer, [event]


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_push_pull(jeromq_classes: Path, direction: str) -> None:
    async with zmtp.Context() as ctx:
        async with linked(jeromq_classes, ctx, zmtp.PUSH, "PULL", direction) as (
            ours,
            peer,
            [hs],
        ):
            assert hs.detail["version"] == (2, 0)
            assert hs.detail["socket_type"] == "PULL"
            await ours.send_multipart([b"job", b"x" * 300])
            assert await peer.recv() == [b"job", b"x" * 300]
        async with linked(jeromq_classes, ctx, zmtp.PULL, "PUSH", direction) as (ours, peer, _):
            await peer.send([b"result", b""])
            with trio.fail_after(TIMEOUT):
                assert await ours.recv_multipart() == [b"result", b""]


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_dealer_router(jeromq_classes: Path, direction: str) -> None:
    async with zmtp.Context() as ctx:
        # Their DEALER's identity frame is what our ROUTER routes by.
        async with linked(
            jeromq_classes, ctx, zmtp.ROUTER, "DEALER", direction, identity=b"jero"
        ) as (ours, peer, [hs]):
            assert hs.detail["identity"] == b"jero"
            await peer.send([b"hello"])
            with trio.fail_after(TIMEOUT):
                assert await ours.recv_multipart() == [b"jero", b"hello"]
            await ours.send_multipart([b"jero", b"back", b"y" * 256])
            assert await peer.recv() == [b"back", b"y" * 256]
        # Our DEALER's routing id reaches their ROUTER in our identity frame.
        async with linked(
            jeromq_classes, ctx, zmtp.DEALER, "ROUTER", direction, routing_id=b"ours"
        ) as (ours, peer, _):
            await ours.send_multipart([b"ping"])
            assert await peer.recv() == [b"ours", b"ping"]
            await peer.send([b"ours", b"pong"])
            with trio.fail_after(TIMEOUT):
                assert await ours.recv_multipart() == [b"pong"]


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_req_rep(jeromq_classes: Path, direction: str) -> None:
    async with zmtp.Context() as ctx:
        async with linked(jeromq_classes, ctx, zmtp.REQ, "REP", direction) as (ours, peer, _):
            await ours.send_multipart([b"question"])
            assert await peer.recv() == [b"question"]
            await peer.send([b"answer"])
            with trio.fail_after(TIMEOUT):
                assert await ours.recv_multipart() == [b"answer"]
        async with linked(jeromq_classes, ctx, zmtp.REP, "REQ", direction) as (ours, peer, _):
            await peer.send([b"q2"])
            with trio.fail_after(TIMEOUT):
                assert await ours.recv_multipart() == [b"q2"]
            await ours.send_multipart([b"a2"])
            assert await peer.recv() == [b"a2"]


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_our_publisher_filters_for_their_subscriber(
    jeromq_classes: Path, direction: str
) -> None:
    async with (
        zmtp.Context() as ctx,
        linked(jeromq_classes, ctx, zmtp.XPUB, "SUB", direction) as (ours, peer, _),
    ):
        await peer.subscribe(b"a")
        first: list[list[bytes]] = []

        async def receive_first() -> None:
            first.append(await peer.recv())

        async with trio.open_nursery() as nursery:
            # JeroMQ, like libzmq 3.2, attaches an accepted connection only when its
            # application next calls into the socket: a bound JeroMQ SUB sends its
            # subscription once it is receiving.
            nursery.start_soon(receive_first)
            with trio.fail_after(TIMEOUT):
                # A 2.0 subscription is a data frame; our XPUB reports it as such.
                assert await ours.recv_multipart() == [b"\x01a"]
            for topic in (b"b-1", b"a-1", b"b-2", b"a-2"):
                await ours.send_multipart([topic])
        assert first == [[b"a-1"]]
        assert await peer.recv() == [b"a-2"]


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_their_publisher_filters_for_our_subscriber(
    jeromq_classes: Path, direction: str
) -> None:
    async with (
        zmtp.Context() as ctx,
        linked(jeromq_classes, ctx, zmtp.SUB, "PUB", direction) as (ours, peer, _),
    ):
        ours.subscribe(b"a")
        # The subscription reaches JeroMQ some time after the handshake; publish
        # until a message arrives (no sleep: each round waits for a delivery).
        got = None
        with trio.fail_after(TIMEOUT):
            while got is None:
                await peer.send([b"a-probe"])
                with trio.move_on_after(0.2):
                    got = await ours.recv_multipart()
        assert got == [b"a-probe"]
        await peer.send([b"b-1"])  # filtered out by JeroMQ (and by us)
        await peer.send([b"a-last"])
        with trio.fail_after(TIMEOUT):
            msg = await ours.recv_multipart()
            while msg == [b"a-probe"]:  # probes still in flight
                msg = await ours.recv_multipart()
        assert msg == [b"a-last"]


async def test_proxy_queue_with_zmtp20_client_and_zmtp31_worker(
    jeromq_classes: Path, zmq_socket: SocketFactory
) -> None:
    """A JeroMQ (2.0) REQ client and a libzmq (3.1) REP worker across our ROUTER/DEALER
    queue: each side of the proxy speaks its own protocol version."""
    zmq = pytest.importorskip("zmq")
    async with zmtp.Context() as ctx:
        frontend = ctx.socket(zmtp.ROUTER)
        backend = ctx.socket(zmtp.DEALER)
        front_ep = await frontend.bind("tcp://127.0.0.1:0")
        back_ep = await backend.bind("tcp://127.0.0.1:0")
        worker = zmq_socket(zmq.REP)
        worker.connect(back_ep)

        def serve() -> None:
            request = worker.recv_multipart()
            worker.send_multipart([b"done:" + request[0]])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(proxy.run, frontend, backend)
            nursery.start_soon(trio.to_thread.run_sync, serve)
            async with JeroPeer.open(jeromq_classes, "REQ", "connect", front_ep) as client:
                await client.send([b"task"])
                assert await client.recv() == [b"done:task"]
            nursery.cancel_scope.cancel()
