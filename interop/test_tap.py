"""``python -m zmtp tap`` between real libzmq peers (pyzmq), and decoding what it saw.

Each test puts the tap between two pyzmq sockets, runs a short conversation through it
and checks three things:

* the peers work unchanged (every message arrives as sent);
* the tap forwarded exactly the bytes libzmq wrote: the recording equals the bytes built
  independently with the core encoders from what the peers were told to do;
* the trace decodes exactly those bytes: the records, re-encoded, give the recording
  back, and their sizes add up to every byte relayed.

The tap runs in-process as a trio task (port 0), except in the subprocess tests of the
command line.  pyzmq's blocking calls run in worker threads with RCVTIMEO/SNDTIMEO set
(see conftest), every wait is for an event seen by the tap, and ``trio.fail_after``
bounds each test: there is no sleep anywhere.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from zmtp import Endpoint as Endpoint_
from zmtp.protocol.commands import encode_cancel, encode_ready, encode_subscribe
from zmtp.protocol.framing import OutputBuffer, encode_message
from zmtp.tools.decode import decode_paths
from zmtp.tools.pcap import PcapWriter
from zmtp.tools.tap import Tap, parse_endpoint
from zmtp.tools.trace import Command, DecodeError, End, Greeting, Message, Notice, Opened, Record

from ._helpers import (
    TIMEOUT,
    TIMEOUT_MS,
    TRANSPORTS,
    BindZmq,
    SocketFactory,
    ipc_path,
    libzmq_greeting,
)
from ._tap_helpers import Collector, LineReader, pcap_from_recording, reencode, running_tap

zmq = pytest.importorskip("zmq")

pytestmark = pytest.mark.interop


def tap_listen(transport: str, ipc_dir: Path) -> str:
    if transport == "tcp":
        return "tcp://127.0.0.1:0"
    return f"ipc://{ipc_path(ipc_dir, 'tap')}"


def wire(*frames: bytes) -> bytes:
    out = OutputBuffer()
    encode_message(out, list(frames))
    return b"".join(bytes(c) for c in out.chunks())


def data_records(records: list[Record]) -> list[Record]:
    """Records other than heartbeats and the final End."""
    return [
        r
        for r in records
        if not isinstance(r, End) and not (isinstance(r, Command) and r.name in ("PING", "PONG"))
    ]


def check_direction(collector: Collector, tap_rec: Path, direction: str, conn: int = 1) -> bytes:
    """The recording of one direction, checked against the trace; returns it."""
    recorded = (tap_rec / f"conn-{conn}-{direction}.bin").read_bytes()
    records = collector.records(direction, conn)  # type: ignore[arg-type]
    assert not any(isinstance(r, DecodeError) for r in records), records
    assert reencode(records) == recorded
    assert records[-1] == End(len(recorded), undecoded=0)
    return recorded


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await trio.to_thread.run_sync(fn, *args)


# ---------------------------------------------------------------------------------------
# In-process tap between pyzmq peers


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_req_rep_through_tap(
    transport: str,
    zmq_socket: SocketFactory,
    bind_zmq: BindZmq,
    ipc_dir: Path,
    tmp_path: Path,
) -> None:
    rep = zmq_socket(zmq.REP)
    upstream = bind_zmq(rep, transport)
    rec = tmp_path / "rec"
    with trio.fail_after(TIMEOUT):
        async with running_tap(tap_listen(transport, ipc_dir), upstream.zmq, record_dir=rec) as (
            endpoint,
            collector,
            tap,
        ):
            req = zmq_socket(zmq.REQ)
            req.connect(endpoint)
            await in_thread(req.send, b"hello")
            assert await in_thread(rep.recv_multipart) == [b"hello"]
            await in_thread(rep.send, b"world" * 60)  # a frame over 255 bytes: LONG
            assert await in_thread(req.recv_multipart) == [b"world" * 60]
            req.close(linger=0)
            await collector.wait_for(lambda c: c.closed("c2s") and c.closed("s2c"))

    c2s = check_direction(collector, rec, "c2s")
    s2c = check_direction(collector, rec, "s2c")
    assert c2s == (
        libzmq_greeting()
        + encode_ready([("Socket-Type", b"REQ"), ("Identity", b"")])
        + wire(b"", b"hello")
    )
    assert s2c == libzmq_greeting() + encode_ready([("Socket-Type", b"REP")]) + wire(
        b"", b"world" * 60
    )
    assert tap.relayed == {"c2s": len(c2s), "s2c": len(s2c)}
    opened = collector.events[0]
    assert isinstance(opened.record, Opened)
    assert opened.record.server == upstream.zmq
    greeting = collector.records("c2s")[0]
    assert greeting == Greeting(bytes(7) + b"\x01", 3, 1, "NULL", False)
    msg = collector.records("s2c")[2]
    assert isinstance(msg, Message)
    assert [(f.size, f.flags) for f in msg.frames] == [(0, 0x01), (300, 0x02)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pub_sub_subscriptions_through_tap(
    transport: str,
    zmq_socket: SocketFactory,
    bind_zmq: BindZmq,
    ipc_dir: Path,
    tmp_path: Path,
) -> None:
    pub = zmq_socket(zmq.PUB)
    upstream = bind_zmq(pub, transport)
    rec = tmp_path / "rec"
    received: list[list[bytes]] = []
    with trio.fail_after(TIMEOUT):
        async with running_tap(tap_listen(transport, ipc_dir), upstream.zmq, record_dir=rec) as (
            endpoint,
            collector,
            _,
        ):
            sub = zmq_socket(zmq.SUB)
            sub.connect(endpoint)
            # Subscribe once the handshake is through, so each (un)subscription goes
            # out as its own command rather than as the cached set
            # (specs/libzmq-behaviour.md §3.1).
            await collector.wait_for(
                lambda c: c.count("c2s", "READY") == c.count("s2c", "READY") == 1
            )
            sub.subscribe(b"A")
            sub.subscribe(b"B")
            sub.unsubscribe(b"A")
            await collector.wait_for(lambda c: c.count("c2s", "CANCEL") == 1)
            # The PUB drops what it publishes before it has processed the subscription
            # (the slow joiner): publish until something arrives, then an end marker.
            # Whatever went on the wire must be exactly what the SUB received.
            n = 0
            while not received:
                await in_thread(pub.send, b"B%d" % n)
                n += 1
                if await in_thread(sub.poll, 20):
                    received.append(await in_thread(sub.recv_multipart))
            await in_thread(pub.send_multipart, [b"B", b"end"])
            while received[-1] != [b"B", b"end"]:
                received.append(await in_thread(sub.recv_multipart))
            sub.close(linger=0)
            await collector.wait_for(lambda c: c.closed("c2s") and c.closed("s2c"))

    c2s = check_direction(collector, rec, "c2s")
    s2c = check_direction(collector, rec, "s2c")
    assert c2s == (
        libzmq_greeting()
        + encode_ready([("Socket-Type", b"SUB")])
        + encode_subscribe(b"A")
        + encode_subscribe(b"B")
        + encode_cancel(b"A")
    )
    assert s2c == libzmq_greeting() + encode_ready([("Socket-Type", b"PUB")]) + b"".join(
        wire(*m) for m in received
    )
    topics = [(r.name, r.topic) for r in collector.records("c2s") if isinstance(r, Command)]
    assert topics == [("READY", None), ("SUBSCRIBE", b"A"), ("SUBSCRIBE", b"B"), ("CANCEL", b"A")]


async def router_dealer_conversation(
    zmq_socket: SocketFactory,
    upstream_router: Any,
    endpoint: str,
    collector: Collector,
) -> None:
    """DEALER 'dealer-1' (heartbeats on) talks to a ROUTER 'router-x' through the tap."""
    dealer = zmq_socket(
        zmq.DEALER,
        ROUTING_ID=b"dealer-1",
        HEARTBEAT_IVL=30,
        HEARTBEAT_TTL=2000,
        HEARTBEAT_TIMEOUT=TIMEOUT_MS,
    )
    dealer.connect(endpoint)
    await in_thread(dealer.send_multipart, [b"hi", b"there"])
    assert await in_thread(upstream_router.recv_multipart) == [b"dealer-1", b"hi", b"there"]
    # Let heartbeats flow both ways before replying: wait for a PONG in each direction.
    await collector.wait_for(lambda c: c.count("s2c", "PONG") >= 2 and c.count("c2s", "PONG") >= 2)
    await in_thread(upstream_router.send_multipart, [b"dealer-1", b"yo" * 200])
    assert await in_thread(dealer.recv_multipart) == [b"yo" * 200]
    dealer.close(linger=0)
    await collector.wait_for(lambda c: c.closed("c2s") and c.closed("s2c"))


def router(zmq_socket: SocketFactory) -> Any:
    return zmq_socket(
        zmq.ROUTER,
        ROUTING_ID=b"router-x",
        HEARTBEAT_IVL=30,
        HEARTBEAT_TTL=1000,
        HEARTBEAT_TIMEOUT=TIMEOUT_MS,
    )


def check_router_dealer(collector: Collector, rec: Path) -> None:
    c2s = check_direction(collector, rec, "c2s")
    s2c = check_direction(collector, rec, "s2c")
    assert c2s.startswith(
        libzmq_greeting(b"dealer-1")
        + encode_ready([("Socket-Type", b"DEALER"), ("Identity", b"dealer-1")])
    )
    assert s2c.startswith(
        libzmq_greeting(b"router-x")
        + encode_ready([("Socket-Type", b"ROUTER"), ("Identity", b"router-x")])
    )
    c2s_records, s2c_records = collector.records("c2s"), collector.records("s2c")
    assert reencode(data_records(c2s_records)) == c2s[:64] + encode_ready(
        [("Socket-Type", b"DEALER"), ("Identity", b"dealer-1")]
    ) + wire(b"hi", b"there")
    assert reencode(data_records(s2c_records)) == s2c[:64] + encode_ready(
        [("Socket-Type", b"ROUTER"), ("Identity", b"router-x")]
    ) + wire(b"yo" * 200)
    # Heartbeats: the TTL each side was configured with (in deciseconds,
    # specs/libzmq-behaviour.md §3.2), no context; PONGs echo the empty context.
    beats = {
        d: [
            (r.name, r.ttl, r.context)
            for r in recs
            if isinstance(r, Command) and r.name in ("PING", "PONG")
        ]
        for d, recs in (("c2s", c2s_records), ("s2c", s2c_records))
    }
    assert set(beats["c2s"]) == {("PING", 20, b""), ("PONG", None, b"")}
    assert set(beats["s2c"]) == {("PING", 10, b""), ("PONG", None, b"")}
    # Every PONG answers a PING of the other side.
    assert beats["s2c"].count(("PONG", None, b"")) <= beats["c2s"].count(("PING", 20, b""))
    assert beats["c2s"].count(("PONG", None, b"")) <= beats["s2c"].count(("PING", 10, b""))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_router_dealer_identities_and_heartbeats_through_tap(
    transport: str,
    zmq_socket: SocketFactory,
    bind_zmq: BindZmq,
    ipc_dir: Path,
    tmp_path: Path,
) -> None:
    upstream_router = router(zmq_socket)
    upstream = bind_zmq(upstream_router, transport)
    rec = tmp_path / "rec"
    with trio.fail_after(TIMEOUT):
        async with running_tap(tap_listen(transport, ipc_dir), upstream.zmq, record_dir=rec) as (
            endpoint,
            collector,
            _,
        ):
            await router_dealer_conversation(zmq_socket, upstream_router, endpoint, collector)
    check_router_dealer(collector, rec)


def comparable(events: list[Any]) -> list[tuple[str | None, Record]]:
    """(direction, record) of each decoded event: no times, no connection-level notes."""
    return [(e.direction, e.record) for e in events if not isinstance(e.record, Opened | Notice)]


async def test_recording_and_pcap_decode_like_the_live_tap(
    zmq_socket: SocketFactory, bind_zmq: BindZmq, tmp_path: Path
) -> None:
    pytest.importorskip("dpkt")
    upstream_router = router(zmq_socket)
    upstream = bind_zmq(upstream_router, "tcp")
    rec = tmp_path / "rec"
    with trio.fail_after(TIMEOUT):
        async with running_tap("tcp://127.0.0.1:0", upstream.zmq, record_dir=rec) as (
            endpoint,
            collector,
            _,
        ):
            await router_dealer_conversation(zmq_socket, upstream_router, endpoint, collector)
    check_router_dealer(collector, rec)
    live = comparable(collector.events)

    # The recording with its timeline: the same events, in the same order.
    assert comparable(list(decode_paths([rec], preview=1 << 16))) == live

    # A capture of the same traffic, in order: the same events in the same order.
    in_order = tmp_path / "in-order.pcap"
    pcap_from_recording(rec, 1, in_order)
    assert comparable(list(decode_paths([in_order], preview=1 << 16))) == live

    # With retransmissions and out-of-order segments: the same events per direction.
    shuffled = tmp_path / "shuffled.pcap"
    pcap_from_recording(rec, 1, shuffled, rng=random.Random(1))
    decoded = comparable(list(decode_paths([shuffled], preview=1 << 16)))
    for direction in ("c2s", "s2c"):
        assert [r for d, r in decoded if d == direction] == [r for d, r in live if d == direction]


class JitteryClock:
    """A wall clock that steps back 50 ms on every other reading, as an NTP-adjusted one
    may; the tap's stamps must still never decrease."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return 1_700_000_000 + self.readings * 0.01 - (self.readings % 2) * 0.05


def nondecreasing(times: list[float]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(times))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tap_pcap_and_times(
    transport: str,
    zmq_socket: SocketFactory,
    bind_zmq: BindZmq,
    ipc_dir: Path,
    tmp_path: Path,
) -> None:
    """``--pcap``: the capture decodes to what the tap showed live, and the times of the
    output, the timeline and the capture never go backwards (with a clock that does)."""
    dpkt = pytest.importorskip("dpkt")
    upstream_router = router(zmq_socket)
    upstream = bind_zmq(upstream_router, transport)
    rec, cap = tmp_path / "rec", tmp_path / "tap.pcap"
    clock = JitteryClock()
    with PcapWriter(cap) as writer, trio.fail_after(TIMEOUT):
        async with running_tap(
            tap_listen(transport, ipc_dir), upstream.zmq, record_dir=rec, wire=writer, clock=clock
        ) as (endpoint, collector, _):
            await router_dealer_conversation(zmq_socket, upstream_router, endpoint, collector)
    assert clock.readings > 10
    check_router_dealer(collector, rec)
    times = [e.time for e in collector.events]
    assert None not in times
    assert nondecreasing(times)  # type: ignore[arg-type]
    timeline = [json.loads(x) for x in (rec / "conn-1-timeline.jsonl").read_text().splitlines()]
    assert nondecreasing([timeline[0]["time"]] + [x["t"] for x in timeline[1:]])
    with cap.open("rb") as f:
        stamps = [ts for ts, _ in dpkt.pcap.Reader(f)]
    assert stamps[0] == times[0]
    assert nondecreasing(stamps)
    # The capture holds the same conversation, in the same order, with the same times.
    decoded = list(decode_paths([cap], preview=1 << 16))
    assert comparable(decoded) == comparable(collector.events)
    live = [e.time for e in collector.events if not isinstance(e.record, Opened | Notice)]
    assert [e.time for e in decoded if not isinstance(e.record, Opened | Notice)] == pytest.approx(
        live, abs=1e-6
    )


async def test_garbage_is_relayed_and_flagged(
    zmq_socket: SocketFactory, bind_zmq: BindZmq, tmp_path: Path
) -> None:
    rep = zmq_socket(zmq.REP)
    upstream = bind_zmq(rep, "tcp")
    rec = tmp_path / "rec"
    with trio.fail_after(TIMEOUT):
        async with running_tap("tcp://127.0.0.1:0", upstream.zmq, record_dir=rec) as (
            endpoint,
            collector,
            _,
        ):
            host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
            stream = await trio.open_tcp_stream(host, int(port))
            async with stream:
                # libzmq sends its 10-byte signature before reading anything
                # (specs/libzmq-behaviour.md §1.2); it comes through the tap although our
                # side is not ZMTP.  Read it first: the garbage below makes libzmq hang
                # up at once, and a reset may overtake bytes still in flight.
                got = b""
                while len(got) < 10:
                    chunk = await stream.receive_some()
                    assert chunk
                    got += chunk
                assert got[:1] == b"\xff"
                assert got[9:10] == b"\x7f"
                # A first byte other than FF makes us (and libzmq) read a ZMTP 1.0
                # frame; 00 is a 1.0 length of 0, which no peer may send.
                await stream.send_all(b"\x00GET / HTTP/1.1\r\n\r\n")
                await collector.wait_for(
                    lambda c: any(isinstance(r, DecodeError) for r in c.records("c2s"))
                )
            await collector.wait_for(lambda c: c.closed("c2s") and c.closed("s2c"))
    detected, err = collector.records("c2s")[:2]
    assert "byte 0 is 0x00" in detected.detected_by
    assert isinstance(err, DecodeError)
    assert err.offset == 0
    assert "length 0" in err.reason
    sent = (rec / "conn-1-c2s.bin").read_bytes()
    assert sent == b"\x00GET / HTTP/1.1\r\n\r\n"
    assert collector.records("c2s")[-1] == End(len(sent), undecoded=len(sent))
    assert (rec / "conn-1-s2c.bin").read_bytes().startswith(got[:10])


async def test_many_simultaneous_connections(
    zmq_socket: SocketFactory, bind_zmq: BindZmq, tmp_path: Path
) -> None:
    upstream_router = zmq_socket(zmq.ROUTER)
    upstream = bind_zmq(upstream_router, "tcp")
    rec = tmp_path / "rec"
    n = 5
    with trio.fail_after(TIMEOUT):
        async with running_tap("tcp://127.0.0.1:0", upstream.zmq, record_dir=rec) as (
            endpoint,
            collector,
            _,
        ):
            dealers = [zmq_socket(zmq.DEALER, ROUTING_ID=b"d%d" % i) for i in range(n)]
            for d in dealers:
                d.connect(endpoint)
            # All connections are open at once before anyone speaks.
            await collector.wait_for(lambda c: c.count("c2s", "READY") == n)
            for i, d in enumerate(dealers):
                await in_thread(d.send, b"from %d" % i)
            got = sorted([await in_thread(upstream_router.recv_multipart) for _ in range(n)])
            assert got == sorted([[b"d%d" % i, b"from %d" % i] for i in range(n)])
            for i in range(n):
                await in_thread(upstream_router.send_multipart, [b"d%d" % i, b"to %d" % i])
            for i, d in enumerate(dealers):
                assert await in_thread(d.recv_multipart) == [b"to %d" % i]
                d.close(linger=0)
            await collector.wait_for(
                lambda c: all(c.closed(d, k) for d in ("c2s", "s2c") for k in range(1, n + 1))
            )
    conns = {e.conn for e in collector.events}
    assert conns == set(range(1, n + 1))
    for k in conns:
        check_direction(collector, rec, "c2s", k)
        check_direction(collector, rec, "s2c", k)


# ---------------------------------------------------------------------------------------
# The command line, as a subprocess


@contextmanager
def tap_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], LineReader, LineReader, str]]:
    """``python -m zmtp tap ARGS`` as a subprocess: yields (process, stdout, stderr, the
    endpoint it listens on); killed at exit if still running."""
    with subprocess.Popen(
        [sys.executable, "-m", "zmtp", "tap", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        out, err = LineReader(proc.stdout), LineReader(proc.stderr)
        try:
            first = err.next_line(TIMEOUT)
            m = re.match(r"tap: listening on (\S+), relaying to", first or "")
            assert m, f"tap did not start: {first!r}"
            yield proc, out, err, m[1]
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(TIMEOUT)
            out.join(TIMEOUT)
            err.join(TIMEOUT)


def stop_tap(proc: subprocess.Popen[str], err: LineReader) -> list[str]:
    """Ctrl-C: the tap must exit cleanly (status 0) and say what it relayed."""
    proc.send_signal(signal.SIGINT)
    assert proc.wait(TIMEOUT) == 0, err.rest(TIMEOUT)
    return err.rest(TIMEOUT)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cli_tap_json(
    transport: str,
    zmq_socket: SocketFactory,
    bind_zmq: BindZmq,
    ipc_dir: Path,
    tmp_path: Path,
) -> None:
    rep = zmq_socket(zmq.REP)
    upstream = bind_zmq(rep, transport)
    rec = tmp_path / "rec"
    listen = tap_listen(transport, ipc_dir)
    cap = tmp_path / "tap.pcap"
    with tap_process(listen, upstream.zmq, "--json", "--record", str(rec), "--pcap", str(cap)) as (
        proc,
        out,
        err,
        endpoint,
    ):
        req = zmq_socket(zmq.REQ)
        req.connect(endpoint)
        req.send(b"ping?")
        assert rep.recv_multipart() == [b"ping?"]
        rep.send(b"pong!")
        assert req.recv_multipart() == [b"pong!"]
        req.close(linger=0)
        lines = out.until(lambda ls: sum('"event":"end"' in x for x in ls) == 2, TIMEOUT)
        tail = stop_tap(proc, err)
    assert any("tap: stopped" in x for x in tail)
    events = [json.loads(x) for x in lines]
    assert events[0]["event"] == "open"
    c2s = [e for e in events if e["dir"] == "c2s"]
    assert [e["event"] for e in c2s] == ["greeting", "command", "message", "end"]
    assert c2s[0]["padding"] == "0000000000000001"
    assert c2s[1]["properties"][0] == {
        "name": "Socket-Type",
        "value": {"hex": "524551", "text": "REQ"},
    }
    assert [f["text"] for f in c2s[2]["frames"]] == ["", "ping?"]
    expected = libzmq_greeting() + encode_ready([("Socket-Type", b"REQ"), ("Identity", b"")])
    expected += wire(b"", b"ping?")
    assert c2s[3]["bytes"] == len(expected)
    assert (rec / "conn-1-c2s.bin").read_bytes() == expected
    # The recording decodes to the same events (times aside).
    decoded = subprocess.run(
        [sys.executable, "-m", "zmtp", "decode", "--json", str(rec)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 6,
        check=True,
    )

    def strip(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in o.items() if k != "time"} for o in objs if o["event"] != "open"]

    assert strip([json.loads(x) for x in decoded.stdout.splitlines()]) == strip(events)
    # So does the capture the tap wrote with --pcap (closed on Ctrl-C, FINs included).
    assert any(re.fullmatch(r"tap: wrote \d+ packets to .*tap\.pcap", x) for x in tail)
    captured = subprocess.run(
        [sys.executable, "-m", "zmtp", "decode", "--json", str(cap)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 6,
        check=True,
    )
    assert strip([json.loads(x) for x in captured.stdout.splitlines()]) == strip(events)


def test_cli_tap_human(zmq_socket: SocketFactory, bind_zmq: BindZmq) -> None:
    pull = zmq_socket(zmq.PULL)
    upstream = bind_zmq(pull, "tcp")
    with tap_process("tcp://127.0.0.1:0", upstream.zmq, "--preview", "4") as (
        proc,
        out,
        err,
        endpoint,
    ):
        push = zmq_socket(zmq.PUSH)
        push.connect(endpoint)
        push.send_multipart([b"first", b"second"])
        assert pull.recv_multipart() == [b"first", b"second"]
        push.close(linger=0)
        lines = out.until(lambda ls: sum("closed after" in x for x in ls) == 2, TIMEOUT)
        stop_tap(proc, err)
    text = "\n".join(lines)
    assert "\x1b[" not in text  # stdout is a pipe: no colour
    assert re.search(
        r"^\d\d:\d\d:\d\d\.\d{6} #1 c>s READY \(26 B\) Socket-Type='PUSH'$", text, re.M
    )
    assert "#1 s>c READY (26 B) Socket-Type='PULL'" in text
    assert "#1 c>s message 2 frames, 11 B (15 B on the wire)" in text
    assert "#1 c>s   frame 1/2: 5 B, flags 01 MORE  66 69 72 73  |firs| ...(+1 B)" in text
    assert all(re.match(r"^\d\d:\d\d:\d\d\.\d{6} #1 ", x) for x in lines)


def test_cli_tap_cannot_listen() -> None:
    # A port already in use: one line on stderr, exit status 1.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "zmtp", "tap", f"tcp://127.0.0.1:{port}", "tcp://127.0.0.1:1"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 6,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "tap: error:" in result.stderr


async def test_upstream_unreachable_is_reported_and_client_closed() -> None:
    # A port nobody listens on: bind one, and close it before the tap uses it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with trio.fail_after(TIMEOUT):
        async with running_tap("tcp://127.0.0.1:0", f"tcp://127.0.0.1:{port}") as (
            endpoint,
            collector,
            _,
        ):
            host, _, tap_port = endpoint.removeprefix("tcp://").rpartition(":")
            async with await trio.open_tcp_stream(host, int(tap_port)) as stream:
                try:
                    data = await stream.receive_some()
                except trio.BrokenResourceError:  # a reset is a hang-up too
                    data = b""
                assert data == b""  # the tap hung up on us
            await collector.wait_for(lambda c: bool(c.events))
    (event,) = collector.events
    assert isinstance(event.record, Notice)
    assert f"cannot connect to tcp://127.0.0.1:{port}" in event.record.text


# ---------------------------------------------------------------------------------------
# Endpoints and recording names (no network)


@pytest.mark.parametrize(
    ("text", "listen", "expected"),
    [
        ("tcp://127.0.0.1:5555", False, Endpoint_("tcp", host="127.0.0.1", port=5555)),
        ("tcp://localhost:1", False, Endpoint_("tcp", host="localhost", port=1)),
        ("tcp://[::1]:5555", False, Endpoint_("tcp", host="::1", port=5555)),
        ("tcp://*:*", True, Endpoint_("tcp", host="", port=0)),
        ("tcp://127.0.0.1:0", True, Endpoint_("tcp", host="127.0.0.1", port=0)),
        ("ipc:///tmp/x.sock", False, Endpoint_("ipc", path="/tmp/x.sock")),
        ("ipc://@abstract", True, Endpoint_("ipc", path="@abstract")),
    ],
)
def test_parse_endpoint(text: str, listen: bool, expected: Endpoint_) -> None:
    assert parse_endpoint(text, listen=listen) == expected
    assert str(expected) == text.replace("*:*", "*:0")


@pytest.mark.parametrize(
    ("text", "listen"),
    [
        ("tcp://127.0.0.1", True),
        ("tcp://127.0.0.1:0", False),
        ("tcp://*:5555", False),
        ("tcp://h:70000", True),
        ("udp://h:1", True),
        ("ipc://", True),
        ("127.0.0.1:5555", True),
    ],
)
def test_parse_endpoint_rejects(text: str, listen: bool) -> None:
    with pytest.raises(ValueError, match=r"tcp://|ipc|port|only allowed"):
        parse_endpoint(text, listen=listen)


async def test_recording_numbers_continue(tmp_path: Path) -> None:
    (tmp_path / "conn-7-c2s.bin").write_bytes(b"old")
    tap = Tap(
        parse_endpoint("tcp://127.0.0.1:0", listen=True),
        parse_endpoint("tcp://127.0.0.1:1"),
        Collector(),
        record_dir=tmp_path,
    )
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            (endpoint,) = await nursery.start(tap.serve)
            host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
            # Upstream is unreachable, so the connection gets a number and ends at once.
            async with await trio.open_tcp_stream(host, int(port)) as stream:
                with contextlib.suppress(trio.BrokenResourceError):
                    await stream.receive_some()
            nursery.cancel_scope.cancel()
    assert next(tap._numbers) == 9  # 8 was used by the connection above
    assert (tmp_path / "conn-7-c2s.bin").read_bytes() == b"old"
