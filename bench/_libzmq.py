"""Worker roles that use pyzmq and libzmq (``python -m bench.worker zmq.ROLE JSON``).

They mirror :mod:`bench._ours` role for role, in pyzmq's ordinary blocking style:
``send``/``recv`` per message (libzmq batches on the wire by itself).  ``copy`` selects
pyzmq's copying (``True``, its default) or zero-copy mode for both ends.
"""

from __future__ import annotations

import contextlib
import select
import sys
import time
from collections.abc import Callable
from typing import Any

import zmq

from ._protocol import DATA, PROBE, cpu, faults, latency_summary, payload, ready, result

__all__ = ["ROLES"]

Params = dict[str, Any]


def _open(ctx: zmq.Context[zmq.Socket[bytes]], kind: int, p: Params) -> zmq.Socket[bytes]:
    """Create a socket with the scenario's high-water marks and bind or connect it."""
    hwm = p.get("hwm", 1000)
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    if p.get("bind"):
        ready(_bind(sock, p["endpoint"]))
    else:
        # A list: connect to each (clients and workers of several proxies).
        endpoints = p["endpoint"]
        for endpoint in [endpoints] if isinstance(endpoints, str) else endpoints:
            sock.connect(endpoint)
    return sock


def _bind(sock: zmq.Socket[bytes], endpoint: str) -> str:
    """Bind; ``tcp://host:0`` picks a free port as in zmtp.  Return the endpoint."""
    if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        endpoint = endpoint[:-2] + ":*"
    sock.bind(endpoint)
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def _send(sock: zmq.Socket[bytes], count: int, body: bytes, copy: bool) -> None:
    send = sock.send
    if copy:
        for _ in range(count):
            send(body)
    else:
        for _ in range(count):
            send(body, copy=False)


def _receive(sock: zmq.Socket[bytes], count: int, copy: bool) -> Params:
    """Receive ``count`` messages; the clock starts when the first arrives."""
    recv = sock.recv
    recv(copy=copy)
    t0, c0, f0 = time.monotonic(), cpu(), faults()
    if copy:
        for _ in range(count - 1):
            recv()
    else:
        for _ in range(count - 1):
            recv(copy=False)
    t1, c1, f1 = time.monotonic(), cpu(), faults()
    return {
        "t0": t0, "t1": t1, "timed": count - 1, "count": count,
        "cpu_s": c1 - c0, "faults": f1 - f0,
    }  # fmt: skip


def _context() -> zmq.Context[zmq.Socket[bytes]]:
    return zmq.Context()


# ---------------------------------------------------------------------- throughput


def pull(p: Params) -> None:
    """PULL (bound, or connected to a proxy): receive ``count`` messages."""
    ctx = _context()
    sock = _open(ctx, zmq.PULL, p)
    if not p.get("bind"):
        ready()
    result(_receive(sock, p["count"], p.get("copy", True)))
    sock.close(linger=0)
    ctx.term()


def push(p: Params) -> None:
    """PUSH: send ``count`` messages of ``size`` bytes, then flush."""
    ctx = _context()
    sock = _open(ctx, zmq.PUSH, p)
    c0 = cpu()
    _send(sock, p["count"], payload(p["size"]), p.get("copy", True))
    sock.close(linger=-1)
    ctx.term()
    result({"count": p["count"], "cpu_s": cpu() - c0})


# ---------------------------------------------------------------------- latency


def rep(p: Params) -> None:
    """REP: echo ``count`` requests."""
    ctx = _context()
    sock = _open(ctx, zmq.REP, p)
    recv, send = sock.recv, sock.send
    for _ in range(p["count"]):
        send(recv())
    sock.close(linger=-1)
    ctx.term()
    result({})


def req(p: Params) -> None:
    """REQ: ``warmup`` untimed round trips, then ``count`` timed ones."""
    ctx = _context()
    sock = _open(ctx, zmq.REQ, p)
    body = payload(p["size"])
    recv, send = sock.recv, sock.send
    clock = time.perf_counter_ns
    for _ in range(p["warmup"]):
        send(body)
        recv()
    samples = []
    for _ in range(p["count"]):
        t = clock()
        send(body)
        recv()
        samples.append(clock() - t)
    sock.close(linger=0)
    ctx.term()
    result(latency_summary(samples))


# ---------------------------------------------------------------------- proxy


def proxy(p: Params) -> None:
    """``zmq.proxy`` between two bound sockets; runs until killed."""
    ctx = _context()
    front = _open(ctx, getattr(zmq, p["frontend"]), {**p, "endpoint": p["frontend_endpoint"]})
    back = _open(ctx, getattr(zmq, p["backend"]), {**p, "endpoint": p["backend_endpoint"]})
    zmq.proxy(front, back)


def dealer_client(p: Params) -> None:
    """DEALER client of a ROUTER↔DEALER queue: ``count`` requests, ``window`` in flight.

    The clock starts at the first reply and stops at the last.
    """
    ctx = _context()
    sock = _open(ctx, zmq.DEALER, p)
    ready()
    count, window = p["count"], p["window"]
    body = payload(p["size"])
    sent = received = 0
    t0 = 0.0
    send, recv = sock.send, sock.recv
    while received < count:
        while sent < count and sent - received < window:
            send(body)
            sent += 1
        if not sock.poll(p.get("stall_ms", 30000)):
            raise SystemExit(f"no reply for {p.get('stall_ms', 30000)} ms ({received}/{count})")
        recv()
        received += 1
        if received == 1:
            t0 = time.monotonic()
        # Take whatever else has arrived before sending more.
        while received < count:
            try:
                recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            received += 1
    t1 = time.monotonic()
    sock.close(linger=0)
    ctx.term()
    result({"t0": t0, "t1": t1, "timed": count - 1, "count": count})


def dealer_worker(p: Params) -> None:
    """DEALER worker behind a ROUTER↔DEALER queue: echo ``count`` requests.

    ``"router": true`` makes it a ROUTER, for workers of several proxies: a ROUTER
    sends each reply back to the proxy the request came from (its first frame), where
    a DEALER would spread replies over all of them, to proxies that cannot route them.
    """
    ctx = _context()
    sock = _open(ctx, zmq.ROUTER if p.get("router") else zmq.DEALER, p)
    ready()
    recv, send = sock.recv_multipart, sock.send_multipart
    for _ in range(p["count"]):
        send(recv())
    sock.close(linger=-1)
    ctx.term()
    result({})


# ---------------------------------------------------------------------- pub/sub


def pub(p: Params) -> None:
    """PUB: probes until the driver says GO, then ``count`` data messages (XPUB_NODROP)."""
    ctx = _context()
    hwm = p.get("hwm", 1000)
    sock = ctx.socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.XPUB_NODROP, 1)
    ready(_bind(sock, p["endpoint"]))
    # Probe every 5 ms until GO arrives on stdin (pacing, not synchronisation).
    while not select.select([sys.stdin], [], [], 0.005)[0]:
        with contextlib.suppress(zmq.Again):  # a subscriber is full
            sock.send(PROBE, zmq.NOBLOCK)
    sys.stdin.readline()
    _send(sock, p["count"], payload(p["size"], DATA), p.get("copy", True))
    sock.close(linger=-1)
    ctx.term()
    result({})


def sub(p: Params) -> None:
    """SUB: subscribe to everything; READY at the first probe; time ``count`` data."""
    ctx = _context()
    hwm = p.get("hwm", 1000)
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(p["endpoint"])
    recv = sock.recv
    msg = recv()
    ready()
    while msg[:1] != DATA:
        msg = recv()
    t0 = time.monotonic()
    count = p["count"]
    for _ in range(count - 1):
        recv()
    t1 = time.monotonic()
    sock.close(linger=0)
    ctx.term()
    result({"t0": t0, "t1": t1, "timed": count - 1, "count": count})


ROLES: dict[str, Callable[[Params], None]] = {
    "pull": pull,
    "push": push,
    "rep": rep,
    "req": req,
    "proxy": proxy,
    "dealer_client": dealer_client,
    "dealer_worker": dealer_worker,
    "pub": pub,
    "sub": sub,
}
