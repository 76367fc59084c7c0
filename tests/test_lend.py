"""A receiving task that waits on its socket's only connection itself (Engine.lend).

When a socket has one connection and the application blocks in a receive, the
application's task waits on that connection's descriptor and decodes what arrives,
instead of the engine's reader task waking first and then waking it.  Everything the
reader would have done must still happen: every way input can reach the socket wakes
the receiver, errors and EOF end the connection in the reader, and the reader takes
over again as soon as the receive returns or is cancelled.

Each test first checks that the receiving task really is waiting on a lent
connection (``_lender`` set), so that it tests this path and not the usual one.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

import zmtp
from zmtp import Ping, Pong, SocketType
from zmtp.sockets import Socket
from zmtp.sockets._engine import Engine
from zmtp.sockets._lending import LEND_HOLD
from zmtp.sockets._wakeup import Wakeup

from ._helpers import STREAM_TRANSPORTS, RawPeer, bind_address, context, read_until_eof


@asynccontextmanager
async def bound(
    transport: str, kind: SocketType = zmtp.PULL, **options: object
) -> AsyncIterator[tuple[zmtp.Context, Socket, str]]:
    async with context() as ctx:
        sock = ctx.socket(kind, **options)
        ep = await sock.bind(bind_address(transport))
        yield ctx, sock, ep


def only_engine(sock: Socket) -> Engine:
    [peer] = sock.peers
    assert peer.engine is not None
    return peer.engine


async def receive_into(sock: Socket, out: list[list[bytes]]) -> None:
    out.append(await sock.recv_multipart())


async def blocked_and_lent(sock: Socket) -> None:
    """Wait until everything is blocked; the receiver must be waiting on a lent connection."""
    await trio.testing.wait_all_tasks_blocked()
    assert sock._lender is not None, "the receive did not borrow the connection"


async def attached(sock: Socket, count: int) -> None:
    while len([p for p in sock.peers if p.engine is not None]) < count:
        await trio.testing.wait_all_tasks_blocked()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_a_lent_receive_gets_messages_and_gives_the_connection_back(transport: str) -> None:
    async with bound(transport) as (_, pull, ep):
        peer = await RawPeer.push(ep)
        await attached(pull, 1)
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_into, pull, got)
            await blocked_and_lent(pull)
            await peer.send([b"one", b"two"], [b"three"])
        assert got == [[b"one", b"two"]]
        assert not only_engine(pull).lending.lent
        assert await pull.recv_multipart() == [b"three"]  # already queued by that read
        # The reader takes the connection back (after LEND_HOLD): input that arrives
        # while nobody receives is still read, up to the high-water mark.
        await peer.send([b"four"])
        while not pull._fq.active:
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(LEND_HOLD)  # the reader's own timer, not a guess
        assert pull.recv_multipart_nowait() == [b"four"]
        await peer.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_a_cancelled_lent_receive_loses_nothing(transport: str) -> None:
    async with bound(transport) as (_, pull, ep):
        peer = await RawPeer.push(ep)
        await attached(pull, 1)
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def receive() -> None:
                with scope:
                    await pull.recv_multipart()
                    pytest.fail("nothing was sent")

            nursery.start_soon(receive)
            await blocked_and_lent(pull)
            scope.cancel()
        assert pull._lender is None and not only_engine(pull).lending.lent
        await peer.send([b"after"])
        assert await pull.recv_multipart() == [b"after"]
        await peer.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_a_second_connection_wakes_a_lent_receive(transport: str) -> None:
    async with bound(transport) as (_, pull, ep):
        first = await RawPeer.push(ep)
        await attached(pull, 1)
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_into, pull, got)
            await blocked_and_lent(pull)
            second = await RawPeer.push(ep)
            await second.send([b"from the second"])
        assert got == [[b"from the second"]]
        await first.send([b"from the first"])
        assert await pull.recv_multipart() == [b"from the first"]
        await first.aclose()
        await second.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_a_protocol_error_met_by_a_lent_receive_drops_only_that_connection(
    transport: str, zmtp_info_logs: pytest.LogCaptureFixture
) -> None:
    async with bound(transport, maxmsgsize=100) as (_, pull, ep):
        bad = await RawPeer.push(ep)
        await attached(pull, 1)
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_into, pull, got)
            await blocked_and_lent(pull)
            bad.conn.send_messages([[b"good"]])
            await bad.send_offending(bad.conn.bytes_to_send() + bytes((0, 200)) + b"x" * 200)
        assert got == [[b"good"]]  # what came before the bad frame is delivered
        await read_until_eof(bad.stream)  # then the connection is dropped
        await bad.aclose()
        assert "exceeds the limit" in zmtp_info_logs.text
        while pull.peers:
            await trio.testing.wait_all_tasks_blocked()
        good = await RawPeer.push(ep)
        await good.send([b"still serving"])
        assert await pull.recv_multipart() == [b"still serving"]
        await good.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_eof_met_by_a_lent_receive_ends_the_connection(transport: str) -> None:
    async with bound(transport) as (_, pull, ep):
        peer = await RawPeer.push(ep)
        await attached(pull, 1)
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_into, pull, got)
            await blocked_and_lent(pull)
            await peer.aclose()
            while pull.peers:  # the reader saw the EOF and detached the peer
                await trio.testing.wait_all_tasks_blocked()
            # The receive is still waiting, now the usual way, and is served by the
            # next connection.
            other = await RawPeer.push(ep)
            await other.send([b"next"])
        assert got == [[b"next"]]
        await other.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_a_ping_during_a_lent_receive_is_answered(transport: str) -> None:
    async with bound(transport) as (_, pull, ep):
        peer = await RawPeer.push(ep)
        await attached(pull, 1)
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_into, pull, got)
            await blocked_and_lent(pull)
            peer.conn.send_ping(ttl=0, context=b"ctx")
            await peer.flush()
            events: list[object] = []
            while not any(isinstance(ev, Pong) for ev in events):
                events += peer.conn.receive_data(await peer.stream.receive_some(4096))
            assert [ev.context for ev in events if isinstance(ev, Pong)] == [b"ctx"]
            assert not got and pull._lender is not None  # a PING is no message
            await peer.send([b"done"])
        assert got == [[b"done"]]
        assert not any(isinstance(ev, Ping) for ev in events)
        await peer.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_two_receiving_tasks_share_one_connection(transport: str) -> None:
    async with bound(transport) as (_, pull, ep):
        peer = await RawPeer.push(ep)
        await attached(pull, 1)
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_into, pull, got)
            nursery.start_soon(receive_into, pull, got)
            await blocked_and_lent(pull)  # one borrows, the other parks
            await peer.send([b"a"])
            await peer.send([b"b"])
        assert sorted(got) == [[b"a"], [b"b"]]
        await peer.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_closing_the_socket_ends_a_lent_receive(transport: str) -> None:
    async with bound(transport) as (_, pull, ep):
        peer = await RawPeer.push(ep)
        await attached(pull, 1)
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await pull.recv_multipart()

            nursery.start_soon(receive)
            await blocked_and_lent(pull)
            await pull.aclose()
        await peer.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_a_large_message_started_by_a_lent_receive_arrives_whole(transport: str) -> None:
    body = os.urandom(3 * 1024 * 1024 + 7)
    async with bound(transport) as (_, pull, ep):
        peer = await RawPeer.push(ep)
        await attached(pull, 1)
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_into, pull, got)
            await blocked_and_lent(pull)
            await peer.send([b"head", body, b"tail"], [b"after"])
        assert got == [[b"head", body, b"tail"]]
        assert await pull.recv_multipart() == [b"after"]
        await peer.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_req_rep_round_trips_over_lent_connections(transport: str) -> None:
    async with bound(transport, zmtp.REP) as (ctx, rep, ep):
        req = ctx.socket(zmtp.REQ)
        await req.connect(ep)
        async with trio.open_nursery() as nursery:

            async def serve() -> None:
                for _ in range(200):
                    await rep.send_multipart(await rep.recv_multipart())

            nursery.start_soon(serve)
            for i in range(200):
                msg = [b"%d" % i, os.urandom(i * 997)]
                await req.send_multipart(msg)
                assert await req.recv_multipart() == msg


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_waking_a_lent_receive_leaves_a_blocked_writer_alone(transport: str) -> None:
    # interrupt() wakes waits on the descriptor with notify_closing, which also wakes
    # a writer blocked on it; the writer must take that for a wake-up, not a close.
    async with bound(transport, zmtp.DEALER, sndhwm=10_000) as (_, dealer, ep):
        slow = await RawPeer.connect(ep, SocketType.DEALER)
        await slow.handshake()
        await attached(dealer, 1)
        chunk = os.urandom(64 * 1024)
        sent = 0
        engine = only_engine(dealer)
        while engine.writer_idle or sent < 8:  # until the kernel buffers are full
            dealer.send_multipart_nowait([b"%d" % sent, chunk])
            sent += 1
            await trio.testing.wait_all_tasks_blocked()
            if sent > 2000:
                pytest.fail("the writer never blocked")
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_into, dealer, got)
            await blocked_and_lent(dealer)
            other = await RawPeer.connect(ep, SocketType.DEALER)
            await other.handshake()
            await other.send([b"wake up"])
        assert got == [[b"wake up"]]
        # The blocked writer carried on: everything reaches the slow peer, in order.
        received: list[list[bytes]] = []
        while len(received) < sent:
            for ev in slow.conn.receive_data(await slow.stream.receive_some(1 << 20)):
                if isinstance(ev, zmtp.Messages):
                    received += ev.messages
        assert received == [[b"%d" % i, chunk] for i in range(sent)]
        await slow.send([b"still connected"])
        assert await dealer.recv_multipart() == [b"still connected"]
        await slow.aclose()
        await other.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
@pytest.mark.parametrize("seed", range(3))
async def test_lending_under_churn_loses_and_repeats_nothing(
    transport: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Receives that are cancelled at random moments, peers that come and go (so the
    # socket switches between one connection, lent, and several, not lent), batches
    # and single receives: every message arrives exactly once, in order per connection
    # (each sender sends 50 messages per connection; connections are not ordered).
    # Two senders overlap (several connections, or one between reconnects); the third
    # then sends alone (one connection: lent to the receiving task).
    rng = random.Random(seed)
    per_sender, senders = 300, 3
    lends = 0
    real_lend = Engine.lend

    async def counted_lend(self: Engine) -> list[list[bytes]] | None:
        nonlocal lends
        lends += 1
        return await real_lend(self)

    monkeypatch.setattr(Engine, "lend", counted_lend)
    async with bound(transport, rcvhwm=50) as (ctx, pull, ep):
        got: dict[int, list[int]] = {i: [] for i in range(senders)}

        others_done = trio.Semaphore(0)

        async def sender(i: int) -> None:
            if i == 0:  # sender 0 goes last and alone: a long stretch of one connection
                for _ in range(senders - 1):
                    await others_done.acquire()
            for batch_start in range(0, per_sender, 50):
                push = ctx.socket(zmtp.PUSH, linger=-1)
                await push.connect(ep)
                for n in range(batch_start, batch_start + 50):
                    body = os.urandom(rng.choice((1, 300, 70_000)))
                    await push.send_multipart([b"%d" % i, b"%d" % n, body])
                    if rng.random() < 0.05:
                        await trio.sleep(0)
                await push.aclose()  # linger=-1: delivered before it goes
            others_done.release()

        async def consumer() -> None:
            total = per_sender * senders
            count = 0
            while count < total:
                with trio.move_on_after(rng.choice((0, 0.0005, 0.002, 1))):
                    if rng.random() < 0.3:
                        msgs = await pull.recv_many(rng.randint(1, 20))
                    else:
                        msgs = [await pull.recv_multipart()]
                    for i, n, _ in msgs:
                        got[int(i)].append(int(n))
                    count += len(msgs)

        async with trio.open_nursery() as nursery:
            for i in range(senders):
                nursery.start_soon(sender, i)
            nursery.start_soon(consumer)
        assert lends > 0, "the test never exercised lending"
        for numbers in got.values():
            assert sorted(numbers) == list(range(per_sender))
            for start in range(0, per_sender, 50):
                run = [n for n in numbers if start <= n < start + 50]
                assert run == list(range(start, start + 50))


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_garbage_met_by_a_lent_receive_drops_only_that_connection(transport: str) -> None:
    # A fixed corpus of noise after a valid handshake, read by the receiving task itself
    # (the connection is the socket's only one): whatever decodes as messages may be
    # delivered, the connection is dropped, the receive never raises, and the socket
    # serves the next peer.
    rnd = random.Random(20261128)
    async with bound(transport) as (_, pull, ep):
        for i in range(40):
            peer = await RawPeer.push(ep)
            await attached(pull, 1)
            async with trio.open_nursery() as nursery:
                got: list[list[bytes]] = []
                nursery.start_soon(receive_into, pull, got)
                await blocked_and_lent(pull)
                noise = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300)))
                await peer.send_offending(noise)
                await peer.aclose()
                while pull.peers:  # dropped (or closed by us): the socket lets go
                    await trio.testing.wait_all_tasks_blocked()
                if not got:
                    # Nothing decoded as a message: the receive is still waiting, and
                    # the next peer serves it.
                    good = await RawPeer.push(ep)
                    await good.send([b"good", b"%d" % i])
                    await good.aclose()
            with contextlib.suppress(trio.WouldBlock):
                while True:
                    pull.recv_multipart_nowait()


async def test_an_idle_lent_receive_lets_the_reader_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    # While a receive stays lent with nothing arriving, the parked reader looks again
    # ever less often (10 ms, 20 ms, ... up to 1 s), instead of 100 times a second.
    wakes = 0
    real_park = Wakeup.park

    async with bound("tcp") as (_, pull, ep):
        peer = await RawPeer.push(ep)
        await attached(pull, 1)
        lot = only_engine(pull).lending._lot

        async def counted_park(self: Wakeup) -> None:
            nonlocal wakes
            try:
                await real_park(self)
            finally:
                if self is lot:
                    wakes += 1

        monkeypatch.setattr(Wakeup, "park", counted_park)
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_into, pull, got)
            await blocked_and_lent(pull)
            await trio.sleep(1.5)  # the scenario: a long wait with nothing to read
            assert pull._lender is not None
            await peer.send([b"at last"])
        assert got == [[b"at last"]]
        # 10+20+...+640 ms is about 1.3 s: some 8 looks, where a fixed 10 ms would be 150.
        assert 0 < wakes < 30
        await peer.aclose()
