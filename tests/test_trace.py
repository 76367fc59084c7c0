"""The wire trace decoder (zmtp.tools.trace) and its renderers (zmtp.tools.format).

Golden vectors are the libzmq 4.3.5 bytes recorded in specs/libzmq-behaviour.md (the
[P] marks: seen on the wire with a raw socket); streams built with the core encoders
check that every record matches what was encoded, whatever the chunking; hypothesis
throws garbage and arbitrary splits at the tracer, which must never raise and must
account for every byte.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zmtp.protocol.commands import (
    encode_cancel,
    encode_command,
    encode_error,
    encode_ping,
    encode_pong,
    encode_ready,
    encode_subscribe,
)
from zmtp.protocol.framing import FLAG_COMMAND, FLAG_LONG, FLAG_MORE, encode_frame
from zmtp.protocol.greeting import build_greeting
from zmtp.protocol.metadata import encode_properties
from zmtp.tools.format import HumanFormatter, JsonFormatter, use_color
from zmtp.tools.trace import (
    Command,
    ConversationTracer,
    DecodeError,
    End,
    Frame,
    Greeting,
    Identity,
    LegacyGreeting,
    Message,
    Notice,
    Opened,
    Record,
    StreamTracer,
    TraceEvent,
)

from ._helpers import h, libzmq_greeting, message_bytes

MORE, LONG, COMMAND = FLAG_MORE, FLAG_LONG, FLAG_COMMAND


def trace(data: bytes, *, splits: list[int] | None = None, preview: int = 32) -> list[Record]:
    """Feed ``data`` (cut at ``splits``) to a fresh tracer, then close it."""
    tracer = StreamTracer(preview=preview)
    out: list[Record] = []
    cuts = [0, *sorted(splits or []), len(data)]
    for a, b in itertools.pairwise(cuts):
        out += tracer.feed(data[a:b])
    return out + tracer.close()


def wire_total(records: list[Record]) -> int:
    """Bytes covered by records plus what End reports as undecoded."""
    total = 0
    for r in records:
        if isinstance(r, Greeting | LegacyGreeting | Identity | Command | Message):
            total += r.wire_size
        elif isinstance(r, End):
            total += r.undecoded
    return total


def strip_end(records: list[Record]) -> list[Record]:
    return [r for r in records if not isinstance(r, End)]


def split_invariant(records: list[Record], data: bytes) -> list[Record]:
    """Records with DecodeError.data checked and blanked.

    The error preview holds what had arrived when the error was found, which depends on
    the chunking; it is always a prefix of the stream from the error's offset.
    """
    out: list[Record] = []
    for r in records:
        if isinstance(r, DecodeError):
            assert data[r.offset :].startswith(r.data)
            out.append(DecodeError(r.offset, r.reason))
        else:
            out.append(r)
    return out


# ---------------------------------------------------------------------------------------
# Greeting


def test_libzmq_greeting_and_staged_arrival() -> None:
    data = libzmq_greeting(routing_id_len=3)  # [P] ZMQ_IDENTITY=b"abc": padding 4
    expected = Greeting(
        padding=bytes(7) + b"\x04", major=3, minor=1, mechanism="NULL", as_server=False
    )
    # libzmq's three stages: 10 bytes, 1 byte, 53 bytes (specs/libzmq-behaviour.md §1.2).
    assert trace(data, splits=[10, 11]) == [expected, End(64)]
    assert trace(data) == [expected, End(64)]
    assert expected.padding_value == 4


def test_greeting_fields_as_sent() -> None:
    g = bytearray(build_greeting(b"PLAIN", as_server=True))
    g[11] = 0  # ZMTP 3.0
    g[40] = 7  # non-zero filler
    (rec, end) = trace(bytes(g))
    assert rec == Greeting(bytes(8), 3, 0, "PLAIN", True, filler_zero=False)
    assert end == End(64, 0)


def test_partial_greeting_is_undecoded_at_eof() -> None:
    assert trace(libzmq_greeting()[:20]) == [End(20, undecoded=20)]


def test_version_byte_2_is_a_decode_error() -> None:
    # 0 and 1 are ZMTP 1.0 and 2.0 (tests/test_legacy_trace.py); 2 was never a version.
    data = h("ff 00 00 00 00 00 00 00 01 7f 02 05")
    for splits in ([], list(range(1, len(data)))):
        err, end = trace(data + b"more", splits=splits)
        assert isinstance(err, DecodeError)
        assert err.offset == 10
        assert "version byte 2" in err.reason
        assert end == End(len(data) + 4, undecoded=len(data) + 4)


# ---------------------------------------------------------------------------------------
# Commands


def null_stream(*after: bytes, routing_id_len: int = 0) -> bytes:
    return libzmq_greeting(routing_id_len) + b"".join(after)


def commands_of(data: bytes, preview: int = 32) -> list[Command]:
    return [r for r in trace(data, preview=preview) if isinstance(r, Command)]


def test_libzmq_router_ready() -> None:
    # [P] exact READY bytes from a bound ROUTER (specs/libzmq-behaviour.md §2.4).
    ready = h("04 29 05 'READY' 0b 'Socket-Type' 00000006 'ROUTER' 08 'Identity' 00000000")
    (cmd,) = commands_of(null_stream(ready))
    assert cmd == Command(
        offset=64,
        flags=COMMAND,
        size=0x29,
        name="READY",
        properties=(("Socket-Type", b"ROUTER"), ("Identity", b"")),
    )
    assert cmd.wire_size == len(ready)


def test_libzmq_ping_pong_subscribe_cancel() -> None:
    ping = h("04 07 04 'PING' 00 0f")  # [P] HEARTBEAT_TTL=1500
    sub = h("04 0d 09 'SUBSCRIBE' 'pre'")  # [P] SUB setsockopt(SUBSCRIBE, "pre")
    data = null_stream(
        encode_ready([("Socket-Type", b"SUB")]),
        ping,
        encode_ping(3, b"ctx"),
        encode_pong(b"ctx"),
        sub,
        encode_cancel(b"pre"),
        encode_subscribe(b""),
    )
    cmds = commands_of(data)
    assert [(c.name, c.ttl, c.context, c.topic) for c in cmds[1:]] == [
        ("PING", 15, b"", None),
        ("PING", 3, b"ctx", None),
        ("PONG", None, b"ctx", None),
        ("SUBSCRIBE", None, None, b"pre"),
        ("CANCEL", None, None, b"pre"),
        ("SUBSCRIBE", None, None, b""),
    ]
    assert all(c.problem is None for c in cmds)
    assert cmds[1].wire_size == len(ping)


def test_error_reason_and_libzmq_plain_error_bug() -> None:
    # [P] libzmq's PLAIN ERROR goes out as 5E "RROR" (specs/libzmq-behaviour.md §4.1).
    bug = h("04 09 5e 'RROR' 03 '400'")
    cmds = commands_of(null_stream(encode_error(b"Invalid socket type"), bug))
    assert cmds[0].name == "ERROR"
    assert cmds[0].reason == b"Invalid socket type"
    assert cmds[0].problem is None
    assert cmds[1].name == "ERROR"
    assert cmds[1].reason == b"400"
    assert cmds[1].problem is not None
    assert "RROR" in cmds[1].problem


def test_malformed_commands_keep_decoding() -> None:
    data = null_stream(
        encode_frame(b"", COMMAND),  # empty command
        encode_frame(b"\x09READY", COMMAND),  # name longer than the body
        encode_command(b"READY", b"\x00\x00"),  # bad metadata
        encode_command(b"PING"),  # no TTL
        encode_command(b"PING", b"\x00\x01" + b"c" * 17),  # context too long
        encode_command(b"ERROR", b"\x09abc"),  # reason length overshoots
        encode_frame(b"\x04PING\x00\x00", COMMAND | MORE | 0x08),
        encode_ready([]),
        message_bytes(b"still", b"decoded"),
    )
    records = trace(data)
    cmds = [r for r in records if isinstance(r, Command)]
    problems = [c.problem for c in cmds]
    assert all(problems[:7]), problems
    assert problems[7] is None
    assert cmds[0].name == "?"
    assert cmds[2].name == "READY"
    assert cmds[2].properties is None
    assert cmds[3].ttl is None
    assert "TTL" in (problems[3] or "")
    assert cmds[5].reason == b"abc"
    assert "MORE" in (problems[6] or "")
    assert "reserved" in (problems[6] or "")
    msg = records[-2]
    assert isinstance(msg, Message)
    assert [f.preview for f in msg.frames] == [b"still", b"decoded"]
    assert wire_total(records) == len(data)


def test_unknown_command_is_named_and_previewed() -> None:
    (cmd,) = commands_of(null_stream(encode_command(b"HELLO", b"x" * 100)), preview=4)
    assert cmd.name == "HELLO"
    assert cmd.data == b"xxxx"
    assert cmd.size == 106


def test_plain_handshake() -> None:
    client = libzmq_greeting(mechanism=b"PLAIN") + b"".join(
        [
            encode_command(b"HELLO", b"\x05admin\x06secret"),
            encode_command(b"INITIATE", encode_properties([("Socket-Type", b"DEALER")])),
            message_bytes(b"data"),
        ]
    )
    server = libzmq_greeting(mechanism=b"PLAIN") + b"".join(
        [encode_command(b"WELCOME"), encode_ready([("Socket-Type", b"ROUTER")])]
    )
    hello, initiate = commands_of(client)
    assert (hello.username, hello.password_size, hello.problem) == (b"admin", 6, None)
    assert initiate.properties == (("Socket-Type", b"DEALER"),)
    msg = trace(client)[-2]
    assert isinstance(msg, Message)
    assert msg.problem is None  # after INITIATE the client's handshake is over
    welcome, ready = commands_of(server)
    assert (welcome.name, welcome.problem) == ("WELCOME", None)
    assert ready.properties == (("Socket-Type", b"ROUTER"),)
    bad = commands_of(
        libzmq_greeting(mechanism=b"PLAIN")
        + encode_command(b"HELLO", b"\x05adm")
        + encode_command(b"WELCOME", b"x")
    )
    assert bad[0].problem is not None
    assert bad[1].problem is not None


def test_curve_handshake_commands_are_named_and_sized() -> None:
    # Short nonces 1, 2, 3 as libzmq's client counts them (specs/libzmq-behaviour.md §4.2).
    nonce = [n.to_bytes(8, "big") for n in range(4)]
    hello = encode_command(b"HELLO", b"\x01\x00" + bytes(72) + bytes(32) + nonce[1] + bytes(80))
    assert len(hello) == 2 + 200
    data = libzmq_greeting(mechanism=b"CURVE") + b"".join(
        [
            hello,
            encode_command(b"INITIATE", bytes(96) + nonce[2] + bytes(257 - 9 - 104)),
            encode_command(b"MESSAGE", nonce[3] + bytes(32)),
            encode_error(b"no"),
        ]
    )
    hello_r, initiate, msg, error = commands_of(data)
    assert (hello_r.name, hello_r.size, hello_r.version) == ("HELLO", 200, (1, 0))
    assert hello_r.encrypted
    assert hello_r.problem is None
    assert (hello_r.nonce, hello_r.box_size, hello_r.padding_ok) == (1, 80, True)
    assert (initiate.name, initiate.size, initiate.encrypted) == ("INITIATE", 257, True)
    assert (initiate.cookie_size, initiate.nonce, initiate.box_size) == (96, 2, 144)
    assert initiate.properties is None
    assert (msg.name, msg.encrypted, msg.nonce, msg.box_size) == ("MESSAGE", True, 3, 32)
    assert error.reason == b"no"


# ---------------------------------------------------------------------------------------
# Messages


def test_messages_frames_flags_and_previews() -> None:
    big = bytes(range(256)) * 2  # a LONG frame
    data = null_stream(
        encode_ready([("Socket-Type", b"REQ"), ("Identity", b"")]),
        message_bytes(b"", b"hello"),
        message_bytes(big),
    )
    records = trace(data, preview=4)
    m1, m2 = (r for r in records if isinstance(r, Message))
    ready_end = 64 + len(encode_ready([("Socket-Type", b"REQ"), ("Identity", b"")]))
    assert m1 == Message(
        (Frame(ready_end, MORE, 0, b""), Frame(ready_end + 2, 0, 5, b"hell")),
    )
    assert m1.frames[1].truncated
    assert (m1.size, m1.wire_size) == (5, 9)
    assert m2.frames == (Frame(ready_end + 9, LONG, 512, b"\x00\x01\x02\x03"),)
    assert m2.wire_size == 9 + 512
    assert records[-1] == End(len(data), 0)


def test_command_between_frames_of_a_message() -> None:
    # libzmq answers a PING that arrives between the frames of a multipart message
    # (specs/libzmq-behaviour.md §2.1); the trace shows the PING when it arrives and the
    # message when its last frame does.
    data = null_stream(
        encode_ready([]),
        encode_frame(b"a", MORE),
        encode_ping(1),
        encode_frame(b"b"),
    )
    records = strip_end(trace(data))
    assert [type(r).__name__ for r in records] == ["Greeting", "Command", "Command", "Message"]
    msg = records[-1]
    assert isinstance(msg, Message)
    assert [f.preview for f in msg.frames] == [b"a", b"b"]
    assert wire_total(trace(data)) == len(data)


def test_data_before_handshake_is_flagged() -> None:
    records = trace(null_stream(message_bytes(b"early"), encode_ready([]), message_bytes(b"late")))
    early, late = (r for r in records if isinstance(r, Message))
    assert early.problem is not None
    assert "handshake" in early.problem
    assert late.problem is None


def test_incomplete_message_at_eof_is_undecoded() -> None:
    data = null_stream(encode_ready([]), encode_frame(b"part", MORE), b"\x00\x05ab")
    end = trace(data)[-1]
    assert end == End(len(data), undecoded=6 + 4)


def test_bad_frame_header_after_good_frames_in_one_chunk() -> None:
    bad = b"\x02" + b"\xff" * 8  # LONG size with the top bit set: beyond 2^63-1
    prefix = null_stream(encode_ready([]), message_bytes(b"x"), message_bytes(b"y", b"z"))
    data = prefix + bad + b"trailing garbage"
    for splits in ([], [64], [len(prefix) - 1], [len(prefix) + 3]):
        records = trace(data, splits=splits)
        msgs = [r for r in records if isinstance(r, Message)]
        assert len(msgs) == 2, splits
        err = records[-2]
        assert isinstance(err, DecodeError)
        assert err.offset == len(prefix)
        assert err.data == (bad + b"trailing garbage")[:32]
        assert records[-1] == End(len(data), undecoded=len(bad) + 16)


def test_long_frame_then_bad_header() -> None:
    # A frame longer than the tracer's own copy (it stops decoder calls at the frame's
    # end instead), followed by a bad header in the same chunk.
    body = b"\xab" * (300 * 1024)
    prefix = null_stream(encode_ready([]), message_bytes(body))
    data = prefix + b"\x02" + b"\xff" * 8
    for splits in ([], [100, 200_000], list(range(64, len(data), 7000))):
        records = trace(data, splits=splits, preview=3)
        msg = records[2]
        assert isinstance(msg, Message)
        assert msg.frames == (Frame(64 + len(encode_ready([])), LONG, len(body), b"\xab" * 3),)
        err = records[3]
        assert isinstance(err, DecodeError)
        assert err.offset == len(prefix)
        assert wire_total(records) == len(data)


def test_feed_after_close_is_a_caller_bug() -> None:
    tracer = StreamTracer()
    tracer.close()
    assert tracer.close() == []
    with pytest.raises(ValueError, match="close"):
        tracer.feed(b"x")
    with pytest.raises(ValueError, match="preview"):
        StreamTracer(preview=-1)


def test_interrupt_stops_decoding() -> None:
    tracer = StreamTracer()
    tracer.feed(libzmq_greeting())
    (err,) = tracer.interrupt("capture lost bytes")
    assert err == DecodeError(64, "capture lost bytes")
    assert tracer.feed(encode_ready([])) == []
    assert tracer.interrupt("again") == []
    assert tracer.close() == [End(64 + len(encode_ready([])), undecoded=len(encode_ready([])))]


def test_conversation_reports_mechanism_mismatch() -> None:
    conv = ConversationTracer(7)
    (g,) = conv.feed("c2s", libzmq_greeting(mechanism=b"PLAIN"), 1.0)
    assert g == TraceEvent(7, "c2s", trace(libzmq_greeting(mechanism=b"PLAIN"))[0], 1.0)
    events = conv.feed("s2c", libzmq_greeting(), 2.0)
    assert [type(e.record) for e in events] == [Greeting, Notice]
    notice = events[1].record
    assert isinstance(notice, Notice)
    assert "PLAIN" in notice.text
    assert conv.close("c2s") == [TraceEvent(7, "c2s", End(64), None)]


# ---------------------------------------------------------------------------------------
# Hypothesis: valid streams in any chunking, garbage, and garbage after valid bytes


@st.composite
def _items(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, object]]]:
    """A random valid traffic phase and what each part should decode to."""
    out = bytearray()
    expected: list[tuple[str, object]] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["msg", "ping", "sub", "cancel", "pong"]))
        if kind == "msg":
            frames = draw(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
            out += message_bytes(*frames)
            expected.append(("msg", [(len(f), f[:8]) for f in frames]))
        elif kind == "ping":
            ttl, ctx = draw(st.integers(0, 0xFFFF)), draw(st.binary(max_size=16))
            out += encode_ping(ttl, ctx)
            expected.append(("PING", (ttl, ctx)))
        else:
            topic = draw(st.binary(max_size=16 if kind == "pong" else 40))
            encoders: dict[str, Callable[[bytes], bytes]] = {
                "sub": encode_subscribe,
                "cancel": encode_cancel,
                "pong": encode_pong,
            }
            out += encoders[kind](topic)
            name = {"sub": "SUBSCRIBE", "cancel": "CANCEL", "pong": "PONG"}[kind]
            expected.append((name, topic))
    return bytes(out), expected


def _summary(records: list[Record]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for r in records:
        if isinstance(r, Message):
            out.append(("msg", [(f.size, f.preview) for f in r.frames]))
        elif isinstance(r, Command) and r.name == "PING":
            out.append(("PING", (r.ttl, r.context)))
        elif isinstance(r, Command) and r.name in ("SUBSCRIBE", "CANCEL"):
            out.append((r.name, r.topic))
        elif isinstance(r, Command) and r.name == "PONG":
            out.append(("PONG", r.context))
    return out


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(
    traffic=_items(),
    splits=st.lists(st.integers(0, 4000), max_size=8),
)
def test_valid_streams_decode_exactly_in_any_chunking(
    traffic: tuple[bytes, list[tuple[str, object]]], splits: list[int]
) -> None:
    body, expected = traffic
    data = null_stream(encode_ready([("Socket-Type", b"DEALER")]), body)
    records = trace(data, splits=[s for s in splits if s <= len(data)], preview=8)
    assert _summary(records) == expected
    assert not any(isinstance(r, DecodeError) for r in records)
    assert records[-1] == End(len(data), 0)
    assert wire_total(records) == len(data)


@_SETTINGS
@given(data=st.binary(max_size=600), splits=st.lists(st.integers(0, 600), max_size=10))
def test_garbage_never_raises_and_is_split_invariant(data: bytes, splits: list[int]) -> None:
    splits = [s for s in splits if s <= len(data)]
    whole = trace(data)
    assert split_invariant(trace(data, splits=splits), data) == split_invariant(whole, data)
    assert wire_total(whole) == len(data)
    assert sum(isinstance(r, DecodeError) for r in whole) <= 1


@_SETTINGS
@given(
    garbage=st.binary(max_size=300),
    traffic=_items(),
    splits=st.lists(st.integers(0, 3000), max_size=10),
    preview=st.integers(0, 40),
)
def test_garbage_after_a_valid_start(
    garbage: bytes,
    traffic: tuple[bytes, list[tuple[str, object]]],
    splits: list[int],
    preview: int,
) -> None:
    data = null_stream(encode_ready([]), traffic[0], garbage)
    splits = [s for s in splits if s <= len(data)]
    whole = trace(data, preview=preview)
    chunked = trace(data, splits=splits, preview=preview)
    assert split_invariant(chunked, data) == split_invariant(whole, data)
    assert wire_total(whole) == len(data)
    for r in whole:  # previews stay bounded whatever the input
        if isinstance(r, Message):
            assert all(len(f.preview) <= preview for f in r.frames)
        if isinstance(r, DecodeError):
            assert len(r.data) <= preview
    # Rendering never fails either.
    human, js = HumanFormatter(color=True, preview=preview), JsonFormatter(preview=preview)
    for r in whole:
        event = TraceEvent(1, "c2s", r, 0.5)
        assert human.format(event)
        json.loads(js.format(event)[0])


# ---------------------------------------------------------------------------------------
# Renderers


def _events() -> list[TraceEvent]:
    data = null_stream(
        encode_ready([("Socket-Type", b"REQ"), ("Identity", b"")]),
        encode_ping(15),
        encode_subscribe(b"topic"),
        encode_command(b"FOO", b"\x01\x02"),
        message_bytes(b"", b"hello\x00world"),
        b"\x02" + b"\xff" * 8,
    )
    events = [TraceEvent(3, None, Opened("127.0.0.1:1234", "tcp://127.0.0.1:5555"), 0.0)]
    events += [TraceEvent(3, "c2s", r, 1_700_000_000.25) for r in trace(data)]
    events.append(TraceEvent(3, None, Notice("a notice"), None))
    return events


def test_human_format() -> None:
    fmt = HumanFormatter(preview=16)
    lines = [line for e in _events() for line in fmt.format(e)]
    text = "\n".join(lines)
    assert "\x1b[" not in text
    assert all(" #3 " in line for line in lines)
    # Every decoded line carries the direction; every line a time (or dashes).
    assert all(" c>s " in line for line in lines[1:-1])
    assert lines[-1].startswith("--:--:--.------ #3")
    for needle in (
        "connection 127.0.0.1:1234 -> tcp://127.0.0.1:5555",
        "greeting ZMTP 3.1 NULL as-server=0, signature ff 00 00 00 00 00 00 00 01 7f",
        "READY (38 B) Socket-Type='REQ' Identity=''",
        "PING (7 B) ttl 1.5s context ''",
        "SUBSCRIBE (15 B) topic 'topic'",
        "message 2 frames, 11 B (15 B on the wire)",
        "frame 1/2: 0 B, flags 01 MORE",
        "frame 2/2: 11 B, flags 00  68 65 6c 6c 6f 00 77 6f 72 6c 64  |hello.world|",
        "DECODE ERROR at byte",
        "closed after",
        "a notice",
    ):
        assert needle in text, needle
    assert "FOO (6 B) data 01 02 |..|" in text


def test_human_format_colour() -> None:
    fmt = HumanFormatter(color=True)
    lines = [line for e in _events() for line in fmt.format(e)]
    assert all("\x1b[" in line for line in lines)


def test_json_format() -> None:
    fmt = JsonFormatter(preview=4)
    objs = [json.loads(line) for e in _events() for line in fmt.format(e)]
    kinds = [o["event"] for o in objs]
    assert kinds == ["open"] + ["greeting"] + ["command"] * 4 + [
        "message",
        "decode_error",
        "end",
        "notice",
    ]
    ready = objs[2]
    assert ready["name"] == "READY"
    assert ready["properties"] == [
        {"name": "Socket-Type", "value": {"hex": "524551", "text": "REQ"}},
        {"name": "Identity", "value": {"hex": "", "text": ""}},
    ]
    assert objs[3]["ttl"] == 15
    assert objs[4]["topic"] == {"hex": "746f706963", "text": "topic"}
    assert objs[5]["data"] == {"hex": "0102", "text": ".."}
    msg = objs[6]
    assert msg["frames"][1] == {
        "offset": msg["frames"][1]["offset"],
        "size": 11,
        "flags": 0,
        "more": False,
        "hex": "68656c6c",
        "text": "hell",
        "truncated": True,
    }
    assert objs[0]["time"] == 0.0
    assert objs[1]["dir"] == "c2s"
    assert objs[1]["conn"] == 3
    assert objs[-1]["time"] is None


def test_use_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(Tty())
    assert not use_color(io.StringIO())
    assert use_color(io.StringIO(), "always")
    assert not use_color(Tty(), "never")
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())
