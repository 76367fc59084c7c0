"""Our sockets under CURVE against libzmq 4.3.5's (through pyzmq), at the socket level.

Whichever side is the CURVE server (ours, with a libzmq client, and the reverse),
whichever side binds, over tcp and ipc:

* every compatible pair of socket types exchanges a message each way where its
  pattern allows (REQ/REP, REQ/ROUTER, DEALER/REP, DEALER/ROUTER, DEALER/DEALER,
  PUSH/PULL, PUB/SUB, XPUB/XSUB, PAIR/PAIR, each with either side ours): the
  Identity and Socket-Type properties travel sealed in INITIATE/READY, the parts in
  MESSAGE boxes;
* publish/subscribe filtering: subscriptions travel as sealed inner commands
  (libzmq's SUB, our SUB) and as sealed data (XSUB), and only what matches arrives;
* heartbeats on both sides: a connection left idle for many intervals stays up
  (a relay counts the sealed PING/PONG MESSAGEs going each way; no plaintext
  command is ever on the wire) and carries a round trip afterwards;
* 4 MiB messages both ways.

The sans-IO side of the same (the Connection's sealing, split invariance, tampering)
is ``tests/test_connection_security.py``; the mechanism objects alone against libzmq
are ``interop/test_curve_interop.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import trio

import zmtp
from zmtp.sockets import Socket

from ._helpers import DIRECTIONS, TEST_TIMEOUT, TRANSPORTS, Endpoint
from ._security_helpers import (
    CurveKeys,
    FrameRelay,
    ZmqMonitor,
    recv_poking,
    sync_ours_to_theirs,
    sync_theirs_to_ours,
)
from ._sock_helpers import BIG, Lab, Ours, Theirs, bind_ours, options

zmq = pytest.importorskip("zmq")
pytest.importorskip("nacl")

pytestmark = pytest.mark.interop

_S = zmtp.SocketType
E = zmtp.EventType

#: Which side is the CURVE server.
ROLES = ["ours_server", "ours_client"]

#: (ours, theirs): every compatible pair, each way round.
PAIRS: list[tuple[zmtp.SocketType, zmtp.SocketType]] = [
    (_S.REQ, _S.REP),
    (_S.REP, _S.REQ),
    (_S.REQ, _S.ROUTER),
    (_S.ROUTER, _S.REQ),
    (_S.DEALER, _S.REP),
    (_S.REP, _S.DEALER),
    (_S.DEALER, _S.ROUTER),
    (_S.ROUTER, _S.DEALER),
    (_S.DEALER, _S.DEALER),
    (_S.PUSH, _S.PULL),
    (_S.PULL, _S.PUSH),
    (_S.PUB, _S.SUB),
    (_S.SUB, _S.PUB),
    (_S.XPUB, _S.XSUB),
    (_S.XSUB, _S.XPUB),
    (_S.PAIR, _S.PAIR),
]

_ID_TYPES = (_S.REQ, _S.DEALER, _S.ROUTER)
_PUBLISHERS = (_S.PUB, _S.XPUB)
_SUBSCRIBERS = (_S.SUB, _S.XSUB)


def pair_id(pair: tuple[zmtp.SocketType, zmtp.SocketType]) -> str:
    return f"{pair[0].name}-{pair[1].name}"


async def curve_link(
    lab: Lab,
    our_type: zmtp.SocketType,
    their_type: zmtp.SocketType,
    role: str,
    *,
    transport: str,
    direction: str,
) -> tuple[Socket, Theirs]:
    """Our socket and a libzmq one, CURVE in ``role``, linked; our handshake done."""
    keys = CurveKeys()
    ours_server = role == "ours_server"
    our_opts = keys.ours(ours_server)
    their_opts = keys.theirs(not ours_server)
    if our_type in _ID_TYPES:
        our_opts["routing_id"] = b"ours"
    if their_type in _ID_TYPES:
        their_opts["ROUTING_ID"] = b"theirs"
    ours = lab.ctx.socket(our_type, **our_opts)
    theirs = lab.theirs(their_type, **options(their_type, **their_opts))
    await lab.link(ours, theirs, transport, direction)
    await ours.wait_for_peers(1)
    return ours, theirs


# ----------------------------------------------------------------------- the matrix


REQUEST = [b"request", b"", b"r" * 300]
REPLY = [b"reply", b"", b"p" * 70]


def _initiator_is_ours(ours: zmtp.SocketType, theirs: zmtp.SocketType) -> bool:
    if ours in (_S.PULL, _S.REP):
        return False
    return not (ours is _S.ROUTER and theirs is not _S.ROUTER)


async def request_reply(a: Ours | Theirs, b: Ours | Theirs, a_id: bytes, b_id: bytes) -> None:
    """``a`` sends REQUEST to ``b``; ``b`` replies where the pattern allows, with the
    envelopes each pattern puts on the wire (RFC 28)."""
    if a.type is _S.DEALER and b.type is _S.REP:
        await a.send([b"", *REQUEST])
    else:
        await a.send(REQUEST)
    got = await b.recv()
    envelope = [a_id, b""] if a.type is _S.REQ else [a_id]
    assert got == ([*envelope, *REQUEST] if b.type is _S.ROUTER else REQUEST)
    if b.type is _S.PULL:
        return
    if b.type is _S.ROUTER:
        if isinstance(b, Theirs):
            await b.send_routed([*envelope, *REPLY])
        else:
            await b.send([*envelope, *REPLY])
    else:
        await b.send(REPLY)
    got = await a.recv()
    assert got == ([b"", *REPLY] if a.type is _S.DEALER and b.type is _S.REP else REPLY)


async def publish_subscribe(ours: Socket, theirs: Theirs) -> None:
    """A subscription goes up and a message comes down (and, between XPUB and XSUB,
    upstream data goes up too)."""
    our_type = ours.socket_type
    if our_type is _S.PUB:
        theirs.sock.setsockopt(zmq.SUBSCRIBE, b"t")
        await sync_ours_to_theirs(ours, theirs, b"t-probe")
        await ours.send_multipart([b"t", b"down"])
        assert await theirs.recv() == [b"t", b"down"]
    elif our_type is _S.SUB:
        ours.subscribe(b"t")  # type: ignore[attr-defined]
        await sync_theirs_to_ours(theirs, ours, b"t-probe")
        await theirs.send([b"t", b"down"])
        assert await ours.recv_multipart() == [b"t", b"down"]
    elif our_type is _S.XPUB:
        await theirs.send([b"\x01t"])
        assert await recv_poking(ours, theirs) == [b"\x01t"]
        await ours.send_multipart([b"t", b"down"])
        assert await theirs.recv() == [b"t", b"down"]
        await theirs.send([b"up", b"data"])
        assert await ours.recv_multipart() == [b"up", b"data"]
    else:
        await ours.send_multipart([b"\x01t"])
        assert await theirs.recv() == [b"\x01t"]
        await theirs.send([b"t", b"down"])
        assert await ours.recv_multipart() == [b"t", b"down"]
        await ours.send_multipart([b"up", b"data"])
        assert await theirs.recv() == [b"up", b"data"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
async def test_every_pair_under_curve(
    pair: tuple[zmtp.SocketType, zmtp.SocketType],
    role: str,
    direction: str,
    transport: str,
    lab_factory: Callable[[zmtp.Context], Lab],
) -> None:
    our_type, their_type = pair
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            ours, theirs = await curve_link(
                lab, our_type, their_type, role, transport=transport, direction=direction
            )
            mon_ours = ours.monitor()
            if our_type in _PUBLISHERS or our_type in _SUBSCRIBERS:
                await publish_subscribe(ours, theirs)
            elif _initiator_is_ours(our_type, their_type):
                await request_reply(Ours(ours), theirs, b"ours", b"theirs")
            else:
                await request_reply(theirs, Ours(ours), b"theirs", b"ours")
            # One connection all along: nothing failed and was retried behind our back.
            (peer,) = ours.peers
            assert peer.connected
            assert peer.socket_type is their_type
            if their_type in _ID_TYPES:
                assert peer.identity == b"theirs"
            with pytest.raises(trio.WouldBlock):
                mon_ours.receive_nowait()


# ----------------------------------------------------------------------- pub/sub filtering


#: What the publisher sends, and what matches the subscriptions "a" and "c".
STREAM = [[b"a1", b"x"], [b"b1"], [b"c"], [b"ab", b"", b"y"], [b"ca"], [b"\x00a"], [b"A"]]
MATCH_A_C = [[b"a1", b"x"], [b"c"], [b"ab", b"", b"y"], [b"ca"]]
MATCH_C = [[b"c"], [b"ca"]]

#: (transport, direction): both transports and both directions, without the product.
LINKS = [("tcp", "we_bind"), ("ipc", "they_bind")]


async def _their_recv_until(theirs: Theirs, marker: bytes) -> list[list[bytes]]:
    def recv() -> list[list[bytes]]:
        got = []
        while (msg := theirs.sock.recv_multipart())[0] != marker:
            got.append(msg)
        return got

    return await trio.to_thread.run_sync(recv)


async def _our_recv_until(sock: Socket, marker: bytes) -> list[list[bytes]]:
    got = []
    while (msg := await sock.recv_multipart())[0] != marker:
        got.append(msg)
    return got


@pytest.mark.parametrize(("transport", "direction"), LINKS)
@pytest.mark.parametrize("role", ROLES)
async def test_our_xpub_filters_for_libzmq_sub(
    role: str, transport: str, direction: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    """libzmq's SUB subscribes and cancels with SUBSCRIBE/CANCEL commands sealed in
    MESSAGE boxes (inner COMMAND flag): our XPUB reads each as ``01``/``00`` + topic,
    and sends exactly what matches."""
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            xpub, sub = await curve_link(
                lab, _S.XPUB, _S.SUB, role, transport=transport, direction=direction
            )
            for topic in (b"a", b"c", b"end"):
                sub.sock.setsockopt(zmq.SUBSCRIBE, topic)
            notices = [await recv_poking(xpub, sub) for _ in range(3)]
            assert notices == [[b"\x01a"], [b"\x01c"], [b"\x01end"]]
            for msg in STREAM:
                await xpub.send_multipart(msg)
            await xpub.send_multipart([b"end"])
            assert await _their_recv_until(sub, b"end") == MATCH_A_C
            sub.sock.setsockopt(zmq.UNSUBSCRIBE, b"a")
            assert await recv_poking(xpub, sub) == [b"\x00a"]
            for msg in STREAM:
                await xpub.send_multipart(msg)
            await xpub.send_multipart([b"end"])
            assert await _their_recv_until(sub, b"end") == MATCH_C


@pytest.mark.parametrize(("transport", "direction"), LINKS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("their_type", [_S.SUB, _S.XSUB])
async def test_our_pub_filters_for_libzmq_subscribers(
    their_type: zmtp.SocketType,
    role: str,
    transport: str,
    direction: str,
    lab_factory: Callable[[zmtp.Context], Lab],
) -> None:
    """Our PUB, told only by the sealed subscriptions (commands from a SUB, ``01`` data
    from an XSUB, which does not filter on its side: anything extra would show)."""
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            pub, sub = await curve_link(
                lab, _S.PUB, their_type, role, transport=transport, direction=direction
            )
            for topic in (b"a", b"c", b"probe"):
                if their_type is _S.SUB:
                    sub.sock.setsockopt(zmq.SUBSCRIBE, topic)
                else:
                    await sub.send([b"\x01" + topic])
            await sync_ours_to_theirs(pub, sub, b"probe")
            for msg in STREAM:
                await pub.send_multipart(msg)
            await pub.send_multipart([b"probe-stop"])
            assert await _their_recv_until(sub, b"probe-stop") == MATCH_A_C


@pytest.mark.parametrize(("transport", "direction"), LINKS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("our_type", [_S.SUB, _S.XSUB])
async def test_libzmq_publisher_filters_for_our_subscribers(
    our_type: zmtp.SocketType,
    role: str,
    transport: str,
    direction: str,
    lab_factory: Callable[[zmtp.Context], Lab],
) -> None:
    """Our SUB's (and XSUB's) subscriptions reach libzmq's XPUB as sealed SUBSCRIBE and
    CANCEL commands; libzmq's publisher then sends only what matches (our XSUB does
    not filter, so it shows the publisher's filtering alone)."""
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            sub, xpub = await curve_link(
                lab, our_type, _S.XPUB, role, transport=transport, direction=direction
            )

            async def subscribe(topic: bytes, on: bool = True) -> None:
                if our_type is _S.SUB:
                    if on:
                        sub.subscribe(topic)  # type: ignore[attr-defined]
                    else:
                        sub.unsubscribe(topic)  # type: ignore[attr-defined]
                else:
                    await sub.send_multipart([(b"\x01" if on else b"\x00") + topic])

            for topic in (b"a", b"c", b"end"):
                await subscribe(topic)
            assert await xpub.recv_n(3) == [[b"\x01a"], [b"\x01c"], [b"\x01end"]]

            def publish() -> None:
                for msg in [*STREAM, [b"end"]]:
                    xpub.sock.send_multipart(msg)

            await trio.to_thread.run_sync(publish)
            assert await _our_recv_until(sub, b"end") == MATCH_A_C
            await subscribe(b"a", on=False)
            assert await xpub.recv() == [b"\x00a"]
            await trio.to_thread.run_sync(publish)
            assert await _our_recv_until(sub, b"end") == MATCH_C


# ----------------------------------------------------------------------- heartbeats


#: Heartbeat interval of the heartbeat tests, in ms.
IVL = 50


@pytest.mark.parametrize(("transport", "direction"), LINKS)
@pytest.mark.parametrize("role", ROLES)
async def test_heartbeats_keep_an_idle_curve_connection(
    role: str, transport: str, direction: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    """Both sides PING every 50 ms and drop a peer silent for 6 intervals: sealed
    PINGs and PONGs go both ways (the relay sees MESSAGEs and no clear command while
    the application is idle), neither side drops the connection, and a round trip
    works afterwards on the same connection."""
    keys = CurveKeys()
    ours_server = role == "ours_server"
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx, trio.open_nursery() as nursery:
            lab = lab_factory(ctx)
            ours = ctx.socket(
                _S.DEALER,
                heartbeat_ivl=IVL,
                heartbeat_timeout=6 * IVL,
                heartbeat_ttl=30 * IVL,
                routing_id=b"ours",
                **keys.ours(ours_server),
            )
            mon = ours.monitor()
            theirs = lab.theirs(
                _S.ROUTER,
                HEARTBEAT_IVL=IVL,
                HEARTBEAT_TIMEOUT=6 * IVL,
                HEARTBEAT_TTL=30 * IVL,
                ROUTER_MANDATORY=1,
                **keys.theirs(not ours_server),
            )
            zmon = ZmqMonitor(lab.zmq_socket, theirs.sock)
            if direction == "we_bind":
                target = Endpoint.from_zmq(await bind_ours(ours, transport, lab.ipc_dir))
                relay = FrameRelay(nursery, target, lab.ipc_dir)
                theirs.sock.connect(await relay.start(transport))
            else:
                target = lab.bind_zmq(theirs.sock, transport)
                relay = FrameRelay(nursery, target, lab.ipc_dir)
                await ours.connect(await relay.start(transport))
            await ours.wait_for_peers(1)
            (link,) = relay.links
            # Idle: only heartbeats move, sealed.  Twelve each way is several intervals.
            while link.messages("up") < 12 or link.messages("down") < 12:
                await trio.sleep(IVL / 1000)
            wire = b"".join(body for _, body in link.up + link.down)
            assert b"PING" not in wire
            assert b"PONG" not in wire
            # Every frame after the handshake is a MESSAGE (commands are sealed too).
            assert all(body.startswith(b"\x07MESSAGE") for _, body in link.up[2:])
            assert all(body.startswith(b"\x07MESSAGE") for _, body in link.down[2:])
            await ours.send_multipart([b"after", b"idle"])
            assert await theirs.recv() == [b"ours", b"after", b"idle"]
            await theirs.send_routed([b"ours", b"still", b"here"])
            assert await ours.recv_multipart() == [b"still", b"here"]
            assert len(relay.links) == 1
            kinds = []
            while True:
                try:
                    kinds.append(mon.receive_nowait().type)
                except trio.WouldBlock:
                    break
            assert E.DISCONNECTED not in kinds
            assert zmq.EVENT_DISCONNECTED not in [ev["event"] for ev in zmon.pending()]
            await ctx.aclose(linger=0)
            nursery.cancel_scope.cancel()


# ----------------------------------------------------------------------- large messages


def _stream() -> list[list[bytes]]:
    """A stream that takes every sealed path: a run of equal 1 KiB messages (sealed
    and opened as runs of long frames), 64 KiB and 70,000-octet parts (read in place
    and through the stream buffer, sealed into pooled memory), parts above the
    in-place threshold, and small ones between them."""
    run = [[os.urandom(1024)] for _ in range(300)]
    mid = [[os.urandom(65_536)] if i % 2 else [b"m", os.urandom(70_000)] for i in range(60)]
    big = [[os.urandom(140_000), b"t"] for _ in range(6)]
    small = [[b"s" * 20] for _ in range(9)]
    return run + mid + small + big + run[:50]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_streams_of_mid_sized_messages_both_ways(
    transport: str, direction: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    """Streams of many messages between 1 KiB and 140 KB, each way, with libzmq:
    every message arrives whole and in order (our batch send, their receive, then
    the reverse)."""
    sent = _stream()
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            ours, theirs = await curve_link(
                lab, _S.DEALER, _S.DEALER, "ours_server", transport=transport, direction=direction
            )
            await ours.send_many(sent)
            assert await theirs.recv_n(len(sent)) == sent
            back = sent[::-1]

            def send_all() -> None:
                for msg in back:
                    theirs.sock.send_multipart(msg)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, send_all)
                got = [await ours.recv_multipart() for _ in back]
            assert got == back


@pytest.mark.parametrize(("transport", "direction"), LINKS)
@pytest.mark.parametrize("role", ROLES)
async def test_four_mib_messages_both_ways(
    role: str, transport: str, direction: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    """A 4 MiB part each way, between small ones: one MESSAGE box each, opened whole."""
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            ours, theirs = await curve_link(
                lab, _S.DEALER, _S.DEALER, role, transport=transport, direction=direction
            )
            await ours.send_multipart([b"head", BIG, b""])
            await ours.send_multipart([b"small"])
            assert await theirs.recv_n(2) == [[b"head", BIG, b""], [b"small"]]
            await theirs.send([BIG[::-1], b"tail"])
            await theirs.send([b"small"])
            big = await ours.recv_message()
            assert big.parts == [BIG[::-1], b"tail"]
            assert await ours.recv_multipart() == [b"small"]
            # No ZAP handler: CURVE lets any client key in, and names no user.
            assert big.peer.mechanism == "CURVE"
            assert big.peer.user_id == b""
            assert big.peer.get("User-Id") is None
            assert big.peer.get("Socket-Type") == "DEALER"
