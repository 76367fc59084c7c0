"""A socket with many connections: fair queuing across them, and their ends.

Issue 15's ROUTER with 1,000 peers: what it receives is taken one message per peer in
turn (libzmq's fair queue: no peer is starved however much another one sends), and
peers that leave cost no more than they must.  The tests wait on queue contents,
monitor events and ``wait_all_tasks_blocked``, never on time.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest
import trio
import trio.testing

import zmtp
from zmtp import SocketType
from zmtp.sockets import Socket
from zmtp.sockets._monitor import EventType

from ._helpers import STREAM_TRANSPORTS, RawPeer, bind_address, context

#: Peers per test: enough that an order or a cost per connection shows.
PEERS = 60


async def dealers(endpoint: str, n: int) -> list[RawPeer]:
    """``n`` raw DEALER peers named ``p0``, ``p1``... with their handshakes done."""
    peers = []
    for i in range(n):
        peer = await RawPeer.connect(endpoint, SocketType.DEALER, routing_id=b"p%d" % i)
        await peer.handshake()
        peers.append(peer)
    return peers


async def queued(sock: Socket, count: int) -> None:
    """Wait until ``count`` messages wait in the socket's inbound queues (every
    connection's reader has handed over what it was sent)."""
    while sum(len(p.inp) for p in sock.peers) < count:
        await trio.testing.wait_all_tasks_blocked()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_a_router_takes_one_message_per_peer_in_turn(transport: str) -> None:
    # Every peer has several messages queued: the ROUTER goes round the peers,
    # one message each, and each peer's messages stay in their order.
    per_peer = 4
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        ep = await router.bind(bind_address(transport))
        peers = await dealers(ep, PEERS)
        for i, peer in enumerate(peers):
            await peer.send(*([b"p%d" % i, b"%d" % k] for k in range(per_peer)))
        await queued(router, PEERS * per_peer)
        got = [await router.recv_multipart() for _ in range(PEERS * per_peer)]
        senders = [rid for rid, *_ in got]
        first_turn = senders[:PEERS]
        assert sorted(first_turn) == sorted(b"p%d" % i for i in range(PEERS))
        # Round after round in the same order: no peer is served twice in a turn.
        assert senders == first_turn * per_peer
        assert all(name == rid for rid, name, _ in got)
        for i in range(PEERS):
            mine = [int(k) for rid, _, k in got if rid == b"p%d" % i]
            assert mine == list(range(per_peer))
        for peer in peers:
            await peer.stream.aclose()


async def test_a_busy_peer_does_not_starve_the_others() -> None:
    # One peer has a deep queue, the others one message each: the others are all
    # served within the first turn, not after the busy peer's backlog.
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER, rcvhwm=0)
        ep = await router.bind(bind_address("tcp"))
        peers = await dealers(ep, PEERS)
        busy, rest = peers[0], peers[1:]
        await busy.send(*([b"busy"] for _ in range(500)))
        await queued(router, 500)
        for peer in rest:
            await peer.send([b"quiet"])
        await queued(router, 500 + len(rest))
        first = [await router.recv_multipart() for _ in range(2 * len(rest))]
        assert sum(1 for _, body in first if body == b"quiet") == len(rest)
        assert sum(1 for _, body in first if body == b"busy") <= len(rest) + 1
        # Batches are as fair: the rest of the busy peer's backlog comes last.
        batch = await router.recv_many(1000)
        assert all(body == b"busy" for _, body in batch)
        for peer in peers:
            await peer.stream.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_peers_leaving_cancel_nothing(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # When a peer closes its connection, the reader sees the end and the engine's
    # other loops (writer, heartbeat watchdog) are woken to return: no cancel scope
    # is cancelled, so no Cancelled is raised through them and collected by trio.
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        mon = router.monitor()
        ep = await router.bind(bind_address(transport))
        peers = await dealers(ep, PEERS)
        for peer in peers:
            await peer.send([b"hello"])
        for _ in range(PEERS):
            await router.recv_multipart()
        cancelled: list[trio.CancelScope] = []
        cancel = trio.CancelScope.cancel

        def spy(scope: trio.CancelScope, *args: Any, **kwargs: Any) -> None:
            cancelled.append(scope)
            cancel(scope, *args, **kwargs)

        monkeypatch.setattr(trio.CancelScope, "cancel", spy)
        for peer in peers:
            await peer.stream.aclose()
        gone = 0
        async for event in mon:
            if event.type is EventType.DISCONNECTED:
                gone += 1
                if gone == PEERS:
                    break
        monkeypatch.undo()
        assert cancelled == []
        assert router.peers == []


async def test_a_peer_leaving_while_its_writer_is_busy_still_ends() -> None:
    # The writer is blocked on a full kernel buffer (the peer reads nothing) when
    # the peer's end arrives: it cannot be woken to return, so it is cancelled.
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER, sndhwm=0)
        mon = router.monitor()
        ep = await router.bind(bind_address("tcp"))
        (peer,) = await dealers(ep, 1)
        await peer.send([b"hello"])
        rid, _ = await router.recv_multipart()
        big = b"x" * 65536
        engine = router.peers[0].engine
        assert engine is not None
        while engine.writer_idle:  # until the kernel stops taking our bytes
            await router.send_multipart([rid, big])
            await trio.testing.wait_all_tasks_blocked()
        await peer.stream.send_eof()  # our reader sees the end
        async for event in mon:
            if event.type is EventType.DISCONNECTED:
                break
        assert router.peers == []
        await peer.stream.aclose()


@pytest.mark.parametrize("api", ["recv_multipart", "recv_many"])
async def test_a_router_delivers_one_frame_and_multipart_messages_alike(api: str) -> None:
    # A ROUTER queues a one-frame message from an engine as its frame alone (not a
    # list, which the garbage collector would walk while it waits); what the
    # application receives is the same: [routing id, frames...], in order, whole,
    # from tcp and inproc peers alike.
    sent = [[b"a"], [b"b", b"c"], [b""], [b"d", b"", b"e"], [b"f"]]
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        ep = await router.bind(bind_address("tcp"))
        await router.bind("inproc://many-peers-router")
        (tcp_peer,) = await dealers(ep, 1)
        await tcp_peer.send(*sent)
        local = ctx.socket(zmtp.DEALER, routing_id=b"local")
        await local.connect("inproc://many-peers-router")
        for msg in sent:
            await local.send_multipart(msg)
        got: list[list[bytes]] = []
        while len(got) < 2 * len(sent):
            if api == "recv_many":
                got.extend(await router.recv_many(3))
            else:
                got.append(await router.recv_multipart())
        for rid in (b"p0", b"local"):
            assert [m[1:] for m in got if m[0] == rid] == sent
        assert all(type(m) is list for m in got)
        await tcp_peer.stream.aclose()


async def test_waiting_one_frame_messages_are_not_tracked_by_the_collector() -> None:
    # What the engines of a ROUTER with several peers queue must not add work to
    # Python's full collections while it waits (the cost that grew with 1,000
    # peers): one-frame messages wait as bytes, which the collector does not track.
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        ep = await router.bind(bind_address("tcp"))
        busy, other = await dealers(ep, 2)
        await busy.send(*([b"%d" % i] for i in range(100)), [b"two", b"frames"])
        await queued(router, 101)
        (waiting,) = [list(p.inp.queue) for p in router.peers if p.inp]
        assert not any(gc.is_tracked(item) for item in waiting[:100])
        assert waiting[100] == [b"two", b"frames"]
        for peer in (busy, other):
            await peer.stream.aclose()


async def test_a_waiting_reader_keeps_nothing_it_decoded() -> None:
    # Once a read's messages are handed over, the reader waits for the next read
    # holding none of them: what it decoded (the one-frame lists a ROUTER with
    # several peers replaces by their frames) must not live on through the wait,
    # where Python's collector would promote it, read after read, to its oldest
    # generation (a full collection per 60,000 or so with 1,000 peers).
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        ep = await router.bind(bind_address("tcp"))
        busy, other = await dealers(ep, 2)
        await busy.send(*([b"marker-%d" % i] for i in range(50)))
        await queued(router, 50)
        leftovers = [
            o
            for o in gc.get_objects()
            if type(o) is list
            and len(o) == 1
            and type(o[0]) is bytes
            and o[0].startswith(b"marker-")
        ]
        assert leftovers == []
        assert len(await router.recv_many(100)) == 50
        for peer in (busy, other):
            await peer.stream.aclose()
