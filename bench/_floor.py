"""The floor: what plain trio does with no ZMTP at all (``python -m bench.worker trio.ROLE``).

These roles show what the design can reach on this machine, so that a gap to libzmq
can be split into "trio's own cost" and "our cost above trio":

* ``stream_tx``/``stream_rx``: ZMTP-shaped short frames (flags byte, size byte, body)
  over a plain trio TCP stream, batched: the sender builds each chunk of
  :data:`CHUNK` messages from a list of header and body pieces, as our encoder does,
  and writes it with one ``send_all``; the receiver cuts every complete frame out of
  what one ``receive_some`` returned, as our decoder does, making one ``bytes`` per
  message.  No queues, no HWM, no multipart, no sockets layer.
* ``ping``/``pong``: a 64-byte round trip with ``os.read``/``os.write`` on the file
  descriptor and ``trio.lowlevel.wait_readable`` only when the kernel has nothing,
  the least a trio program can do per round trip.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import trio

from ._protocol import cpu, latency_summary, payload, ready, result

__all__ = ["ROLES"]

CHUNK = 1000

Params = dict[str, Any]


def _tcp_nodelay(sock: trio.socket.SocketType) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _listen() -> trio.SocketListener:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    host, port = listener.socket.getsockname()[:2]
    ready(f"tcp://{host}:{port}")
    return listener


def _host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    return host, int(port)


async def stream_rx(p: Params) -> None:
    """Receive ``count`` short frames; the clock starts at the first."""
    count = p["count"]
    listener = await _listen()
    stream = await listener.accept()
    buf = b""
    got = 0
    t0 = c0 = 0.0
    first = 0
    while got < count:
        data = await stream.receive_some(256 * 1024)
        if not data:
            break
        buf = buf + data if buf else data
        n = len(buf)
        pos = 0
        msgs: list[list[bytes]] = []
        append = msgs.append
        while n - pos >= 2:
            end = pos + 2 + buf[pos + 1]
            if end > n:
                break
            append([buf[pos + 2 : end]])
            pos = end
        buf = buf[pos:]
        if not got and msgs:
            t0, c0 = time.monotonic(), cpu()
            first = len(msgs)
        got += len(msgs)
    t1, c1 = time.monotonic(), cpu()
    await stream.aclose()
    result({"t0": t0, "t1": t1, "timed": got - first, "count": got, "cpu_s": c1 - c0})


async def stream_tx(p: Params) -> None:
    """Send ``count`` short frames of ``size`` bytes, in chunks of CHUNK."""
    count, size = p["count"], p["size"]
    if size >= 256:
        raise ValueError("the floor streams short frames only (< 256 bytes)")
    stream = await trio.open_tcp_stream(*_host_port(p["endpoint"]))
    _tcp_nodelay(stream.socket)
    messages = [[payload(size)]] * CHUNK
    headers = [bytes((0, n)) for n in range(256)]
    sent = 0
    c0 = cpu()
    while sent < count:
        batch = messages[: min(CHUNK, count - sent)]
        pieces: list[bytes] = []
        append = pieces.append
        for msg in batch:
            body = msg[0]
            append(headers[len(body)])
            append(body)
        await stream.send_all(b"".join(pieces))
        sent += len(batch)
    await stream.aclose()
    result({"count": count, "cpu_s": cpu() - c0})


async def _round_trips(fd: int, n: int, body: bytes | None) -> list[int]:
    """``n`` round trips on ``fd``: send ``body`` and wait for the answer (client), or
    (``body`` None) wait for a request and echo it (server)."""
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t = clock()
        if body is not None:
            os.write(fd, body)
        while True:
            try:
                data = os.read(fd, 65536)
                break
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
        if body is None:
            os.write(fd, data)
        samples.append(clock() - t)
    return samples


async def pong(p: Params) -> None:
    """Echo ``count`` requests."""
    listener = await _listen()
    stream = await listener.accept()
    _tcp_nodelay(stream.socket)
    await _round_trips(stream.socket.fileno(), p["count"], None)
    await stream.aclose()
    result({})


async def ping(p: Params) -> None:
    """``warmup`` untimed round trips, then ``count`` timed ones."""
    stream = await trio.open_tcp_stream(*_host_port(p["endpoint"]))
    _tcp_nodelay(stream.socket)
    fd = stream.socket.fileno()
    body = payload(p["size"])
    await _round_trips(fd, p["warmup"], body)
    samples = await _round_trips(fd, p["count"], body)
    await stream.aclose()
    result(latency_summary(samples))


def _runner(fn: Callable[[Params], Any]) -> Callable[[Params], None]:
    def run(p: Params) -> None:
        trio.run(fn, p)

    return run


ROLES: dict[str, Callable[[Params], None]] = {
    name: _runner(fn)
    for name, fn in {
        "stream_rx": stream_rx,
        "stream_tx": stream_tx,
        "ping": ping,
        "pong": pong,
    }.items()
}
