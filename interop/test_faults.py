"""Faults from outside, against our sockets and our proxy, with libzmq peers.

A proxy without libzmq is a network-facing daemon: it must survive whatever the
network sends it and whatever happens to its peers and to itself.  Each test here
inflicts one such fault for real (SIGKILL of a pyzmq process, a TCP reset, a
connection cut at every byte of a recorded libzmq handshake, a proxy killed under
load, an ipc file deleted or left stale) and then checks that nothing partial came
through, that every connection we accepted was closed and its task ended, and that a
well-behaved peer is still served.

Synchronisation is on messages, monitor events and subprocess output lines; every
wait is bounded.  Which socket tasks are alive is counted by walking trio's task tree
(:func:`task_count`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import zmtp
from proxy._testing import ProxyProcess
from zmtp import Connection, SocketType

from ._helpers import TIMEOUT, TRANSPORTS, BindZmq, Endpoint, SocketFactory, ipc_path
from ._sock_helpers import our_address
from ._wire_helpers import open_stream, serve_one

zmq = pytest.importorskip("zmq")

pytestmark = pytest.mark.interop

# A pattern, so that a shifted or truncated body is noticed; 1 MiB per frame keeps the
# kernel's buffers full while a sender is killed, so the kill lands mid-body.
BODY = bytes(range(256)) * 4096


def task_count() -> int:
    """How many trio tasks are alive in this run (the whole tree from the root)."""

    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())


@asynccontextmanager
async def python(script: str, *args: str) -> AsyncIterator[trio.Process]:
    """Run ``python -c script args`` with a stdout pipe; kill it at the end."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            assert proc.stdout is not None
            await proc.stdout.aclose()


async def wait_disconnects(mon: zmtp.Monitor, count: int) -> list[zmtp.SocketEvent]:
    """The next ``count`` DISCONNECTED events (every engine ends with one)."""
    got = []
    async for event in mon:
        assert not event.dropped, "the monitor lagged: raise its maxlen"
        if event.type is zmtp.EventType.DISCONNECTED:
            got.append(event)
            if len(got) == count:
                break
    return got


# --------------------------------------------------------------- peer killed mid-multipart

KILLED_PUSH = """
import sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.PUSH)
s.setsockopt(zmq.SNDHWM, 2)
s.connect(sys.argv[1])
body = bytes(range(256)) * 4096
gen = sys.argv[2].encode()
i = 0
while True:
    s.send_multipart([gen, b"%d" % i, body, body, b"end"])
    i += 1
"""


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_push_killed_mid_multipart_delivers_only_whole_messages(
    transport: str, ipc_dir: Path, zmq_socket: SocketFactory
) -> None:
    """pyzmq PUSH processes stream 2 MiB multipart messages and are SIGKILLed, one after
    another: our PULL delivers whole messages only (each process's a gapless prefix of
    what it sent), closes every connection, and still serves a good peer."""
    kills = 8
    received: dict[bytes, list[list[bytes]]] = {}
    arrived = {b"%d" % g: trio.Event() for g in range(kills)}
    got_good = trio.Event()
    with trio.fail_after(6 * TIMEOUT):
        async with zmtp.Context() as ctx:
            pull = ctx.socket(zmtp.PULL, rcvhwm=2)
            mon = pull.monitor()
            ep = await pull.bind(our_address(transport, ipc_dir))
            base = task_count()

            async def receive() -> None:
                while True:
                    msg = await pull.recv_multipart()
                    received.setdefault(msg[0], []).append(msg)
                    if msg[0] == b"good":
                        got_good.set()
                    elif len(received[msg[0]]) >= 2:
                        arrived[msg[0]].set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                for g in range(kills):
                    async with python(KILLED_PUSH, ep, str(g)) as proc:
                        await arrived[b"%d" % g].wait()
                        proc.send_signal(signal.SIGKILL)
                        await proc.wait()
                        await wait_disconnects(mon, 1)
                assert not pull.peers
                good = zmq_socket(zmq.PUSH)
                good.connect(ep)
                await trio.to_thread.run_sync(good.send_multipart, [b"good", b"after"])
                await got_good.wait()
                nursery.cancel_scope.cancel()
            good.close(linger=0)
            await wait_disconnects(mon, 1)
            assert task_count() == base

    assert received.pop(b"good") == [[b"good", b"after"]]
    assert sorted(received) == sorted(arrived)
    for gen, msgs in received.items():
        assert [m[1] for m in msgs] == [b"%d" % i for i in range(len(msgs))], gen
        for m in msgs:
            assert m[2:] == [BODY, BODY, b"end"], (gen, m[1])
    # Whether a kill lands in the middle of a message on the wire is up to the kernel
    # (it did in most runs, not in all: asserting it made the test flaky); the cut at a
    # chosen byte is pinned deterministically by test_reset_mid_body_delivers_nothing_
    # partial below and by the raw-peer tests in tests/test_robustness.py.


# --------------------------------------------------------------- reset mid-body


async def test_reset_mid_body_delivers_nothing_partial(
    ipc_dir: Path, zmq_socket: SocketFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A peer that completes the handshake with libzmq's bytes, sends whole messages,
    then half of a large frame and resets the connection (SO_LINGER 0): the whole
    messages arrive, the half one does not, and the socket carries on."""
    caplog.set_level(logging.INFO, logger="zmtp")
    with trio.fail_after(TIMEOUT):
        async with zmtp.Context() as ctx:
            pull = ctx.socket(zmtp.PULL)
            mon = pull.monitor()
            ep = Endpoint.from_zmq(await pull.bind("tcp://127.0.0.1:0"))
            base = task_count()
            # How much of [b"partial", BODY] goes out: its first frame only, into the
            # long frame's header, the header whole, deep into the body.
            for cut in (9, 10, 18, 18 + 100_000):
                stream = await open_stream(ep)
                conn = Connection(SocketType.PUSH)
                while True:
                    for chunk in conn.data_to_send():
                        await stream.send_all(chunk)
                    if conn.handshake is not None:
                        break
                    conn.receive_data(await stream.receive_some(65536))
                conn.send_messages([[b"whole", b"%d" % cut], [b"second"]])
                whole = b"".join(bytes(c) for c in conn.data_to_send())
                conn.send_messages([[b"partial", BODY]])
                partial = b"".join(bytes(c) for c in conn.data_to_send())
                assert len(partial) == 9 + 9 + len(BODY)
                await stream.send_all(whole + partial[:cut])
                assert await pull.recv_multipart() == [b"whole", b"%d" % cut]
                assert await pull.recv_multipart() == [b"second"]
                stream.socket.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                stream.socket.close()  # RST, not FIN
                (event,) = await wait_disconnects(mon, 1)
            assert not pull.peers
            assert task_count() == base
            good = zmq_socket(zmq.PUSH)
            good.connect(ep.zmq)
            await trio.to_thread.run_sync(good.send_multipart, [b"good"])
            assert await pull.recv_multipart() == [b"good"]
            with pytest.raises(trio.WouldBlock):
                pull.recv_multipart_nowait()
    assert "reset" in event.reason.lower() or "closed" in event.reason.lower(), event


# --------------------------------------------------------------- handshake cut everywhere


async def record_libzmq_push(transport: str, ipc_dir: Path, zmq_socket: SocketFactory) -> bytes:
    """What a libzmq PUSH sends from connecting to its first message, byte for byte."""
    async with serve_one(transport, ipc_dir) as (endpoint, listener):
        push = zmq_socket(zmq.PUSH)
        push.connect(endpoint.zmq)
        push.send_multipart([b"first", b"message"])
        stream = await listener.accept()
        conn = Connection(SocketType.PULL)
        sent = bytearray()
        got: list[list[bytes]] = []
        while not got:
            for chunk in conn.data_to_send():
                await stream.send_all(chunk)
            data = await stream.receive_some(65536)
            assert data, "libzmq closed during the recording"
            sent += data
            for event in conn.receive_data(data):
                got.extend(getattr(event, "messages", []))
        await stream.aclose()
    assert got == [[b"first", b"message"]]
    return bytes(sent)


async def send_and_close(endpoint: Endpoint, data: bytes) -> None:
    stream = await open_stream(endpoint)
    await stream.send_all(data)
    await stream.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connection_cut_at_every_byte_of_a_libzmq_handshake(
    transport: str, ipc_dir: Path, zmq_socket: SocketFactory, bind_zmq: BindZmq
) -> None:
    """For every prefix of a recorded libzmq PUSH's greeting, READY and first message
    (the whole of it included): connect, send it, close.  Every connection is closed on
    our side with its task, and no prefix delivers anything: before the first message a
    libzmq peer sends afterwards, at most the recording's own message arrives, whole,
    and only from the whole recording.

    Whether the whole recording's message is delivered depends on timing, for libzmq
    4.3.5 as for us (checked here too): the peer is gone when its greeting is answered,
    and the write error may end the connection before or after the message is read."""
    with trio.fail_after(3 * TIMEOUT):
        recorded = await record_libzmq_push(transport, ipc_dir, zmq_socket)
        assert len(recorded) > 64 + 20  # greeting, READY, the message
        async with zmtp.Context() as ctx:
            pull = ctx.socket(zmtp.PULL)
            mon = pull.monitor()
            ep = Endpoint.from_zmq(await pull.bind(our_address(transport, ipc_dir)))
            base = task_count()
            for offset in range(len(recorded) + 1):
                await send_and_close(ep, recorded[:offset])
                await wait_disconnects(mon, 1)
            assert not pull.peers
            assert task_count() == base
            good = zmq_socket(zmq.PUSH)
            good.connect(ep.zmq)
            await trio.to_thread.run_sync(good.send_multipart, [b"good"])
            before = []
            while (msg := await pull.recv_multipart()) != [b"good"]:
                before.append(msg)
            assert before in ([], [[b"first", b"message"]]), before
        # The reference: libzmq's PULL given the whole recording the same way.
        theirs = zmq_socket(zmq.PULL)
        their_ep = bind_zmq(theirs, transport)
        await send_and_close(their_ep, recorded)
        other = zmq_socket(zmq.PUSH)
        other.connect(their_ep.zmq)
        await trio.to_thread.run_sync(other.send_multipart, [b"good"])
        before = []
        while (msg := await trio.to_thread.run_sync(theirs.recv_multipart)) != [b"good"]:
            before.append(msg)
        assert before in ([], [[b"first", b"message"]]), before


async def record_libzmq_bound_push(
    transport: str, ipc_dir: Path, bind_zmq: BindZmq, zmq_socket: SocketFactory
) -> bytes:
    """What a bound libzmq PUSH sends to a PULL that connects, from its greeting to its
    first message, byte for byte."""
    push = zmq_socket(zmq.PUSH)
    ep = bind_zmq(push, transport)
    stream = await open_stream(ep)
    conn = Connection(SocketType.PULL)
    sent = bytearray()
    got: list[list[bytes]] = []
    queued = False
    while not got:
        for chunk in conn.data_to_send():
            await stream.send_all(chunk)
        if conn.handshake is not None and not queued:
            queued = True
            await trio.to_thread.run_sync(push.send_multipart, [b"first", b"message"])
        data = await stream.receive_some(65536)
        assert data, "libzmq closed during the recording"
        sent += data
        for event in conn.receive_data(data):
            got.extend(getattr(event, "messages", []))
    await stream.aclose()
    assert got == [[b"first", b"message"]]
    return bytes(sent)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_cutting_our_handshake_at_every_byte(
    transport: str, ipc_dir: Path, zmq_socket: SocketFactory, bind_zmq: BindZmq
) -> None:
    """The other direction: our connecting PULL, and a server that answers each of its
    connections with one more byte of a recorded libzmq PUSH's greeting, READY and
    first message, then hangs up.  Our side reconnects after every cut (a connection
    that ends before its handshake is no protocol error), leaves no connection or task
    behind, delivers nothing from a prefix, and is served normally at the end."""
    with trio.fail_after(4 * TIMEOUT):
        recorded = await record_libzmq_bound_push(transport, ipc_dir, bind_zmq, zmq_socket)
        assert len(recorded) > 64 + 20
        async with zmtp.Context() as ctx, serve_one(transport, ipc_dir) as (ep, listener):
            base = task_count()
            pull = ctx.socket(zmtp.PULL, reconnect_ivl=1)
            mon = pull.monitor(maxlen=10_000)
            await pull.connect(ep.zmq)
            for offset in range(len(recorded)):
                stream = await listener.accept()
                await stream.send_all(recorded[:offset])
                await stream.aclose()
                await wait_disconnects(mon, 1)
            with pytest.raises(trio.WouldBlock):
                pull.recv_multipart_nowait()
            # The whole recording, kept open: the handshake completes and the message
            # arrives.
            stream = await listener.accept()
            await stream.send_all(recorded)
            assert await pull.recv_multipart() == [b"first", b"message"]
            await stream.aclose()
            await wait_disconnects(mon, 1)
            await pull.aclose()
            mon.close()
            assert task_count() <= base


# --------------------------------------------------------------- proxy killed, restarted

CLIENTS = 6
WORKERS = 2


def lazy_pirate(
    sock: Any, name: bytes, stop: threading.Event, replies: list[int], marks: dict[int, Any]
) -> None:
    """A REQ_RELAXED/REQ_CORRELATE client: resend after 250 ms without a reply.

    Appends each answered request's number to ``replies`` and sets ``marks[k]`` (a
    threading.Event) once ``k`` replies have arrived."""
    i = 0
    deadline = time.monotonic() + 6 * TIMEOUT
    while not stop.is_set() and time.monotonic() < deadline:
        sock.send_multipart([name, b"%d" % i])
        if sock.poll(250):
            reply = sock.recv_multipart()
            assert reply[:2] == [name, b"%d" % i], reply
            replies.append(i)
            i += 1
            for k, mark in marks.items():
                if len(replies) >= k:
                    mark.set()


def echo(sock: Any, stop: threading.Event) -> None:
    deadline = time.monotonic() + 6 * TIMEOUT
    while not stop.is_set() and time.monotonic() < deadline:
        if sock.poll(50):
            sock.send_multipart([*sock.recv_multipart(), b"w"])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_proxy_killed_under_load_and_restarted_serves_every_client(
    transport: str, ipc_dir: Path, zmq_socket: SocketFactory
) -> None:
    """``python -m proxy`` (ROUTER↔DEALER) with pyzmq REQ clients and REP workers in
    flight is SIGKILLed, then started again on the same endpoints (over ipc, on the
    socket files the dead one left behind): every client is served again."""
    if transport == "tcp":
        spec = ["ROUTER@tcp://127.0.0.1:0", "DEALER@tcp://127.0.0.1:0"]
    else:
        spec = [f"ROUTER@ipc://{ipc_path(ipc_dir, 'f')}", f"DEALER@ipc://{ipc_path(ipc_dir, 'b')}"]
    stop = threading.Event()
    replies: list[list[int]] = [[] for _ in range(CLIENTS)]
    before = [threading.Event() for _ in range(CLIENTS)]
    after = [threading.Event() for _ in range(CLIENTS)]
    marks: list[dict[int, Any]] = [{5: before[k]} for k in range(CLIENTS)]

    async def wait_all(events: list[threading.Event]) -> None:
        for ev in events:
            assert await trio.to_thread.run_sync(ev.wait, TIMEOUT), "a client was not served"

    with trio.fail_after(8 * TIMEOUT):
        async with (
            trio.open_nursery() as nursery,
            ProxyProcess.start("--frontend", spec[0], "--backend", spec[1]) as first,
        ):
            eps = await first.endpoints()
            for _ in range(WORKERS):
                w = zmq_socket(zmq.REP, RECONNECT_IVL=20)
                w.connect(eps["backend"])
                nursery.start_soon(trio.to_thread.run_sync, echo, w, stop)
            for k in range(CLIENTS):
                c = zmq_socket(zmq.REQ, REQ_RELAXED=1, REQ_CORRELATE=1, RECONNECT_IVL=20)
                c.connect(eps["frontend"])
                nursery.start_soon(
                    trio.to_thread.run_sync,
                    lazy_pirate,
                    c,
                    b"c%d" % k,
                    stop,
                    replies[k],
                    marks[k],
                )
            try:
                await wait_all(before)
                first.send_signal(signal.SIGKILL)
                await first.process.wait()
                counts = [len(r) for r in replies]
                for k in range(CLIENTS):
                    marks[k][counts[k] + 5] = after[k]
                # The same endpoints, resolved: the ports the first one was given.
                second_spec = [f"ROUTER@{eps['frontend']}", f"DEALER@{eps['backend']}"]
                async with ProxyProcess.start(
                    "--frontend", second_spec[0], "--backend", second_spec[1]
                ) as second:
                    assert await second.endpoints() == eps
                    await wait_all(after)
                    second.send_signal(signal.SIGTERM)
                    status, _rest, err = await second.finish()
                    assert status == 0, err
            finally:
                stop.set()
    for k in range(CLIENTS):
        assert replies[k] == list(range(len(replies[k]))), k  # each reply once, in order
        assert len(replies[k]) >= counts[k] + 5


# --------------------------------------------------------------- ipc mishaps


async def test_ipc_file_deleted_while_bound(ipc_dir: Path, zmq_socket: SocketFactory) -> None:
    """Someone deletes our bound socket file: the peers already connected carry on,
    new ones cannot reach us (as with libzmq), closing does not fail, and binding the
    same path again serves libzmq peers."""
    path = ipc_path(ipc_dir, "d")
    with trio.fail_after(TIMEOUT):
        async with zmtp.Context() as ctx:
            pull = ctx.socket(zmtp.PULL)
            await pull.bind(f"ipc://{path}")
            early = zmq_socket(zmq.PUSH)
            early.connect(f"ipc://{path}")
            await trio.to_thread.run_sync(early.send_multipart, [b"early", b"1"])
            assert await pull.recv_multipart() == [b"early", b"1"]
            os.unlink(path)
            await trio.to_thread.run_sync(early.send_multipart, [b"early", b"2"])
            assert await pull.recv_multipart() == [b"early", b"2"]
            with pytest.raises(FileNotFoundError):
                await trio.open_unix_socket(path)
            await pull.aclose()  # its file is gone: nothing to remove, nothing raised
            again = ctx.socket(zmtp.PULL)
            await again.bind(f"ipc://{path}")
            late = zmq_socket(zmq.PUSH)
            late.connect(f"ipc://{path}")
            await trio.to_thread.run_sync(late.send_multipart, [b"late"])
            assert await again.recv_multipart() == [b"late"]
            await again.aclose()
        assert not os.path.exists(path)


STALE_BINDER = """
import sys, zmq
s = zmq.Context().socket(zmq.PULL)
s.bind(sys.argv[1])
print("bound", flush=True)
import time; time.sleep(3600)
"""


async def test_stale_ipc_file_from_a_killed_libzmq_process(
    ipc_dir: Path, zmq_socket: SocketFactory
) -> None:
    """A libzmq process bound to an ipc path is SIGKILLed and leaves its socket file:
    we bind over it, and a libzmq peer reaches us there."""
    path = ipc_path(ipc_dir, "s")
    with trio.fail_after(TIMEOUT):
        async with python(STALE_BINDER, f"ipc://{path}") as proc:
            assert proc.stdout is not None
            assert (await proc.stdout.receive_some(100)).startswith(b"bound")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        assert os.path.exists(path)  # stale: nobody listens there
        with pytest.raises(ConnectionRefusedError):
            await trio.open_unix_socket(path)
        async with zmtp.Context() as ctx:
            pull = ctx.socket(zmtp.PULL)
            await pull.bind(f"ipc://{path}")
            push = zmq_socket(zmq.PUSH)
            push.connect(f"ipc://{path}")
            await trio.to_thread.run_sync(push.send_multipart, [b"over", b"stale"])
            assert await pull.recv_multipart() == [b"over", b"stale"]


# ------------------------------------------------------------- a stalled subscriber


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stalled_subscriber_costs_bounded_memory_and_holds_up_nobody(
    transport: str, zmq_socket: SocketFactory
) -> None:
    # A libzmq SUB that never reads, beside one that does, under our fast PUB: the
    # stalled one's queue stops at the high-water mark (RFC 29: it misses messages),
    # memory stays bounded, the reader keeps receiving, and the drops are counted.
    # Then both leave, and our socket closes (with the default linger, which once waited
    # for ever on a subscriber that had left while it lingered).
    with trio.fail_after(TIMEOUT):
        async with zmtp.Context() as ctx:
            pub = ctx.socket(zmtp.PUB, sndhwm=1000)
            ep = await pub.bind("tcp://127.0.0.1:0" if transport == "tcp" else "ipc://*")
            stalled = zmq_socket(zmq.SUB, RCVHWM=10)
            stalled.setsockopt(zmq.SUBSCRIBE, b"")
            stalled.connect(ep)
            good = zmq_socket(zmq.SUB)
            good.setsockopt(zmq.SUBSCRIBE, b"")
            good.connect(ep)
            mon = pub.monitor()
            while len([p for p in pub.peers if p.connected]) < 2:
                await mon.receive()
            probe = [b"probe"]
            while True:  # until the good subscriber's subscription has taken effect
                await pub.send_multipart(probe)
                await trio.sleep(0)
                try:
                    if good.recv(zmq.NOBLOCK) == b"probe":
                        break
                except zmq.Again:
                    await trio.sleep(0.01)
            before = _rss()
            payload = b"x" * 1000
            received = 0
            for _ in range(200):  # 100,000 messages of 1 kB: 100 MB offered
                await pub.send_many([[payload]] * 500)
                while True:
                    try:
                        good.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    received += 1
            grown = _rss() - before
            assert grown < 24 * 1024 * 1024, f"RSS grew by {grown} bytes"
            assert received > 0, "the reading subscriber was held up"
            assert pub.statistics().dropped_hwm > 0, "the stalled subscriber dropped nothing"
            stalled.close(0)
            good.close(0)
        # Leaving the Context closed the PUB: it did not wait for the gone subscribers.
