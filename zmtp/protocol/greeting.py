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
version.  A future ZMTP 2.0 fallback serves an old peer at that point instead, without
the tail ever having been sent.

:class:`GreetingParser` accepts the peer's bytes in any segmentation and reports, in
order, :attr:`GreetingParser.major` (after 11 bytes) and a complete :class:`Greeting`
(after 64).  Bytes past the greeting are returned as leftover for the handshake.
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
    "build_greeting",
    "greeting_head",
    "greeting_tail",
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


class GreetingParser:
    """Accumulates a peer's greeting from arbitrarily split bytes.

    Call :meth:`feed` with each piece.  After it returns, :attr:`major` is set once 11
    bytes have arrived and :attr:`greeting` once 64 have; :meth:`feed` returns the bytes
    that came after the greeting (empty until it is complete).

    Raises (from :meth:`feed`):
        GreetingError: bad signature.
        VersionError: major version below 3 (ZMTP 1.0 and 2.0 are not served).
    """

    __slots__ = ("_buf", "greeting", "major")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.major: int | None = None
        self.greeting: Greeting | None = None

    @property
    def received(self) -> int:
        """How many greeting bytes have arrived so far (at most 64)."""
        return len(self._buf)

    def feed(self, data: Buffer) -> bytes:
        """Consume bytes; return whatever follows a now-complete greeting."""
        if self.greeting is not None:
            return bytes(data)
        have = len(self._buf)
        take = memoryview(data)[: GREETING_LEN - have]
        self._buf += take
        rest = bytes(memoryview(data)[len(take) :])
        buf = self._buf
        if have < 1 <= len(buf) or (have < SIGNATURE_LEN <= len(buf)):
            _check_signature(bytes(buf[:SIGNATURE_LEN]))
        if self.major is None and len(buf) > SIGNATURE_LEN:
            self.major = buf[10]
            if self.major < 3:
                name = _OLD_REVISIONS.get(self.major, "an unknown pre-3.0 ZMTP")
                raise VersionError(
                    f"peer announced version byte {self.major} ({name}); "
                    "only ZMTP 3.0 and later are served",
                    major=self.major,
                    reason=b"Unsupported ZMTP version",
                )
        if len(buf) == GREETING_LEN:
            self.greeting = Greeting.parse(bytes(buf))
            return rest
        return b""
