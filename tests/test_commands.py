"""Command frames (zmtp.protocol.commands), RFC 37 "Commands", NULL mechanism, heartbeating and
subscriptions.

Each golden vector is a whole command frame.  The table feeds both directions: the
frame decodes (hand-written and grammar) to the command, and our typed encoder and the
grammar build exactly those bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import construct
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.protocol.commands import (
    Command,
    check_handshake_command,
    encode_cancel,
    encode_command,
    encode_error,
    encode_ping,
    encode_pong,
    encode_ready,
    encode_subscribe,
    parse_command,
    parse_error,
    parse_ping,
    parse_ready,
)
from zmtp.protocol.errors import HandshakeError, LocalProtocolError, RemoteProtocolError
from zmtp.protocol.framing import FLAG_COMMAND, FrameDecoder
from zmtp.tools import grammar

from ._helpers import h


def props(*pairs: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"properties": [{"name": n, "value": v} for n, v in pairs]}


# (frame bytes, Command, our encoder producing it, grammar fields for the same command)
GOLDEN: list[Any] = [
    # [P] bound libzmq ROUTER; Identity is sent (empty) by REQ, DEALER and ROUTER only.
    pytest.param(
        h("04 29 05 'READY' 0b 'Socket-Type' 00000006 'ROUTER' 08 'Identity' 00000000"),
        Command(b"READY", h("0b 'Socket-Type' 00000006 'ROUTER' 08 'Identity' 00000000")),
        lambda: encode_ready([("Socket-Type", b"ROUTER"), ("Identity", b"")]),
        props((b"Socket-Type", b"ROUTER"), (b"Identity", b"")),
        id="ready-router",
    ),
    # [P] libzmq PUB: Socket-Type only.
    pytest.param(
        h("04 19 05 'READY' 0b 'Socket-Type' 00000003 'PUB'"),
        Command(b"READY", h("0b 'Socket-Type' 00000003 'PUB'")),
        lambda: encode_ready({"Socket-Type": b"PUB"}),
        props((b"Socket-Type", b"PUB")),
        id="ready-pub",
    ),
    # [P] libzmq REQ.
    pytest.param(
        h("04 26 05 'READY' 0b 'Socket-Type' 00000003 'REQ' 08 'Identity' 00000000"),
        Command(b"READY", h("0b 'Socket-Type' 00000003 'REQ' 08 'Identity' 00000000")),
        lambda: encode_ready([("Socket-Type", b"REQ"), ("Identity", b"")]),
        props((b"Socket-Type", b"REQ"), (b"Identity", b"")),
        id="ready-req",
    ),
    # RFC 23/37 "Worked Example": the DEALER client's READY.
    pytest.param(
        h("04 29 05 'READY' 0b 'Socket-Type' 00000006 'DEALER' 08 'Identity' 00000000"),
        Command(b"READY", h("0b 'Socket-Type' 00000006 'DEALER' 08 'Identity' 00000000")),
        lambda: encode_ready([("Socket-Type", b"DEALER"), ("Identity", b"")]),
        props((b"Socket-Type", b"DEALER"), (b"Identity", b"")),
        id="ready-rfc-worked-example",
    ),
    pytest.param(
        h("04 06 05 'READY'"),
        Command(b"READY"),
        lambda: encode_ready([]),
        props(),
        id="ready-without-properties",
    ),
    # [P] libzmq with ZMQ_HEARTBEAT_TTL=1500 ms: TTL 15 deciseconds, no context.
    pytest.param(
        h("04 07 04 'PING' 00 0f"),
        Command(b"PING", h("00 0f")),
        lambda: encode_ping(15),
        {"ttl": 15, "context": b""},
        id="ping-ttl-1500ms",
    ),
    pytest.param(
        h("04 0a 04 'PING' ff ff 'ctx'"),
        Command(b"PING", h("ff ff 'ctx'")),
        lambda: encode_ping(0xFFFF, b"ctx"),
        {"ttl": 0xFFFF, "context": b"ctx"},
        id="ping-max-ttl-context",
    ),
    # [P] libzmq's PONG to a PING carrying 16 octets of context.
    pytest.param(
        h("04 15 04 'PONG' '0123456789abcdef'"),
        Command(b"PONG", b"0123456789abcdef"),
        lambda: encode_pong(b"0123456789abcdef"),
        {"context": b"0123456789abcdef"},
        id="pong-16-octets",
    ),
    pytest.param(h("04 05 04 'PONG'"), Command(b"PONG"), encode_pong, {"context": b""}, id="pong"),
    # [P] a libzmq SUB talking to a ZMTP 3.1 peer.
    pytest.param(
        h("04 0d 09 'SUBSCRIBE' 'pre'"),
        Command(b"SUBSCRIBE", b"pre"),
        lambda: encode_subscribe(b"pre"),
        {"topic": b"pre"},
        id="subscribe",
    ),
    pytest.param(
        h("04 0a 06 'CANCEL' 'pre'"),
        Command(b"CANCEL", b"pre"),
        lambda: encode_cancel(b"pre"),
        {"topic": b"pre"},
        id="cancel",
    ),
    pytest.param(
        h("04 0a 09 'SUBSCRIBE'"),
        Command(b"SUBSCRIBE"),
        lambda: encode_subscribe(b""),
        {"topic": b""},
        id="subscribe-everything",
    ),
    # libzmq's NULL mechanism refusing a peer after ZAP status 400
    # (specs/libzmq-behaviour.md §2.3).
    pytest.param(
        h("04 0a 05 'ERROR' 03 '400'"),
        Command(b"ERROR", h("03 '400'")),
        lambda: encode_error(b"400"),
        {"reason": b"400"},
        id="error-400",
    ),
    # A mechanism command the grammar does not type: data stays raw bytes.
    pytest.param(
        h("04 0b 07 'WELCOME' 'abc'"),
        Command(b"WELCOME", b"abc"),
        lambda: encode_command(b"WELCOME", b"abc"),
        b"abc",
        id="unknown-command",
    ),
    # Commands above 255 octets use the long size field (flags 06).
    pytest.param(
        h("06 00 00 00 00 00 00 01 0a 09 'SUBSCRIBE'") + b"t" * 256,
        Command(b"SUBSCRIBE", b"t" * 256),
        lambda: encode_subscribe(b"t" * 256),
        {"topic": b"t" * 256},
        id="long-subscribe",
    ),
]


def grammar_data(parsed: Any) -> Any:
    """A grammar-parsed command's data as plain dicts and lists, for comparison."""
    data = parsed.data
    if isinstance(data, bytes):
        return data
    out = {k: v for k, v in data.items() if not k.startswith("_")}
    if "properties" in out:
        out["properties"] = [{"name": p.name, "value": p.value} for p in out["properties"]]
    return out


class TestGoldenVectors:
    @pytest.mark.parametrize(("raw", "command", "encode", "fields"), GOLDEN)
    def test_decode(
        self, raw: bytes, command: Command, encode: Callable[[], bytes], fields: Any
    ) -> None:
        [(flags, body)] = FrameDecoder().decode(raw)
        assert flags == FLAG_COMMAND
        assert parse_command(body) == command

    @pytest.mark.parametrize(("raw", "command", "encode", "fields"), GOLDEN)
    def test_grammar_parse(
        self, raw: bytes, command: Command, encode: Callable[[], bytes], fields: Any
    ) -> None:
        frame = grammar.parse_frame(raw)
        assert frame.flags.command
        assert not frame.flags.more
        parsed = grammar.parse_command(frame.body)
        assert parsed.name == command.name
        assert grammar_data(parsed) == fields

    @pytest.mark.parametrize(("raw", "command", "encode", "fields"), GOLDEN)
    def test_encode(
        self, raw: bytes, command: Command, encode: Callable[[], bytes], fields: Any
    ) -> None:
        assert encode() == raw
        assert command.encode() == raw

    @pytest.mark.parametrize(("raw", "command", "encode", "fields"), GOLDEN)
    def test_grammar_build(
        self, raw: bytes, command: Command, encode: Callable[[], bytes], fields: Any
    ) -> None:
        assert grammar.build_command(command.name, fields) == raw


class TestParseCommand:
    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(b"", id="empty-frame"),
            pytest.param(b"\x00", id="zero-length-name"),
            pytest.param(b"\x00data", id="zero-length-name-with-data"),
            pytest.param(b"\x05READ", id="name-overshoots-frame"),
        ],
    )
    def test_malformed(self, body: bytes) -> None:
        with pytest.raises(RemoteProtocolError, match="command") as info:
            parse_command(body)
        assert info.value.reason == b"Malformed command"
        with pytest.raises(construct.ConstructError):
            grammar.parse_command(body)

    def test_libzmq_plain_error_is_not_a_valid_command(self) -> None:
        # [P] libzmq 4.3.5's PLAIN mechanism writes "\x05ERROR" as a C hex escape, which
        # the compiler reads as 0x5E: the frame is 04 09 5e 'RROR' 03 '400'.  Its
        # name length (94) overshoots the frame, so it is malformed for every RFC
        # parser, ours and the grammar included (specs/discrepancies.md).
        [(flags, body)] = FrameDecoder().decode(h("04 09 5e 'RROR' 03 '400'"))
        assert flags == FLAG_COMMAND
        with pytest.raises(RemoteProtocolError, match="name length 94"):
            parse_command(body)
        with pytest.raises(construct.ConstructError):
            grammar.parse_command(body)

    def test_any_octets_form_a_name(self) -> None:
        # The ABNF says ALPHA; like libzmq we do not police the characters.
        assert parse_command(b"\x02^R!") == Command(b"^R", b"!")


class TestEncodeCommand:
    @pytest.mark.parametrize("name", [b"", b"N" * 256])
    def test_name_length(self, name: bytes) -> None:
        with pytest.raises(LocalProtocolError, match="1-255"):
            encode_command(name)

    def test_longest_name(self) -> None:
        # 1 + 255 octets of body: already a long frame.
        raw = encode_command(b"N" * 255)
        assert raw[:10] == h("06 00 00 00 00 00 00 01 00 ff")

    def test_command_frames_never_have_more(self) -> None:
        # RFC 23/37: MORE "SHALL be zero on command frames".
        for raw in (encode_command(b"X"), encode_command(b"X", bytes(1000))):
            assert raw[0] & 0x01 == 0


class TestHeartbeat:
    @pytest.mark.parametrize("ttl", [-1, 0x10000])
    def test_ping_ttl_range(self, ttl: int) -> None:
        with pytest.raises(ValueError, match="TTL"):
            encode_ping(ttl)

    def test_ping_context_at_most_16(self) -> None:
        encode_ping(0, bytes(16))
        with pytest.raises(ValueError, match="16"):
            encode_ping(0, bytes(17))

    @pytest.mark.parametrize("data", [b"", b"\x01"])
    def test_ping_without_ttl_is_tolerated(self, data: bytes) -> None:
        # libzmq's own handling of this case leaks memory into the PONG
        # (specs/libzmq-behaviour.md §3.2); we read it as TTL 0 with no context.
        assert parse_ping(data) == (0, b"")

    def test_parse_ping(self) -> None:
        assert parse_ping(h("01 00 'abc'")) == (256, b"abc")

    def test_pong_truncates_context_to_16(self) -> None:
        assert encode_pong(bytes(range(20))) == encode_pong(bytes(range(16)))
        assert len(encode_pong(bytes(range(20)))) == 2 + 5 + 16


class TestError:
    def test_reason_is_truncated_to_255(self) -> None:
        raw = encode_error(b"r" * 300)
        [(_, body)] = FrameDecoder().decode(raw)
        cmd = parse_command(body)
        assert cmd.data[0] == 255
        assert parse_error(cmd.data) == b"r" * 255

    def test_parse_error_tolerates_overshoot(self) -> None:
        assert parse_error(b"\x09short") == b"short"

    def test_parse_error_empty(self) -> None:
        assert parse_error(b"") == b""


class TestHandshakeHelpers:
    def test_check_handshake_command(self) -> None:
        check_handshake_command(Command(b"READY"), b"READY")
        with pytest.raises(HandshakeError, match="expected READY") as info:
            check_handshake_command(Command(b"PING", b"\x00\x00"), b"READY")
        assert info.value.reason == b"Unexpected command"

    def test_parse_ready(self) -> None:
        data = Command(b"READY", h("0b 'Socket-Type' 00000003 'PUB'")).data
        assert parse_ready(data) == {"Socket-Type": b"PUB"}
        with pytest.raises(HandshakeError, match="limit"):
            parse_ready(data, max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_bodies_only_raise_protocol_errors(body: bytes) -> None:
    try:
        cmd = parse_command(body)
    except RemoteProtocolError:
        return
    assert bytes((len(cmd.name),)) + cmd.name + cmd.data == body
