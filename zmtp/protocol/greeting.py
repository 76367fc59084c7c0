"""The ZMTP greeting (RFC 23 §"Greeting", RFC 37): 64 bytes, exchanged in stages.

Layout::

    0      FF                signature start
    1-8    padding           "must not be interpreted" (libzmq puts identity length+1 here)
    9      7F                signature end; bit 0 set tells a ZMTP 1.0 peer apart
    10     major version     03
    11     minor version     00 (RFC 23) or 01 (RFC 37)
    12-31  mechanism         ASCII, NUL padded: NULL, PLAIN, CURVE
    32     as-server         00 or 01
    33-63  filler            zeros

Theory of operation
-------------------
libzmq 4.3.5 sends its greeting in three pieces, each waiting on the peer
(specs/libzmq-behaviour.md §1.2): the 10-byte signature at once, the major version once
it has our signature, the rest once it has our major version.  A peer that waits for
libzmq's whole greeting before sending its own deadlocks.

We do the same for the same reason it exists: the rest of the greeting (and everything
after it) depends on the version the peer announces.  So :func:`greeting_head` (signature
and major version, 11 bytes) goes out the moment the connection exists, and
:func:`greeting_tail` (53 bytes) once :class:`GreetingParser` has seen the peer's major
version.  A ZMTP 2.0 or 1.0 peer is served at that point instead, without the tail ever
having been sent.

Older peers (RFC 13, RFC 15; specs/libzmq-behaviour.md §8)
---------------------------------------------------------
A :class:`Connection <zmtp.protocol.connection.Connection>` actually sends only the
10-byte :func:`signature` at first, as libzmq does: its padding holds the routing-id
length + 1, so that a ZMTP 1.0 peer reads it as the header of our identity frame, and
the major version follows only once the peer's signature shows it is versioned (a 1.0
peer must never see that byte).  With ``legacy=True`` the parser detects old peers:

* first byte not ``FF``, or bit 0 of byte 9 clear: an unversioned **ZMTP 1.0** peer;
  every byte it sent, from the first, is 1.0 framing (its identity frame first);
* byte 10 (the revision) ``00`` or ``01``: a versioned peer speaking **1.0 framing** or
  **ZMTP 2.0**; byte 11 is its socket type, and the 2.0/1.0 frames follow;
* byte 10 ``02``: refused (D-15); ``03`` and up: the 64-byte 3.x greeting.

Either legacy outcome is reported as :attr:`GreetingParser.legacy`, a
:class:`LegacyGreeting` that also says which byte gave the peer away.

:class:`GreetingParser` accepts the peer's bytes in any segmentation and reports, in
order, :attr:`GreetingParser.versioned` (after 1 or 10 bytes), :attr:`GreetingParser.major`
(after 11 bytes) and a complete :class:`Greeting` (after 64) or :class:`LegacyGreeting`.
Bytes past the greeting are returned as leftover for the handshake.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._buffers import BytesLike as Buffer
from .errors import GreetingError, VersionError

__all__ = [
    "GREETING_LEN",
    "MECHANISM_LEN",
    "SIGNATURE_LEN",
    "VERSION_MAJOR",
    "VERSION_MINOR",
    "Greeting",
    "GreetingParser",
    "LegacyGreeting",
    "build_greeting",
    "greeting_head",
    "greeting_tail",
    "signature",
]

#: Bytes 0-9: FF, 8 bytes of padding, 7F.
SIGNATURE_LEN = 10
#: The whole greeting.
GREETING_LEN = 64
#: Bytes 12-31 hold the mechanism name, NUL padded.
MECHANISM_LEN = 20
#: We speak ZMTP 3.1 (RFC 37).
VERSION_MAJOR = 3
VERSION_MINOR = 1

_FILLER = bytes(31)
# The revision byte of the older protocols (RFC 15 for 2.0; 1.0 had none but libzmq
# numbers it 0).
_OLD_REVISIONS = {0: "ZMTP 1.0", 1: "ZMTP 2.0"}


def greeting_head(major: int = VERSION_MAJOR) -> bytes:
    """Signature plus major version: the first 11 bytes, sent without waiting."""
    return b"\xff" + bytes(8) + b"\x7f" + bytes((major,))


def signature(routing_id_length: int = 0) -> bytes:
    """The 10-byte signature libzmq sends first: ``FF``, routing-id length + 1 as eight
    big-endian octets, ``7F``.

    To a ZMTP 1.0 peer this is the header of our identity frame (RFC 15 §"Backwards
    Interoperability"; the flags octet ``7F`` has MORE set, which 1.0 peers ignore in an
    identity), so the routing id itself must follow if the peer turns out to be 1.0.
    """
    if not 0 <= routing_id_length <= 255:
        raise ValueError(f"routing id length must be 0-255, got {routing_id_length}")
    return b"\xff" + (routing_id_length + 1).to_bytes(8, "big") + b"\x7f"


def _check_mechanism(mechanism: bytes) -> None:
    if not 0 < len(mechanism) <= MECHANISM_LEN:
        raise ValueError(f"mechanism name must be 1-20 bytes, got {mechanism!r}")
    if not all(0x41 <= c <= 0x5A or 0x30 <= c <= 0x39 or c in b"-_." for c in mechanism):
        raise ValueError(f"mechanism name must be upper-case ASCII, got {mechanism!r}")


def greeting_tail(
    mechanism: bytes, *, as_server: bool = False, minor: int = VERSION_MINOR
) -> bytes:
    """Bytes 11-63: minor version, mechanism, as-server, filler."""
    _check_mechanism(mechanism)
    return (
        bytes((minor,))
        + mechanism.ljust(MECHANISM_LEN, b"\x00")
        + (b"\x01" if as_server else b"\x00")
        + _FILLER
    )


def build_greeting(mechanism: bytes = b"NULL", *, as_server: bool = False) -> bytes:
    """The whole 64-byte ZMTP 3.1 greeting."""
    return greeting_head() + greeting_tail(mechanism, as_server=as_server)


@dataclass(frozen=True, slots=True)
class Greeting:
    """A peer's parsed greeting.

    ``padding`` is kept for study tools only; nothing may interpret it (RFC 23).
    ``as_server`` is reported as sent; libzmq always sends 0
    (specs/libzmq-behaviour.md §1.4), so roles come from configuration, never from this
    field.
    """

    major: int
    minor: int
    mechanism: bytes
    as_server: bool
    padding: bytes = bytes(8)

    @property
    def version(self) -> tuple[int, int]:
        """``(major, minor)`` as sent."""
        return (self.major, self.minor)

    @classmethod
    def parse(cls, data: bytes) -> Greeting:
        """Parse exactly 64 bytes (checks the signature, not the version)."""
        if len(data) != GREETING_LEN:
            raise GreetingError(f"a greeting is 64 bytes, got {len(data)}")
        _check_signature(data)
        return cls(
            major=data[10],
            minor=data[11],
            mechanism=bytes(data[12:32]).rstrip(b"\x00"),
            as_server=bool(data[32]),
            padding=bytes(data[1:9]),
        )


def _check_signature(data: bytes) -> None:
    if data[0] != 0xFF:
        raise GreetingError(
            f"not a ZMTP 3.x peer: first byte {data[0]:#04x}, expected 0xff "
            "(an unversioned ZMTP 1.0 peer or another protocol)",
            reason=b"Invalid greeting",
        )
    if len(data) >= SIGNATURE_LEN and not data[9] & 0x01:
        raise GreetingError(
            f"not a ZMTP 3.x peer: signature byte 9 is {data[9]:#04x} with bit 0 clear "
            "(an unversioned ZMTP 1.0 peer)",
            reason=b"Invalid greeting",
        )


@dataclass(frozen=True, slots=True)
class LegacyGreeting:
    """What a ZMTP 1.0 or 2.0 peer opened with, and how it was recognised.

    Attributes:
        revision: byte 10 of a versioned peer (``0``: 1.0 framing, ``1``: ZMTP 2.0), or
            None for an unversioned 1.0 peer (its bytes are all 1.0 frames).
        socket_type: byte 11 of a versioned peer, as sent (RFC 15 numbers; libzmq also
            sends XPUB = 9 and XSUB = 10); None for an unversioned peer.
        padding: signature bytes 1-8 of a versioned peer (empty if unversioned).
        detected_by: which byte gave the version away, in words (for study tools).
    """

    revision: int | None
    socket_type: int | None
    padding: bytes
    detected_by: str

    @property
    def version(self) -> tuple[int, int]:
        """``(2, 0)`` for revision 1, else ``(1, 0)``: the framing spoken."""
        return (2, 0) if self.revision == 1 else (1, 0)

    @property
    def wire_size(self) -> int:
        """Bytes of the greeting proper: 12 when versioned, 0 when not (the peer's
        first bytes are already its identity frame)."""
        return 0 if self.revision is None else SIGNATURE_LEN + 2


class GreetingParser:
    """Accumulates a peer's greeting from arbitrarily split bytes.

    Call :meth:`feed` with each piece.  After it returns, :attr:`major` is set once 11
    bytes have arrived and :attr:`greeting` once 64 have; :meth:`feed` returns the bytes
    that came after the greeting (empty until it is complete).

    Args:
        legacy: detect ZMTP 1.0 and 2.0 peers (see the module docstring) instead of
            refusing them; :attr:`versioned` and :attr:`legacy` report what was found.

    Raises (from :meth:`feed`):
        GreetingError: bad signature (without ``legacy``).
        VersionError: major version below 3 (only 2 with ``legacy``).
    """

    __slots__ = ("_buf", "_detect", "greeting", "legacy", "major", "versioned")

    def __init__(self, *, legacy: bool = False) -> None:
        self._buf = bytearray()
        self._detect = legacy
        self.major: int | None = None
        self.greeting: Greeting | None = None
        #: True once the peer's signature is known to be versioned (10 bytes with bit 0
        #: of byte 9 set), False once it is known not to be (only with ``legacy``).
        self.versioned: bool | None = None
        #: Set, with ``legacy``, once an old peer's greeting is complete.
        self.legacy: LegacyGreeting | None = None

    @property
    def received(self) -> int:
        """How many greeting bytes have arrived so far (at most 64)."""
        return len(self._buf)

    def feed(self, data: Buffer) -> bytes:
        """Consume bytes; return whatever follows a now-complete greeting."""
        if self.greeting is not None or self.legacy is not None:
            return bytes(data)
        have = len(self._buf)
        take = memoryview(data)[: GREETING_LEN - have]
        self._buf += take
        rest = bytes(memoryview(data)[len(take) :])
        buf = self._buf
        if self._detect:
            found = self._detect_legacy(have)
            if found is not None:
                self.legacy = found
                # An unversioned peer's bytes are 1.0 frames from the very first; a
                # versioned one's frames start after its socket-type byte.
                cut = found.wire_size
                return bytes(buf[cut:]) + rest
            if self.versioned is None and len(buf) >= SIGNATURE_LEN:
                self.versioned = True
        elif have < 1 <= len(buf) or (have < SIGNATURE_LEN <= len(buf)):
            _check_signature(bytes(buf[:SIGNATURE_LEN]))
        if self.major is None and len(buf) > SIGNATURE_LEN:
            self.major = buf[10]
            if self.major < 3 and not (self._detect and self.major < 2):
                name = _OLD_REVISIONS.get(self.major, "an unknown pre-3.0 ZMTP")
                served = "ZMTP 1.0, 2.0 and 3.x" if self._detect else "only ZMTP 3.0 and later"
                raise VersionError(
                    f"peer announced version byte {self.major} ({name}); {served} are served",
                    major=self.major,
                    reason=b"Unsupported ZMTP version",
                )
        if self.major is not None and self.major < 3:  # with legacy: revision 0 or 1
            if len(buf) < SIGNATURE_LEN + 2:
                return b""
            self.legacy = LegacyGreeting(
                revision=self.major,
                socket_type=buf[11],
                padding=bytes(buf[1:9]),
                detected_by=f"byte 10 (revision) is {self.major:#04x}",
            )
            return bytes(buf[SIGNATURE_LEN + 2 :]) + rest
        if len(buf) == GREETING_LEN:
            self.greeting = Greeting.parse(bytes(buf))
            return rest
        return b""

    def _detect_legacy(self, have: int) -> LegacyGreeting | None:
        """An unversioned 1.0 peer, recognised by its first or tenth byte, if it is one."""
        buf = self._buf
        why = None
        if have < 1 <= len(buf) and buf[0] != 0xFF:
            why = f"byte 0 is {buf[0]:#04x}, not 0xff"
        elif have < SIGNATURE_LEN <= len(buf) and not buf[9] & 0x01:
            why = f"bit 0 of byte 9 ({buf[9]:#04x}) is clear"
        if why is None:
            return None
        self.versioned = False
        return LegacyGreeting(revision=None, socket_type=None, padding=b"", detected_by=why)
