"""pyzmq peers of a proxy, for the proxy tests (in-process and subprocess).

Plain blocking functions, each run in a worker thread with one pyzmq socket (made by
the ``zmq_socket`` fixture, whose RCVTIMEO/SNDTIMEO turn a hang into a failure), and
the trio side that runs them: :func:`in_threads`, :func:`workers_and_clients`.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import trio

from ._helpers import TIMEOUT

zmq = pytest.importorskip("zmq")

Frames = list[bytes]
Call = tuple[Callable[..., Any], tuple[Any, ...]]


def req_client(sock: Any, name: bytes, n: int) -> list[Frames]:
    """Send ``[name, i]`` requests one at a time; return the replies."""
    replies = []
    for i in range(n):
        sock.send_multipart([name, b"%d" % i])
        replies.append(sock.recv_multipart())
    return replies


def dealer_client(sock: Any, name: bytes, n: int) -> list[Frames]:
    """Send ``n`` requests at once (REQ-compatible envelope), then collect the replies."""
    for i in range(n):
        sock.send_multipart([b"", name, b"%d" % i])
    return [sock.recv_multipart() for _ in range(n)]


def serve(sock: Any, stop: threading.Event, tag: bytes) -> int:
    """Answer every message with itself plus ``tag`` until ``stop``; return how many.

    Works for REP (the envelope is handled by the socket) and for DEALER workers (the
    envelope is part of the message and goes back unchanged).  Gives up after
    ``4 * TIMEOUT`` seconds, so a test that forgets to stop it cannot hang."""
    served = 0
    deadline = time.monotonic() + 4 * TIMEOUT
    while not stop.is_set() and time.monotonic() < deadline:
        if sock.poll(20):
            msg = sock.recv_multipart()
            sock.send_multipart([*msg, tag])
            served += 1
    return served


def collect(sock: Any, want: int, shared: list[Frames], lock: threading.Lock) -> list[Frames]:
    """Receive until ``shared`` (filled by every collector) holds ``want`` messages, or
    until nothing has arrived for ``TIMEOUT`` seconds (a thread cannot be cancelled, so
    it gives up by itself; the caller's count check then fails)."""
    mine: list[Frames] = []
    idle_since = time.monotonic()
    while True:
        with lock:
            if len(shared) >= want:
                return mine
        if sock.poll(20):
            msg = sock.recv_multipart()
            mine.append(msg)
            with lock:
                shared.append(msg)
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > TIMEOUT:
            return mine


def check_replies(name: bytes, replies: list[Frames], n: int, tags: set[bytes]) -> None:
    """Each reply went back to the client that asked, for each of its requests."""
    assert len(replies) == n
    if name.startswith(b"req"):
        assert [r[:2] for r in replies] == [[name, b"%d" % i] for i in range(n)]
    else:
        assert all(r[:2] == [b"", name] for r in replies)
        assert sorted(int(r[2]) for r in replies) == list(range(n))
    assert {r[-1] for r in replies} <= tags


def u64s(frames: Frames) -> list[int]:
    return [struct.unpack("=Q", f)[0] for f in frames]


def steer(sock: Any, command: bytes) -> Frames:
    sock.send(command)
    return list(sock.recv_multipart())


async def in_threads(*calls: Call) -> list[Any]:
    """Run blocking calls concurrently in worker threads; return their results."""
    results: list[Any] = [None] * len(calls)

    async def one(i: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        results[i] = await trio.to_thread.run_sync(fn, *args)

    async with trio.open_nursery() as nursery:
        for i, (fn, args) in enumerate(calls):
            nursery.start_soon(one, i, fn, args)
    return results


async def workers_and_clients(
    workers: list[Call], clients: list[Call], stop: threading.Event
) -> tuple[list[Any], list[Any]]:
    """Run serving threads and client threads; stop the servers once the clients are
    done (or failed).  Return (servers' results, clients' results)."""
    out: dict[str, list[Any]] = {}

    async def run_workers() -> None:
        out["workers"] = await in_threads(*workers)

    async def run_clients() -> None:
        try:
            out["clients"] = await in_threads(*clients)
        finally:
            stop.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_workers)
        nursery.start_soon(run_clients)
    return out["workers"], out["clients"]


def subscribe(sock: Any, topic: bytes) -> None:
    sock.setsockopt(zmq.SUBSCRIBE, topic)


def unsubscribe(sock: Any, topic: bytes) -> None:
    sock.setsockopt(zmq.UNSUBSCRIBE, topic)


def sync_capture(send_probe: Callable[[], None], tap: Any) -> None:
    """PUB drops what it sends before a subscription arrives (the slow joiner): send
    probes through the proxy until one's copy reaches the SUB tap."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        send_probe()
        if tap.poll(50):
            return
    raise AssertionError("the capture socket never delivered a copy to the SUB")
