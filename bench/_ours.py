"""Worker roles that use zmtp (run by ``python -m bench.worker ours.ROLE JSON``).

Every role takes a dict of parameters (see the driver, :mod:`bench._scenarios`) and
reports through :mod:`bench._protocol`.  ``api`` is ``"msg"`` for the per-message API
(``send_multipart``/``recv_multipart`` loops) or ``"batch"`` for the batch API
(``send_many`` of chunks of :data:`CHUNK` messages, ``recv_many(CHUNK)``).
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

import zmtp
import zmtp._native.allocator

from ._protocol import (
    DATA,
    PROBE,
    cpu,
    curve_options,
    faults,
    latency_summary,
    payload,
    ready,
    result,
    rss,
)

__all__ = ["CHUNK", "ROLES"]

#: Messages per ``send_many`` call and most per ``recv_many`` call (the batch API).
CHUNK = 1000

Params = dict[str, Any]


def _context(p: Params) -> zmtp.Context:
    """The Context a library user gets, or with ``tune_allocator`` (the tuned variant)."""
    return zmtp.Context(tune_allocator=p.get("tune_allocator", False))


async def _open(ctx: zmtp.Context, kind: zmtp.SocketType, p: Params) -> zmtp.Socket:
    """Create a socket with the scenario's high-water marks and bind or connect it."""
    hwm = p.get("hwm", 1000)
    security = curve_options(bool(p.get("bind"))) if p.get("curve") else {}
    sock = ctx.socket(kind, sndhwm=hwm, rcvhwm=hwm, **security)
    if p.get("bind"):
        ready(await sock.bind(p["endpoint"]))
    else:
        await sock.connect(p["endpoint"])
    return sock


async def _send(sock: zmtp.Socket, count: int, body: bytes, api: str) -> None:
    msg = [body]
    if api == "msg":
        send = sock.send_multipart
        for _ in range(count):
            await send(msg)
        return
    chunk = [msg] * CHUNK
    full, rest = divmod(count, CHUNK)
    for _ in range(full):
        await sock.send_many(chunk)
    if rest:
        await sock.send_many(chunk[:rest])


async def _receive(sock: zmtp.Socket, count: int, api: str) -> Params:
    """Receive ``count`` messages; the clock starts when the first arrives.

    Returns ``t0``/``t1`` (first and last arrival) and ``timed``, the messages that
    arrived after ``t0`` (``count - 1``, or with the batch API ``count`` less the first
    batch), so that ``timed / (t1 - t0)`` is the rate.
    """
    if api == "msg":
        recv = sock.recv_multipart
        await recv()
        t0, c0, f0 = time.monotonic(), cpu(), faults()
        for _ in range(count - 1):
            await recv()
        t1, c1, f1 = time.monotonic(), cpu(), faults()
        return {
            "t0": t0, "t1": t1, "timed": count - 1, "count": count,
            "cpu_s": c1 - c0, "faults": f1 - f0,
        }  # fmt: skip
    recv_many = sock.recv_many
    first = len(await recv_many(CHUNK))
    t0, c0, f0 = time.monotonic(), cpu(), faults()
    got = first
    while got < count:
        got += len(await recv_many(CHUNK))
    t1, c1, f1 = time.monotonic(), cpu(), faults()
    return {
        "t0": t0, "t1": t1, "timed": got - first, "count": got,
        "cpu_s": c1 - c0, "faults": f1 - f0,
    }  # fmt: skip


# ---------------------------------------------------------------------- throughput


async def pull(p: Params) -> None:
    """PULL: receive ``count`` messages and report the timing, and whether malloc
    ended up tuned in this process."""
    async with _context(p) as ctx:
        sock = await _open(ctx, zmtp.PULL, p)
        if not p.get("bind"):
            ready()
        res = await _receive(sock, p["count"], p["api"])
        res["malloc_tuned"] = zmtp._native.allocator._tuned is True
        result(res)
        await sock.aclose(linger=0)


async def push(p: Params) -> None:
    """PUSH: send ``count`` messages of ``size`` bytes, then flush (linger -1)."""
    async with _context(p) as ctx:
        sock = await _open(ctx, zmtp.PUSH, p)
        c0 = cpu()
        await _send(sock, p["count"], payload(p["size"]), p["api"])
        await sock.aclose()
        c1 = cpu()
    result({"count": p["count"], "cpu_s": c1 - c0})


async def inproc(p: Params) -> None:
    """PUSH and PULL over inproc in one process, two tasks.

    Both ends share one clock, so it starts when the sender starts and every message
    is timed (the receiver's first batch could otherwise hold a whole HWM).
    """
    hwm = p.get("hwm", 1000)
    count = p["count"]
    out: Params = {}
    async with _context(p) as ctx:
        rx = ctx.socket(zmtp.PULL, sndhwm=hwm, rcvhwm=hwm)
        await rx.bind("inproc://bench")
        tx = ctx.socket(zmtp.PUSH, sndhwm=hwm, rcvhwm=hwm)
        await tx.connect("inproc://bench")

        async def receiver() -> None:
            await _receive(rx, count, p["api"])
            out["t1"] = time.monotonic()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            await trio.lowlevel.checkpoint()  # the receiver is waiting
            out["t0"], c0 = time.monotonic(), cpu()
            await _send(tx, count, payload(p["size"]), p["api"])
        out["cpu_s"] = cpu() - c0  # both ends: they share the process
    result({**out, "timed": count, "count": count})


# ---------------------------------------------------------------------- latency


async def rep(p: Params) -> None:
    """REP: echo ``count`` requests."""
    async with _context(p) as ctx:
        sock = await _open(ctx, zmtp.REP, p)
        recv, send = sock.recv_multipart, sock.send_multipart
        for _ in range(p["count"]):
            await send(await recv())
        await sock.aclose()
    result({})


async def req(p: Params) -> None:
    """REQ: ``warmup`` untimed round trips, then ``count`` timed ones."""
    async with _context(p) as ctx:
        sock = await _open(ctx, zmtp.REQ, p)
        msg = [payload(p["size"])]
        recv, send = sock.recv_multipart, sock.send_multipart
        clock = time.perf_counter_ns
        for _ in range(p["warmup"]):
            await send(msg)
            await recv()
        samples = []
        for _ in range(p["count"]):
            t = clock()
            await send(msg)
            await recv()
            samples.append(clock() - t)
        await sock.aclose()
    result(latency_summary(samples))


# ---------------------------------------------------------------------- pub/sub


async def pub(p: Params) -> None:
    """PUB: send probes until the driver says GO, then ``count`` data messages.

    ``xpub_nodrop`` is set, so every subscriber gets every data message and the run
    has a fixed size (the slowest subscriber paces the publisher).
    """
    hwm = p.get("hwm", 1000)
    async with _context(p) as ctx:
        sock = ctx.socket(zmtp.PUB, sndhwm=hwm, rcvhwm=hwm, xpub_nodrop=True)
        ready(await sock.bind(p["endpoint"]))
        probe = [PROBE + bytes([p.get("id", 0)])]
        go = trio.Event()

        async def wait_for_go() -> None:
            await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            go.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_go)
            while not go.is_set():
                with contextlib.suppress(trio.WouldBlock):  # a subscriber is full
                    sock.send_multipart_nowait(probe)
                # Pacing of the probes, not synchronisation: GO decides when to start.
                with trio.move_on_after(0.005):
                    await go.wait()
        body = payload(p["size"], DATA + p.get("topic", "").encode())
        c0 = cpu()
        await _send(sock, p["count"], body, p["api"])
        await sock.aclose()
        c1 = cpu()
    result({"count": p["count"], "cpu_s": c1 - c0})


async def sub(p: Params) -> None:
    """SUB: subscribe to everything; READY at the first probe; time ``count`` data."""
    hwm = p.get("hwm", 1000)
    count, api = p["count"], p["api"]
    async with _context(p) as ctx:
        sock = ctx.socket(zmtp.SUB, sndhwm=hwm, rcvhwm=hwm)
        sock.subscribe(b"")
        await sock.connect(p["endpoint"])
        announced = False
        got = 0
        while not got:
            batch = await (sock.recv_many(CHUNK) if api == "batch" else _one(sock))
            for i, msg in enumerate(batch):
                if msg[0][:1] == DATA:
                    got = len(batch) - i
                    break
            if not announced:
                ready()
                announced = True
        t0 = time.monotonic()
        first = got
        if api == "msg":
            recv = sock.recv_multipart
            for _ in range(count - got):
                await recv()
            got = count
        else:
            while got < count:
                got += len(await sock.recv_many(CHUNK))
        t1 = time.monotonic()
        await sock.aclose(linger=0)
    result({"t0": t0, "t1": t1, "timed": got - first, "count": got})


async def _one(sock: zmtp.Socket) -> list[list[bytes]]:
    return [await sock.recv_multipart()]


# ---------------------------------------------------------------------- many peers


async def router(p: Params) -> None:
    """ROUTER (bound) with ``peers`` DEALERs: READY (endpoint), READY again once a
    hello from each arrived (every handshake done), then time ``count`` messages."""
    async with _context(p) as ctx:
        sock = await _open(ctx, zmtp.ROUTER, p)
        for _ in range(p["peers"]):
            await sock.recv_multipart()
        ready()
        result(await _receive(sock, p["count"], p["api"]))
        await sock.aclose(linger=0)


async def mem_router(p: Params) -> None:
    """Memory: a bound ROUTER's resident size before any peer, and once ``peers``
    DEALERs have each said hello and gone idle (``rss0``, ``rss1``, bytes)."""
    async with _context(p) as ctx:
        sock = await _open(ctx, zmtp.ROUTER, p)
        gc.collect()
        rss0 = rss()
        for _ in range(p["peers"]):
            await sock.recv_multipart()
        await trio.sleep(p.get("idle_s", 0.5))
        gc.collect()
        result({"rss0": rss0, "rss1": rss(), "peers": p["peers"]})
        await sock.aclose(linger=0)


def _runner(fn: Callable[[Params], Awaitable[None]]) -> Callable[[Params], None]:
    def run(p: Params) -> None:
        trio.run(fn, p)

    return run


ROLES: dict[str, Callable[[Params], None]] = {
    name: _runner(fn)
    for name, fn in {
        "pull": pull,
        "push": push,
        "inproc": inproc,
        "rep": rep,
        "req": req,
        "pub": pub,
        "sub": sub,
        "router": router,
        "mem_router": mem_router,
    }.items()
}
