"""Large frame bodies received in place (zmtp._native.bodies, FrameDecoder.body_buffer, the engine).

A body of ``BIG_BODY`` bytes or more is allocated once, at its final size, when its
header arrives (up to ``PREALLOCATE_MAX``; larger ones are collected as chunks), and a
transport may read straight into it through ``body_buffer()``/``body_received()``.  The
engine does so with ``os.readv`` for bodies missing 128 KiB or more on tcp and ipc
connections, waking (over tcp) only once ``SO_RCVLOWAT`` bytes are there.

Whatever mix of ``decode``/``receive_data`` and in-place writes delivers the bytes, the
frames and messages must come out exactly as sent; a peer that stops or leaves in the
middle of a large body is dropped alone; the zero-copy and the portable body allocators
give the same results; and malloc is tuned on the first large body only when the
Context asks for it (not by default).

The same traffic against libzmq is in ``interop/test_large_bodies_interop.py``.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import example, given, settings
from hypothesis import strategies as st

import zmtp
import zmtp._native.allocator
import zmtp.protocol.framing
from zmtp import Connection, SocketType
from zmtp._native.bodies import ZERO_COPY
from zmtp.protocol.commands import encode_ready
from zmtp.protocol.errors import LocalProtocolError, MessageTooLarge, RemoteProtocolError
from zmtp.protocol.events import ConnectionClosed, Event, HandshakeComplete, Messages, Subscribe
from zmtp.protocol.framing import (
    BIG_BODY,
    FLAG_COMMAND,
    FLAG_MORE,
    PREALLOCATE_MAX,
    BodyAllocator,
    FrameDecoder,
    encode_frame,
    finish_body,
    portable_body,
)
from zmtp.sockets import Socket
from zmtp.sockets._limits import memory_ceiling

from ._helpers import (
    NULL_GREETING,
    STREAM_TRANSPORTS,
    RawPeer,
    bind_address,
    context,
    served_pull,
    split_messages,
)

ROOT = Path(__file__).resolve().parent.parent
KiB = 1024
MiB = 1024 * KiB

#: The frame sizes the socket tests mix: empty, tiny, both sides of BIG_BODY, both sides
#: of the engine's in-place threshold (128 KiB), 1 MiB, and just over PREALLOCATE_MAX
#: (collected as chunks, not preallocated).
SIZES = [
    0,
    10,
    BIG_BODY - 1,
    BIG_BODY,
    127 * KiB,
    128 * KiB,
    129 * KiB,
    MiB,
    PREALLOCATE_MAX + 1,
]


#: The zero-copy allocator (the portable one where this interpreter has none), as a
#: default Context passes it to its connections.
new_body = zmtp._native.body_allocator(True)
#: Both allocators, by name, for the tests that must hold with either.
ALLOCATORS: dict[str, BodyAllocator] = {"zero-copy": new_body, "portable": portable_body}


def random_bytes(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def digest(frames: list[bytes]) -> list[tuple[int, str]]:
    """A short, comparable summary of a message (sizes and hashes), for readable failures."""
    return [(len(f), hashlib.blake2b(f, digest_size=8).hexdigest()) for f in frames]


# ------------------------------------------------------------------------- _bodies


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython's bytes layout")
def test_zero_copy_is_in_use_on_cpython() -> None:
    assert ZERO_COPY is True


@pytest.mark.parametrize("size", [BIG_BODY, 100_003, MiB])
def test_body_written_through_the_view_is_plain_bytes(size: int) -> None:
    data = random.Random(size).randbytes(size)
    body, view = new_body(size)
    assert type(body) is bytes
    assert len(body) == size
    assert len(view) == size
    assert not view.readonly
    # In two pieces, as a transport would.
    half = size // 2
    view[:half] = data[:half]
    view[half:] = data[half:]
    del view
    out = finish_body(body)
    assert out is body  # no copy on the zero-copy path
    assert type(out) is bytes
    assert out == data
    assert hash(out) == hash(data)
    assert {data: 1}[out] == 1  # usable as a key equal to the same bytes
    assert out[:7] + out[-7:] == data[:7] + data[-7:]


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython's bytes layout")
@pytest.mark.parametrize("size", [1, 16 * KiB, MiB])
def test_opened_part_lends_the_octet_before_the_data(size: int) -> None:
    """opened_part gives a new bytes object and the address of the octet before its
    data: written there for a moment and put back to 0xFF, the object is plain bytes
    (its equality, hash and use as a key are those of the same octets)."""
    import ctypes  # noqa: PLC0415 - the test of a ctypes trick

    from zmtp._native.bodies import opened_part  # noqa: PLC0415

    assert opened_part is not None
    data = random.Random(size).randbytes(size)
    part, address = opened_part(size)
    assert type(part) is bytes
    assert len(part) == size
    ctypes.memmove(address, b"\x01" + data, size + 1)  # flags octet, then the part
    assert ctypes.c_uint8.from_address(address).value == 0x01
    ctypes.c_uint8.from_address(address).value = 0xFF
    assert part == data
    assert hash(part) == hash(data)
    assert {data: 1}[part] == 1


def test_bodies_are_freed_when_dropped() -> None:
    # The ctypes calls must not leak a reference: every body is freed with its last use.
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(32):
            body, view = new_body(MiB)
            view[:] = b"\x5a" * MiB
            del view
            assert finish_body(body).count(b"\x5a") == MiB
            del body
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 64 * KiB
    assert peak - before < 4 * MiB  # never more than a couple of bodies alive


@pytest.mark.parametrize("size", [0, 1, BIG_BODY, 100_003])
def test_fallback_path_gives_bytes(size: int) -> None:
    data = random.Random(size).randbytes(size)
    body, view = portable_body(size)
    assert len(view) == size
    view[:] = data
    del view
    out = finish_body(body)
    assert type(out) is bytes
    assert out == data
    assert hash(out) == hash(data)


def test_decoder_on_the_fallback_path() -> None:
    data = random.Random(1).randbytes(200 * KiB)
    raw = encode_frame(data, FLAG_MORE) + encode_frame(b"end")
    dec = FrameDecoder()  # the portable allocator, by default
    assert dec.decode(raw[:1000]) == []
    view = dec.body_buffer()
    assert view is not None
    k = len(view) // 2
    view[:k] = raw[1000 : 1000 + k]
    del view
    assert dec.body_received(k) is False
    got = dec.decode(raw[1000 + k :])
    assert got == [(FLAG_MORE, data), (0, b"end")]
    assert all(type(body) is bytes for _, body in got)
    assert dec.at_frame_boundary


# ------------------------------------------------------------------------- FrameDecoder

#: PREALLOCATE_MAX while the property tests run: low, so that chunk mode stays cheap.
SMALL_PREALLOCATE_MAX = 250_000

frame_sizes = st.one_of(
    st.integers(0, 300),
    st.sampled_from([BIG_BODY - 1, BIG_BODY, BIG_BODY + 1]),
    st.integers(190 * KiB, 210 * KiB),
    st.integers(SMALL_PREALLOCATE_MAX + 1, SMALL_PREALLOCATE_MAX + 64),
)
frame_specs = st.lists(
    st.tuples(st.sampled_from([0, FLAG_MORE, FLAG_COMMAND]), frame_sizes),
    min_size=1,
    max_size=6,
)
#: How the feeder takes the next bytes: plain decode, or (when a body is preallocated)
#: a write into body_buffer() of ``percent`` of what fits, then nothing, decode(b""), or
#: decode() of the rest of the chunk.
steps = st.lists(
    st.tuples(
        st.one_of(st.integers(1, 16), st.integers(17, 4096), st.integers(4097, 120_000)),
        st.sampled_from(["decode", "view", "view+empty", "view+rest"]),
        st.integers(0, 100),
    ),
    min_size=1,
    max_size=40,
)


def build_frames(spec: list[tuple[int, int]], seed: int) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    return [(flags, random_bytes(rng, size)) for flags, size in spec]


def wire_size(body: bytes) -> int:
    return (2 if len(body) < 256 else 9) + len(body)


def feed(
    dec: FrameDecoder,
    raw: bytes,
    plan: list[tuple[int, str, int]],
    decode: Callable[[bytes], int],
) -> int:
    """Feed ``raw`` to ``dec`` along ``plan``; ``decode`` feeds bytes and returns how
    many wire bytes the frames delivered so far took.  Returns how many times a body
    was written in place."""
    pos = consumed = in_place = 0

    def take(data: bytes) -> None:
        nonlocal consumed
        consumed = decode(data)

    for length, mode, percent in plan:
        if pos >= len(raw):
            break
        chunk = raw[pos : pos + length]
        view = dec.body_buffer()
        if mode == "decode" or view is None:
            take(chunk)
            pos += len(chunk)
        else:
            missing = dec.body_remaining
            assert len(view) == missing
            k = min(len(chunk), missing) * percent // 100
            view[:k] = chunk[:k]
            del view
            complete = dec.body_received(k)
            assert complete == (k == missing)
            assert dec.body_remaining == missing - k
            in_place += k > 0
            pos += k
            if mode == "view+empty":
                take(b"")
            elif mode == "view+rest":
                take(chunk[k:])
                pos += len(chunk) - k
        # Never more buffered than fed and not yet delivered; at most the 9-octet
        # header of a large body in progress is not counted (it became decoder state).
        assert pos - consumed - 9 <= dec.buffered <= pos - consumed
    take(raw[pos:])  # the rest, or b"" to collect a body completed in place
    return in_place


def check_idle(dec: FrameDecoder) -> None:
    assert dec.at_frame_boundary
    assert dec.buffered == 0
    assert dec.body_remaining == 0
    assert dec.body_buffer() is None


@settings(max_examples=150, deadline=None)
@given(frame_specs, st.integers(0, 2**32), steps)
@example(
    [
        (FLAG_MORE, BIG_BODY - 1),
        (FLAG_MORE, BIG_BODY),
        (FLAG_COMMAND, BIG_BODY + 1),
        (FLAG_MORE, 200 * KiB),
        (0, SMALL_PREALLOCATE_MAX + 1),
        (0, 3),
    ],
    7,
    [(10, "decode", 0), (300_000, "view", 50), (300_000, "view+rest", 100)] * 6,
)
def test_decode_with_in_place_writes(
    spec: list[tuple[int, int]], seed: int, plan: list[tuple[int, str, int]]
) -> None:
    frames = build_frames(spec, seed)
    raw = b"".join(encode_frame(body, flags) for flags, body in frames)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zmtp.protocol.framing, "PREALLOCATE_MAX", SMALL_PREALLOCATE_MAX)
        dec = FrameDecoder(body_allocator=new_body)
        got: list[tuple[int, bytes]] = []

        def decode(data: bytes) -> int:
            got.extend(dec.decode(data))
            return sum(wire_size(body) for _, body in got)

        feed(dec, raw, plan, decode)
    assert [(f, len(b)) for f, b in got] == [(f, len(b)) for f, b in frames]
    assert got == frames
    assert all(type(body) is bytes for _, body in got)
    check_idle(dec)


@settings(max_examples=150, deadline=None)
@given(frame_specs, st.integers(0, 2**32), steps)
@example(
    [
        (FLAG_MORE, 5),
        (FLAG_MORE, BIG_BODY),
        (0, 200 * KiB),
        (FLAG_MORE, SMALL_PREALLOCATE_MAX + 1),
        (FLAG_MORE, 200 * KiB),
        (0, 0),
    ],
    11,
    [(9, "decode", 0), (1000, "view+empty", 100), (300_000, "view", 30)] * 8,
)
def test_decode_messages_with_in_place_writes(
    spec: list[tuple[int, int]], seed: int, plan: list[tuple[int, str, int]]
) -> None:
    frames = build_frames(spec, seed)
    raw = b"".join(encode_frame(body, flags) for flags, body in frames)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zmtp.protocol.framing, "PREALLOCATE_MAX", SMALL_PREALLOCATE_MAX)
        dec = FrameDecoder(body_allocator=new_body)
        items: list[list[bytes] | bytes] = []
        partial: list[bytes] = []

        def decode(data: bytes) -> int:
            nonlocal partial
            got, partial, commands = dec.decode_messages(data, partial)
            assert commands == any(type(i) is bytes for i in got)
            items.extend(got)
            total = sum(wire_size(body) for body in partial)
            for item in items:
                if isinstance(item, list):
                    total += sum(wire_size(body) for body in item)
                else:
                    total += wire_size(item)
            return total

        feed(dec, raw, plan, decode)
    want_items, want_partial = split_messages(frames)
    assert (items, partial) == (want_items, want_partial)
    check_idle(dec)


@settings(max_examples=100, deadline=None)
@given(frame_specs, st.integers(0, 2**32), steps, st.booleans())
@example(
    [(FLAG_MORE, BIG_BODY), (0, 200 * KiB), (FLAG_COMMAND, 3), (0, SMALL_PREALLOCATE_MAX + 1)],
    3,
    [(9, "decode", 0), (1000, "view+rest", 40), (300_000, "view", 100)] * 6,
    True,
)
def test_portable_allocator_gives_the_same_results(
    spec: list[tuple[int, int]], seed: int, plan: list[tuple[int, str, int]], messages: bool
) -> None:
    # The same bytes along the same plan, into a decoder with each allocator: the same
    # frames (or messages), all of them ``bytes``, and the same bytes written in place.
    frames = build_frames(spec, seed)
    raw = b"".join(encode_frame(body, flags) for flags, body in frames)
    outcomes = {}
    for name, allocator in ALLOCATORS.items():
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(zmtp.protocol.framing, "PREALLOCATE_MAX", SMALL_PREALLOCATE_MAX)
            dec = FrameDecoder(body_allocator=allocator)
            out: list[Any] = []
            partial: list[bytes] = []

            def decode(data: bytes, dec: FrameDecoder = dec, out: list[Any] = out) -> int:
                nonlocal partial
                if messages:
                    got, partial, _ = dec.decode_messages(data, partial)
                    out.extend(got)
                    frames_out = [b for i in out for b in (i if isinstance(i, list) else [i])]
                    frames_out += partial
                else:
                    out.extend(dec.decode(data))
                    frames_out = [b for _, b in out]
                return sum(wire_size(body) for body in frames_out)

            in_place = feed(dec, raw, plan, decode)
        check_idle(dec)
        if messages:
            bodies = [b for i in out for b in (i if isinstance(i, list) else [i])] + partial
        else:
            bodies = [b for _, b in out]
        assert all(type(b) is bytes for b in bodies)
        outcomes[name] = (out, partial, in_place)
    assert outcomes["portable"] == outcomes["zero-copy"]
    if not messages:
        assert outcomes["portable"][0] == frames


def test_body_buffer_is_none_without_a_large_body() -> None:
    dec = FrameDecoder()
    assert dec.body_buffer() is None  # nothing at all
    assert dec.decode(b"\x00") == []  # half a header
    assert dec.body_buffer() is None
    assert dec.decode(b"\x05ab") == []  # a small body in progress
    assert dec.body_buffer() is None
    assert dec.body_remaining == 0
    assert dec.decode(b"cde") == [(0, b"abcde")]
    # Just below BIG_BODY: buffered with the pending bytes, not preallocated.
    raw = encode_frame(b"s" * (BIG_BODY - 1))
    assert dec.decode(raw[:100]) == []
    assert dec.body_buffer() is None
    assert dec.body_remaining == 0
    assert dec.decode(raw[100:]) == [(0, b"s" * (BIG_BODY - 1))]
    # A long header cut short.
    assert dec.decode(encode_frame(b"x" * MiB)[:5]) == []
    assert dec.body_buffer() is None


def test_body_buffer_from_the_header_on() -> None:
    body = random.Random(2).randbytes(BIG_BODY)
    raw = encode_frame(body)
    dec = FrameDecoder()
    assert dec.decode(raw[:9]) == []  # the header alone
    view = dec.body_buffer()
    assert view is not None
    assert len(view) == dec.body_remaining == BIG_BODY
    assert dec.buffered == 0
    view[:] = body
    del view
    assert dec.body_received(BIG_BODY) is True
    assert dec.buffered == BIG_BODY
    assert dec.body_remaining == 0
    assert not dec.at_frame_boundary  # until the frame is collected
    assert dec.decode(b"") == [(0, body)]
    check_idle(dec)


def test_body_received_checks_its_count() -> None:
    dec = FrameDecoder()
    with pytest.raises(ValueError, match="does not fit"):
        dec.body_received(1)  # no body in progress
    with pytest.raises(ValueError, match="does not fit"):
        dec.body_received(0)
    body = bytes(range(256)) * 400  # 100 KiB
    raw = encode_frame(body)
    assert dec.decode(raw[:1009]) == []
    missing = dec.body_remaining
    assert missing == len(body) - 1000
    with pytest.raises(ValueError, match="does not fit"):
        dec.body_received(-1)
    with pytest.raises(ValueError, match="does not fit"):
        dec.body_received(missing + 1)
    # Refused counts change nothing; the body can still be completed.
    assert dec.body_remaining == missing
    assert dec.buffered == 1000
    view = dec.body_buffer()
    assert view is not None
    view[:] = raw[1009:]
    del view
    assert dec.body_received(0) is False
    assert dec.body_received(missing) is True
    with pytest.raises(ValueError, match="does not fit"):
        dec.body_received(1)  # complete: nothing more fits
    assert dec.decode(b"") == [(0, body)]
    with pytest.raises(ValueError, match="does not fit"):
        dec.body_received(1)


def test_small_body_completed_by_body_received_in_small_steps() -> None:
    body = random.Random(3).randbytes(BIG_BODY + 5)
    raw = encode_frame(body, FLAG_MORE) + encode_frame(b"z")
    dec = FrameDecoder()
    partial: list[bytes] = []
    items, partial, _ = dec.decode_messages(raw[:9], partial)
    assert items == []
    pos = 9
    while dec.body_remaining:
        view = dec.body_buffer()
        assert view is not None
        k = min(4093, len(view))
        view[:k] = raw[pos : pos + k]
        del view
        dec.body_received(k)
        pos += k
    items, partial, _ = dec.decode_messages(raw[pos:], partial)
    assert (items, partial) == ([[body, b"z"]], [])
    check_idle(dec)


def test_chunk_mode_above_preallocate_max() -> None:
    allocated: list[int] = []

    def spy(size: int) -> Any:
        allocated.append(size)
        return new_body(size)

    dec = FrameDecoder(body_allocator=spy)
    # Exactly PREALLOCATE_MAX: preallocated from the header.
    assert dec.decode(b"\x02" + PREALLOCATE_MAX.to_bytes(8, "big") + b"ab") == []
    assert allocated == [PREALLOCATE_MAX]
    assert dec.body_buffer() is not None
    # One more byte: collected as chunks, nothing allocated from the size field.
    dec = FrameDecoder(body_allocator=spy)
    size = PREALLOCATE_MAX + 1
    assert dec.decode(b"\x02" + size.to_bytes(8, "big") + b"ab") == []
    assert allocated == [PREALLOCATE_MAX]
    assert dec.body_buffer() is None
    assert dec.body_remaining == size - 2
    assert dec.buffered == 2
    assert not dec.at_frame_boundary
    with pytest.raises(ValueError, match="does not fit"):
        dec.body_received(1)
    # A size field of a terabyte allocates nothing either.
    dec = FrameDecoder(body_allocator=spy)
    assert dec.decode(b"\x02" + (1 << 40).to_bytes(8, "big") + b"x" * 100) == []
    assert allocated == [PREALLOCATE_MAX]
    assert dec.body_buffer() is None
    assert dec.body_remaining == (1 << 40) - 100


def test_chunk_mode_body_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zmtp.protocol.framing, "PREALLOCATE_MAX", 100_000)
    body = random.Random(4).randbytes(100_001)
    raw = encode_frame(b"a", FLAG_MORE) + encode_frame(body, FLAG_MORE) + encode_frame(b"b")
    dec = FrameDecoder()
    got: list[tuple[int, bytes]] = []
    for i in range(0, len(raw), 7001):
        got += dec.decode(raw[i : i + 7001])
        assert dec.body_buffer() is None
    assert got == [(FLAG_MORE, b"a"), (FLAG_MORE, body), (0, b"b")]
    check_idle(dec)


@pytest.mark.parametrize("size", [BIG_BODY, MiB, PREALLOCATE_MAX + 1, 1 << 40])
def test_max_frame_size_refuses_from_the_header_before_allocating(size: int) -> None:
    def no_allocation(size: int) -> Any:
        raise AssertionError(f"allocated {size} bytes for a refused frame")

    header = b"\x02" + size.to_bytes(8, "big")
    for chunks in ([header + b"xyz"], [header[:4], header[4:]]):
        dec = FrameDecoder(max_frame_size=BIG_BODY - 1, body_allocator=no_allocation)
        with pytest.raises(MessageTooLarge):
            for chunk in chunks:
                dec.decode(chunk)
        assert dec.body_buffer() is None
        assert dec.buffered == 0
        dec = FrameDecoder(max_frame_size=BIG_BODY - 1, body_allocator=no_allocation)
        with pytest.raises(MessageTooLarge):
            partial: list[bytes] = []
            for chunk in chunks:
                _, partial, _ = dec.decode_messages(chunk, partial)
        assert dec.body_buffer() is None


# ------------------------------------------------------------------------- Connection


def handshaken(
    a_type: SocketType, b_type: SocketType, body_allocator: BodyAllocator = new_body
) -> tuple[Connection, Connection]:
    """Two sans-IO connections, handshake done (bytes exchanged by hand); large bodies
    allocated as a default Context's connections allocate them."""
    a = Connection(a_type, body_allocator=body_allocator)
    b = Connection(b_type, body_allocator=body_allocator)
    for _ in range(10):
        if a.handshake is not None and b.handshake is not None:
            return a, b
        if data := a.bytes_to_send():
            b.receive_data(data)
        if data := b.bytes_to_send():
            a.receive_data(data)
    raise AssertionError("handshake did not complete")


def feed_in_place(conn: Connection, raw: bytes, step: int = 100_000) -> tuple[list[Event], int]:
    """Deliver ``raw``: headers and small frames by receive_data (a few hundred bytes at
    a time), large bodies through body_buffer/body_received.  Returns the events and how
    many body bytes went in place."""
    events: list[Event] = []
    pos = in_place = 0
    while pos < len(raw):
        view = conn.body_buffer()
        if view is not None and len(view):
            k = min(step, len(view), len(raw) - pos)
            view[:k] = raw[pos : pos + k]
            del view
            events += conn.body_received(k)
            in_place += k
            pos += k
        else:
            events += conn.receive_data(raw[pos : pos + 300])
            pos += 300
    return events, in_place


def test_connection_body_buffer_is_none_outside_traffic() -> None:
    pull = Connection(SocketType.PULL)
    assert pull.body_buffer() is None  # greeting
    with pytest.raises(LocalProtocolError, match="GREETING"):
        pull.body_received(0)
    pull.receive_data(NULL_GREETING)
    # Handshake: even a large READY in progress (under the 64 KiB metadata limit, over
    # BIG_BODY, so the decoder preallocates it) is not offered.
    big_ready = encode_ready([("Socket-Type", b"PUSH"), ("X-Big", b"v" * 60 * KiB)])
    assert pull.receive_data(big_ready[:1000]) == []
    assert pull.phase is zmtp.Phase.HANDSHAKE
    assert pull.body_buffer() is None
    with pytest.raises(LocalProtocolError, match="HANDSHAKE"):
        pull.body_received(1)
    events = pull.receive_data(big_ready[1000:])
    assert isinstance(events[-1], HandshakeComplete)
    assert events[-1].metadata["X-Big"] == b"v" * 60 * KiB
    assert pull.body_buffer() is None  # traffic, but nothing in progress
    with pytest.raises(ValueError, match="does not fit"):
        pull.body_received(1)


def test_connection_body_buffer_is_none_once_closed() -> None:
    push, pull = handshaken(SocketType.PUSH, SocketType.PULL)
    push.send_message([b"x" * MiB])
    raw = push.bytes_to_send()
    assert pull.receive_data(raw[: 200 * KiB]) == []
    assert pull.body_buffer() is not None
    assert pull.receive_data(b"") == [ConnectionClosed(clean=False)]
    assert pull.body_buffer() is None
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        pull.body_received(1)


def test_connection_bad_counts_raise_value_error() -> None:
    push, pull = handshaken(SocketType.PUSH, SocketType.PULL)
    body = random.Random(5).randbytes(MiB)
    push.send_message([b"head", body])
    raw = push.bytes_to_send()
    assert pull.receive_data(raw[:100]) == []
    view = pull.body_buffer()
    assert view is not None
    missing = len(view)
    with pytest.raises(ValueError, match="does not fit"):
        pull.body_received(-1)
    with pytest.raises(ValueError, match="does not fit"):
        pull.body_received(missing + 1)
    view[:] = raw[100:]
    del view
    assert pull.body_received(missing) == [Messages([[b"head", body]])]
    assert pull.phase is zmtp.Phase.TRAFFIC


@pytest.mark.parametrize("allocator", ALLOCATORS)
@pytest.mark.parametrize("step", [1 << 30, 100_000, 4096])
def test_connection_big_messages_in_place(step: int, allocator: str) -> None:
    push, pull = handshaken(SocketType.PUSH, SocketType.PULL, ALLOCATORS[allocator])
    rng = random.Random(step)
    messages = [
        [random_bytes(rng, MiB)],
        [b"", random_bytes(rng, 200 * KiB), b"tail"],
        [random_bytes(rng, BIG_BODY), random_bytes(rng, BIG_BODY + 1), b"x"],
        [b"small"],
        [random_bytes(rng, PREALLOCATE_MAX + 1)],  # chunk mode: receive_data only
    ]
    push.send_messages(messages)
    raw = b"".join(bytes(c) for c in push.data_to_send())
    events, in_place = feed_in_place(pull, raw, step)
    assert in_place > MiB
    got = [m for e in events if isinstance(e, Messages) for m in e.messages]
    assert [digest(m) for m in got] == [digest(m) for m in messages]
    assert got == messages
    assert all(type(frame) is bytes for m in got for frame in m)
    assert all(isinstance(e, Messages) for e in events)
    assert pull.receive_data(b"") == [ConnectionClosed(clean=True)]


def test_connection_big_subscribe_in_place() -> None:
    xsub, xpub = handshaken(SocketType.XSUB, SocketType.XPUB)
    topic = random.Random(6).randbytes(200 * KiB)
    xsub.send_subscribe(topic)
    xsub.send_message([b"after"])
    raw = xsub.bytes_to_send()
    events, in_place = feed_in_place(xpub, raw)
    assert in_place > 100 * KiB
    assert events == [Subscribe(topic), Messages([[b"after"]])]


def outcome(conn: Connection, feed: Callable[[], list[Event]]) -> tuple[Any, ...]:
    """What feeding did: the events, or the error (type, text, reason, events before it);
    then the phase and the bytes queued in answer."""
    try:
        result: tuple[Any, ...] = ("events", feed())
    except RemoteProtocolError as exc:
        result = ("error", type(exc), str(exc), exc.reason, exc.events)
    return (*result, conn.phase, conn.bytes_to_send())


@pytest.mark.parametrize(
    "body",
    [
        b"\x00" + b"m" * (200 * KiB),  # a command name of length 0: malformed
        b"\x04PING\x00\x10" + b"c" * (200 * KiB),  # a PING with an oversized context
        b"\x05ERROR\x05bye!!" + b"e" * (200 * KiB),  # an ERROR with trailing bytes
        b"\x07UNKNOWN" + b"u" * (200 * KiB),
    ],
    ids=["empty-name", "ping", "error", "unknown"],
)
def test_connection_big_command_in_place_as_receive_data(body: bytes) -> None:
    before = encode_frame(b"first")
    cmd = encode_frame(body, FLAG_COMMAND)
    raw = before + cmd + encode_frame(b"after")
    # The reference: every byte through receive_data.
    _, ref = handshaken(SocketType.PUSH, SocketType.PULL)
    expected = outcome(ref, lambda: ref.receive_data(raw))
    # The same bytes with the command body written in place.
    _, pull = handshaken(SocketType.PUSH, SocketType.PULL)
    cut = len(before) + 20

    def in_place() -> list[Event]:
        events = pull.receive_data(raw[:cut])
        view = pull.body_buffer()
        assert view is not None
        rest = raw[cut : len(before) + len(cmd)]
        assert len(view) == len(rest)
        view[:] = rest
        del view
        # Completing the command raises here, just as receive_data did: the events
        # before it (the first message) go with the error.
        try:
            events += pull.body_received(len(rest))
        except RemoteProtocolError as exc:
            exc.events[:0] = events
            raise
        if pull.phase is zmtp.Phase.TRAFFIC:
            events += pull.receive_data(raw[len(before) + len(cmd) :])
        return events

    got = outcome(pull, in_place)
    assert got == expected
    assert Messages([[b"first"]]) in expected[-3 if expected[0] == "error" else 1]


# ------------------------------------------------------------------------- sockets


def mixed_messages(seed: int) -> list[list[bytes]]:
    """Multipart messages mixing every size in SIZES, in several orders; every frame
    distinct random bytes."""
    rng = random.Random(seed)

    def frames(sizes: list[int]) -> list[bytes]:
        return [random_bytes(rng, s) for s in sizes]

    small, big = 10, MiB
    return [
        frames(SIZES),  # ascending, all in one message
        frames(SIZES[::-1]),  # descending
        frames([small, big, small]),
        frames([big, big]),
        frames([0, 128 * KiB, 0, 129 * KiB, 0]),
        *([s] for s in frames(SIZES)),  # each size as a single-frame message
        frames([BIG_BODY - 1, BIG_BODY, small]),
    ]


async def transfer(
    sender: Socket, receiver: Socket, messages: list[list[bytes]]
) -> list[list[bytes]]:
    """Send every message while receiving them; return what arrived."""
    got: list[list[bytes]] = []
    async with trio.open_nursery() as nursery:

        async def send() -> None:
            for msg in messages:
                await sender.send_multipart(msg)

        nursery.start_soon(send)
        for _ in messages:
            got.append(await receiver.recv_multipart())
    return got


def check_messages(got: list[list[bytes]], sent: list[list[bytes]]) -> None:
    assert [digest(m) for m in got] == [digest(m) for m in sent]
    assert got == sent
    assert all(type(f) is bytes for m in got for f in m)


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_push_pull_mixed_sizes(transport: str) -> None:
    messages = mixed_messages(1)
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind(bind_address(transport))
        push = ctx.socket(zmtp.PUSH)
        await push.connect(ep)
        check_messages(await transfer(push, pull, messages), messages)
        # And again on the same connection: nothing left over from the first round.
        messages = mixed_messages(2)[:5]
        check_messages(await transfer(push, pull, messages), messages)


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_dealer_router_envelopes_with_1mib_bodies(transport: str) -> None:
    rng = random.Random(3)
    rounds = 4
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        ep = await router.bind(bind_address(transport))
        dealers = []
        for name in (b"dealer-a", b"dealer-b"):
            d = ctx.socket(zmtp.DEALER, routing_id=name)
            await d.connect(ep)
            dealers.append((name, d))
        await router.wait_for_peers(2)
        requests = {
            name: [[b"req-%d" % i, random_bytes(rng, MiB), b"trailer"] for i in range(rounds)]
            for name, _ in dealers
        }
        replies = {
            name: [[b"rep-%d" % i, random_bytes(rng, MiB)] for i in range(rounds)]
            for name, _ in dealers
        }
        got: dict[bytes, list[list[bytes]]] = {name: [] for name, _ in dealers}
        answers: dict[bytes, list[list[bytes]]] = {name: [] for name, _ in dealers}
        async with trio.open_nursery() as nursery:

            async def client(name: bytes, dealer: Socket) -> None:
                # Every request goes out back to back: the 256-byte scratch of the
                # in-place reads carries the trailer, the next envelope and the next
                # header; then the replies come in the same way.
                for msg in requests[name]:
                    await dealer.send_multipart(msg)
                for _ in range(rounds):
                    answers[name].append(await dealer.recv_multipart())

            for name, dealer in dealers:
                nursery.start_soon(client, name, dealer)
            for _ in range(rounds * len(dealers)):
                rid, *msg = await router.recv_multipart()
                got[rid].append(msg)
                if len(got[rid]) == rounds:
                    for reply in replies[rid]:
                        await router.send_multipart([rid, *reply])
        for name, _ in dealers:
            check_messages(got[name], requests[name])
            check_messages(answers[name], replies[name])


# ----------------------------------------------------------------------- raw peers


def good_after() -> list[bytes]:
    """What the well-behaved peer of :func:`served_pull` sends last: a 1 MiB frame."""
    return [b"good", random.Random(9).randbytes(MiB)]


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_big_message_arriving_in_pieces(transport: str) -> None:
    body = random.Random(7).randbytes(2 * MiB)
    async with served_pull(transport, last=good_after()) as (_, pull, _good, ep):
        raw = await RawPeer.push(ep)
        wire = raw.encode([b"head", body, b"tail"])
        # The envelope, the big header and the first 300 KiB, then the rest in pieces
        # smaller than the SO_RCVLOWAT our side waits for (512 KiB), each given time to
        # be taken in: every piece must be read, and the last must complete the body.
        cut = wire.index(body[:64]) + 300 * KiB
        await raw.stream.send_all(wire[:cut])
        await trio.testing.wait_all_tasks_blocked()
        for start in range(cut, len(wire), 400 * KiB):
            await raw.stream.send_all(wire[start : start + 400 * KiB])
            await trio.lowlevel.checkpoint()
            await trio.testing.wait_all_tasks_blocked()
        assert await pull.recv_multipart() == [b"head", body, b"tail"]
        # Then a tiny message on the same connection: our side must wake for it (the
        # wake-up threshold went back to one byte).
        await raw.stream.send_all(raw.encode([b"tiny"]))
        assert await pull.recv_multipart() == [b"tiny"]
        await raw.stream.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
@pytest.mark.parametrize(
    "size",
    # The largest header accepted without maxmsgsize is what the process could ever
    # hold (zmtp/sockets/_limits.py); one byte more is refused (tests/test_frame_limit.py).
    [2 * MiB, PREALLOCATE_MAX + 1, memory_ceiling()[0]],
    ids=["in-place", "chunks", "ceiling-header"],
)
async def test_peer_leaving_mid_body_is_dropped(
    transport: str, size: int, zmtp_info_logs: pytest.LogCaptureFixture
) -> None:
    async with served_pull(transport, last=good_after()) as (_, pull, _good, ep):
        mon = pull.monitor()
        raw = await RawPeer.push(ep)
        await raw.stream.send_all(raw.encode([b"whole"]))
        assert await pull.recv_multipart() == [b"whole"]
        header = b"\x03" + size.to_bytes(8, "big")  # MORE | LONG
        await raw.stream.send_all(encode_frame(b"env", FLAG_MORE) + header + b"p" * 300 * KiB)
        # Let our side take that in and wait for the rest (over tcp with SO_RCVLOWAT
        # raised), then leave: the EOF must wake it all the same.
        await trio.testing.wait_all_tasks_blocked()
        await raw.stream.aclose()
        async for event in mon:
            if event.type is zmtp.EventType.DISCONNECTED:
                break
        mon.close()
        assert any("middle of a message" in r.getMessage() for r in zmtp_info_logs.records)
        assert len(pull.peers) == 1


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_peer_stalling_mid_body_does_not_hold_up_the_others(transport: str) -> None:
    async with served_pull(transport, last=good_after()) as (_, pull, good, ep):
        raw = await RawPeer.push(ep)
        wire = raw.encode([random.Random(8).randbytes(2 * MiB)])
        await raw.stream.send_all(wire[: 300 * KiB])
        await trio.testing.wait_all_tasks_blocked()
        # The stalled peer's body is pending; the good peer is served meanwhile.
        for i in range(3):
            await good.send_multipart([b"during", b"%d" % i])
            assert await pull.recv_multipart() == [b"during", b"%d" % i]
        await raw.stream.aclose()
        # Its half message never turns up (served_pull checks what follows).


# ----------------------------------------------------------------------- allocator


def test_context_refuses_non_bool_native_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZMTP_NATIVE", raising=False)
    with pytest.raises(TypeError, match="bool"):
        zmtp.Context(tune_allocator="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bool"):
        zmtp.Context(tune_allocator=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bool"):
        zmtp.Context(native=0)  # type: ignore[arg-type]
    assert zmtp.Context(tune_allocator=False).tune_allocator is False
    assert zmtp.Context(tune_allocator=True).tune_allocator is True


def test_context_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # Zero-copy bodies by default; malloc only tuned when asked.
    monkeypatch.delenv("ZMTP_NATIVE", raising=False)
    ctx = zmtp.Context()
    assert ctx.native is True
    assert ctx.tune_allocator is False
    assert ctx._body_allocator is new_body
    # native=False: the portable allocator, and tune_allocator has no effect.
    ctx = zmtp.Context(native=False, tune_allocator=True)
    assert (ctx.native, ctx.tune_allocator) == (False, False)
    assert ctx._body_allocator is portable_body


@pytest.mark.parametrize("value", ["0", "false", "OFF", " no "])
def test_environment_variable_switches_native_tricks_off(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZMTP_NATIVE", value)
    assert zmtp._native.enabled() is False
    assert zmtp._native.body_allocator() is portable_body
    ctx = zmtp.Context(tune_allocator=True)
    assert (ctx.native, ctx.tune_allocator) == (False, False)
    assert ctx._body_allocator is portable_body
    # An explicit argument overrides the environment.
    ctx = zmtp.Context(native=True, tune_allocator=True)
    assert (ctx.native, ctx.tune_allocator) == (True, True)
    assert ctx._body_allocator is new_body


@pytest.mark.parametrize("value", ["1", "", "yes", "on"])
def test_environment_variable_leaves_native_tricks_on(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZMTP_NATIVE", value)
    assert zmtp._native.enabled() is True
    assert zmtp._native.body_allocator() is new_body
    assert zmtp.Context().native is True


@pytest.fixture
def tune_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Calls of tune_for_large_messages, in a process that has not tuned yet."""
    calls: list[int] = []
    monkeypatch.setattr(zmtp._native.allocator, "_tuned", None)
    monkeypatch.delenv("ZMTP_NATIVE", raising=False)

    def spy() -> bool:
        calls.append(1)
        zmtp._native.allocator._tuned = True  # as the real one remembers (restored at teardown)
        return True

    monkeypatch.setattr(zmtp._native.allocator, "tune_for_large_messages", spy)
    return calls


async def exchange_large_messages(ctx: zmtp.Context, tune_calls: list[int]) -> None:
    big = [random.Random(10).randbytes(MiB)]
    pull = ctx.socket(zmtp.PULL)
    ep = await pull.bind("tcp://127.0.0.1:0")
    push = ctx.socket(zmtp.PUSH)
    await push.connect(ep)
    await push.send_multipart([b"small"])
    assert await pull.recv_multipart() == [b"small"]
    assert tune_calls == []
    for _ in range(2):
        await push.send_multipart(big)
        got = await pull.recv_multipart()
        assert got == big
        assert type(got[0]) is bytes


@pytest.mark.parametrize(
    ("kwargs", "env", "tuned"),
    [
        ({}, None, False),  # the default: malloc left alone
        ({"tune_allocator": False}, None, False),
        ({"tune_allocator": True}, None, True),
        ({"tune_allocator": True, "native": False}, None, False),
        ({"tune_allocator": True}, "0", False),  # ZMTP_NATIVE=0
        ({"tune_allocator": True, "native": True}, "0", True),  # the argument wins
    ],
    ids=["default", "off", "asked", "native-off", "env-off", "env-overridden"],
)
async def test_allocator_tuned_on_first_large_body_only_when_asked(
    kwargs: dict[str, Any],
    env: str | None,
    tuned: bool,
    tune_calls: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if env is not None:
        monkeypatch.setenv("ZMTP_NATIVE", env)
    async with context(**kwargs) as ctx:
        await exchange_large_messages(ctx, tune_calls)
    assert tune_calls == ([1] if tuned else [])


async def test_allocator_left_alone_by_small_messages(tune_calls: list[int]) -> None:
    async with context(tune_allocator=True) as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind("tcp://127.0.0.1:0")
        push = ctx.socket(zmtp.PUSH)
        await push.connect(ep)
        messages = [[b"m%d" % i, b"x" * (i * 97)] for i in range(200)]
        check_messages(await transfer(push, pull, messages), messages)
    assert tune_calls == []
    assert zmtp._native.allocator._tuned is None


#: Large messages through a default Context in a fresh process; prints whether the
#: allocator was tuned (process-global state, so a process of its own).
_DEFAULT_CONTEXT_SCRIPT = """
import trio, zmtp, zmtp._native.allocator as allocator

async def main():
    big = [bytes(range(256)) * 4096]
    with trio.fail_after(20):
        await exchange(big)
    print("tuned:", allocator._tuned)

async def exchange(big):
    async with zmtp.Context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind("tcp://127.0.0.1:0")
        push = ctx.socket(zmtp.PUSH)
        await push.connect(ep)
        for _ in range(3):
            await push.send_multipart(big)
            assert await pull.recv_multipart() == big

trio.run(main)
"""


def test_default_context_does_not_tune_malloc_in_a_fresh_process() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ZMTP_NATIVE"}
    proc = subprocess.run(
        [sys.executable, "-c", _DEFAULT_CONTEXT_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "tuned: None"


async def test_a_slow_large_body_keeps_a_heartbeat_alive() -> None:
    # While a large body is missing, the reader asks the kernel (SO_RCVLOWAT) to wake
    # it only every 512 KiB.  With a heartbeat armed every byte must count as a sign of
    # life instead: a peer trickling a 1 MiB body at 45 KiB per 60 ms (512 KiB in about
    # 0.7 s) must not be dropped by a 300 ms heartbeat timeout.
    body = random_bytes(random.Random(7), 1024 * 1024)
    frame = encode_frame(body)
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL, heartbeat_ivl=100, heartbeat_timeout=300, heartbeat_ttl=0)
        ep = await pull.bind("tcp://127.0.0.1:0")
        raw = await RawPeer.push(ep)
        async with raw.stream as stream:
            await stream.send_all(frame[: 100 * 1024])
            for start in range(100 * 1024, len(frame), 45 * 1024):
                await trio.sleep(0.06)  # the slow peer is the scenario, not a sync
                await stream.send_all(frame[start : start + 45 * 1024])
            assert await pull.recv_multipart() == [body]


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_req_rep_eager_writes_of_large_messages_keep_their_order(transport: str) -> None:
    # REQ and REP write a message to the kernel at once (Engine.flush_now), gathering
    # large payloads with writev; whatever the kernel does not take goes back to the
    # writer task, in order.  8 MiB never fits in one write.
    rng = random.Random(3)
    big = random_bytes(rng, 8 * 1024 * 1024 + 5)
    async with context(30) as ctx:
        rep = ctx.socket(zmtp.REP)
        ep = await rep.bind(bind_address(transport))
        req = ctx.socket(zmtp.REQ)
        await req.connect(ep)
        for i in range(3):
            msg = [b"head%d" % i, big, random_bytes(rng, 100_000), b"tail"]
            await req.send_multipart(msg)
            got = await rep.recv_multipart()
            assert digest(got) == digest(msg)
            await rep.send_multipart(got[::-1])
            assert digest(await req.recv_multipart()) == digest(msg[::-1])


def test_a_body_that_cannot_be_preallocated_is_collected_as_it_arrives() -> None:
    # Preallocation answers to a size field the peer controls; if memory is short the
    # decoder must not fail the connection (or worse) but collect the body as it comes.
    def no_memory(size: int) -> tuple[bytes, memoryview]:
        raise MemoryError

    body = bytes(range(256)) * 1024
    wire = encode_frame(body)
    dec = FrameDecoder(body_allocator=no_memory)
    assert dec.decode(wire[:1000]) == []
    assert dec.body_buffer() is None and dec.body_remaining == len(wire) - 1000
    assert dec.decode(wire[1000:]) == [(0, body)]
