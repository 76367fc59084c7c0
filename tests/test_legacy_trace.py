"""The trace decoder on ZMTP 2.0 and 1.0 conversations: which version was detected and
why, the socket-type octet, the identity frame and the frames, with every byte
accounted for, and the libzmq 4 side's layout taken from its peer."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.tools import grammar
from zmtp.tools.format import HumanFormatter, JsonFormatter
from zmtp.tools.trace import (
    ConversationTracer,
    DecodeError,
    End,
    Identity,
    LegacyGreeting,
    Message,
    StreamTracer,
)

v1 = grammar.build_v1_frame
v2 = grammar.build_v2_frame


def sig(routing_id: bytes = b"") -> bytes:
    return b"\xff" + (len(routing_id) + 1).to_bytes(8, "big") + b"\x7f"


def records(direction: str, events: list[Any]) -> list[Any]:
    return [e.record for e in events if e.direction == direction]


def bodies(recs: list[Any]) -> list[list[bytes]]:
    return [[f.preview for f in r.frames] for r in recs if isinstance(r, Message)]


# A JeroMQ DEALER "ID" (2.0) connected to a libzmq 4 ROUTER "SRV", as on the wire.
C2S_20 = sig(b"ID") + b"\x01\x05" + v2(b"ID") + v2(b"hi", more=True) + v2(b"x" * 256)
S2C_20 = sig(b"SRV") + b"\x03\x06" + v2(b"SRV") + v2(b"back")


def test_zmtp20_conversation_fed_as_it_flowed() -> None:
    conv = ConversationTracer(1)
    events: list[Any] = []
    # libzmq's staging: signatures, then its 03, then the 2.0 side's revision...
    for direction, lo, hi in [
        ("c2s", 0, 10),
        ("s2c", 0, 10),
        ("s2c", 10, 11),
        ("c2s", 10, None),
        ("s2c", 11, None),
    ]:
        data = (C2S_20 if direction == "c2s" else S2C_20)[lo:hi]
        events += conv.feed(direction, data)
    events += conv.close("c2s") + conv.close("s2c")
    c2s, s2c = records("c2s", events), records("s2c", events)
    assert c2s[0] == LegacyGreeting(
        (2, 0), 1, 5, (3).to_bytes(8, "big"), "byte 10 (revision) is 0x01", 0, 12
    )
    assert c2s[0].socket_type_name == "DEALER"
    assert isinstance(c2s[1], Identity) and c2s[1].frame.preview == b"ID"
    assert bodies(c2s) == [[b"hi", b"x" * 32]]
    assert c2s[-1] == End(len(C2S_20), 0)
    # The libzmq side announced 03, then a socket type: read through its peer.
    assert s2c[0].version == (2, 0) and s2c[0].revision == 3 and s2c[0].socket_type == 6
    assert "peer announced revision 1" in s2c[0].detected_by
    assert s2c[1].frame.preview == b"SRV"
    assert bodies(s2c) == [[b"back"]]
    assert s2c[-1] == End(len(S2C_20), 0)
    text = "\n".join(line for e in events for line in HumanFormatter().format(e))
    assert "ZMTP 2.0 (revision byte 0x01), socket type 5 DEALER, padding = 3" in text
    assert "identity: 2 B, flags 00  49 44  |ID|" in text
    json_events = [JsonFormatter().to_dict(e)["event"] for e in events]
    assert json_events.count("legacy_greeting") == 2 and json_events.count("identity") == 2


def test_zmtp10_conversation_both_sides() -> None:
    c2s = v1(b"ID") + v1(b"a", more=True) + v1(b"b" * 254)
    s2c = sig(b"SRV") + b"SRV" + v1(b"r")
    conv = ConversationTracer(2)
    events = conv.feed("c2s", c2s[:3]) + conv.feed("s2c", s2c) + conv.feed("c2s", c2s[3:])
    events += conv.close("c2s") + conv.close("s2c")
    c, s = records("c2s", events), records("s2c", events)
    assert c[0].version == (1, 0) and c[0].detected_by == "byte 0 is 0x03, not 0xff"
    assert c[1].frame.preview == b"ID"
    assert bodies(c) == [[b"a", b"b" * 32]]
    assert c[-1] == End(len(c2s), 0)
    # libzmq's signature is the 10-byte header of its 1.0 identity frame (flags 7F).
    assert "peer is ZMTP 1.0" in s[0].detected_by
    assert s[1].frame.preview == b"SRV" and s[1].frame.flags == 0x7F
    assert s[1].wire_size == 13
    assert bodies(s) == [[b"r"]]
    assert s[-1] == End(len(s2c), 0)


def test_lone_legacy_stream() -> None:
    raw = sig() + b"\x00\x02" + v1(b"") + v1(b"m")
    out = StreamTracer().feed(raw) + StreamTracer().close()
    assert out[0].version == (1, 0) and out[0].socket_type == 2


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_garbage_never_raises_and_every_byte_is_counted(data: bytes, cuts: list[int]) -> None:
    tracer = StreamTracer()
    out = []
    prev = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        out += tracer.feed(data[prev:cut])
        prev = max(prev, cut)
    out += tracer.close()
    end = out[-1]
    assert isinstance(end, End) and end.offset == len(data)
    covered = sum(r.wire_size for r in out if not isinstance(r, DecodeError | End))
    assert covered + end.undecoded == len(data)
