"""The construct grammar (zmtp.tools.grammar) as an oracle for the hand-written codecs.

Differential tests: hypothesis generates frames, commands, properties and greetings;
the hand-written encoders must produce exactly what the grammar builds, and the
hand-written decoders must read what the grammar reads.  A few tests pin down where the
grammar is deliberately stricter (it follows the RFC text) and that it stays off the
runtime path.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import construct
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zmtp
from zmtp.protocol.commands import (
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
)
from zmtp.protocol.connection import Connection
from zmtp.protocol.errors import RemoteProtocolError
from zmtp.protocol.events import HandshakeComplete
from zmtp.protocol.framing import (
    FLAG_COMMAND,
    FLAG_LONG,
    FLAG_MORE,
    FrameDecoder,
    OutputBuffer,
    encode_frame,
    encode_message,
)
from zmtp.protocol.greeting import Greeting, greeting_head, greeting_tail
from zmtp.protocol.metadata import encode_properties, parse_properties
from zmtp.protocol.socket_types import SocketType
from zmtp.tools import grammar

from ._helpers import imported_modules

SETTINGS = settings(max_examples=150, deadline=None)

bodies = st.one_of(st.binary(max_size=40), st.binary(min_size=250, max_size=270))
names = st.binary(min_size=1, max_size=255)
property_names = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+", min_size=1, max_size=40
)
property_lists = st.lists(
    st.tuples(property_names, st.binary(max_size=300)),
    max_size=5,
    unique_by=lambda p: p[0].lower(),
)


def props_fields(pairs: list[tuple[str, bytes]]) -> dict[str, Any]:
    return {"properties": [{"name": n.encode(), "value": v} for n, v in pairs]}


def flags_of(frame: Any) -> int:
    f = frame.flags
    return int(f.more) | int(f.long) << 1 | int(f.command) << 2 | f.reserved << 3


# --------------------------------------------------------------------------- frames


@SETTINGS
@given(bodies, st.booleans(), st.booleans())
def test_frame_encoder_matches_grammar(body: bytes, more: bool, command: bool) -> None:
    flags = (FLAG_MORE if more else 0) | (FLAG_COMMAND if command else 0)
    raw = encode_frame(body, flags)
    assert raw == grammar.build_frame(body, more=more, command=command)
    parsed = grammar.parse_frame(raw)
    assert (flags_of(parsed) & ~FLAG_LONG, parsed.body) == (flags, body)
    assert parsed.flags.long == (len(body) > 255)
    assert FrameDecoder().decode(raw) == [(flags, body)]


@SETTINGS
@given(st.lists(bodies, min_size=1, max_size=5))
def test_message_encoder_matches_grammar(parts: list[bytes]) -> None:
    out = OutputBuffer()
    encode_message(out, parts)
    last = len(parts) - 1
    expected = b"".join(grammar.build_frame(p, more=i < last) for i, p in enumerate(parts))
    assert b"".join(bytes(c) for c in out.chunks()) == expected


@SETTINGS
@given(st.integers(0, 255), bodies, st.booleans())
def test_decoder_reads_any_flags_octet_like_the_grammar(
    flags: int, body: bytes, force_long: bool
) -> None:
    # Non-canonical input too: reserved bits, LONG with a small size.
    long = force_long or len(body) > 255 or bool(flags & FLAG_LONG)
    flags = flags | FLAG_LONG if long else flags & ~FLAG_LONG
    size = len(body).to_bytes(8, "big") if long else bytes((len(body),))
    raw = bytes((flags,)) + size + body
    [parsed] = grammar.parse_frames(raw)
    assert FrameDecoder(raw_flags=True).decode(raw) == [(flags_of(parsed), parsed.body)]
    assert FrameDecoder().decode(raw) == [(flags & (FLAG_MORE | FLAG_COMMAND), body)]


@SETTINGS
@given(st.binary(max_size=60))
def test_decoder_and_grammar_agree_on_garbage(raw: bytes) -> None:
    try:
        parsed = grammar.parse_frames(raw)
    except construct.ConstructError:
        # Truncated (or an impossible size): the decoder completes fewer frames and
        # holds the rest, or refuses the size.
        dec = FrameDecoder(raw_flags=True)
        try:
            dec.decode(raw)
        except RemoteProtocolError as exc:
            assert "2^63" in str(exc)
        else:
            assert not dec.at_frame_boundary
    else:
        dec = FrameDecoder(raw_flags=True)
        assert dec.decode(raw) == [(flags_of(f), f.body) for f in parsed]
        assert dec.at_frame_boundary


# --------------------------------------------------------------------------- commands


@SETTINGS
@given(names, st.binary(max_size=300))
def test_any_command_matches_grammar(name: bytes, data: bytes) -> None:
    raw = encode_command(name, data)
    assert raw == grammar.build_command(name, data)
    [(flags, body)] = FrameDecoder().decode(raw)
    assert flags == FLAG_COMMAND
    cmd = parse_command(body)
    raw_parsed = grammar.RAW_COMMAND.parse(body)
    assert (cmd.name, cmd.data) == (raw_parsed.name, raw_parsed.data)


@SETTINGS
@given(st.integers(0, 0xFFFF), st.binary(max_size=16))
def test_ping_and_pong_match_grammar(ttl: int, context: bytes) -> None:
    raw = encode_ping(ttl, context)
    assert raw == grammar.build_command(b"PING", {"ttl": ttl, "context": context})
    [(_, body)] = FrameDecoder().decode(raw)
    parsed = grammar.parse_command(body)
    assert parse_ping(parse_command(body).data) == (parsed.data.ttl, parsed.data.context)
    assert encode_pong(context) == grammar.build_command(b"PONG", {"context": context})


@SETTINGS
@given(st.binary(max_size=300))
def test_subscriptions_match_grammar(topic: bytes) -> None:
    assert encode_subscribe(topic) == grammar.build_command(b"SUBSCRIBE", {"topic": topic})
    assert encode_cancel(topic) == grammar.build_command(b"CANCEL", {"topic": topic})


@SETTINGS
@given(st.binary(max_size=255))
def test_error_matches_grammar(reason: bytes) -> None:
    raw = encode_error(reason)
    assert raw == grammar.build_command(b"ERROR", {"reason": reason})
    [(_, body)] = FrameDecoder().decode(raw)
    assert parse_error(parse_command(body).data) == grammar.parse_command(body).data.reason


@SETTINGS
@given(property_lists)
def test_ready_and_properties_match_grammar(pairs: list[tuple[str, bytes]]) -> None:
    raw = encode_properties(pairs)
    assert raw == grammar.build_properties([(n.encode(), v) for n, v in pairs])
    assert [(n.encode(), v) for n, v in parse_properties(raw).items()] == (
        grammar.parse_properties(raw)
    )
    assert encode_ready(pairs) == grammar.build_command(b"READY", props_fields(pairs))


# --------------------------------------------------------------------------- greeting


@SETTINGS
@given(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=20).map(str.encode),
    st.integers(0, 255),
    st.integers(0, 255),
    st.booleans(),
    st.binary(min_size=8, max_size=8),
)
def test_greeting_matches_grammar(
    mechanism: bytes, major: int, minor: int, as_server: bool, padding: bytes
) -> None:
    ours = greeting_head(major) + greeting_tail(mechanism, as_server=as_server, minor=minor)
    assert ours == grammar.build_greeting(mechanism, major=major, minor=minor, as_server=as_server)
    theirs = grammar.build_greeting(
        mechanism, major=major, minor=minor, as_server=as_server, padding=padding
    )
    assert Greeting.parse(theirs) == Greeting(major, minor, mechanism, as_server, padding)


# --------------------------------------------------------------------------- whole streams


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from([SocketType.DEALER, SocketType.PUB, SocketType.REQ]),
    st.lists(st.lists(bodies, min_size=1, max_size=3), max_size=5),
    st.binary(max_size=8),
)
def test_our_whole_output_parses_with_the_grammar(
    ours: SocketType, messages: list[list[bytes]], routing_id: bytes
) -> None:
    routing_id = routing_id.lstrip(b"\x00")
    peer = {SocketType.DEALER: b"ROUTER", SocketType.PUB: b"SUB", SocketType.REQ: b"REP"}[ours]
    conn = Connection(ours, routing_id=routing_id, metadata={"X-Test": b"1"})
    conn.receive_data(
        grammar.build_greeting()
        + grammar.build_command(b"READY", props_fields([("Socket-Type", peer)]))
    )
    assert isinstance(conn.handshake, HandshakeComplete)
    for m in messages:
        conn.send_message(m)
    conn.send_ping(7, b"ctx")
    stream = grammar.STREAM.parse(conn.bytes_to_send())
    assert (stream.greeting.major, stream.greeting.minor) == (3, 1)
    assert stream.greeting.mechanism == b"NULL"
    assert stream.greeting.as_server is False
    ready, *data, ping = stream.frames
    readyc = grammar.parse_command(ready.body)
    assert readyc.name == b"READY"
    props = [(p.name, p.value) for p in readyc.data.properties]
    assert props[0] == (b"Socket-Type", ours.name.encode())
    assert props[-1] == (b"X-Test", b"1")
    assert (b"Identity", routing_id) in props or ours is SocketType.PUB
    assert [f.body for f in data] == [b for m in messages for b in m]
    assert all(f.flags.reserved == 0 and not f.flags.command for f in data)
    assert grammar.parse_command(ping.body).data == {"ttl": 7, "context": b"ctx"}


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=40), st.booleans())
def test_legacy_subscription_frames_match_grammar(topic: bytes, subscribe: bool) -> None:
    conn = Connection(SocketType.SUB)
    conn.receive_data(
        grammar.build_greeting(minor=0)
        + grammar.build_command(b"READY", props_fields([("Socket-Type", b"PUB")]))
    )
    conn.bytes_to_send()
    if subscribe:
        conn.send_subscribe(topic)
    else:
        conn.send_cancel(topic)
    body = grammar.LEGACY_SUBSCRIPTION.build({"subscribe": subscribe, "topic": topic})
    assert conn.bytes_to_send() == grammar.build_frame(body)


# --------------------------------------------------------------------------- strictness


class TestGrammarIsTheRfc:
    """Where the grammar is stricter than our (libzmq-compatible) decoders."""

    def greeting(self, offset: int, value: int) -> bytes:
        raw = bytearray(grammar.build_greeting())
        raw[offset] = value
        return bytes(raw)

    @pytest.mark.parametrize(
        ("offset", "value"),
        [(0, 0xFE), (9, 0x7E), (9, 0x01), (32, 2), (40, 1), (12, 0x6E)],
        ids=[
            "signature-start",
            "signature-end",
            "signature-end-bit0",
            "as-server",
            "filler",
            "lower-case-mechanism",
        ],
    )
    def test_bad_greetings(self, offset: int, value: int) -> None:
        with pytest.raises(construct.ConstructError):
            grammar.parse_greeting(self.greeting(offset, value))

    def test_empty_mechanism(self) -> None:
        raw = grammar.build_greeting()[:12] + bytes(52)
        with pytest.raises(construct.ConstructError):
            grammar.parse_greeting(raw)

    @pytest.mark.parametrize(
        "body",
        [
            b"\x04PING\x00\x00" + bytes(17),  # context over 16 octets
            b"\x04PONG" + bytes(17),
            b"\x05ERROR\x03abcd",  # a stray octet after the reason
            b"\x05ERROR\x05abc",  # reason shorter than announced
            b"\x05READY\x01",  # a stray octet after the properties
            b"\x04PING\x00",  # TTL cut short
        ],
    )
    def test_bad_command_bodies(self, body: bytes) -> None:
        with pytest.raises(construct.ConstructError):
            grammar.parse_command(body)

    def test_long_only_above_255(self) -> None:
        assert grammar.build_frame(bytes(255))[:2] == b"\x00\xff"
        assert grammar.build_frame(bytes(256))[:9] == b"\x02" + (256).to_bytes(8, "big")

    def test_size_beyond_two_to_the_63(self) -> None:
        with pytest.raises(construct.ConstructError):
            grammar.parse_frame(b"\x02" + (1 << 63).to_bytes(8, "big"))

    def test_stream_must_end_on_a_frame_boundary(self) -> None:
        raw = grammar.build_greeting() + grammar.build_frame(b"abc")
        assert len(grammar.STREAM.parse(raw).frames) == 1
        with pytest.raises(construct.ConstructError):
            grammar.STREAM.parse(raw[:-1])

    def test_legacy_subscription_byte_is_0_or_1(self) -> None:
        with pytest.raises(construct.ConstructError):
            grammar.LEGACY_SUBSCRIPTION.parse(b"\x02topic")


# --------------------------------------------------------------------------- off the hot path


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def test_no_runtime_module_imports_the_grammar() -> None:
    # Read, not imported: every module of the package but the grammar itself.
    root = Path(zmtp.__file__).parent
    offenders = {}
    for path in root.rglob("*.py"):
        if path.name == "grammar.py" and path.parent == root / "tools":
            continue
        rel = path.relative_to(root.parent).with_suffix("")
        package = ".".join(rel.parts[:-1])  # for __init__.py too: its own package
        bad = {
            m
            for m in imported_modules(path, package)
            if m == "zmtp.tools.grammar" or m.split(".")[0] == "construct"
        }
        if bad:
            offenders[str(rel)] = sorted(bad)
    assert offenders == {}


def test_importing_the_core_does_not_import_construct() -> None:
    out = run_python(
        """
        import sys
        import zmtp, zmtp.protocol.connection, zmtp.protocol.framing
        print(sorted(m for m in ("construct", "zmtp.tools.grammar") if m in sys.modules))
        """
    )
    assert out == "[]"
