"""Large-message streams read through a reused buffer (zmtp.sockets._reader).

The rest of a large body shorter than ``IN_PLACE`` is read in place together with what
follows it, into the thread's stream buffer, which the next read overwrites; so the
decoder (``FrameDecoder.decode_messages``, given anything but ``bytes``) must copy out
every body it returns or keeps.  Whatever the chunking, and however the bytes are split
between in-place writes and the buffer, the messages must come out as the reference
decoder gives them, as ``bytes``, and intact after the buffer has been scribbled over.
The reader also waits for the application after ``READ_AHEAD`` bytes of such a stream.
"""

from __future__ import annotations

import random

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import zmtp
import zmtp.sockets._reader as reader_module
from zmtp.protocol.errors import MessageTooLarge
from zmtp.protocol.framing import FLAG_COMMAND, FLAG_MORE, FrameDecoder, encode_frame
from zmtp.sockets._reader import Reader

from ._helpers import STREAM_TRANSPORTS, bind_address, context, split_messages

bodies = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=250, max_size=300),
    st.sampled_from([b"x" * 40_000, b"y" * 65_536, b"z" * 100_000, b"w" * 140_000]),
)
frame = st.tuples(st.sampled_from([0, FLAG_MORE, FLAG_COMMAND]), bodies)
# A run of equal one-frame messages: the decoder cuts those in C-level passes.
run = st.builds(lambda body, k: [(0, body)] * k, st.binary(max_size=40), st.integers(8, 30))
frames = st.lists(st.one_of(frame.map(lambda f: [f]), run), min_size=1, max_size=12).map(
    lambda groups: [f for group in groups for f in group]
)
cuts = st.lists(st.integers(min_value=1, max_value=300_000), max_size=8)


def pieces_of(raw: bytes, points: list[int]) -> list[bytes]:
    ends = sorted({c % (len(raw) + 1) for c in points})
    return [raw[a:b] for a, b in zip([0, *ends], [*ends, len(raw)], strict=True)]


def all_bytes(items: list[list[bytes] | bytes], partial: list[bytes]) -> bool:
    frames_out = [f for i in items for f in (i if isinstance(i, list) else [i])]
    return all(type(f) is bytes for f in frames_out + partial)


@settings(max_examples=150, deadline=None)
@given(frames, cuts, st.booleans())
def test_a_reused_buffer_gives_the_reference_messages(
    spec: list[tuple[int, bytes]], points: list[int], in_place: bool
) -> None:
    """Each piece goes through one bytearray that is overwritten after every call; with
    ``in_place``, what a pending large body still misses is written through
    ``body_buffer()`` first, and only the rest goes through the buffer (the reader's
    ``readv`` of the body and the stream buffer)."""
    raw = b"".join(encode_frame(body, flags) for flags, body in spec)
    buffer = bytearray(len(raw) + 1)
    decoder = FrameDecoder()
    items: list[list[bytes] | bytes] = []
    partial: list[bytes] = []
    for whole in pieces_of(raw, points):
        piece = whole
        view = decoder.body_buffer() if in_place else None
        if view is not None:
            k = min(len(view), len(piece))
            view[:k] = piece[:k]
            del view
            if decoder.body_received(k):
                got, partial, _ = decoder.decode_messages(b"", partial)
                items.extend(got)
            piece = piece[k:]
            if not piece:
                continue
        buffer[: len(piece)] = piece
        got, partial, _ = decoder.decode_messages(memoryview(buffer)[: len(piece)], partial)
        items.extend(got)
        buffer[:] = b"\xee" * len(buffer)  # the next read overwrites it
    assert (items, partial) == split_messages(FrameDecoder().decode(raw))
    assert all_bytes(items, partial)
    assert decoder.at_frame_boundary


@settings(max_examples=100, deadline=None)
@given(frames, st.integers(min_value=0, max_value=120_000), cuts)
def test_a_size_limit_over_a_reused_buffer(
    spec: list[tuple[int, bytes]], limit: int, points: list[int]
) -> None:
    """A refused frame: the same messages before it as the reference gives, as bytes
    that survive the buffer being overwritten, then the same error."""
    raw = b"".join(encode_frame(body, flags) for flags, body in spec)
    try:
        expected: object = split_messages(FrameDecoder(max_frame_size=limit).decode(raw))
    except MessageTooLarge as exc:
        expected = (MessageTooLarge, split_messages(exc.frames_before))
    buffer = bytearray(len(raw) + 1)
    decoder = FrameDecoder(max_frame_size=limit)
    items: list[list[bytes] | bytes] = []
    partial: list[bytes] = []
    try:
        for piece in pieces_of(raw, points):
            buffer[: len(piece)] = piece
            try:
                got, partial, _ = decoder.decode_messages(memoryview(buffer)[: len(piece)], partial)
            finally:
                buffer[:] = b"\xee" * len(buffer)
            items.extend(got)
    except MessageTooLarge as exc:
        # (The frames of the message in progress are in items_before's last message
        # only if that message was completed; ``partial`` is the caller's old list.)
        before = exc.items_before
        assert all_bytes(before, [])
        assert isinstance(expected, tuple) and expected[0] is MessageTooLarge
        assert items + before == expected[1][0]
        return
    assert (items, partial) == expected


def test_nothing_of_the_buffer_is_kept_between_calls() -> None:
    """A pending small frame and a pending large body are copies, not views."""
    raw = encode_frame(b"a" * 200, FLAG_MORE) + encode_frame(b"b" * 70_000)
    buffer = bytearray(raw[:150])  # inside the first frame
    decoder = FrameDecoder()
    got, partial, _ = decoder.decode_messages(memoryview(buffer), [])
    buffer[:] = b"\xee" * len(buffer)
    assert got == [] and partial == []
    buffer = bytearray(raw[150:1000])  # the rest of it, and the start of the large body
    got, partial, _ = decoder.decode_messages(memoryview(buffer), partial)
    buffer[:] = b"\xee" * len(buffer)
    assert got == [] and partial == [b"a" * 200]
    got, partial, _ = decoder.decode_messages(bytearray(raw[1000:]), partial)
    assert got == [[b"a" * 200, b"b" * 70_000]] and partial == []


def random_bytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "little")


async def push_through(
    transport: str, sent: list[list[bytes]], api: str, batch: int
) -> list[list[bytes]]:
    """``sent`` from a PUSH to a bound PULL, received one by one (``api`` "msg") or
    ``batch`` at a time with a scheduling round after each take."""
    got: list[list[bytes]] = []
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind(bind_address(transport))
        push = ctx.socket(zmtp.PUSH)
        await push.connect(ep)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push.send_many, sent)
            while len(got) < len(sent):
                if api == "msg":
                    got.append(await pull.recv_multipart())
                else:
                    got.extend(await pull.recv_many(batch))
                    await trio.sleep(0)
    return got


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
@pytest.mark.parametrize("api", ["msg", "batch"])
async def test_a_stream_of_64k_messages_through_the_stream_buffer(
    transport: str, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages of 32-127 KiB (some with a small first frame) arrive intact and in
    order, the stream buffer and the read-ahead wait are used, and the wait ends."""
    used: list[int] = []
    held: list[int] = []
    real_buffer = reader_module.stream_buffer
    real_hold = Reader._hold_back

    def counted_buffer() -> bytearray:
        used.append(1)
        return real_buffer()

    async def counted_hold(self: Reader, inp: object) -> None:
        held.append(1)
        await real_hold(self, inp)  # type: ignore[arg-type]

    monkeypatch.setattr(reader_module, "stream_buffer", counted_buffer)
    monkeypatch.setattr(Reader, "_hold_back", counted_hold)
    rng = random.Random(15)
    sent = [
        ([b"head-%d" % i] if i % 3 == 0 else [])
        + [random_bytes(rng, rng.randrange(32 * 1024, 127 * 1024))]
        for i in range(300)
    ]
    # With the batch API a slower consumer (a pause after each take): the reader gets
    # ahead.
    got = await push_through(transport, sent, api, 1 if api == "msg" else 7)
    assert got == sent
    assert all(type(f) is bytes for m in got for f in m)
    assert used
    assert held


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_runs_of_small_messages_between_large_ones(transport: str) -> None:
    """Runs of equal small messages read through the stream buffer after a large body
    (the decoder's run cutting over a reused buffer) arrive intact and as bytes."""
    rng = random.Random(16)
    sent: list[list[bytes]] = []
    for i in range(40):
        sent.append([random_bytes(rng, rng.randrange(40 * 1024, 100 * 1024))])
        sent += [[b"%015d" % (i * 100 + k)] for k in range(rng.randrange(8, 60))]
    got = await push_through(transport, sent, "batch", 50)
    assert got == sent
    assert all(type(f) is bytes for m in got for f in m)
