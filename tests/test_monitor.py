"""Connection events (``sock.monitor()``): what happens to each connection, in order.

The life cycle over real tcp/ipc connections between our own sockets; failures and
timers (handshake timeout, reconnect backoff) in virtual time on the autojump clock,
with the transport replaced by in-memory streams so that no real time passes.
"""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

import zmtp
from zmtp.protocol.commands import encode_error
from zmtp.protocol.greeting import build_greeting
from zmtp.sockets import Monitor, SocketEvent

from ._helpers import STREAM_TRANSPORTS, bind_address, context

E = zmtp.EventType


async def events_until(mon: Monitor, last: zmtp.EventType) -> list[SocketEvent]:
    """Every event up to and including the first of type ``last``."""
    seen = []
    async for event in mon:
        seen.append(event)
        if event.type is last:
            return seen
    raise AssertionError(f"monitor ended before {last}: {[e.type for e in seen]}")


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_life_cycle_of_a_connection(transport: str) -> None:
    async with context() as ctx:
        server = ctx.socket(zmtp.ROUTER)
        smon = server.monitor()
        ep = await server.bind(bind_address(transport))
        client = ctx.socket(zmtp.DEALER, routing_id=b"me", reconnect_ivl=50)
        cmon = client.monitor()
        await client.connect(ep)

        listening, accepted, shake = await events_until(smon, E.HANDSHAKE_SUCCEEDED)
        assert (listening.type, listening.endpoint) == (E.LISTENING, ep)
        assert (accepted.type, accepted.endpoint) == (E.ACCEPTED, ep)
        assert accepted.peer.startswith(ep.split("://")[0] + "://")
        assert shake.detail["identity"] == b"me"
        assert shake.detail["socket_type"] == "DEALER"
        assert shake.detail["version"] == (3, 1)
        assert shake.peer == accepted.peer

        connected, cshake = await events_until(cmon, E.HANDSHAKE_SUCCEEDED)
        assert (connected.type, connected.endpoint) == (E.CONNECTED, ep)
        assert (cshake.endpoint, cshake.detail["socket_type"]) == (ep, "ROUTER")

        # The server goes away: the client sees the disconnect and schedules a retry.
        await server.aclose()
        gone = await events_until(smon, E.CLOSED)
        assert [e.type for e in gone] == [E.DISCONNECTED, E.CLOSED]
        assert [e.type async for e in smon] == []  # the monitor ended with its socket
        disconnected, retried = await events_until(cmon, E.CONNECT_RETRIED)
        assert disconnected.type is E.DISCONNECTED
        assert disconnected.reason
        assert retried.detail["reconnect_in"] == pytest.approx(0.05)

        # It comes back at the same address: the client reconnects.
        server = ctx.socket(zmtp.ROUTER)
        if transport == "tcp":
            assert await server.bind(ep) == ep
            await events_until(cmon, E.HANDSHAKE_SUCCEEDED)
        await client.aclose()
        assert (await events_until(cmon, E.CLOSED))[-1].endpoint == ""


async def test_incompatible_socket_type_fails_the_handshake_and_stops_reconnecting() -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        smon = pull.monitor()
        ep = await pull.bind("tcp://127.0.0.1:0")
        sub = ctx.socket(zmtp.SUB, reconnect_ivl=10)
        cmon = sub.monitor()
        await sub.connect(ep)
        for mon in (smon, cmon):
            failed = (await events_until(mon, E.HANDSHAKE_FAILED))[-1]
            assert failed.detail["error"] == "IncompatibleSocketType"
            assert "SUB" in failed.reason and "PULL" in failed.reason
            assert (await events_until(mon, E.DISCONNECTED))[-1].reason == failed.reason
        # A protocol error is fatal: no retry is scheduled (specs/libzmq-behaviour.md §2.5).
        with trio.move_on_after(0.2):
            event = await events_until(cmon, E.CONNECT_RETRIED)
            pytest.fail(f"unexpected {event}")


async def test_bind_failure() -> None:
    async with context() as ctx:
        first = ctx.socket(zmtp.PULL)
        ep = await first.bind("tcp://127.0.0.1:0")
        second = ctx.socket(zmtp.PULL)
        mon = second.monitor()
        with pytest.raises(OSError):
            await second.bind(ep)
        (failed,) = await events_until(mon, E.BIND_FAILED)
        assert failed.endpoint == ep
        assert failed.reason


async def test_inproc_bind_reports_listening() -> None:
    async with context() as ctx:
        sock = ctx.socket(zmtp.PULL)
        mon = sock.monitor()
        ep = await sock.bind(f"inproc://monitor-{os.getpid()}")
        (event,) = await events_until(mon, E.LISTENING)
        assert event.endpoint == ep


# ----------------------------------------------------------------------- virtual time


async def test_handshake_timeout(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that accepts the connection and never answers is dropped after
    ``handshake_ivl``, and the connecting side tries again."""
    async with context(600) as ctx, trio.open_nursery() as nursery:
        streams = []

        async def mute_server(ep: object) -> trio.abc.Stream:
            ours, theirs = trio.testing.memory_stream_pair()
            streams.append(theirs)  # kept open, never written
            return ours

        monkeypatch.setattr("zmtp.sockets._endpoints.open_stream", mute_server)
        sock = ctx.socket(zmtp.DEALER, handshake_ivl=2000, reconnect_ivl=100)
        mon = sock.monitor()
        start = trio.current_time()
        await sock.connect("tcp://mute.invalid:1")
        seen = await events_until(mon, E.CONNECT_RETRIED)
        assert [e.type for e in seen] == [
            E.CONNECTED,
            E.HANDSHAKE_FAILED,
            E.DISCONNECTED,
            E.CONNECT_RETRIED,
        ]
        assert seen[1].detail["error"] == "HandshakeTimeout"
        assert "2000 ms" in seen[1].reason
        assert trio.current_time() - start == pytest.approx(2.0)
        await events_until(mon, E.CONNECTED)
        assert trio.current_time() - start == pytest.approx(2.1)
        assert len(streams) == 2
        await sock.aclose()
        nursery.cancel_scope.cancel()


async def test_reconnect_backoff(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with context(600) as ctx:

        async def refused(ep: object) -> trio.abc.Stream:
            await trio.lowlevel.checkpoint()
            raise ConnectionRefusedError(111, "Connection refused")

        monkeypatch.setattr("zmtp.sockets._endpoints.open_stream", refused)
        sock = ctx.socket(zmtp.PUSH, reconnect_ivl=100, reconnect_ivl_max=400)
        mon = sock.monitor()
        await sock.connect("tcp://nobody.invalid:1")
        delays = []
        for _ in range(5):
            delayed, retried = await events_until(mon, E.CONNECT_RETRIED)
            assert delayed.type is E.CONNECT_DELAYED
            assert "refused" in delayed.reason
            delays.append(retried.detail["reconnect_in"])
        assert delays == pytest.approx([0.1, 0.2, 0.4, 0.4, 0.4])
        await sock.aclose()


async def test_peer_error_during_handshake(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with context(600) as ctx, trio.open_nursery() as nursery:

        async def rude_server(ep: object) -> trio.abc.Stream:
            ours, theirs = trio.testing.memory_stream_pair()
            # A greeting, then ERROR where READY should be.
            nursery.start_soon(theirs.send_all, build_greeting(b"NULL") + encode_error(b"go away"))
            return ours

        monkeypatch.setattr("zmtp.sockets._endpoints.open_stream", rude_server)
        sock = ctx.socket(zmtp.DEALER, reconnect_ivl=100)
        mon = sock.monitor()
        await sock.connect("tcp://rude.invalid:1")
        failed = (await events_until(mon, E.HANDSHAKE_FAILED))[-1]
        assert failed.detail["error"] == "PeerError"
        assert "go away" in failed.reason
        await sock.aclose()
        nursery.cancel_scope.cancel()


# ----------------------------------------------------------------------- the monitor itself


async def test_a_lagging_monitor_drops_the_oldest_and_says_how_many() -> None:
    async with context() as ctx:
        sock = ctx.socket(zmtp.PULL)
        mon = sock.monitor(maxlen=2)
        for _ in range(5):
            await sock.bind(f"inproc://lag-{os.getpid()}-{_}")
        first, second = mon.receive_nowait(), mon.receive_nowait()
        assert first.dropped == 3  # the three oldest made way
        assert second.dropped == 0
        assert first.endpoint.endswith("-3")
        assert second.endpoint.endswith("-4")
        with pytest.raises(trio.WouldBlock):
            mon.receive_nowait()
        mon.close()
        with pytest.raises(trio.EndOfChannel):
            mon.receive_nowait()
        with pytest.raises(ValueError):
            sock.monitor(maxlen=0)


async def test_closing_a_monitor_ends_it() -> None:
    async with context() as ctx:
        sock = ctx.socket(zmtp.PULL)
        with sock.monitor() as mon:
            await sock.bind(f"inproc://close-{os.getpid()}")
        # Pending events are still read after close; then the iteration ends.
        assert [e.type async for e in mon] == [E.LISTENING]
        with pytest.raises(trio.EndOfChannel):
            await mon.receive()
        other = sock.monitor()
        waiter_done = trio.Event()

        async def waiter() -> None:
            assert [e.type async for e in other] == [E.CLOSED]
            waiter_done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await sock.aclose()  # wakes the waiting iteration
        assert waiter_done.is_set()
