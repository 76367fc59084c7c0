"""The ZMTP wire grammar (3.x, and the 2.0 and 1.0 forms), written with ``construct``.

This module is the readable, executable form of the ABNF in RFC 23 and RFC 37 ("Formal
Grammar", "The NULL Security Mechanism", "Connection Heartbeating", "The
Publish-Subscribe Pattern"), and of the command bodies of the PLAIN (RFC 24) and CURVE
(RFC 26) handshakes.  It exists for two readers:

* **people**, who can read the layout of every structure on the wire in one place;
* **the test suite**, which uses it as an independent oracle: golden byte vectors are
  parsed and built with both this grammar and the hand-written codecs
  (``zmtp.protocol.framing``, ``greeting``, ``commands``, ``metadata``), and
  hypothesis checks that the two always agree.

What it is *not*
----------------
* **Not the implementation.**  Interpreted construct is some 25-70 times slower than
  the hand-written frame codec (measured: specs/libzmq-behaviour.md §A.1), so nothing on
  the per-frame path may use it: no runtime module of the package imports this one
  (``tests/test_grammar.py`` checks that).  Importing ``zmtp`` does not import
  ``construct``.
* **Never compiled on peer bytes.**  ``Struct.compile()`` drops checks: a compiled
  ``Bytes(n)`` is a bare ``read(n)`` and returns a short body without complaint.  Do not
  call ``.compile()`` on anything here and then feed it untrusted input.

Strictness
----------
The grammar follows the RFCs, so it is *stricter* than our decoders on a few points
where libzmq 4.3.5 (and therefore our hand-written code) is lenient (see
``specs/discrepancies.md``):

* byte 9 of the signature must be exactly ``7F`` (we accept any byte with bit 0 set),
  the filler must be zeros and as-server must be 0 or 1 (we do not look at either);
* a PING context is at most 16 octets (we accept and truncate longer ones);
* a READY property list and an ERROR reason must fill the command exactly.

The PLAIN and CURVE command data (``PLAIN_COMMANDS``, ``CURVE_COMMANDS``, and
``PLAIN_COMMAND`` / ``CURVE_COMMAND`` for a whole body under each mechanism) follow
libzmq 4.3.5 where RFC 26 and it differ: CURVE HELLO's padding is 72 zero octets (the
RFC's prose says 70, its grammar 72), and a MESSAGE is at least 33 octets (nonce, and
a box of at least the flags octet).  A box is only sized: its content cannot be parsed
without the keys.  libzmq's malformed PLAIN ERROR (``04 09 5E 'RROR'``) does not parse,
as it should not.

The legacy forms at the end (``V2_GREETING``, ``V2_FRAME``, ``V1_FRAME``) are RFC 15 and
RFC 13: the 2.0 reserved flag bits must be zero, and a 1.0 length counts the flags
octet (so it is at least 1).

It is *as lenient* as libzmq where the RFC's MUSTs are ignored in practice: the reserved
flag bits are parsed into ``reserved`` rather than rejected, a LONG flag may announce a
small size, and a command name is any 1-255 octets rather than only letters (libzmq's
PLAIN mechanism emits a non-letter name).  When *building*, the grammar always emits
canonical frames: reserved bits zero, LONG exactly when the body exceeds 255 octets.

construct has no type information (``ignore_missing_imports`` in pyproject), so the
schema objects are ``Any`` to mypy; the helper functions at the bottom are typed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from construct import (
    BitsInteger,
    BitStruct,
    Bytes,
    Check,
    Computed,
    Const,
    Default,
    ExprValidator,
    FixedSized,
    Flag,
    GreedyBytes,
    GreedyRange,
    IfThenElse,
    Int8ub,
    Int16ub,
    Int32ub,
    Int64ub,
    NullStripped,
    Prefixed,
    Rebuild,
    Struct,
    Switch,
    Terminated,
    len_,
    this,
)
from construct import Mapping as ValueMapping

__all__ = [
    "CANCEL_DATA",
    "COMMAND",
    "COMMAND_NAME",
    "CURVE_COMMAND",
    "CURVE_COMMANDS",
    "CURVE_HELLO_DATA",
    "CURVE_INITIATE_DATA",
    "CURVE_MESSAGE_BODY",
    "CURVE_MESSAGE_DATA",
    "CURVE_READY_DATA",
    "CURVE_WELCOME_DATA",
    "ERROR_DATA",
    "FRAME",
    "FRAMES",
    "FRAME_FLAGS",
    "GREETING",
    "LEGACY_SUBSCRIPTION",
    "MAX_FRAME_SIZE",
    "MAX_PING_CONTEXT",
    "MAX_VALUE_SIZE",
    "MECHANISM",
    "PING_DATA",
    "PLAIN_COMMAND",
    "PLAIN_COMMANDS",
    "PLAIN_HELLO_DATA",
    "PLAIN_INITIATE_DATA",
    "PLAIN_WELCOME_DATA",
    "PONG_DATA",
    "PROPERTIES",
    "PROPERTY",
    "RAW_COMMAND",
    "READY_DATA",
    "STREAM",
    "SUBSCRIBE_DATA",
    "V1_FRAME",
    "V1_FRAMES",
    "V2_FRAME",
    "V2_FRAMES",
    "V2_GREETING",
    "build_command",
    "build_frame",
    "build_greeting",
    "build_properties",
    "build_v1_frame",
    "build_v2_frame",
    "build_v2_greeting",
    "parse_command",
    "parse_frame",
    "parse_frames",
    "parse_greeting",
    "parse_mechanism_command",
    "parse_properties",
    "parse_v1_frames",
    "parse_v2_frames",
    "parse_v2_greeting",
]

# --------------------------------------------------------------------------- limits

#: RFC 23 "Framing": a long frame carries at most 2^63-1 octets.
MAX_FRAME_SIZE: Final = (1 << 63) - 1
#: RFC 37 "The NULL Security Mechanism": a property value is at most 2^31-1 octets.
MAX_VALUE_SIZE: Final = (1 << 31) - 1
#: RFC 37 "Connection Heartbeating": ping-context = 0*16OCTET.
MAX_PING_CONTEXT: Final = 16

#: RFC 23 ``mechanism-char`` (minus the NUL used for padding).
_MECHANISM_CHARS: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+")
#: RFC 37 ``name-char = ALPHA | DIGIT | "-" | "_" | "." | "+"``.
_NAME_CHARS: Final = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+"
)

# --------------------------------------------------------------------------- greeting

#: ``mechanism = 20mechanism-char``: an ASCII name, NUL padded to 20 octets.  Parses to
#: the name without its padding (``b"NULL"``) and pads it again when building.
MECHANISM: Final = ExprValidator(
    FixedSized(20, NullStripped(GreedyBytes)),
    lambda obj, ctx: len(obj) > 0 and set(obj) <= _MECHANISM_CHARS,
)

#: RFC 23/37 "Formal Grammar": ``greeting = signature version mechanism as-server
#: filler``, 64 octets.  ``padding`` must never be interpreted (RFC 23 "Version
#: Negotiation"); libzmq puts its identity length + 1 there.
GREETING: Final = Struct(
    "signature_start" / Const(b"\xff"),
    "padding" / Default(Bytes(8), bytes(8)),
    "signature_end" / Const(b"\x7f"),
    "major" / Default(Int8ub, 3),
    "minor" / Default(Int8ub, 1),
    "mechanism" / Default(MECHANISM, b"NULL"),
    "as_server" / Default(ValueMapping(Int8ub, {False: 0, True: 1}), False),
    "filler" / Const(bytes(31)),
)

# --------------------------------------------------------------------------- framing

#: The flags octet, most significant bit first (RFC 23/37 "Framing").  ``long`` is
#: computed from the body size when building, so callers set only ``more``/``command``.
FRAME_FLAGS: Final = BitStruct(
    # Bits 7-3 "MUST be zero"; libzmq ignores them on input and so do we.
    "reserved" / Default(BitsInteger(5), 0),
    # Bit 2: the frame is a command.
    "command" / Default(Flag, False),
    # Bit 1: the size field is 8 octets.  Canonical encoders set it only above 255.
    "long" / Rebuild(Flag, lambda ctx: len(ctx._.body) > 255),
    # Bit 0: more frames of this message follow ("SHALL be zero on command frames").
    "more" / Default(Flag, False),
)

#: One frame: ``flags size body``.  ``size`` is one octet, or eight in network order if
#: LONG is set; it counts only the body.
FRAME: Final = Struct(
    "flags" / FRAME_FLAGS,
    "size" / Rebuild(IfThenElse(this.flags.long, Int64ub, Int8ub), len_(this.body)),
    Check(this.size <= MAX_FRAME_SIZE),
    "body" / Bytes(this.size),
)

#: Everything after a greeting: zero or more frames, ending exactly at a frame boundary.
FRAMES: Final = Struct("frames" / GreedyRange(FRAME), Terminated)

#: A whole one-direction byte stream of a connection: the greeting, then frames
#: (``connection = greeting handshake traffic``; both handshake and traffic are frames).
STREAM: Final = Struct("greeting" / GREETING, "frames" / GreedyRange(FRAME), Terminated)

# --------------------------------------------------------------------------- metadata

#: ``property = name value``; ``name = short-size 1*255name-char``; ``value = 4OCTET
#: *OCTET`` with the size in network order.  Names stay ``bytes`` here.
PROPERTY: Final = Struct(
    "name"
    / ExprValidator(
        Prefixed(Int8ub, GreedyBytes),
        lambda obj, ctx: len(obj) > 0 and set(obj) <= _NAME_CHARS,
    ),
    "value"
    / ExprValidator(Prefixed(Int32ub, GreedyBytes), lambda obj, ctx: len(obj) <= MAX_VALUE_SIZE),
)

#: ``metadata = *property``, filling the rest of its command exactly.
PROPERTIES: Final = Struct("properties" / GreedyRange(PROPERTY), Terminated)

# --------------------------------------------------------------------------- commands

#: READY (RFC 23/37 NULL mechanism): ``command-size %d5 "READY" metadata``.
READY_DATA: Final = Struct("properties" / GreedyRange(PROPERTY))

#: ERROR: ``error-reason = short-size 0*255VCHAR`` (printability is not enforced).
ERROR_DATA: Final = Struct("reason" / Prefixed(Int8ub, GreedyBytes))

#: PING (RFC 37 "Connection Heartbeating"): a 16-bit TTL in tenths of a second, network
#: order, then 0-16 octets of context.
PING_DATA: Final = Struct(
    "ttl" / Default(Int16ub, 0),
    "context"
    / Default(ExprValidator(GreedyBytes, lambda obj, ctx: len(obj) <= MAX_PING_CONTEXT), b""),
)

#: PONG: the PING's context echoed, 0-16 octets.
PONG_DATA: Final = Struct(
    "context"
    / Default(ExprValidator(GreedyBytes, lambda obj, ctx: len(obj) <= MAX_PING_CONTEXT), b""),
)

#: SUBSCRIBE (RFC 37 "The Publish-Subscribe Pattern"): the raw subscription prefix.
SUBSCRIBE_DATA: Final = Struct("topic" / GreedyBytes)
#: CANCEL: same shape as SUBSCRIBE.
CANCEL_DATA: Final = SUBSCRIBE_DATA

#: A command frame's body: ``command-name command-data``.  RFC 37's prose speaks of a
#: "null octet separator", but its ABNF and every implementation use a length prefix
#: (specs/discrepancies.md).  ``data`` is parsed according to the name; commands this
#: grammar does not know (mechanism-specific ones such as HELLO) keep raw ``bytes``.
#: Parse a frame *body* with it, not a stream: the data runs to the end of the input.
COMMAND_NAME: Final = ExprValidator(Prefixed(Int8ub, GreedyBytes), lambda obj, ctx: len(obj) > 0)

COMMAND: Final = Struct(
    "name" / COMMAND_NAME,
    "data"
    / Switch(
        this.name,
        {
            b"READY": READY_DATA,
            b"ERROR": ERROR_DATA,
            b"PING": PING_DATA,
            b"PONG": PONG_DATA,
            b"SUBSCRIBE": SUBSCRIBE_DATA,
            b"CANCEL": CANCEL_DATA,
        },
        default=GreedyBytes,
    ),
    Terminated,
)

#: A command body with its data left raw, whatever the name: how a command looks to a
#: peer that does not understand it, and a way to build deliberately malformed data.
RAW_COMMAND: Final = Struct("name" / COMMAND_NAME, "data" / GreedyBytes)

# --------------------------------------------------------------------------- PLAIN (RFC 24)

#: PLAIN HELLO: ``hello = command-size %d5 "HELLO" username password``, each a
#: ``short-size`` then 0-255 octets, filling the command exactly (libzmq refuses extra
#: octets).
PLAIN_HELLO_DATA: Final = Struct(
    "username" / Prefixed(Int8ub, GreedyBytes),
    "password" / Prefixed(Int8ub, GreedyBytes),
    Terminated,
)

#: PLAIN WELCOME: ``%d7 "WELCOME"`` and nothing more.
PLAIN_WELCOME_DATA: Final = Struct(Terminated)

#: PLAIN INITIATE: metadata, as in READY.
PLAIN_INITIATE_DATA: Final = Struct("properties" / GreedyRange(PROPERTY), Terminated)

#: Command data by name under PLAIN (READY and ERROR as under NULL).
PLAIN_COMMANDS: Final = {
    b"HELLO": PLAIN_HELLO_DATA,
    b"WELCOME": PLAIN_WELCOME_DATA,
    b"INITIATE": PLAIN_INITIATE_DATA,
    b"READY": READY_DATA,
    b"ERROR": ERROR_DATA,
}

# --------------------------------------------------------------------------- CURVE (RFC 26)

#: crypto_box_MACBYTES: every box is 16 octets longer than what it seals.
_MAC: Final = 16


def _box_at_least(size: int) -> Any:
    """A box running to the end of the command, of at least ``size`` octets."""
    return ExprValidator(GreedyBytes, lambda obj, ctx: len(obj) >= size)


#: CURVE HELLO (200 octets with its name): version 1.0, 72 zero octets of padding (so
#: that HELLO is not smaller than WELCOME: no amplification), C' (the client's
#: transient public key), a short nonce, and the signature: Box[64 zeros](C'->S).
CURVE_HELLO_DATA: Final = Struct(
    "version" / Struct("major" / Int8ub, "minor" / Int8ub),
    "padding" / Const(bytes(72)),
    "client_transient_key" / Bytes(32),
    "short_nonce" / Int64ub,
    "signature_box" / Bytes(64 + _MAC),
    Terminated,
)

#: CURVE WELCOME (168): a long nonce and Box[S' + cookie](S->C'), the cookie being
#: 96 octets (its own long nonce and a secretbox of C' + s').
CURVE_WELCOME_DATA: Final = Struct(
    "long_nonce" / Bytes(16),
    "box" / Bytes(32 + 96 + _MAC),
    Terminated,
)

#: CURVE INITIATE (257+): the cookie echoed, a short nonce, and Box[C + vouch +
#: metadata](C'->S'), the vouch being a long nonce and an 80-octet box.
CURVE_INITIATE_DATA: Final = Struct(
    "cookie" / Struct("long_nonce" / Bytes(16), "box" / Bytes(32 + 32 + _MAC)),
    "short_nonce" / Int64ub,
    "box" / _box_at_least(32 + 16 + 32 + 32 + _MAC + _MAC),
)

#: CURVE READY (30+): a short nonce and Box[metadata](S'->C').
CURVE_READY_DATA: Final = Struct("short_nonce" / Int64ub, "box" / _box_at_least(_MAC))

#: CURVE MESSAGE (33+): a short nonce and Box[flags + data].  The flags octet inside
#: is libzmq's (01 MORE, 02 COMMAND), not RFC 26's.
CURVE_MESSAGE_DATA: Final = Struct("short_nonce" / Int64ub, "box" / _box_at_least(_MAC + 1))

#: Command data by name under CURVE (ERROR is in clear, as under NULL).
CURVE_COMMANDS: Final = {
    b"HELLO": CURVE_HELLO_DATA,
    b"WELCOME": CURVE_WELCOME_DATA,
    b"INITIATE": CURVE_INITIATE_DATA,
    b"READY": CURVE_READY_DATA,
    b"MESSAGE": CURVE_MESSAGE_DATA,
    b"ERROR": ERROR_DATA,
}

#: A whole command body under PLAIN or CURVE: the name, then the data its mechanism
#: gives that name (others raw, as in :data:`COMMAND`).
PLAIN_COMMAND: Final = Struct(
    "name" / COMMAND_NAME,
    "data" / Switch(this.name, PLAIN_COMMANDS, default=GreedyBytes),
    Terminated,
)
CURVE_COMMAND: Final = Struct(
    "name" / COMMAND_NAME,
    "data" / Switch(this.name, CURVE_COMMANDS, default=GreedyBytes),
    Terminated,
)

#: The body of a data frame after a CURVE handshake, as libzmq sends every part and
#: every command: ``07 'MESSAGE'``, then :data:`CURVE_MESSAGE_DATA`.
CURVE_MESSAGE_BODY: Final = Struct(
    "name" / Const(b"\x07MESSAGE"),
    "message" / CURVE_MESSAGE_DATA,
)

#: ZMTP 3.0 subscriptions (RFC 23 "The Publish-Subscribe Pattern"): the body of a
#: one-frame data message, ``%d1 subscription`` to subscribe or ``%d0`` to cancel.
LEGACY_SUBSCRIPTION: Final = Struct(
    "subscribe" / ValueMapping(Int8ub, {True: 1, False: 0}),
    "topic" / GreedyBytes,
)


# --------------------------------------------------------------------------- ZMTP 2.0 / 1.0

#: RFC 15 "Formal Grammar" and "Backwards Interoperability": ``greeting = signature
#: revision socket-type``, then the identity frame.  The padding is the sender's
#: identity length + 1 when it wants to detect 1.0 peers (libzmq always does).
V2_GREETING: Final = Struct(
    "signature_start" / Const(b"\xff"),
    "padding" / Bytes(8),
    "signature_end" / Const(b"\x7f"),
    "revision" / Int8ub,
    "socket_type" / Int8ub,
)

#: RFC 15 "Framing": MORE = bit 0, LONG = bit 1, bits 2-7 MUST be zero.
V2_FRAME: Final = Struct(
    "flags"
    / BitStruct(
        "reserved" / Const(0, BitsInteger(6)),
        "long" / Rebuild(Flag, lambda ctx: len(ctx._.body) > 255),
        "more" / Default(Flag, False),
    ),
    "size" / Rebuild(IfThenElse(this.flags.long, Int64ub, Int8ub), len_(this.body)),
    "body" / Bytes(this.size),
)
V2_FRAMES: Final = Struct("frames" / GreedyRange(V2_FRAME), Terminated)


def _v1_length(ctx: Any) -> int:
    return len(ctx.body) + 1


#: RFC 13 "The Framing Layer": ``length flags body`` where the length (one octet, or
#: ``FF`` and eight octets) counts the flags octet; bits 1-7 of the flags SHOULD be zero
#: (parsed into ``reserved``, not refused).
V1_FRAME: Final = Struct(
    "marker" / Rebuild(Int8ub, lambda ctx: 0xFF if _v1_length(ctx) >= 0xFF else _v1_length(ctx)),
    "length" / IfThenElse(this.marker == 0xFF, Rebuild(Int64ub, _v1_length), Computed(this.marker)),
    Check(this.length >= 1),
    "flags" / BitStruct("reserved" / Default(BitsInteger(7), 0), "more" / Default(Flag, False)),
    "body" / Bytes(this.length - 1),
)
V1_FRAMES: Final = Struct("frames" / GreedyRange(V1_FRAME), Terminated)


# --------------------------------------------------------------------------- helpers
# Thin typed wrappers, so that tests read as the protocol does.


def build_greeting(
    mechanism: bytes = b"NULL",
    *,
    major: int = 3,
    minor: int = 1,
    as_server: bool = False,
    padding: bytes = bytes(8),
) -> bytes:
    """The 64-octet greeting with the given fields."""
    return bytes(
        GREETING.build(
            {
                "padding": padding,
                "major": major,
                "minor": minor,
                "mechanism": mechanism,
                "as_server": as_server,
            }
        )
    )


def parse_greeting(data: bytes) -> Any:
    """Parse exactly 64 octets into a Container (``major``, ``minor``, ``mechanism``...)."""
    return GREETING.parse(data)


def build_frame(body: bytes, *, more: bool = False, command: bool = False) -> bytes:
    """One canonical frame: LONG exactly when the body exceeds 255 octets."""
    return bytes(FRAME.build({"flags": {"more": more, "command": command}, "body": body}))


def parse_frame(data: bytes) -> Any:
    """Parse one frame from the start of ``data`` (trailing bytes are ignored)."""
    return FRAME.parse(data)


def parse_frames(data: bytes) -> list[Any]:
    """Parse a sequence of whole frames; raises unless ``data`` ends on a boundary."""
    return list(FRAMES.parse(data).frames)


def build_command(name: bytes, data: Mapping[str, Any] | bytes = b"") -> bytes:
    """A whole command frame (flags, size and body).

    Args:
        name: the command name.
        data: the fields of a known command (``{"ttl": 15}`` for PING,
            ``{"properties": [{"name": b"Socket-Type", "value": b"PUB"}]}`` for READY), or
            raw bytes, written unchecked after the name (for commands the grammar does
            not know, or to build malformed ones on purpose).
    """
    schema = RAW_COMMAND if isinstance(data, bytes | bytearray) else COMMAND
    body = schema.build({"name": name, "data": data})
    return build_frame(bytes(body), command=True)


def parse_command(body: bytes) -> Any:
    """Parse a command frame's *body* into ``name`` and typed ``data``."""
    return COMMAND.parse(body)


def parse_mechanism_command(mechanism: bytes, body: bytes) -> Any:
    """Parse a command frame's *body* as ``mechanism`` (``NULL``, ``PLAIN``, ``CURVE``)
    defines its commands: ``name`` and typed ``data``.

    Raises:
        KeyError: an unknown mechanism.
        construct.ConstructError: the body does not fit the grammar.
    """
    schema = {b"NULL": COMMAND, b"PLAIN": PLAIN_COMMAND, b"CURVE": CURVE_COMMAND}[mechanism]
    return schema.parse(body)


def build_properties(properties: Sequence[tuple[bytes, bytes]]) -> bytes:
    """Encode a property list, in order."""
    return bytes(PROPERTIES.build({"properties": [{"name": n, "value": v} for n, v in properties]}))


def parse_properties(data: bytes) -> list[tuple[bytes, bytes]]:
    """Decode a property list that fills ``data`` exactly, as ``(name, value)`` pairs."""
    return [(p.name, p.value) for p in PROPERTIES.parse(data).properties]


def build_v2_greeting(socket_type: int, *, revision: int = 1, padding: bytes = bytes(8)) -> bytes:
    """The 12 octets of a ZMTP 2.0 greeting (signature, revision, socket type)."""
    return bytes(
        V2_GREETING.build({"padding": padding, "revision": revision, "socket_type": socket_type})
    )


def parse_v2_greeting(data: bytes) -> Any:
    """Parse the 12 octets of a 2.0 greeting (``padding``, ``revision``, ``socket_type``)."""
    return V2_GREETING.parse(data)


def build_v2_frame(body: bytes, *, more: bool = False) -> bytes:
    """One canonical ZMTP 2.0 frame: LONG exactly when the body exceeds 255 octets."""
    return bytes(V2_FRAME.build({"flags": {"more": more}, "body": body}))


def parse_v2_frames(data: bytes) -> list[Any]:
    """Parse whole 2.0 frames; raises unless ``data`` ends on a frame boundary."""
    return list(V2_FRAMES.parse(data).frames)


def build_v1_frame(body: bytes, *, more: bool = False) -> bytes:
    """One canonical ZMTP 1.0 frame: the eight-octet length from 254 body octets."""
    return bytes(V1_FRAME.build({"flags": {"more": more}, "body": body}))


def parse_v1_frames(data: bytes) -> list[Any]:
    """Parse whole 1.0 frames; raises unless ``data`` ends on a frame boundary."""
    return list(V1_FRAMES.parse(data).frames)
