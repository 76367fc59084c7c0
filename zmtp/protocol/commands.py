"""ZMTP commands (RFC 37 §"Commands", §"Heartbeating", §"Subscriptions").

A command is one frame with ``FLAG_COMMAND`` whose body is::

    name-size(1) name(1-255 octets) data

RFC 37's prose mentions a "null octet" separator, but its ABNF and every
implementation use the length prefix (specs/discrepancies.md).

This module turns command bodies into typed objects and back.  It runs once per command,
never per data frame.  Names are compared exactly (libzmq does the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import HandshakeError, LocalProtocolError, RemoteProtocolError
from .framing import FLAG_COMMAND, encode_frame
from .metadata import Metadata, encode_properties, parse_properties

__all__ = [
    "CANCEL",
    "ERROR",
    "PING",
    "PONG",
    "READY",
    "SUBSCRIBE",
    "Command",
    "encode_cancel",
    "encode_command",
    "encode_error",
    "encode_ping",
    "encode_pong",
    "encode_ready",
    "encode_subscribe",
    "parse_command",
    "parse_error",
    "parse_ping",
]

READY = b"READY"
ERROR = b"ERROR"
PING = b"PING"
PONG = b"PONG"
SUBSCRIBE = b"SUBSCRIBE"
CANCEL = b"CANCEL"

#: RFC 37: a PONG echoes at most 16 octets of the PING context.
MAX_PING_CONTEXT = 16
#: PING TTL is a 16-bit count of deciseconds.
MAX_PING_TTL = 0xFFFF


@dataclass(frozen=True, slots=True)
class Command:
    """A command as it travels: its name and the bytes after the name."""

    name: bytes
    data: bytes = b""

    def encode(self) -> bytes:
        """The whole command frame, header included."""
        return encode_command(self.name, self.data)


def encode_command(name: bytes, data: bytes = b"") -> bytes:
    """Encode a command frame.

    Raises:
        LocalProtocolError: name empty or longer than 255 octets.
    """
    if not 0 < len(name) <= 255:
        raise LocalProtocolError(f"command name must be 1-255 octets, got {name!r}")
    return encode_frame(bytes((len(name),)) + name + data, FLAG_COMMAND)


def parse_command(body: bytes) -> Command:
    """Split a command frame body into name and data.

    Raises:
        RemoteProtocolError: empty body, empty name or a name longer than the body.
    """
    if not body:
        raise RemoteProtocolError("empty command frame", reason=b"Malformed command")
    n = body[0]
    if n == 0 or n > len(body) - 1:
        raise RemoteProtocolError(
            f"malformed command: name length {n} in a {len(body)}-byte frame",
            reason=b"Malformed command",
        )
    return Command(bytes(body[1 : 1 + n]), bytes(body[1 + n :]))


def encode_ready(properties: Mapping[str, bytes] | list[tuple[str, bytes]]) -> bytes:
    """READY with the given properties (NULL mechanism, RFC 37)."""
    return encode_command(READY, encode_properties(properties))


def parse_ready(data: bytes, *, max_size: int | None = None) -> Metadata:
    """The properties of a READY (its data after the name)."""
    if max_size is None:
        return parse_properties(data)
    return parse_properties(data, max_size=max_size)


def encode_error(reason: bytes) -> bytes:
    """ERROR with a reason of at most 255 octets (longer reasons are truncated)."""
    reason = bytes(reason[:255])
    return encode_command(ERROR, bytes((len(reason),)) + reason)


def parse_error(data: bytes) -> bytes:
    """The reason carried by an ERROR.

    Tolerates a reason length that overshoots the frame: an ERROR is the last thing a
    peer says, and its text is worth more than strictness.
    """
    if not data:
        return b""
    return bytes(data[1 : 1 + data[0]])


def encode_ping(ttl: int = 0, context: bytes = b"") -> bytes:
    """PING with a TTL in deciseconds and up to 16 octets of context.

    The TTL is always present: libzmq answers a PING without it with 16 bytes of leaked
    memory (specs/libzmq-behaviour.md §3.2).

    Raises:
        ValueError: TTL outside 0..65535 or context over 16 octets.
    """
    if not 0 <= ttl <= MAX_PING_TTL:
        raise ValueError(f"PING TTL must be 0..65535 deciseconds, got {ttl}")
    if len(context) > MAX_PING_CONTEXT:
        raise ValueError(f"PING context is at most 16 octets, got {len(context)}")
    return encode_command(PING, ttl.to_bytes(2, "big") + context)


def parse_ping(data: bytes) -> tuple[int, bytes]:
    """``(ttl_deciseconds, context)`` of a PING.

    A PING too short to hold its TTL is read as TTL 0 with no context, rather than
    killing the connection over a liveness probe.
    """
    if len(data) < 2:
        return 0, b""
    return int.from_bytes(data[:2], "big"), bytes(data[2:])


def encode_pong(context: bytes = b"") -> bytes:
    """PONG echoing (at most 16 octets of) a PING context."""
    return encode_command(PONG, bytes(context[:MAX_PING_CONTEXT]))


def encode_subscribe(topic: bytes) -> bytes:
    """ZMTP 3.1 SUBSCRIBE command."""
    return encode_command(SUBSCRIBE, topic)


def encode_cancel(topic: bytes) -> bytes:
    """ZMTP 3.1 CANCEL command."""
    return encode_command(CANCEL, topic)


def check_handshake_command(cmd: Command, expected: bytes) -> None:
    """Raise a HandshakeError unless ``cmd`` is the command a handshake expects."""
    if cmd.name != expected:
        raise HandshakeError(
            f"expected {expected.decode()} during the handshake, got {cmd.name!r}",
            reason=b"Unexpected command",
        )
