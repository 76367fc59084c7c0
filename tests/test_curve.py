"""The sans-IO CURVE mechanism (zmtp.protocol.mechanisms.curve): our client against our
server, and every way a command can be damaged.

The same objects against libzmq, both roles, are in ``interop/test_curve_interop.py``.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zmtp
from zmtp.protocol.commands import Command, encode_command, parse_command
from zmtp.protocol.errors import (
    AuthenticationFailed,
    CurveMessageError,
    DecryptionFailed,
    HandshakeError,
    LocalProtocolError,
    NonceError,
    PeerError,
    RemoteProtocolError,
)
from zmtp.protocol.framing import FrameDecoder
from zmtp.protocol.mechanisms import MechanismStatus
from zmtp.protocol.mechanisms import curve as curve_module
from zmtp.protocol.mechanisms.curve import CurveClient, CurveFrame, CurveServer
from zmtp.protocol.metadata import encode_properties

CLIENT_PROPS = [("Socket-Type", b"DEALER"), ("Identity", b"me")]
SERVER_PROPS = [("Socket-Type", b"ROUTER")]


def command_of(frame: bytes) -> Command:
    """The one command in an encoded command frame."""
    ((_, body),) = FrameDecoder().decode(frame)
    return parse_command(body)


def bodies(frames: bytes) -> list[bytes]:
    return [body for _, body in FrameDecoder().decode(frames)]


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


@dataclass
class Pair:
    client: CurveClient
    server: CurveServer
    client_public: bytes
    server_public: bytes
    hello: Command | None = None
    welcome: Command | None = None
    initiate: Command | None = None
    ready: Command | None = None


def pair(**server_options: object) -> Pair:
    server_public, server_secret = zmtp.curve_keypair()
    client_public, client_secret = zmtp.curve_keypair()
    client = CurveClient(server_public, client_public, client_secret)
    server = CurveServer(server_secret, **server_options)  # type: ignore[arg-type]
    return Pair(client, server, client_public, server_public)


def until(p: Pair, stage: str) -> Pair:
    """Run the handshake up to (and including producing) the named command."""
    (hello,) = p.client.start(CLIENT_PROPS)
    assert p.server.start(SERVER_PROPS) == []
    p.hello = command_of(hello)
    if stage == "hello":
        return p
    p.welcome = command_of(p.server.receive_command(p.hello)[0])
    if stage == "welcome":
        return p
    p.initiate = command_of(p.client.receive_command(p.welcome)[0])
    if stage == "initiate":
        return p
    p.ready = command_of(p.server.receive_command(p.initiate)[0])
    if stage == "ready":
        return p
    assert p.client.receive_command(p.ready) == []
    return p


def size(command: Command) -> int:
    return 1 + len(command.name) + len(command.data)


class TestHandshake:
    def test_full_handshake(self) -> None:
        seen: list[bytes] = []
        p = until(pair(authorize=lambda key: seen.append(key) is None and True), "done")
        assert p.hello and p.welcome and p.initiate and p.ready
        assert (size(p.hello), size(p.welcome)) == (200, 168)
        assert size(p.initiate) == 257 + len(encode_properties(CLIENT_PROPS))
        assert size(p.ready) == 30 + len(encode_properties(SERVER_PROPS))
        assert p.client.status is p.server.status is MechanismStatus.READY
        assert p.client.peer_metadata == dict(SERVER_PROPS)
        assert p.server.peer_metadata == dict(CLIENT_PROPS)
        assert seen == [zmtp.protocol.z85.decode(p.client_public)] == [p.server.client_key]
        assert p.server.as_server and not p.client.as_server
        assert p.client.name == p.server.name == b"CURVE"

    def test_nonces_count_from_one_per_direction(self) -> None:
        p = until(pair(), "done")
        assert p.hello and p.initiate and p.ready
        assert p.hello.data[106:114] == (1).to_bytes(8, "big")
        assert p.initiate.data[96:104] == (2).to_bytes(8, "big")
        assert p.ready.data[:8] == (1).to_bytes(8, "big")
        (to_server,) = bodies(p.client.encode_message([b"x"]))
        (to_client,) = bodies(p.server.encode_message([b"y"]))
        assert to_server[8:16] == (3).to_bytes(8, "big")
        assert to_client[8:16] == (2).to_bytes(8, "big")

    def test_no_authorizer_or_none_accepts_any_key(self) -> None:
        assert until(pair(), "done").server.status is MechanismStatus.READY
        p = until(pair(authorize=lambda key: None), "done")
        assert p.server.status is MechanismStatus.READY

    def test_refused_key(self) -> None:
        p = until(pair(authorize=lambda key: False), "initiate")
        assert p.initiate
        with pytest.raises(AuthenticationFailed) as info:
            p.server.receive_command(p.initiate)
        assert info.value.reason == b"400"
        assert p.server.status is MechanismStatus.HANDSHAKING
        assert p.server.client_key is None and p.server.peer_metadata is None

    def test_cookie_key_is_forgotten_once_initiate_is_checked(self) -> None:
        p = until(pair(), "welcome")
        assert p.server._cookie_key is not None
        until_initiate = command_of(p.client.receive_command(p.welcome)[0])  # type: ignore[arg-type]
        p.server.receive_command(until_initiate)
        assert p.server._cookie_key is None
        q = until(pair(), "initiate")
        assert q.initiate
        with pytest.raises(DecryptionFailed):
            q.server.receive_command(Command(q.initiate.name, flip(q.initiate.data, 200)))
        assert q.server._cookie_key is None
        with pytest.raises(HandshakeError):  # no second chance
            q.server.receive_command(q.initiate)

    def test_server_error_is_a_peer_error(self) -> None:
        p = until(pair(), "hello")
        with pytest.raises(PeerError) as info:
            p.client.receive_command(Command(b"ERROR", b"\x03400"))
        assert info.value.reason == b"400"

    @pytest.mark.parametrize("stage", ["hello", "welcome", "initiate", "ready", "done"])
    def test_unexpected_commands(self, stage: str) -> None:
        p = until(pair(), stage)
        odd = Command(b"PING", b"\x00\x00")
        with pytest.raises(HandshakeError):
            p.server.receive_command(odd)
        with pytest.raises(HandshakeError):
            p.client.receive_command(odd)

    def test_client_error_is_refused_by_the_server(self) -> None:
        p = until(pair(), "hello")
        with pytest.raises(HandshakeError, match="expected HELLO"):
            p.server.receive_command(Command(b"ERROR", b"\x00"))

    def test_bad_configuration(self) -> None:
        public, secret = zmtp.curve_keypair()
        other, _ = zmtp.curve_keypair()
        with pytest.raises(ValueError, match="does not belong"):
            CurveClient(public, other, secret)
        with pytest.raises(ValueError, match="degenerate"):
            CurveClient(bytes(32), public, secret)
        with pytest.raises(ValueError, match="server key"):
            CurveClient(b"short", public, secret)
        with pytest.raises(ValueError, match="invalid property name"):
            CurveClient(other, public, secret).start([("bad name", b"")])

    def test_repr_shows_no_key(self) -> None:
        p = until(pair(), "done")
        for mech in (p.client, p.server):
            assert repr(mech) == f"<{type(mech).__name__} ready>"


class TestTamperedHandshake:
    """Each damaged command raises its specific error; nothing inside is used."""

    @pytest.mark.parametrize(
        ("index", "error"),
        [
            (0, HandshakeError),
            (2, HandshakeError),
            (73, HandshakeError),
            (74, DecryptionFailed),
            (105, DecryptionFailed),
            (113, NonceError),
            (114, DecryptionFailed),
            (193, DecryptionFailed),
        ],
        ids=[
            "version",
            "padding",
            "padding-end",
            "client-key",
            "client-key-end",
            "nonce",
            "box",
            "box-end",
        ],
    )
    def test_hello(self, index: int, error: type[Exception]) -> None:
        p = until(pair(), "hello")
        assert p.hello
        data = flip(p.hello.data, index)
        if error is NonceError:  # the short nonce 1 -> 0: not above the last (none, 0)
            assert data[106:114] == bytes(8)
        with pytest.raises(error):
            p.server.receive_command(Command(p.hello.name, data))

    @pytest.mark.parametrize("cut", [-1, 1])
    def test_hello_length(self, cut: int) -> None:
        p = until(pair(), "hello")
        assert p.hello
        data = p.hello.data[:cut] if cut < 0 else p.hello.data + bytes(cut)
        with pytest.raises(HandshakeError, match="malformed HELLO"):
            p.server.receive_command(Command(p.hello.name, data))

    def test_hello_with_a_degenerate_client_key(self) -> None:
        p = until(pair(), "hello")
        assert p.hello
        data = p.hello.data[:74] + bytes(32) + p.hello.data[106:]
        with pytest.raises(DecryptionFailed, match="degenerate"):
            p.server.receive_command(Command(p.hello.name, data))

    def test_hello_for_another_server(self) -> None:
        p = until(pair(), "hello")
        assert p.hello
        _, other_secret = zmtp.curve_keypair()
        other = CurveServer(other_secret)
        other.start([])
        with pytest.raises(DecryptionFailed, match="HELLO box does not open"):
            other.receive_command(p.hello)

    @pytest.mark.parametrize("index", [0, 15, 16, 100, 159])
    def test_welcome(self, index: int) -> None:
        p = until(pair(), "welcome")
        assert p.welcome
        with pytest.raises(DecryptionFailed):
            p.client.receive_command(Command(p.welcome.name, flip(p.welcome.data, index)))

    @pytest.mark.parametrize("cut", [-1, 1])
    def test_welcome_length(self, cut: int) -> None:
        p = until(pair(), "welcome")
        assert p.welcome
        data = p.welcome.data[:cut] if cut < 0 else p.welcome.data + bytes(cut)
        with pytest.raises(HandshakeError, match="malformed WELCOME"):
            p.client.receive_command(Command(p.welcome.name, data))

    @pytest.mark.parametrize(
        ("index", "error"),
        [
            (0, DecryptionFailed),
            (50, DecryptionFailed),
            (95, DecryptionFailed),
            (103, NonceError),
            (104, DecryptionFailed),
            (200, DecryptionFailed),
            (-1, DecryptionFailed),
        ],
        ids=["cookie-nonce", "cookie", "cookie-end", "nonce", "box", "box-mid", "box-end"],
    )
    def test_initiate(self, index: int, error: type[Exception]) -> None:
        p = until(pair(), "initiate")
        assert p.initiate
        data = flip(p.initiate.data, index)
        if error is NonceError:
            data = data[:96] + (1).to_bytes(8, "big") + data[104:]  # HELLO's nonce again
        with pytest.raises(error):
            p.server.receive_command(Command(p.initiate.name, data))
        assert p.server.status is MechanismStatus.HANDSHAKING

    def test_initiate_too_short(self) -> None:
        p = until(pair(), "initiate")
        assert p.initiate
        with pytest.raises(HandshakeError, match="malformed INITIATE"):
            p.server.receive_command(Command(p.initiate.name, p.initiate.data[:247]))

    def test_initiate_replaying_hellos_nonce(self) -> None:
        p = until(pair(), "welcome")
        assert p.welcome
        p.client._sent_nonce = 0  # the client reuses nonce 1 for INITIATE
        initiate = command_of(p.client.receive_command(p.welcome)[0])
        with pytest.raises(NonceError, match="INITIATE short nonce 1 does not follow 1"):
            p.server.receive_command(initiate)

    def test_vouch_from_another_long_term_key(self) -> None:
        p = until(pair(), "welcome")
        assert p.welcome
        impostor, _ = zmtp.curve_keypair()
        p.client.public_key = zmtp.protocol.z85.decode(impostor)  # claims C, cannot vouch
        initiate = command_of(p.client.receive_command(p.welcome)[0])
        with pytest.raises(DecryptionFailed, match="vouch"):
            p.server.receive_command(initiate)

    def test_initiate_with_a_cookie_from_another_connection(self) -> None:
        p = until(pair(), "initiate")
        q = until(pair(), "initiate")
        assert p.initiate and q.initiate
        mixed = q.initiate.data[:96] + p.initiate.data[96:]
        with pytest.raises(DecryptionFailed, match="cookie"):
            p.server.receive_command(Command(p.initiate.name, mixed))

    def test_initiate_with_bad_metadata(self, monkeypatch: pytest.MonkeyPatch) -> None:
        p = until(pair(), "welcome")
        assert p.welcome
        # A client that seals a broken property list: the box opens, the contents fail.
        monkeypatch.setattr(curve_module, "encode_properties", lambda props: b"\x05ab")
        initiate = command_of(p.client.receive_command(p.welcome)[0])
        monkeypatch.undo()
        with pytest.raises(HandshakeError, match="malformed metadata"):
            p.server.receive_command(initiate)

    @pytest.mark.parametrize(
        ("index", "error"),
        [(7, NonceError), (8, DecryptionFailed), (-1, DecryptionFailed)],
        ids=["nonce", "box", "box-end"],
    )
    def test_ready(self, index: int, error: type[Exception]) -> None:
        p = until(pair(), "ready")
        assert p.ready
        with pytest.raises(error):
            p.client.receive_command(Command(p.ready.name, flip(p.ready.data, index)))
        assert p.client.status is MechanismStatus.HANDSHAKING

    def test_ready_too_short(self) -> None:
        p = until(pair(), "ready")
        assert p.ready
        with pytest.raises(HandshakeError, match="malformed READY"):
            p.client.receive_command(Command(p.ready.name, p.ready.data[:23]))


class TestMessages:
    def test_parts_and_flags(self) -> None:
        p = until(pair(), "done")
        frames = p.client.encode_message([b"a", b"", b"c" * 300])
        got = [p.server.decode_frame(body) for body in bodies(frames)]
        assert got == [
            CurveFrame(b"a", True, False),
            CurveFrame(b"", True, False),
            CurveFrame(b"c" * 300, False, False),
        ]
        for flags, body in FrameDecoder().decode(frames):
            assert flags & 0x05 == 0  # neither MORE nor COMMAND outside
            assert body.startswith(b"\x07MESSAGE")

    def test_command_flag_is_two_inside(self) -> None:
        p = until(pair(), "done")
        ping = encode_command(b"PING", b"\x00\x0a")[2:]
        (body,) = bodies(p.server.encode_command(ping))
        frame = p.client.decode_frame(body)
        assert frame == CurveFrame(ping, False, True)
        assert len(body) == 8 + 8 + 16 + 1 + len(ping)

    def test_a_five_byte_part_is_38_bytes(self) -> None:
        p = until(pair(), "done")
        assert len(bodies(p.client.encode_message([b"12345"]))[0]) == 38

    def test_replayed_and_reordered(self) -> None:
        p = until(pair(), "done")
        first, second = bodies(p.client.encode_messages([[b"1"], [b"2"]]))
        assert p.server.decode_frame(first).data == b"1"
        with pytest.raises(NonceError):
            p.server.decode_frame(first)
        assert p.server.decode_frame(second).data == b"2"
        third, fourth = bodies(p.server.encode_messages([[b"3"], [b"4"]]))
        assert p.client.decode_frame(fourth).data == b"4"
        with pytest.raises(NonceError):
            p.client.decode_frame(third)

    @pytest.mark.parametrize("index", [8, 15, 16, 31, 32, -1])
    def test_tampered(self, index: int) -> None:
        p = until(pair(), "done")
        (body,) = bodies(p.client.encode_message([b"payload"]))
        error = NonceError if index == 15 else DecryptionFailed  # nonce 3 -> 2
        with pytest.raises(error):
            p.server.decode_frame(flip(body, index))
        assert p.server.decode_frame(body).data == b"payload"  # the failure cost nothing

    def test_cross_direction_and_cross_connection(self) -> None:
        p = until(pair(), "done")
        q = until(pair(), "done")
        (body,) = bodies(p.client.encode_message([b"x"]))
        with pytest.raises(DecryptionFailed):
            p.client.decode_frame(body)  # our own message, reflected
        with pytest.raises(DecryptionFailed):
            q.server.decode_frame(body)

    @pytest.mark.parametrize(
        "body",
        [
            b"",
            b"\x07MESSAG",
            b"\x07MESSAGE" + bytes(24),
            b"\x05READY" + bytes(40),
            b"\x07message" + bytes(40),
        ],
        ids=["empty", "short-name", "no-flags-octet", "other-command", "lower-case"],
    )
    def test_malformed(self, body: bytes) -> None:
        p = until(pair(), "done")
        with pytest.raises(CurveMessageError):
            p.server.decode_frame(body)

    def test_traffic_before_the_handshake(self) -> None:
        p = until(pair(), "ready")
        with pytest.raises(LocalProtocolError):
            p.client.encode_message([b"x"])
        with pytest.raises(LocalProtocolError):
            p.client.decode_frame(b"\x07MESSAGE" + bytes(30))
        with pytest.raises(LocalProtocolError):
            until(pair(), "done").client.encode_message([])

    def test_nonce_exhaustion(self) -> None:
        p = until(pair(), "done")
        p.client._sent_nonce = (1 << 64) - 2
        (body,) = bodies(p.client.encode_message([b"last"]))
        assert p.server.decode_frame(body).data == b"last"
        with pytest.raises(LocalProtocolError, match="exhausted"):
            p.client.encode_message([b"one too many"])

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.lists(st.binary(max_size=300), min_size=1, max_size=4), max_size=5))
    def test_round_trip(self, messages: list[list[bytes]]) -> None:
        p = until(pair(), "done")
        got: list[list[bytes]] = []
        current: list[bytes] = []
        for body in bodies(p.server.encode_messages(messages)):
            frame = p.client.decode_frame(body)
            current.append(frame.data)
            if not frame.more:
                got.append(current)
                current = []
        assert got == messages and current == []


STAGES = ["hello", "welcome", "initiate", "ready"]


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(STAGES),
    st.sampled_from([b"HELLO", b"WELCOME", b"INITIATE", b"READY", b"ERROR", b"MESSAGE"]),
    st.binary(max_size=400),
)
def test_garbage_commands_raise_only_protocol_errors(stage: str, name: bytes, data: bytes) -> None:
    p = until(pair(), stage)
    target = p.server if stage in ("hello", "initiate") else p.client
    with suppress(RemoteProtocolError):  # anything else escapes and fails the test
        target.receive_command(Command(name, data))
    assert target.status is MechanismStatus.HANDSHAKING


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_messages_raise_only_curve_errors(body: bytes) -> None:
    p = until(pair(), "done")
    with pytest.raises((CurveMessageError, DecryptionFailed, NonceError)):
        p.server.decode_frame(body)
    with pytest.raises((CurveMessageError, DecryptionFailed, NonceError)):
        p.client.decode_frame(b"\x07MESSAGE" + body)


def test_the_curve_error_family() -> None:
    with pytest.raises(TypeError, match="abstract"):
        zmtp.CurveError("x")
    for cls in (DecryptionFailed, NonceError, CurveMessageError):
        assert issubclass(cls, zmtp.CurveError)
        assert issubclass(cls, RemoteProtocolError)
        assert not issubclass(cls, HandshakeError)  # no ERROR in answer (RFC 26 MESSAGE)
