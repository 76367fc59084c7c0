"""Many peers at once: 1,000 libzmq DEALERs, 2,000 stalled handshakes.

Each test raises the soft file-descriptor limit it needs (within the hard limit; it
skips when the hard limit is too low), synchronises on messages, replies and monitor
events, and bounds every wait.  Memory is measured from ``/proc`` (our own RSS, or the
proxy subprocess's), with bounds generous enough for malloc's noise but far below what
a per-connection or per-message leak would cost.
"""

from __future__ import annotations

import resource
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import zmtp
from proxy._testing import ProxyProcess

from ._helpers import TIMEOUT, SocketFactory

zmq = pytest.importorskip("zmq")

pytestmark = pytest.mark.interop

PEERS = 1000
REQUESTS = 10


def need_fds(n: int) -> None:
    """Raise the soft RLIMIT_NOFILE to at least ``n``, or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= n:
        return
    if hard != resource.RLIM_INFINITY and hard < n:
        pytest.skip(f"needs {n} file descriptors, hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Dealers:
    """One libzmq context for many sockets, closed at teardown (the ``dealers`` fixture)."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.context.set(zmq.MAX_SOCKETS, PEERS + 100)
        self.sockets: list[Any] = []

    def close(self) -> None:
        for s in self.sockets:
            s.close(linger=0)
        self.context.term()


def many_dealers(dealers: Dealers, endpoint: str, n: int) -> list[Any]:
    sockets = dealers.sockets
    for k in range(n):
        s = dealers.context.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IDENTITY, b"d%d" % k)
        s.connect(endpoint)
        sockets.append(s)
    return sockets


def round_trips(sockets: list[Any], requests: int) -> dict[bytes, list[list[bytes]]]:
    """Every DEALER sends ``requests`` requests; collect the replies (bounded wait)."""
    for s in sockets:
        for i in range(requests):
            s.send_multipart([b"", b"%d" % i])
    poller = zmq.Poller()
    for s in sockets:
        poller.register(s, zmq.POLLIN)
    by_socket = {s: s.getsockopt(zmq.IDENTITY) for s in sockets}
    replies: dict[bytes, list[list[bytes]]] = {name: [] for name in by_socket.values()}
    want = len(sockets) * requests
    got = 0
    while got < want:
        ready = dict(poller.poll(int(TIMEOUT * 1000)))
        if not ready:
            break  # nothing for TIMEOUT: the caller's count check fails
        for s in ready:
            while True:
                try:
                    msg = s.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                replies[by_socket[s]].append(msg)
                got += 1
    return replies


def check_round_trips(replies: dict[bytes, list[list[bytes]]], tag: bytes) -> None:
    assert sum(len(r) for r in replies.values()) == PEERS * REQUESTS
    for msgs in replies.values():
        assert sorted(int(m[1]) for m in msgs) == list(range(REQUESTS))
        assert all(m[0] == b"" and m[-1] == tag for m in msgs)


@pytest.fixture
def dealers() -> Iterator[Dealers]:
    made = Dealers()
    try:
        yield made
    finally:
        made.close()


async def test_1000_libzmq_dealers_on_one_router(dealers: Dealers) -> None:
    """1,000 pyzmq DEALERs (one context) on our ROUTER, 10 requests each: every one of
    the 10,000 replies goes back to the DEALER that asked."""
    need_fds(4 * PEERS + 200)
    with trio.fail_after(12 * TIMEOUT):
        async with zmtp.Context() as ctx:
            router = ctx.socket(zmtp.ROUTER)
            ep = await router.bind("tcp://127.0.0.1:0")

            async def echo() -> None:
                while True:
                    for msg in await router.recv_many(1000):
                        await router.send_multipart([*msg, b"ours"])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo)
                socks = await trio.to_thread.run_sync(many_dealers, dealers, ep, PEERS)
                await router.wait_for_peers(PEERS)
                replies = await trio.to_thread.run_sync(round_trips, socks, REQUESTS)
                nursery.cancel_scope.cancel()
            assert len(router.peers) == PEERS
    check_round_trips(replies, b"ours")


async def test_1000_libzmq_dealers_through_the_proxy(
    dealers: Dealers, zmq_socket: SocketFactory
) -> None:
    """The same through ``python -m proxy`` (ROUTER↔DEALER) to two libzmq workers; the
    proxy's RSS per idle connection stays far from a per-connection leak."""
    need_fds(4 * PEERS + 200)
    stop = threading.Event()

    def serve(sock: Any) -> None:
        while not stop.is_set():
            if sock.poll(20):
                for _ in range(1000):
                    try:
                        msg = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    sock.send_multipart([*msg, b"w"])

    with trio.fail_after(12 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", "ROUTER@tcp://127.0.0.1:0", "--backend", "DEALER@tcp://127.0.0.1:0"
        ) as proc:
            eps = await proc.endpoints()
            workers = [zmq_socket(zmq.DEALER) for _ in range(2)]
            for w in workers:
                w.connect(eps["backend"])
            before = rss_kib(proc.process.pid)
            async with trio.open_nursery() as nursery:
                for w in workers:
                    nursery.start_soon(trio.to_thread.run_sync, serve, w)
                try:
                    socks = await trio.to_thread.run_sync(
                        many_dealers, dealers, eps["frontend"], PEERS
                    )
                    # Every DEALER's round trips prove its connection is up.
                    replies = await trio.to_thread.run_sync(round_trips, socks, REQUESTS)
                    after = rss_kib(proc.process.pid)
                finally:
                    stop.set()
    check_round_trips(replies, b"w")
    per_connection = (after - before) / PEERS
    print(f"proxy RSS: {before} KiB -> {after} KiB, {per_connection:.1f} KiB per connection")
    assert per_connection < 100  # measured about 21 KiB; libzmq's own is about 28


async def test_2000_stalled_handshakes_are_closed_while_a_good_peer_is_served(
    zmq_socket: SocketFactory,
) -> None:
    """2,000 raw connections that send nothing or half a greeting, against our ROUTER
    with ``handshake_ivl`` 2 s (most are open at once): a libzmq DEALER's round trips
    go on meanwhile, every
    stalled connection is closed by us (its HandshakeTimeout seen, its EOF read), and
    the peers list is back to the good peer alone."""
    stalled = 2000
    need_fds(2 * stalled + 500)
    with trio.fail_after(12 * TIMEOUT):
        async with zmtp.Context() as ctx:
            router = ctx.socket(zmtp.ROUTER, handshake_ivl=2000)
            mon = router.monitor(maxlen=4 * stalled + 100)
            ep = await router.bind("tcp://127.0.0.1:0")
            port = int(ep.rpartition(":")[2])
            good = zmq_socket(zmq.DEALER, IDENTITY=b"good")
            good.connect(ep)
            await router.wait_for_peers(1)

            async def echo() -> None:
                while True:
                    msg = await router.recv_multipart()
                    await router.send_multipart(msg)

            def round_trip(i: int) -> None:
                good.send_multipart([b"", b"%d" % i])
                assert good.recv_multipart() == [b"", b"%d" % i]

            closed = 0

            async def stall(k: int, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                nonlocal closed
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                async with stream:
                    if k % 2:
                        await stream.send_all(b"\xff" + bytes(8) + b"\x7f")  # half a greeting
                    # Our greeting's first bytes: we accepted it.
                    assert await stream.receive_some(4096)
                    task_status.started()
                    while True:  # our greeting, then EOF when we drop it
                        try:
                            if not await stream.receive_some(4096):
                                break
                        except trio.BrokenResourceError:
                            break
                closed += 1

            timeouts = 0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo)
                async with trio.open_nursery() as stallers:
                    # In waves no larger than our listen backlog (256): a burst beyond
                    # it overflows the kernel's accept queue, whose dropped connections
                    # look open to the client and are never seen by us (as with libzmq).
                    for wave in range(0, stalled, 200):
                        async with trio.open_nursery() as opening:
                            for k in range(wave, wave + 200):
                                opening.start_soon(stallers.start, stall, k)
                        await trio.to_thread.run_sync(round_trip, wave)  # served throughout
                    await trio.to_thread.run_sync(round_trip, -1)
                async for event in mon:
                    assert not event.dropped
                    if event.type is zmtp.EventType.HANDSHAKE_FAILED:
                        assert event.detail["error"] == "HandshakeTimeout", event
                        timeouts += 1
                        if timeouts == stalled:
                            break
                await trio.to_thread.run_sync(round_trip, -2)
                nursery.cancel_scope.cancel()
            assert closed == stalled
            assert [p.identity for p in router.peers] == [b"good"]
