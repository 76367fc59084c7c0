"""CURVE key pairs and the forms a key may take (RFC 26, RFC 32).

A CURVE key is 32 octets of Curve25519.  Applications handle them as 40 characters of
Z85 (RFC 32); libzmq's ``ZMQ_CURVE_PUBLICKEY``, ``ZMQ_CURVE_SECRETKEY`` and
``ZMQ_CURVE_SERVERKEY`` options take either form, and also the Z85 form followed by a
terminating NUL (41 bytes), since C callers pass strings.  :func:`normalize_key` accepts
exactly those, as ``str`` too, and turns them into the 32 raw octets the mechanism uses.

The arithmetic is PyNaCl's (libsodium): a key pair made here and one made by
``zmq.curve_keypair()`` are the same kind of object, and :func:`curve_public` derives
the same public key from a secret key as ``zmq.curve_public()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import z85

if TYPE_CHECKING:
    from nacl.public import PrivateKey

__all__ = [
    "KEY_SIZE",
    "Z85_KEY_SIZE",
    "curve_keypair",
    "curve_public",
    "normalize_key",
    "private_key",
]

#: Raw CURVE key size (crypto_box_PUBLICKEYBYTES == crypto_box_SECRETKEYBYTES).
KEY_SIZE = 32
#: The same key in Z85.
Z85_KEY_SIZE = 40


def private_key(raw: bytes | None = None) -> PrivateKey:
    """A PyNaCl ``PrivateKey`` from 32 raw octets, or a new random one.

    PyNaCl is imported here, on first use: it is the ``curve`` extra, and a NULL-only
    installation need not have it.

    Raises:
        ImportError: PyNaCl is not installed.
    """
    try:
        from nacl.public import PrivateKey  # noqa: PLC0415 - optional dependency
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise ImportError("CURVE needs PyNaCl: pip install 'zmtp[curve]'") from exc
    return PrivateKey.generate() if raw is None else PrivateKey(raw)


def normalize_key(key: bytes | bytearray | memoryview | str, *, name: str = "key") -> bytes:
    """A CURVE key as its 32 raw octets.

    Args:
        key: 32 raw octets, or 40 Z85 characters (``bytes`` or ``str``), or those 40
            followed by one NUL octet.
        name: what to call the key in error messages (``"server key"``, ...).

    Raises:
        TypeError: ``key`` is neither ``bytes``-like nor ``str``.
        ValueError: any other length, or Z85 text that does not decode.
    """
    if isinstance(key, str):
        if len(key) != Z85_KEY_SIZE:
            raise ValueError(
                f"a CURVE {name} given as str must be 40 Z85 characters, got {len(key)}"
            )
        try:
            return z85.decode(key)
        except ValueError as exc:
            raise ValueError(f"invalid Z85 CURVE {name}: {exc}") from None
    if not isinstance(key, bytes | bytearray | memoryview):
        raise TypeError(f"a CURVE {name} must be bytes or str, not {type(key).__name__}")
    raw = bytes(key)
    if len(raw) == KEY_SIZE:
        return raw
    if len(raw) == Z85_KEY_SIZE + 1 and raw[-1] == 0:
        raw = raw[:-1]
    if len(raw) == Z85_KEY_SIZE:
        try:
            return z85.decode(raw)
        except ValueError as exc:
            raise ValueError(f"invalid Z85 CURVE {name}: {exc}") from None
    raise ValueError(
        f"a CURVE {name} is 32 raw bytes or 40 Z85 characters, got {len(bytes(key))} bytes"
    )


def curve_keypair() -> tuple[bytes, bytes]:
    """A new CURVE key pair, ``(public_z85, secret_z85)``, 40 bytes each."""
    secret = private_key()
    return z85.encode(bytes(secret.public_key)), z85.encode(bytes(secret))


def curve_public(secret: bytes | bytearray | memoryview | str) -> bytes:
    """The Z85 public key that belongs to ``secret`` (any form :func:`normalize_key` takes).

    Raises:
        TypeError, ValueError: as :func:`normalize_key`.
    """
    raw = normalize_key(secret, name="secret key")
    return z85.encode(bytes(private_key(raw).public_key))
