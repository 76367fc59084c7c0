"""Z85, the printable encoding of CURVE keys (RFC 32).

Four octets, read as a big-endian unsigned 32-bit number, become five characters of an
85-symbol alphabet, most significant first; decoding reverses that.  RFC 32 leaves
padding to the application: the binary side must be a multiple of 4 octets and the text
side a multiple of 5 characters, and both functions refuse anything else rather than pad.

Decoding is strict where the RFC's reference code is not: a character outside the
alphabet, or a group of five whose value does not fit in 32 bits (``"%nSc1"`` and above,
up to ``"#####"``), is an error, so every accepted text has exactly one binary meaning
and :func:`encode` gives it back unchanged.
"""

from __future__ import annotations

__all__ = ["ALPHABET", "decode", "encode"]

#: The 85 symbols, value 0 to 84 (RFC 32 §"Formal Specification").
ALPHABET = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

_VALUE: dict[int, int] = {symbol: value for value, symbol in enumerate(ALPHABET)}
_MAX_GROUP = 0xFFFFFFFF


def encode(data: bytes | bytearray | memoryview) -> bytes:
    """Encode ``data`` (a multiple of 4 octets) as Z85 text (ASCII bytes).

    Raises:
        TypeError: ``data`` is not bytes-like (a ``str`` included).
        ValueError: its length is not a multiple of 4.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"Z85 encodes bytes, not {type(data).__name__}")
    raw = bytes(data)
    if len(raw) % 4:
        raise ValueError(f"Z85 input must be a multiple of 4 bytes, got {len(raw)}")
    out = bytearray()
    for pos in range(0, len(raw), 4):
        value = int.from_bytes(raw[pos : pos + 4], "big")
        group = bytearray(5)
        for i in range(4, -1, -1):
            value, digit = divmod(value, 85)
            group[i] = ALPHABET[digit]
        out += group
    return bytes(out)


def decode(text: bytes | bytearray | memoryview | str) -> bytes:
    """Decode Z85 ``text`` (a multiple of 5 characters) to bytes.

    Raises:
        TypeError: ``text`` is neither ``str`` nor bytes-like.
        ValueError: its length is not a multiple of 5, it holds a character outside the
            Z85 alphabet (non-ASCII included), or a group of five exceeds 2^32 - 1.
    """
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"Z85 text holds a non-ASCII character at position {exc.start}"
            ) from None
    elif isinstance(text, bytes | bytearray | memoryview):
        raw = bytes(text)
    else:
        raise TypeError(f"Z85 decodes str or bytes, not {type(text).__name__}")
    if len(raw) % 5:
        raise ValueError(f"Z85 text must be a multiple of 5 characters, got {len(raw)}")
    out = bytearray()
    for pos in range(0, len(raw), 5):
        value = 0
        for offset, symbol in enumerate(raw[pos : pos + 5]):
            digit = _VALUE.get(symbol)
            if digit is None:
                raise ValueError(
                    f"invalid Z85 character {chr(symbol)!r} at position {pos + offset}"
                )
            value = value * 85 + digit
        if value > _MAX_GROUP:
            raise ValueError(
                f"Z85 group {raw[pos : pos + 5].decode()!r} at position {pos} "
                "does not fit in 32 bits"
            )
        out += value.to_bytes(4, "big")
    return bytes(out)
