"""Socket types and which pairs may talk (RFC 37 §"The Socket Type Property").

The numeric values are libzmq's (``ZMQ_PAIR`` = 0 ... ``ZMQ_XSUB`` = 10), so code that
passes pyzmq constants around keeps working.
"""

from __future__ import annotations

import enum

__all__ = ["COMPATIBLE", "SENDS_IDENTITY", "SocketType", "compatible"]


class SocketType(enum.IntEnum):
    """The ZMTP socket types; values match libzmq's constants."""

    PAIR = 0
    PUB = 1
    SUB = 2
    REQ = 3
    REP = 4
    DEALER = 5
    ROUTER = 6
    PULL = 7
    PUSH = 8
    XPUB = 9
    XSUB = 10

    @property
    def wire_name(self) -> bytes:
        """The value of the Socket-Type property, exactly as libzmq spells it."""
        return self.name.encode("ascii")

    @classmethod
    def from_wire(cls, name: bytes) -> SocketType:
        """Parse a Socket-Type property value (case-sensitive, as libzmq compares it)."""
        try:
            return cls[name.decode("ascii")]
        except (KeyError, UnicodeDecodeError):
            raise ValueError(f"unknown socket type {name!r}") from None


_S = SocketType
#: RFC 37 (identical to libzmq's ``mechanism_t::check_socket_type``).
COMPATIBLE: dict[SocketType, frozenset[SocketType]] = {
    _S.REQ: frozenset({_S.REP, _S.ROUTER}),
    _S.REP: frozenset({_S.REQ, _S.DEALER}),
    _S.DEALER: frozenset({_S.REP, _S.DEALER, _S.ROUTER}),
    _S.ROUTER: frozenset({_S.REQ, _S.DEALER, _S.ROUTER}),
    _S.PUB: frozenset({_S.SUB, _S.XSUB}),
    _S.XPUB: frozenset({_S.SUB, _S.XSUB}),
    _S.SUB: frozenset({_S.PUB, _S.XPUB}),
    _S.XSUB: frozenset({_S.PUB, _S.XPUB}),
    _S.PUSH: frozenset({_S.PULL}),
    _S.PULL: frozenset({_S.PUSH}),
    _S.PAIR: frozenset({_S.PAIR}),
}

#: Types whose READY carries an Identity property (libzmq ``add_basic_properties``).
SENDS_IDENTITY = frozenset({_S.REQ, _S.DEALER, _S.ROUTER})


def compatible(ours: SocketType, theirs: SocketType) -> bool:
    """True if a socket of type ``ours`` may talk to a peer of type ``theirs``."""
    return theirs in COMPATIBLE[ours]
