"""The request/reply short path: a REQ or REP with one connection writes a message to
the kernel at once (``Engine.send_now``, ``Connection.encode_now``) and takes a reply or
request straight from its lent connection (``SocketBase._take_direct``), with the
pipe's and the fair queue's rules applied all the same.

The socket tests first check that the receive really waits on a lent connection, so
that they test this path and not the usual one.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

import zmtp
from zmtp import SocketType
from zmtp.protocol.framing import LARGE_PAYLOAD, OutputBuffer
from zmtp.protocol.legacy import V1OutputBuffer
from zmtp.sockets import Socket

from ._helpers import STREAM_TRANSPORTS, RawPeer, bind_address, context, nothing_arrives

SHAPES = [
    [b"", b"x" * 64],
    [b"", b""],
    [b"id", b"", b"y" * 255],
    [b"", b"z" * 256],
    [b"a" * 300, b"", b"b" * (LARGE_PAYLOAD - 1)],
    [b"only"],
    [b"1", b"2", b"3", b"4"],
]


@pytest.mark.parametrize("frames", SHAPES)
def test_encode_alone_writes_what_write_message_writes(frames: list[bytes]) -> None:
    alone = OutputBuffer().encode_alone(frames)
    queued = OutputBuffer()
    queued.write_message(frames)
    assert alone == b"".join(bytes(c) for c in queued.chunks())


@pytest.mark.parametrize(
    "frames",
    [[b"", bytearray(b"mutable")], [b"", memoryview(b"view")], [b"", b"x" * LARGE_PAYLOAD], []],
)
def test_encode_alone_leaves_the_rest_to_the_queue(frames: list[bytes]) -> None:
    assert OutputBuffer().encode_alone(frames) is None


def test_encode_alone_never_overtakes_pending_output() -> None:
    out = OutputBuffer()
    out.write(b"pending")
    assert out.encode_alone([b"", b"x"]) is None
    assert V1OutputBuffer().encode_alone([b"", b"x"]) is None  # 1.0 framing: queued


async def lent(sock: Socket) -> None:
    await trio.testing.wait_all_tasks_blocked()
    assert sock._lender is not None, "the receive did not borrow the connection"


async def messages(peer: RawPeer, count: int) -> list[list[bytes]]:
    got: list[list[bytes]] = []
    while len(got) < count:
        data = await peer.stream.receive_some(1 << 20)
        assert data, "closed"
        for ev in peer.conn.receive_data(data):
            if isinstance(ev, zmtp.Messages):
                got += ev.messages
    return got


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_req_takes_only_a_delimited_reply_from_a_lent_connection(transport: str) -> None:
    async with context() as ctx:
        req = ctx.socket(zmtp.REQ)
        ep = await req.bind(bind_address(transport))
        peer = await RawPeer.connect(ep, SocketType.ROUTER)
        await peer.handshake()
        await req.wait_for_peers()
        await req.send_multipart([b"question"])
        assert await messages(peer, 1) == [[b"", b"question"]]
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                got.append(await req.recv_multipart())

            nursery.start_soon(receive)
            await lent(req)
            await peer.send([b"bogus"])  # no delimiter: dropped, the receive goes on
            await lent(req)
            await peer.send([b"", b"answer"])
        assert got == [[b"answer"]]
        await peer.stream.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_rep_takes_a_request_from_a_lent_connection_and_replies_along_it(
    transport: str,
) -> None:
    async with context() as ctx:
        rep = ctx.socket(zmtp.REP)
        ep = await rep.bind(bind_address(transport))
        peer = await RawPeer.connect(ep, SocketType.DEALER)
        await peer.handshake()
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                got.append(await rep.recv_multipart())

            await rep.wait_for_peers()
            nursery.start_soon(receive)
            await lent(rep)
            await peer.send([b"no delimiter"])  # not a request: dropped
            await lent(rep)
            await peer.send([b"hop", b"", b"ask"])
        assert got == [[b"ask"]]
        with pytest.raises(zmtp.InvalidStateError):
            await rep.recv_multipart()
        await rep.send_multipart([b"told"])
        assert await messages(peer, 1) == [[b"hop", b"", b"told"]]
        await peer.stream.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_a_cancelled_req_receive_loses_no_reply(transport: str) -> None:
    async with context() as ctx:
        rep = ctx.socket(zmtp.REP)
        ep = await rep.bind(bind_address(transport))
        req = ctx.socket(zmtp.REQ)
        await req.connect(ep)
        await req.send_multipart([b"q"])
        assert await rep.recv_multipart() == [b"q"]
        await nothing_arrives(req)  # no reply was sent yet
        await rep.send_multipart([b"a"])
        assert await req.recv_multipart() == [b"a"]
        # And the turn is kept: a second request goes out and is answered.
        await req.send_multipart([b"q2"])
        assert await rep.recv_multipart() == [b"q2"]
        await rep.send_multipart([b"a2"])
        assert await req.recv_multipart() == [b"a2"]


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_rep_replies_written_at_once_keep_their_order_when_the_kernel_is_full(
    transport: str,
) -> None:
    # A DEALER peer sends many requests and reads no reply until the end: the REP's
    # immediate writes fill the kernel's buffers, the remainder of a partial write goes
    # to the writer task, and every later reply queues behind it, in order.
    count, size = 300, LARGE_PAYLOAD - 100
    async with context() as ctx:
        rep = ctx.socket(zmtp.REP)
        ep = await rep.bind(bind_address(transport))
        peer = await RawPeer.connect(ep, SocketType.DEALER)
        await peer.handshake()
        await peer.send(*[[b"", b"%d" % i] for i in range(count)])
        for i in range(count):
            assert await rep.recv_multipart() == [b"%d" % i]
            await rep.send_multipart([b"%d" % i, bytes([i % 256]) * size])
        [only] = rep.peers
        assert only.engine is not None and not only.engine.writer_idle  # the kernel is full
        got = await messages(peer, count)
        assert got == [[b"", b"%d" % i, bytes([i % 256]) * size] for i in range(count)]
        await peer.stream.aclose()
