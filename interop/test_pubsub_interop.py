"""Publish/subscribe between our sockets and libzmq 4.3.5's (through pyzmq).

Both directions of pub/sub, both directions of connection, tcp and ipc:

* our PUB/XPUB serving libzmq SUB (SUBSCRIBE/CANCEL commands) and XSUB (it forwards
  its application's ``01topic`` as data frames, even on ZMTP 3.1) subscribers;
* libzmq PUB/XPUB serving our SUB and XSUB (our SUBSCRIBE/CANCEL commands);
* exact filtering (checked through an XSUB, which does not filter on its side),
  unsubscribing, counted subscriptions, welcome messages, verbose and manual XPUB;
* our subscriptions replayed when a libzmq publisher restarts, and nothing lost once
  they are in;
* a slow libzmq subscriber losing messages at the high-water mark while a fast one
  gets every message;
* libzmq understanding ``01``/``00`` data frames from a ZMTP 3.0 peer, which is what
  our SUB sends to one.

Synchronisation: a publisher drops what it sends before a subscription arrives (the
slow joiner, specs/libzmq-behaviour.md §7.14), so every test first waits for the subscriptions: an
XPUB (ours or libzmq's) receives them as ``01topic``; with a plain PUB, :func:`sync`
publishes probes until one gets through.  pyzmq calls that may block run in a worker
thread with RCVTIMEO/SNDTIMEO set by the ``zmq_socket`` fixture.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

import zmtp
from zmtp.protocol.commands import encode_ready
from zmtp.protocol.greeting import greeting_head, greeting_tail
from zmtp.sockets import Socket

from ._helpers import DIRECTIONS, TEST_TIMEOUT, TRANSPORTS
from ._sock_helpers import QUIET, Lab, Theirs, rebind_zmq, wait_event
from ._wire_helpers import open_stream

zmq = pytest.importorskip("zmq")

pytestmark = pytest.mark.interop

_S = zmtp.SocketType


async def their_recv_all(theirs: Theirs, marker: bytes) -> list[list[bytes]]:
    """Receive until a message whose first frame is ``marker``; return what came before."""

    def recv() -> list[list[bytes]]:
        got = []
        while True:
            msg = theirs.sock.recv_multipart()
            if msg[0] == marker:
                return got
            got.append(msg)

    return await trio.to_thread.run_sync(recv)


async def our_recv_all(sock: Socket, marker: bytes) -> list[list[bytes]]:
    got = []
    while True:
        msg = await sock.recv_multipart()
        if msg[0] == marker:
            return got
        got.append(msg)


async def recv_poking(ours: Socket, theirs: Theirs) -> list[bytes]:
    """Our next message, while making libzmq act on its pending commands.

    A libzmq SUB or XSUB sends its subscriptions to a new connection only when its
    application next enters the socket (specs/libzmq-behaviour.md §3.1), so a test waiting for them
    must touch the libzmq socket now and then, as an application in recv() would.
    """
    while True:
        with trio.move_on_after(0.02):
            return await ours.recv_multipart()
        theirs.sock.getsockopt(zmq.EVENTS)


async def sync_ours_to_theirs(pub: Socket, sub: Theirs, probe: bytes) -> None:
    """Publish ``probe`` from our PUB until their SUB has it; drain later probes."""
    while True:
        await pub.send_multipart([probe])
        if await trio.to_thread.run_sync(sub.sock.poll, 20):
            assert sub.sock.recv_multipart() == [probe]
            break
    await pub.send_multipart([probe + b"-end"])
    while (await sub.recv())[0] != probe + b"-end":
        pass


async def sync_theirs_to_ours(pub: Theirs, sub: Socket, probe: bytes) -> None:
    """Publish ``probe`` from their PUB until our SUB has it; drain later probes."""
    while True:
        await pub.send([probe])
        with trio.move_on_after(0.02):
            assert await sub.recv_multipart() == [probe]
            break
    await pub.send([probe + b"-end"])
    while (await sub.recv_multipart())[0] != probe + b"-end":
        pass


async def cancelled_ours_to_theirs(pub: Socket, sub: Theirs, topic: bytes) -> None:
    """Wait until our PUB has acted on their cancel of ``topic``: a PUB says nothing,
    so send rounds of ``topic`` + a probe until a round arrives without ``topic``."""
    while True:
        await pub.send_multipart([topic + b"-probe"])
        await pub.send_multipart([b"probe"])
        if await their_recv_all(sub, b"probe") == []:
            return


async def cancelled_theirs_to_ours(pub: Theirs, sub: Socket, topic: bytes) -> None:
    """The same for our cancel reaching their PUB (which acts on it only when its
    application next enters the socket)."""
    while True:
        await pub.send([topic + b"-probe"])
        await pub.send([b"probe"])
        if await our_recv_all(sub, b"probe") == []:
            return


#: What our publisher sends in the filtering tests, and what matches "a" and "c".
STREAM = [[b"a1", b"x"], [b"b1"], [b"c"], [b"ab", b"", b"y"], [b"ca"], [b"\x00a"], [b"A"]]
MATCH_A_C = [[b"a1", b"x"], [b"c"], [b"ab", b"", b"y"], [b"ca"]]
MATCH_C = [[b"c"], [b"ca"]]


# ----------------------------------------------------------------------- our publishers


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("our_type", [_S.PUB, _S.XPUB])
@pytest.mark.parametrize("their_type", [_S.SUB, _S.XSUB])
async def test_our_publisher_filters_for_libzmq_subscribers(
    our_type: zmtp.SocketType,
    their_type: zmtp.SocketType,
    direction: str,
    transport: str,
    lab_factory: Callable[[zmtp.Context], Lab],
) -> None:
    """A libzmq SUB subscribes with commands, a libzmq XSUB with ``01`` data frames; our
    publisher understands both, and sends exactly what matches (an XSUB would show
    anything extra: it does not filter)."""
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            pub = ctx.socket(our_type)
            theirs = lab.theirs(their_type)
            await lab.link(pub, theirs, transport, direction)

            async def subscribe(topic: bytes, on: bool = True) -> None:
                if their_type is _S.SUB:
                    theirs.sock.setsockopt(zmq.SUBSCRIBE if on else zmq.UNSUBSCRIBE, topic)
                else:
                    await theirs.send([(b"\x01" if on else b"\x00") + topic])

            for topic in (b"a", b"c", b"end"):
                await subscribe(topic)
            if our_type is _S.XPUB:
                notices = [await recv_poking(pub, theirs) for _ in range(3)]
                assert notices == [[b"\x01a"], [b"\x01c"], [b"\x01end"]]
            else:
                await subscribe(b"probe")
                await sync_ours_to_theirs(pub, theirs, b"probe")
            for msg in STREAM:
                await pub.send_multipart(msg)
            await pub.send_multipart([b"end"])
            assert await their_recv_all(theirs, b"end") == MATCH_A_C

            await subscribe(b"a", on=False)
            if our_type is _S.XPUB:
                assert await pub.recv_multipart() == [b"\x00a"]
            else:
                await cancelled_ours_to_theirs(pub, theirs, b"a")
            for msg in STREAM:
                await pub.send_multipart(msg)
            await pub.send_multipart([b"end"])
            assert await their_recv_all(theirs, b"end") == MATCH_C


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_libzmq_sub_counted_subscriptions(
    transport: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    """libzmq's SUB sends SUBSCRIBE on every subscribe but CANCEL only on the last
    unsubscribe, so our XPUB must not count per peer (specs/libzmq-behaviour.md §3.1)."""
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            xpub = ctx.socket(zmtp.XPUB, xpub_verbose=True)
            sub = lab.theirs(_S.SUB)
            await lab.link(xpub, sub, transport, "we_bind")
            sub.sock.setsockopt(zmq.SUBSCRIBE, b"a")
            sub.sock.setsockopt(zmq.SUBSCRIBE, b"a")
            assert [await xpub.recv_multipart() for _ in range(2)] == [[b"\x01a"]] * 2
            sub.sock.setsockopt(zmq.UNSUBSCRIBE, b"a")  # one reference left: no CANCEL
            sub.sock.setsockopt(zmq.SUBSCRIBE, b"z")
            assert await xpub.recv_multipart() == [b"\x01z"]
            await xpub.send_multipart([b"a-still"])
            assert await sub.recv() == [b"a-still"]
            sub.sock.setsockopt(zmq.UNSUBSCRIBE, b"a")
            assert await xpub.recv_multipart() == [b"\x00a"]
            await xpub.send_multipart([b"a-gone"])
            await xpub.send_multipart([b"z-here"])
            assert await sub.recv() == [b"z-here"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_our_xpub_modes_with_libzmq_subscribers(
    transport: str, direction: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    """Default, verbose and verboser notices; cancels when a subscriber leaves."""
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            for option in ("", "xpub_verbose", "xpub_verboser"):
                xpub = ctx.socket(zmtp.XPUB, **({option: True} if option else {}))
                s1, s2 = lab.theirs(_S.SUB), lab.theirs(_S.SUB)
                ep = await lab.link(xpub, s1, transport, direction)
                if direction == "we_bind":
                    s2.sock.connect(ep)
                else:
                    lab.bind_zmq(s2.sock, transport)
                    await xpub.connect(s2.sock.getsockopt_string(zmq.LAST_ENDPOINT))
                s1.sock.setsockopt(zmq.SUBSCRIBE, b"t")
                assert await recv_poking(xpub, s1) == [b"\x01t"]
                s2.sock.setsockopt(zmq.SUBSCRIBE, b"t")  # not new
                s2.sock.setsockopt(zmq.SUBSCRIBE, b"m")  # a marker
                expected = [[b"\x01t"]] if option else []
                expected.append([b"\x01m"])
                # In either order: if the connection is not up yet, libzmq sends its
                # cached subscriptions in its own order when it is.
                got = [await recv_poking(xpub, s2) for _ in expected]
                assert sorted(got) == sorted(expected)
                s1.sock.setsockopt(zmq.UNSUBSCRIBE, b"t")  # s2 still wants it
                s1.sock.setsockopt(zmq.SUBSCRIBE, b"n")
                expected = [[b"\x00t"]] if option == "xpub_verboser" else []
                expected.append([b"\x01n"])
                assert [await xpub.recv_multipart() for _ in expected] == expected
                # s2 leaves: its topics nobody else wants are cancelled ("n" is s1's).
                s2.sock.close(linger=0)
                got = {tuple(await xpub.recv_multipart()) for _ in range(2)}
                assert got == {(b"\x00t",), (b"\x00m",)}
                await xpub.aclose()
                s1.sock.close(linger=0)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_our_xpub_manual_with_libzmq_sub(
    transport: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            xpub = ctx.socket(zmtp.XPUB, xpub_manual=True)
            xsub = lab.theirs(_S.XSUB)
            await lab.link(xpub, xsub, transport, "we_bind")
            await xsub.send([b"\x01news"])
            assert await xpub.recv_multipart() == [b"\x01news"]
            await xpub.send_multipart([b"news-not-yet"])  # not subscribed until we say
            # The application decides what this peer gets: not what it asked for.
            xpub.subscribe(b"sport")  # type: ignore[attr-defined]
            xpub.subscribe(b"end")  # type: ignore[attr-defined]
            for msg in ([b"news-1"], [b"sport-1"], [b"end"]):
                await xpub.send_multipart(msg)
            assert await their_recv_all(xsub, b"end") == [[b"sport-1"]]
            xpub.unsubscribe(b"sport")  # type: ignore[attr-defined]
            await xpub.send_multipart([b"sport-2"])
            await xpub.send_multipart([b"end"])
            assert await their_recv_all(xsub, b"end") == []


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_our_welcome_message(
    transport: str, direction: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            xpub = ctx.socket(zmtp.XPUB, xpub_welcome_msg=b"WELCOME")
            sub = lab.theirs(_S.SUB)
            sub.sock.setsockopt(zmq.SUBSCRIBE, b"WEL")
            await lab.link(xpub, sub, transport, direction)
            assert await sub.recv() == [b"WELCOME"]
            assert await recv_poking(xpub, sub) == [b"\x01WEL"]


async def test_slow_libzmq_subscriber_misses_messages_fast_one_gets_all(
    lab_factory: Callable[[zmtp.Context], Lab],
) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            xpub = ctx.socket(zmtp.XPUB, sndhwm=10, xpub_verbose=True)
            ep = await xpub.bind("tcp://127.0.0.1:0")
            slow = lab.theirs(_S.SUB, RCVHWM=10)
            fast = lab.theirs(_S.SUB)
            for sub in (slow, fast):
                sub.sock.setsockopt(zmq.SUBSCRIBE, b"")
                sub.sock.connect(ep)
                assert await xpub.recv_multipart() == [b"\x01"]
            slow_queue = xpub.peers[0].out  # the first to subscribe
            payload = b"x" * 65536
            # In step with the fast one, until the slow one's queue with us is full
            # (so are the socket buffers on the way), then 20 more it must miss.
            sent = 0
            extra = 20
            while extra:
                if slow_queue.full:
                    extra -= 1
                await xpub.send_multipart([b"%d" % sent, payload])
                assert (await fast.recv())[0] == b"%d" % sent
                sent += 1

            def drain() -> list[int]:
                got = []
                while slow.sock.poll(int(QUIET * 1000)):
                    got.append(int(slow.sock.recv_multipart()[0]))
                return got

            got = await trio.to_thread.run_sync(drain)
            assert got[:10] == list(range(10))
            assert got == sorted(got)
            assert len(got) <= sent - 20


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_our_xpub_nodrop_waits_for_a_slow_libzmq_subscriber(
    transport: str, direction: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    # With xpub_nodrop a full subscriber makes the publisher wait (send_multipart_nowait
    # raises WouldBlock) instead of dropping: a subscriber that reads late still gets
    # every message, in order.
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            xpub = ctx.socket(zmtp.XPUB, sndhwm=10, xpub_nodrop=True)
            sub = lab.theirs(_S.SUB, RCVHWM=10)
            sub.sock.setsockopt(zmq.SUBSCRIBE, b"")
            await lab.link(xpub, sub, transport, direction)
            assert await recv_poking(xpub, sub) == [b"\x01"]
            payload = b"x" * 65536
            sent = 0
            while True:  # nobody reads: the kernel buffers fill, then our queue
                try:
                    xpub.send_multipart_nowait([b"%d" % sent, payload])
                except trio.WouldBlock:
                    break
                sent += 1
                if sent % 10 == 0:
                    await trio.sleep(0)  # let the writer move what the kernel takes
                assert sent < 10_000, "the publisher never made us wait"
            total = sent + 100

            async def publish_rest() -> None:
                for i in range(sent, total):
                    await xpub.send_multipart([b"%d" % i, payload])  # waits, never drops
                await xpub.send_multipart([b"end"])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(publish_rest)
                got = await their_recv_all(sub, b"end")
            assert [int(m[0]) for m in got] == list(range(total))
            assert all(m[1] == payload for m in got)


# ----------------------------------------------------------------------- their publishers


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("their_type", [_S.PUB, _S.XPUB])
@pytest.mark.parametrize("our_type", [_S.SUB, _S.XSUB])
async def test_libzmq_publisher_serves_our_subscribers(
    our_type: zmtp.SocketType,
    their_type: zmtp.SocketType,
    direction: str,
    transport: str,
    lab_factory: Callable[[zmtp.Context], Lab],
) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            sub = ctx.socket(our_type)
            pub = lab.theirs(their_type)

            async def subscribe(topic: bytes, on: bool = True) -> None:
                if our_type is _S.SUB:
                    if on:
                        sub.subscribe(topic)  # type: ignore[attr-defined]
                    else:
                        sub.unsubscribe(topic)  # type: ignore[attr-defined]
                else:
                    await sub.send_multipart([(b"\x01" if on else b"\x00") + topic])

            await subscribe(b"a")  # before connecting: sent when the connection is up
            await lab.link(sub, pub, transport, direction)
            for topic in (b"c", b"end"):
                await subscribe(topic)
            if their_type is _S.XPUB:
                assert [await pub.recv() for _ in range(3)] == [
                    [b"\x01a"],
                    [b"\x01c"],
                    [b"\x01end"],
                ]
            else:
                await subscribe(b"probe")
                await sync_theirs_to_ours(pub, sub, b"probe")
            for msg in STREAM:
                await pub.send(msg)
            await pub.send([b"end"])
            assert await our_recv_all(sub, b"end") == MATCH_A_C

            await subscribe(b"a", on=False)
            if their_type is _S.XPUB:
                assert await pub.recv() == [b"\x00a"]
            else:
                await cancelled_theirs_to_ours(pub, sub, b"a")
            for msg in STREAM:
                await pub.send(msg)
            await pub.send([b"end"])
            assert await our_recv_all(sub, b"end") == MATCH_C
            if our_type is _S.XSUB and their_type is _S.XPUB:
                await sub.send_multipart([b"upstream", b"data"])
                assert await pub.recv() == [b"upstream", b"data"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_libzmq_verbose_xpub_sees_every_subscribe_of_ours(
    transport: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            sub = ctx.socket(zmtp.SUB)
            xpub = lab.theirs(_S.XPUB, XPUB_VERBOSE=1)
            await lab.link(sub, xpub, transport, "they_bind")
            # Connected first: subscriptions made before are replayed once per topic.
            await sub.wait_for_peers(1)
            sub.subscribe(b"a")  # type: ignore[attr-defined]
            sub.subscribe(b"a")  # type: ignore[attr-defined]
            assert [await xpub.recv() for _ in range(2)] == [[b"\x01a"]] * 2
            sub.unsubscribe(b"a")  # type: ignore[attr-defined]
            sub.subscribe(b"z")  # type: ignore[attr-defined]
            assert await xpub.recv() == [b"\x01z"]  # no CANCEL before it
            sub.unsubscribe(b"a")  # type: ignore[attr-defined]
            assert await xpub.recv() == [b"\x00a"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("our_type", [_S.SUB, _S.XSUB])
async def test_libzmq_welcome_message(
    transport: str, our_type: zmtp.SocketType, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            sub = ctx.socket(our_type)
            if our_type is _S.SUB:
                sub.subscribe(b"WEL")  # type: ignore[attr-defined]
            xpub = lab.theirs(_S.XPUB, XPUB_WELCOME_MSG=b"WELCOME")
            await lab.link(sub, xpub, transport, "they_bind")
            # libzmq writes it when its application next enters the socket.
            assert await recv_poking(sub, xpub) == [b"WELCOME"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subscriptions_replayed_when_libzmq_publisher_restarts(
    transport: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    """Our SUB sends its subscriptions on every new connection without waiting for
    its application, so once the restarted publisher has them nothing is lost."""
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            sub = ctx.socket(zmtp.SUB, reconnect_ivl=20, reconnect_ivl_max=100)
            mon = sub.monitor()
            sub.subscribe(b"a")  # type: ignore[attr-defined]
            sub.subscribe(b"b")  # type: ignore[attr-defined]
            first = lab.theirs(_S.XPUB)
            endpoint = lab.bind_zmq(first.sock, transport)
            await sub.connect(endpoint.zmq)
            assert {tuple(await first.recv()) for _ in range(2)} == {(b"\x01a",), (b"\x01b",)}
            await first.send([b"a-before"])
            assert await sub.recv_multipart() == [b"a-before"]
            first.sock.close(linger=0)
            await wait_event(mon, zmtp.EventType.DISCONNECTED)
            second = Theirs(
                await trio.to_thread.run_sync(
                    rebind_zmq, lambda: lab.zmq_socket(zmq.XPUB), endpoint
                ),
                _S.XPUB,
            )
            # Our application does nothing meanwhile: the replay comes on its own.
            assert {tuple(await second.recv()) for _ in range(2)} == {(b"\x01a",), (b"\x01b",)}

            def publish() -> None:
                for i in range(200):
                    second.sock.send_multipart([b"a%d" % i])
                    second.sock.send_multipart([b"c%d" % i])

            await trio.to_thread.run_sync(publish)
            for i in range(200):
                assert await sub.recv_multipart() == [b"a%d" % i]


# ----------------------------------------------------------------------- ZMTP 3.0 subscribers


@pytest.mark.parametrize("their_type", [_S.PUB, _S.XPUB])
async def test_libzmq_understands_legacy_frames_from_a_30_subscriber(
    their_type: zmtp.SocketType, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    """To a ZMTP 3.0 peer our SUB subscribes with ``01topic`` data frames (checked
    byte for byte in tests/test_pubsub.py); libzmq acts on them."""
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            pub = lab.theirs(their_type)
            endpoint = lab.bind_zmq(pub.sock, "tcp")
            # What our SUB sends to a 3.0 publisher: a 3.0 greeting, READY, and the
            # subscription as a data frame (zmtp.Connection.send_subscribe).
            conn = zmtp.Connection(_S.SUB)
            conn.bytes_to_send()
            async with await open_stream(endpoint) as stream:
                await stream.send_all(
                    greeting_head()
                    + greeting_tail(b"NULL", minor=0)
                    + encode_ready([("Socket-Type", b"SUB")])
                )
                # Data only after libzmq's READY, as our engine does (libzmq drops a
                # peer whose data frames arrive before then: specs/libzmq-behaviour.md §2.3).
                while conn.handshake is None:
                    conn.receive_data(await stream.receive_some(65536))
                await stream.send_all(b"\x00\x02\x01t")
                if their_type is _S.XPUB:
                    assert await pub.recv() == [b"\x01t"]
                got: list[list[bytes]] = []
                while not got:  # a PUB says nothing: publish until it lands
                    await pub.send([b"u"])
                    await pub.send([b"t!"])
                    with trio.move_on_after(0.05):
                        while not got:
                            for ev in conn.receive_data(await stream.receive_some(65536)):
                                if isinstance(ev, zmtp.Messages):
                                    got.extend(ev.messages)
                assert got[0] == [b"t!"]
                assert [b"u"] not in got
                await stream.send_all(b"\x00\x02\x00t")  # and the old-style cancel
                if their_type is _S.XPUB:
                    assert await pub.recv() == [b"\x00t"]
