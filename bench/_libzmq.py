"""Worker roles in pyzmq's blocking API: pyzmq/libzmq (``python -m bench.worker zmq.ROLE
JSON``) and pyomq (omq.rs, ``omq.ROLE``), a drop-in for that API.

They mirror :mod:`bench._ours` role for role, in pyzmq's ordinary blocking style:
``send``/``recv`` per message (libzmq batches on the wire by itself).  ``copy`` selects
pyzmq's copying (``True``, its default) or zero-copy mode for both ends.

The same code drives pyomq (:func:`use_pyomq` swaps the module).  Where pyomq 0.21
differs, the roles work around it here, in the peer code, never in ours:

* its REP drops frames of a request whose second frame is empty (the envelope is cut
  at the last empty frame, not the first), so :func:`rep` echoes with a ROUTER and
  handles the envelope itself (what libzmq's REP does inside);
* ``recv(DONTWAIT)`` on an empty socket raises an internal error instead of
  ``Again``, so :func:`_try_recv` polls first;
* it has no ``XPUB_NODROP``: its ``OMQ_ON_MUTE = OMQ_ON_MUTE_BLOCK`` is the same
  behaviour (a full subscriber blocks the sender instead of losing messages).
"""

from __future__ import annotations

import contextlib
import gc
import select
import sys
import time
from collections.abc import Callable
from typing import Any

import zmq as _pyzmq

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

__all__ = ["ROLES", "use_pyomq"]

Params = dict[str, Any]

#: The module the roles use: pyzmq, or pyomq after :func:`use_pyomq`.
zmq: Any = _pyzmq
#: Whether the roles drive pyomq (and work around its differences).
PYOMQ = False


def use_pyomq() -> None:
    """Make every role use pyomq (``import pyomq as zmq``, as its users do)."""
    global zmq, PYOMQ
    import pyomq  # noqa: PLC0415  (only in pyomq's workers)

    zmq, PYOMQ = pyomq, True


def _nodrop(sock: Any) -> None:
    """Block at the high-water mark instead of dropping (PUB/XPUB)."""
    if PYOMQ:
        sock.setsockopt(zmq.OMQ_ON_MUTE, zmq.OMQ_ON_MUTE_BLOCK)
    else:
        sock.setsockopt(zmq.XPUB_NODROP, 1)


def _try_recv(sock: Any) -> bool:
    """Receive a message if one is there at once; False if none.

    pyomq's ``recv(DONTWAIT)`` raises an internal error instead of ``Again`` on an
    empty socket: ask ``poll(0)`` first.
    """
    if PYOMQ:
        if not sock.poll(0):
            return False
        sock.recv()
        return True
    try:
        sock.recv(zmq.NOBLOCK)
    except zmq.Again:
        return False
    return True


def _open(ctx: Any, kind: int, p: Params) -> Any:
    """Create a socket with the scenario's high-water marks and bind or connect it."""
    hwm = p.get("hwm", 1000)
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    if p.get("curve"):
        for name, value in curve_options(bool(p.get("bind"))).items():
            setattr(sock, name, value)
    if p.get("bind"):
        ready(_bind(sock, p["endpoint"]))
    else:
        # A list: connect to each (clients and workers of several proxies).
        endpoints = p["endpoint"]
        for endpoint in [endpoints] if isinstance(endpoints, str) else endpoints:
            sock.connect(endpoint)
    return sock


def _bind(sock: Any, endpoint: str) -> str:
    """Bind; ``tcp://host:0`` picks a free port as in zmtp.  Return the endpoint."""
    if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        endpoint = endpoint[:-2] + ":*"
    sock.bind(endpoint)
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def _send(sock: Any, count: int, body: bytes, copy: bool) -> None:
    send = sock.send
    if copy:
        for _ in range(count):
            send(body)
    else:
        for _ in range(count):
            send(body, copy=False)


def _receive(sock: Any, count: int, copy: bool) -> Params:
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


def _context() -> Any:
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
    """REP: echo ``count`` requests.

    For pyomq a ROUTER that echoes the envelope with the body, as libzmq's REP does
    inside: pyomq's REP loses frames of requests whose second frame is empty.
    """
    ctx = _context()
    sock = _open(ctx, zmq.ROUTER if PYOMQ else zmq.REP, p)
    if PYOMQ:
        recv, send = sock.recv_multipart, sock.send_multipart
    else:
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
    """``zmq.proxy`` (or pyomq's) between two bound sockets; runs until killed.

    ``"nodrop": true`` makes an XPUB backend block at its high-water mark instead of
    dropping (the forwarder case, so that every subscriber gets every message).
    """
    ctx = _context()
    front = _open(ctx, getattr(zmq, p["frontend"]), {**p, "endpoint": p["frontend_endpoint"]})
    back = _open(ctx, getattr(zmq, p["backend"]), {**p, "endpoint": p["backend_endpoint"]})
    if p.get("nodrop") and p["backend"] == "XPUB":
        _nodrop(back)
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
        while received < count and _try_recv(sock):
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
    """PUB: probes until the driver says GO, then ``count`` data messages (no drop).

    Binds, or with ``"connect": true`` connects (to a forwarder).  Probes are PROBE
    and the publisher's ``id`` (one byte); data messages start with DATA and
    ``topic`` (the xpub-match case, whose subscriber holds many subscriptions).
    """
    ctx = _context()
    hwm = p.get("hwm", 1000)
    sock = ctx.socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    _nodrop(sock)
    if p.get("connect"):
        sock.connect(p["endpoint"])
        ready()
    else:
        ready(_bind(sock, p["endpoint"]))
    probe = PROBE + bytes([p.get("id", 0)])
    # Probe every 5 ms until GO arrives on stdin (pacing, not synchronisation).
    while not select.select([sys.stdin], [], [], 0.005)[0]:
        if PYOMQ:  # its send(NOBLOCK) at the mark: not checked; a probe is not needed
            if sock.poll(0, zmq.POLLOUT):
                sock.send(probe)
        else:
            with contextlib.suppress(zmq.Again):  # a subscriber is full
                sock.send(probe, zmq.NOBLOCK)
    sys.stdin.readline()
    body = payload(p["size"], DATA + p.get("topic", "").encode())
    c0 = cpu()
    _send(sock, p["count"], body, p.get("copy", True))
    sock.close(linger=-1)
    ctx.term()
    result({"count": p["count"], "cpu_s": cpu() - c0})


def topics(n: int) -> list[bytes]:
    """The ``n`` subscriptions of the xpub-match case's subscriber (DATA + 7 digits)."""
    return [DATA + b"%07d" % i for i in range(n)]


def sub(p: Params) -> None:
    """SUB: READY once a probe of each of ``publishers`` arrived; time the data.

    Subscribes to everything, or (``subscriptions`` > 0) to that many topics and to
    the probes (``paced``: after connecting, 50 per millisecond, for pyomq).  Each
    publisher sends ``count`` data messages; with several (a forwarder's), their
    probes and data may interleave, so only data is counted.
    """
    ctx = _context()
    hwm = p.get("hwm", 1000)
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    n = p.get("subscriptions", 0)
    if n:
        # Subscriptions travel in the outbound pipe: past its mark libzmq drops them.
        sock.setsockopt(zmq.SNDHWM, 0)
        wanted = [*topics(n), PROBE]  # the probe's last: its arrival proves the others'
    else:
        wanted = [b""]
    if p.get("paced"):
        # A pyomq publisher delivers nothing when a burst of subscriptions arrives at
        # once (100 back to back were enough); 50 per millisecond it takes.  So: connect
        # with the probes' subscription alone, wait for a probe (connected), then the
        # topics at that pace, and 0.3 s for the publisher to take the last ones.
        sock.setsockopt(zmq.SUBSCRIBE, PROBE)
        sock.connect(p["endpoint"])
        sock.recv()
        for i, topic in enumerate(wanted[:-1]):
            sock.setsockopt(zmq.SUBSCRIBE, topic)
            if i % 50 == 49:
                time.sleep(0.001)
        time.sleep(0.3)
    else:
        for topic in wanted:
            sock.setsockopt(zmq.SUBSCRIBE, topic)
        sock.connect(p["endpoint"])
    publishers = p.get("publishers", 1)
    recv = sock.recv
    seen: set[bytes] = set()
    msg = recv()
    while msg[:1] != DATA:
        seen.add(msg[1:2])
        if len(seen) == publishers:
            break
        msg = recv()
    ready()
    while msg[:1] != DATA:
        msg = recv()
    t0 = time.monotonic()
    total = p["count"] * publishers
    if p.get("lossy"):
        got, t1 = _count_until_quiet(sock, total, t0)
        sock.close(linger=0)
        ctx.term()
        result({"t0": t0, "t1": t1, "timed": got - 1, "count": got, "lost": total - got})
        return
    if publishers == 1:
        for _ in range(total - 1):
            recv()
    else:
        got = 1
        while got < total:
            if recv()[:1] == DATA:
                got += 1
    t1 = time.monotonic()
    sock.close(linger=0)
    ctx.term()
    result({"t0": t0, "t1": t1, "timed": total - 1, "count": total})


def _count_until_quiet(sock: Any, total: int, t0: float) -> tuple[int, float]:
    """Count data messages until ``total`` or 0.3 s without any; return the count and
    the arrival of the last.  For pyomq's publishers and proxy, whose PUB and XPUB drop
    at the high-water mark whatever ``OMQ_ON_MUTE`` says, so a fixed count may never
    arrive: their rows are the deliveries actually made."""
    sock.setsockopt(zmq.RCVTIMEO, 300)
    recv, clock = sock.recv, time.monotonic
    got, t1 = 1, t0
    while got < total:
        try:
            msg = recv()
        except zmq.ZMQError:  # Again, or pyomq's internal error at the timeout
            break
        if msg[:1] == DATA:
            got += 1
            t1 = clock()
    return got, t1


# ---------------------------------------------------------------------- many peers


def router(p: Params) -> None:
    """ROUTER (bound) with ``peers`` DEALERs: READY (endpoint), then READY again once
    a hello from each arrived (every handshake done), then time ``count`` messages."""
    ctx = _context()
    sock = _open(ctx, zmq.ROUTER, p)
    recv = sock.recv_multipart
    for _ in range(p["peers"]):
        recv()
    ready()
    result(_receive_multipart(sock, p["count"]))
    sock.close(linger=0)
    ctx.term()


def _receive_multipart(sock: Any, count: int) -> Params:
    recv = sock.recv_multipart
    recv()
    t0, c0, f0 = time.monotonic(), cpu(), faults()
    for _ in range(count - 1):
        recv()
    t1, c1, f1 = time.monotonic(), cpu(), faults()
    return {
        "t0": t0, "t1": t1, "timed": count - 1, "count": count,
        "cpu_s": c1 - c0, "faults": f1 - f0,
    }  # fmt: skip


def dealers(p: Params) -> None:
    """``peers`` DEALERs in one process (pyzmq): each connects and says hello; READY;
    then, after GO on stdin, ``count`` messages sent round-robin over them, ``burst``
    at a time per peer, and the connections held until a second line (DONE) comes.
    With ``count`` 0 they only hold their connections until GO (the memory case)."""
    n = p["peers"]
    ctx = _context()
    ctx.setsockopt(zmq.MAX_SOCKETS, n + 64)
    socks = []
    for _ in range(n):
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.SNDHWM, p.get("hwm", 1000))
        sock.setsockopt(zmq.RCVHWM, p.get("hwm", 1000))
        sock.connect(p["endpoint"])
        socks.append(sock)
    for sock in socks:
        sock.send(b"hello")
    ready()
    sys.stdin.readline()
    # CLOCK_MONOTONIC is one clock for every process on the host: the receiver's
    # window is timed from here, not from the first message it takes (by then its
    # readers may have queued much of the stream).
    t_go = time.monotonic()
    count, burst = p["count"], p.get("burst", 1)
    body = payload(p["size"])
    c0 = cpu()
    sent = 0
    while sent < count:
        for sock in socks:
            k = min(burst, count - sent)
            for _ in range(k):
                sock.send(body)
            sent += k
            if sent >= count:
                break
    c1 = cpu()
    if count:
        # Connected until the ROUTER has timed every message (the driver says so):
        # the case measures N connected peers, and 1,000 disconnects arriving with
        # the last messages would fall into the receiver's window.
        sys.stdin.readline()
    for sock in socks:
        sock.close(linger=-1 if count else 0)
    ctx.term()
    result({"count": count, "cpu_s": c1 - c0, "t_go": t_go})


def mem_router(p: Params) -> None:
    """Memory: a bound ROUTER's resident size before any peer, and once ``peers``
    DEALERs have each said hello and gone idle (``rss0``, ``rss1``, bytes)."""
    ctx = _context()
    sock = _open(ctx, zmq.ROUTER, p)
    gc.collect()
    rss0 = rss()
    recv = sock.recv_multipart
    for _ in range(p["peers"]):
        recv()
    time.sleep(p.get("idle_s", 0.5))
    gc.collect()
    result({"rss0": rss0, "rss1": rss(), "peers": p["peers"]})
    sock.close(linger=0)
    ctx.term()


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
    "router": router,
    "dealers": dealers,
    "mem_router": mem_router,
}
