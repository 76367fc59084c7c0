"""Metadata properties (RFC 37 §"Commands", RFC 23 "metadata").

Wire form of one property::

    name-size(1) name(1-255 of [A-Za-z0-9-_.+]) value-size(4, network order) value

Names are case-insensitive in the RFC; libzmq 4.3.5 compares them case-sensitively
(specs/libzmq-behaviour.md §2.4).  So we *send* names in libzmq's exact spelling (``Socket-Type``,
``Identity``) and *look them up* case-insensitively, which is both RFC-correct and
accepts everything libzmq sends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .errors import HandshakeError

__all__ = [
    "DEFAULT_MAX_METADATA_SIZE",
    "NO_METADATA",
    "Metadata",
    "check_property_name",
    "encode_properties",
    "parse_properties",
]

#: Cap on the total size of a peer's properties.  libzmq bounds them only by
#: ZMQ_MAXMSGSIZE; real peers send well under 1 KiB (Socket-Type, Identity <= 255,
#: a few X- properties), so 64 KiB leaves ample room while bounding what one handshake
#: command can make us hold.
DEFAULT_MAX_METADATA_SIZE = 64 * 1024

_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+")
_MAX_VALUE = (1 << 31) - 1


def check_property_name(name: str) -> bytes:
    """Validate a property name; return its wire bytes.

    Raises:
        ValueError: empty, longer than 255 or outside ``[A-Za-z0-9-_.+]``.
    """
    raw = name.encode("ascii", "replace")
    if not 0 < len(raw) <= 255 or not set(raw) <= _NAME_CHARS:
        raise ValueError(f"invalid property name {name!r}: 1-255 characters of [A-Za-z0-9-_.+]")
    return raw


class Metadata(Mapping[str, bytes]):
    """Read-only, case-insensitive mapping of property names to values.

    Iteration yields names as the peer spelled them, in wire order.
    """

    __slots__ = ("_items", "_lower")

    def __init__(self, items: Mapping[str, bytes] | list[tuple[str, bytes]] | None = None) -> None:
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items or ())
        self._items: dict[str, bytes] = {}
        self._lower: dict[str, str] = {}
        for name, value in pairs:
            old = self._lower.get(name.lower())
            if old is not None:
                del self._items[old]
            self._items[name] = value
            self._lower[name.lower()] = name

    def __getitem__(self, name: str) -> bytes:
        return self._items[self._lower[name.lower()]]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lower

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __repr__(self) -> str:
        return f"Metadata({self._items!r})"


#: No properties: Metadata is read-only, so one empty object serves every connection
#: that has none (an idle connection is kept small).
NO_METADATA = Metadata()


def encode_properties(properties: Mapping[str, bytes] | list[tuple[str, bytes]]) -> bytes:
    """Encode properties in the given order.

    Raises:
        ValueError: a bad name or a value of 2^31 bytes or more.
        TypeError: a value that is not bytes-like.
    """
    pairs = properties.items() if isinstance(properties, Mapping) else properties
    out = bytearray()
    for name, value in pairs:
        raw = check_property_name(name)
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"property {name!r} must be bytes, not {type(value).__name__}")
        if len(value) > _MAX_VALUE:
            raise ValueError(f"property {name!r} is too long ({len(value)} bytes)")
        out.append(len(raw))
        out += raw
        out += len(value).to_bytes(4, "big")
        out += value
    return bytes(out)


def parse_properties(data: bytes, *, max_size: int = DEFAULT_MAX_METADATA_SIZE) -> Metadata:
    """Parse a property list (the body of READY, INITIATE, ...).

    Raises:
        HandshakeError: truncated, bad name, or over ``max_size`` bytes in total.
    """
    if len(data) > max_size:
        raise HandshakeError(
            f"metadata of {len(data)} bytes exceeds the limit of {max_size}",
            reason=b"Metadata too large",
        )
    items: list[tuple[str, bytes]] = []
    pos, n = 0, len(data)
    while pos < n:
        name_len = data[pos]
        pos += 1
        if name_len == 0 or pos + name_len + 4 > n:
            raise HandshakeError(
                f"malformed metadata at offset {pos - 1}: truncated or empty property name",
                reason=b"Malformed metadata",
            )
        raw = data[pos : pos + name_len]
        if not set(raw) <= _NAME_CHARS:
            raise HandshakeError(
                f"malformed metadata: property name {raw!r} has invalid characters",
                reason=b"Malformed metadata",
            )
        pos += name_len
        value_len = int.from_bytes(data[pos : pos + 4], "big")
        pos += 4
        if value_len > _MAX_VALUE or pos + value_len > n:
            raise HandshakeError(
                f"malformed metadata: value of {raw.decode()!r} claims {value_len} bytes, "
                f"{n - pos} remain",
                reason=b"Malformed metadata",
            )
        items.append((raw.decode("ascii"), bytes(data[pos : pos + value_len])))
        pos += value_len
    return Metadata(items)
