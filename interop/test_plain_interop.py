"""The sans-IO PLAIN mechanism against a real libzmq 4.3.5 (through pyzmq), both roles.

As for CURVE, a raw TCP socket speaks the greeting (mechanism PLAIN) and hands command
bodies to :class:`PlainClient` / :class:`PlainServer`.  A libzmq PLAIN server needs a
ZAP handler to let anyone in (specs/libzmq-behaviour.md §4.1): pyzmq's
``ThreadAuthenticator`` with ``configure_plain`` is that handler here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from zmtp.protocol.commands import encode_error
from zmtp.protocol.errors import AuthenticationFailed
from zmtp.protocol.framing import FLAG_COMMAND, FLAG_MORE, encode_frame
from zmtp.protocol.mechanisms import PlainClient, PlainCredentials, PlainServer
from zmtp.protocol.mechanisms.plain import parse_libzmq_error

from ._helpers import SocketFactory
from ._mechanism_helpers import RawPeer, accept_raw, connect_raw, run_handshake

zmq = pytest.importorskip("zmq")
thread_auth = pytest.importorskip("zmq.auth.thread")
monitor = pytest.importorskip("zmq.utils.monitor")

pytestmark = pytest.mark.interop


@pytest.fixture
def authenticator(zmq_context: Any) -> Iterator[Any]:
    """A running ZAP handler that knows one user, admin / secret."""
    auth = thread_auth.ThreadAuthenticator(zmq_context)
    auth.start()
    auth.configure_plain(domain="*", passwords={"admin": "secret"})
    try:
        yield auth
    finally:
        auth.stop()


def _send_message(peer: RawPeer, parts: list[bytes]) -> None:
    last = len(parts) - 1
    peer.send(b"".join(encode_frame(p, FLAG_MORE if i < last else 0) for i, p in enumerate(parts)))


def _recv_message(peer: RawPeer) -> list[bytes]:
    parts = []
    while True:
        flags, body = peer.recv_frame()
        assert not flags & FLAG_COMMAND
        parts.append(body)
        if not flags & FLAG_MORE:
            return parts


class TestOurClientLibzmqServer:
    def test_handshake_and_messages(self, zmq_socket: SocketFactory, authenticator: Any) -> None:
        router = zmq_socket(zmq.ROUTER, PLAIN_SERVER=1)
        router.bind("tcp://127.0.0.1:*")
        client = PlainClient("admin", "secret")
        peer = connect_raw(router.getsockopt_string(zmq.LAST_ENDPOINT))
        try:
            sent = run_handshake(peer, client, [("Socket-Type", b"DEALER")])
            assert sent[0] == b"\x04\x13\x05HELLO\x05admin\x06secret"
            assert client.peer_metadata is not None
            assert client.peer_metadata["Socket-Type"] == b"ROUTER"
            _send_message(peer, [b"hello", b"world"])
            frames = router.recv_multipart(copy=False)
            assert [f.bytes for f in frames[1:]] == [b"hello", b"world"]
            assert frames[1].get("User-Id") == "admin"
            router.send_multipart([frames[0].bytes, b"reply"])
            assert _recv_message(peer) == [b"reply"]
        finally:
            peer.close()

    def test_wrong_password_gets_libzmqs_malformed_error(
        self, zmq_socket: SocketFactory, authenticator: Any
    ) -> None:
        router = zmq_socket(zmq.ROUTER, PLAIN_SERVER=1)
        router.bind("tcp://127.0.0.1:*")
        client = PlainClient("admin", "wrong")
        peer = connect_raw(router.getsockopt_string(zmq.LAST_ENDPOINT))
        try:
            peer.exchange_greetings(b"PLAIN", as_server=False)
            peer.send(client.start([("Socket-Type", b"DEALER")])[0])
            flags, body = peer.recv_frame()
            assert flags == FLAG_COMMAND and body == b"\x5eRROR\x03400"  # D-9
            assert parse_libzmq_error(body) == b"400"
        finally:
            peer.close()


class TestLibzmqClientOurServer:
    def test_handshake_and_messages(self, zmq_socket: SocketFactory) -> None:
        seen: list[PlainCredentials] = []
        server = PlainServer(authorize=lambda c: seen.append(c) is None)
        dealer = zmq_socket(
            zmq.DEALER, PLAIN_USERNAME=b"user", PLAIN_PASSWORD=b"pass", ROUTING_ID=b"d1"
        )
        peer = accept_raw(dealer.connect)
        try:
            run_handshake(peer, server, [("Socket-Type", b"ROUTER")])
            assert seen == [PlainCredentials(b"user", b"pass")]
            assert server.peer_metadata is not None
            assert server.peer_metadata["Identity"] == b"d1"
            dealer.send_multipart([b"a", b"b"])
            assert _recv_message(peer) == [b"a", b"b"]
            _send_message(peer, [b"c", b"d"])
            assert dealer.recv_multipart() == [b"c", b"d"]
        finally:
            peer.close()

    def test_refusal_ends_the_handshake(self, zmq_socket: SocketFactory) -> None:
        server = PlainServer(authorize=lambda c: False)
        dealer = zmq_socket(zmq.DEALER, PLAIN_USERNAME=b"user", PLAIN_PASSWORD=b"nope")
        events = zmq_socket.track(dealer.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL))
        peer = accept_raw(dealer.connect)
        try:
            peer.exchange_greetings(b"PLAIN", as_server=True)
            server.start([])
            with pytest.raises(AuthenticationFailed) as info:
                server.receive_command(peer.recv_command())
            # A well-formed ERROR: libzmq's PLAIN client knows only its own malformed
            # one (D-9), so it fails the handshake as a protocol error and hangs up.
            peer.send(encode_error(info.value.reason))
            event = monitor.recv_monitor_message(events)
            assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            assert peer.at_eof()
        finally:
            peer.close()
