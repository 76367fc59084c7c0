"""Socket-layer features the proxy's operator tools stand on.

* ``reconnect_on_protocol_error`` (a zmtp extension): libzmq abandons a connect()ed
  endpoint after a protocol error (specs/libzmq-behaviour.md §2.5), which stays the
  default and is now reported (``EventType.RECONNECT_STOPPED``); with the option the
  socket keeps trying, with its usual backoff.
* ``Socket.statistics()``: messages a socket drops on its own (PUB/XPUB at the
  high-water mark, ROUTER unroutable or at the high-water mark).
"""

from __future__ import annotations

import pytest
import trio

import zmtp
from zmtp import EventType as E
from zmtp.protocol.greeting import build_greeting
from zmtp.sockets import Monitor, SocketEvent

from ._helpers import QUIET, context

#: A ZMTP 3.1 peer that only speaks CURVE, to our NULL: a protocol error (mechanism
#: mismatch).  Not an HTTP answer: anything that does not start with 0xFF is taken for
#: a ZMTP 1.0 peer, as libzmq takes it, and only times out.
BAD_GREETING = build_greeting(b"CURVE")


async def _bad_greeter(listener: trio.SocketListener, accepted: list[int]) -> None:
    """Answer every connection with a bad greeting, then hang up.  The listener is
    closed when the test cancels this (no socket is left for the GC to warn about)."""
    async with listener:
        while True:
            stream = await listener.accept()
            accepted[0] += 1
            async with stream:
                try:
                    await stream.send_all(BAD_GREETING)
                    while await stream.receive_some(65536):
                        pass
                except trio.BrokenResourceError:
                    pass


async def _events_until(mon: Monitor, last: E) -> list[SocketEvent]:
    seen = []
    async for event in mon:
        seen.append(event)
        if event.type is last:
            return seen
    raise AssertionError(f"monitor ended before {last}: {[e.type for e in seen]}")


async def test_a_connector_stops_after_a_bad_greeting_by_default_and_says_so() -> None:
    async with context() as ctx:
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listener.socket.getsockname()[1]
        accepted = [0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_bad_greeter, listener, accepted)
            push = ctx.socket(zmtp.PUSH, reconnect_ivl=1)
            assert push.reconnect_on_protocol_error is False  # libzmq's behaviour
            mon = push.monitor()
            await push.connect(f"tcp://127.0.0.1:{port}")
            seen = await _events_until(mon, E.RECONNECT_STOPPED)
            assert [e.type for e in seen].count(E.HANDSHAKE_FAILED) == 1
            assert E.CONNECT_RETRIED not in [e.type for e in seen]
            stopped = seen[-1]
            assert stopped.endpoint == f"tcp://127.0.0.1:{port}"
            assert stopped.detail["error"] == "MechanismMismatch"
            assert stopped.reason
            # A retry would come within 1 ms; none comes.
            with trio.move_on_after(QUIET):
                event = await _events_until(mon, E.CONNECTED)
                pytest.fail(f"reconnected after a protocol error: {event}")
            assert accepted[0] == 1
            await push.aclose(linger=0)
            nursery.cancel_scope.cancel()
        await listener.aclose()


async def test_reconnect_on_protocol_error_keeps_trying_with_backoff() -> None:
    async with context() as ctx:
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listener.socket.getsockname()[1]
        accepted = [0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_bad_greeter, listener, accepted)
            push = ctx.socket(
                zmtp.PUSH, reconnect_ivl=5, reconnect_ivl_max=40, reconnect_on_protocol_error=True
            )
            mon = push.monitor()
            await push.connect(f"tcp://127.0.0.1:{port}")
            delays: list[float] = []
            failures = 0
            async for event in mon:
                assert event.type is not E.RECONNECT_STOPPED
                if event.type is E.HANDSHAKE_FAILED:
                    failures += 1
                elif event.type is E.CONNECT_RETRIED:
                    delays.append(event.detail["reconnect_in"])
                    if len(delays) == 5:
                        break
            # A failed handshake does not reset the backoff: it doubles to the cap.
            assert delays == [0.005, 0.01, 0.02, 0.04, 0.04]
            assert failures == 5
            assert accepted[0] >= 5
            await push.aclose(linger=0)
            nursery.cancel_scope.cancel()
        await listener.aclose()


async def test_reconnect_on_protocol_error_is_validated() -> None:
    async with context() as ctx:
        with pytest.raises(TypeError, match="reconnect_on_protocol_error"):
            ctx.socket(zmtp.DEALER, reconnect_on_protocol_error="yes")
        sock = ctx.socket(zmtp.DEALER, reconnect_on_protocol_error=True)
        assert sock.reconnect_on_protocol_error is True
        sock.reconnect_on_protocol_error = False
        assert sock.get_option("reconnect_on_protocol_error") is False


# ----------------------------------------------------------------------- statistics


@pytest.mark.parametrize("batch", [False, True], ids=["one-at-a-time", "batch"])
async def test_xpub_counts_copies_dropped_at_the_hwm(batch: bool) -> None:
    async with context() as ctx:
        xpub = ctx.socket(zmtp.XPUB, sndhwm=2)
        ep = await xpub.bind("tcp://127.0.0.1:0")
        sub = ctx.socket(zmtp.SUB, rcvhwm=2)
        sub.subscribe(b"")
        await sub.connect(ep)
        assert await xpub.recv_multipart() == [b"\x01"]
        assert xpub.statistics() == zmtp.SocketStatistics()
        messages = [[b"%d" % i] for i in range(5000)]
        if batch:
            assert xpub.send_batch_nowait(messages) == len(messages)
        else:
            for msg in messages:
                xpub.send_multipart_nowait(msg)  # a PUB never blocks: it drops
        dropped = xpub.statistics().dropped_hwm
        assert dropped > 0  # 5000 messages cannot fit in queues of 2 without a wait
        # Every message was either queued or counted: the queued ones all arrive.
        received = 0
        while received < len(messages) - dropped:
            received += len(await sub.recv_many())
        assert received == len(messages) - dropped
        assert xpub.statistics().dropped_unroutable == 0


async def test_pub_with_nobody_subscribed_drops_nothing_it_counts() -> None:
    # RFC 29: no subscriber, no copy; that is not a drop at the high-water mark.
    async with context() as ctx:
        pub = ctx.socket(zmtp.PUB)
        await pub.bind("tcp://127.0.0.1:0")
        await pub.send_multipart([b"nobody"])
        assert pub.statistics().dropped_hwm == 0


async def test_router_counts_unroutable_and_hwm_drops() -> None:
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER, sndhwm=1)
        ep = await router.bind("tcp://127.0.0.1:0")
        await router.send_multipart([b"nobody", b"lost"])
        assert router.statistics() == zmtp.SocketStatistics(dropped_unroutable=1)
        dealer = ctx.socket(zmtp.DEALER, routing_id=b"d", rcvhwm=1)
        await dealer.connect(ep)
        await dealer.send(b"hi")
        assert await router.recv_multipart() == [b"d", b"hi"]
        sent = 5000
        for i in range(sent):
            router.send_multipart_nowait([b"d", b"%d" % i])  # drops, never blocks
        dropped = router.statistics().dropped_hwm
        assert dropped > 0
        received = 0
        while received < sent - dropped:
            received += len(await dealer.recv_many())
        assert received == sent - dropped
        assert router.statistics().dropped_unroutable == 1
