"""libzmq delivers whole messages that precede a bad frame (specs D-25).

Our sockets do the same (tests/test_delivery_before_error.py); this pins the libzmq
side of the claim against a real pyzmq 27 / libzmq 4.3.5 PULL.
"""

from __future__ import annotations

import pytest
import trio

from zmtp import Connection, SocketType

from ._helpers import TIMEOUT, SocketFactory

zmq = pytest.importorskip("zmq")
pytestmark = pytest.mark.interop


async def test_libzmq_delivers_messages_before_an_oversized_frame(
    zmq_socket: SocketFactory,
) -> None:
    pull = zmq_socket(zmq.PULL, MAXMSGSIZE=100)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    conn = Connection(SocketType.PUSH)
    with trio.fail_after(TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(conn.bytes_to_send())
            while conn.handshake is None:
                conn.receive_data(await stream.receive_some(4096))
                if conn.has_data_to_send:
                    await stream.send_all(conn.bytes_to_send())
            conn.send_messages([[b"a"], [b"b", b"c"]])
            # Two good messages and a frame over MAXMSGSIZE, in one write.
            await stream.send_all(conn.bytes_to_send() + bytes((0, 200)) + b"x" * 200)
            first = await trio.to_thread.run_sync(pull.recv_multipart)
            second = await trio.to_thread.run_sync(pull.recv_multipart)
            assert [first, second] == [[b"a"], [b"b", b"c"]]
            # ...and libzmq drops the connection over the oversized frame.
            assert await stream.receive_some(4096) == b""
