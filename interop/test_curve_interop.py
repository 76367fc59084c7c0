"""The sans-IO CURVE mechanism against a real libzmq 4.3.5 (through pyzmq), both roles.

A raw TCP socket in the test speaks the greeting (mechanism CURVE) and hands the command
bodies to :class:`CurveClient` / :class:`CurveServer`; the other end is a pyzmq socket
with ``CURVE_SERVER`` or ``CURVE_SERVERKEY``.  A completed handshake, and MESSAGEs that
libzmq delivers and that we open, prove the bytes before any socket wiring exists.
Sizes and nonce values are those of specs/libzmq-behaviour.md §4.2.
"""

from __future__ import annotations

from typing import Any

import pytest

from zmtp.protocol import z85
from zmtp.protocol.commands import READY, encode_error
from zmtp.protocol.errors import AuthenticationFailed, DecryptionFailed, NonceError
from zmtp.protocol.framing import FLAG_MORE
from zmtp.protocol.keys import curve_keypair
from zmtp.protocol.mechanisms.curve import CurveClient, CurveServer

from ._helpers import SocketFactory
from ._mechanism_helpers import RawPeer, accept_raw, connect_raw, run_handshake

zmq = pytest.importorskip("zmq")
monitor = pytest.importorskip("zmq.utils.monitor")

pytestmark = pytest.mark.interop


def _libzmq_server(make: SocketFactory, secret: bytes, **options: Any) -> tuple[Any, str]:
    sock = make(zmq.ROUTER, CURVE_SERVER=1, CURVE_SECRETKEY=secret, **options)
    sock.bind("tcp://127.0.0.1:*")
    return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)


def _libzmq_client(
    make: SocketFactory, server_public: bytes, **options: Any
) -> tuple[Any, bytes, bytes]:
    public, secret = zmq.curve_keypair()
    sock = make(
        zmq.DEALER,
        CURVE_SERVERKEY=server_public,
        CURVE_PUBLICKEY=public,
        CURVE_SECRETKEY=secret,
        **options,
    )
    return sock, public, secret


def _recv_message(peer: RawPeer, mech: CurveClient | CurveServer) -> list[bytes]:
    """Read MESSAGE frames until a part without MORE; check the outer frames as libzmq
    sends them (data frames, never MORE: the flag travels inside the box)."""
    parts: list[bytes] = []
    while True:
        flags, body = peer.recv_frame()
        assert flags & ~0x02 == 0, f"outer flags {flags:#04x}"
        frame = mech.decode_frame(body)
        assert not frame.command
        parts.append(frame.data)
        if not frame.more:
            return parts


class TestOurClientLibzmqServer:
    def test_handshake_and_messages_both_ways(self, zmq_socket: SocketFactory) -> None:
        server_public, server_secret = zmq.curve_keypair()
        router, endpoint = _libzmq_server(zmq_socket, server_secret)
        public, secret = curve_keypair()
        client = CurveClient(server_public, public, secret)
        peer = connect_raw(endpoint)
        try:
            assert peer.exchange_greetings(b"CURVE", as_server=False).mechanism == b"CURVE"
            (hello,) = client.start([("Socket-Type", b"DEALER"), ("Identity", b"")])
            assert len(hello) == 2 + 200
            peer.send(hello)
            welcome = peer.recv_command()
            assert 1 + len(welcome.name) + len(welcome.data) == 168
            (initiate,) = client.receive_command(welcome)
            peer.send(initiate)
            ready = peer.recv_command()
            assert ready.name == READY
            assert int.from_bytes(ready.data[:8], "big") == 1  # the server's first nonce
            assert client.receive_command(ready) == []
            assert client.peer_metadata is not None
            assert client.peer_metadata["Socket-Type"] == b"ROUTER"

            peer.send(client.encode_message([b"hello", b"", b"world" * 100]))
            frames = router.recv_multipart(copy=False)
            assert [f.bytes for f in frames[1:]] == [b"hello", b"", b"world" * 100]
            assert frames[1].get("Socket-Type") == "DEALER"

            router.send_multipart([frames[0].bytes, b"reply", b"x" * 300])
            assert _recv_message(peer, client) == [b"reply", b"x" * 300]
        finally:
            peer.close()

    def test_a_five_byte_part_is_a_38_byte_message(self, zmq_socket: SocketFactory) -> None:
        server_public, server_secret = zmq.curve_keypair()
        router, endpoint = _libzmq_server(zmq_socket, server_secret)
        client = CurveClient(server_public, *curve_keypair())
        peer = connect_raw(endpoint)
        try:
            run_handshake(peer, client, [("Socket-Type", b"DEALER")])
            peer.send(client.encode_message([b"ping!"]))
            routing_id, _ = router.recv_multipart()
            router.send_multipart([routing_id, b"pong!"])
            flags, body = peer.recv_frame()
            assert (flags, len(body)) == (0, 38)
            assert int.from_bytes(body[8:16], "big") == 2  # READY was 1
            assert client.decode_frame(body).data == b"pong!"
        finally:
            peer.close()

    def test_wrong_server_key_is_refused_by_libzmq(self, zmq_socket: SocketFactory) -> None:
        _, server_secret = zmq.curve_keypair()
        _router, endpoint = _libzmq_server(zmq_socket, server_secret)
        other_public, _ = curve_keypair()
        client = CurveClient(other_public, *curve_keypair())
        peer = connect_raw(endpoint)
        try:
            peer.exchange_greetings(b"CURVE", as_server=False)
            peer.send(client.start([("Socket-Type", b"DEALER")])[0])
            assert peer.at_eof()  # libzmq's HELLO box did not open
        finally:
            peer.close()

    @pytest.mark.parametrize("fault", ["short", "version", "name"])
    def test_a_malformed_hello_is_closed_without_a_word(
        self, fault: str, zmq_socket: SocketFactory
    ) -> None:
        # specs/discrepancies.md D-28: libzmq sends no ERROR for a malformed HELLO
        # (ours does); it closes, and its monitor says HANDSHAKE_FAILED_PROTOCOL.
        server_public, server_secret = zmq.curve_keypair()
        router, endpoint = _libzmq_server(zmq_socket, server_secret)
        events = zmq_socket.track(router.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL))
        client = CurveClient(server_public, *curve_keypair())
        hello = bytearray(client.start([("Socket-Type", b"DEALER")])[0])
        if fault == "short":  # 199 octets: one short of RFC 26's 200
            hello = bytearray((hello[0], hello[1] - 1)) + hello[2:-1]
        elif fault == "version":
            hello[2 + 6] = 2  # after the frame header and 05 'HELLO': version 2.0
        else:
            hello[2 + 1 : 2 + 6] = b"HALLO"
        peer = connect_raw(endpoint)
        try:
            peer.exchange_greetings(b"CURVE", as_server=False)
            peer.send(bytes(hello))
            rest = bytearray()
            while chunk := peer.sock.recv(4096):
                rest += chunk
            assert bytes(rest) == b""  # no ERROR, nothing: the connection just ends
        finally:
            peer.close()
        event = monitor.recv_monitor_message(events)
        assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL

    def test_a_tampered_message_is_dropped_by_libzmq(self, zmq_socket: SocketFactory) -> None:
        server_public, server_secret = zmq.curve_keypair()
        router, endpoint = _libzmq_server(zmq_socket, server_secret)
        client = CurveClient(server_public, *curve_keypair())
        peer = connect_raw(endpoint)
        try:
            run_handshake(peer, client, [("Socket-Type", b"DEALER")])
            frame = bytearray(client.encode_message([b"secret"]))
            frame[-1] ^= 0x01
            peer.send(bytes(frame))
            assert peer.at_eof()
            with pytest.raises(zmq.Again):
                router.recv_multipart(flags=zmq.NOBLOCK)
        finally:
            peer.close()


class TestLibzmqClientOurServer:
    def test_handshake_and_messages_both_ways(self, zmq_socket: SocketFactory) -> None:
        server_public, server_secret = curve_keypair()
        seen: list[bytes] = []

        def authorize(key: bytes) -> bool:
            seen.append(key)
            return True

        server = CurveServer(server_secret, authorize=authorize)
        dealer, public, _ = _libzmq_client(zmq_socket, server_public, ROUTING_ID=b"cli")
        peer = accept_raw(dealer.connect)
        try:
            assert peer.exchange_greetings(b"CURVE", as_server=True).mechanism == b"CURVE"
            assert server.start([("Socket-Type", b"ROUTER")]) == []
            hello = peer.recv_command()
            assert 1 + len(hello.name) + len(hello.data) == 200
            assert int.from_bytes(hello.data[106:114], "big") == 1
            (welcome,) = server.receive_command(hello)
            assert len(welcome) == 2 + 168
            peer.send(welcome)
            initiate = peer.recv_command()
            assert int.from_bytes(initiate.data[96:104], "big") == 2
            (ready,) = server.receive_command(initiate)
            peer.send(ready)
            assert seen == [z85.decode(public)] == [server.client_key]
            assert server.peer_metadata is not None
            assert server.peer_metadata["Socket-Type"] == b"DEALER"
            assert server.peer_metadata["Identity"] == b"cli"

            dealer.send_multipart([b"a", b"bb", b""])
            flags, body = peer.recv_frame()
            assert flags & FLAG_MORE == 0
            assert int.from_bytes(body[8:16], "big") == 3  # HELLO 1, INITIATE 2
            first = server.decode_frame(body)
            assert (first.data, first.more) == (b"a", True)
            assert _recv_message(peer, server) == [b"bb", b""]

            peer.send(server.encode_message([b"", b"back", b"z" * 70000]))
            assert dealer.recv_multipart() == [b"", b"back", b"z" * 70000]
        finally:
            peer.close()

    def test_heartbeats_travel_as_inner_commands(self, zmq_socket: SocketFactory) -> None:
        server_public, server_secret = curve_keypair()
        server = CurveServer(server_secret)
        dealer, _, _ = _libzmq_client(zmq_socket, server_public, HEARTBEAT_IVL=50)
        peer = accept_raw(dealer.connect)
        try:
            run_handshake(peer, server, [("Socket-Type", b"ROUTER")])
            flags, body = peer.recv_frame()
            assert flags == 0  # never COMMAND outside: the flag is inside the box
            ping = server.decode_frame(body)
            assert ping.command and not ping.more
            assert ping.data.startswith(b"\x04PING")
            # Answer it, and libzmq keeps talking: the PONG's inner COMMAND was read.
            peer.send(server.encode_command(b"\x04PONG" + ping.data[7:]))
            peer.send(server.encode_message([b"after pong"]))
            assert dealer.recv_multipart() == [b"after pong"]
        finally:
            peer.close()

    def test_refused_key_gets_error_400(self, zmq_socket: SocketFactory) -> None:
        server_public, server_secret = curve_keypair()
        server = CurveServer(server_secret, authorize=lambda key: False)
        dealer, _, _ = _libzmq_client(zmq_socket, server_public)
        events = zmq_socket.track(dealer.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH))
        peer = accept_raw(dealer.connect)
        try:
            peer.exchange_greetings(b"CURVE", as_server=True)
            server.start([("Socket-Type", b"ROUTER")])
            peer.send(server.receive_command(peer.recv_command())[0])
            with pytest.raises(AuthenticationFailed) as info:
                server.receive_command(peer.recv_command())
            peer.send(encode_error(info.value.reason))
            event = monitor.recv_monitor_message(events)
            assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
            assert event["value"] == 400
        finally:
            peer.close()

    def test_tampered_message_from_libzmq_side_is_refused(self, zmq_socket: SocketFactory) -> None:
        server_public, server_secret = curve_keypair()
        server = CurveServer(server_secret)
        dealer, _, _ = _libzmq_client(zmq_socket, server_public)
        peer = accept_raw(dealer.connect)
        try:
            run_handshake(peer, server, [("Socket-Type", b"ROUTER")])
            dealer.send(b"one")
            dealer.send(b"two")
            _, first = peer.recv_frame()
            _, second = peer.recv_frame()
            altered = bytearray(second)
            altered[20] ^= 0x80
            with pytest.raises(DecryptionFailed):
                server.decode_frame(bytes(altered))
            assert server.decode_frame(first).data == b"one"
            with pytest.raises(NonceError):
                server.decode_frame(first)  # replayed
            assert server.decode_frame(second).data == b"two"
        finally:
            peer.close()
