"""The batch paths of pub/sub: XPUB/PUB send_many and SUB recv_many.

They must deliver exactly what one-message-at-a-time sending and receiving would:
each subscriber its matching messages, in order, and drops only at that subscriber's
high-water mark.
"""

from __future__ import annotations

import pytest
import trio

import zmtp
from zmtp.sockets import Socket, Sub, XPub

from ._helpers import context


async def _xpub_with_subs(
    ctx: zmtp.Context, endpoint: str, topics: list[list[bytes]], **sub_opts: int
) -> tuple[XPub, list[Sub]]:
    xpub = ctx.socket(zmtp.XPUB, xpub_verbose=True)
    ep = await xpub.bind(endpoint)
    subs = []
    for wanted in topics:
        sub = ctx.socket(zmtp.SUB, **sub_opts)
        await sub.connect(ep)
        for topic in wanted:
            sub.subscribe(topic)
            assert await xpub.recv_multipart() == [b"\x01" + topic]
        subs.append(sub)
    return xpub, subs


async def _drain(sock: Socket, count: int) -> list[list[bytes]]:
    got: list[list[bytes]] = []
    while len(got) < count:
        got.extend(await sock.recv_many(1000))
    return got


@pytest.mark.parametrize("endpoint", ["inproc://bulk", "tcp://127.0.0.1:0"])
async def test_send_many_delivers_each_subscriber_its_topics_in_order(endpoint: str) -> None:
    async with context() as ctx:
        xpub, (sub_a, sub_ab, sub_all) = await _xpub_with_subs(
            ctx, endpoint, [[b"a"], [b"a", b"b"], [b""]]
        )
        batch = [[b"%s-%d" % (b"abc"[i % 3 : i % 3 + 1], i), b"body"] for i in range(300)]
        assert await xpub.send_many(batch) == 300
        expect_a = [m for m in batch if m[0].startswith(b"a")]
        expect_ab = [m for m in batch if m[0][:1] in (b"a", b"b")]
        assert await _drain(sub_a, len(expect_a)) == expect_a
        assert await _drain(sub_ab, len(expect_ab)) == expect_ab
        assert await _drain(sub_all, len(batch)) == batch


async def test_send_many_drops_only_beyond_a_subscribers_room() -> None:
    async with context() as ctx:
        # inproc: the pipe limit is the sum of both sides' HWMs (libzmq's rule).
        xpub = ctx.socket(zmtp.XPUB, sndhwm=5)
        await xpub.bind("inproc://room")
        sub = ctx.socket(zmtp.SUB, rcvhwm=5)
        await sub.connect("inproc://room")
        sub.subscribe(b"")
        assert await xpub.recv_multipart() == [b"\x01"]
        batch = [[b"%d" % i] for i in range(25)]
        assert await xpub.send_many(batch) == 25  # never blocks: PUB semantics
        assert await sub.recv_many(100) == batch[:10]
        with trio.move_on_after(0.1):
            pytest.fail(f"unexpected {await sub.recv_multipart()!r}")


async def test_recv_many_filters_like_recv_multipart() -> None:
    async with context() as ctx:
        pub = ctx.socket(zmtp.XPUB)
        await pub.bind("inproc://filter")
        sub = ctx.socket(zmtp.SUB)
        await sub.connect("inproc://filter")
        sub.subscribe(b"keep")
        assert await pub.recv_multipart() == [b"\x01keep"]
        batch = [[b"keep-%d" % i if i % 2 else b"drop-%d" % i] for i in range(50)]
        # Bypass the publisher's filter so the SUB's own filter is what is tested.
        peer = pub.peers[0]
        peer.out.put_many([list(m) for m in batch])
        got = await sub.recv_many(1000)
        assert got == [m for m in batch if m[0].startswith(b"keep")]


@pytest.mark.parametrize("endpoint", ["inproc://nodrop", "tcp://127.0.0.1:0"])
async def test_send_many_with_nodrop_waits_for_the_slowest_and_loses_nothing(
    endpoint: str,
) -> None:
    # xpub_nodrop: send_many queues runs of same-topic messages up to the fullest
    # subscriber's room and waits for the rest; every subscriber gets its topics, in
    # order, however far behind it is.
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB, sndhwm=7, xpub_nodrop=True)
        ep = await xpub.bind(endpoint)
        subs = []
        for wanted in ([b""], [b"a"], [b"b"]):
            sub = ctx.socket(zmtp.SUB, rcvhwm=3)
            await sub.connect(ep)
            sub.subscribe(wanted[0])
            assert await xpub.recv_multipart() == [b"\x01" + wanted[0]]
            subs.append(sub)
        # Runs of one topic, of several lengths, so that room ends inside a run.
        batch = [[b"%s%d" % (b"ab"[(i // 5) % 2 : (i // 5) % 2 + 1], i)] for i in range(400)]
        expect = [
            batch,
            [m for m in batch if m[0][:1] == b"a"],
            [m for m in batch if m[0][:1] == b"b"],
        ]
        got: list[list[list[bytes]]] = [[], [], []]

        async def drain(i: int) -> None:
            while len(got[i]) < len(expect[i]):
                got[i].extend(await subs[i].recv_many(2))
                await trio.sleep(0.001 * i)  # three paces: each is the slowest in turn

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for i in range(3):
                    nursery.start_soon(drain, i)
                assert await xpub.send_many(batch) == 400
        assert got == expect


@pytest.mark.parametrize("endpoint", ["inproc://xsub", "tcp://127.0.0.1:0"])
async def test_xsub_recv_many_takes_what_recv_multipart_would(endpoint: str) -> None:
    # XSUB does not filter: recv_many hands out whole runs from its fair queue, each
    # publisher's messages in order, nothing lost or repeated.
    async with context() as ctx:
        xsub = ctx.socket(zmtp.XSUB)
        ep = await xsub.bind(endpoint)
        pubs = []
        for _ in range(2):
            pub = ctx.socket(zmtp.PUB)
            await pub.connect(ep)
            pubs.append(pub)
        await xsub.send_multipart([b"\x01"])
        for i, pub in enumerate(pubs):
            while True:  # until the subscription reached this publisher
                await pub.send_multipart([b"probe%d" % i])
                with trio.move_on_after(0.05):
                    while (await xsub.recv_multipart())[0] != b"probe%d" % i:
                        pass
                    break
        sent = {i: [[b"d%d-%d" % (i, n), b"x"] for n in range(300)] for i in range(2)}
        for i, pub in enumerate(pubs):
            await pub.send_many(sent[i])
        got: list[list[bytes]] = []
        with trio.fail_after(10):
            while len([m for m in got if m[0][:1] == b"d"]) < 600:
                got.extend(await xsub.recv_many(64))
        data = [m for m in got if m[0][:1] == b"d"]
        for i in range(2):
            assert [m for m in data if m[0].startswith(b"d%d-" % i)] == sent[i]
