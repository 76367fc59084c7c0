"""PUB, XPUB, SUB and XSUB among our own sockets, over inproc, tcp and ipc.

Synchronisation never sleeps.  A publisher drops what it sends before a subscription
arrives (the slow joiner), so tests wait for the subscription: an XPUB receives it as
``01topic``; with a plain PUB, :func:`sync` publishes probes until one gets through.
Negative checks ("nothing else arrives") watch a short window; they can only pass
wrongly, never fail wrongly.  The wire-level tests at the end talk to a raw
:class:`zmtp.Connection` to check the bytes: SUBSCRIBE/CANCEL commands to a 3.1 peer,
``01``/``00`` data frames to a 3.0 peer, and both formats understood on input.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import zmtp
from zmtp import Connection, SocketType
from zmtp.protocol.commands import encode_ready
from zmtp.protocol.events import Cancel, Messages, Subscribe
from zmtp.protocol.greeting import greeting_head, greeting_tail
from zmtp.sockets import Socket

from ._helpers import QUIET, STREAM_TRANSPORTS, TRANSPORTS, bind_address, context, nothing_arrives


async def sync(pub: Socket, sub: Socket, probe: bytes = b"sync") -> None:
    """Publish ``probe`` until ``sub`` receives it, then drain the extra probes.

    ``sub`` must be subscribed to something ``probe`` matches.  Messages from one
    publisher arrive in order, so once the end marker is in no probe is left.
    """
    while True:
        await pub.send_multipart([probe])
        with trio.move_on_after(0.02):
            assert await sub.recv_multipart() == [probe]
            break
    await pub.send_multipart([probe + b"-end"])
    while await sub.recv_multipart() != [probe + b"-end"]:
        pass


async def xpub_sub(
    ctx: zmtp.Context, transport: str, *topics: bytes, **xpub_opts: Any
) -> tuple[Socket, Socket]:
    """An XPUB (bound) and a SUB (connected) subscribed to ``topics``, synchronised."""
    xpub = ctx.socket(zmtp.XPUB, **xpub_opts)
    ep = await xpub.bind(bind_address(transport))
    sub = ctx.socket(zmtp.SUB)
    await sub.connect(ep)
    for topic in topics:
        sub.subscribe(topic)
        assert await xpub.recv_multipart() == [b"\x01" + topic]
    return xpub, sub


# ----------------------------------------------------------------------- filtering


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_sub_receives_only_matching_messages(transport: str) -> None:
    async with context() as ctx:
        xpub, sub = await xpub_sub(ctx, transport, b"news", b"\x00bin")
        for msg in (
            [b"weather", b"x"],
            [b"news/today", b"1", b"2"],
            [b"new", b"too short"],
            [b"\x00bin", b"binary"],
            [b"xnews", b"not at the start"],
            [b"news", b""],
        ):
            await xpub.send_multipart(msg)
        assert await sub.recv_multipart() == [b"news/today", b"1", b"2"]
        assert await sub.recv_multipart() == [b"\x00bin", b"binary"]
        assert await sub.recv_multipart() == [b"news", b""]
        await nothing_arrives(sub)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pub_filters_per_subscriber(transport: str) -> None:
    async with context() as ctx:
        pub = ctx.socket(zmtp.PUB)
        ep = await pub.bind(bind_address(transport))
        subs = {}
        for i, topic in enumerate((b"a", b"b", b"")):
            sub = ctx.socket(zmtp.SUB)
            sub.subscribe(topic)
            probe = b"sync%d" % i  # a probe only this subscriber wants
            sub.subscribe(probe)
            await sub.connect(ep)
            await sync(pub, sub, probe)
            subs[topic] = sub
        for frame in (b"a1", b"b1", b"c1", b"a2"):
            await pub.send_multipart([frame])
        assert [await subs[b"a"].recv_multipart() for _ in range(2)] == [[b"a1"], [b"a2"]]
        assert await subs[b"b"].recv_multipart() == [b"b1"]
        everything = [await subs[b""].recv_multipart() for _ in range(4)]
        assert everything == [[b"a1"], [b"b1"], [b"c1"], [b"a2"]]
        for sub in subs.values():
            await nothing_arrives(sub)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_message_before_subscription_is_dropped(transport: str) -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB)
        ep = await xpub.bind(bind_address(transport))
        sub = ctx.socket(zmtp.SUB)
        await sub.connect(ep)
        await xpub.wait_for_peers(1)
        await xpub.send_multipart([b"early"])  # nobody subscribed: dropped
        sub.subscribe(b"")
        assert await xpub.recv_multipart() == [b"\x01"]
        await xpub.send_multipart([b"late"])
        assert await sub.recv_multipart() == [b"late"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unsubscribe_stops_delivery_even_of_queued_messages(transport: str) -> None:
    async with context() as ctx:
        xpub, sub = await xpub_sub(ctx, transport, b"a", b"b")
        await xpub.send_multipart([b"a1"])
        await xpub.send_multipart([b"b1"])
        # Let both reach the SUB's queue, then unsubscribe before reading: a SUB
        # filters when its application receives, so "a1" is not delivered.
        while sum(len(p.inp) for p in sub.peers) < 2:
            await trio.testing.wait_all_tasks_blocked()
        sub.unsubscribe(b"a")
        assert await xpub.recv_multipart() == [b"\x00a"]
        await xpub.send_multipart([b"a2"])
        await xpub.send_multipart([b"b2"])
        assert await sub.recv_multipart() == [b"b1"]
        assert await sub.recv_multipart() == [b"b2"]
        await nothing_arrives(sub)
        assert sub.subscriptions == [b"b"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subscriptions_are_counted(transport: str) -> None:
    async with context() as ctx:
        xpub, sub = await xpub_sub(ctx, transport, b"a")
        sub.subscribe(b"a")  # a second reference: no new topic for the XPUB
        sub.unsubscribe(b"a")  # one reference left: no CANCEL goes out
        sub.subscribe(b"z")  # a marker, to know the two calls above were processed
        assert await xpub.recv_multipart() == [b"\x01z"]
        await xpub.send_multipart([b"a1"])
        assert await sub.recv_multipart() == [b"a1"]
        sub.unsubscribe(b"a")  # the last reference: now it is cancelled
        assert await xpub.recv_multipart() == [b"\x00a"]
        await xpub.send_multipart([b"a2"])
        await xpub.send_multipart([b"z2"])
        assert await sub.recv_multipart() == [b"z2"]
        sub.unsubscribe(b"never")  # not subscribed: nothing happens, nothing is sent
        sub.unsubscribe(b"z")
        assert await xpub.recv_multipart() == [b"\x00z"]


async def test_str_topics_are_utf8_and_other_types_refused() -> None:
    async with context() as ctx:
        xpub, sub = await xpub_sub(ctx, "inproc")
        sub.subscribe("caf\u00e9")
        assert await xpub.recv_multipart() == [b"\x01caf\xc3\xa9"]
        with pytest.raises(TypeError):
            sub.subscribe(42)  # type: ignore[attr-defined]


async def test_directions_not_supported() -> None:
    async with context() as ctx:
        sub = ctx.socket(zmtp.SUB)
        pub = ctx.socket(zmtp.PUB)
        xpub = ctx.socket(zmtp.XPUB)
        with pytest.raises(zmtp.NotSupportedError):
            await sub.send_multipart([b"x"])
        with pytest.raises(zmtp.NotSupportedError):
            await pub.recv_multipart()
        with pytest.raises(zmtp.InvalidStateError):
            xpub.subscribe(b"x")  # type: ignore[attr-defined]  # needs xpub_manual
        with pytest.raises(ValueError):
            ctx.socket(zmtp.PUB, xpub_verbose=True)  # an XPUB option


# ----------------------------------------------------------------------- XPUB notices


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_xpub_reports_new_topics_only_by_default(transport: str) -> None:
    async with context() as ctx:
        xpub, sub1 = await xpub_sub(ctx, transport, b"a")
        sub2 = ctx.socket(zmtp.SUB)
        await sub2.connect(xpub.last_endpoint)
        sub2.subscribe(b"a")  # not new: not reported
        sub2.subscribe(b"b")
        assert await xpub.recv_multipart() == [b"\x01b"]
        sub1.unsubscribe(b"a")  # sub2 still wants it: not reported
        sub2.unsubscribe(b"b")
        assert await xpub.recv_multipart() == [b"\x00b"]
        sub2.unsubscribe(b"a")
        assert await xpub.recv_multipart() == [b"\x00a"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_xpub_verbose_and_verboser(transport: str) -> None:
    for option, cancels in (("xpub_verbose", False), ("xpub_verboser", True)):
        async with context() as ctx:
            xpub, sub1 = await xpub_sub(ctx, transport, b"a", **{option: True})
            sub2 = ctx.socket(zmtp.SUB)
            await sub2.connect(xpub.last_endpoint)
            sub2.subscribe(b"a")
            assert await xpub.recv_multipart() == [b"\x01a"]  # reported again
            sub1.unsubscribe(b"a")  # sub2 still wants it
            sub1.subscribe(b"m")
            expected = [[b"\x00a"]] if cancels else []
            expected.append([b"\x01m"])
            assert [await xpub.recv_multipart() for _ in expected] == expected


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_xpub_reports_cancels_when_a_subscriber_leaves(transport: str) -> None:
    async with context() as ctx:
        xpub, sub1 = await xpub_sub(ctx, transport, b"shared", b"mine")
        sub2 = ctx.socket(zmtp.SUB)
        await sub2.connect(xpub.last_endpoint)
        sub2.subscribe(b"shared")
        sub2.subscribe(b"marker")
        assert await xpub.recv_multipart() == [b"\x01marker"]
        await sub1.aclose()
        # Only the topic nobody else wants is cancelled.
        assert await xpub.recv_multipart() == [b"\x00mine"]
        await xpub.send_multipart([b"shared!"])
        assert await sub2.recv_multipart() == [b"shared!"]
        await sub2.aclose()
        got = {tuple(await xpub.recv_multipart()) for _ in range(2)}
        assert got == {(b"\x00shared",), (b"\x00marker",)}
        await nothing_arrives(xpub)


async def test_xpub_verboser_reports_every_topic_of_a_leaving_subscriber() -> None:
    async with context() as ctx:
        xpub, sub1 = await xpub_sub(ctx, "tcp", b"shared", xpub_verboser=True)
        sub2 = ctx.socket(zmtp.SUB)
        await sub2.connect(xpub.last_endpoint)
        sub2.subscribe(b"shared")
        assert await xpub.recv_multipart() == [b"\x01shared"]
        await sub1.aclose()
        assert await xpub.recv_multipart() == [b"\x00shared"]


async def test_pub_forgets_the_topics_of_a_leaving_subscriber() -> None:
    """A PUB has nobody to tell when a subscriber leaves, but still drops what it
    subscribed to (a long-running publisher must not keep every departed peer's)."""
    async with context() as ctx:
        pub = ctx.socket(zmtp.PUB)
        await pub.bind(bind_address("tcp"))
        mon = pub.monitor()
        subs = []
        for topics in ([b"shared", b"gone"], [b"shared", b"stays"]):
            sub = ctx.socket(zmtp.SUB)
            await sub.connect(pub.last_endpoint)
            for topic in topics:
                sub.subscribe(topic)
            await sync(pub, sub, topics[-1] + b"?")  # the last one arrived: all did
            subs.append(sub)
        trie = pub._subscriptions  # type: ignore[attr-defined]
        assert len(trie.keys()) == 2
        await subs[0].aclose()
        async for event in mon:  # the peer is detached before the event is sent
            if event.type is zmtp.EventType.DISCONNECTED:
                break
        assert len(trie.keys()) == 1
        assert trie.topics() == [b"shared", b"stays"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_xpub_manual(transport: str) -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB, xpub_manual=True)
        ep = await xpub.bind(bind_address(transport))
        xsub = ctx.socket(zmtp.XSUB)
        await xsub.connect(ep)
        await xsub.send_multipart([b"\x01a"])
        assert await xpub.recv_multipart() == [b"\x01a"]
        # Nothing is subscribed until the application says so.
        await xpub.send_multipart([b"a-dropped"])
        # The application rewrites the subscription: this peer gets everything.
        xpub.subscribe(b"")  # type: ignore[attr-defined]
        await xpub.send_multipart([b"b1"])
        await xpub.send_multipart([b"a1"])
        # An XSUB does not filter, so it sees what the XPUB application chose.
        assert await xsub.recv_multipart() == [b"b1"]
        assert await xsub.recv_multipart() == [b"a1"]
        await xsub.send_multipart([b"\x01a"])  # every subscribe is reported
        assert await xpub.recv_multipart() == [b"\x01a"]
        await xsub.send_multipart([b"\x00a"])  # the XSUB holds two references...
        await xsub.send_multipart([b"\x00a"])  # ...so only this one is sent
        assert await xpub.recv_multipart() == [b"\x00a"]
        xpub.unsubscribe(b"")  # type: ignore[attr-defined]
        await xpub.send_multipart([b"gone"])
        await nothing_arrives(xsub)


async def test_xpub_manual_reports_requested_topics_when_a_peer_leaves() -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB, xpub_manual=True)
        ep = await xpub.bind("tcp://127.0.0.1:0")
        sub = ctx.socket(zmtp.SUB)
        await sub.connect(ep)
        sub.subscribe(b"t")
        assert await xpub.recv_multipart() == [b"\x01t"]
        xpub.subscribe(b"t")  # type: ignore[attr-defined]
        await sub.aclose()
        assert await xpub.recv_multipart() == [b"\x00t"]
        # The peer is gone: manual calls for it are ignored rather than failing.
        xpub.subscribe(b"t")  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_xpub_welcome_message(transport: str) -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB, xpub_welcome_msg=b"WELCOME")
        ep = await xpub.bind(bind_address(transport))
        sub = ctx.socket(zmtp.SUB)
        sub.subscribe(b"WEL")
        await sub.connect(ep)
        assert await sub.recv_multipart() == [b"WELCOME"]
        # A SUB that did not subscribe to it filters it out, as with libzmq.
        other = ctx.socket(zmtp.SUB)
        other.subscribe(b"x")
        await other.connect(ep)
        assert await xpub.recv_multipart() == [b"\x01WEL"]
        assert await xpub.recv_multipart() == [b"\x01x"]
        await xpub.send_multipart([b"x1"])
        assert await other.recv_multipart() == [b"x1"]
        # An XSUB does not filter: it always sees it.
        xsub = ctx.socket(zmtp.XSUB)
        await xsub.connect(ep)
        assert await xsub.recv_multipart() == [b"WELCOME"]


# ----------------------------------------------------------------------- XSUB, upstream


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_xsub_subscribes_and_sends_upstream(transport: str) -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB)
        ep = await xpub.bind(bind_address(transport))
        xsub = ctx.socket(zmtp.XSUB)
        await xsub.connect(ep)
        await xsub.send_multipart([b"\x01t"])
        assert await xpub.recv_multipart() == [b"\x01t"]
        await xsub.send_multipart([b"hello", b"upstream"])
        assert await xpub.recv_multipart() == [b"hello", b"upstream"]
        # A subscription frame followed by more frames: the rest is upstream data.
        await xsub.send_multipart([b"\x01u", b"tail"])
        assert await xpub.recv_multipart() == [b"\x01u"]
        assert await xpub.recv_multipart() == [b"tail"]
        await xpub.send_multipart([b"t1"])
        await xpub.send_multipart([b"u1"])
        assert await xsub.recv_multipart() == [b"t1"]
        assert await xsub.recv_multipart() == [b"u1"]
        await xsub.send_multipart([b"\x00t"])
        assert await xpub.recv_multipart() == [b"\x00t"]
        await xsub.send_multipart([b""])  # an empty frame is data, not a subscription
        assert await xpub.recv_multipart() == [b""]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_xsub_subscribes_every_publisher(transport: str) -> None:
    async with context() as ctx:
        xsub = ctx.socket(zmtp.XSUB)
        pubs = []
        for _ in range(3):
            xpub = ctx.socket(zmtp.XPUB)
            await xsub.connect(await xpub.bind(bind_address(transport)))
            pubs.append(xpub)
        await xsub.wait_for_peers(3)
        await xsub.send_multipart([b"\x01t"])
        for xpub in pubs:
            assert await xpub.recv_multipart() == [b"\x01t"]
        await xsub.send_multipart([b"up"])
        for xpub in pubs:
            assert await xpub.recv_multipart() == [b"up"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pub_discards_upstream_data(transport: str) -> None:
    async with context() as ctx:
        pub = ctx.socket(zmtp.PUB)
        ep = await pub.bind(bind_address(transport))
        xsub = ctx.socket(zmtp.XSUB)
        await xsub.connect(ep)
        await xsub.send_multipart([b"\x01"])
        for i in range(50):
            await xsub.send_multipart([b"up %d" % i])
        await sync(pub, xsub)
        await trio.testing.wait_all_tasks_blocked()
        assert all(not peer.inp for peer in pub.peers)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_xpub_returns_notices_before_data(transport: str) -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB)
        ep = await xpub.bind(bind_address(transport))
        xsub = ctx.socket(zmtp.XSUB)
        await xsub.connect(ep)
        await xsub.send_multipart([b"\x01a"])
        await xsub.send_multipart([b"data"])
        assert await xpub.recv_multipart() == [b"\x01a"]
        assert await xpub.recv_multipart() == [b"data"]


# ----------------------------------------------------------------------- replay


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_subscriptions_replayed_at_once_after_publisher_restart(
    transport: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB)
        if transport == "ipc":  # a path that outlives the first socket
            ep = await xpub.bind(f"ipc://{tmp_path_factory.mktemp('ipc')}/pub.sock")
        else:
            ep = await xpub.bind(bind_address(transport))
        sub = ctx.socket(zmtp.SUB, reconnect_ivl=10)
        sub.subscribe(b"a")
        sub.subscribe(b"b")
        await sub.connect(ep)
        assert {tuple(await xpub.recv_multipart()) for _ in range(2)} == {(b"\x01a",), (b"\x01b",)}
        await xpub.aclose()
        xpub = ctx.socket(zmtp.XPUB)
        assert await xpub.bind(ep) == ep
        # The SUB's application does nothing: the replay happens on reconnect alone.
        assert {tuple(await xpub.recv_multipart()) for _ in range(2)} == {(b"\x01a",), (b"\x01b",)}
        for i in range(100):
            await xpub.send_multipart([b"a%d" % i])
        for i in range(100):
            assert await sub.recv_multipart() == [b"a%d" % i]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subscribe_before_connect_and_before_bind(transport: str) -> None:
    async with context() as ctx:
        sub = ctx.socket(zmtp.SUB)
        sub.subscribe(b"t")
        ep = bind_address(transport)
        if transport == "inproc":
            await sub.connect(ep)  # inproc allows connecting before the bind
            xpub = ctx.socket(zmtp.XPUB)
            await xpub.bind(ep)
        else:
            xpub = ctx.socket(zmtp.XPUB)
            await sub.connect(await xpub.bind(ep))
        assert await xpub.recv_multipart() == [b"\x01t"]
        await xpub.send_multipart([b"t!"])
        assert await sub.recv_multipart() == [b"t!"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_xpub_connects_to_bound_sub(transport: str) -> None:
    async with context() as ctx:
        sub = ctx.socket(zmtp.SUB)
        sub.subscribe(b"t")
        ep = await sub.bind(bind_address(transport))
        xpub = ctx.socket(zmtp.XPUB, xpub_welcome_msg=b"tW")
        await xpub.connect(ep)
        assert await xpub.recv_multipart() == [b"\x01t"]
        assert await sub.recv_multipart() == [b"tW"]
        await xpub.send_multipart([b"t1"])
        assert await sub.recv_multipart() == [b"t1"]


# ----------------------------------------------------------------------- high-water marks


async def test_slow_subscriber_misses_messages_fast_one_gets_all() -> None:
    """Over inproc the queue is exactly sndhwm + rcvhwm messages (libzmq's sum)."""
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB, sndhwm=5, xpub_verbose=True)
        ep = await xpub.bind(bind_address("inproc"))
        slow = ctx.socket(zmtp.SUB, rcvhwm=5)
        fast = ctx.socket(zmtp.SUB, rcvhwm=5)
        for sub in (slow, fast):
            sub.subscribe(b"")
            await sub.connect(ep)
            assert await xpub.recv_multipart() == [b"\x01"]
        for i in range(100):
            await xpub.send_multipart([b"%d" % i])  # never blocks
            assert await fast.recv_multipart() == [b"%d" % i]
        got = []
        while True:
            try:
                got.append(slow.recv_multipart_nowait())
            except trio.WouldBlock:
                break
        assert got == [[b"%d" % i] for i in range(10)]  # the first 10, then drops


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_slow_subscriber_over_a_connection(transport: str) -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB, sndhwm=10, xpub_verbose=True)
        ep = await xpub.bind(bind_address(transport))
        slow = ctx.socket(zmtp.SUB, rcvhwm=10)
        fast = ctx.socket(zmtp.SUB)
        for sub in (slow, fast):
            sub.subscribe(b"")
            await sub.connect(ep)
            assert await xpub.recv_multipart() == [b"\x01"]
        slow_queue = xpub.peers[0].out  # the first to subscribe
        payload = b"x" * 65536
        # Publish, in step with the fast subscriber, until the slow one's queue is
        # full (every socket buffer on the way is full too, whatever its size), and
        # then some more: those are certainly dropped for the slow one.
        sent = 0
        extra = 20
        while extra:
            if slow_queue.full:
                extra -= 1
            await xpub.send_multipart([b"%d" % sent, payload])
            assert (await fast.recv_multipart())[0] == b"%d" % sent
            sent += 1
        got = []
        while True:
            with trio.move_on_after(QUIET) as scope:
                got.append(int((await slow.recv_multipart())[0]))
            if scope.cancelled_caught:
                break
        assert got[:10] == list(range(10))  # the queue took these before it filled
        assert got == sorted(got)  # in order, with gaps where it was full
        assert len(got) <= sent - 20


async def test_xpub_nodrop_waits_for_room() -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB, sndhwm=2, xpub_nodrop=True)
        ep = await xpub.bind(bind_address("inproc"))
        sub = ctx.socket(zmtp.SUB, rcvhwm=2)
        sub.subscribe(b"")
        await sub.connect(ep)
        assert await xpub.recv_multipart() == [b"\x01"]
        for i in range(4):
            xpub.send_multipart_nowait([b"%d" % i])
        with pytest.raises(trio.WouldBlock):
            xpub.send_multipart_nowait([b"4"])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(xpub.send_multipart, [b"4"])  # waits for room
            await trio.testing.wait_all_tasks_blocked()
            received = [await sub.recv_multipart() for _ in range(5)]
        assert received == [[b"%d" % i] for i in range(5)]
        # A message nobody subscribed to never blocks.
        sub.unsubscribe(b"")
        assert await xpub.recv_multipart() == [b"\x00"]
        for _ in range(10):
            xpub.send_multipart_nowait([b"nobody"])


async def test_inproc_subscribers_get_their_own_message_lists() -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB, xpub_verbose=True)
        ep = await xpub.bind(bind_address("inproc"))
        subs = []
        for _ in range(2):
            sub = ctx.socket(zmtp.SUB)
            sub.subscribe(b"")
            await sub.connect(ep)
            subs.append(sub)
        assert await xpub.recv_multipart() == [b"\x01"]
        assert await xpub.recv_multipart() == [b"\x01"]
        await xpub.send_multipart([b"a", b"b"])
        first = await subs[0].recv_multipart()
        first.append(b"mine")
        assert await subs[1].recv_multipart() == [b"a", b"b"]


async def test_many_subscribers_and_topics() -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB, xpub_verbose=True)
        ep = await xpub.bind(bind_address("inproc"))
        subs = []
        for i in range(50):
            sub = ctx.socket(zmtp.SUB)
            for j in range(40):
                sub.subscribe(b"topic/%d/%d" % (i, j))
            sub.subscribe(b"all/")
            await sub.connect(ep)
            subs.append(sub)
        for _ in range(50 * 41):
            await xpub.recv_multipart()
        await xpub.send_multipart([b"topic/7/3/x"])
        await xpub.send_multipart([b"all/x"])
        assert await subs[7].recv_multipart() == [b"topic/7/3/x"]
        for sub in subs:
            assert await sub.recv_multipart() == [b"all/x"]
        await nothing_arrives(subs[8])


# ----------------------------------------------------------------------- the wire


def _greeting_30() -> bytes:
    """A ZMTP 3.0 greeting (the Connection itself always announces 3.1)."""
    return greeting_head() + greeting_tail(b"NULL", minor=0)


async def _raw_peer(
    ep: str, socket_type: SocketType, *, minor: int = 1
) -> tuple[trio.SocketStream, Connection]:
    """Connect a raw stream to ``ep`` and complete a NULL handshake as ``socket_type``.

    With ``minor=0`` our side announces ZMTP 3.0, so the other side must use
    old-style subscriptions; the Connection then only decodes what arrives.
    """
    host, port = ep.removeprefix("tcp://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    conn = Connection(socket_type)
    if minor == 0:
        await stream.send_all(
            _greeting_30() + encode_ready([("Socket-Type", socket_type.wire_name)])
        )
    while True:
        out = conn.bytes_to_send()
        if minor == 1 and out:
            await stream.send_all(out)
        if conn.handshake is not None:
            return stream, conn
        conn.receive_data(await stream.receive_some(65536))


async def _events(stream: trio.SocketStream, conn: Connection, want: int) -> list[object]:
    """The next ``want`` events (data messages counted one by one)."""
    events: list[object] = []
    while len(events) < want:
        for ev in conn.receive_data(await stream.receive_some(65536)):
            if isinstance(ev, Messages):
                events.extend(Messages([m]) for m in ev.messages)
            else:
                events.append(ev)
    return events


async def test_sub_sends_commands_to_a_31_peer() -> None:
    async with context() as ctx:
        sub = ctx.socket(zmtp.SUB)
        sub.subscribe(b"a")
        ep = await sub.bind("tcp://127.0.0.1:0")
        stream, conn = await _raw_peer(ep, SocketType.XPUB)
        async with stream:
            assert await _events(stream, conn, 1) == [Subscribe(b"a")]  # replayed
            sub.subscribe(b"b")
            sub.unsubscribe(b"a")
            assert await _events(stream, conn, 2) == [Subscribe(b"b"), Cancel(b"a")]


async def test_sub_sends_legacy_frames_to_a_30_peer() -> None:
    async with context() as ctx:
        sub = ctx.socket(zmtp.SUB)
        sub.subscribe(b"a")
        ep = await sub.bind("tcp://127.0.0.1:0")
        host, port = ep.removeprefix("tcp://").rsplit(":", 1)
        async with await trio.open_tcp_stream(host, int(port)) as stream:
            await stream.send_all(_greeting_30() + encode_ready([("Socket-Type", b"PUB")]))
            # Its greeting and READY, then the replayed subscription as a data frame.
            expected = encode_ready([("Socket-Type", b"SUB")]) + b"\x00\x02\x01a"
            received = b""
            while len(received) < 64 + len(expected):
                received += await stream.receive_some(65536)
            assert received[64:] == expected
            sub.subscribe(b"b")
            sub.unsubscribe(b"a")
            received = b""
            while len(received) < 8:
                received += await stream.receive_some(65536)
            assert received == b"\x00\x02\x01b" + b"\x00\x02\x00a"


async def test_xpub_understands_commands_and_legacy_frames() -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB)
        ep = await xpub.bind("tcp://127.0.0.1:0")
        stream, conn = await _raw_peer(ep, SocketType.XSUB)
        async with stream:
            conn.send_subscribe(b"cmd")
            conn.send_message([b"\x01old"])  # what a libzmq XSUB forwards, even on 3.1
            conn.send_message([b"upstream", b"data"])
            await stream.send_all(conn.bytes_to_send())
            assert await xpub.recv_multipart() == [b"\x01cmd"]
            assert await xpub.recv_multipart() == [b"\x01old"]
            assert await xpub.recv_multipart() == [b"upstream", b"data"]
            for frame in (b"cmd1", b"other", b"old1"):
                await xpub.send_multipart([frame])
            assert await _events(stream, conn, 2) == [Messages([[b"cmd1"]]), Messages([[b"old1"]])]
            conn.send_cancel(b"cmd")
            conn.send_message([b"\x00old"])
            await stream.send_all(conn.bytes_to_send())
            assert await xpub.recv_multipart() == [b"\x00cmd"]
            assert await xpub.recv_multipart() == [b"\x00old"]
            for frame in (b"cmd2", b"old2"):
                await xpub.send_multipart([frame])
            with trio.move_on_after(QUIET):
                events = await _events(stream, conn, 1)
                pytest.fail(f"unexpected {events!r}")


async def test_pub_serves_a_30_subscriber() -> None:
    async with context() as ctx:
        pub = ctx.socket(zmtp.PUB)
        ep = await pub.bind("tcp://127.0.0.1:0")
        stream, conn = await _raw_peer(ep, SocketType.SUB, minor=0)
        async with stream:
            await stream.send_all(b"\x00\x02\x01t")  # subscribe "t", old style
            while True:  # the subscription lands at some point: publish until it has
                await pub.send_multipart([b"t!"])
                await pub.send_multipart([b"u!"])
                with trio.move_on_after(0.05):
                    assert await _events(stream, conn, 1) == [Messages([[b"t!"]])]
                    break


# ------------------------------------------------------------ fan-out: shared work

# What the publisher's shortcuts (one encoding of a batch for every subscriber's
# connection, a remembered match for a topic object sent again, the distributor's
# plan) must never change: each subscriber's bytes, and who gets what after a
# subscription, a cancel or a departure.


def _v2(body: bytes, more: bool = False) -> bytes:
    """A ZMTP 2.0 (and 3.x data) frame, spelled out from RFC 15."""
    if len(body) <= 255:
        return bytes((int(more), len(body))) + body
    return bytes((2 | int(more),)) + len(body).to_bytes(8, "big") + body


def _v1(body: bytes, more: bool = False) -> bytes:
    """A ZMTP 1.0 frame, spelled out from RFC 13: the length counts the flags octet."""
    length = len(body) + 1
    if length < 255:
        return bytes((length, int(more))) + body
    return b"\xff" + length.to_bytes(8, "big") + bytes((int(more),)) + body


def _wire(frame: Any, messages: list[list[bytes]]) -> bytes:
    return b"".join(frame(f, i < len(m) - 1) for m in messages for i, f in enumerate(m))


async def _read_exactly(stream: trio.SocketStream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await stream.receive_some(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


_SIG = b"\xff" + (1).to_bytes(8, "big") + b"\x7f"  # no routing id: padding 1


async def test_fanout_to_mixed_framings_is_each_ones_own_bytes() -> None:
    """Two 3.1 subscribers, a 2.0 and a 1.0 one get one batch and per-message sends
    (a topic object sent again and again, multipart, the 1.0/2.0 size boundaries):
    each exactly the bytes of its own framing."""
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB, xpub_verbose=True)
        ep = await xpub.bind("tcp://127.0.0.1:0")
        host, port = ep.removeprefix("tcp://").rsplit(":", 1)
        peers: list[tuple[trio.SocketStream, Any]] = []
        for _ in range(2):
            stream, conn = await _raw_peer(ep, SocketType.SUB)
            conn.send_subscribe(b"")
            await stream.send_all(conn.bytes_to_send())
            assert await xpub.recv_multipart() == [b"\x01"]
            peers.append((stream, _v2))
        v2 = await trio.open_tcp_stream(host, int(port))
        await v2.send_all(_SIG)
        assert await _read_exactly(v2, 11) == _SIG + b"\x03"
        await v2.send_all(b"\x01\x02" + _v2(b"") + _v2(b"\x01"))  # SUB, subscribe all
        assert await _read_exactly(v2, 3) == b"\x09" + _v2(b"")
        assert await xpub.recv_multipart() == [b"\x01"]
        peers.append((v2, _v2))
        v1 = await trio.open_tcp_stream(host, int(port))
        await v1.send_all(_v1(b""))  # its identity frame: a 1.0 peer
        assert await _read_exactly(v1, 10) == _SIG
        assert await xpub.recv_multipart() == [b"\x01"]  # libzmq subscribes it to all
        peers.append((v1, _v1))
        topic = b"topic"
        batch = [[topic, b"%d" % i] for i in range(50)]
        batch += [[b"x" * 253], [b"y" * 254, b"z" * 255], [b"w" * 256], [topic]]
        assert await xpub.send_many(batch) == len(batch)
        singles = [[topic, b"one %d" % i] for i in range(300)] + [[b"s" * 300]]
        for msg in singles:
            await xpub.send_multipart(msg)
        for stream, frame in peers:
            expected = _wire(frame, batch + singles)
            assert await _read_exactly(stream, len(expected)) == expected
        for stream, _ in peers:
            await stream.aclose()


async def test_a_remembered_topic_follows_subscribe_cancel_and_departure() -> None:
    """The same topic object is sent throughout, at least twice after each change
    (so the match and the distributor's plan are remembered); each change of
    subscriptions takes effect at the next message."""
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB, xpub_verboser=True)
        ep = await xpub.bind("tcp://127.0.0.1:0")
        a, a_conn = await _raw_peer(ep, SocketType.SUB)  # raw: no filtering of its own
        b, b_conn = await _raw_peer(ep, SocketType.SUB)
        topic = b"T"

        async def tell(stream: trio.SocketStream, conn: Connection, t: bytes, on: bool) -> None:
            if on:
                conn.send_subscribe(t)
            else:
                conn.send_cancel(t)
            await stream.send_all(conn.bytes_to_send())
            assert await xpub.recv_multipart() == [(b"\x01" if on else b"\x00") + t]

        async def publish(*bodies: bytes) -> list[Messages]:
            for body in bodies:
                await xpub.send_multipart([topic, body])
            return [Messages([[topic, body]]) for body in bodies]

        await tell(a, a_conn, topic, True)
        await tell(a, a_conn, b"Z", True)
        first = await publish(b"1", b"2", b"3")
        assert await _events(a, a_conn, 3) == first
        await tell(b, b_conn, topic, True)  # a new subscriber of the remembered topic
        both = await publish(b"both 1", b"both 2")
        assert await _events(a, a_conn, 2) == both
        assert await _events(b, b_conn, 2) == both
        await tell(a, a_conn, topic, False)  # a leaves the topic
        b_only = await publish(b"b 1", b"b 2")
        await xpub.send_multipart([b"Z", b"marker"])
        b_only += await publish(b"b 3", b"b 4")
        assert await _events(a, a_conn, 1) == [Messages([[b"Z", b"marker"]])]
        assert await _events(b, b_conn, 4) == b_only
        before = set(xpub._peers)
        await b.aclose()  # b leaves: its subscriptions go with it
        assert await xpub.recv_multipart() == [b"\x00T"]
        (gone,) = before - set(xpub._peers)
        await publish(b"nobody 1", b"nobody 2", b"nobody 3")
        await xpub.send_multipart([b"Z", b"marker 2"])
        assert await _events(a, a_conn, 1) == [Messages([[b"Z", b"marker 2"]])]
        assert not gone.out.queue  # nothing was queued for the departed subscriber
        await a.aclose()


async def test_a_changed_hwm_is_respected_by_a_remembered_topic() -> None:
    """xpub_nodrop with a remembered topic: lowering the HWM takes effect at once
    (the distributor's room is counted again)."""
    async with context() as ctx:
        pub = ctx.socket(zmtp.XPUB, xpub_nodrop=True, sndhwm=1000)
        ep = await pub.bind("tcp://127.0.0.1:0")
        stream, conn = await _raw_peer(ep, SocketType.SUB)
        async with stream:
            conn.send_subscribe(b"")
            await stream.send_all(conn.bytes_to_send())
            assert await pub.recv_multipart() == [b"\x01"]
            topic = b"t"
            pub.send_multipart_nowait([topic])
            pub.send_multipart_nowait([topic])  # the plan is made: room 998 counted
            pub.sndhwm = 3
            (peer,) = pub._peers
            # The writer may have taken some already; fill up to the new HWM.
            while len(peer.out.queue) < 3:
                pub.send_multipart_nowait([topic])
            with pytest.raises(trio.WouldBlock):
                pub.send_multipart_nowait([topic])


async def test_encodings_are_shared_only_while_there_are_two_subscribers() -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB)
        ep = await xpub.bind("tcp://127.0.0.1:0")
        first, second = ctx.socket(zmtp.SUB), ctx.socket(zmtp.SUB)
        await first.connect(ep)
        first.subscribe(b"a")
        assert await xpub.recv_multipart() == [b"\x01a"]
        batch = [[b"a%d" % i] for i in range(10)]

        async def ten(sub: Socket) -> list[list[bytes]]:
            got: list[list[bytes]] = []
            while len(got) < 10:
                got += await sub.recv_many(10 - len(got))
            return got

        await xpub.send_many(batch)
        assert await ten(first) == batch
        assert xpub._encodings._entries == []  # alone: nothing kept
        await second.connect(ep)
        second.subscribe(b"")
        assert await xpub.recv_multipart() == [b"\x01"]
        await xpub.send_many(batch)
        assert await ten(first) == batch
        assert await ten(second) == batch
        assert xpub._encodings._entries  # one encoded the batch for both
        await second.aclose()
        assert await xpub.recv_multipart() == [b"\x00"]  # the second has left
        assert xpub._encodings._entries == []  # alone again: released
