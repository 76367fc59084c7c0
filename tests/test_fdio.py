"""Descriptor writes: every chunk reaches the peer once, in order, whatever the kernel
takes per call, and one writev() is never offered more than its cap."""

from __future__ import annotations

import socket

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.sockets import _fdio
from zmtp.sockets._fdio import IOV_MAX, WRITEV_BYTES, Descriptor, gather_end

sizes = st.lists(
    st.one_of(
        st.integers(0, 64),
        st.integers(1000, 70_000),
        st.sampled_from([WRITEV_BYTES - 1, WRITEV_BYTES]),
    ),
    max_size=40,
)


@given(sizes, st.data())
def test_gather_end_bounds(lengths: list[int], data: st.DataObject) -> None:
    chunks = [b"x" * n for n in lengths]
    start = data.draw(st.integers(0, len(chunks)))
    end = gather_end(chunks, start)
    if start == len(chunks):
        assert end == start
        return
    assert start < end <= min(len(chunks), start + IOV_MAX)
    # Every buffer but the last offered is under the cap in total ...
    assert sum(lengths[start : end - 1]) < WRITEV_BYTES
    # ... and it stops only at the cap, IOV_MAX or the end.
    if end < len(chunks) and end - start < IOV_MAX:
        assert sum(lengths[start:end]) >= WRITEV_BYTES


def test_gather_end_iov_max() -> None:
    chunks = [b"y"] * (IOV_MAX + 10)
    assert gather_end(chunks, 0) == IOV_MAX
    assert gather_end(chunks, IOV_MAX) == IOV_MAX + 10


async def _write_and_read(chunks: list[bytes | bytearray | memoryview]) -> bytes:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # partial writes, and waits
    a.setblocking(False)
    b.setblocking(False)
    ta = trio.socket.from_stdlib_socket(a)
    tb = trio.socket.from_stdlib_socket(b)
    io = Descriptor(trio.SocketStream(ta))
    received = bytearray()
    expected = sum(len(memoryview(c)) for c in chunks)
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            while len(received) < expected:
                received.extend(await tb.recv(7919))

        nursery.start_soon(reader)
        await io.send_chunks(chunks)
    ta.close()
    tb.close()
    return bytes(received)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=3000), min_size=2, max_size=30), st.integers(1, 5000))
def test_send_chunks_delivers_everything_in_order(parts: list[bytes], cap: int) -> None:
    # A small cap makes most calls offer a few buffers and end inside one.
    chunks: list[bytes | bytearray | memoryview] = [
        p if i % 3 == 0 else bytearray(p) if i % 3 == 1 else memoryview(p)
        for i, p in enumerate(parts)
    ]
    saved = _fdio.WRITEV_BYTES
    _fdio.WRITEV_BYTES = cap
    try:
        got = trio.run(_write_and_read, chunks)
    finally:
        _fdio.WRITEV_BYTES = saved
    assert got == b"".join(parts)


async def test_send_chunks_large_bodies() -> None:
    bodies = [bytes([i]) * (300_000 + i) for i in range(12)]
    chunks: list[bytes | bytearray | memoryview] = []
    for body in bodies:
        chunks += [b"\x02" + len(body).to_bytes(8, "big"), body]
    got = await _write_and_read(chunks)
    assert got == b"".join(bytes(c) for c in chunks)
