"""The proxy in-process, with libzmq 4.3.5 peers (pyzmq) on both sides.

Our :class:`proxy.Proxy` runs in trio; every client, worker, capture reader and
steering socket is a pyzmq socket driven from worker threads (RCVTIMEO/SNDTIMEO from
the ``zmq_socket`` fixture turn a hang into a failure).  Worker threads serve until
the test tells them to stop, so nothing waits on a clock.

libzmq's own ``zmq_proxy_steerable`` is run through the same steering script, to show
that our STATISTICS reply is byte-for-byte what libzmq sends for the same traffic, and
to pin down libzmq 4.3.5's PAUSE/RESUME inversion (specs/libzmq-behaviour.md §6.3),
which we do not copy.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

import zmtp
from proxy import Proxy, ProxyStatistics

from ._helpers import TIMEOUT, SocketFactory
from ._proxy_helpers import (
    Frames,
    check_replies,
    collect,
    dealer_client,
    in_threads,
    req_client,
    serve,
    steer,
    subscribe,
    sync_capture,
    u64s,
    unsubscribe,
    workers_and_clients,
)

zmq = pytest.importorskip("zmq")

pytestmark = pytest.mark.interop

# ---------------------------------------------------------------------- our proxy


@dataclass
class Running:
    proxy: Proxy
    endpoints: dict[str, str]
    sockets: dict[str, zmtp.Socket]
    result: list[ProxyStatistics] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)


@asynccontextmanager
async def our_proxy(**types: zmtp.SocketType) -> AsyncIterator[Running]:
    """Our proxy on tcp://127.0.0.1 free ports; ``types`` maps role to socket type."""
    async with zmtp.Context() as ctx:
        socks = {role: ctx.socket(t, linger=0) for role, t in types.items()}
        eps = {role: await s.bind("tcp://127.0.0.1:0") for role, s in socks.items()}
        proxy = Proxy(
            socks["frontend"],
            socks["backend"],
            capture=socks.get("capture"),
            control=socks.get("control"),
        )
        running = Running(proxy, eps, socks)

        async def run() -> None:
            running.result.append(await proxy.run())
            running.done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            yield running
            nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------- shared queue


async def test_many_libzmq_clients_and_workers_through_router_dealer(
    zmq_socket: SocketFactory,
) -> None:
    n = 40
    with trio.fail_after(4 * TIMEOUT):
        async with our_proxy(frontend=zmtp.ROUTER, backend=zmtp.DEALER) as p:
            stop = threading.Event()
            workers = []
            for k, kind in enumerate([zmq.REP, zmq.REP, zmq.DEALER, zmq.DEALER]):
                w = zmq_socket(kind)
                w.connect(p.endpoints["backend"])
                workers.append((serve, (w, stop, b"w%d" % k)))
            clients = []
            for k in range(4):
                c = zmq_socket(zmq.REQ)
                c.connect(p.endpoints["frontend"])
                clients.append((b"req%d" % k, req_client, c))
            for k in range(3):
                c = zmq_socket(zmq.DEALER, IDENTITY=b"dealer%d" % k)
                c.connect(p.endpoints["frontend"])
                clients.append((b"dealer%d" % k, dealer_client, c))

            served, replies = await workers_and_clients(
                workers, [(fn, (c, name, n)) for name, fn, c in clients], stop
            )
            stats = p.proxy.statistics()
    tags = {b"w%d" % k for k in range(4)}
    for (name, _fn, _c), got in zip(clients, replies, strict=True):
        check_replies(name, got, n, tags)
    total = n * len(clients)
    assert sum(served) == total
    assert stats.frontend_to_backend.messages == total
    assert stats.backend_to_frontend.messages == total


# ---------------------------------------------------------------------- streamer


async def test_libzmq_push_pull_pipeline_loses_nothing(zmq_socket: SocketFactory) -> None:
    n = 3000
    with trio.fail_after(4 * TIMEOUT):
        async with our_proxy(frontend=zmtp.PULL, backend=zmtp.PUSH) as p:
            producers = []
            for _ in range(2):
                s = zmq_socket(zmq.PUSH)
                s.connect(p.endpoints["frontend"])
                producers.append(s)
            consumers = []
            for _ in range(2):
                s = zmq_socket(zmq.PULL)
                s.connect(p.endpoints["backend"])
                consumers.append(s)

            def produce(sock: Any, k: int) -> None:
                for i in range(n):
                    sock.send_multipart([b"p%d" % k, b"%d" % i, b"x" * (i % 50)])

            shared: list[Frames] = []
            lock = threading.Lock()
            results = await in_threads(
                *[(produce, (s, k)) for k, s in enumerate(producers)],
                *[(collect, (s, 2 * n, shared, lock)) for s in consumers],
            )
            stats = p.proxy.statistics()
    received = results[2:]
    everything = sorted((m[0], int(m[1])) for got in received for m in got)
    assert everything == sorted((b"p%d" % k, i) for k in range(2) for i in range(n))
    for got in received:
        for k in range(2):
            # Order is kept along each path: a producer's messages, as one consumer saw them.
            seq = [int(m[1]) for m in got if m[0] == b"p%d" % k]
            assert seq == sorted(seq)
        assert all(m[2] == b"x" * (int(m[1]) % 50) for m in got)
    assert stats.frontend_to_backend.sent.frames == 3 * 2 * n


# ---------------------------------------------------------------------- capture


async def test_capture_read_by_libzmq_pull(zmq_socket: SocketFactory) -> None:
    n = 50
    with trio.fail_after(2 * TIMEOUT):
        async with our_proxy(frontend=zmtp.ROUTER, backend=zmtp.DEALER, capture=zmtp.PUSH) as p:
            tap = zmq_socket(zmq.PULL)
            tap.connect(p.endpoints["capture"])
            # Copies the capture socket cannot take are dropped: wait for the reader.
            await p.sockets["capture"].wait_for_peers(1)
            client = zmq_socket(zmq.DEALER, IDENTITY=b"C")
            client.connect(p.endpoints["frontend"])
            worker = zmq_socket(zmq.DEALER)
            worker.connect(p.endpoints["backend"])
            stop = threading.Event()
            _, (replies,) = await workers_and_clients(
                [(serve, (worker, stop, b"W"))], [(dealer_client, (client, b"C", n))], stop
            )
            copies = await trio.to_thread.run_sync(
                lambda: [tap.recv_multipart() for _ in range(2 * n)]
            )
            stats = p.proxy.statistics()
    check_replies(b"C", replies, n, {b"W"})
    requests = [c for c in copies if c[-1] != b"W"]
    answers = [c for c in copies if c[-1] == b"W"]
    # Every message, both directions, multipart and routing id included.
    assert requests == [[b"C", b"", b"C", b"%d" % i] for i in range(n)]
    assert sorted(answers, key=lambda m: int(m[3])) == [
        [b"C", b"", b"C", b"%d" % i, b"W"] for i in range(n)
    ]
    assert stats.capture_dropped == 0


# ---------------------------------------------------------------------- steering


@pytest.mark.parametrize("control_type", ["REP", "PAIR"])
async def test_steering_by_libzmq_req_and_pair(
    zmq_socket: SocketFactory, control_type: str
) -> None:
    ours = {"REP": zmtp.REP, "PAIR": zmtp.PAIR}[control_type]
    theirs = {"REP": zmq.REQ, "PAIR": zmq.PAIR}[control_type]
    with trio.fail_after(2 * TIMEOUT):
        async with our_proxy(frontend=zmtp.PULL, backend=zmtp.PUSH, control=ours) as p:
            ctl = zmq_socket(theirs)
            ctl.connect(p.endpoints["control"])
            producer = zmq_socket(zmq.PUSH)
            producer.connect(p.endpoints["frontend"])
            consumer = zmq_socket(zmq.PULL)
            consumer.connect(p.endpoints["backend"])

            def command(cmd: bytes) -> Frames:
                return steer(ctl, cmd)

            assert u64s(await trio.to_thread.run_sync(command, b"STATISTICS")) == [0] * 8
            assert await trio.to_thread.run_sync(command, b"PAUSE") == [b""]
            assert p.proxy.paused
            for i in range(3):
                await trio.to_thread.run_sync(producer.send_multipart, [b"m", b"%d" % i])
            assert await trio.to_thread.run_sync(command, b"RESUME") == [b""]
            assert not p.proxy.paused
            got = [await trio.to_thread.run_sync(consumer.recv_multipart) for _ in range(3)]
            assert got == [[b"m", b"%d" % i] for i in range(3)]
            reply = await trio.to_thread.run_sync(command, b"STATISTICS")
            # 3 messages of 2 frames and 2 bytes: frames are counted, host order.
            assert u64s(reply) == [6, 6, 0, 0, 0, 0, 6, 6]
            assert await trio.to_thread.run_sync(command, b"TERMINATE") == [b""]
            await p.done.wait()  # run() returned by itself
    (final,) = p.result
    assert final.as_libzmq_frames() == reply
    assert final.frontend_to_backend.messages == 3


# ---------------------------------------------------------------------- against libzmq's proxy


@asynccontextmanager
async def libzmq_proxy(
    zmq_socket: SocketFactory, frontend: int, backend: int, control: int, where: str = "tcp"
) -> AsyncIterator[dict[str, str]]:
    """libzmq's ``zmq_proxy_steerable`` in a thread; the block must TERMINATE it."""
    socks = {"frontend": zmq_socket(frontend), "backend": zmq_socket(backend)}
    socks["control"] = zmq_socket(control)
    eps = {}
    for role, s in socks.items():
        if where == "tcp":
            s.bind("tcp://127.0.0.1:*")
            eps[role] = s.getsockopt_string(zmq.LAST_ENDPOINT)
        else:
            eps[role] = f"inproc://libzmq-proxy-{role}"
            s.bind(eps[role])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            trio.to_thread.run_sync,
            zmq.proxy_steerable,
            socks["frontend"],
            socks["backend"],
            None,
            socks["control"],
        )
        yield eps


def statistics_scenario(client: Any, worker: Any, ctl: Any) -> tuple[Frames, Frames]:
    """Ten 3-part requests through a ROUTER and 2-part replies; STATISTICS before and
    after, then TERMINATE."""
    before = steer(ctl, b"STATISTICS")
    for i in range(10):
        client.send_multipart([b"a", b"bb", b"%d" % i])
        rid, *body = worker.recv_multipart()
        assert body == [b"a", b"bb", b"%d" % i]
        worker.send_multipart([rid, b"reply", b"%d" % i])
        assert client.recv_multipart() == [b"reply", b"%d" % i]
    after = steer(ctl, b"STATISTICS")
    assert steer(ctl, b"TERMINATE") == [b""]
    return before, after


@pytest.mark.parametrize("implementation", ["libzmq", "zmtp"])
async def test_statistics_reply_matches_libzmq_byte_for_byte(
    zmq_socket: SocketFactory, implementation: str
) -> None:
    """The same traffic through libzmq's proxy and ours gives the same 8 frames."""
    with trio.fail_after(2 * TIMEOUT):
        if implementation == "libzmq":
            cm: Any = libzmq_proxy(zmq_socket, zmq.ROUTER, zmq.DEALER, zmq.REP)
        else:
            cm = our_proxy(frontend=zmtp.ROUTER, backend=zmtp.DEALER, control=zmtp.REP)
        async with cm as running:
            eps = running if implementation == "libzmq" else running.endpoints
            client = zmq_socket(zmq.DEALER)
            worker = zmq_socket(zmq.DEALER)
            ctl = zmq_socket(zmq.REQ)
            client.connect(eps["frontend"])
            worker.connect(eps["backend"])
            ctl.connect(eps["control"])
            before, after = await trio.to_thread.run_sync(statistics_scenario, client, worker, ctl)
    assert before == [struct.pack("=Q", 0)] * 8
    digits = sum(len(b"%d" % i) for i in range(10))
    # Frames and bytes: [rid(5) a bb i] in, [rid reply i] back (specs/libzmq-behaviour.md §6.2).
    assert u64s(after) == [
        40, 10 * 8 + digits,   # frontend received
        30, 10 * 10 + digits,  # frontend sent (the routing id frame counts)
        30, 10 * 10 + digits,  # backend received
        40, 10 * 8 + digits,   # backend sent
    ]  # fmt: skip


async def test_libzmq_4_3_5_swaps_pause_and_resume(zmq_socket: SocketFactory) -> None:
    """libzmq 4.3.5: PAUSE resumes and RESUME pauses (fixed after the release, libzmq
    PR #4600).  Ours does what the names say (tests/test_proxy.py); this pins down what
    a tool written against pyzmq 27 has seen.  Over inproc a sent message is in the
    proxy's queue at once, so a second STATISTICS after it proves it was not taken."""

    def script(producer: Any, consumer: Any, ctl: Any) -> None:
        assert steer(ctl, b"PAUSE") == [b""]
        producer.send(b"m0")
        assert consumer.recv() == b"m0"  # PAUSE did not pause
        assert steer(ctl, b"RESUME") == [b""]
        producer.send(b"m1")
        steer(ctl, b"STATISTICS")
        assert u64s(steer(ctl, b"STATISTICS"))[0] == 1  # RESUME paused: m1 not taken
        assert steer(ctl, b"PAUSE") == [b""]
        assert consumer.recv() == b"m1"
        assert steer(ctl, b"TERMINATE") == [b""]

    with trio.fail_after(2 * TIMEOUT):
        async with libzmq_proxy(zmq_socket, zmq.PULL, zmq.PUSH, zmq.REP, "inproc") as eps:
            producer = zmq_socket(zmq.PUSH)
            consumer = zmq_socket(zmq.PULL)
            ctl = zmq_socket(zmq.REQ)
            producer.connect(eps["frontend"])
            consumer.connect(eps["backend"])
            ctl.connect(eps["control"])
            await trio.to_thread.run_sync(script, producer, consumer, ctl)


# ---------------------------------------------------------------------- forwarder


async def test_libzmq_pubsub_through_xsub_xpub(zmq_socket: SocketFactory) -> None:
    with trio.fail_after(2 * TIMEOUT):
        async with our_proxy(frontend=zmtp.XSUB, backend=zmtp.XPUB, capture=zmtp.PUSH) as p:
            tap = zmq_socket(zmq.PULL)
            tap.connect(p.endpoints["capture"])
            await p.sockets["capture"].wait_for_peers(1)
            publisher = zmq_socket(zmq.XPUB)
            publisher.connect(p.endpoints["frontend"])
            sub_a = zmq_socket(zmq.SUB)
            sub_b = zmq_socket(zmq.SUB)
            sub_a.connect(p.endpoints["backend"])
            sub_b.connect(p.endpoints["backend"])

            def script() -> list[Frames]:
                subscribe(sub_a, b"A")
                subscribe(sub_b, b"B")
                # Subscriptions travel upstream (an XPUB application sees them).
                assert {publisher.recv(), publisher.recv()} == {b"\x01A", b"\x01B"}
                for topic in (b"A", b"B", b"C"):
                    publisher.send_multipart([topic, b"1"])
                # Data travels downstream, each subscriber getting its topic only.
                assert sub_a.recv_multipart() == [b"A", b"1"]
                assert sub_b.recv_multipart() == [b"B", b"1"]
                # Unsubscribes travel too: A's last subscriber leaves.
                unsubscribe(sub_a, b"A")
                assert publisher.recv() == b"\x00A"
                # ...and the publisher stops sending A (it filters, so B2 comes first).
                publisher.send_multipart([b"A", b"2"])
                publisher.send_multipart([b"B", b"2"])
                assert sub_b.recv_multipart() == [b"B", b"2"]
                return [tap.recv_multipart() for _ in range(6)]

            copies = await trio.to_thread.run_sync(script)
            stats = p.proxy.statistics()
    assert sorted(copies[:2]) == [[b"\x01A"], [b"\x01B"]]
    assert copies[2:] == [[b"A", b"1"], [b"B", b"1"], [b"\x00A"], [b"B", b"2"]]
    assert stats.backend_to_frontend.messages == 3
    assert stats.frontend_to_backend.messages == 3


async def test_pub_capture_read_by_libzmq_sub(zmq_socket: SocketFactory) -> None:
    n = 100
    with trio.fail_after(2 * TIMEOUT):
        async with our_proxy(frontend=zmtp.PULL, backend=zmtp.PUSH, capture=zmtp.PUB) as p:
            tap = zmq_socket(zmq.SUB)
            tap.connect(p.endpoints["capture"])
            subscribe(tap, b"")
            producer = zmq_socket(zmq.PUSH)
            producer.connect(p.endpoints["frontend"])
            consumer = zmq_socket(zmq.PULL)
            consumer.connect(p.endpoints["backend"])

            def script() -> tuple[list[Frames], list[Frames]]:
                def probe() -> None:
                    producer.send(b"probe")
                    assert consumer.recv() == b"probe"

                sync_capture(probe, tap)
                for i in range(n):
                    producer.send_multipart([b"%d" % i, b"body"])
                got = [consumer.recv_multipart() for _ in range(n)]
                copies: list[Frames] = []
                while len(copies) < n:
                    msg = tap.recv_multipart()
                    if msg != [b"probe"]:
                        copies.append(msg)
                return got, copies

            got, copies = await trio.to_thread.run_sync(script)
    assert got == copies == [[b"%d" % i, b"body"] for i in range(n)]
