"""The ZMTP 1.0 codec (zmtp.protocol.legacy) and 2.0 frames, against golden bytes and
the construct grammar (RFC 13 / RFC 15 forms in zmtp.tools.grammar) as the oracle.

The golden vectors are the ones libzmq 4.3.5 sends and accepts
(interop/test_legacy_wire_interop.py checks them on the wire).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.protocol.errors import MessageTooLarge, ProtocolError, RemoteProtocolError
from zmtp.protocol.framing import BIG_BODY, FrameDecoder, OutputBuffer
from zmtp.protocol.legacy import (
    V1FrameDecoder,
    V1OutputBuffer,
    encode_v1_frame,
    v1_header,
    v2_identity,
)
from zmtp.tools import grammar

# (body, more, wire bytes): the one/eight-octet boundary of each version.
V1_GOLDEN = [
    (b"", False, b"\x01\x00"),
    (b"hi", True, b"\x03\x01hi"),
    (b"a" * 253, False, b"\xfe\x00" + b"a" * 253),
    (b"b" * 254, False, b"\xff" + (255).to_bytes(8, "big") + b"\x00" + b"b" * 254),
    (b"c" * 254, True, b"\xff" + (255).to_bytes(8, "big") + b"\x01" + b"c" * 254),
]
V2_GOLDEN = [
    (b"", False, b"\x00\x00"),
    (b"d" * 255, True, b"\x01\xff" + b"d" * 255),
    (b"e" * 256, False, b"\x02" + (256).to_bytes(8, "big") + b"e" * 256),
]


def encode_v1(messages: list[list[bytes]]) -> bytes:
    out = V1OutputBuffer()
    out.write_messages(messages)
    return b"".join(bytes(c) for c in out.chunks())


@pytest.mark.parametrize(("body", "more", "wire"), V1_GOLDEN)
def test_v1_golden_both_directions(body: bytes, more: bool, wire: bytes) -> None:
    assert encode_v1_frame(body, more) == wire
    assert grammar.build_v1_frame(body, more=more) == wire
    assert v1_header(len(body), more) + body == wire
    assert V1FrameDecoder().decode(wire) == [(int(more), body)]
    [parsed] = grammar.parse_v1_frames(wire)
    assert (parsed.body, parsed.flags.more) == (body, more)


@pytest.mark.parametrize(("body", "more", "wire"), V2_GOLDEN)
def test_v2_golden_both_directions(body: bytes, more: bool, wire: bytes) -> None:
    out = OutputBuffer()
    out.write_message([body, b""] if more else [body])
    encoded = b"".join(bytes(c) for c in out.chunks())
    assert encoded.startswith(wire)
    assert grammar.build_v2_frame(body, more=more) == wire
    assert FrameDecoder().decode(wire) == [(int(more), body)]
    [parsed] = grammar.parse_v2_frames(wire)
    assert (parsed.body, parsed.flags.more) == (body, more)


def test_v2_identity_is_a_final_short_frame() -> None:
    assert v2_identity(b"ID") == b"\x00\x02ID" == grammar.build_v2_frame(b"ID")


def test_grammar_rejects_what_the_rfcs_forbid() -> None:
    with pytest.raises(Exception):  # noqa: B017 - construct's own error types
        grammar.parse_v1_frames(b"\x00\x00")  # length 0
    with pytest.raises(Exception):  # noqa: B017
        grammar.parse_v2_frames(b"\x04\x00")  # RFC 15: bit 2 MUST be zero


def test_v1_length_zero_is_refused_after_the_good_frames() -> None:
    decoder = V1FrameDecoder()
    with pytest.raises(RemoteProtocolError, match="length 0") as info:
        decoder.decode(b"\x02\x00a\x00")
    assert info.value.frames_before == [(0, b"a")]
    with pytest.raises(RemoteProtocolError, match="length 0"):
        V1FrameDecoder().decode(b"\xff" + bytes(8) + b"\x00")


def test_v1_max_frame_size_from_the_header() -> None:
    with pytest.raises(MessageTooLarge):
        V1FrameDecoder(10).decode(b"\x0c")  # incomplete, but its length is known
    with pytest.raises(MessageTooLarge):
        V1FrameDecoder(10).decode(b"\xff" + (1 << 40).to_bytes(8, "big"))
    assert V1FrameDecoder(10).decode(b"\x0b\x00" + bytes(10)) == [(0, bytes(10))]


def test_v1_reserved_flag_bits_are_ignored_unless_raw() -> None:
    assert V1FrameDecoder().decode(b"\x02\x7fz") == [(1, b"z")]
    assert V1FrameDecoder(raw_flags=True).decode(b"\x02\x7ez") == [(0x7E, b"z")]


def test_v1_encoder_refuses_bad_frames_without_queueing_any() -> None:
    out = V1OutputBuffer()
    with pytest.raises(TypeError):
        out.write_message([b"ok", "text"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one frame"):
        out.write_message([])
    with pytest.raises(ValueError, match="no command"):
        out.write_message([b"x"], flags=4)
    assert not out


messages = st.lists(
    st.lists(
        st.one_of(st.binary(max_size=300), st.sampled_from([b"m" * 253, b"n" * 254])),
        min_size=1,
        max_size=4,
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(messages, st.lists(st.integers(0, 2000), max_size=12))
def test_v1_round_trip_in_any_split(msgs: list[list[bytes]], cuts: list[int]) -> None:
    wire = encode_v1(msgs)
    # The oracle agrees frame by frame.
    expected = b"".join(
        grammar.build_v1_frame(f, more=i < len(m) - 1) for m in msgs for i, f in enumerate(m)
    )
    assert wire == expected
    decoder = V1FrameDecoder()
    got: list[list[bytes]] = []
    partial: list[bytes] = []
    prev = 0
    for cut in [*sorted(c % (len(wire) + 1) for c in cuts), len(wire)]:
        items, partial, commands = decoder.decode_messages(wire[prev:cut], partial)
        assert not commands
        got += items  # type: ignore[arg-type]
        prev = cut
    assert got == msgs
    assert decoder.at_frame_boundary and not partial


@settings(max_examples=30, deadline=None)
@given(st.integers(BIG_BODY, 3 * BIG_BODY), st.integers(1, 5000))
def test_v1_large_bodies_in_small_reads(size: int, step: int) -> None:
    body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    wire = encode_v1([[body, b"tail"]])
    decoder = V1FrameDecoder()
    frames = []
    for i in range(0, len(wire), step):
        frames += decoder.decode(wire[i : i + step])
        assert decoder.body_buffer() is None
    assert frames == [(1, body), (0, b"tail")]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(1, 64))
def test_v1_garbage_only_raises_protocol_errors(data: bytes, step: int) -> None:
    decoder = V1FrameDecoder(max_frame_size=1000)
    try:
        for i in range(0, len(data), step):
            for _flags, body in decoder.decode(data[i : i + step]):
                assert len(body) <= 1000
    except ProtocolError:
        pass
