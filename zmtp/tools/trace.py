"""Wire trace decoder: turns the raw bytes of a ZMTP conversation into readable records.

This is the study tool behind ``python -m zmtp tap`` and ``python -m zmtp decode``.  It is
sans-IO (no trio, no sockets, no clock): whoever captures the bytes feeds them in, in any
chunking, and gets back records describing what each side said.

Theory of operation
-------------------
A :class:`StreamTracer` follows **one direction** of one connection.  It runs the bytes
through the same codec the protocol layer uses (:class:`~zmtp.protocol.greeting.GreetingParser`,
:class:`~zmtp.protocol.framing.FrameDecoder` with ``raw_flags=True``, the parsers of
:mod:`zmtp.protocol.commands` and :mod:`zmtp.protocol.metadata`), so what it shows is what
this library understands, not a second opinion.  It reports, in stream order:

* :class:`Greeting`: once all 64 greeting bytes have arrived, however they were split
  (libzmq sends them in three pieces, specs/libzmq-behaviour.md §1.2);
* :class:`Command`: each command frame, with the fields of the ones this library knows
  (READY, ERROR, PING, PONG, SUBSCRIBE, CANCEL, and the PLAIN and CURVE handshake
  commands field by field: see "Security mechanisms" below);
* :class:`Message`: each data message once its last frame is in (RFC 37 §"Messages"),
  with every frame's size, raw flags byte and a bounded preview of its body;
* :class:`CurveMessage`: under CURVE, each data frame, which carries one encrypted
  MESSAGE (its short nonce and box size: a tracer has no keys);
* :class:`DecodeError`: where the bytes stopped being ZMTP and why.  The framing is lost
  at that point, so nothing more is decoded in that direction, but bytes are still
  counted;
* :class:`End`: when the direction is closed, with how many bytes were never decoded
  (a partial frame or message at EOF, or everything after a :class:`DecodeError`).

Problems that leave the framing intact (a malformed READY, a PING without its TTL, data
before the handshake, ...) do not stop the trace: the record carries a ``problem`` text
and decoding goes on, because what the peers do next is usually the interesting part.

Robustness.  The tracer must survive anything a peer (or a corrupted capture) sends, so
every exception out of the codec becomes a :class:`DecodeError` record; nothing escapes
:meth:`StreamTracer.feed`.  No size limit is applied to frames (a tap must not break a
conversation that uses big messages), but records hold at most ``preview`` bytes of each
data frame, so their size is bounded whatever the traffic.

Byte accounting.  Every record knows its stream ``offset`` and ``wire_size``; the sizes
of all records plus :attr:`End.undecoded` add up to exactly the bytes fed, which is what
lets tests check the trace against what a peer sent byte for byte.

:class:`ConversationTracer` pairs the two directions of a connection and wraps records
into :class:`TraceEvent` objects (connection id, direction, timestamp) for renderers.

Old peers (ZMTP 2.0 and 1.0, specs/libzmq-behaviour.md §8).  A direction whose own
bytes say 1.0 (first byte not ``FF``, or bit 0 of byte 9 clear) or 2.0 (byte 10 ``00`` or
``01``) is decoded as such: a :class:`LegacyGreeting` record says which version and why,
then an :class:`Identity` record, then messages in that framing.  A libzmq 4 side
talking to such a peer announces ``03`` but then sends a socket-type octet (2.0) or,
facing an unversioned 1.0 peer, only its signature, which the peer reads as a 1.0
identity header; its layout therefore depends on the *other* direction, so within a
:class:`ConversationTracer` a direction that has announced ``03`` waits (decoding
nothing) until the other direction's first 11 bytes, or its 1.0 frame, have shown
what the peer is.  (That relies on the directions being fed in the order the bytes
flowed, as the tap and timelines do: a side sends byte 11 only after reading its peer's
byte 10.  Two recordings decoded without a timeline, the libzmq 4 side's first, are
read as 3.x on that side.)

Security mechanisms.  A direction whose greeting names PLAIN or CURVE has its handshake
commands decoded field by field (specs/libzmq-behaviour.md §4.1, §4.2):

* PLAIN (RFC 24): HELLO's username and the *size* of its password.  The password itself
  is a secret even though it travels in clear, so a record holds it only when the
  tracer was made with ``show_passwords=True`` (``--show-passwords``); a malformed
  HELLO shows no bytes either.  WELCOME must be empty; INITIATE and READY carry
  metadata as NULL's READY does; libzmq's malformed ERROR (``04 09 5E 'RROR'``) is shown
  as ERROR with a note.
* CURVE (RFC 26): HELLO's version, whether its 72 padding octets are zero, C' (in Z85,
  RFC 32), its short nonce and the size of its signature box; WELCOME's long nonce and
  box size; INITIATE's cookie size, short nonce and box size; READY's and MESSAGE's
  short nonce and box size.  Everything in a box (S', the cookie, C, the vouch, the
  metadata, every message) is shown as encrypted: without the keys nobody can read it.
  A command of the wrong size keeps the fields that fit and gets a ``problem``; short
  nonces that do not increase within a direction are a ``problem`` too (RFC 26: the
  peer drops the connection).  After the handshake libzmq sends every message part, and
  every command, as one MESSAGE in a data frame of its own (outer flags ``00`` or
  ``02``, never MORE; the part's own flags are inside the box), so each data frame of a
  CURVE direction is a :class:`CurveMessage`, not a part of a :class:`Message`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from ..protocol import greeting as _greeting
from ..protocol import z85
from ..protocol._buffers import BytesLike
from ..protocol.commands import parse_command, parse_error, parse_ping
from ..protocol.framing import FLAG_COMMAND, FLAG_LONG, FLAG_MORE, FrameDecoder
from ..protocol.legacy import V1_RAW_LONG, V1FrameDecoder
from ..protocol.metadata import parse_properties

__all__ = [
    "DEFAULT_PREVIEW",
    "Command",
    "ConversationTracer",
    "CurveMessage",
    "DecodeError",
    "Direction",
    "End",
    "Frame",
    "Greeting",
    "Identity",
    "LegacyGreeting",
    "Message",
    "Notice",
    "Opened",
    "Record",
    "StreamTracer",
    "TraceEvent",
]

#: Bytes of each data frame body kept in a record, by default.
DEFAULT_PREVIEW = 32

#: Which way bytes flowed: client to server, server to client, or a lone stream whose
#: direction is unknown (a single hex dump, say).
Direction: TypeAlias = Literal["c2s", "s2c", "stream"]

# Feeding the frame decoder at most this much at a time bounds the work of the error
# salvage below (see StreamTracer._salvage).
_PIECE = 64 * 1024
# While the frame being assembled is at most this long, the tracer keeps its own copy of
# the bytes the decoder holds, to replay them if the decoder raises.
_TAIL_CAP = 128 * 1024
# libzmq's PLAIN server writes its ERROR prefix as the C literal "\x05ERROR", which C
# reads as the hex escape \x05E: the command goes out as 5E "RROR"
# (specs/libzmq-behaviour.md §4.1).
_LIBZMQ_PLAIN_ERROR = b"\x5eRROR"

# CURVE layouts (RFC 26; specs/libzmq-behaviour.md §4.2), as data sizes after the
# command name.  Defined here rather than taken from the mechanism: the tracer must not
# need PyNaCl, and it only measures.
_CURVE_MAC = 16  # crypto_box_MACBYTES: a box is 16 octets longer than what it holds
_CURVE_SHORT_NONCE = 8
_CURVE_LONG_NONCE = 16
_CURVE_KEY = 32
_CURVE_HELLO_PADDING = 72  # RFC 26's prose says 70; its grammar and libzmq use 72
_CURVE_HELLO_BOX = 64 + _CURVE_MAC  # the signature: 64 zero octets, boxed
#: HELLO: version (2), padding (72), C' (32), short nonce (8), signature box (80).
_CURVE_HELLO_DATA = 2 + _CURVE_HELLO_PADDING + _CURVE_KEY + _CURVE_SHORT_NONCE + _CURVE_HELLO_BOX
_CURVE_COOKIE = _CURVE_LONG_NONCE + 2 * _CURVE_KEY + _CURVE_MAC  # 96
#: WELCOME: long nonce (16), box of S' (32) and the cookie (96).
_CURVE_WELCOME_DATA = _CURVE_LONG_NONCE + _CURVE_KEY + _CURVE_COOKIE + _CURVE_MAC  # 160
#: What INITIATE's box holds before its metadata: C (32) and the vouch (16 + 80).
_CURVE_INITIATE_FIXED = _CURVE_KEY + _CURVE_LONG_NONCE + 2 * _CURVE_KEY + _CURVE_MAC  # 128
_CURVE_INITIATE_MIN_DATA = _CURVE_COOKIE + _CURVE_SHORT_NONCE + _CURVE_INITIATE_FIXED + _CURVE_MAC
_CURVE_READY_MIN_DATA = _CURVE_SHORT_NONCE + _CURVE_MAC  # 24
#: MESSAGE: short nonce, box of the flags octet and the payload.
_CURVE_MESSAGE_MIN_DATA = _CURVE_SHORT_NONCE + _CURVE_MAC + 1  # 25
_CURVE_MESSAGE_HEAD = b"\x07MESSAGE"


# ---------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class Greeting:
    """A side's 64-byte greeting (RFC 23/37 §"Greeting").

    Attributes:
        padding: signature bytes 1-8.  The RFC says nobody may interpret them; libzmq
            puts its routing-id length + 1 there as a big-endian integer (the ZMTP 1.0
            compatibility trick, specs/libzmq-behaviour.md §1.2).
        major, minor: the version announced.
        mechanism: the security mechanism name (``NULL``, ``PLAIN``, ``CURVE``).
        as_server: the as-server byte as sent (libzmq always sends 0,
            specs/libzmq-behaviour.md §1.4).
        filler_zero: whether bytes 33-63 are all zero, as the RFC requires.
    """

    padding: bytes
    major: int
    minor: int
    mechanism: str
    as_server: bool
    filler_zero: bool = True
    offset: int = 0

    @property
    def wire_size(self) -> int:
        """Always 64."""
        return _greeting.GREETING_LEN

    @property
    def padding_value(self) -> int:
        """The padding read as libzmq writes it: a big-endian unsigned integer."""
        return int.from_bytes(self.padding, "big")


@dataclass(frozen=True, slots=True)
class Frame:
    """One data frame: where it started, its raw flags byte, size and a body preview."""

    offset: int
    flags: int
    size: int
    preview: bytes
    #: Header size when not the 3.x/2.0 one the flags give (ZMTP 1.0: 2 or 10).
    header: int = 0

    @property
    def more(self) -> bool:
        """The MORE flag: another frame of the same message follows."""
        return bool(self.flags & FLAG_MORE)

    @property
    def header_size(self) -> int:
        """2 for a short frame, 9 for a LONG one (RFC 37 §"Framing"); 1.0: 2 or 10."""
        if self.header:
            return self.header
        return 9 if self.flags & FLAG_LONG else 2

    @property
    def wire_size(self) -> int:
        """Header plus body."""
        return self.header_size + self.size

    @property
    def truncated(self) -> bool:
        """True if the preview holds only part of the body."""
        return len(self.preview) < self.size


@dataclass(frozen=True, slots=True)
class LegacyGreeting:
    """A side of a ZMTP 2.0 or 1.0 conversation: what it opened with and why it reads so.

    Attributes:
        version: the framing this side's frames use, ``(2, 0)`` or ``(1, 0)``.
        revision: byte 10 as sent (``1`` for 2.0, ``0`` for 1.0 framing, ``3`` from a
            libzmq 4 side serving an old peer), None when the side sent no version.
        socket_type: byte 11 (RFC 15 numbers), None without a version.
        padding: signature bytes 1-8 (libzmq: routing-id length + 1), if sent.
        detected_by: why this layout, in words.
        offset, wire_size: where the greeting proper lies (0 bytes for an unversioned
            1.0 side: its first bytes are already its identity frame).
    """

    version: tuple[int, int]
    revision: int | None
    socket_type: int | None
    padding: bytes
    detected_by: str
    offset: int = 0
    wire_size: int = 0

    @property
    def socket_type_name(self) -> str | None:
        """The socket type's name, or None if unknown."""
        names = ["PAIR", "PUB", "SUB", "REQ", "REP", "DEALER", "ROUTER", "PULL", "PUSH"]
        names += ["XPUB", "XSUB"]
        st = self.socket_type
        return names[st] if st is not None and st < len(names) else None


@dataclass(frozen=True, slots=True)
class Identity:
    """The identity frame a ZMTP 2.0/1.0 side sends first (RFC 15, RFC 13)."""

    frame: Frame

    @property
    def offset(self) -> int:
        """Where the frame starts."""
        return self.frame.offset

    @property
    def wire_size(self) -> int:
        """Header plus body."""
        return self.frame.wire_size


@dataclass(frozen=True, slots=True)
class Message:
    """A complete multipart data message.

    ``problem`` describes anything that breaks RFC 37 without breaking the framing (data
    sent before the handshake, reserved flag bits set).
    """

    frames: tuple[Frame, ...]
    problem: str | None = None

    @property
    def offset(self) -> int:
        """Stream offset of the first frame."""
        return self.frames[0].offset

    @property
    def size(self) -> int:
        """Body bytes in all frames."""
        return sum(f.size for f in self.frames)

    @property
    def wire_size(self) -> int:
        """Bytes on the wire, headers included (commands interleaved with the frames, as
        libzmq allows, are not counted here but in their own records)."""
        return sum(f.wire_size for f in self.frames)


@dataclass(frozen=True, slots=True)
class Command:
    """A command frame.  Only the fields that apply to ``name`` are set.

    Attributes:
        offset: where the frame starts in the stream.
        flags: the raw flags byte.
        size: the frame body size (name-length byte, name and data).
        name: the command name (non-ASCII bytes escaped).
        properties: metadata of READY (NULL, PLAIN) and of PLAIN's INITIATE.
        reason: ERROR's reason.
        ttl: PING's time-to-live in deciseconds (RFC 37 §"Heartbeating").
        context: PING's context, or what a PONG echoes.
        topic: SUBSCRIBE's or CANCEL's topic prefix.
        username, password_size: PLAIN HELLO (RFC 24).
        password: PLAIN HELLO's password, only if the tracer was asked to show
            passwords (``show_passwords``); None otherwise, whatever was sent.
        version: CURVE HELLO's version bytes.
        padding_ok: CURVE HELLO's 72 padding octets are all zero (RFC 26).
        transient_key: CURVE HELLO's C', the client's transient public key (32 octets;
            :attr:`transient_key_z85` gives it as keys are usually written).
        nonce: the short nonce of CURVE HELLO, INITIATE, READY and MESSAGE, as the
            big-endian counter libzmq makes it (from 1 in each direction).
        long_nonce: CURVE WELCOME's 16-octet nonce.
        cookie_size: the size of CURVE INITIATE's cookie (96).
        box_size: the size of the command's CURVE box (what it holds plus 16 octets
            of authenticator).
        encrypted: the data is a CURVE box; it cannot be read without the keys.
        data: a preview of data that is not broken down into fields.
        problem: why the command is not valid ZMTP, if it is not.
    """

    offset: int
    flags: int
    size: int
    name: str
    properties: tuple[tuple[str, bytes], ...] | None = None
    reason: bytes | None = None
    ttl: int | None = None
    context: bytes | None = None
    topic: bytes | None = None
    username: bytes | None = None
    password_size: int | None = None
    version: tuple[int, int] | None = None
    encrypted: bool = False
    data: bytes = b""
    problem: str | None = None
    password: bytes | None = None
    padding_ok: bool | None = None
    transient_key: bytes | None = None
    nonce: int | None = None
    long_nonce: bytes | None = None
    cookie_size: int | None = None
    box_size: int | None = None

    @property
    def wire_size(self) -> int:
        """Header plus body."""
        return (9 if self.flags & FLAG_LONG else 2) + self.size

    @property
    def transient_key_z85(self) -> str | None:
        """:attr:`transient_key` in Z85 (RFC 32), as libzmq and pyzmq print keys."""
        if self.transient_key is None or len(self.transient_key) % 4:
            return None
        return z85.encode(self.transient_key).decode("ascii")


@dataclass(frozen=True, slots=True)
class CurveMessage:
    """A data frame of a CURVE direction: one encrypted MESSAGE (RFC 26 §"MESSAGE").

    libzmq puts every message part, and every command of the traffic phase (PING,
    SUBSCRIBE, ...), in a MESSAGE box of its own, sent as a data frame whose flags are
    ``00`` or ``02`` (LONG), never MORE nor COMMAND: the part's MORE travels inside the
    box (specs/libzmq-behaviour.md §4.2).  Without the keys, the nonce and the sizes are
    all there is to see.

    Attributes:
        offset: where the frame starts in the stream.
        flags: the frame's raw flags byte.
        size: the frame body's size (``07 MESSAGE``, nonce and box).
        nonce: the short nonce (a counter, increasing within a direction), if present.
        box_size: the box's size: 16 octets of authenticator, the flags octet, the
            payload.
        data: a preview of a body that is not a MESSAGE at all.
        problem: what is wrong with it, if anything.
    """

    offset: int
    flags: int
    size: int
    nonce: int | None = None
    box_size: int | None = None
    data: bytes = b""
    problem: str | None = None

    @property
    def wire_size(self) -> int:
        """Header plus body."""
        return (9 if self.flags & FLAG_LONG else 2) + self.size

    @property
    def payload_size(self) -> int | None:
        """Octets of part (or command) in the box, after its flags octet."""
        if self.box_size is None or self.box_size < _CURVE_MAC + 1:
            return None
        return self.box_size - _CURVE_MAC - 1


@dataclass(frozen=True, slots=True)
class DecodeError:
    """The bytes at ``offset`` are not valid ZMTP; this direction is not decoded further.

    This is a record, not an exception: the tracer never raises on bad input.
    ``data`` is a preview of the offending bytes.
    """

    offset: int
    reason: str
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class End:
    """A direction closed after ``offset`` bytes, ``undecoded`` of which no record covers."""

    offset: int
    undecoded: int = 0


@dataclass(frozen=True, slots=True)
class Opened:
    """A connection began: who connected to whom (addresses, or the files it came from)."""

    client: str
    server: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth saying that is not a decoded record (a relay failure, say)."""

    text: str


#: What a :class:`StreamTracer` produces.
Record: TypeAlias = (
    Greeting | LegacyGreeting | Identity | Command | Message | CurveMessage | DecodeError | End
)


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """A record placed in a conversation, as renderers receive it.

    ``direction`` is None for connection-level events (:class:`Opened`, most
    :class:`Notice`); ``time`` (seconds since the epoch) is None when unknown, as for a
    raw byte file decoded without its timeline.
    """

    conn: int
    direction: Direction | None
    record: Record | Opened | Notice
    time: float | None = None


# ---------------------------------------------------------------------------------------
# The tracer


class StreamTracer:
    """Decodes one direction of a ZMTP connection into records.

    Args:
        preview: bytes of each data frame body to keep (and of opaque command data).
        show_passwords: keep PLAIN passwords in :class:`Command` records (by default
            only their size is kept, and a malformed PLAIN HELLO shows no bytes).

    Feed bytes with :meth:`feed` as they arrive; call :meth:`close` at EOF.  Neither
    raises on bad input.
    """

    def __init__(self, *, preview: int = DEFAULT_PREVIEW, show_passwords: bool = False) -> None:
        if preview < 0:
            raise ValueError(f"preview must be >= 0, got {preview}")
        self.preview = preview
        self.show_passwords = show_passwords
        # The last CURVE short nonce seen in this direction (RFC 26: they increase).
        self._last_nonce = 0
        self._gparser = _greeting.GreetingParser()
        self._gbuf = bytearray()
        self.greeting: Greeting | None = None
        self._decoder: FrameDecoder | V1FrameDecoder | None = None
        self._fed = 0  # bytes given to feed()
        self._pos = 0  # bytes given to the greeting parser and frame decoder
        self._frame_pos = 0  # where the next frame starts
        self._accounted = 0  # bytes covered by emitted records
        # Bytes from _frame_pos to _pos (what the decoder holds), while that is short.
        self._tail: bytearray | None = bytearray()
        # End offset of a long frame being assembled (when _tail was dropped).
        self._big_end: int | None = None
        self._frames: list[Frame] = []  # frames of a message still missing its last
        self._handshake_done = False
        self.failed = False
        self.closed = False
        #: The other direction, set by :class:`ConversationTracer` (see the module
        #: docstring: a libzmq 4 side's layout depends on its peer).
        self.peer: StreamTracer | None = None
        #: What this side's own first bytes say: "1.0" (unversioned), "rev0", "rev1",
        #: "3" (announced 2 or more), or None while unknown.
        self.opening: str | None = None
        self.legacy: LegacyGreeting | None = None
        self._decided = False
        self._pending = bytearray()  # bytes held while the layout is undecided
        self._v1 = False
        self._expect_identity = False

    @property
    def total(self) -> int:
        """Bytes fed so far."""
        return self._fed

    @property
    def mechanism(self) -> str | None:
        """The mechanism this side announced, once its greeting is in."""
        return self.greeting.mechanism if self.greeting else None

    def feed(self, data: BytesLike) -> list[Record]:
        """Decode more bytes of this direction; return the records they complete.

        Raises:
            ValueError: called after :meth:`close` (a bug in the caller, not the input).
        """
        if self.closed:
            raise ValueError("feed() after close()")
        view = memoryview(data).cast("B")
        self._fed += len(view)
        out: list[Record] = []
        if self.failed or not view:
            return out
        if not self._decided:
            self._pending += view
            view = self._decide(out)
            if not self._decided:
                return out
        if self.greeting is None and self.legacy is None:
            need = _greeting.GREETING_LEN - len(self._gbuf)
            head, view = view[:need], view[need:]
            self._feed_greeting(head, out)
            if self.failed or self.greeting is None:
                return out
        while view and not self.failed:
            if self._big_end is not None:
                n = min(len(view), self._big_end - self._pos)
            else:
                n = min(len(view), _PIECE)
            piece, view = view[:n], view[n:]
            self._decode_piece(piece, out)
        return out

    def release(self, *, force: bool = False) -> list[Record]:
        """Decode bytes held until the peer's layout was known (``force``: give up
        waiting and read them as ZMTP 3.x); return the records that completes."""
        if self._decided or self.failed or not self._pending:
            return []
        out: list[Record] = []
        view = self._decide(out, force=force)
        if self._decided and view:
            out += self._continue(view)
        return out

    def _continue(self, view: memoryview) -> list[Record]:
        out: list[Record] = []
        if self.greeting is None and self.legacy is None:
            need = _greeting.GREETING_LEN - len(self._gbuf)
            head, view = view[:need], view[need:]
            self._feed_greeting(head, out)
            if self.failed or self.greeting is None:
                return out
        while view and not self.failed:
            n = min(len(view), _PIECE if self._big_end is None else self._big_end - self._pos)
            piece, view = view[:n], view[n:]
            self._decode_piece(piece, out)
        return out

    def _own_opening(self) -> str | None:
        buf = self._pending
        if buf[0] != 0xFF or (len(buf) >= 10 and not buf[9] & 0x01):
            return "1.0"
        if len(buf) < 11:
            return None
        return {0: "rev0", 1: "rev1"}.get(buf[10], "3")

    def _decide(self, out: list[Record], *, force: bool = False) -> memoryview:
        """Choose this direction's layout if its bytes (and the peer's) allow; return
        the bytes to decode past what was consumed (empty if still undecided)."""
        buf = self._pending
        own = self.opening = self._own_opening()
        peer = self.peer.opening if self.peer is not None else None
        empty = memoryview(b"")
        if own == "1.0" or peer == "1.0":
            if own == "1.0":
                why = (
                    f"byte 0 is {buf[0]:#04x}, not 0xff"
                    if buf[0] != 0xFF
                    else f"bit 0 of byte 9 ({buf[9]:#04x}) is clear"
                )
            else:
                why = (
                    "the peer is ZMTP 1.0: this signature is read as the header of a "
                    "1.0 identity frame"
                )
            self._start_legacy(out, LegacyGreeting((1, 0), None, None, b"", why), v1=True, at=0)
            return self._take_pending(0)
        if own is None:
            return empty
        if own in ("rev0", "rev1") or (own == "3" and peer in ("rev0", "rev1")):
            if len(buf) < 12:
                return empty
            v1 = "rev0" in (own, peer)
            if own == "3":
                assert peer is not None
                why = f"the peer announced revision {peer[-1]}: byte 11 is this side's socket type"
            else:
                why = f"byte 10 (revision) is {buf[10]:#04x}"
            legacy = LegacyGreeting(
                (1, 0) if v1 else (2, 0), buf[10], buf[11], bytes(buf[1:9]), why, 0, 12
            )
            self._start_legacy(out, legacy, v1=v1, at=12)
            return self._take_pending(12)
        if (
            len(buf) == 11
            and self.peer is not None
            and peer is None
            and not force
            and not self.peer.closed
        ):
            # A libzmq 4 side has sent its 03 and nothing more: byte 11 will be its
            # minor version or, if the peer turns out to be 2.0, its socket type.  Wait
            # for the peer's byte 10.  (Bytes fed in the order they flowed settle it:
            # such a side sends byte 11 only after reading the peer's byte 10.)
            return empty
        self._decided = True
        return self._take_pending(0)

    def _take_pending(self, at: int) -> memoryview:
        rest = memoryview(bytes(self._pending[at:]))
        self._pending = bytearray()
        return rest

    def _start_legacy(
        self, out: list[Record], legacy: LegacyGreeting, *, v1: bool, at: int
    ) -> None:
        self._decided = True
        self.legacy = legacy
        self._v1 = v1
        self._expect_identity = True
        self._decoder = self._new_decoder()
        self._pos = self._frame_pos = self._accounted = at
        out.append(legacy)

    def _new_decoder(self) -> FrameDecoder | V1FrameDecoder:
        if self._v1:
            return V1FrameDecoder(raw_flags=True)
        return FrameDecoder(raw_flags=True)

    def close(self) -> list[Record]:
        """The direction ended (EOF): return the final :class:`End` record."""
        if self.closed:
            return []
        out = self.release(force=True)
        self.closed = True
        out.append(End(offset=self._fed, undecoded=self._fed - self._accounted))
        return out

    def interrupt(self, reason: str) -> list[Record]:
        """Stop decoding for a reason outside the stream (bytes missing from a capture).

        Returns a :class:`DecodeError` at the current end of the stream, or nothing if
        decoding already stopped.
        """
        if self.failed or self.closed:
            return []
        out: list[Record] = []
        self._fail(out, self._fed, reason, b"")
        return out

    # -- greeting ------------------------------------------------------------------------

    def _feed_greeting(self, head: memoryview, out: list[Record]) -> None:
        buf = self._gbuf
        try:
            self._gparser.feed(head)
            parsed = self._gparser.greeting
        except Exception as exc:
            seen = bytes(buf) + bytes(head)
            if seen[0] != 0xFF:
                offset = 0
            elif len(seen) >= _greeting.SIGNATURE_LEN and not seen[9] & 0x01:
                offset = 9
            elif len(seen) > _greeting.SIGNATURE_LEN and seen[10] < 3:
                offset = 10
            else:  # nothing else raises today; point at the start of this piece
                offset = len(buf)
            self._fail(out, offset, f"bad greeting: {exc}", seen[offset:])
            return
        buf += head
        self._pos = len(buf)
        if parsed is None:
            return
        self.greeting = Greeting(
            padding=parsed.padding,
            major=parsed.major,
            minor=parsed.minor,
            mechanism=parsed.mechanism.decode("ascii", "backslashreplace"),
            as_server=parsed.as_server,
            filler_zero=not any(buf[33:]),
        )
        self._gbuf = bytearray()  # no longer needed
        self._decoder = FrameDecoder(raw_flags=True)
        self._frame_pos = self._accounted = _greeting.GREETING_LEN
        out.append(self.greeting)

    # -- frames --------------------------------------------------------------------------

    def _decode_piece(self, piece: memoryview, out: list[Record]) -> None:
        decoder: FrameDecoder | V1FrameDecoder | None = self._decoder
        assert decoder is not None
        try:
            frames = decoder.decode(piece)
        except Exception as exc:
            self._salvage(piece, exc, out)
            return
        self._pos += len(piece)
        self._take_frames(frames, out)
        self._update_tail(piece)

    def _update_tail(self, piece: memoryview) -> None:
        """Keep a copy of the bytes the decoder holds while they are few.

        The frame decoder raises on a bad frame header and drops the frames it completed
        earlier in the same call; the copy lets :meth:`_salvage` replay them.  A long
        frame is not copied (its header is known good once we see its size): instead the
        tracer stops each decoder call at that frame's end, so no call can both complete
        it and raise.
        """
        pending = self._pos - self._frame_pos
        if self._big_end is not None:
            if self._pos >= self._big_end:
                # The long frame completed exactly at the end of this piece.
                self._big_end = None
                self._tail = bytearray()
            return
        tail = self._tail
        assert tail is not None
        tail += piece
        del tail[: len(tail) - pending]
        if pending > _TAIL_CAP:
            flags = tail[0]
            if self._v1:
                if tail[0] == 0xFF:
                    header, size = 10, int.from_bytes(tail[1:9], "big") - 1
                else:
                    header, size = 2, tail[0] - 1
            elif flags & FLAG_LONG:
                header, size = 9, int.from_bytes(tail[1:9], "big")
            else:
                header, size = 2, tail[1]
            self._big_end = self._frame_pos + header + size
            self._tail = None

    def _salvage(self, piece: memoryview, exc: Exception, out: list[Record]) -> None:
        """The decoder raised: recover the frames before the bad header, then fail.

        The decoder's state before this call is exactly the saved tail (a frame boundary
        followed by a partial frame).  A fresh decoder fed a prefix of ``tail + piece``
        raises if and only if the prefix holds the whole bad header, so a binary search
        finds the longest prefix that decodes; its frames are real, and the bad header
        starts right after them.
        """
        if self._tail is None:  # not reachable: see _update_tail
            self._fail(out, self._frame_pos, f"bad frame: {exc}", b"")
            return
        buf = bytes(self._tail) + bytes(piece)
        good, bad = 0, len(buf)
        while bad - good > 1:
            mid = (good + bad) // 2
            try:
                self._new_decoder().decode(buf[:mid])
            except Exception:
                bad = mid
            else:
                good = mid
        try:
            frames = self._new_decoder().decode(buf[:good])
        except Exception:  # pragma: no cover - the search only keeps prefixes that decode
            frames = []
        base = self._frame_pos
        self._take_frames(frames, out)
        at = self._frame_pos - base
        self._fail(out, self._frame_pos, f"bad frame: {exc}", buf[at:])

    def _take_frames(self, frames: list[tuple[int, bytes]], out: list[Record]) -> None:
        for raw_flags, body in frames:
            start = self._frame_pos
            size = len(body)
            header = 0
            flags = raw_flags
            if self._v1:
                header = 10 if raw_flags & V1_RAW_LONG else 2
                flags = raw_flags & 0xFF
            self._frame_pos += (header or (9 if flags & FLAG_LONG else 2)) + size
            if self._expect_identity:
                # RFC 13/15: the first frame of an old peer is its identity, whatever
                # its flags (libzmq 4's is 7F, its signature read as a 1.0 header).
                self._expect_identity = False
                self._handshake_done = True
                identity = Identity(Frame(start, flags, size, bytes(body[: self.preview]), header))
                self._accounted += identity.wire_size
                out.append(identity)
                continue
            if flags & FLAG_COMMAND and not self._v1:
                command = self._command(start, flags, body)
                self._accounted += command.wire_size
                out.append(command)
                continue
            if self.mechanism == "CURVE":
                # Each data frame is a whole MESSAGE (see CurveMessage); a MORE flag on
                # one is reported, not followed.
                curve_message = self._curve_message(start, flags, body)
                self._accounted += curve_message.wire_size
                out.append(curve_message)
                continue
            self._frames.append(Frame(start, flags, size, bytes(body[: self.preview]), header))
            if flags & FLAG_MORE:
                continue
            message = Message(tuple(self._frames), self._message_problem())
            self._frames = []
            self._accounted += message.wire_size
            out.append(message)

    def _message_problem(self) -> str | None:
        problems = []
        if not self._handshake_done:
            # RFC 37: traffic starts after the handshake; libzmq closes the connection.
            problems.append("data before this side finished its handshake")
        reserved = 0xFE if self._v1 else 0xFC if self.legacy is not None else 0xF8
        if any(f.flags & reserved for f in self._frames):
            problems.append("reserved flag bits set (libzmq ignores them)")
        return "; ".join(problems) or None

    def _fail(self, out: list[Record], offset: int, reason: str, data: bytes) -> None:
        self.failed = True
        self._tail = None
        self._decoder = None
        self._frames = []
        out.append(DecodeError(offset=offset, reason=reason, data=bytes(data[: self.preview])))

    # -- commands ------------------------------------------------------------------------

    def _command(self, offset: int, flags: int, body: bytes) -> Command:
        size = len(body)
        problems: list[str] = []
        if flags & FLAG_MORE:
            problems.append("MORE flag set on a command (RFC 37 forbids it; libzmq ignores it)")
        if flags & 0xF8:
            problems.append("reserved flag bits set (libzmq ignores them)")
        if body.startswith(_LIBZMQ_PLAIN_ERROR):
            problems.append(
                "malformed name 0x5E 'RROR': libzmq 4.3.5's PLAIN ERROR, whose '\\x05ERROR' "
                "prefix C reads as the escape \\x05E"
            )
            reason = parse_error(body[5:])
            return Command(offset, flags, size, "ERROR", reason=reason, problem="; ".join(problems))
        try:
            cmd = parse_command(body)
        except Exception as exc:
            problems.append(f"malformed command: {exc}")
            return Command(
                offset, flags, size, "?", data=body[: self.preview], problem="; ".join(problems)
            )
        name = cmd.name.decode("ascii", "backslashreplace")
        try:
            fields = self._command_fields(name, cmd.data, problems)
        except Exception as exc:
            problems.append(f"malformed {name}: {exc}")
            fields = {"data": cmd.data[: self.preview]}
            if name == "HELLO" and self.mechanism == "PLAIN" and not self.show_passwords:
                # Whatever it holds may be the password (RFC 24 sends it in clear).
                fields = {}
                problems.append("its bytes are not shown: they may hold the password")
        if name in ("READY", "ERROR") or (name == "INITIATE" and self.mechanism != "NULL"):
            self._handshake_done = True
        problem = "; ".join(problems) or None
        return Command(offset, flags, size, name, problem=problem, **fields)

    def _command_fields(self, name: str, data: bytes, problems: list[str]) -> dict[str, Any]:
        """The fields of a known command (raises on malformed data)."""
        mechanism = self.mechanism
        curve = mechanism == "CURVE"
        opaque: dict[str, Any] = {"data": data[: self.preview]}
        if name == "ERROR":  # plaintext under every mechanism (RFC 26, RFC 37)
            if data and data[0] > len(data) - 1:
                problems.append(f"reason length {data[0]} overshoots the command")
            return {"reason": parse_error(data)}
        if name == "PING":
            ttl, context = parse_ping(data)
            if len(data) < 2:
                problems.append(
                    "PING without its 2-byte TTL (libzmq 4.3.5 answers with 16 bytes of "
                    "leaked memory)"
                )
                return {"context": b""}
            if len(context) > 16:
                problems.append(f"PING context of {len(context)} bytes (RFC 37: at most 16)")
            return {"ttl": ttl, "context": context}
        if name == "PONG":
            return {"context": data}
        if name in ("SUBSCRIBE", "CANCEL"):
            return {"topic": data}
        if curve and name in ("HELLO", "WELCOME", "INITIATE", "READY", "MESSAGE"):
            return self._curve_fields(name, data, problems)
        if name == "READY" or (name == "INITIATE" and mechanism == "PLAIN"):
            props = parse_properties(data, max_size=len(data))
            return {"properties": tuple(props.items())}
        if name == "HELLO" and mechanism == "PLAIN":
            # RFC 24: username-size username password-size password
            if not data or len(data) < 1 + data[0] + 1:
                raise ValueError("truncated username")
            ulen = data[0]
            plen = data[1 + ulen]
            if len(data) != 2 + ulen + plen:
                raise ValueError(f"password length {plen} does not match the command")
            hello: dict[str, Any] = {"username": data[1 : 1 + ulen], "password_size": plen}
            if self.show_passwords:
                hello["password"] = data[2 + ulen :]
            return hello
        if name == "WELCOME" and mechanism == "PLAIN":
            if data:
                problems.append("PLAIN WELCOME must be empty (libzmq rejects extra bytes)")
            return opaque
        return opaque

    def _curve_fields(self, name: str, data: bytes, problems: list[str]) -> dict[str, Any]:
        """A CURVE handshake command (or MESSAGE) measured field by field (RFC 26).

        Boxes cannot be opened without the keys, so they are only sized.  A command of
        the wrong size keeps the fields that fit, with a problem saying what is wrong.
        """
        size = len(data)
        total = 1 + len(name) + size  # the command's size as RFC 26 counts it
        fields: dict[str, Any] = {"encrypted": True}
        if name == "HELLO":
            nonce_at = 2 + _CURVE_HELLO_PADDING + _CURVE_KEY
            if size != _CURVE_HELLO_DATA:
                problems.append(f"CURVE HELLO of {total} B, not 200")
            if size >= 2:
                fields["version"] = (data[0], data[1])
                if (data[0], data[1]) != (1, 0):
                    problems.append(f"CURVE version {data[0]}.{data[1]} (libzmq speaks 1.0)")
            if size >= 2 + _CURVE_HELLO_PADDING:
                fields["padding_ok"] = not any(data[2 : 2 + _CURVE_HELLO_PADDING])
                if not fields["padding_ok"]:
                    problems.append("CURVE HELLO padding is not all zero")
            if size >= nonce_at:
                fields["transient_key"] = data[2 + _CURVE_HELLO_PADDING : nonce_at]
            self._short_nonce(fields, data, nonce_at, name, problems)
        elif name == "WELCOME":
            if size != _CURVE_WELCOME_DATA:
                problems.append(f"CURVE WELCOME of {total} B, not 168")
            if size >= _CURVE_LONG_NONCE:
                fields["long_nonce"] = data[:_CURVE_LONG_NONCE]
                fields["box_size"] = size - _CURVE_LONG_NONCE
        elif name == "INITIATE":
            if size < _CURVE_INITIATE_MIN_DATA:
                problems.append(f"CURVE INITIATE of {total} B, at least 257")
            fields["cookie_size"] = min(size, _CURVE_COOKIE)
            self._short_nonce(fields, data, _CURVE_COOKIE, name, problems)
        else:  # READY, MESSAGE: short nonce, box
            least = _CURVE_READY_MIN_DATA if name == "READY" else _CURVE_MESSAGE_MIN_DATA
            if size < least:
                problems.append(f"CURVE {name} of {total} B, at least {total - size + least}")
            self._short_nonce(fields, data, 0, name, problems)
        if "box_size" not in fields:
            # Too short to reach its box: show what there is.
            fields["data"] = data[: self.preview]
        return fields

    def _short_nonce(
        self, fields: dict[str, Any], data: bytes, at: int, name: str, problems: list[str]
    ) -> None:
        """Read the 8-octet short nonce at ``at`` (the box follows it), if it is there."""
        end = at + _CURVE_SHORT_NONCE
        if len(data) < end:
            return
        nonce = int.from_bytes(data[at:end], "big")
        fields["nonce"] = nonce
        fields["box_size"] = len(data) - end
        if nonce <= self._last_nonce:
            # RFC 26: short nonces increase; libzmq drops a connection whose do not.
            problems.append(
                f"{name} short nonce {nonce} does not follow {self._last_nonce} "
                "(replayed or reordered: the peer drops the connection)"
            )
        self._last_nonce = max(self._last_nonce, nonce)

    def _curve_message(self, offset: int, flags: int, body: bytes) -> CurveMessage:
        """A data frame of a CURVE direction, read as the MESSAGE libzmq sends."""
        problems: list[str] = []
        if not self._handshake_done:
            problems.append("data before this side finished its CURVE handshake")
        if flags & FLAG_MORE:
            problems.append(
                "MORE flag set on a CURVE MESSAGE frame (libzmq sends 00 or 02: the "
                "part's MORE is inside the box)"
            )
        if flags & 0xF8:
            problems.append("reserved flag bits set (libzmq ignores them)")
        if not body.startswith(_CURVE_MESSAGE_HEAD):
            problems.append(
                "not a CURVE MESSAGE: under CURVE every data frame must be one (libzmq "
                "drops the connection)"
            )
            preview = bytes(body[: self.preview])
            return CurveMessage(offset, flags, len(body), data=preview, problem="; ".join(problems))
        fields = self._curve_fields("MESSAGE", body[len(_CURVE_MESSAGE_HEAD) :], problems)
        return CurveMessage(
            offset,
            flags,
            len(body),
            nonce=fields.get("nonce"),
            box_size=fields.get("box_size"),
            data=fields.get("data", b""),
            problem="; ".join(problems) or None,
        )


class ConversationTracer:
    """Both directions of one connection, producing :class:`TraceEvent` objects.

    Args:
        conn: the connection id put on every event.
        preview, show_passwords: passed to each :class:`StreamTracer`.
    """

    def __init__(
        self, conn: int, *, preview: int = DEFAULT_PREVIEW, show_passwords: bool = False
    ) -> None:
        self.conn = conn
        self.tracers: dict[Direction, StreamTracer] = {
            "c2s": StreamTracer(preview=preview, show_passwords=show_passwords),
            "s2c": StreamTracer(preview=preview, show_passwords=show_passwords),
        }
        self.tracers["c2s"].peer = self.tracers["s2c"]
        self.tracers["s2c"].peer = self.tracers["c2s"]
        self._mismatch_reported = False

    def event(
        self,
        record: Record | Opened | Notice,
        time: float | None = None,
        direction: Direction | None = None,
    ) -> TraceEvent:
        """Wrap a connection-level record (or any record) for this connection."""
        return TraceEvent(self.conn, direction, record, time)

    def feed(
        self, direction: Direction, data: BytesLike, time: float | None = None
    ) -> list[TraceEvent]:
        """Bytes seen in one direction; returns the events they complete."""
        records = self.tracers[direction].feed(data)
        events = [TraceEvent(self.conn, direction, r, time) for r in records]
        # This direction may have shown what the other one is waiting to know.
        other: Direction = "s2c" if direction == "c2s" else "c2s"
        events += [TraceEvent(self.conn, other, r, time) for r in self.tracers[other].release()]
        if any(isinstance(r, Greeting) for r in records):
            events.extend(self._check_mechanisms(time))
        return events

    def close(self, direction: Direction, time: float | None = None) -> list[TraceEvent]:
        """One direction reached EOF."""
        records = self.tracers[direction].close()
        events = [TraceEvent(self.conn, direction, r, time) for r in records]
        other: Direction = "s2c" if direction == "c2s" else "c2s"
        events += [TraceEvent(self.conn, other, r, time) for r in self.tracers[other].release()]
        return events

    def interrupt(
        self, direction: Direction, reason: str, time: float | None = None
    ) -> list[TraceEvent]:
        """Stop decoding a direction for an outside reason (see StreamTracer.interrupt)."""
        records = self.tracers[direction].interrupt(reason)
        return [TraceEvent(self.conn, direction, r, time) for r in records]

    def _check_mechanisms(self, time: float | None) -> list[TraceEvent]:
        ours, theirs = self.tracers["c2s"].mechanism, self.tracers["s2c"].mechanism
        if ours is None or theirs is None or ours == theirs or self._mismatch_reported:
            return []
        self._mismatch_reported = True
        # RFC 23 §"Authentication": both sides must use the same mechanism; libzmq
        # closes without an ERROR (specs/libzmq-behaviour.md §1.4).
        text = f"mechanism mismatch: client {ours}, server {theirs} (libzmq closes)"
        return [TraceEvent(self.conn, None, Notice(text), time)]
