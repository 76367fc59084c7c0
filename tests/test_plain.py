"""The sans-IO PLAIN mechanism (zmtp.protocol.mechanisms.plain): golden bytes, our client
against our server, refusals, malformed commands, and the password kept out of sight.

The same objects against libzmq are in ``interop/test_plain_interop.py``.
"""

from __future__ import annotations

import logging
from contextlib import suppress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.protocol.commands import Command, parse_command
from zmtp.protocol.errors import (
    AuthenticationFailed,
    HandshakeError,
    LocalProtocolError,
    PeerError,
    RemoteProtocolError,
)
from zmtp.protocol.framing import FrameDecoder
from zmtp.protocol.mechanisms import MechanismStatus, PlainClient, PlainCredentials, PlainServer
from zmtp.protocol.mechanisms.plain import encode_hello, parse_hello, parse_libzmq_error

PASSWORD = b"hunter2-very-secret"


def command_of(frame: bytes) -> Command:
    ((_, body),) = FrameDecoder().decode(frame)
    return parse_command(body)


def run(client: PlainClient, server: PlainServer) -> list[bytes]:
    frames = client.start([("Socket-Type", b"DEALER")])
    assert server.start([("Socket-Type", b"ROUTER")]) == []
    sent = list(frames)
    while client.status is not MechanismStatus.READY:
        (frame,) = frames
        replies = server.receive_command(command_of(frame))
        sent += replies
        (reply,) = replies
        frames = client.receive_command(command_of(reply))
        sent += frames
    return sent


class TestGoldenVectors:
    """Byte layouts of RFC 24 / specs/libzmq-behaviour.md §4.1, both directions."""

    HELLO = b"\x04\x0e\x05HELLO\x03adm\x03pwd"
    WELCOME = b"\x04\x08\x07WELCOME"
    INITIATE = b"\x04\x1c\x08INITIATE\x0bSocket-Type\x00\x00\x00\x03REQ"
    READY = b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03REP"
    LIBZMQ_ERROR = b"\x04\x09\x5eRROR\x03400"

    def test_encode(self) -> None:
        client = PlainClient(b"adm", b"pwd")
        server = PlainServer(authorize=lambda c: True)
        assert client.start([("Socket-Type", b"REQ")]) == [self.HELLO]
        server.start([("Socket-Type", b"REP")])
        assert server.receive_command(command_of(self.HELLO)) == [self.WELCOME]
        assert client.receive_command(command_of(self.WELCOME)) == [self.INITIATE]
        assert server.receive_command(command_of(self.INITIATE)) == [self.READY]
        assert client.receive_command(command_of(self.READY)) == []
        assert client.peer_metadata == {"Socket-Type": b"REP"}
        assert server.peer_metadata == {"Socket-Type": b"REQ"}

    def test_decode(self) -> None:
        assert parse_hello(command_of(self.HELLO).data) == PlainCredentials(b"adm", b"pwd")
        assert encode_hello(PlainCredentials(b"adm", b"pwd")) == self.HELLO
        assert parse_libzmq_error(self.LIBZMQ_ERROR[2:]) == b"400"
        assert parse_libzmq_error(b"\x05ERROR\x03400") is None

    def test_empty_credentials(self) -> None:
        assert encode_hello(PlainCredentials(b"", b"")) == b"\x04\x08\x05HELLO\x00\x00"
        assert parse_hello(b"\x00\x00") == PlainCredentials(b"", b"")


class TestHandshake:
    def test_full_handshake(self) -> None:
        seen: list[PlainCredentials] = []
        client = PlainClient("admin", PASSWORD)
        server = PlainServer(authorize=lambda c: seen.append(c) is None)
        run(client, server)
        assert seen == [PlainCredentials(b"admin", PASSWORD)]
        assert server.status is MechanismStatus.READY
        assert server.username == server.user_id == b"admin"
        assert (client.as_server, server.as_server) == (False, True)

    def test_longest_credentials(self) -> None:
        client = PlainClient(b"u" * 255, b"p" * 255)
        run(client, PlainServer(authorize=lambda c: c.password == b"p" * 255))
        assert client.status is MechanismStatus.READY

    def test_refusal(self) -> None:
        client = PlainClient(b"admin", b"wrong")
        server = PlainServer(authorize=lambda c: c.password == PASSWORD)
        (hello,) = client.start([])
        server.start([])
        with pytest.raises(AuthenticationFailed) as info:
            server.receive_command(command_of(hello))
        assert info.value.reason == b"400"
        assert server.username is None
        with pytest.raises(PeerError) as peer:
            client.receive_command(Command(b"ERROR", b"\x03400"))
        assert peer.value.reason == b"400"

    @pytest.mark.parametrize("name", [b"PING", b"READY", b"HELLO", b"^RROR"])
    def test_client_takes_an_unexpected_command_as_a_refusal(self, name: bytes) -> None:
        client = PlainClient(b"u", b"p")
        client.start([])
        with pytest.raises(AuthenticationFailed, match="refusal"):
            client.receive_command(Command(name, b"\x03400"))

    def test_welcome_with_data(self) -> None:
        client = PlainClient(b"u", b"p")
        client.start([])
        with pytest.raises(HandshakeError, match="malformed PLAIN WELCOME"):
            client.receive_command(Command(b"WELCOME", b"\x00"))

    def test_server_order(self) -> None:
        server = PlainServer(authorize=lambda c: True)
        server.start([])
        with pytest.raises(HandshakeError, match="expected HELLO"):
            server.receive_command(Command(b"INITIATE", b""))
        server = PlainServer(authorize=lambda c: True)
        server.start([])
        server.receive_command(Command(b"HELLO", b"\x00\x00"))
        with pytest.raises(HandshakeError, match="expected INITIATE"):
            server.receive_command(Command(b"HELLO", b"\x00\x00"))

    @pytest.mark.parametrize(
        "data",
        [b"", b"\x05adm", b"\x03adm", b"\x03adm\x03pw", b"\x03adm\x03pwdX", b"\x00\x00\x00"],
        ids=["empty", "short-user", "no-password", "short-password", "trailing", "extra"],
    )
    def test_malformed_hello(self, data: bytes) -> None:
        server = PlainServer(authorize=lambda c: True)
        server.start([])
        with pytest.raises(HandshakeError, match="malformed PLAIN HELLO"):
            server.receive_command(Command(b"HELLO", data))

    def test_malformed_metadata(self) -> None:
        server = PlainServer(authorize=lambda c: True)
        server.start([])
        server.receive_command(Command(b"HELLO", b"\x00\x00"))
        with pytest.raises(HandshakeError, match="malformed metadata"):
            server.receive_command(Command(b"INITIATE", b"\x05ab"))

    @pytest.mark.parametrize(
        ("username", "password", "error"),
        [(b"u" * 256, b"", ValueError), (b"", "é" * 128, ValueError), (1, b"", TypeError)],
    )
    def test_bad_credentials(self, username: object, password: object, error: type) -> None:
        with pytest.raises(error):
            PlainClient(username, password)  # type: ignore[arg-type]
        with pytest.raises(LocalProtocolError):
            encode_hello(PlainCredentials(b"u" * 256, b""))


class TestPasswordStaysHidden:
    def test_reprs_and_errors(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        client = PlainClient(b"admin", PASSWORD)
        server = PlainServer(authorize=lambda c: False)
        texts = [repr(client), str(client), repr(PlainCredentials(b"admin", PASSWORD))]
        (hello,) = client.start([])
        server.start([])
        with pytest.raises(AuthenticationFailed) as info:
            server.receive_command(command_of(hello))
        texts += [str(info.value), repr(info.value), repr(server), str(info.value.reason)]
        bad = PlainServer(authorize=lambda c: True)
        bad.start([])
        with pytest.raises(HandshakeError) as malformed:
            bad.receive_command(Command(b"HELLO", b"\x05admin\x13" + PASSWORD + b"!"))
        texts += [str(malformed.value), repr(malformed.value)]
        texts += [record.getMessage() for record in caplog.records]
        assert "admin" in repr(client) and "admin" in str(info.value)
        for text in texts:
            assert PASSWORD.decode() not in text


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["hello", "initiate", "welcome", "ready"]),
    st.sampled_from([b"HELLO", b"WELCOME", b"INITIATE", b"READY", b"ERROR", b"X"]),
    st.binary(max_size=300),
)
def test_garbage_raises_only_protocol_errors(stage: str, name: bytes, data: bytes) -> None:
    client = PlainClient(b"u", b"p")
    server = PlainServer(authorize=lambda c: c.username == b"u")
    client.start([])
    server.start([])
    if stage == "initiate":
        server.receive_command(Command(b"HELLO", b"\x01u\x01p"))
    if stage == "ready":
        client.receive_command(Command(b"WELCOME"))
    target = server if stage in ("hello", "initiate") else client
    with suppress(RemoteProtocolError):  # anything else escapes and fails the test
        target.receive_command(Command(name, data))
