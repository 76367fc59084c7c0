"""ZMTP 1.0 framing (RFC 13) and the pieces of ZMTP 2.0 (RFC 15) that 3.x lacks.

Old peers are served the way libzmq 4.3.5 serves them (specs/libzmq-behaviour.md §8):

* **ZMTP 2.0** frames are the 3.x frames without commands (flags MORE = 1, LONG = 2), so
  they go through :class:`~zmtp.protocol.framing.FrameDecoder` and
  :class:`~zmtp.protocol.framing.OutputBuffer` unchanged; what is new is only the
  greeting's socket-type byte and the identity frame, which this module encodes.
* **ZMTP 1.0** frames are ``length flags body`` where the length (one octet, or ``FF``
  and eight octets big-endian) *counts the flags octet*: an empty frame has length 1,
  and length 0 is invalid.  :class:`V1FrameDecoder` and :class:`V1OutputBuffer` are
  the two directions, written by hand like the 3.x codec: the decoder turns every
  complete frame of a read into ``(flags, body)`` in one loop, the encoder appends
  precomputed headers and passes large bodies through uncopied.

Boundaries, both checked by the golden tests: a 2.0 body of 255 bytes still has a
one-octet size (a 256-byte one is LONG); a 1.0 body of 253 bytes has a one-octet
length (254), a 254-byte one needs ``FF`` and eight octets, because length 255 *is* the
``FF`` marker.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from ._buffers import BytesLike as Buffer
from .errors import MessageTooLarge, RemoteProtocolError
from .framing import (
    BIG_BODY,
    FLAG_MORE,
    LARGE_PAYLOAD,
    MAX_FRAME_SIZE,
    OutputBuffer,
    encode_frame,
)

__all__ = [
    "V1_RAW_LONG",
    "V1FrameDecoder",
    "V1OutputBuffer",
    "encode_v1_frame",
    "v1_header",
    "v2_identity",
]

#: A 1.0 length octet of 0xFF announces an eight-octet length (RFC 13).
V1_LONG_MARK = 0xFF
#: With ``raw_flags``, added to a frame's reported flags when its length took the
#: eight-octet form (study tools need the header size; the flags octet cannot say).
V1_RAW_LONG = 0x100
#: Largest body whose 1.0 length (body + flags) fits the one-octet form.
V1_SHORT_MAX = 253

# Headers of short 1.0 frames, by flags (0 or MORE) and body size.
_V1_SHORT = [[bytes((n + 1, flags)) for n in range(V1_SHORT_MAX + 1)] for flags in (0, 1)]
_V1_LONG = struct.Struct(">BQB")  # FF, length (body + 1), flags


def v1_header(size: int, more: bool = False) -> bytes:
    """The 1.0 header (length and flags) of a frame whose body is ``size`` bytes."""
    if size <= V1_SHORT_MAX:
        return _V1_SHORT[more][size]
    return _V1_LONG.pack(V1_LONG_MARK, size + 1, FLAG_MORE if more else 0)


def encode_v1_frame(body: Buffer, more: bool = False) -> bytes:
    """One whole ZMTP 1.0 frame (header and body)."""
    data = bytes(body)
    return v1_header(len(data), more) + data


def v2_identity(routing_id: bytes) -> bytes:
    """The 2.0 identity frame (RFC 15 ``identity = final-short body``)."""
    return encode_frame(routing_id)


class V1OutputBuffer(OutputBuffer):
    """An :class:`~zmtp.protocol.framing.OutputBuffer` that writes ZMTP 1.0 frames.

    Raw writes (:meth:`write`) pass through unchanged, so what a connection queued before
    it knew its peer was 1.0 (the signature) keeps its place.
    """

    __slots__ = ()

    @classmethod
    def taking_over(cls, old: OutputBuffer) -> V1OutputBuffer:
        """A 1.0 buffer holding whatever ``old`` had pending, in order."""
        new = cls()
        new.unshift(old.chunks())
        return new

    def write_message(self, frames: Sequence[Buffer], flags: int = 0) -> int:
        """Append one multipart message in 1.0 framing; return its body size.

        Raises:
            ValueError: no frames, or ``flags`` asks for a command (1.0 has none).
            TypeError: a frame is not bytes-like.
        """
        if flags:
            raise ValueError("ZMTP 1.0 has no command frames")
        last = len(frames) - 1
        if last < 0:
            raise ValueError("a message needs at least one frame")
        pieces: list[Buffer] = []
        total = 0
        for i, given in enumerate(frames):
            if type(given) is bytes:
                frame: Buffer = given
            elif isinstance(given, bytearray | memoryview):
                # Copied: the caller may reuse a mutable buffer at once.
                frame = given if isinstance(given, memoryview) and given.readonly else bytes(given)
            elif isinstance(given, str):
                raise TypeError("frames must be bytes-like, not str (encode it first)")
            else:
                raise TypeError(f"frames must be bytes-like, not {type(given).__name__}")
            n = len(frame) if type(frame) is bytes else memoryview(frame).nbytes
            total += n
            pieces.append(v1_header(n, i < last))
            pieces.append(frame)
            if n >= LARGE_PAYLOAD:
                self._has_large = True
        self._pieces.extend(pieces)  # all or nothing: a bad frame queued none of them
        return total

    def encode_alone(self, frames: Sequence[Buffer]) -> bytes | None:
        """None: a 1.0 peer's messages always go through :meth:`write_message`."""
        return None

    def write_messages(self, messages: Iterable[Sequence[Buffer]]) -> int:
        """Append many messages in 1.0 framing; return their total body size."""
        total = 0
        for msg in messages:
            total += self.write_message(msg)
        return total


class V1FrameDecoder:
    """Incremental ZMTP 1.0 decoder, the counterpart of
    :class:`~zmtp.protocol.framing.FrameDecoder` with the same methods, so a connection
    swaps one for the other when it detects a 1.0 peer.

    Frames come out as ``(flags, body)`` with only the MORE bit of the flags (RFC 13
    reserves the others; libzmq ignores them), or with ``raw_flags`` the whole octet
    plus :data:`V1_RAW_LONG` for an eight-octet length.

    Args:
        max_frame_size: largest body accepted (-1: no limit); a larger one raises
            :class:`~zmtp.protocol.errors.MessageTooLarge` from its header.
        raw_flags: report the flags octet as received (for study tools).
    """

    __slots__ = (
        "_big",
        "_big_flags",
        "_big_have",
        "_big_size",
        "_buf",
        "_long",
        "_mask",
        "max_frame_size",
    )

    def __init__(self, max_frame_size: int = -1, *, raw_flags: bool = False) -> None:
        self.max_frame_size = max_frame_size
        self._mask = 0xFF if raw_flags else FLAG_MORE
        self._long = V1_RAW_LONG if raw_flags else 0
        self._buf = b""
        # A large body is collected as the chunks that arrive and joined once.
        self._big: list[bytes] = []
        self._big_flags = 0
        self._big_size = 0
        self._big_have = 0

    @property
    def buffered(self) -> int:
        """Received bytes waiting to complete a frame."""
        return len(self._buf) + self._big_have

    @property
    def body_remaining(self) -> int:
        """Bytes still missing from a large body in progress (a read-size hint)."""
        return self._big_size - self._big_have

    @property
    def at_frame_boundary(self) -> bool:
        """True if no partial frame is pending."""
        return not self._buf and not self._big_size

    def body_buffer(self) -> memoryview | None:
        """Always None: 1.0 bodies are not read in place (kept for the common interface)."""
        return None

    def body_received(self, n: int) -> bool:
        """Never valid here, since :meth:`body_buffer` offers nothing."""
        raise ValueError(f"body_received({n}): no 1.0 body is read in place")

    def _check(self, length: int, done: list[tuple[int, bytes]]) -> int:
        """Validate a frame's length field; return its body size."""
        exc: RemoteProtocolError | None = None
        if length == 0:
            # RFC 13 says such a frame SHOULD be discarded; libzmq 4.3.5 fails the
            # connection (specs/discrepancies.md D-L2), and so do we.
            exc = RemoteProtocolError(
                "ZMTP 1.0 frame with length 0 (the length counts the flags octet, so "
                "the smallest valid one is 1)",
                reason=b"Invalid frame length",
            )
        elif length - 1 > MAX_FRAME_SIZE:
            exc = RemoteProtocolError(
                f"ZMTP 1.0 frame length {length} is beyond any message size",
                reason=b"Invalid frame size",
            )
        elif 0 <= self.max_frame_size < length - 1:
            exc = MessageTooLarge(length - 1, self.max_frame_size)
        if exc is not None:
            self._buf = b""
            exc.frames_before = done
            raise exc
        return length - 1

    def decode(self, data: Buffer) -> list[tuple[int, bytes]]:
        """Feed bytes; return every frame they complete, in order.

        Raises:
            RemoteProtocolError: a length of 0 or beyond any size; carries the frames
                completed before it in ``frames_before``.
            MessageTooLarge: a body above ``max_frame_size``.
        """
        data = data if type(data) is bytes else bytes(data)
        out: list[tuple[int, bytes]] = []
        if self._big_size:
            need = self._big_size - self._big_have
            if len(data) < need:
                self._big.append(data)
                self._big_have += len(data)
                return out
            self._big.append(data[:need])
            out.append((self._big_flags, b"".join(self._big)))
            self._big, self._big_size, self._big_have = [], 0, 0
            data = data[need:]
        if self._buf:
            # A partial frame below BIG_BODY: join it with the new bytes (bounded copy).
            data = self._buf + data
            self._buf = b""
        n = len(data)
        pos = 0
        mask = self._mask
        append = out.append
        # Short lengths up to this one need no check (a limit below 253 lowers it).
        limit = self.max_frame_size
        short_ok = limit + 1 if 0 <= limit < V1_SHORT_MAX else V1_SHORT_MAX + 1
        while pos < n:
            length = data[pos]
            if length == V1_LONG_MARK:
                if n - pos < 9:
                    break
                length = int.from_bytes(data[pos + 1 : pos + 9], "big")
                start = pos + 10
                long_bit = self._long
            else:
                start = pos + 2
                long_bit = 0
            # The length is checked as soon as it is known, before the flags octet.
            size = length - 1 if 0 < length <= short_ok else self._check(length, out)
            if start > n:
                break
            end = start + size
            if end > n:
                if size >= BIG_BODY:
                    self._big = [data[start:]]
                    self._big_flags = (data[start - 1] & mask) | long_bit
                    self._big_size = size
                    self._big_have = n - start
                    return out
                break
            append(((data[start - 1] & mask) | long_bit, data[start:end]))
            pos = end
        self._buf = data[pos:]
        return out

    def decode_messages(
        self, data: Buffer, partial: list[bytes]
    ) -> tuple[list[list[bytes] | bytes], list[bytes], bool]:
        """Decode and assemble whole messages, like ``FrameDecoder.decode_messages``.

        Returns ``(messages, partial, False)``: 1.0 has no commands.  On an error the
        frames completed before it are in ``frames_before`` and ``partial`` is left as
        it was, so the caller can assemble them with its own state.
        """
        frames = self.decode(data)
        items: list[list[bytes] | bytes] = []
        for flags, body in frames:
            partial.append(body)
            if not flags & FLAG_MORE:
                items.append(partial)
                partial = []
        return items, partial, False
