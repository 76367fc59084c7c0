"""ZMTP 3.x framing (RFC 23/37 "Framing"): the hot path, written by hand.

A frame is ``flags(1) size(1 or 8, network order) body(size)``.  Flag bits:

* ``FLAG_MORE`` (0x01): more frames of the same message follow;
* ``FLAG_LONG`` (0x02): the size field is 8 octets instead of 1;
* ``FLAG_COMMAND`` (0x04): the frame is a command, not message data.

Bits 3-7 are reserved.  We never set them; on input we ignore them, as libzmq 4.3.5
does (zmtp-notes §2.1): being stricter than the reference peer only breaks interop.

Theory of operation
-------------------
:class:`FrameDecoder` turns a byte stream into ``(flags, body)`` pairs.  One call decodes
*every* complete frame it holds, so a receive of 64 KiB carrying 2000 small frames costs
one Python call and 2000 loop iterations, not 2000 calls.  Bytes that do not yet form a
whole frame are kept.  A frame whose body is large is not accumulated by repeated
concatenation (quadratic); its chunks are collected in a list and joined once.

Frame sizes come from the peer, so nothing is ever allocated from a size field: the body
is built only from bytes that actually arrived, and ``max_frame_size`` rejects a frame
from its header alone.

:func:`encode_message` writes a multipart message into an output buffer.  Small frames are
copied into one ``bytearray`` so that many messages go out in one ``send_all``; a payload
of ``LARGE_PAYLOAD`` bytes or more is passed through as its own chunk, never copied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._types import BytesLike as Buffer
from .errors import MessageTooLarge, RemoteProtocolError

__all__ = [
    "FLAG_COMMAND",
    "FLAG_LONG",
    "FLAG_MORE",
    "LARGE_PAYLOAD",
    "MAX_FRAME_SIZE",
    "FrameDecoder",
    "OutputBuffer",
    "encode_frame",
    "encode_message",
    "encode_messages",
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

#: Above this size an incomplete body is collected as a list of chunks (joined once)
#: rather than by growing the pending buffer.
_CHUNKED_BODY = 64 * 1024


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


def encode_message(out: OutputBuffer, frames: Sequence[Buffer], flags: int = 0) -> int:
    """Append the frames of one multipart message to ``out``.

    Args:
        out: where the encoded bytes go.
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
    pieces = out._pieces
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
                pieces.append(bytes((f | FLAG_LONG,)) + n.to_bytes(8, "big"))
                if n >= LARGE_PAYLOAD:
                    out._has_large = True
            pieces.append(frame)
    except BaseException:
        # A bad frame must not leave the frames before it queued: the next message
        # would be glued onto them and the peer would receive one merged message
        # (RFC 23/37 "Messages": all frames or none).
        del pieces[mark:]
        raise
    return total


def encode_messages(out: OutputBuffer, messages: Iterable[Sequence[Buffer]]) -> int:
    """Append many messages; return their total body size.

    Single-frame messages of bytes under 256 bytes, the commonest case by far, take a
    fast path of two list appends each.
    """
    pieces = out._pieces
    append = pieces.append
    short = _SHORT_DATA
    total = 0
    for msg in messages:
        if len(msg) == 1:
            frame = msg[0]
            if type(frame) is bytes:
                n = len(frame)
                if n < 256:
                    append(short[n])
                    append(frame)
                    total += n
                    continue
        total += encode_message(out, msg)
    return total


class FrameDecoder:
    """Incremental decoder from bytes to ``(flags, body)`` frames.

    Args:
        max_frame_size: frames announcing a larger body raise
            :class:`~zmtp.errors.MessageTooLarge`; ``-1`` means no limit (libzmq's
            ``ZMQ_MAXMSGSIZE`` default).
        raw_flags: report each frame's flags byte exactly as received (LONG and
            reserved bits included), for study tools.  By default only MORE and
            COMMAND are reported, which is all the protocol layer needs.
    """

    __slots__ = (
        "_big_chunks",
        "_big_flags",
        "_big_have",
        "_big_size",
        "_buf",
        "_mask",
        "max_frame_size",
    )

    def __init__(self, max_frame_size: int = -1, *, raw_flags: bool = False) -> None:
        self.max_frame_size = max_frame_size
        self._mask = 0xFF if raw_flags else FLAG_MORE | FLAG_COMMAND
        self._buf: bytes = b""
        self._big_chunks: list[Buffer] | None = None
        self._big_flags = 0
        self._big_size = 0
        self._big_have = 0

    @property
    def buffered(self) -> int:
        """How many received bytes are waiting to complete a frame."""
        return len(self._buf) + self._big_have

    @property
    def body_remaining(self) -> int:
        """Bytes still missing from a large frame body in progress (0 if none).

        Lets a transport read a large frame in a few big reads instead of many small.
        """
        return self._big_size - self._big_have if self._big_chunks is not None else 0

    @property
    def at_frame_boundary(self) -> bool:
        """True if no partial frame is pending."""
        return not self._buf and self._big_chunks is None

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

    def decode(self, data: Buffer) -> list[tuple[int, bytes]]:
        """Feed bytes; return every frame completed by them, in order.

        Raises:
            MessageTooLarge: a frame header announced more than ``max_frame_size``.
                Like every error raised here, it carries the frames completed before
                the bad header in ``frames_before``.
            RemoteProtocolError: a size field beyond what ZMTP allows.
        """
        out: list[tuple[int, bytes]] = []
        if self._big_chunks is not None:
            data = self._feed_big(data, out)
            if self._big_chunks is not None:
                return out
        buf = self._buf + data if self._buf else bytes(data)
        n = len(buf)
        pos = 0
        limit = self.max_frame_size
        mask = self._mask
        append = out.append
        while n - pos >= 2:
            flags = buf[pos]
            if flags & FLAG_LONG:
                if n - pos < 9:
                    break
                size = int.from_bytes(buf[pos + 1 : pos + 9], "big")
                start = pos + 9
                if size > MAX_FRAME_SIZE or 0 <= limit < size:
                    self._buf = b""
                    self._check_size(size, out)
            else:
                size = buf[pos + 1]
                start = pos + 2
                if 0 <= limit < size:
                    self._buf = b""
                    self._check_size(size, out)
            end = start + size
            if end > n:
                if size >= _CHUNKED_BODY:
                    # Switch to chunk collection for the rest of this body.
                    first = memoryview(buf)[start:]
                    self._big_chunks = [first]
                    self._big_have = len(first)
                    self._big_size = size
                    self._big_flags = flags & mask
                    self._buf = b""
                    return out
                break
            append((flags & mask, buf[start:end]))
            pos = end
        self._buf = buf[pos:] if pos else buf
        return out

    def _feed_big(self, data: Buffer, out: list[tuple[int, bytes]]) -> Buffer:
        # Pieces are kept as views where possible: the join below is then the only
        # copy a large body makes after the kernel's.
        chunks = self._big_chunks
        assert chunks is not None
        need = self._big_size - self._big_have
        if type(data) is not bytes:
            data = bytes(data)
        n = len(data)
        if n < need:
            chunks.append(data)
            self._big_have += n
            return b""
        if n == need:
            chunks.append(data)
            rest: Buffer = b""
        else:
            view = memoryview(data)
            chunks.append(view[:need])
            rest = view[need:]
        out.append((self._big_flags, b"".join(chunks)))
        self._big_chunks = None
        self._big_have = 0
        return rest
