"""ZMTP 3.x framing (RFC 23/37 "Framing"): the hot path, written by hand.

A frame is ``flags(1) size(1 or 8, network order) body(size)``.  Flag bits:

* ``FLAG_MORE`` (0x01): more frames of the same message follow;
* ``FLAG_LONG`` (0x02): the size field is 8 octets instead of 1;
* ``FLAG_COMMAND`` (0x04): the frame is a command, not message data.

Bits 3-7 are reserved.  We never set them; on input we ignore them, as libzmq 4.3.5
does (specs/libzmq-behaviour.md §2.1): being stricter than the reference peer only breaks interop.

The encoder and the decoder stay in one module (some 640 lines): they are the two
directions of one wire format and share its constants and precomputed headers.

Theory of operation
-------------------
:class:`FrameDecoder` turns a byte stream into ``(flags, body)`` pairs.  One call decodes
*every* complete frame it holds, so a receive of 64 KiB carrying 2000 small frames costs
one Python call and 2000 loop iterations, not 2000 calls.  Bytes that do not yet form a
whole frame are kept.  A large body (``BIG_BODY`` bytes or more) is allocated once at
its final size when its header arrives, and every later read is copied straight into
it; a transport can even read into it directly (:meth:`FrameDecoder.body_buffer`).

Where that body comes from is the decoder's ``body_allocator`` argument (a
:data:`BodyAllocator`).  The default, :func:`portable_body`, is a ``bytearray``, copied
into ``bytes`` once complete (:func:`finish_body`).  The socket layer may pass the
zero-copy allocator of :mod:`zmtp._native` instead, which builds the ``bytes`` object
itself so that the body reaches the application without that copy.  This module never
imports it: the core stays portable and free of ``ctypes``.

Frame sizes come from the peer, so the decoder allocates from a size field only up to
``PREALLOCATE_MAX`` bytes (libzmq allocates whatever the header says).  A larger body is
built only from bytes that actually arrived, as a list of chunks joined once; and
``max_frame_size`` rejects a frame from its header alone.

:meth:`OutputBuffer.write_message` (and :func:`encode_message`) writes a multipart
message into an output buffer.  Small frames are
copied into one ``bytearray`` so that many messages go out in one ``send_all``; a payload
of ``LARGE_PAYLOAD`` bytes or more is passed through as its own chunk, never copied.
:class:`SharedEncoding` lets the connections of one publisher, which are handed the same
message objects, encode a batch once between them.
"""

from __future__ import annotations

import contextlib
import operator
import struct
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import TypeAlias, cast

from ._buffers import BytesLike as Buffer
from ._reuse import ReusePool
from .errors import MessageTooLarge, ProtocolError, RemoteProtocolError

__all__ = [
    "FLAG_COMMAND",
    "FLAG_LONG",
    "FLAG_MORE",
    "LARGE_PAYLOAD",
    "MAX_FRAME_SIZE",
    "BodyAllocator",
    "FrameDecoder",
    "OutputBuffer",
    "SharedEncoding",
    "encode_frame",
    "encode_message",
    "encode_messages",
    "finish_body",
    "portable_body",
]

#: RFC 37: "more frames follow".
FLAG_MORE = 0x01
#: RFC 37: the size field is a 64-bit unsigned integer in network byte order.
FLAG_LONG = 0x02
#: RFC 37: the frame is a command.
FLAG_COMMAND = 0x04

#: RFC 23 caps a long frame at 2^63-1 octets (the top bit of the size must be clear).
MAX_FRAME_SIZE = (1 << 63) - 1

#: Payloads this large are sent as separate chunks instead of being copied into the
#: coalescing buffer.  Below it, a copy is cheaper than an extra send call.
LARGE_PAYLOAD = 32 * 1024

#: From this size an incomplete body gets a buffer of its own (allocated at its final
#: size, or collected as chunks) rather than growing the pending-bytes buffer.
BIG_BODY = 32 * 1024

#: Largest body allocated whole from its header alone, before its bytes arrive.  Larger
#: ones are collected as chunks as they come, so a peer's size field alone never makes
#: us allocate more than this per connection.
PREALLOCATE_MAX = 8 * 1024 * 1024

#: ``allocate(size) -> (body, view)``: a frame body of ``size`` bytes, to be filled
#: through ``view`` (a writable ``memoryview`` of exactly ``size`` bytes).  ``body`` is
#: ``bytes`` (delivered as is once every byte is written) or ``bytearray`` (copied into
#: ``bytes`` then).  It may raise ``MemoryError``; the body is then collected in chunks.
BodyAllocator: TypeAlias = Callable[[int], tuple[bytes | bytearray, memoryview]]

#: What the decoding loops index and slice: the received ``bytes``, or a byte view of a
#: buffer the caller reuses (:meth:`FrameDecoder.decode_messages`).
_Input: TypeAlias = bytes | memoryview


#: Memory for transient large bodies (FrameDecoder.transient_bodies), at most 4 MiB
#: kept per thread: two bodies of a 2 MiB stream can be in use at once (one completed
#: and being opened, the next one arriving), or four of a 1 MiB stream's; a body that
#: does not fit gets memory of its own, as before.  Kept however many connections.
_TRANSIENT_BODIES = ReusePool(bytearray, limit=4 * 1024 * 1024 + 65536, min_size=64 * 1024)


def portable_body(size: int) -> tuple[bytes | bytearray, memoryview]:
    """The default :data:`BodyAllocator`: a ``bytearray``, works on any interpreter."""
    body = bytearray(size)
    return body, memoryview(body)


def finish_body(body: bytes | bytearray) -> bytes:
    """The delivered frame body, once every byte has been written through its view:
    ``body`` itself if it is ``bytes``, else a ``bytes`` copy."""
    return body if type(body) is bytes else bytes(body)


def _as_bytes_like(frame: object) -> Buffer:
    if isinstance(frame, bytes | bytearray):
        return frame
    if isinstance(frame, memoryview):
        if frame.itemsize != 1 or frame.ndim != 1 or not frame.c_contiguous:
            return frame.cast("B") if frame.c_contiguous else frame.tobytes()
        return frame
    if isinstance(frame, str):
        raise TypeError("frames must be bytes-like, not str (encode it first)")
    try:
        return memoryview(frame).cast("B")  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"frames must be bytes-like, not {type(frame).__name__}") from None


def encode_frame(body: Buffer, flags: int = 0) -> bytes:
    """Encode one frame (header and body) as bytes.

    Args:
        body: the frame body.
        flags: ``FLAG_MORE`` and/or ``FLAG_COMMAND``; ``FLAG_LONG`` is set as needed.
    """
    body = _as_bytes_like(body)
    n = memoryview(body).nbytes
    if n < 256:
        return bytes((flags & ~FLAG_LONG, n)) + bytes(body)
    return bytes((flags | FLAG_LONG,)) + n.to_bytes(8, "big") + bytes(body)


# Two-byte headers of short frames, by flags (MORE/COMMAND combinations) and size:
# looked up, not built, on the hot path.
_SHORT_HEADERS = [[bytes((flags, n)) for n in range(256)] for flags in range(8)]
_SHORT_DATA = _SHORT_HEADERS[0]
#: flags(1) + size(8, network order) of a long frame.
_LONG_HEADER = struct.Struct(">BQ")
#: A long frame's size field (RFC 23/37: 8 octets, network order).
_U64 = struct.Struct(">Q")

#: A run of this many one-frame messages of one short size, or more, is cut in one
#: C-level pass (``FrameDecoder.decode_messages``): below it, looking for the run costs
#: more than the loop it saves (about 1 µs against 0.16 µs per message).
RUN_MIN = 8
#: ``_RUN_FRAME[n]`` reads a short data frame of ``n`` octets, header skipped, as a
#: 1-tuple of its body: ``iter_unpack`` of it cuts a run of such frames without a
#: Python step per frame.
_RUN_FRAME = [struct.Struct(f"2x{n}s") for n in range(256)]
_RUN_RECORDS: dict[tuple[int, int], struct.Struct] = {}
#: The flags of the data frames a run in decode_spans is made of: short, or long.
_RUN_FLAGS = (0, FLAG_LONG)


def run_records(skip: int, size: int) -> struct.Struct:
    """The struct that reads one record of a run, ``skip`` octets then ``size`` more,
    as a 1-tuple of the latter: ``iter_unpack`` of it cuts a whole run at C level (a
    long data frame: ``skip`` 9; an opened CURVE part after its flags octet: 1).  The
    few shapes a stream uses are kept (a bounded cache)."""
    fmt = _RUN_RECORDS.get((skip, size))
    if fmt is None:
        if len(_RUN_RECORDS) >= 64:
            _RUN_RECORDS.clear()
        fmt = _RUN_RECORDS[skip, size] = struct.Struct(f"{skip}x{size}s")
    return fmt


def _run_length(data: _Input, pos: int, step: int, header: int) -> int:
    """How many frames of a run start at ``pos``: frames ``step`` octets apart whose
    ``header`` header octets (flags and size) are those of the first.  Frame i's header
    is where the stride says only if frames 0..i-1 were of the run, so the run is the
    leading stretch of stride positions that qualify; each header octet is checked
    down the stride at C level.  0 if the run is shorter than :data:`RUN_MIN`."""
    stop = pos + (len(data) - pos) // step * step
    heads = bytes(data[pos:stop:step])  # (bytes of a view: it has the C-level passes)
    k = len(heads) - len(heads.lstrip(heads[:1]))
    j = 1
    while k >= RUN_MIN and j < header:
        column = bytes(data[pos + j : pos + k * step : step])
        k = min(k, len(column) - len(column.lstrip(column[:1])))
        j += 1
    return k if k >= RUN_MIN else 0


#: The batches ``OutputBuffer.write_messages`` looks for such a run in (what engines
#: and publishers hand it: a pipe's queue or a list).
_RUN_BATCHES = (deque, list)


class OutputBuffer:
    """Bytes waiting to be written, coalesced for few large writes.

    Encoding appends *pieces* (precomputed headers and the frame bodies themselves) to a
    list; :meth:`chunks` joins runs of small pieces with one ``b"".join`` (the only copy)
    and passes payloads of ``LARGE_PAYLOAD`` bytes or more through untouched, so a
    1 MiB frame is never copied on its way to the socket.
    """

    __slots__ = ("_has_large", "_pieces")

    def __init__(self) -> None:
        self._pieces: list[Buffer] = []
        self._has_large = False

    def write(self, data: Buffer) -> None:
        """Append raw bytes (copied if mutable)."""
        self._pieces.append(data if type(data) is bytes else bytes(data))

    def write_large(self, data: Buffer) -> None:
        """Append a payload that should not be copied."""
        self._pieces.append(data)
        self._has_large = True

    def unshift(self, pieces: Sequence[Buffer]) -> None:
        """Put pieces back in front of what is pending, untouched: output that
        :meth:`chunks` gave out but the transport did not take (it goes first)."""
        if pieces:
            self._pieces[:0] = pieces
            self._has_large = True  # they are kept apart, as large payloads are

    def __bool__(self) -> bool:
        return bool(self._pieces)

    def __len__(self) -> int:
        return sum(len(p) for p in self._pieces)

    def chunks(self) -> list[Buffer]:
        """Take everything pending, as a list of bytes-like objects."""
        pieces = self._pieces
        if not pieces:
            return []
        self._pieces = []
        if not self._has_large:
            return [b"".join(pieces)]
        self._has_large = False
        out: list[Buffer] = []
        run: list[Buffer] = []
        for piece in pieces:
            if len(piece) >= LARGE_PAYLOAD:
                if run:
                    out.append(b"".join(run))
                    run = []
                out.append(piece)
            else:
                run.append(piece)
        if run:
            out.append(b"".join(run))
        return out

    def write_encoded(self, data: bytes) -> None:
        """Append bytes encoded elsewhere (:class:`SharedEncoding`), never copied
        when they are large: another connection holds the same object."""
        self._pieces.append(data)
        if len(data) >= LARGE_PAYLOAD:
            self._has_large = True

    def absorb(self, other: OutputBuffer) -> None:
        """Append everything ``other`` holds, as it is (``other`` is left empty)."""
        self._pieces.extend(other._pieces)
        self._has_large = self._has_large or other._has_large
        other._pieces = []
        other._has_large = False

    def write_message(self, frames: Sequence[Buffer], flags: int = 0) -> int:
        """Append the frames of one multipart message.

        Args:
            frames: the message; every frame but the last gets ``FLAG_MORE``.  Mutable
                frames (bytearray, writable memoryview) are copied, so the caller may reuse
                them at once; bytes and read-only views are kept as they are.
            flags: extra flags for every frame (``FLAG_COMMAND`` for a command).

        Returns:
            the number of body bytes written.

        Raises:
            TypeError: a frame is not bytes-like (``str`` must be encoded first).
            ValueError: the message has no frames.
        """
        last = len(frames) - 1
        if last < 0:
            raise ValueError("a message needs at least one frame")
        pieces = self._pieces
        mark = len(pieces)
        total = 0
        try:
            for i, given in enumerate(frames):
                if type(given) is bytes:
                    frame: Buffer = given
                    n = len(given)
                else:
                    view = _as_bytes_like(given)
                    frame = view if isinstance(view, memoryview) and view.readonly else bytes(view)
                    n = len(frame)
                total += n
                f = flags | FLAG_MORE if i < last else flags
                if n < 256:
                    pieces.append(_SHORT_HEADERS[f][n])
                else:
                    pieces.append(_LONG_HEADER.pack(f | FLAG_LONG, n))
                    if n >= LARGE_PAYLOAD:
                        self._has_large = True
                pieces.append(frame)
        except BaseException:
            # A bad frame must not leave the frames before it queued: the next message
            # would be glued onto them and the peer would receive one merged message
            # (RFC 23/37 "Messages": all frames or none).
            del pieces[mark:]
            raise
        return total

    def encode_alone(self, frames: Sequence[Buffer]) -> bytes | None:
        """The bytes of one message, for a transport that writes them at once, when
        nothing is pending ahead of it; None otherwise, and for what this short path
        leaves to :meth:`write_message`: frames that are not ``bytes``, and payloads of
        ``LARGE_PAYLOAD`` bytes or more (gathered by the transport, not copied here).

        A request/reply round trip sends one small message and waits: queueing it and
        taking the queue back out costs more calls than the encoding itself.
        """
        if self._pieces:
            return None  # what is pending goes first
        if len(frames) == 2:
            # An envelope (REQ's empty delimiter, REP's) and a short body: the round
            # trip's usual message, with no loop.
            head, body = frames
            if type(head) is bytes and type(body) is bytes and len(head) < 256 and len(body) < 256:
                return b"".join(
                    (_SHORT_HEADERS[FLAG_MORE][len(head)], head, _SHORT_DATA[len(body)], body)
                )
        last = len(frames) - 1
        if last < 0:
            return None  # write_message raises
        pieces: list[bytes] = []
        append = pieces.append
        for i, frame in enumerate(frames):
            if type(frame) is not bytes:
                return None
            n = len(frame)
            f = FLAG_MORE if i < last else 0
            if n < 256:
                append(_SHORT_HEADERS[f][n])
            elif n < LARGE_PAYLOAD:
                append(_LONG_HEADER.pack(f | FLAG_LONG, n))
            else:
                return None
            append(frame)
        return b"".join(pieces)

    def write_messages(self, messages: Iterable[Sequence[Buffer]]) -> int:
        """Append many messages; return their total body size.

        Single-frame messages of bytes under 256 bytes, the commonest case by far, take a
        fast path of two list appends each; two-frame messages of bytes (an envelope
        frame under 256 bytes and a body) one of four appends.
        """
        if type(messages) in _RUN_BATCHES and len(messages) >= RUN_MIN:  # type: ignore[arg-type]
            total = self._write_run(messages)  # type: ignore[arg-type]
            if total >= 0:
                return total
        pieces = self._pieces
        append = pieces.append
        short = _SHORT_DATA
        short_more = _SHORT_HEADERS[FLAG_MORE]
        total = 0
        pack_long = _LONG_HEADER.pack
        for msg in messages:
            if len(msg) == 1:
                frame = msg[0]
                if type(frame) is bytes:
                    n = len(frame)
                    if n < 256:
                        append(short[n])
                    else:
                        append(pack_long(FLAG_LONG, n))
                        if n >= LARGE_PAYLOAD:
                            self._has_large = True
                    append(frame)
                    total += n
                    continue
            elif len(msg) == 2:
                # A routing id (or an empty delimiter) and a body, as ROUTER, DEALER
                # and REQ/REP envelopes put them: the commonest multipart shape.
                head, frame = msg
                if type(head) is bytes and type(frame) is bytes and len(head) < 256:
                    append(short_more[len(head)])
                    append(head)
                    n = len(frame)
                    if n < 256:
                        append(short[n])
                    else:
                        append(pack_long(FLAG_LONG, n))
                        if n >= LARGE_PAYLOAD:
                            self._has_large = True
                    append(frame)
                    total += len(head) + n
                    continue
            total += self.write_message(msg)
        return total

    def _write_run(self, messages: Sequence[Sequence[Buffer]]) -> int:
        """Append a batch of one-frame messages all of one size under
        ``LARGE_PAYLOAD`` (fixed-size records) with C-level passes only, and return its
        body size; or append nothing and return -1 if the batch is not such a run.

        Every frame then has the same header, so the encoding is that header joined
        with the bodies: the same bytes as :meth:`write_messages`'s loop makes, at
        about a third of its cost per message (16 B: 0.04 µs against 0.11-0.14).
        Large payloads are never joined (they go out as chunks of their own).
        """
        try:
            first = messages[0]
            if len(first) != 1 or len(first[0]) >= LARGE_PAYLOAD:
                return -1  # at once for envelopes and large payloads (their own paths)
            bodies = [body for (body,) in messages]  # ValueError: not one frame each
            size = len(bodies[0])
            lengths = list(map(len, bodies))
            if lengths.count(size) != len(lengths):
                return -1
            header = _SHORT_DATA[size] if size < 256 else _LONG_HEADER.pack(FLAG_LONG, size)
            bodies.insert(0, b"")  # the first frame's header too, in the same join
            blob = header.join(bodies)  # TypeError: a frame that is not bytes-like
        except (TypeError, ValueError, BufferError):
            return -1
        if len(blob) != len(lengths) * (size + len(header)):
            # A view whose len() is not its size in octets (a format other than
            # bytes): the general path encodes it (its frames are not all one size).
            return -1
        self._pieces.append(blob)
        return len(lengths) * size


class SharedEncoding:
    """The encoded bytes of the last few batches of messages, for the connections of
    one publisher: each of them would otherwise encode the same batch again.

    A publisher queues the *same* message objects on every subscriber's pipe, and
    every subscriber's writer takes its whole queue at once; so the batches that its
    connections encode are very often the very same sequence of objects.  The first
    connection to encode one encodes it as usual and keeps the bytes here; any later
    connection whose batch is the same sequence of the same objects (identity, not
    equality: equal-looking frames may still encode differently, such as a memoryview
    of another format) and whose framing is of the same kind (the class of its
    :class:`OutputBuffer`: ZMTP 3.x and 2.0 share one, 1.0 has its own) appends those
    bytes instead, so its output is byte for byte what it would have encoded.

    Only unsealed framing can be shared (a CURVE connection seals every frame with
    its own keys and nonces).  A batch holding a payload of ``LARGE_PAYLOAD`` bytes or
    more is not kept (it is passed through uncopied, never joined), nor one whose
    encoding passes ``max_bytes``: what is kept holds its messages alive until it is
    replaced.  Messages must not change once queued (the sockets copy what the
    application may change before queueing it).
    """

    __slots__ = ("_entries", "enabled", "max_bytes", "slots")

    def __init__(self, slots: int = 2, max_bytes: int = 1 << 20) -> None:
        #: How many batches are kept, newest first.
        self.slots = slots
        #: The largest encoding kept.
        self.max_bytes = max_bytes
        #: False: every batch is encoded by its own connection and nothing is kept
        #: (its owner turns sharing off while it has a single connection).
        self.enabled = True
        self._entries: list[tuple[type[OutputBuffer], Sequence[object], bytes, int]] = []

    def clear(self) -> None:
        """Forget every batch (and release its messages)."""
        self._entries = []

    def share(self, enabled: bool) -> None:
        """Turn sharing on or off (off forgets every batch kept)."""
        self.enabled = enabled
        if not enabled:
            self._entries = []

    def encode(self, out: OutputBuffer, messages: Sequence[Sequence[Buffer]]) -> int:
        """Append ``messages`` to ``out`` as ``out.write_messages`` would; return their
        total body size.  ``messages`` is kept as the key of its encoding: the caller
        must not change it afterwards.
        """
        if not self.enabled:
            return out.write_messages(messages)
        kind = type(out)
        n = len(messages)
        if not n:
            return 0
        is_ = operator.is_
        for entry in self._entries:
            key = entry[1]
            # Same length, then the same objects in the same order (stops at the
            # first difference; C-level, a few ns per message).
            if entry[0] is kind and len(key) == n and all(map(is_, key, messages)):
                out.write_encoded(entry[2])
                return entry[3]
        fresh = kind()
        try:
            total = fresh.write_messages(messages)
        except BaseException:
            # As write_messages into ``out``: the messages before the bad one stay.
            out.absorb(fresh)
            raise
        if fresh._has_large:
            out.absorb(fresh)  # large payloads stay uncopied, as always
            return total
        pieces = fresh._pieces
        blob = pieces[0] if len(pieces) == 1 and type(pieces[0]) is bytes else b"".join(pieces)
        if len(blob) <= self.max_bytes:
            entries = self._entries
            entries.insert(0, (kind, messages, blob, total))
            del entries[self.slots :]
        out.write_encoded(blob)
        return total


def encode_message(out: OutputBuffer, frames: Sequence[Buffer], flags: int = 0) -> int:
    """Append one multipart message to ``out``: :meth:`OutputBuffer.write_message`."""
    return out.write_message(frames, flags)


def encode_messages(out: OutputBuffer, messages: Iterable[Sequence[Buffer]]) -> int:
    """Append many messages to ``out``: :meth:`OutputBuffer.write_messages`."""
    return out.write_messages(messages)


class FrameDecoder:
    """Incremental decoder from bytes to ``(flags, body)`` frames.

    Args:
        max_frame_size: frames announcing a larger body raise
            :class:`~zmtp.protocol.errors.MessageTooLarge`; ``-1`` means no limit (libzmq's
            ``ZMQ_MAXMSGSIZE`` default).
        raw_flags: report each frame's flags byte exactly as received (LONG and
            reserved bits included), for study tools.  By default only MORE and
            COMMAND are reported, which is all the protocol layer needs.
        body_allocator: allocates large bodies (see :data:`BodyAllocator`);
            :func:`portable_body` by default.
    """

    __slots__ = (
        "_big_body",
        "_big_chunks",
        "_big_flags",
        "_big_have",
        "_big_size",
        "_big_view",
        "_buf",
        "_mask",
        "_new_body",
        "_transient",
        "max_frame_size",
        "spans_stride",
    )

    def __init__(
        self,
        max_frame_size: int = -1,
        *,
        raw_flags: bool = False,
        body_allocator: BodyAllocator = portable_body,
    ) -> None:
        self.max_frame_size = max_frame_size
        self._new_body = body_allocator
        self._mask = 0xFF if raw_flags else FLAG_MORE | FLAG_COMMAND
        self._buf: bytes | bytearray = b""
        # A large body in progress is either preallocated (``_big_body``, filled
        # through ``_big_view``) or, above PREALLOCATE_MAX, collected in ``_big_chunks``;
        # ``_big_size`` is nonzero exactly while one is in progress.
        self._big_body: bytes | bytearray | memoryview | None = None
        self._big_view: memoryview | None = None
        self._big_chunks: list[Buffer] | None = None
        self._big_flags = 0
        self._big_size = 0
        self._big_have = 0
        # Whether large bodies are transient (transient_bodies).
        self._transient = False
        #: After :meth:`decode_spans`: the distance between its spans' starts when
        #: they are all one run of equal frames (so ``spans[2i] = spans[0] + i *
        #: spans_stride`` and every span is as long as the first), else 0.
        self.spans_stride = 0

    @property
    def buffered(self) -> int:
        """How many received bytes are waiting to complete a frame."""
        return len(self._buf) + self._big_have

    @property
    def body_remaining(self) -> int:
        """Bytes still missing from a large frame body in progress (0 if none).

        Lets a transport read a large frame in a few big reads instead of many small.
        """
        return self._big_size - self._big_have

    @property
    def at_frame_boundary(self) -> bool:
        """True if no partial frame is pending."""
        return not self._buf and not self._big_size

    def body_buffer(self) -> memoryview | None:
        """A writable view of the missing part of a preallocated large body, or None.

        A transport may read into it directly and report the bytes with
        :meth:`body_received`; the completed body is then delivered by the next
        ``decode``/``decode_messages`` call (``b""`` will do); with an allocator that
        builds ``bytes``, without any copy.
        """
        view = self._big_view
        return view[self._big_have :] if view is not None else None

    def body_received(self, n: int) -> bool:
        """Account for ``n`` bytes written into :meth:`body_buffer`; True if complete."""
        have = self._big_have + n
        if self._big_view is None or not 0 <= n <= self._big_size - self._big_have:
            raise ValueError(f"body_received({n}) does not fit the body in progress")
        self._big_have = have
        return have == self._big_size

    def transient_bodies(self) -> None:
        """From now on, large bodies up to ``PREALLOCATE_MAX`` are read into memory
        reused from body to body (:data:`_TRANSIENT_BODIES`), and :meth:`decode_spans`
        gives a completed one as a view of it: for a receiver that copies out what it
        keeps of every body and then drops the view (CURVE opens each box into the
        part it delivers), so that a stream of 1 MiB messages does not cost a fresh
        MiB of memory, faulted in page by page, for each body.  (Never for
        :meth:`decode` or :meth:`decode_messages`, whose bodies are delivered.)"""
        self._transient = True

    def _start_big(self, flags: int, size: int, first: Buffer) -> None:
        """Begin a large body of ``size`` bytes whose first bytes are ``first``."""
        have = len(first)
        prealloc: tuple[bytes | bytearray | memoryview, memoryview] | None = None
        if size <= PREALLOCATE_MAX:
            with contextlib.suppress(MemoryError):  # then collect it as it arrives
                if self._transient:
                    # Idle pooled memory: no view of it is left (a body completed
                    # earlier in this very call is still the caller's, so its memory
                    # is busy and this one gets other memory).
                    view = memoryview(_TRANSIENT_BODIES.take(size))[:size]
                    prealloc = (view, view)
                else:
                    prealloc = self._new_body(size)
        if prealloc is not None:
            body, view = prealloc
            view[:have] = first
            self._big_body = body
            self._big_view = view
        else:
            # Owned: ``first`` may be a view of a buffer the caller reuses.
            self._big_chunks = [bytes(first)]
        self._big_have = have
        self._big_size = size
        self._big_flags = flags & self._mask
        self._buf = b""

    def _finish_big(self) -> bytes:
        """The completed large body; the decoder forgets it."""
        body = self._big_body
        if body is not None:
            self._big_view = None  # the view must not outlive our hold on the body
            self._big_body = None
            if type(body) is memoryview:  # transient (pooled): the caller's view
                self._big_size = 0
                self._big_have = 0
                return body  # type: ignore[return-value]
            out = finish_body(body)
        else:
            assert self._big_chunks is not None
            out = b"".join(self._big_chunks)
            self._big_chunks = None
        self._big_size = 0
        self._big_have = 0
        return out

    def _check_size(self, size: int, done: list[tuple[int, bytes]]) -> None:
        exc: RemoteProtocolError | None = None
        if size > MAX_FRAME_SIZE:
            exc = RemoteProtocolError(
                f"frame size {size} exceeds the ZMTP maximum of 2^63-1",
                reason=b"Invalid frame size",
            )
        elif 0 <= self.max_frame_size < size:
            exc = MessageTooLarge(size, self.max_frame_size)
        if exc is not None:
            exc.frames_before = done
            raise exc

    def _resume(self, data: _Input, out: list[tuple[int, bytes]]) -> int:
        """Complete whatever an earlier call left pending, using the start of ``data``.

        Returns the offset in ``data`` where whole frames begin, or -1 if all of
        ``data`` went into a still-incomplete frame.  The pending bytes are joined with
        only as much of ``data`` as that one frame needs: a read is never copied
        whole just because a partial frame preceded it.  Nothing kept refers to
        ``data`` if it is a view (a buffer the caller reuses).
        """
        n = len(data)
        pos = 0
        if self._big_size:
            have = self._big_have
            need = self._big_size - have
            view = self._big_view
            if n < need:
                if view is not None:
                    view[have : have + n] = data
                else:
                    assert self._big_chunks is not None
                    self._big_chunks.append(bytes(data))  # no copy if it is bytes
                self._big_have = have + n
                return -1
            if need:
                rest = memoryview(data)[:need] if need < n else data
                if view is not None:
                    view[have:] = rest
                else:
                    assert self._big_chunks is not None
                    self._big_chunks.append(bytes(rest))
            out.append((self._big_flags, self._finish_big()))
            pos = need
        buf = self._buf
        if not buf:
            return pos
        # A trickling peer can complete a frame one byte per call: accumulate in a
        # bytearray (amortised appends), not by concatenating bytes (quadratic).
        if type(buf) is not bytearray:
            buf = bytearray(buf)
        hdr = 9 if buf[0] & FLAG_LONG else 2
        if len(buf) < hdr:
            take = hdr - len(buf)
            if n - pos < take:
                buf += data[pos:]
                self._buf = buf
                return -1
            buf += data[pos : pos + take]
            pos += take
        flags = buf[0]
        size = int.from_bytes(buf[1:9], "big") if hdr == 9 else buf[1]
        if size > MAX_FRAME_SIZE or 0 <= self.max_frame_size < size:
            self._buf = b""
            self._check_size(size, out)
        need = hdr + size - len(buf)
        if n - pos < need:
            if size >= BIG_BODY:
                # ``buf`` holds just the header here (a body this large is never kept
                # in ``buf``), but stay correct if it ever holds more.
                first = memoryview(data)[pos:] if len(buf) == hdr else buf[hdr:] + data[pos:]
                self._start_big(flags, size, first)
            else:
                buf += data[pos:]
                self._buf = buf
            return -1
        out.append((flags & self._mask, bytes(buf[hdr:]) + data[pos : pos + need]))
        self._buf = b""
        return pos + need

    def _header(
        self, data: _Input, pos: int, n: int, flags: int, done: list[tuple[int, bytes]]
    ) -> tuple[int, int] | None:
        """Parse the frame header at ``pos``: ``(body start, size)``, or None if the
        header is not all there yet.  Checks the size before anything is buffered."""
        if flags & FLAG_LONG:
            if n - pos < 9:
                return None
            size = int.from_bytes(data[pos + 1 : pos + 9], "big")
            start = pos + 9
        else:
            size = data[pos + 1]
            start = pos + 2
        if size > MAX_FRAME_SIZE or 0 <= self.max_frame_size < size:
            self._buf = b""
            self._check_size(size, done)
        return start, size

    def _park(self, data: _Input, pos: int, start: int, size: int, flags: int) -> None:
        """Keep an incomplete frame starting at ``pos`` (body at ``start``) for later
        (copied out of ``data``: it may be a buffer the caller reuses)."""
        if size >= BIG_BODY:
            self._start_big(flags, size, memoryview(data)[start:])
        else:
            self._buf = bytes(data[pos:])

    def decode(self, data: Buffer) -> list[tuple[int, bytes]]:
        """Feed bytes; return every frame completed by them, in order.

        Raises:
            MessageTooLarge: a frame header announced more than ``max_frame_size``.
                Like every error raised here, it carries the frames completed before
                the bad header in ``frames_before``.
            RemoteProtocolError: a size field beyond what ZMTP allows.
        """
        if type(data) is not bytes:
            data = bytes(data)
        out: list[tuple[int, bytes]] = []
        pos = self._resume(data, out)
        if pos < 0:
            return out
        n = len(data)
        mask = self._mask
        append = out.append
        limit = self.max_frame_size
        # A short frame can only break a limit below 255; otherwise skip that test.
        short_limit = limit if 0 <= limit < 255 else 255
        while n - pos >= 2:
            flags = data[pos]
            if not flags & FLAG_LONG and data[pos + 1] <= short_limit:
                # A short frame within the limit (every CURVE MESSAGE of a small
                # part): no call to parse its header.
                start = pos + 2
                size = data[pos + 1]
            else:
                header = self._header(data, pos, n, flags, out)
                if header is None:
                    break
                start, size = header
            end = start + size
            if end > n:
                self._park(data, pos, start, size, flags)
                return out
            append((flags & mask, data[start:end]))
            pos = end
        self._buf = data[pos:] if pos < n else b""
        return out

    def decode_spans(
        self, data: Buffer
    ) -> tuple[list[tuple[int, bytes]], bytes | memoryview, list[int]]:
        """:meth:`decode` without a bytes object per frame, for a receiver that reads
        the bodies where they lie and ignores the frames' flags (CURVE: every frame
        is a sealed MESSAGE, opened straight from the received bytes).

        Returns:
            ``(first, data, spans)``: ``first`` holds the frames completed with bytes
            kept from earlier calls (as :meth:`decode` gives them; at most one), then
            ``spans`` the start and end offsets in ``data`` (as ``bytes``) of each
            whole frame body after them: ``[start0, end0, start1, end1, ...]``.

            ``data`` may be a view of a buffer the caller reuses (the socket
            layer's stream buffer): it is returned as it is, and nothing kept
            refers to it, so the caller must be done with the spans before it
            reads into that buffer again.

        Raises:
            Like :meth:`decode`, with ``frames_before`` holding ``first`` and the
            frames of ``spans``.
        """
        if type(data) is not bytes and not (type(data) is memoryview and data.format == "B"):
            data = bytes(data)
        first: list[tuple[int, bytes]] = []
        spans: list[int] = []
        self.spans_stride = 0
        pos = self._resume(data, first)
        if pos < 0:
            return first, data, spans
        n = len(data)
        add = spans.append
        limit = self.max_frame_size
        # A short frame can only break a limit below 255; otherwise skip that test.
        short_limit = limit if 0 <= limit < 255 else 255
        origin = pos
        # Look for runs of equal short frames only where there is room for one.
        runs = n - pos >= 2 * RUN_MIN
        try:
            while n - pos >= 2:
                flags = data[pos]
                if not flags & FLAG_LONG and data[pos + 1] <= short_limit:
                    start = pos + 2
                    size = data[pos + 1]
                else:
                    header = self._header(data, pos, n, flags, [])
                    if header is None:
                        break
                    start, size = header
                if runs and flags in _RUN_FLAGS and size < BIG_BODY:
                    # A run of data frames of this size, short (flags 0) or long (a
                    # CURVE stream of equal messages: every MESSAGE travels so): its
                    # spans are an arithmetic sequence, laid out at C speed instead
                    # of one loop step per frame.
                    step = start - pos + size
                    k = _run_length(data, pos, step, start - pos)
                    if k:
                        pos += k * step
                        starts = range(start, start + k * step, step)
                        ends = range(start + size, pos + 1, step)  # the last is pos
                        # The spans are this run only if none came before it (a span
                        # added after it resets the stride below).
                        self.spans_stride = 0 if spans else step
                        spans += chain.from_iterable(zip(starts, ends, strict=True))
                        continue
                    runs = False  # sizes vary: stop looking in this data
                end = start + size
                if end > n:
                    self._park(data, pos, start, end - start, flags)
                    return first, data, spans
                add(start)
                add(end)
                self.spans_stride = 0
                pos = end
        except ProtocolError as exc:
            # The frames before the bad header, as decode() gives them: each frame's
            # header starts where the one before it ended.
            done = first
            at = origin
            for i in range(0, len(spans), 2):
                done.append((data[at] & self._mask, bytes(data[spans[i] : spans[i + 1]])))
                at = spans[i + 1]
            exc.frames_before = done
            raise
        self._buf = bytes(data[pos:]) if pos < n else b""
        return first, data, spans

    def decode_messages(
        self, data: Buffer, partial: list[bytes]
    ) -> tuple[list[list[bytes] | bytes], list[bytes], bool]:
        """Traffic-phase decoding: frames straight into whole messages, in one pass.

        Args:
            data: the bytes received.  Anything but ``bytes`` (a ``bytearray`` or a
                ``memoryview`` of one) is taken as a buffer the caller will reuse:
                nothing returned or kept refers to it, every body is a ``bytes`` copy,
                and a large read is not copied whole first (the socket layer's stream
                buffer, :mod:`zmtp.sockets._reader`).
            partial: the frames of a multipart message still in progress.

        Returns:
            ``(items, partial, commands)``: ``items`` holds, in arrival order, each
            completed message (a list of frame bodies) and each command (its frame
            body, as ``bytes``); ``partial`` is the message still in progress;
            ``commands`` tells whether any command is among the items, so the common
            case can hand the list on untouched.

        Raises:
            Like :meth:`decode`; the error's ``items_before`` holds the items completed
            before the bad header.
        """
        borrowed = False
        if type(data) is not bytes:
            borrowed = True
            # The loop below indexes and slices a view as it does bytes; its slices are
            # views too, copied into bytes by _own_items before anything is returned.
            # (Typed as bytes so that the hot path below stays one piece of code.)
            view = memoryview(data)
            data = cast(bytes, view if view.format == "B" and view.ndim == 1 else view.cast("B"))
        items: list[list[bytes] | bytes] = []
        append = items.append
        commands = False
        first: list[tuple[int, bytes]] = []
        # Nothing left from the last call (the usual case): no call to _resume.
        pos = self._resume(data, first) if self._buf or self._big_size else 0
        for flags, body in first:  # at most a frame or two left from the last call
            if flags & FLAG_COMMAND:
                append(body)
                commands = True
            elif flags & FLAG_MORE:
                partial.append(body)
            else:
                partial.append(body)
                append(partial)
                partial = []
        if pos < 0:
            return items, partial, commands
        n = len(data)
        limit = self.max_frame_size
        # A short frame can only break a limit below 255; otherwise skip that test.
        short_limit = limit if 0 <= limit < 255 else 255
        long_limit = MAX_FRAME_SIZE if limit < 0 else min(limit, MAX_FRAME_SIZE)
        unpack_size = _U64.unpack_from
        command_flag, more_flag = FLAG_COMMAND, FLAG_MORE
        # Look for runs of equal one-frame messages only where there is room for one.
        runs = n - pos >= 2 * RUN_MIN
        try:
            while n - pos >= 2:
                flags = data[pos]
                if flags < 2:
                    # A short data frame (flags 0 or MORE): the hot path.
                    size = data[pos + 1]
                    if size > short_limit:  # refused from the header alone
                        self._buf = b""
                        self._check_size(size, [])
                    if runs and not flags and not partial:
                        # A one-frame message: if a run of them of this very size
                        # follows (a stream of fixed-size records), cut the run at C
                        # speed instead of one loop step per frame.
                        step = size + 2
                        k = _run_length(data, pos, step, 2)
                        if k:
                            end = pos + k * step
                            items.extend(
                                map(list, _RUN_FRAME[size].iter_unpack(memoryview(data)[pos:end]))
                            )
                            pos = end
                            continue
                        # Not a run (sizes vary): stop looking for one in this data.
                        runs = False
                    start = pos + 2
                elif flags < 4 and n - pos >= 9:
                    # A long data frame (LONG, or LONG and MORE) whose header is all
                    # here: inline too, for messages of 256 octets and more.
                    size = unpack_size(data, pos + 1)[0]
                    if size > long_limit:
                        self._buf = b""
                        self._check_size(size, [])
                    if runs and flags == FLAG_LONG and not partial and size < BIG_BODY:
                        # A run of one-frame messages of this size (1 KiB records,
                        # say): as for short frames, with a 9-octet header.
                        step = size + 9
                        k = _run_length(data, pos, step, 9)
                        if k:
                            end = pos + k * step
                            cut = run_records(9, size).iter_unpack(memoryview(data)[pos:end])
                            items.extend(map(list, cut))
                            pos = end
                            continue
                        runs = False
                    start = pos + 9
                else:  # a command, or a long header still incomplete
                    header = self._header(data, pos, n, flags, [])
                    if header is None:
                        break
                    start, size = header
                end = start + size
                if end > n:
                    self._park(data, pos, start, size, flags)
                    if borrowed:
                        return _own_items(items), _own_frames(partial), commands
                    return items, partial, commands
                pos = end
                if flags & command_flag:
                    append(data[start:end])
                    commands = True
                elif flags & more_flag:
                    partial.append(data[start:end])
                elif partial:
                    partial.append(data[start:end])
                    append(partial)
                    partial = []
                else:
                    append([data[start:end]])
        except ProtocolError as exc:
            exc.items_before = _own_items(items) if borrowed else items
            raise
        if pos < n:
            self._buf = bytes(data[pos:])  # no copy if it is bytes: the slice is one
        else:
            self._buf = b""
        if borrowed:
            return _own_items(items), _own_frames(partial), commands
        return items, partial, commands


def _own_frames(frames: list[bytes]) -> list[bytes]:
    """``frames`` with every view (of a buffer the caller reuses) copied into bytes."""
    return [f if type(f) is bytes else bytes(f) for f in frames]


def _own_items(items: list[list[bytes] | bytes]) -> list[list[bytes] | bytes]:
    """:meth:`FrameDecoder.decode_messages` items with every view copied into bytes."""
    return [
        _own_frames(item) if isinstance(item, list) else bytes(item)  # no copy if bytes
        for item in items
    ]
