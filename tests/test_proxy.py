"""The proxy library: forwarding, capture, steering, statistics, backpressure.

Most tests use inproc, where a sent message lands in the other socket's queue at once,
so ``wait_all_tasks_blocked`` is an exact "the proxy did everything it could" point
(no sleeps).  A few run over tcp to exercise the engines.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import zmtp
from proxy import DirectionStatistics, Proxy, ProxyStatistics, Traffic, run
from zmtp import Socket

from ._helpers import context

pytestmark = pytest.mark.filterwarnings("error")


@asynccontextmanager
async def running(
    frontend: Socket,
    backend: Socket,
    *,
    capture: Socket | None = None,
    control: Socket | None = None,
    batch_size: int = 1000,
) -> AsyncIterator[Proxy]:
    """Run a proxy in the background for the block; cancel it afterwards."""
    proxy = Proxy(frontend, backend, capture=capture, control=control, batch_size=batch_size)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(proxy.run)
        yield proxy
        nursery.cancel_scope.cancel()


def u64s(frames: list[bytes]) -> list[int]:
    return [struct.unpack("=Q", f)[0] for f in frames]


# ---------------------------------------------------------------------- shared queue


async def test_router_dealer_queue_every_reply_reaches_its_client() -> None:
    """Several REQ and DEALER clients, REP and DEALER workers (libzmq test_proxy)."""
    async with context() as ctx:
        frontend = ctx.socket(zmtp.ROUTER)
        backend = ctx.socket(zmtp.DEALER)
        await frontend.bind("inproc://front")
        await backend.bind("inproc://back")
        async with running(frontend, backend), trio.open_nursery() as nursery:

            async def rep_worker(n: int) -> None:
                w = ctx.socket(zmtp.REP)
                await w.connect("inproc://back")
                while True:
                    req = await w.recv_multipart()
                    await w.send_multipart([*req, b"w%d" % n])

            async def dealer_worker(n: int) -> None:
                w = ctx.socket(zmtp.DEALER)
                await w.connect("inproc://back")
                while True:
                    msg = await w.recv_multipart()
                    # [client id, b"", request...]: echo the envelope.
                    await w.send_multipart([*msg, b"d%d" % n])

            for n in range(3):
                nursery.start_soon(rep_worker, n)
                nursery.start_soon(dealer_worker, n)

            results: dict[bytes, list[list[bytes]]] = {}

            async def req_client(name: bytes) -> None:
                c = ctx.socket(zmtp.REQ)
                await c.connect("inproc://front")
                got = results.setdefault(name, [])
                for i in range(30):
                    await c.send_multipart([name, b"%d" % i])
                    got.append(await c.recv_multipart())

            async def dealer_client(name: bytes) -> None:
                c = ctx.socket(zmtp.DEALER, routing_id=name)
                await c.connect("inproc://front")
                got = results.setdefault(name, [])
                for i in range(30):
                    await c.send_multipart([b"", name, b"%d" % i])
                for _ in range(30):
                    got.append(await c.recv_multipart())

            async with trio.open_nursery() as clients:
                for k in range(4):
                    clients.start_soon(req_client, b"req%d" % k)
                    clients.start_soon(dealer_client, b"dealer%d" % k)
            nursery.cancel_scope.cancel()

    assert len(results) == 8
    for name, replies in results.items():
        assert len(replies) == 30
        if name.startswith(b"req"):
            # Strict alternation: the replies come in request order.
            assert [r[:2] for r in replies] == [[name, b"%d" % i] for i in range(30)]
        else:
            assert sorted(int(r[2]) for r in replies) == list(range(30))
            assert all(r[0] == b"" and r[1] == name for r in replies)
        assert all(r[-1][:1] in (b"w", b"d") for r in replies)


async def test_statistics_count_frames_in_libzmq_layout() -> None:
    """One 3-part request through a ROUTER and a 1-part reply: libzmq reports
    [4, 8, 2, 7, 2, 7, 4, 8] (specs/libzmq-behaviour.md §6.2)."""
    async with context() as ctx:
        frontend = ctx.socket(zmtp.ROUTER)
        backend = ctx.socket(zmtp.DEALER)
        control = ctx.socket(zmtp.REP)
        await frontend.bind("inproc://f")
        await backend.bind("inproc://b")
        await control.bind("inproc://c")
        client = ctx.socket(zmtp.DEALER)
        worker = ctx.socket(zmtp.DEALER)
        steer = ctx.socket(zmtp.REQ)
        await client.connect("inproc://f")
        await worker.connect("inproc://b")
        await steer.connect("inproc://c")
        async with running(frontend, backend, control=control) as proxy:
            await client.send_multipart([b"a", b"b", b"c"])
            rid, *body = await worker.recv_multipart()
            assert len(rid) == 5 and body == [b"a", b"b", b"c"]
            await worker.send_multipart([rid, b"xy"])
            assert await client.recv_multipart() == [b"xy"]
            await steer.send_multipart([b"STATISTICS"])
            reply = await steer.recv_multipart()
            assert u64s(reply) == [4, 8, 2, 7, 2, 7, 4, 8]
            stats = proxy.statistics()
    assert stats.frontend_to_backend == DirectionStatistics(Traffic(1, 4, 8), Traffic(1, 4, 8))
    assert stats.backend_to_frontend == DirectionStatistics(Traffic(1, 2, 7), Traffic(1, 2, 7))
    assert stats.frontend_to_backend.messages == 1
    assert stats.backend_to_frontend.bytes == 7
    assert stats.capture_dropped == 0


# ---------------------------------------------------------------------- streamer


async def test_pull_push_streamer_over_tcp_keeps_order_and_multipart() -> None:
    n = 5000
    async with context() as ctx:
        frontend = ctx.socket(zmtp.PULL)
        backend = ctx.socket(zmtp.PUSH)
        fe = await frontend.bind("tcp://127.0.0.1:0")
        be = await backend.bind("tcp://127.0.0.1:0")
        producer = ctx.socket(zmtp.PUSH)
        consumer = ctx.socket(zmtp.PULL)
        await producer.connect(fe)
        await consumer.connect(be)
        async with running(frontend, backend) as proxy:
            assert proxy.directions == ["frontend->backend"]
            messages = [[b"%d" % i, b"x" * (i % 7)] for i in range(n)]
            got: list[list[bytes]] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(producer.send_many, messages)
                while len(got) < n:
                    got.extend(await consumer.recv_many(1000))
            stats = proxy.statistics()
    assert got == messages
    assert stats.frontend_to_backend.sent == Traffic(
        n, 2 * n, sum(len(b"%d" % i) + i % 7 for i in range(n))
    )
    assert stats.backend_to_frontend == DirectionStatistics()


async def test_directions_follow_socket_types() -> None:
    async with zmtp.Context() as ctx:
        router, dealer = ctx.socket(zmtp.ROUTER), ctx.socket(zmtp.DEALER)
        pull, push = ctx.socket(zmtp.PULL), ctx.socket(zmtp.PUSH)
        assert Proxy(router, dealer).directions == ["frontend->backend", "backend->frontend"]
        assert Proxy(pull, push).directions == ["frontend->backend"]
        assert Proxy(push, pull).directions == ["backend->frontend"]
        assert Proxy(dealer, dealer).directions == ["frontend->backend"]
        assert Proxy(pull, pull).directions == []


# ---------------------------------------------------------------------- one socket


async def test_single_rep_socket_echoes() -> None:
    """libzmq test_proxy_single_socket: one REP as frontend and backend echoes."""
    async with context() as ctx:
        rep = ctx.socket(zmtp.REP)
        await rep.bind("inproc://echo")
        req = ctx.socket(zmtp.REQ)
        await req.connect("inproc://echo")
        async with running(rep, rep) as proxy:
            for body in (b"msg1", b"msg22"):
                await req.send_multipart([body])
                assert await req.recv_multipart() == [body]
            stats = proxy.statistics()
    assert stats.frontend_to_backend.sent == Traffic(2, 2, 9)
    assert u64s(stats.as_libzmq_frames()) == [2, 9, 0, 0, 0, 0, 2, 9]


async def test_single_dealer_socket_echoes_batches() -> None:
    async with context() as ctx:
        sock = ctx.socket(zmtp.DEALER)
        await sock.bind("inproc://echo")
        peer = ctx.socket(zmtp.DEALER)
        await peer.connect("inproc://echo")
        messages = [[b"%d" % i, b"more"] for i in range(500)]
        async with running(sock, sock):
            await peer.send_many(messages)
            got: list[list[bytes]] = []
            while len(got) < len(messages):
                got.extend(await peer.recv_many())
    assert got == messages


async def test_rep_frontend_req_backend_take_turns() -> None:
    """Any other pair: REQ/REP sockets alternate, so the proxy waits for its turn."""
    async with context() as ctx:
        frontend = ctx.socket(zmtp.REP)
        backend = ctx.socket(zmtp.REQ)
        await frontend.bind("inproc://f")
        await backend.bind("inproc://b")
        client = ctx.socket(zmtp.REQ)
        server = ctx.socket(zmtp.REP)
        await client.connect("inproc://f")
        await server.connect("inproc://b")
        async with running(frontend, backend), trio.open_nursery() as nursery:

            async def serve() -> None:
                while True:
                    req = await server.recv_multipart()
                    await server.send_multipart([b"re:", *req])

            nursery.start_soon(serve)
            for i in range(20):
                await client.send_multipart([b"%d" % i])
                assert await client.recv_multipart() == [b"re:", b"%d" % i]
            nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------- forwarder


async def test_xsub_xpub_forwarder_carries_subscriptions_up_and_data_down() -> None:
    """Subscriptions (``01topic``) travel from subscribers through the XPUB backend and
    the XSUB frontend to the publisher, data comes back down, unsubscribes (``00topic``)
    travel too, and the capture socket sees all of it (specs/libzmq-behaviour.md §6.1)."""
    async with context() as ctx:
        frontend = ctx.socket(zmtp.XSUB)
        backend = ctx.socket(zmtp.XPUB)
        capture = ctx.socket(zmtp.PUSH)
        await frontend.bind("inproc://publishers")
        await backend.bind("inproc://subscribers")
        await capture.bind("inproc://capture")
        tap = ctx.socket(zmtp.PULL)
        await tap.connect("inproc://capture")
        publisher = ctx.socket(zmtp.XPUB)  # an XPUB shows what reaches it upstream
        await publisher.connect("inproc://publishers")
        subscriber = ctx.socket(zmtp.SUB)
        await subscriber.connect("inproc://subscribers")
        async with running(frontend, backend, capture=capture) as proxy:
            subscriber.subscribe(b"A")  # type: ignore[attr-defined]
            subscriber.subscribe(b"Z")  # type: ignore[attr-defined]
            assert await publisher.recv_multipart() == [b"\x01A"]
            assert await publisher.recv_multipart() == [b"\x01Z"]
            await publisher.send_multipart([b"A1", b"payload"])
            await publisher.send_multipart([b"B1", b"not subscribed"])
            await publisher.send_multipart([b"Z1"])
            assert await subscriber.recv_multipart() == [b"A1", b"payload"]
            assert await subscriber.recv_multipart() == [b"Z1"]

            subscriber.unsubscribe(b"A")  # type: ignore[attr-defined]
            assert await publisher.recv_multipart() == [b"\x00A"]
            await publisher.send_multipart([b"A2"])
            await publisher.send_multipart([b"Z2"])
            # A2 was filtered upstream: Z2, sent after it, is the next message.
            assert await subscriber.recv_multipart() == [b"Z2"]

            copies = [await tap.recv_multipart() for _ in range(6)]
            stats = proxy.statistics()
    # Each step above waited for its result, and capture happens before forwarding,
    # so the copies come in exactly this order.
    assert copies == [
        [b"\x01A"],
        [b"\x01Z"],
        [b"A1", b"payload"],
        [b"Z1"],
        [b"\x00A"],
        [b"Z2"],
    ]
    assert stats.backend_to_frontend.messages == 3
    assert stats.frontend_to_backend.messages == 3  # the publisher filtered B1 and A2


async def test_pub_capture_read_by_sub() -> None:
    async with context() as ctx:
        frontend, backend = ctx.socket(zmtp.PULL), ctx.socket(zmtp.PUSH)
        capture = ctx.socket(zmtp.PUB)
        await frontend.bind("inproc://f")
        await backend.bind("inproc://b")
        await capture.bind("inproc://cap")
        tap = ctx.socket(zmtp.SUB)
        await tap.connect("inproc://cap")
        tap.subscribe(b"")  # type: ignore[attr-defined]
        producer, consumer = ctx.socket(zmtp.PUSH), ctx.socket(zmtp.PULL)
        await producer.connect("inproc://f")
        await consumer.connect("inproc://b")
        async with running(frontend, backend, capture=capture):
            messages = [[b"t%d" % i, b"body"] for i in range(100)]
            await producer.send_many(messages)
            got = [await consumer.recv_multipart() for _ in messages]
            copies = [await tap.recv_multipart() for _ in messages]
    assert got == copies == messages


# ---------------------------------------------------------------------- capture


@pytest.mark.parametrize("capture_type", [zmtp.PUSH, zmtp.DEALER, zmtp.PAIR])
async def test_capture_gets_every_message_both_directions(capture_type: zmtp.SocketType) -> None:
    reader_type = {zmtp.PUSH: zmtp.PULL, zmtp.DEALER: zmtp.DEALER, zmtp.PAIR: zmtp.PAIR}
    async with context() as ctx:
        frontend = ctx.socket(zmtp.ROUTER)
        backend = ctx.socket(zmtp.DEALER)
        capture = ctx.socket(capture_type)
        await frontend.bind("inproc://f")
        await backend.bind("inproc://b")
        await capture.bind("inproc://cap")
        tap = ctx.socket(reader_type[capture_type])
        await tap.connect("inproc://cap")
        client = ctx.socket(zmtp.DEALER, routing_id=b"C")
        worker = ctx.socket(zmtp.DEALER)
        await client.connect("inproc://f")
        await worker.connect("inproc://b")
        async with running(frontend, backend, capture=capture) as proxy:
            await client.send_multipart([b"", b"request", b"part2"])
            request = await worker.recv_multipart()
            assert request == [b"C", b"", b"request", b"part2"]
            await worker.send_multipart([b"C", b"", b"reply"])
            assert await client.recv_multipart() == [b"", b"reply"]
            copies = [await tap.recv_multipart(), await tap.recv_multipart()]
            stats = proxy.statistics()
    assert copies == [[b"C", b"", b"request", b"part2"], [b"C", b"", b"reply"]]
    assert stats.capture_dropped == 0


async def test_capture_that_cannot_keep_up_drops_copies_and_never_stalls() -> None:
    """A PUSH capture with no puller would block libzmq's proxy for ever; ours drops
    the copies (counted) and keeps forwarding."""
    async with context() as ctx:
        frontend = ctx.socket(zmtp.PULL)
        backend = ctx.socket(zmtp.PUSH)
        capture = ctx.socket(zmtp.PUSH, sndhwm=5)
        await frontend.bind("inproc://f")
        await backend.bind("inproc://b")
        await capture.bind("inproc://cap")  # nobody will ever pull
        producer = ctx.socket(zmtp.PUSH)
        consumer = ctx.socket(zmtp.PULL)
        await producer.connect("inproc://f")
        await consumer.connect("inproc://b")
        async with running(frontend, backend, capture=capture) as proxy:
            await producer.send_many([[b"%d" % i] for i in range(300)])
            got = []
            while len(got) < 300:
                got.extend(await consumer.recv_many())
            stats = proxy.statistics()
    assert got == [[b"%d" % i] for i in range(300)]
    assert stats.capture_dropped == 300


async def test_capture_rejects_other_types() -> None:
    async with zmtp.Context() as ctx:
        a, b = ctx.socket(zmtp.ROUTER), ctx.socket(zmtp.DEALER)
        with pytest.raises(ValueError, match="capture socket must be PUB, DEALER, PUSH or PAIR"):
            Proxy(a, b, capture=ctx.socket(zmtp.REP))


# ---------------------------------------------------------------------- steering


async def test_pause_and_resume_have_their_documented_meaning() -> None:
    """PAUSE stops forwarding, RESUME restarts it (libzmq 4.3.5 has them swapped).
    Every command gets an empty reply on a PAIR control, as in 4.3.5."""
    async with context() as ctx:
        frontend = ctx.socket(zmtp.PULL)
        backend = ctx.socket(zmtp.PUSH)
        control = ctx.socket(zmtp.PAIR)
        for sock, ep in ((frontend, "f"), (backend, "b"), (control, "c")):
            await sock.bind(f"inproc://{ep}")
        producer = ctx.socket(zmtp.PUSH)
        consumer = ctx.socket(zmtp.PULL)
        steer = ctx.socket(zmtp.PAIR)
        await producer.connect("inproc://f")
        await consumer.connect("inproc://b")
        await steer.connect("inproc://c")

        async def command(cmd: bytes) -> list[bytes]:
            await steer.send_multipart([cmd])
            return await steer.recv_multipart()

        async with running(frontend, backend, control=control) as proxy:
            await producer.send_multipart([b"before"])
            assert await consumer.recv_multipart() == [b"before"]

            assert await command(b"PAUSE") == [b""]
            assert proxy.paused
            frozen = await command(b"STATISTICS")
            await producer.send_many([[b"during %d" % i] for i in range(10)])
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.WouldBlock):
                consumer.recv_multipart_nowait()
            assert await command(b"STATISTICS") == frozen
            assert u64s(frozen)[:2] == [1, 6]

            assert await command(b"RESUME") == [b""]
            assert not proxy.paused
            for i in range(10):
                assert await consumer.recv_multipart() == [b"during %d" % i]
            assert u64s(await command(b"STATISTICS"))[:2] == [11, 6 + 10 * 8]

            # A second PAUSE is harmless, and so is an unknown command.
            assert await command(b"PAUSE") == [b""]
            assert await command(b"PAUSE") == [b""]
            assert await command(b"BOGUS") == [b""]
            assert proxy.paused
            assert await command(b"RESUME") == [b""]


async def test_pause_stops_both_directions_and_resume_delivers_in_order() -> None:
    async with context() as ctx:
        frontend = ctx.socket(zmtp.DEALER)
        backend = ctx.socket(zmtp.DEALER)
        await frontend.bind("inproc://f")
        await backend.bind("inproc://b")
        a = ctx.socket(zmtp.DEALER)
        b = ctx.socket(zmtp.DEALER)
        await a.connect("inproc://f")
        await b.connect("inproc://b")
        async with running(frontend, backend) as proxy:
            proxy.pause()
            await a.send_many([[b"a%d" % i] for i in range(5)])
            await b.send_many([[b"b%d" % i] for i in range(5)])
            await trio.testing.wait_all_tasks_blocked()
            assert proxy.statistics() == ProxyStatistics()
            proxy.resume()
            assert [await b.recv_multipart() for _ in range(5)] == [[b"a%d" % i] for i in range(5)]
            assert [await a.recv_multipart() for _ in range(5)] == [[b"b%d" % i] for i in range(5)]


async def test_a_batch_received_as_pause_comes_is_delivered() -> None:
    # The message wakes the direction's receive, and PAUSE comes before that task
    # runs again: its receive then returns the batch with the pause already called.
    # The batch is delivered (nothing taken is lost), even though it must wait for
    # room at a full destination, and nothing after it.
    async with context() as ctx:
        frontend = ctx.socket(zmtp.DEALER)
        backend = ctx.socket(zmtp.DEALER, sndhwm=1)
        await frontend.bind("inproc://f")
        await backend.bind("inproc://b")
        a = ctx.socket(zmtp.DEALER)
        b = ctx.socket(zmtp.DEALER, rcvhwm=1)
        await a.connect("inproc://f")
        await b.connect("inproc://b")
        async with running(frontend, backend) as proxy:
            # Two messages fill the way to b (an inproc pair of HWM 1 holds two).
            await a.send_many([[b"x0"], [b"x1"]])
            await trio.testing.wait_all_tasks_blocked()
            a.send_multipart_nowait([b"first"])
            proxy.pause()  # no schedule point in between
            await trio.testing.wait_all_tasks_blocked()
            assert proxy.statistics().frontend_to_backend.received.messages == 3
            got = [await b.recv_multipart() for _ in range(3)]
            assert got == [[b"x0"], [b"x1"], [b"first"]]
            await a.send_multipart([b"second"])
            await trio.testing.wait_all_tasks_blocked()
            assert proxy.statistics().frontend_to_backend.messages == 3
            proxy.resume()
            assert await b.recv_multipart() == [b"second"]
            # PAUSE and RESUME again, each direction's loop in a new scope.
            proxy.pause()
            await trio.testing.wait_all_tasks_blocked()
            proxy.resume()
            await b.send_multipart([b"back"])
            assert await a.recv_multipart() == [b"back"]


async def test_a_source_that_never_runs_dry_starves_nobody() -> None:
    # Full batches come one after another; each is followed by a schedule point, so
    # the other direction and the control task keep going.
    async with context() as ctx:
        frontend = ctx.socket(zmtp.DEALER, rcvhwm=0)
        backend = ctx.socket(zmtp.DEALER, sndhwm=0)
        control = ctx.socket(zmtp.PAIR)
        for sock, ep in ((frontend, "f"), (backend, "b"), (control, "c")):
            await sock.bind(f"inproc://{ep}")
        a = ctx.socket(zmtp.DEALER, sndhwm=0)
        b = ctx.socket(zmtp.DEALER, rcvhwm=0)
        steer = ctx.socket(zmtp.PAIR)
        await a.connect("inproc://f")
        await b.connect("inproc://b")
        await steer.connect("inproc://c")
        a.send_batch_nowait([[b"%d" % i] for i in range(400)])
        async with running(frontend, backend, control=control, batch_size=10) as proxy:
            await b.send_multipart([b"reply"])
            assert await a.recv_multipart() == [b"reply"]
            await steer.send_multipart([b"PAUSE"])
            assert await steer.recv_multipart() == [b""]
            assert proxy.paused
            # The reply and the PAUSE got through before the 400 were all moved.
            assert proxy.statistics().frontend_to_backend.messages < 400


async def test_terminate_returns_final_statistics_and_replies() -> None:
    async with context() as ctx:
        frontend = ctx.socket(zmtp.PULL)
        backend = ctx.socket(zmtp.PUSH)
        control = ctx.socket(zmtp.REP)
        for sock, ep in ((frontend, "f"), (backend, "b"), (control, "c")):
            await sock.bind(f"inproc://{ep}")
        producer = ctx.socket(zmtp.PUSH)
        consumer = ctx.socket(zmtp.PULL)
        steer = ctx.socket(zmtp.REQ)
        await producer.connect("inproc://f")
        await consumer.connect("inproc://b")
        await steer.connect("inproc://c")
        result: list[ProxyStatistics] = []

        async def proxy_task() -> None:
            result.append(await run(frontend, backend, control=control))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(proxy_task)
            await producer.send_multipart([b"one", b"two"])
            assert await consumer.recv_multipart() == [b"one", b"two"]
            await steer.send_multipart([b"TERMINATE"])
            assert await steer.recv_multipart() == [b""]
        # The nursery exited, so run() returned by itself.
    (stats,) = result
    assert stats.frontend_to_backend.sent == Traffic(1, 2, 6)


async def test_terminate_while_a_direction_is_blocked() -> None:
    """A destination with no peer blocks forwarding (like libzmq); TERMINATE still ends it."""
    async with context() as ctx:
        frontend = ctx.socket(zmtp.PULL)
        backend = ctx.socket(zmtp.PUSH)  # no peer: every send waits
        await frontend.bind("inproc://f")
        await backend.bind("inproc://b")
        producer = ctx.socket(zmtp.PUSH)
        await producer.connect("inproc://f")
        proxy = Proxy(frontend, backend)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(proxy.run)
            await producer.send_many([[b"x"]] * 3)
            await trio.testing.wait_all_tasks_blocked()
            stats = proxy.statistics()
            assert stats.frontend_to_backend.received.messages == 3
            assert stats.frontend_to_backend.sent.messages == 0
            proxy.terminate()


async def test_router_control_gets_replies_behind_its_envelope() -> None:
    async with context() as ctx:
        frontend, backend = ctx.socket(zmtp.PULL), ctx.socket(zmtp.PUSH)
        control = ctx.socket(zmtp.ROUTER)
        await control.bind("inproc://c")
        steer = ctx.socket(zmtp.REQ)
        await steer.connect("inproc://c")
        async with running(frontend, backend, control=control):
            await steer.send_multipart([b"STATISTICS"])
            assert u64s(await steer.recv_multipart()) == [0] * 8
            await steer.send_multipart([b"PAUSE"])
            assert await steer.recv_multipart() == [b""]


async def test_control_must_be_able_to_receive() -> None:
    async with zmtp.Context() as ctx:
        a, b = ctx.socket(zmtp.PULL), ctx.socket(zmtp.PUSH)
        for bad in (zmtp.PUSH, zmtp.REQ):
            with pytest.raises(ValueError, match="cannot be a control socket"):
                Proxy(a, b, control=ctx.socket(bad))


async def test_arguments_are_checked() -> None:
    async with zmtp.Context() as ctx:
        a, b = ctx.socket(zmtp.PULL), ctx.socket(zmtp.PUSH)
        with pytest.raises(TypeError, match="frontend must be a zmtp socket"):
            Proxy("tcp://x", b)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="capture must be a zmtp socket"):
            Proxy(a, b, capture=object())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="batch_size"):
            Proxy(a, b, batch_size=0)
        proxy = Proxy(a, b)
        proxy.terminate()
        assert await proxy.run() == ProxyStatistics()
        with pytest.raises(RuntimeError, match="runs only once"):
            await proxy.run()


# ---------------------------------------------------------------------- lifecycle


async def test_cancellation_ends_the_proxy_and_leaves_sockets_usable() -> None:
    async with context() as ctx:
        frontend, backend = ctx.socket(zmtp.PULL), ctx.socket(zmtp.PUSH)
        await frontend.bind("inproc://f")
        await backend.bind("inproc://b")
        producer, consumer = ctx.socket(zmtp.PUSH), ctx.socket(zmtp.PULL)
        await producer.connect("inproc://f")
        await consumer.connect("inproc://b")
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run, frontend, backend)
                await producer.send_multipart([b"1"])
                assert await consumer.recv_multipart() == [b"1"]
                scope.cancel()
        assert scope.cancelled_caught
        # Nothing is forwarded any more, and the sockets still work.
        await producer.send_multipart([b"2"])
        assert await frontend.recv_multipart() == [b"2"]
        await backend.send_multipart([b"3"])
        assert await consumer.recv_multipart() == [b"3"]


async def test_socket_closed_under_the_proxy_raises() -> None:
    async with context() as ctx:
        frontend, backend = ctx.socket(zmtp.PULL), ctx.socket(zmtp.PUSH)
        with pytest.RaisesGroup(trio.ClosedResourceError, flatten_subgroups=True):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run, frontend, backend)
                await trio.testing.wait_all_tasks_blocked()
                await frontend.aclose()


# ---------------------------------------------------------------------- backpressure


async def test_backpressure_blocks_one_direction_only_without_loss() -> None:
    """A worker that stops reading fills its queue; the proxy stops reading the
    frontend (holding at most one batch), the sender blocks, replies still flow the
    other way, and once the worker reads again every message arrives in order."""
    n = 300
    async with context() as ctx:
        frontend = ctx.socket(zmtp.DEALER, rcvhwm=10)
        backend = ctx.socket(zmtp.DEALER, sndhwm=10)
        await frontend.bind("inproc://f")
        await backend.bind("inproc://b")
        client = ctx.socket(zmtp.DEALER, sndhwm=10)
        worker = ctx.socket(zmtp.DEALER, rcvhwm=10)
        await client.connect("inproc://f")
        await worker.connect("inproc://b")
        sent = 0

        async def produce() -> None:
            nonlocal sent
            for i in range(n):
                await client.send_multipart([b"%d" % i])
                sent += 1

        async with (
            running(frontend, backend, batch_size=50) as proxy,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(produce)
            await trio.testing.wait_all_tasks_blocked()
            stats = proxy.statistics().frontend_to_backend
            # Bounded: the worker's queue (20 for an inproc pair of HWM 10),
            # the proxy's one batch, the client's queue to the proxy (20).
            assert sent < n
            assert stats.sent.messages == 20
            assert stats.received.messages - stats.sent.messages <= 50
            assert sent == stats.received.messages + 20
            # The other direction is not blocked.
            await worker.send_multipart([b"reply"])
            assert await client.recv_multipart() == [b"reply"]
            got = [await worker.recv_multipart() for _ in range(n)]
    assert got == [[b"%d" % i] for i in range(n)]


# ---------------------------------------------------------------------- statistics


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=8, max_size=8))
def test_libzmq_statistics_frames_round_trip(values: list[int]) -> None:
    frames = [struct.pack("=Q", v) for v in values]
    stats = ProxyStatistics.from_libzmq_frames(frames)
    assert stats.as_libzmq_frames() == frames
    assert stats.frontend_to_backend.received.frames == values[0]
    assert stats.backend_to_frontend.sent.bytes == values[3]
    assert stats.frontend_to_backend.sent.frames == values[6]


def test_libzmq_statistics_frames_are_checked() -> None:
    with pytest.raises(ValueError, match="8 frames of 8 bytes"):
        ProxyStatistics.from_libzmq_frames([b"\0" * 8] * 7)
    with pytest.raises(ValueError, match="8 frames of 8 bytes"):
        ProxyStatistics.from_libzmq_frames([b"\0" * 4] * 8)
