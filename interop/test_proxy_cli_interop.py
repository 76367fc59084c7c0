"""``python -m proxy`` as a subprocess, with libzmq 4.3.5 peers (pyzmq) on both sides.

The proxy binds ``tcp://127.0.0.1:0`` and prints the resolved endpoints; the tests read
them, run pyzmq clients, workers, capture readers and steering sockets in worker
threads, then stop the proxy with a signal or TERMINATE and check its exit status and
``final statistics:`` line.  Every wait is for an output line or a message.
"""

from __future__ import annotations

import signal
import threading

import pytest
import trio

from proxy._testing import ProxyProcess, parse_final_statistics

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

LOCAL = "tcp://127.0.0.1:0"


async def test_queue_subprocess_with_libzmq_clients_and_workers(
    zmq_socket: SocketFactory,
) -> None:
    n = 30
    with trio.fail_after(4 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"ROUTER@{LOCAL}", "--backend", f"DEALER@{LOCAL}"
        ) as proc:
            eps = await proc.endpoints()
            stop = threading.Event()
            workers = []
            for k, kind in enumerate([zmq.REP, zmq.DEALER, zmq.REP]):
                w = zmq_socket(kind)
                w.connect(eps["backend"])
                workers.append((serve, (w, stop, b"w%d" % k)))
            clients = []
            for k in range(3):
                c = zmq_socket(zmq.REQ)
                c.connect(eps["frontend"])
                clients.append((b"req%d" % k, req_client, c))
                d = zmq_socket(zmq.DEALER, IDENTITY=b"dealer%d" % k)
                d.connect(eps["frontend"])
                clients.append((b"dealer%d" % k, dealer_client, d))
            served, replies = await workers_and_clients(
                workers, [(fn, (c, name, n)) for name, fn, c in clients], stop
            )
            proc.send_signal(signal.SIGINT)
            status, rest, err = await proc.finish()
    assert status == 0, err
    tags = {b"w0", b"w1", b"w2"}
    for (name, _fn, _c), got in zip(clients, replies, strict=True):
        check_replies(name, got, n, tags)
    total = n * len(clients)
    assert sum(served) == total
    stats = parse_final_statistics(rest[-1])
    assert stats["frontend->backend"][0] == total
    assert stats["backend->frontend"][0] == total


async def test_pipeline_subprocess_loses_nothing(zmq_socket: SocketFactory) -> None:
    n = 5000
    with trio.fail_after(4 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"PULL@{LOCAL}", "--backend", f"PUSH@{LOCAL}", "--sndhwm", "100"
        ) as proc:
            eps = await proc.endpoints()
            producer = zmq_socket(zmq.PUSH)
            producer.connect(eps["frontend"])
            consumers = [zmq_socket(zmq.PULL) for _ in range(2)]
            for c in consumers:
                c.connect(eps["backend"])

            def produce() -> None:
                for i in range(n):
                    producer.send_multipart([b"%d" % i, b"body"])

            shared: list[Frames] = []
            lock = threading.Lock()
            _, *received = await in_threads(
                (produce, ()), *[(collect, (c, n, shared, lock)) for c in consumers]
            )
            proc.send_signal(signal.SIGTERM)
            status, rest, err = await proc.finish()
    assert status == 0, err
    assert sorted(int(m[0]) for got in received for m in got) == list(range(n))
    for got in received:
        seq = [int(m[0]) for m in got]
        assert seq == sorted(seq)
    assert parse_final_statistics(rest[-1])["frontend->backend"][:2] == (n, 2 * n)


async def test_capture_subprocess_read_by_libzmq_pull(zmq_socket: SocketFactory) -> None:
    """The capture PUSH connects (``>``) to the reader, so its pipe exists before any
    traffic and no copy is dropped for want of a peer."""
    n = 20
    tap = zmq_socket(zmq.PULL)
    tap.bind("tcp://127.0.0.1:*")
    tap_ep = tap.getsockopt_string(zmq.LAST_ENDPOINT)
    with trio.fail_after(2 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"PULL@{LOCAL}",
            "--backend", f"PUSH@{LOCAL}",
            "--capture", f"PUSH>{tap_ep}",
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            producer = zmq_socket(zmq.PUSH)
            producer.connect(eps["frontend"])
            consumer = zmq_socket(zmq.PULL)
            consumer.connect(eps["backend"])

            def traffic() -> tuple[list[Frames], list[Frames]]:
                for i in range(n):
                    producer.send_multipart([b"part1", b"%d" % i])
                got = [consumer.recv_multipart() for _ in range(n)]
                copies = [tap.recv_multipart() for _ in range(n)]
                return got, copies

            got, copies = await trio.to_thread.run_sync(traffic)
            proc.send_signal(signal.SIGINT)
            status, rest, err = await proc.finish()
    assert status == 0, err
    expected = [[b"part1", b"%d" % i] for i in range(n)]
    assert got == expected
    assert copies == expected
    assert parse_final_statistics(rest[-1])["capture_dropped"] == (0, 0, 0)


@pytest.mark.parametrize("control", ["REP", "PAIR"])
async def test_steering_subprocess_by_libzmq_req_and_pair(
    zmq_socket: SocketFactory, control: str
) -> None:
    theirs = {"REP": zmq.REQ, "PAIR": zmq.PAIR}[control]
    with trio.fail_after(2 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"ROUTER@{LOCAL}",
            "--backend", f"DEALER@{LOCAL}",
            "--control", f"{control}@{LOCAL}",
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            ctl = zmq_socket(theirs)
            ctl.connect(eps["control"])
            client = zmq_socket(zmq.DEALER)
            client.connect(eps["frontend"])
            worker = zmq_socket(zmq.DEALER)
            worker.connect(eps["backend"])

            def script() -> list[Frames]:
                replies = [steer(ctl, b"PAUSE"), steer(ctl, b"RESUME")]
                client.send_multipart([b"a", b"b", b"c"])
                rid, *body = worker.recv_multipart()
                assert body == [b"a", b"b", b"c"]
                worker.send_multipart([rid, b"xy"])
                assert client.recv_multipart() == [b"xy"]
                replies.append(steer(ctl, b"STATISTICS"))
                replies.append(steer(ctl, b"TERMINATE"))
                return replies

            pause, resume, stats, terminate = await trio.to_thread.run_sync(script)
            status, rest, err = await proc.finish()
    assert status == 0, err
    assert pause == resume == terminate == [b""]
    # specs/libzmq-behaviour.md §6.2: one 3-part request through a ROUTER and a 1-part reply.
    assert u64s(stats) == [4, 8, 2, 7, 2, 7, 4, 8]
    assert "zmtp-proxy: stopped by TERMINATE" in rest
    final = parse_final_statistics(rest[-1])
    assert final["frontend->backend"] == (1, 4, 8)
    assert final["backend->frontend"] == (1, 2, 7)


async def test_paused_subprocess_holds_messages_until_resume(zmq_socket: SocketFactory) -> None:
    """PAUSE (documented meaning) holds traffic: after PAUSE, messages sent are not
    counted; RESUME delivers all of them in order."""
    with trio.fail_after(2 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"PULL@{LOCAL}",
            "--backend", f"PUSH@{LOCAL}",
            "--control", f"REP@{LOCAL}",
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            ctl = zmq_socket(zmq.REQ)
            ctl.connect(eps["control"])
            producer = zmq_socket(zmq.PUSH)
            producer.connect(eps["frontend"])
            consumer = zmq_socket(zmq.PULL)
            consumer.connect(eps["backend"])

            def script() -> tuple[list[int], list[bytes]]:
                assert steer(ctl, b"PAUSE") == [b""]
                for i in range(5):
                    producer.send(b"%d" % i)
                held = u64s(steer(ctl, b"STATISTICS"))
                assert steer(ctl, b"RESUME") == [b""]
                got = [consumer.recv() for _ in range(5)]
                assert steer(ctl, b"TERMINATE") == [b""]
                return held, got

            held, got = await trio.to_thread.run_sync(script)
            status, _rest, err = await proc.finish()
    assert status == 0, err
    assert held[0] == 0  # paused before anything was sent: nothing was taken
    assert got == [b"%d" % i for i in range(5)]


async def test_forwarder_subprocess_with_libzmq_pubsub(zmq_socket: SocketFactory) -> None:
    """XSUB<->XPUB: subscriptions upstream, data downstream, unsubscribes too; the
    forwarder connects out to two publishers (``XSUB>a,>b``)."""
    publishers = []
    for _ in range(2):
        pub = zmq_socket(zmq.XPUB)
        pub.bind("tcp://127.0.0.1:*")
        publishers.append(pub)
    upstream = ",>".join(p.getsockopt_string(zmq.LAST_ENDPOINT) for p in publishers)
    with trio.fail_after(2 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"XSUB>{upstream}", "--backend", f"XPUB@{LOCAL}"
        ) as proc:
            eps = await proc.endpoints()
            sub = zmq_socket(zmq.SUB)
            sub.connect(eps["backend"])

            def script() -> None:
                subscribe(sub, b"news")
                for pub in publishers:  # the subscription reaches every publisher
                    assert pub.recv() == b"\x01news"
                publishers[0].send_multipart([b"news", b"from 0"])
                assert sub.recv_multipart() == [b"news", b"from 0"]
                publishers[1].send_multipart([b"weather", b"filtered upstream"])
                publishers[1].send_multipart([b"news", b"from 1"])
                assert sub.recv_multipart() == [b"news", b"from 1"]
                unsubscribe(sub, b"news")
                for pub in publishers:
                    assert pub.recv() == b"\x00news"

            await trio.to_thread.run_sync(script)
            proc.send_signal(signal.SIGINT)
            status, rest, err = await proc.finish()
    assert status == 0, err
    stats = parse_final_statistics(rest[-1])
    assert stats["frontend->backend"][:2] == (2, 4)
    assert stats["backend->frontend"][:2] == (2, 2)


async def test_capture_subprocess_read_by_libzmq_sub(zmq_socket: SocketFactory) -> None:
    n = 50
    with trio.fail_after(2 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"PULL@{LOCAL}",
            "--backend", f"PUSH@{LOCAL}",
            "--capture", f"PUB@{LOCAL}",
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            tap = zmq_socket(zmq.SUB)
            tap.connect(eps["capture"])
            subscribe(tap, b"")
            producer = zmq_socket(zmq.PUSH)
            producer.connect(eps["frontend"])
            consumer = zmq_socket(zmq.PULL)
            consumer.connect(eps["backend"])

            def script() -> list[Frames]:
                def probe() -> None:
                    producer.send(b"probe")
                    assert consumer.recv() == b"probe"

                sync_capture(probe, tap)
                for i in range(n):
                    producer.send_multipart([b"%d" % i, b"body"])
                    assert consumer.recv_multipart() == [b"%d" % i, b"body"]
                copies: list[Frames] = []
                while len(copies) < n:
                    msg = tap.recv_multipart()
                    if msg != [b"probe"]:
                        copies.append(msg)
                return copies

            copies = await trio.to_thread.run_sync(script)
            proc.send_signal(signal.SIGINT)
            status, _rest, err = await proc.finish()
    assert status == 0, err
    assert copies == [[b"%d" % i, b"body"] for i in range(n)]


async def test_sub_control_terminated_by_libzmq_publisher(zmq_socket: SocketFactory) -> None:
    """A SUB control (subscribed to everything by the command line) takes commands from
    a publisher and sends no replies; an XPUB waits for the subscription first."""
    with trio.fail_after(2 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"PULL@{LOCAL}",
            "--backend", f"PUSH@{LOCAL}",
            "--control", f"SUB@{LOCAL}",
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            commander = zmq_socket(zmq.XPUB)
            commander.connect(eps["control"])

            def script() -> None:
                assert commander.recv() == b"\x01"  # subscribed to every topic
                commander.send(b"TERMINATE")

            await trio.to_thread.run_sync(script)
            status, rest, err = await proc.finish()
    assert status == 0, err
    assert "zmtp-proxy: stopped by TERMINATE" in rest
