"""Frame encoding and decoding (zmtp.protocol.framing), RFC 23/37 "Framing".

Golden vectors come from libzmq 4.3.5 traffic ([P] in specs/libzmq-behaviour.md,
re-probed for this suite) and are checked in both directions: the hand-written decoder
and the construct grammar parse them to the same frames, and the encoder produces
exactly those bytes.
"""

from __future__ import annotations

import array
import collections

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from zmtp.protocol import framing as framing_mod
from zmtp.protocol.errors import MessageTooLarge, ProtocolError, RemoteProtocolError
from zmtp.protocol.framing import (
    BIG_BODY,
    FLAG_COMMAND,
    FLAG_LONG,
    FLAG_MORE,
    LARGE_PAYLOAD,
    MAX_FRAME_SIZE,
    FrameDecoder,
    OutputBuffer,
    encode_frame,
    encode_message,
)
from zmtp.tools import grammar

from ._helpers import h, split_at

MORE, LONG, COMMAND = FLAG_MORE, FLAG_LONG, FLAG_COMMAND


def grammar_flags(frame: object) -> int:
    """The flags octet of a frame parsed by the construct grammar."""
    f = frame.flags  # type: ignore[attr-defined]
    return int(f.more) | int(f.long) << 1 | int(f.command) << 2 | f.reserved << 3


# (wire bytes, [(flags as reported by FrameDecoder, body)]).  Every entry is canonical:
# re-encoding the frames gives the same bytes.
CANONICAL = [
    pytest.param(h("00 00"), [(0, b"")], id="empty-frame"),
    # [P] a libzmq REQ's request: empty delimiter with MORE, then the body.
    pytest.param(h("01 00 00 04 'req1'"), [(MORE, b""), (0, b"req1")], id="req-envelope"),
    # [P] what a libzmq SUB sends a ZMTP 3.0 peer: subscribe / cancel as data frames.
    pytest.param(h("00 04 01 'pre'"), [(0, b"\x01pre")], id="legacy-subscribe"),
    pytest.param(h("00 04 00 'pre'"), [(0, b"\x00pre")], id="legacy-cancel"),
    pytest.param(b"\x00\xff" + b"a" * 255, [(0, b"a" * 255)], id="short-255"),
    pytest.param(h("02 00 00 00 00 00 00 01 00") + b"b" * 256, [(0, b"b" * 256)], id="long-256"),
    pytest.param(
        h("03 00 00 00 00 00 00 01 2c") + b"c" * 300 + h("00 01 'd'"),
        [(MORE, b"c" * 300), (0, b"d")],
        id="long-more-then-short",
    ),
    # [P] libzmq with ZMQ_HEARTBEAT_TTL=1500: PING, TTL 15 deciseconds, no context.
    pytest.param(h("04 07 04 'PING' 00 0f"), [(COMMAND, h("04 'PING' 00 0f"))], id="ping"),
    # [P] a libzmq SUB subscribing to "pre" over ZMTP 3.1, then cancelling.
    pytest.param(
        h("04 0d 09 'SUBSCRIBE' 'pre' 04 0a 06 'CANCEL' 'pre'"),
        [(COMMAND, h("09 'SUBSCRIBE' 'pre'")), (COMMAND, h("06 'CANCEL' 'pre'"))],
        id="subscribe-cancel",
    ),
    # [P] READY from a bound libzmq ROUTER.
    pytest.param(
        h("04 29 05 'READY' 0b 'Socket-Type' 00000006 'ROUTER' 08 'Identity' 00000000"),
        [(COMMAND, h("05 'READY' 0b 'Socket-Type' 00000006 'ROUTER' 08 'Identity' 00000000"))],
        id="router-ready",
    ),
    pytest.param(
        h("06 00 00 00 00 00 00 01 06 05 'HELLO'") + bytes(256),
        [(COMMAND, h("05 'HELLO'") + bytes(256))],
        id="long-command",
    ),
]

# Frames libzmq accepts although no canonical encoder produces them:
# (wire bytes, raw flags octets, [(reported flags, body)], canonical re-encoding).
LENIENT = [
    # [P] libzmq delivered "x" for 08 01 78: reserved bits are ignored.
    pytest.param(h("08 01 78"), [0x08], [(0, b"x")], h("00 01 78"), id="reserved-bit-3"),
    pytest.param(h("f9 01 78"), [0xF9], [(MORE, b"x")], h("01 01 78"), id="all-reserved-bits"),
    # [P] LONG with a size that would fit in one octet.
    pytest.param(
        h("02 00 00 00 00 00 00 00 05 'hello'"),
        [0x02],
        [(0, b"hello")],
        h("00 05 'hello'"),
        id="long-flag-small-size",
    ),
    # [P] a PING with MORE set was still answered by libzmq.
    pytest.param(
        h("05 07 04 'PING' 00 0f"),
        [0x05],
        [(COMMAND | MORE, h("04 'PING' 00 0f"))],
        h("05 07 04 'PING' 00 0f"),
        id="command-with-more",
    ),
]


class TestGoldenVectors:
    @pytest.mark.parametrize(("raw", "frames"), CANONICAL)
    def test_decode(self, raw: bytes, frames: list[tuple[int, bytes]]) -> None:
        dec = FrameDecoder()
        assert dec.decode(raw) == frames
        assert dec.at_frame_boundary
        assert dec.buffered == 0

    @pytest.mark.parametrize(("raw", "frames"), CANONICAL)
    def test_grammar_parses_to_same_frames(
        self, raw: bytes, frames: list[tuple[int, bytes]]
    ) -> None:
        parsed = grammar.parse_frames(raw)
        assert [(grammar_flags(f) & ~LONG, f.body) for f in parsed] == frames

    @pytest.mark.parametrize(("raw", "frames"), CANONICAL)
    def test_encode(self, raw: bytes, frames: list[tuple[int, bytes]]) -> None:
        assert b"".join(encode_frame(body, flags) for flags, body in frames) == raw

    @pytest.mark.parametrize(("raw", "frames"), CANONICAL)
    def test_grammar_builds_same_bytes(self, raw: bytes, frames: list[tuple[int, bytes]]) -> None:
        built = b"".join(
            grammar.build_frame(body, more=bool(f & MORE), command=bool(f & COMMAND))
            for f, body in frames
        )
        assert built == raw

    @pytest.mark.parametrize(("raw", "frames"), CANONICAL)
    def test_decode_one_byte_at_a_time(self, raw: bytes, frames: list[tuple[int, bytes]]) -> None:
        dec = FrameDecoder()
        got = []
        for i in range(len(raw)):
            got += dec.decode(raw[i : i + 1])
        assert got == frames

    @pytest.mark.parametrize(("raw", "raw_flags", "frames", "canonical"), LENIENT)
    def test_lenient_decode(
        self,
        raw: bytes,
        raw_flags: list[int],
        frames: list[tuple[int, bytes]],
        canonical: bytes,
    ) -> None:
        assert FrameDecoder().decode(raw) == frames
        assert [f for f, _ in FrameDecoder(raw_flags=True).decode(raw)] == raw_flags
        # The grammar is as lenient and sees the same octet.
        assert [grammar_flags(f) for f in grammar.parse_frames(raw)] == raw_flags
        # Re-encoding normalises: reserved bits cleared, LONG only when needed.
        assert b"".join(encode_frame(b, f) for f, b in frames) == canonical

    def test_message_encoding_matches_golden(self) -> None:
        out = OutputBuffer()
        assert encode_message(out, [b"", b"req1"]) == 4
        assert b"".join(bytes(c) for c in out.chunks()) == h("01 00 00 04 'req1'")


class TestEncoder:
    def test_more_on_all_but_last(self) -> None:
        out = OutputBuffer()
        encode_message(out, [b"a", b"b", b"c"])
        assert bytes(out.chunks()[0]) == h("01 01 'a' 01 01 'b' 00 01 'c'")

    def test_command_flag_is_applied_to_every_frame(self) -> None:
        out = OutputBuffer()
        encode_message(out, [b"x"], flags=COMMAND)
        assert bytes(out.chunks()[0]) == h("04 01 'x'")

    def test_encode_frame_never_sets_long_for_short_bodies(self) -> None:
        assert encode_frame(b"x", LONG) == h("00 01 'x'")

    @pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
    def test_bytes_like_frames(self, kind: type) -> None:
        out = OutputBuffer()
        encode_message(out, [kind(b"ab"), kind(b"c" * 300)])
        assert b"".join(bytes(c) for c in out.chunks()) == (
            h("01 02 'ab' 02 00 00 00 00 00 00 01 2c") + b"c" * 300
        )

    def test_other_buffer_objects(self) -> None:
        out = OutputBuffer()
        encode_message(out, [array.array("H", [1, 2])])  # type: ignore[list-item]
        assert bytes(out.chunks()[0]) == b"\x00\x04" + array.array("H", [1, 2]).tobytes()

    def test_non_contiguous_memoryview(self) -> None:
        view = memoryview(b"abcdef")[::2]
        assert encode_frame(view) == b"\x00\x03ace"

    def test_multidimensional_memoryview_is_flattened(self) -> None:
        view = memoryview(bytes(range(6))).cast("B", (2, 3))
        out = OutputBuffer()
        encode_message(out, [view])
        assert bytes(out.chunks()[0]) == b"\x00\x06" + bytes(range(6))

    def test_wide_items_count_bytes(self) -> None:
        view = memoryview(bytearray(8)).cast("I")  # 2 items of 4 bytes
        assert encode_frame(view) == b"\x00\x08" + bytes(8)

    def test_large_payload_is_not_copied(self) -> None:
        payload = b"z" * LARGE_PAYLOAD
        out = OutputBuffer()
        encode_message(out, [b"head", payload, b"tail"])
        chunks = out.chunks()
        assert any(c is payload for c in chunks)
        assert b"".join(bytes(c) for c in chunks) == (
            h("01 04 'head' 03") + LARGE_PAYLOAD.to_bytes(8, "big") + payload + h("00 04 'tail'")
        )

    def test_output_buffer_len_bool_and_drain(self) -> None:
        out = OutputBuffer()
        assert not out
        assert len(out) == 0
        out.write(b"abc")
        out.write_large(b"d" * 10)
        out.write(b"e")
        assert out
        assert len(out) == 14
        assert b"".join(bytes(c) for c in out.chunks()) == b"abc" + b"d" * 10 + b"e"
        assert not out
        assert out.chunks() == []

    def test_unshift_puts_pieces_back_in_front_untouched(self) -> None:
        big = bytes(range(256)) * (LARGE_PAYLOAD // 256 + 1)
        out = OutputBuffer()
        encode_message(out, [b"one", big])
        first = out.chunks()
        raw = b"".join(bytes(c) for c in first)
        encode_message(out, [b"two"])  # queued while the write was on
        # The transport took 2 bytes: the rest goes back, the large body as it was.
        tail = [memoryview(first[0])[2:], *first[1:]]
        assert tail[-1] is big
        out.unshift(tail)
        assert len(out) == len(raw) - 2 + 5
        again = out.chunks()
        assert any(c is big for c in again)
        assert b"".join(bytes(c) for c in again) == raw[2:] + h("00 03 'two'")
        # A second partial write of the returned output, then nothing more queued.
        out.unshift([memoryview(again[0])[1:], *again[1:]])
        assert b"".join(bytes(c) for c in out.chunks()) == raw[3:] + h("00 03 'two'")
        assert not out

    def test_unshift_nothing_is_a_no_op(self) -> None:
        out = OutputBuffer()
        out.unshift([])
        assert not out
        assert out.chunks() == []
        out.write(b"x")
        out.unshift([])
        assert out.chunks() == [b"x"]

    def test_str_frame_is_a_type_error(self) -> None:
        with pytest.raises(TypeError, match="str"):
            encode_message(OutputBuffer(), ["text"])  # type: ignore[list-item]

    def test_non_buffer_frame_is_a_type_error(self) -> None:
        with pytest.raises(TypeError, match="int"):
            encode_message(OutputBuffer(), [42])  # type: ignore[list-item]

    def test_empty_message_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="at least one frame"):
            encode_message(OutputBuffer(), [])

    @pytest.mark.parametrize(
        "pending",
        [b"", b"earlier"],
        ids=["empty-buffer", "bytes-pending"],
    )
    @pytest.mark.parametrize(
        "bad_message",
        [
            [b"ok", "str"],
            [b"ok", b"x" * LARGE_PAYLOAD, 42],  # fails after a zero-copy chunk
            [b"x" * LARGE_PAYLOAD, b"y" * LARGE_PAYLOAD, None],
        ],
        ids=["small", "after-large", "after-two-large"],
    )
    def test_failed_message_leaves_nothing_behind(
        self, pending: bytes, bad_message: list[object]
    ) -> None:
        # Regression: the frames before a bad one used to stay queued, so the next
        # message was glued onto them and the peer saw one merged multipart message.
        out = OutputBuffer()
        out.write(pending)
        with pytest.raises(TypeError):
            encode_message(out, bad_message)  # type: ignore[arg-type]
        encode_message(out, [b"next"])
        raw = b"".join(bytes(c) for c in out.chunks())
        assert raw == pending + h("00 04 'next'")

    def test_returns_body_size(self) -> None:
        assert encode_message(OutputBuffer(), [b"ab", b"", b"c" * 300]) == 302


class TestDecoder:
    def test_partial_header_and_body_are_buffered(self) -> None:
        dec = FrameDecoder()
        assert dec.decode(b"\x00") == []
        assert dec.buffered == 1
        assert not dec.at_frame_boundary
        assert dec.decode(b"\x03ab") == []
        assert dec.buffered == 4
        assert dec.decode(b"c\x01") == [(0, b"abc")]
        assert dec.buffered == 1
        assert dec.decode(b"\x00") == [(MORE, b"")]
        assert dec.at_frame_boundary

    def test_partial_long_header(self) -> None:
        dec = FrameDecoder()
        raw = encode_frame(b"q" * 1000)
        assert dec.decode(raw[:5]) == []
        assert dec.decode(raw[5:9]) == []
        assert dec.decode(raw[9:]) == [(0, b"q" * 1000)]

    def test_large_body_in_chunks(self) -> None:
        body = bytes(range(256)) * 400  # 100 KiB: collected as a chunk list
        raw = encode_frame(body, MORE) + encode_frame(b"end")
        dec = FrameDecoder()
        got = []
        for i in range(0, len(raw), 7001):
            got += dec.decode(raw[i : i + 7001])
            assert dec.buffered <= i + 7001
        assert got == [(MORE, body), (0, b"end")]
        assert dec.at_frame_boundary

    def test_large_body_followed_by_frames_in_one_chunk(self) -> None:
        body = b"L" * (70 * 1024)
        raw = encode_frame(body) + encode_frame(b"a") + encode_frame(b"b", MORE)
        dec = FrameDecoder()
        assert dec.decode(raw[:100]) == []
        assert dec.decode(raw[100:]) == [(0, body), (0, b"a"), (MORE, b"b")]

    def test_accepts_memoryview_and_bytearray(self) -> None:
        dec = FrameDecoder()
        assert dec.decode(memoryview(b"\x01\x01a\x00")) == [(MORE, b"a")]
        assert dec.decode(bytearray(b"\x01b")) == [(0, b"b")]

    def test_message_too_large_from_short_header_alone(self) -> None:
        dec = FrameDecoder(max_frame_size=10)
        with pytest.raises(MessageTooLarge) as info:
            dec.decode(b"\x00\x0b")  # announces 11 bytes, none of them sent
        assert (info.value.size, info.value.limit) == (11, 10)
        assert not info.value.fatal
        assert dec.buffered == 0

    def test_message_too_large_from_long_header_alone(self) -> None:
        dec = FrameDecoder(max_frame_size=1 << 20)
        with pytest.raises(MessageTooLarge) as info:
            dec.decode(b"\x02" + (1 << 40).to_bytes(8, "big"))
        assert info.value.size == 1 << 40
        assert dec.buffered == 0

    def test_limit_is_inclusive(self) -> None:
        dec = FrameDecoder(max_frame_size=3)
        assert dec.decode(b"\x00\x03abc") == [(0, b"abc")]

    def test_zero_limit_allows_only_empty_frames(self) -> None:
        dec = FrameDecoder(max_frame_size=0)
        assert dec.decode(b"\x00\x00") == [(0, b"")]
        with pytest.raises(MessageTooLarge):
            dec.decode(b"\x00\x01")

    def test_size_beyond_two_to_the_63_is_rejected_without_limit(self) -> None:
        dec = FrameDecoder()
        with pytest.raises(RemoteProtocolError, match="2\\^63") as info:
            dec.decode(b"\x02" + (MAX_FRAME_SIZE + 1).to_bytes(8, "big"))
        assert not isinstance(info.value, MessageTooLarge)
        assert info.value.reason == b"Invalid frame size"

    def test_frames_before_an_oversized_header_are_not_returned_twice(self) -> None:
        dec = FrameDecoder(max_frame_size=5)
        with pytest.raises(MessageTooLarge):
            dec.decode(b"\x00\x01a\x00\x06")
        assert dec.buffered == 0


# --------------------------------------------------------------------------- properties

frame_bodies = st.one_of(
    st.binary(max_size=20),
    st.binary(min_size=250, max_size=300),  # around the short/long boundary
)
messages = st.lists(frame_bodies, min_size=1, max_size=4)


def decode_chunks(chunks: list[bytes], **kwargs: int) -> list[tuple[int, bytes]]:
    dec = FrameDecoder(**kwargs)
    out: list[tuple[int, bytes]] = []
    for chunk in chunks:
        out += dec.decode(chunk)
    assert dec.at_frame_boundary
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, min_size=1, max_size=6), st.lists(st.integers(0, 1 << 16)))
def test_encode_decode_round_trip_in_any_split(msgs: list[list[bytes]], cuts: list[int]) -> None:
    out = OutputBuffer()
    for m in msgs:
        encode_message(out, m)
    raw = b"".join(bytes(c) for c in out.chunks())
    expected = [(MORE if i < len(m) - 1 else 0, body) for m in msgs for i, body in enumerate(m)]
    assert decode_chunks([raw]) == expected
    assert decode_chunks(split_at(raw, cuts)) == expected
    # Every flags octet we emit has the reserved bits clear (RFC 23: MUST be zero).
    assert all(f & 0xF8 == 0 for f, _ in FrameDecoder(raw_flags=True).decode(raw))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0, MORE, COMMAND]), st.binary(max_size=300)), max_size=8)
)
def test_whole_equals_one_byte_at_a_time(frames: list[tuple[int, bytes]]) -> None:
    raw = b"".join(encode_frame(body, flags) for flags, body in frames)
    assert decode_chunks([raw]) == frames
    assert decode_chunks([raw[i : i + 1] for i in range(len(raw))]) == frames


@settings(max_examples=10, deadline=None)
@given(
    st.integers(64 * 1024, 80 * 1024),
    st.lists(st.integers(0, 1 << 20), max_size=6),
)
def test_large_frames_in_any_split(size: int, cuts: list[int]) -> None:
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    raw = encode_frame(b"a", MORE) + encode_frame(body, MORE) + encode_frame(b"")
    expected = [(MORE, b"a"), (MORE, body), (0, b"")]
    assert decode_chunks(split_at(raw, cuts)) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=40), max_size=8),
    st.one_of(st.just(-1), st.integers(0, 300)),
)
def test_garbage_only_raises_protocol_errors_and_never_overbuffers(
    chunks: list[bytes], limit: int
) -> None:
    dec = FrameDecoder(limit, raw_flags=True)
    fed = consumed = 0
    try:
        for chunk in chunks:
            fed += len(chunk)
            for flags, body in dec.decode(chunk):
                consumed += (9 if flags & LONG else 2) + len(body)
                assert limit < 0 or len(body) <= limit
            # Never more than the bytes not yet consumed by whole frames; at most the
            # 9-octet header of a large frame whose body is being collected is not
            # counted (it has been turned into decoder state).
            assert fed - consumed - 9 <= dec.buffered <= fed - consumed
    except ProtocolError:
        assert dec.buffered <= fed


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 1000), st.integers(0, MAX_FRAME_SIZE), st.booleans())
def test_oversized_frame_is_rejected_from_its_header(limit: int, size: int, long: bool) -> None:
    if size <= limit:
        size = limit + 1
    header = b"\x02" + size.to_bytes(8, "big") if long or size > 255 else bytes((0, size))
    dec = FrameDecoder(max_frame_size=limit)
    with pytest.raises(MessageTooLarge):
        dec.decode(header)


# A frame as the encoder may be handed it: bytes of any size class (short, long, and a
# large payload passed through uncopied), or another bytes-like type.
any_frames = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"r" * 255, b"s" * 256, b"L" * LARGE_PAYLOAD]),
    st.binary(max_size=300).map(bytearray),
    st.binary(max_size=300).map(memoryview),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(any_frames, min_size=1, max_size=3), max_size=6))
def test_write_messages_writes_what_write_message_writes(msgs: list[list[bytes]]) -> None:
    # write_messages takes one- and two-frame messages of bytes by fast paths of its
    # own; the bytes, the body total and the large-payload chunking must be the same.
    one_by_one, bulk = OutputBuffer(), OutputBuffer()
    total = sum(one_by_one.write_message(m) for m in msgs)
    assert bulk.write_messages(msgs) == total
    expected, got = one_by_one.chunks(), bulk.chunks()
    assert [bytes(c) for c in got] == [bytes(c) for c in expected]
    assert [type(c) for c in got] == [type(c) for c in expected]


# A batch of one-frame messages of one size is encoded by a join of its own (RUN_MIN or
# more); one odd message, a frame whose len() is not its size, or one that is not
# bytes-like sends the batch down the general path.
_RUN_FRAMES = [
    lambda: b"a" * 16,
    lambda: bytearray(b"b" * 16),
    lambda: memoryview(b"c" * 16),
    lambda: memoryview(array.array("I", range(16))),  # len 16, 64 octets
    lambda: memoryview(array.array("I", range(4))),  # len 4, 16 octets
    lambda: memoryview(b"d" * 32)[::2],  # not contiguous
    lambda: "g" * 16,  # not bytes-like
    lambda: b"e" * 15,
    lambda: b"f" * 255,
    lambda: b"",
    lambda: b"h" * 256,  # long frames: a run of them is joined too
    lambda: bytearray(b"i" * 1024),
    lambda: memoryview(array.array("I", range(256))),  # len 256, 1024 octets
    lambda: b"j" * (LARGE_PAYLOAD - 1),
    lambda: b"k" * LARGE_PAYLOAD,  # large: chunks of their own, never joined
]
run_frames = st.sampled_from(range(len(_RUN_FRAMES))).map(lambda i: _RUN_FRAMES[i]())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(run_frames, st.integers(1, 12)), min_size=1, max_size=3),
    st.sampled_from([list, collections.deque]),
)
def test_a_run_of_equal_messages_is_written_as_write_message_writes_it(
    spec: list[tuple[bytes, int]], kind: type
) -> None:
    msgs = kind([frame] for frame, count in spec for _ in range(count))
    one_by_one, bulk = OutputBuffer(), OutputBuffer()
    try:
        total = sum(one_by_one.write_message(m) for m in msgs)
    except (TypeError, ValueError, BufferError) as exc:
        with pytest.raises(type(exc)):
            bulk.write_messages(msgs)
    else:
        assert bulk.write_messages(msgs) == total
    assert [bytes(c) for c in bulk.chunks()] == [bytes(c) for c in one_by_one.chunks()]


def test_a_run_is_one_join() -> None:
    out = OutputBuffer()
    assert out.write_messages([[b"x" * 16]] * 10) == 160
    assert out.chunks() == [(b"\x00\x10" + b"x" * 16) * 10]
    out.write_messages([[b"x" * 16]] * 9 + [[b"str"]])
    assert out.chunks() == [(b"\x00\x10" + b"x" * 16) * 9 + b"\x00\x03str"]
    # Sizes that differ but add up as if equal (16 + 15 + 17 = 3 x 16).
    out.write_messages([[b"x" * 16], [b"y" * 15], [b"z" * 17]] * 4)
    expected = b"\x00\x10" + b"x" * 16 + b"\x00\x0f" + b"y" * 15 + b"\x00\x11" + b"z" * 17
    assert out.chunks() == [expected * 4]


def test_a_run_of_long_frames_is_one_join() -> None:
    out = OutputBuffer()
    assert out.write_messages([[b"x" * 1024]] * 10) == 10240
    header = b"\x02" + (1024).to_bytes(8, "big")
    assert out.chunks() == [(header + b"x" * 1024) * 10]
    # Large payloads stay chunks of their own.
    out.write_messages([[b"y" * LARGE_PAYLOAD]] * 8)
    assert len(out.chunks()) == 16


def _feed(
    dec: FrameDecoder, chunk: bytes, spans: bool, reused: bytearray | None = None
) -> tuple[list[bytes], object]:
    """The bodies of the frames one chunk completes, from decode() or decode_spans()
    (whose spans give no flags), or, on an error, its type and ``frames_before``.

    With ``reused``, decode_spans() gets the chunk as a view of that buffer (as the
    socket layer's stream buffer), which is scribbled over once the bodies are
    copied out: nothing the decoder kept or reported may have pointed into it."""
    data_in: bytes | memoryview = chunk
    if reused is not None:
        reused[: len(chunk)] = chunk
        data_in = memoryview(reused)[: len(chunk)]
    try:
        if not spans:
            return [body for _flags, body in dec.decode(chunk)], None
        first, data, offsets = dec.decode_spans(data_in)
    except ProtocolError as exc:
        error = (type(exc), exc.frames_before)
        if reused is not None:
            reused[:] = b"\xee" * len(reused)
        return [], error
    bodies = [body for _flags, body in first]
    bodies += [bytes(data[offsets[i] : offsets[i + 1]]) for i in range(0, len(offsets), 2)]
    if reused is not None:
        reused[:] = b"\xee" * len(reused)
    return bodies, None


def _both_ways(raw: bytes, cuts: list[int], limit: int) -> list[list[object]]:
    """What decode(), decode_spans() and decode_spans() of a reused buffer each give
    for ``raw`` split at ``cuts``: the bodies, then the error (its type and frames
    before it) if one is raised."""
    results = []
    for spans, reused in ((False, None), (True, None), (True, bytearray(len(raw)))):
        dec = FrameDecoder(max_frame_size=limit)
        got: list[object] = []
        for chunk in split_at(raw, cuts):
            bodies, error = _feed(dec, chunk, spans, reused)
            got += bodies
            if error is not None:
                got.append(error)
                break
        results.append(got)
    return results


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0, MORE, COMMAND]), frame_bodies | st.binary(max_size=300)),
        max_size=8,
    ),
    st.lists(st.integers(0, 1 << 16), max_size=6),
    st.sampled_from([-1, 0, 10, 254, 255, 280]),
)
def test_decode_spans_gives_the_frames_of_decode(
    frames: list[tuple[int, bytes]], cuts: list[int], limit: int
) -> None:
    """decode_spans() yields the bodies decode() does, in any split (frames completed
    across reads come in ``first``), and fails where decode() fails, with the same
    frames before the bad header (their flags included)."""
    raw = b"".join(encode_frame(body, flags) for flags, body in frames)
    results = _both_ways(raw, cuts, limit)
    assert results[0] == results[1] == results[2]
    if all(limit < 0 or len(body) <= limit for _f, body in frames):
        assert results[1] == [body for _f, body in frames]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 24),  # repeated: runs of equal frames
            st.sampled_from([0, 0, 0, MORE, COMMAND]),
            st.sampled_from([b"", b"a", b"x" * 16, b"y" * 17, b"z" * 254, b"w" * 300, b"v" * 1024]),
        ),
        max_size=5,
    ),
    st.lists(st.integers(0, 1 << 16), max_size=4),
    st.sampled_from([-1, 16, 255, 1000]),
    st.integers(0, 255),
)
def test_decode_spans_cuts_runs_as_decode(
    groups: list[tuple[int, int, bytes]], cuts: list[int], limit: int, odd: int
) -> None:
    """Runs of equal frames (flags 0, short or long), whose spans decode_spans lays
    out at C level, against decode(): the same bodies in any split, a run ended by a
    frame of another size, other flags or a size octet changed in one frame (``odd``
    picks it), and the same failure where a frame breaks the limit."""
    frames = [(flags, body) for count, flags, body in groups for _ in range(count)]
    raw = bytearray(b"".join(encode_frame(body, flags) for flags, body in frames))
    # Change the last size octet of one frame in the middle of a run: the frame
    # decodes to a different body (or the stream ends early); both decoders agree.
    if frames and odd % 3 == 0:
        which = odd % len(frames)
        at = sum(len(encode_frame(b, f)) for f, b in frames[:which])
        raw[at + (1 if len(frames[which][1]) < 256 else 8)] ^= 1
    results = _both_ways(bytes(raw), cuts, limit)
    assert results[0] == results[1] == results[2]
    # spans_stride: set only when the spans are one run (what open_spans trusts).
    dec = FrameDecoder(max_frame_size=limit)
    strides = []
    for chunk in split_at(bytes(raw), cuts):
        try:
            _first, _data, offsets = dec.decode_spans(chunk)
        except ProtocolError:
            break
        stride = dec.spans_stride
        strides.append(stride)
        if stride:
            k = len(offsets) // 2
            length = offsets[1] - offsets[0]
            assert k >= 8
            assert offsets[0::2] == list(range(offsets[0], offsets[0] + k * stride, stride))
            assert [offsets[i + 1] - offsets[i] for i in range(0, len(offsets), 2)] == [length] * k
    one_run = len(frames) >= 8 and all(f == frames[0] for f in frames)
    untouched = odd % 3 != 0 and not cuts and limit < 0
    if one_run and untouched and frames[0][0] == 0:
        size = len(frames[0][1])
        assert strides == [size + (2 if size < 256 else 9)]  # one read, one run: claimed


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([10, BIG_BODY, 40_000, 70_000, 150_000]), min_size=1, max_size=7),
    st.lists(st.integers(0, 1 << 19), max_size=8),
    st.booleans(),
)
@example([BIG_BODY] * 3, [9, 131118, 262227], False)  # each read ends in the next header
def test_transient_bodies_are_views_of_memory_nobody_else_holds(
    sizes: list[int], cuts: list[int], keep: bool
) -> None:
    """With transient bodies, decode_spans gives each large body as a view of pooled
    memory: the same bytes decode() gives, in any split.  Memory is reused only once
    the caller let go of every view of it: bodies kept to the end (two or more may
    complete in one call) are intact then; bodies dropped as they come free their
    memory for the next ones, and the pool stays within its limit."""
    bodies = [bytes([i]) * size for i, size in enumerate(sizes)]
    raw = b"".join(encode_frame(body) for body in bodies)
    dec = FrameDecoder()
    dec.transient_bodies()
    pool = framing_mod._TRANSIENT_BODIES
    pool.clear()
    kept: list[object] = []
    got: list[bytes] = []
    for chunk in split_at(raw, cuts):
        first, data, offsets = dec.decode_spans(chunk)
        bodies_now = [body for _flags, body in first]
        bodies_now += [data[offsets[i] : offsets[i + 1]] for i in range(0, len(offsets), 2)]
        if keep:
            kept += bodies_now
        else:
            got += map(bytes, bodies_now)
        # Nothing of this read is held any more (unless kept): as a connection,
        # whose locals are gone once it has opened the bodies.
        del first, data, offsets, bodies_now
    if keep:
        got = [bytes(b) for b in kept]  # type: ignore[call-overload]
    assert got == bodies
    buffers = pool._local.pool
    assert sum(map(len, buffers)) <= pool.limit
    if not keep:
        # At most two bodies are in use at once (one completed, the next begun, in
        # one call), and a buffer serves any body up to its size: at most two
        # buffers of each large size.
        assert len(buffers) <= 2 * len({size for size in sizes if size >= BIG_BODY})
