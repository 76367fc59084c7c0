"""FrameDecoder.decode_messages (the traffic hot path) against decode (the reference).

Both share the buffering code; decode_messages fuses frame decoding with message
assembly.  Whatever the frames and however the bytes are split, the two must agree.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.protocol.errors import MessageTooLarge
from zmtp.protocol.framing import FLAG_COMMAND, FLAG_MORE, FrameDecoder, encode_frame

from ._helpers import split_messages

bodies = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=250, max_size=300),
    st.sampled_from([b"x" * 70_000, b"y" * 65_536]),
)
frames = st.lists(
    st.tuples(st.sampled_from([0, FLAG_MORE, FLAG_COMMAND]), bodies), min_size=1, max_size=12
)


@settings(max_examples=150, deadline=None)
@given(frames, st.lists(st.integers(min_value=1, max_value=80_000), max_size=6))
def test_any_split_matches_the_reference(spec: list[tuple[int, bytes]], cuts: list[int]) -> None:
    raw = b"".join(encode_frame(body, flags) for flags, body in spec)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    decoder = FrameDecoder()
    items: list[list[bytes] | bytes] = []
    partial: list[bytes] = []
    seen_commands = False
    for piece in pieces:
        got, partial, commands = decoder.decode_messages(piece, partial)
        assert commands == any(type(i) is bytes for i in got)
        seen_commands |= commands
        items.extend(got)
    assert (items, partial) == split_messages(FrameDecoder().decode(raw))
    assert seen_commands == any(flags & FLAG_COMMAND for flags, _ in spec)
    assert decoder.at_frame_boundary


def test_one_byte_at_a_time() -> None:
    raw = (
        encode_frame(b"a", FLAG_MORE)
        + encode_frame(b"b" * 300)
        + encode_frame(b"\x04PING\x00\x00", FLAG_COMMAND)
    )
    decoder = FrameDecoder()
    items: list[list[bytes] | bytes] = []
    partial: list[bytes] = []
    for i in range(len(raw)):
        got, partial, _ = decoder.decode_messages(raw[i : i + 1], partial)
        items.extend(got)
    assert items == [[b"a", b"b" * 300], b"\x04PING\x00\x00"]


@settings(max_examples=150, deadline=None)
@given(frames, st.integers(min_value=0, max_value=70_000), st.integers(min_value=1, max_value=600))
def test_a_size_limit_refuses_long_frames_as_the_reference_does(
    spec: list[tuple[int, bytes]], limit: int, cut: int
) -> None:
    """The inlined long-frame path checks ``max_frame_size`` as the general one does:
    the same messages before the refused frame, then the same error."""
    raw = b"".join(encode_frame(body, flags) for flags, body in spec)
    reference = FrameDecoder(max_frame_size=limit)
    try:
        expected: object = split_messages(reference.decode(raw))
    except MessageTooLarge as exc:
        expected = (MessageTooLarge, split_messages(exc.frames_before))
    decoder = FrameDecoder(max_frame_size=limit)
    items: list[list[bytes] | bytes] = []
    partial: list[bytes] = []
    try:
        for piece in (raw[:cut], raw[cut:]):
            got, partial, _ = decoder.decode_messages(piece, partial)
            items.extend(got)
    except MessageTooLarge as exc:
        assert isinstance(expected, tuple) and expected[0] is MessageTooLarge
        done = items + list(exc.items_before)  # type: ignore[attr-defined]
        assert done == expected[1][0]
        return
    assert (items, partial) == expected


# Runs of one-frame messages of one size (fixed-size records) are cut in one C-level
# pass; a run may be broken by another size, a MORE frame, a command, or the end of a
# read, and may start right after a partial message completes.
runs = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 0, FLAG_MORE, FLAG_COMMAND]),
        st.sampled_from(
            # Long frames too: 1024 and 1280 differ in one octet of their 8-octet size.
            [b"", b"r", b"s" * 16, b"t" * 17, b"u" * 255, b"v" * 300, b"w" * 1024, b"z" * 1280]
        ),
        st.integers(min_value=1, max_value=40),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(
    runs,
    st.lists(st.integers(min_value=1, max_value=20_000), max_size=4),
    st.sampled_from([-1, 0, 16, 17, 255, 300, 1024, 1100]),
)
def test_runs_of_equal_messages_match_the_reference(
    spec: list[tuple[int, bytes, int]], cuts: list[int], limit: int
) -> None:
    raw = b"".join(encode_frame(body, flags) * count for flags, body, count in spec)
    try:
        expected: object = split_messages(FrameDecoder(max_frame_size=limit).decode(raw))
    except MessageTooLarge as exc:
        expected = (MessageTooLarge, split_messages(exc.frames_before)[0])
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    decoder = FrameDecoder(max_frame_size=limit)
    items: list[list[bytes] | bytes] = []
    partial: list[bytes] = []
    try:
        for piece in pieces:
            got, partial, _ = decoder.decode_messages(piece, partial)
            assert all(type(i) in (list, bytes) for i in got)
            items.extend(got)
    except MessageTooLarge as exc:
        assert isinstance(expected, tuple) and expected[0] is MessageTooLarge
        assert items + list(exc.items_before) == expected[1]  # type: ignore[attr-defined]
        return
    assert (items, partial) == expected
    assert decoder.at_frame_boundary


def test_a_run_is_cut_whole_and_stops_at_the_first_other_frame() -> None:
    record = encode_frame(b"x" * 16)
    raw = record * 50 + encode_frame(b"y" * 16, FLAG_MORE) + record * 20 + record[:5]
    items, partial, commands = FrameDecoder().decode_messages(raw, [])
    assert items == [[b"x" * 16]] * 50 + [[b"y" * 16, b"x" * 16]] + [[b"x" * 16]] * 19
    assert all(type(i) is list for i in items)
    assert partial == [] and not commands


def test_a_run_of_long_frames_is_cut_whole_and_stops_at_another_size() -> None:
    record = encode_frame(b"x" * 1024)
    other = encode_frame(b"y" * 1280)  # its size differs in the second-lowest octet
    raw = record * 30 + other + record * 12 + record[:100]
    items, partial, commands = FrameDecoder().decode_messages(raw, [])
    assert items == [[b"x" * 1024]] * 30 + [[b"y" * 1280]] + [[b"x" * 1024]] * 12
    assert all(type(i) is list and type(i[0]) is bytes for i in items)
    assert partial == [] and not commands
