"""Messages completed before a protocol violation are delivered, as libzmq does.

libzmq's decoder hands each whole message to the session as soon as it is decoded, so
when a peer sends good messages followed by a bad frame in the same segment, the good
ones still reach the application before the connection is dropped.
"""

from __future__ import annotations

import pytest
import trio

import zmtp
from zmtp import Connection, Messages, MessageTooLarge, SocketType
from zmtp.protocol.framing import FrameDecoder, encode_frame


def _handshaken(max_message_size: int = -1) -> tuple[Connection, Connection]:
    a = Connection(SocketType.PUSH)
    b = Connection(SocketType.PULL, max_message_size=max_message_size)
    for _ in range(3):
        if b.has_data_to_send:
            a.receive_data(b.bytes_to_send())
        if a.has_data_to_send:
            b.receive_data(a.bytes_to_send())
    assert a.handshake is not None and b.handshake is not None
    return a, b


def test_decoder_error_carries_the_frames_before_it() -> None:
    data = encode_frame(b"one") + encode_frame(b"two") + bytes((0, 50)) + b"x" * 50
    with pytest.raises(MessageTooLarge) as info:
        FrameDecoder(max_frame_size=10).decode(data)
    assert info.value.frames_before == [(0, b"one"), (0, b"two")]


def test_connection_error_carries_the_events_before_it() -> None:
    a, b = _handshaken(max_message_size=100)
    a.send_messages([[b"ok1"], [b"ok2", b"more"]])
    data = a.bytes_to_send() + bytes((0, 200)) + b"x" * 200
    with pytest.raises(MessageTooLarge) as info:
        b.receive_data(data)
    assert info.value.events == [Messages([[b"ok1"], [b"ok2", b"more"]])]
    assert b.phase is zmtp.Phase.CLOSED


def test_partial_message_before_the_error_is_not_delivered() -> None:
    a, b = _handshaken(max_message_size=100)
    a.send_message([b"whole"])
    data = a.bytes_to_send() + encode_frame(b"first-part", 1) + bytes((0, 200))
    with pytest.raises(MessageTooLarge) as info:
        b.receive_data(data)
    assert info.value.events == [Messages([[b"whole"]])]


async def test_socket_delivers_messages_sent_before_an_oversized_frame() -> None:
    async with zmtp.Context() as ctx:
        pull = ctx.socket(zmtp.PULL, maxmsgsize=100)
        endpoint = await pull.bind("tcp://127.0.0.1:0")
        port = int(endpoint.rsplit(":", 1)[1])
        conn = Connection(SocketType.PUSH)
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(conn.bytes_to_send())
                while conn.handshake is None:
                    conn.receive_data(await stream.receive_some(4096))
                    if conn.has_data_to_send:
                        await stream.send_all(conn.bytes_to_send())
                conn.send_messages([[b"a"], [b"b", b"c"]])
                await stream.send_all(conn.bytes_to_send() + bytes((0, 200)) + b"x" * 200)
                assert await pull.recv_multipart() == [b"a"]
                assert await pull.recv_multipart() == [b"b", b"c"]
                # ...and the offending connection is closed by the socket.
                assert await stream.receive_some(4096) == b""


def _rehearsed_push() -> tuple[Connection, bytes]:
    """A PUSH machine handshaken with a stand-in PULL, and what it said doing so
    (greeting and READY), to replay to a real peer in one piece."""
    a = Connection(SocketType.PUSH)
    rehearsal = Connection(SocketType.PULL)
    said = bytearray()
    for _ in range(3):
        if a.has_data_to_send:
            chunk = a.bytes_to_send()
            said += chunk
            rehearsal.receive_data(chunk)
        if rehearsal.has_data_to_send:
            a.receive_data(rehearsal.bytes_to_send())
    assert a.handshake is not None
    return a, bytes(said)


async def _send_in_one_segment(endpoint: str, tail: bytes) -> trio.SocketStream:
    """Connect, then send greeting, READY, and ``tail`` in one write, before reading."""
    a, sent = _rehearsed_push()
    a.send_messages([[b"a"], [b"b", b"c"]])
    port = int(endpoint.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(sent + a.bytes_to_send() + tail)
    return stream


@pytest.mark.parametrize("tail", [bytes((0, 200)) + b"x" * 200, b""], ids=["oversized", "eof"])
async def test_messages_in_the_handshake_read_survive_an_error_or_eof(tail: bytes) -> None:
    # The whole conversation arrives before the socket reads anything, so the read that
    # completes the handshake also holds the messages and then the violation (or EOF):
    # the handshake still counts and the messages are delivered.
    async with zmtp.Context() as ctx:
        pull = ctx.socket(zmtp.PULL, maxmsgsize=100)
        endpoint = await pull.bind("tcp://127.0.0.1:0")
        with trio.fail_after(10):
            stream = await _send_in_one_segment(endpoint, tail)
            async with stream:
                if not tail:
                    await stream.send_eof()
                assert await pull.recv_multipart() == [b"a"]
                assert await pull.recv_multipart() == [b"b", b"c"]
                while await stream.receive_some(4096):
                    pass  # our greeting and READY, then the socket closes it


def test_error_in_the_read_that_completes_the_handshake_keeps_its_events() -> None:
    a, said = _rehearsed_push()
    a.send_messages([[b"a"]])
    b = Connection(SocketType.PULL, max_message_size=100)
    with pytest.raises(MessageTooLarge) as info:
        b.receive_data(said + a.bytes_to_send() + bytes((0, 200)))
    kinds = [type(ev).__name__ for ev in info.value.events]
    assert kinds == ["GreetingReceived", "HandshakeComplete", "Messages"]
    assert info.value.events[-1] == Messages([[b"a"]])
    assert b.phase is zmtp.Phase.CLOSED
