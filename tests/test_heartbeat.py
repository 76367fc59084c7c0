"""ZMTP 3.1 heartbeats (RFC 37 "Heartbeating") in virtual time.

Every test runs on trio's autojump clock (``MockClock(autojump_threshold=0)``, the
``autojump_clock`` fixture): when every task is blocked the clock jumps to the next
deadline, so intervals of seconds take no real time and the instants at which things
happen are exact.  No real network is involved: our sockets' engines run over
``trio.testing.memory_stream_pair`` streams, against a raw :class:`zmtp.Connection`
peer (:class:`RawPeer`) or another of our sockets.

What libzmq 4.3.5 does, and these tests pin down (specs/libzmq-behaviour.md §3.2):

* ``heartbeat_ivl``: a PING every interval after the handshake, whatever other traffic
  flows, always with the 2-byte TTL field (``heartbeat_ttl`` in deciseconds);
* ``heartbeat_timeout`` (default: the interval): armed by a PING when not already
  armed, disarmed by anything arriving; on expiry the connection is dropped;
* a PING from the peer is answered with a PONG echoing its context, and its TTL arms a
  timer that anything arriving disarms;
* the connecting side reconnects after such a drop (a timeout is not a protocol
  violation), and heartbeats never reach the application.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

import zmtp
from zmtp import Connection, HandshakeComplete, Ping, Pong, SocketType, Subscribe
from zmtp.protocol.commands import encode_ping
from zmtp.sockets import Socket

EventType = zmtp.EventType


class RawPeer:
    """A ZMTP peer driven by hand over a stream, recording what arrives and when.

    It completes the handshake; afterwards it sends what its Connection queues (the
    automatic PONGs) only while :attr:`answer` is true.
    """

    def __init__(self, stream: trio.abc.Stream, socket_type: SocketType) -> None:
        self.stream = stream
        self.conn = Connection(socket_type)
        self.answer = True
        self.events: list[tuple[float, object]] = []
        self.connected_at: float | None = None
        self.closed_at: float | None = None
        self.handshake = trio.Event()

    async def run(self) -> None:
        try:
            await self.stream.send_all(self.conn.bytes_to_send())
            while True:
                data = await self.stream.receive_some(65536)
                now = trio.current_time()
                if not data:
                    self.closed_at = now
                    return
                events = self.conn.receive_data(data)
                finishing = False
                for ev in events:
                    self.events.append((now, ev))
                    if isinstance(ev, HandshakeComplete):
                        self.connected_at = now
                        finishing = True
                out = self.conn.bytes_to_send()
                # The handshake always completes; after it, PONGs only if answering.
                if out and (self.answer or finishing or self.conn.handshake is None):
                    await self.stream.send_all(out)
                if finishing:
                    self.handshake.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed_at = trio.current_time()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    def received(self, kind: type) -> list[tuple[float, Any]]:
        """(time relative to the handshake, event) for each event of ``kind``."""
        assert self.connected_at is not None
        return [(t - self.connected_at, ev) for t, ev in self.events if isinstance(ev, kind)]


def attach(sock: Socket, stream: trio.abc.Stream, name: str = "mem://peer") -> None:
    """Run an engine for ``sock`` over ``stream``, as if ``name`` had been accepted."""
    sock.attach_stream(stream, name)


async def with_raw_peer(
    ctx: zmtp.Context, nursery: trio.Nursery, sock: Socket, peer_type: SocketType
) -> RawPeer:
    ours, theirs = trio.testing.memory_stream_pair()
    peer = RawPeer(theirs, peer_type)
    nursery.start_soon(peer.run)
    attach(sock, ours)
    await peer.handshake.wait()
    return peer


async def next_event(mon: zmtp.Monitor, kind: EventType) -> zmtp.SocketEvent:
    async for event in mon:
        if event.type is kind:
            return event
    raise AssertionError(f"monitor ended before {kind}")


Body = Callable[[zmtp.Context, trio.Nursery], Awaitable[None]]


async def run(body: Body) -> None:
    with trio.fail_after(600):  # virtual seconds: a hang fails fast
        async with zmtp.Context() as ctx, trio.open_nursery() as nursery:
            await body(ctx, nursery)
            nursery.cancel_scope.cancel()


# ----------------------------------------------------------------------- sending PINGs


async def test_pings_every_interval_with_the_ttl(autojump_clock: trio.testing.MockClock) -> None:
    async def body(ctx: zmtp.Context, nursery: trio.Nursery) -> None:
        sock = ctx.socket(zmtp.DEALER, heartbeat_ivl=1000, heartbeat_ttl=1500)
        peer = await with_raw_peer(ctx, nursery, sock, SocketType.ROUTER)
        await trio.sleep(3.5)
        pings = peer.received(Ping)
        assert [t for t, _ in pings] == pytest.approx([1.0, 2.0, 3.0])
        # 15 deciseconds, no context: the bytes 04 07 04 "PING" 00 0f
        # (specs/libzmq-behaviour.md §3.2).
        assert all(ev == Ping(ttl=15, context=b"") for _, ev in pings)
        assert encode_ping(15) == b"\x04\x07\x04PING\x00\x0f"

    await run(body)


async def test_pings_flow_whatever_other_traffic(autojump_clock: trio.testing.MockClock) -> None:
    async def body(ctx: zmtp.Context, nursery: trio.Nursery) -> None:
        sock = ctx.socket(zmtp.DEALER, heartbeat_ivl=1000)
        peer = await with_raw_peer(ctx, nursery, sock, SocketType.ROUTER)
        for i in range(35):  # a message every 0.1 s both ways
            await sock.send_multipart([b"%d" % i])
            peer.conn.send_message([b"", b"%d" % i])
            await peer.send(peer.conn.bytes_to_send())
            await trio.sleep(0.1)
        assert len(peer.received(Ping)) == 3
        assert [await sock.recv_multipart() for _ in range(35)] == [
            [b"", b"%d" % i] for i in range(35)
        ]

    await run(body)


async def test_no_heartbeats_by_default(autojump_clock: trio.testing.MockClock) -> None:
    async def body(ctx: zmtp.Context, nursery: trio.Nursery) -> None:
        sock = ctx.socket(zmtp.DEALER)
        peer = await with_raw_peer(ctx, nursery, sock, SocketType.ROUTER)
        peer.answer = False
        await trio.sleep(300)
        assert peer.received(Ping) == []
        assert peer.closed_at is None  # a silent peer is kept: nobody asked to check

    await run(body)


# ----------------------------------------------------------------------- timeouts


@pytest.mark.parametrize(
    ("options", "dropped_at"),
    [
        ({"heartbeat_ivl": 1000}, 2.0),  # timeout defaults to the interval
        ({"heartbeat_ivl": 1000, "heartbeat_timeout": 3000}, 4.0),  # first PING + 3 s
        ({"heartbeat_ivl": 1000, "heartbeat_timeout": 500}, 1.5),
        # the probe in specs/libzmq-behaviour.md §3.2
        ({"heartbeat_ivl": 200, "heartbeat_timeout": 600}, 0.8),
    ],
)
async def test_silent_peer_dropped_in_time(
    autojump_clock: trio.testing.MockClock, options: dict[str, int], dropped_at: float
) -> None:
    async def body(ctx: zmtp.Context, nursery: trio.Nursery) -> None:
        sock = ctx.socket(zmtp.DEALER, **options)
        mon = sock.monitor()
        peer = await with_raw_peer(ctx, nursery, sock, SocketType.ROUTER)
        peer.answer = False
        event = await next_event(mon, EventType.DISCONNECTED)
        assert peer.connected_at is not None
        assert trio.current_time() - peer.connected_at == pytest.approx(dropped_at)
        assert "heartbeat" in event.reason.lower()
        assert not sock.peers  # an accepted peer goes away with its connection

    await run(body)


async def test_answering_peer_is_kept_then_dropped_when_it_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Every PONG disarms the timeout; the first PING after the last answer re-arms it."""

    async def body(ctx: zmtp.Context, nursery: trio.Nursery) -> None:
        sock = ctx.socket(zmtp.DEALER, heartbeat_ivl=1000, heartbeat_timeout=3000)
        mon = sock.monitor()
        peer = await with_raw_peer(ctx, nursery, sock, SocketType.ROUTER)
        assert peer.connected_at is not None
        await trio.sleep(10.5)  # PINGs at 1..10, each answered at once
        assert peer.closed_at is None
        assert len(peer.received(Ping)) == 10
        peer.answer = False
        await next_event(mon, EventType.DISCONNECTED)
        # The PONG to the PING at 10 s disarmed the timer; the PING at 11 s arms it.
        assert trio.current_time() - peer.connected_at == pytest.approx(14.0)

    await run(body)


async def test_any_traffic_counts_as_life(autojump_clock: trio.testing.MockClock) -> None:
    async def body(ctx: zmtp.Context, nursery: trio.Nursery) -> None:
        sock = ctx.socket(zmtp.DEALER, heartbeat_ivl=1000)
        mon = sock.monitor()
        peer = await with_raw_peer(ctx, nursery, sock, SocketType.ROUTER)
        assert peer.connected_at is not None
        peer.answer = False  # never a PONG, but data every 0.5 s
        for i in range(20):
            peer.conn.send_message([b"", b"%d" % i])
            await peer.send(peer.conn.bytes_to_send())
            await trio.sleep(0.5)
        assert peer.closed_at is None
        await next_event(mon, EventType.DISCONNECTED)
        # Last data at 9.5 s; the PING at 10 s arms the 1 s timeout.
        assert trio.current_time() - peer.connected_at == pytest.approx(11.0)
        assert len([m async for m in _drain(sock)]) == 20  # data kept, no PONG in it

    await run(body)


async def _drain(sock: Socket) -> Any:
    while True:
        try:
            yield sock.recv_multipart_nowait()
        except trio.WouldBlock:
            return


# ----------------------------------------------------------------------- the peer's PINGs


async def test_peer_ping_answered_with_its_context(autojump_clock: trio.testing.MockClock) -> None:
    async def body(ctx: zmtp.Context, nursery: trio.Nursery) -> None:
        sock = ctx.socket(zmtp.PULL)
        peer = await with_raw_peer(ctx, nursery, sock, SocketType.PUSH)
        await peer.send(encode_ping(0, b"context-16-bytes"))
        await peer.send(encode_ping(0, b""))
        await trio.testing.wait_all_tasks_blocked()
        assert [ev for _, ev in peer.received(Pong)] == [Pong(b"context-16-bytes"), Pong(b"")]
        with pytest.raises(trio.WouldBlock):
            sock.recv_multipart_nowait()  # nothing reaches the application

    await run(body)


async def test_peer_ttl_honoured(autojump_clock: trio.testing.MockClock) -> None:
    async def body(ctx: zmtp.Context, nursery: trio.Nursery) -> None:
        sock = ctx.socket(zmtp.PULL)  # no heartbeats of its own
        mon = sock.monitor()
        peer = await with_raw_peer(ctx, nursery, sock, SocketType.PUSH)
        assert peer.connected_at is not None
        for _ in range(10):  # a PING with TTL 2.5 s every second keeps it alive
            await peer.send(encode_ping(25))
            await trio.sleep(1)
        assert peer.closed_at is None
        await peer.send(encode_ping(25))  # the last one, at 10 s
        await next_event(mon, EventType.DISCONNECTED)
        assert trio.current_time() - peer.connected_at == pytest.approx(12.5)

    await run(body)


async def test_peer_ttl_zero_arms_nothing(autojump_clock: trio.testing.MockClock) -> None:
    async def body(ctx: zmtp.Context, nursery: trio.Nursery) -> None:
        sock = ctx.socket(zmtp.PULL)
        peer = await with_raw_peer(ctx, nursery, sock, SocketType.PUSH)
        await peer.send(encode_ping(0))
        await trio.sleep(300)
        assert peer.closed_at is None

    await run(body)


# ----------------------------------------------------------------------- between our sockets


async def test_heartbeats_never_break_req_rep(autojump_clock: trio.testing.MockClock) -> None:
    async def body(ctx: zmtp.Context, nursery: trio.Nursery) -> None:
        opts = {"heartbeat_ivl": 100, "heartbeat_timeout": 300, "heartbeat_ttl": 500}
        req = ctx.socket(zmtp.REQ, **opts)
        rep = ctx.socket(zmtp.REP, **opts)
        mons = [req.monitor(), rep.monitor()]
        a, b = trio.testing.memory_stream_pair()
        attach(req, a)
        attach(rep, b)
        await req.wait_for_peers(1)
        await rep.wait_for_peers(1)
        for i in range(5):
            await req.send_multipart([b"request %d" % i])
            await trio.sleep(10)  # a hundred PINGs each way meanwhile
            assert await rep.recv_multipart() == [b"request %d" % i]
            await trio.sleep(10)
            await rep.send_multipart([b"reply %d" % i])
            await trio.sleep(10)
            assert await req.recv_multipart() == [b"reply %d" % i]
        for mon in mons:
            seen = []
            while True:
                try:
                    seen.append(mon.receive_nowait().type)
                except trio.WouldBlock:
                    break
            assert EventType.DISCONNECTED not in seen

    await run(body)


async def test_connecting_side_reconnects_after_a_timeout(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A silent publisher is dropped, the SUB reconnects and replays its subscription."""
    peers: list[RawPeer] = []

    async def body(ctx: zmtp.Context, nursery: trio.Nursery) -> None:
        async def fake_open_stream(ep: object) -> trio.abc.Stream:
            ours, theirs = trio.testing.memory_stream_pair()
            peer = RawPeer(theirs, SocketType.PUB)
            peer.answer = False  # completes the handshake, then never a word
            peers.append(peer)
            nursery.start_soon(peer.run)
            return ours

        monkeypatch.setattr("zmtp.sockets._endpoints.open_stream", fake_open_stream)
        sub = ctx.socket(zmtp.SUB, heartbeat_ivl=1000, reconnect_ivl=100)
        mon = sub.monitor()
        sub.subscribe(b"topic")
        await sub.connect("tcp://publisher.invalid:5556")
        await next_event(mon, EventType.HANDSHAKE_SUCCEEDED)
        t0 = trio.current_time()
        dropped = await next_event(mon, EventType.DISCONNECTED)
        assert "heartbeat" in dropped.reason.lower()
        retry = await next_event(mon, EventType.CONNECT_RETRIED)
        assert retry.detail["reconnect_in"] == pytest.approx(0.1)
        await next_event(mon, EventType.HANDSHAKE_SUCCEEDED)
        assert trio.current_time() - t0 == pytest.approx(2.1)
        await trio.testing.wait_all_tasks_blocked()
        for peer in peers:
            assert [ev for _, ev in peer.received(Subscribe)] == [Subscribe(b"topic")]
        assert len(peers) == 2

    await run(body)


async def test_backpressure_is_not_silence(autojump_clock: trio.testing.MockClock) -> None:
    """While our application is not reading, the engine stops reading too, so the
    peer's PONGs go unread: that must not count against the peer."""

    async def body(ctx: zmtp.Context, nursery: trio.Nursery) -> None:
        sock = ctx.socket(zmtp.PULL, rcvhwm=1, heartbeat_ivl=1000)
        peer = await with_raw_peer(ctx, nursery, sock, SocketType.PUSH)
        for i in range(5):
            peer.conn.send_message([b"%d" % i])
            await peer.send(peer.conn.bytes_to_send())
        await trio.sleep(100)
        assert peer.closed_at is None
        assert [await sock.recv_multipart() for _ in range(5)] == [[b"%d" % i] for i in range(5)]
        await trio.sleep(10)  # reading again, PINGs answered: still alive
        assert peer.closed_at is None
        peer.answer = False
        await trio.sleep(10)
        assert peer.closed_at is not None

    await run(body)
