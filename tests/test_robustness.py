"""Misbehaving peers, played by raw trio streams, against our sockets.

A peer that sends garbage, stalls in the handshake, sends an oversized frame, has an
incompatible socket type or vanishes in the middle of a message must be dropped alone,
with a logged reason, while the socket and its other peers carry on.  Each test keeps
a well-behaved peer (one of our own sockets) connected throughout and checks that it
is still served afterwards.

The raw peers speak ZMTP through the sans-IO :class:`zmtp.Connection` (or not at all).
A test knows the socket dropped a raw peer when the stream reaches EOF; every such wait
runs under the test's deadline, so a peer that is never dropped fails the test.
"""

from __future__ import annotations

import contextlib
import random

import pytest
import trio
import trio.testing

import zmtp
from zmtp import SocketType

from ._helpers import (
    NULL_GREETING,
    STREAM_TRANSPORTS,
    RawPeer,
    bind_address,
    context,
    logged,
    open_stream,
    read_until_eof,
    served_pull,
)

pytestmark = pytest.mark.usefixtures("zmtp_info_logs")


# ----------------------------------------------------------------------- handshake


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
        b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x02\x00" + b"BOGUS" + b"\x00" * 15 + b"\x00" * 32,
        b"\xff"
        + b"\x00" * 8
        + b"\x7f"
        + b"\x03\x00"
        + b"NULL"
        + b"\x00" * 16
        + b"\x00" * 32
        + b"\x04\x05\x04ABCD",  # a valid greeting, then a command that is not READY
    ],
    ids=["http", "bad-mechanism", "bad-command"],
)
async def test_garbage_handshake_is_dropped(
    transport: str, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # HTTP does not start with FF, so it reads as a ZMTP 1.0 peer's first frame (RFC 15
    # detection, as in libzmq): that one is dropped by the handshake timer.
    async with served_pull(transport, handshake_ivl=300) as (_ctx, pull, _good, ep):
        mon = pull.monitor()
        raw = await open_stream(ep)
        await raw.send_all(garbage)
        await read_until_eof(raw)
        await raw.aclose()
        async for event in mon:
            if event.type is zmtp.EventType.HANDSHAKE_FAILED:
                assert event.reason
                break
        assert logged(caplog, "handshake", "failed")


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
@pytest.mark.parametrize("sent", [b"", b"\xff\x00\x00"], ids=["silent", "partial-greeting"])
async def test_handshake_stall_times_out(
    transport: str, sent: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with served_pull(transport, handshake_ivl=200) as (_ctx, pull, good, ep):
        mon = pull.monitor()
        raw = await open_stream(ep)
        await raw.send_all(sent)
        # While it stalls, the well-behaved peer is served as usual.
        await good.send_multipart([b"good", b"during"])
        assert await pull.recv_multipart() == [b"good", b"during"]
        await read_until_eof(raw)
        await raw.aclose()
        async for event in mon:
            if event.type is zmtp.EventType.HANDSHAKE_FAILED:
                assert event.detail["error"] == "HandshakeTimeout"
                break
        assert logged(caplog, "handshake_ivl")


async def test_many_stalled_peers_do_not_block_accepting() -> None:
    # handshake_ivl is long: the stalled peers stay, and must not hold up anyone else.
    async with served_pull("tcp") as (ctx, pull, _good, ep):
        stalled = [await open_stream(ep) for _ in range(20)]
        late = ctx.socket(zmtp.PUSH)
        await late.connect(ep)
        await late.send_multipart([b"late"])
        assert await pull.recv_multipart() == [b"late"]
        for s in stalled:
            await s.aclose()
        await late.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_incompatible_socket_type_is_dropped(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with served_pull(transport) as (_ctx, _pull, _good, ep):
        raw = await RawPeer.connect(ep, SocketType.PUB)
        # Our side closes on reading the PUB's READY.
        await raw.pump_until_closed()
        await raw.aclose()
        assert logged(caplog, "PUB")


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_error_command_in_handshake(transport: str, caplog: pytest.LogCaptureFixture) -> None:
    async with served_pull(transport) as (_ctx, _pull, _good, ep):
        raw = await open_stream(ep)
        error = b"\x05ERROR" + b"\x07go away"  # RFC 37 "Error Handling"
        await raw.send_all(NULL_GREETING + b"\x04" + bytes([len(error)]) + error)
        await read_until_eof(raw)
        await raw.aclose()
        assert logged(caplog, "go away")


# ----------------------------------------------------------------------- traffic


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_maxmsgsize(transport: str, caplog: pytest.LogCaptureFixture) -> None:
    async with served_pull(transport, maxmsgsize=1000) as (_ctx, pull, _good, ep):
        raw = await RawPeer.connect(ep, SocketType.PUSH)
        await raw.handshake()
        await raw.send([b"a" * 1000, b"b"])  # at the limit: fine
        assert await pull.recv_multipart() == [b"a" * 1000, b"b"]
        await raw.send_offending_messages([b"ok", b"c" * 1001], [b"never"])  # a frame too large
        await read_until_eof(raw.stream)
        await raw.aclose()
        assert logged(caplog, "1001")


async def test_maxmsgsize_between_our_sockets(caplog: pytest.LogCaptureFixture) -> None:
    async with served_pull("tcp", maxmsgsize=100) as (ctx, pull, _good, ep):
        mon = pull.monitor()
        big = ctx.socket(zmtp.PUSH, reconnect_ivl=-1)
        await big.connect(ep)
        await big.send_multipart([b"x" * 101])
        async for event in mon:
            if event.type is zmtp.EventType.DISCONNECTED and event.reason:
                assert "101" in event.reason
                break
        await big.aclose(linger=0)


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
@pytest.mark.parametrize(
    "tail",
    [
        b"\x01\x05first",  # a MORE frame, then nothing
        b"\x01\x05first\x00\x64" + b"x" * 50,  # then half a frame
        b"\x00\x64" + b"x" * 50,  # half a single-frame message
        b"\x02\x00\x00",  # half a long header
    ],
    ids=["after-more", "mid-second-frame", "mid-frame", "mid-header"],
)
async def test_disconnect_mid_message_delivers_nothing_partial(
    transport: str, tail: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with served_pull(transport) as (_ctx, pull, _good, ep):
        raw = await RawPeer.connect(ep, SocketType.PUSH)
        await raw.handshake()
        await raw.send([b"whole", b"message"])
        await raw.send_raw(tail)
        assert await pull.recv_multipart() == [b"whole", b"message"]
        await raw.aclose()
        # Once it is gone (only the well-behaved peer is left), its half message must
        # not turn up: served_pull checks that only the good peer's message follows.
        while len(pull.peers) > 1:
            await trio.sleep(0.005)
        assert logged(caplog, "middle of a message")


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_invalid_frame_after_handshake(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with served_pull(transport) as (_ctx, pull, _good, ep):
        raw = await RawPeer.connect(ep, SocketType.PUSH)
        await raw.handshake()
        await raw.send([b"fine"])
        assert await pull.recv_multipart() == [b"fine"]
        # A long frame whose size does not fit in 63 bits (RFC 23 "Framing").
        await raw.send_offending(b"\x02" + b"\xff" * 8)
        await read_until_eof(raw.stream)
        await raw.aclose()
        assert logged(caplog, "dropping")


async def test_unknown_command_after_handshake_is_ignored() -> None:
    # libzmq ignores unknown commands in the traffic phase (specs/libzmq-behaviour.md §2.3).
    async with served_pull("tcp") as (_ctx, pull, _good, ep):
        raw = await RawPeer.connect(ep, SocketType.PUSH)
        await raw.handshake()
        raw.conn.send_command(b"FOO", b"bar")
        await raw.send([b"still", b"here"])
        assert await pull.recv_multipart() == [b"still", b"here"]
        await raw.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_peer_that_never_reads_does_not_hold_up_the_others(transport: str) -> None:
    async with context() as ctx:
        push = ctx.socket(zmtp.PUSH, sndhwm=4)
        ep = await push.bind(bind_address(transport))
        raw = await RawPeer.connect(ep, SocketType.PULL)
        await raw.handshake()  # and then never reads again
        pull = ctx.socket(zmtp.PULL)
        await pull.connect(ep)
        await push.wait_for_peers(2)
        payload = b"p" * 16384
        got = 0
        async with trio.open_nursery() as nursery:

            async def drain() -> None:
                nonlocal got
                while True:
                    await pull.recv_multipart()
                    got += 1

            nursery.start_soon(drain)
            # Far more than the silent peer's queue and socket buffers can hold: the
            # rest must go to the peer that reads.
            for i in range(3000):
                await push.send_multipart([b"%d" % i, payload])
            while got < 1000:
                await trio.sleep(0.005)
            nursery.cancel_scope.cancel()
        await raw.aclose()
        await push.aclose(linger=0)


# ----------------------------------------------------------------------- connecting side


async def accept_and(listener: trio.SocketListener, action: str, counter: list[int]) -> None:
    """Serve connections on ``listener``: close each at once, or answer as a PUB."""
    async with trio.open_nursery() as nursery:
        while True:
            stream = await listener.accept()
            counter[0] += 1
            if action == "close":
                await stream.aclose()
            else:

                async def serve(stream: trio.SocketStream = stream) -> None:
                    # Closed also when cancelled: the test may end before the peer's
                    # close reaches us (our engines close without a checkpoint).
                    async with stream:
                        await RawPeer(stream, SocketType.PUB).pump_until_closed()

                nursery.start_soon(serve)


async def test_reconnect_backoff() -> None:
    async with context() as ctx:
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listener.socket.getsockname()[1]
        accepted = [0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_and, listener, "close", accepted)
            push = ctx.socket(zmtp.PUSH, reconnect_ivl=10, reconnect_ivl_max=80)
            mon = push.monitor()
            await push.connect(f"tcp://127.0.0.1:{port}")
            delays = []
            async for event in mon:
                if event.type is zmtp.EventType.CONNECT_RETRIED:
                    delays.append(event.detail["reconnect_in"])
                    if len(delays) == 6:
                        break
            # Doubling from reconnect_ivl, capped at reconnect_ivl_max.
            assert delays == [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]
            assert accepted[0] >= 6
            await push.aclose(linger=0)
            nursery.cancel_scope.cancel()
        await listener.aclose()


async def test_reconnect_without_backoff_when_refused() -> None:
    async with context() as ctx:
        probe = ctx.socket(zmtp.PULL)
        ep = await probe.bind("tcp://127.0.0.1:0")
        await probe.aclose()  # nobody listens there now
        push = ctx.socket(zmtp.PUSH, reconnect_ivl=5)
        mon = push.monitor()
        await push.connect(ep)
        delays, delayed = [], 0
        async for event in mon:
            if event.type is zmtp.EventType.CONNECT_DELAYED:
                delayed += 1
            elif event.type is zmtp.EventType.CONNECT_RETRIED:
                delays.append(event.detail["reconnect_in"])
                if len(delays) == 4:
                    break
        assert delays == [0.005] * 4
        assert delayed >= 4
        await push.aclose(linger=0)


async def test_connecting_socket_gives_up_after_a_type_mismatch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # libzmq stops reconnecting to an endpoint after a protocol error
    # (specs/libzmq-behaviour.md §2.5).
    async with context() as ctx:
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listener.socket.getsockname()[1]
        accepted = [0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_and, listener, "pub", accepted)
            push = ctx.socket(zmtp.PUSH, reconnect_ivl=5)
            mon = push.monitor()
            await push.connect(f"tcp://127.0.0.1:{port}")
            async for event in mon:
                if event.type is zmtp.EventType.HANDSHAKE_FAILED:
                    break
            while not logged(caplog, "not reconnecting"):
                await trio.sleep(0.005)
            assert accepted[0] == 1
            await push.aclose(linger=0)
            nursery.cancel_scope.cancel()
        await listener.aclose()


async def test_bound_socket_survives_a_burst_of_bad_peers() -> None:
    async with served_pull("tcp", handshake_ivl=500) as (_ctx, pull, good, ep):

        async def misbehave(i: int) -> None:
            stream = await open_stream(ep)
            kind = i % 4
            if kind == 0:
                await RawPeer(stream, SocketType.PUSH).send_offending(b"\x00garbage" * 10)
            elif kind == 1:
                await RawPeer(stream, SocketType.REQ).pump_until_closed()  # wrong type
                await stream.aclose()
                return
            elif kind == 2:
                raw = RawPeer(stream, SocketType.PUSH)
                await raw.handshake()
                await raw.send_raw(b"\x01\x03abc")  # and vanish mid-message
                await stream.aclose()
                return
            # kind 3: silence, until handshake_ivl
            await read_until_eof(stream)
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            for i in range(24):
                nursery.start_soon(misbehave, i)
            for i in range(50):
                await good.send_multipart([b"good", b"%d" % i])
            for i in range(50):
                assert await pull.recv_multipart() == [b"good", b"%d" % i]


async def test_random_garbage_never_takes_the_socket_down() -> None:
    """A fixed corpus of random inputs at every stage: each peer is dropped (or, after
    a valid handshake, may even deliver what happens to decode as messages); the
    socket never fails and the well-behaved peer is served after each one."""
    rnd = random.Random(20240601)  # fixed: the same corpus every run

    def noise(lo: int, hi: int) -> bytes:
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(lo, hi)))

    async with served_pull("tcp") as (_ctx, pull, good, ep):
        for i in range(80):
            kind = i % 4
            stream = await open_stream(ep)
            if kind == 0:  # noise instead of a greeting
                data = noise(1, 200)
            elif kind == 1:  # a greeting with a few bytes flipped, then noise
                greeting = bytearray(NULL_GREETING)
                for _ in range(rnd.randrange(1, 4)):
                    greeting[rnd.randrange(64)] = rnd.randrange(256)
                data = bytes(greeting) + noise(0, 100)
            elif kind == 2:  # a valid greeting, then a READY with a noisy body
                body = b"\x05READY" + noise(0, 60)
                data = NULL_GREETING + b"\x04" + bytes([len(body)]) + body
            else:  # a valid handshake, then noise as traffic
                raw = RawPeer(stream, SocketType.PUSH)
                await raw.handshake()
                data = noise(1, 300)
            await RawPeer(stream, SocketType.PUSH).send_offending(data)
            await stream.aclose()
            if kind == 3:
                # What happened to decode as messages is delivered; once the peer is
                # gone, all of it is queued: take it out of the way.
                while len(pull.peers) > 1:
                    await trio.sleep(0.002)
                with contextlib.suppress(trio.WouldBlock):
                    while True:
                        pull.recv_multipart_nowait()
            await good.send_multipart([b"good", b"%d" % i])
            assert await pull.recv_multipart() == [b"good", b"%d" % i]
