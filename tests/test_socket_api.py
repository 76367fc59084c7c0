"""Public socket API for devices and custom transports: ``can_send``/``can_recv``,
``send_batch_nowait`` and ``attach_stream``.

Everything here goes through public names only (``zmtp.Context``, ``Socket`` methods,
monitors), as the proxy and any device of yours do.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import trio
import trio.testing

import zmtp
from zmtp.sockets import Socket

from ._helpers import bind_address, connected, context

# ----------------------------------------------------------------------- can_send / can_recv

#: What each socket type can do, as in libzmq (zmq_socket(3)): PUB and PUSH cannot
#: receive, SUB and PULL cannot send; every other type does both.
DIRECTIONS = {
    zmtp.PAIR: (True, True),
    zmtp.PUB: (True, False),
    zmtp.SUB: (False, True),
    zmtp.REQ: (True, True),
    zmtp.REP: (True, True),
    zmtp.DEALER: (True, True),
    zmtp.ROUTER: (True, True),
    zmtp.PULL: (False, True),
    zmtp.PUSH: (True, False),
    zmtp.XPUB: (True, True),
    zmtp.XSUB: (True, True),
}


def test_directions_cover_every_socket_type() -> None:
    assert set(DIRECTIONS) == set(zmtp.SocketType)


@pytest.mark.parametrize("socket_type", list(DIRECTIONS), ids=lambda t: t.name)
async def test_can_send_and_can_recv_match_libzmq(socket_type: zmtp.SocketType) -> None:
    can_send, can_recv = DIRECTIONS[socket_type]
    async with context() as ctx:
        sock = ctx.socket(socket_type)
        cls = type(sock)
        # Class attributes: a device can decide before it has a socket.
        assert (cls.can_send, cls.can_recv) == (can_send, can_recv)
        assert (sock.can_send, sock.can_recv) == (can_send, can_recv)
        # And the socket behaves accordingly (no peer: it would block, or it is not
        # its turn, or a PUB/XPUB/XSUB/ROUTER drops; but it is never "not supported").
        if can_send:
            with contextlib.suppress(trio.WouldBlock, zmtp.InvalidStateError):
                sock.send_multipart_nowait([b"x"])
        else:
            with pytest.raises(zmtp.NotSupportedError):
                sock.send_multipart_nowait([b"x"])
            with pytest.raises(zmtp.NotSupportedError):
                sock.send_batch_nowait([[b"x"]])
        if can_recv:
            with pytest.raises((trio.WouldBlock, zmtp.InvalidStateError)):
                sock.recv_multipart_nowait()
        else:
            with pytest.raises(zmtp.NotSupportedError):
                sock.recv_multipart_nowait()


# ----------------------------------------------------------------------- send_batch_nowait


#: Types that wait for a peer, and a type to receive from each.
PARTNER = {zmtp.PUSH: zmtp.PULL, zmtp.DEALER: zmtp.DEALER, zmtp.PAIR: zmtp.PAIR, zmtp.REQ: zmtp.REP}


@pytest.mark.parametrize("socket_type", list(PARTNER), ids=lambda t: t.name)
async def test_send_batch_nowait_without_a_peer_queues_nothing(
    socket_type: zmtp.SocketType,
) -> None:
    async with context() as ctx:
        sock = ctx.socket(socket_type)
        batch = [[b"a"], [b"b"]]
        assert sock.send_batch_nowait(batch) == 0
        assert sock.send_batch_nowait(batch, 1) == 0  # (REQ: still its turn to send)
        assert batch == [[b"a"], [b"b"]]
        # Nothing was queued anywhere: a peer that comes now receives nothing stale.
        partner = ctx.socket(PARTNER[socket_type])
        ep = await partner.bind(bind_address("inproc"))
        await sock.connect(ep)
        await sock.wait_for_peers(1)
        assert sock.send_batch_nowait([[b"fresh"]]) == 1
        assert await partner.recv_multipart() == [b"fresh"]


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
async def test_send_batch_nowait_fills_the_pipe_then_returns_zero(transport: str) -> None:
    total = 40
    async with context() as ctx:
        pull, push = await connected(
            ctx,
            zmtp.PULL,
            zmtp.PUSH,
            transport,
            bind_opts={"rcvhwm": 3},
            connect_opts={"sndhwm": 4},
        )
        batch = [[b"m%d" % i, b"part"] for i in range(total)]
        # Nothing has had a chance to move yet: the first call fills the pipe (inproc
        # sums both sides' HWMs, as libzmq does), the second finds it full.
        room = 4 + 3 if transport == "inproc" else 4
        assert push.send_batch_nowait(batch, 0) == room
        if transport == "inproc":
            assert push.send_batch_nowait(batch, room) == 0
        else:
            # Over tcp the call hands what it queued to the kernel before it returns
            # when the connection's writer is idle, so the pipe has as much room
            # again; a writer that has not reached its wait yet (just after the
            # handshake) takes the queue itself, and the pipe is still full.
            more = push.send_batch_nowait(batch, room)
            assert more in (0, room)
            room += more
        received: list[list[bytes]] = []

        async def drain() -> None:
            while len(received) < total:
                received.extend(await pull.recv_many())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            # The rest as a device does it: in bulk while there is room, and a
            # blocking send of the next message when there is none.
            done = room
            while done < total:
                n = push.send_batch_nowait(batch, done)
                assert 0 <= n <= total - done
                if n == 0:
                    await push.send_multipart(batch[done])
                    n = 1
                done += n
        assert received == [[b"m%d" % i, b"part"] for i in range(total)]


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
async def test_send_batch_nowait_starts_at_start(transport: str) -> None:
    async with context() as ctx:
        pull, push = await connected(ctx, zmtp.PULL, zmtp.PUSH, transport)
        batch = [[b"%d" % i] for i in range(6)]
        assert push.send_batch_nowait(batch, 6) == 0
        assert push.send_batch_nowait(batch, 2) == 4
        got: list[list[bytes]] = []
        while len(got) < 4:
            got.extend(await pull.recv_many())
        assert got == [[b"2"], [b"3"], [b"4"], [b"5"]]


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
async def test_send_batch_nowait_on_req_and_rep_is_one_message_per_turn(transport: str) -> None:
    async with context() as ctx:
        rep, req = await connected(ctx, zmtp.REP, zmtp.REQ, transport)
        with pytest.raises(zmtp.InvalidStateError):
            rep.send_batch_nowait([[b"reply before request"]])
        requests = [[b"q1"], [b"q2"], [b"q3"]]
        assert req.send_batch_nowait(requests, 0) == 1
        with pytest.raises(zmtp.InvalidStateError):
            req.send_batch_nowait(requests, 1)  # until the reply is received
        assert await rep.recv_multipart() == [b"q1"]
        replies = [[b"a1"], [b"a1 again"]]
        assert rep.send_batch_nowait(replies, 0) == 1
        with pytest.raises(zmtp.InvalidStateError):
            rep.send_batch_nowait(replies, 1)
        assert await req.recv_multipart() == [b"a1"]
        # The cycle goes on from where the batch stopped.
        assert req.send_batch_nowait(requests, 1) == 1
        assert await rep.recv_multipart() == [b"q2"]
        assert rep.send_batch_nowait([[b"a2"]]) == 1
        assert await req.recv_multipart() == [b"a2"]


async def test_send_batch_nowait_on_pub_counts_dropped_messages() -> None:
    """A PUB never blocks (RFC 29): what no subscriber takes is dropped, and counted."""
    async with context() as ctx:
        pub = ctx.socket(zmtp.PUB)
        assert pub.send_batch_nowait([[b"a"], [b"b"], [b"c"]], 1) == 2


async def test_send_batch_nowait_on_router_drops_or_refuses_the_unroutable() -> None:
    async with context() as ctx:
        router, dealer = await connected(
            ctx, zmtp.ROUTER, zmtp.DEALER, "inproc", connect_opts={"routing_id": b"d"}
        )
        # Without router_mandatory an unroutable message is dropped, and counted.
        assert router.send_batch_nowait([[b"nobody", b"0"], [b"d", b"1"]]) == 2
        assert await dealer.recv_multipart() == [b"1"]
        router.router_mandatory = True
        with pytest.raises(zmtp.UnroutableError):
            router.send_batch_nowait([[b"nobody", b"2"], [b"d", b"3"]])
        assert router.send_batch_nowait([[b"d", b"4"]]) == 1
        assert await dealer.recv_multipart() == [b"4"]  # nothing was queued before it


async def test_send_batch_nowait_on_router_mandatory_counts_what_it_queued() -> None:
    batch = [[b"d", b"1"], [b"nobody", b"2"], [b"d", b"3"]]
    async with context() as ctx:
        router, dealer = await connected(
            ctx,
            zmtp.ROUTER,
            zmtp.DEALER,
            "inproc",
            bind_opts={"router_mandatory": True},
            connect_opts={"routing_id": b"d"},
        )
        try:
            first: int | str = router.send_batch_nowait(batch)
        except zmtp.UnroutableError:
            first = "UnroutableError"
        try:
            second: int | str = router.send_batch_nowait(batch, 1)
        except zmtp.UnroutableError:
            second = "UnroutableError"
        received = await dealer.recv_multipart()
    assert received == [b"1"]  # the first message was queued either way
    assert (first, second) == (1, "UnroutableError")


async def test_send_batch_nowait_on_a_closed_socket() -> None:
    async with context() as ctx:
        push = ctx.socket(zmtp.PUSH)
        await push.aclose()
        with pytest.raises(trio.ClosedResourceError):
            push.send_batch_nowait([[b"x"]])


# ----------------------------------------------------------------------- attach_stream


async def next_event(mon: zmtp.Monitor, kind: zmtp.EventType) -> zmtp.SocketEvent:
    async for event in mon:
        if event.type is kind:
            return event
    raise AssertionError(f"monitor ended before {kind}")


async def attached(
    ctx: zmtp.Context, left_type: zmtp.SocketType, right_type: zmtp.SocketType, **left_opts: Any
) -> tuple[Socket, Socket]:
    """Two of our sockets speaking ZMTP over the two halves of a memory stream."""
    left_stream, right_stream = trio.testing.memory_stream_pair()
    left = ctx.socket(left_type, **left_opts)
    right = ctx.socket(right_type)
    left.attach_stream(left_stream, "mem://left")
    right.attach_stream(right_stream, "mem://right")
    await left.wait_for_peers(1)
    await right.wait_for_peers(1)
    return left, right


async def test_attach_stream_carries_messages_both_ways() -> None:
    big = bytes(range(256)) * 1024  # 256 KiB: the large-body path too
    async with context() as ctx:
        dealer, router = await attached(ctx, zmtp.DEALER, zmtp.ROUTER, routing_id=b"me")
        await dealer.send_multipart([b"hello", big])
        assert await router.recv_multipart() == [b"me", b"hello", big]
        await router.send_multipart([b"me", b"back", big])
        assert await dealer.recv_multipart() == [b"back", big]
        assert dealer.send_batch_nowait([[b"%d" % i] for i in range(5)]) == 5
        got: list[list[bytes]] = []
        while len(got) < 5:
            got.extend(await router.recv_many())
        assert got == [[b"me", b"%d" % i] for i in range(5)]


async def test_attach_stream_subscriptions_cross_it() -> None:
    async with context() as ctx:
        sub, pub = await attached(ctx, zmtp.SUB, zmtp.XPUB)
        sub.subscribe(b"news")
        assert await pub.recv_multipart() == [b"\x01news"]
        await pub.send_multipart([b"sport", b"x"])
        await pub.send_multipart([b"news", b"y"])
        assert await sub.recv_multipart() == [b"news", b"y"]


async def test_unbind_of_the_name_ends_the_stream() -> None:
    async with context() as ctx:
        left, right = await attached(ctx, zmtp.PAIR, zmtp.PAIR)
        mon = right.monitor()
        await left.unbind("mem://left")
        assert left.peers == []
        with pytest.raises(trio.WouldBlock):
            left.send_multipart_nowait([b"nobody there"])
        await next_event(mon, zmtp.EventType.DISCONNECTED)  # the other half saw the end
        assert right.peers == []
        with pytest.raises(ValueError):
            await left.unbind("mem://left")


async def test_unbind_ends_every_stream_attached_under_the_name() -> None:
    async with context() as ctx:
        hub = ctx.socket(zmtp.PULL)
        pushes = []
        mons = []
        for _ in range(2):
            ours, theirs = trio.testing.memory_stream_pair()
            push = ctx.socket(zmtp.PUSH)
            push.attach_stream(theirs, "mem://out")
            hub.attach_stream(ours, "mem://hub")
            mons.append(push.monitor())
            pushes.append(push)
        await hub.wait_for_peers(2)
        await hub.unbind("mem://hub")
        assert hub.peers == []
        for push, mon in zip(pushes, mons, strict=True):
            await next_event(mon, zmtp.EventType.DISCONNECTED)
            assert push.peers == []


async def test_closing_the_socket_ends_the_stream() -> None:
    async with context() as ctx:
        left, right = await attached(ctx, zmtp.PAIR, zmtp.PAIR)
        mon = right.monitor()
        await left.send_multipart([b"last words"])
        await left.aclose()
        assert await right.recv_multipart() == [b"last words"]  # linger delivered it
        await next_event(mon, zmtp.EventType.DISCONNECTED)
        assert right.peers == []


async def test_attach_stream_after_close_raises() -> None:
    async with context() as ctx:
        sock = ctx.socket(zmtp.PAIR)
        await sock.aclose()
        ours, _ = trio.testing.memory_stream_pair()
        with pytest.raises(trio.ClosedResourceError):
            sock.attach_stream(ours, "mem://late")
