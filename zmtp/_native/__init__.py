"""Native tricks: CPython- and glibc-specific speed-ups behind one switch.

Two tricks live here, each with a portable fallback:

* :mod:`~zmtp._native.bodies`: large incoming frame bodies allocated as uninitialised
  ``bytes`` through ``ctypes``, so that the kernel reads straight into the object the
  application receives (no final copy).  Fallback: the protocol core's
  :func:`~zmtp.protocol.framing.portable_body` (a ``bytearray``, copied once).  Also
  ``opened_part``: such ``bytes`` for a large CURVE part, opened straight into (no
  scratch buffer and copy).  Fallback: that scratch buffer.
* :mod:`~zmtp._native.allocator`: raising glibc's malloc thresholds (``mallopt``) so
  that the memory of freed large messages is reused instead of being handed back to
  the kernel and faulted in again.  Fallback: malloc left alone.  This one changes the
  whole process, so the library only does it when asked
  (``zmtp.Context(tune_allocator=True)``); ``python -m proxy``, a program of its own,
  does it by default.

The switch: ``ZMTP_NATIVE=0`` (or ``false``, ``no``, ``off``) in the environment turns
both off for every Context that does not say otherwise (``zmtp.Context(native=...)``
overrides it) and for ``python -m proxy``.  Without ``ctypes`` or glibc, each trick
falls back by itself; nothing here raises on import.

The protocol core never imports this package: the socket layer asks
:func:`policy` and hands the chosen allocator to its ``Connection``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..protocol.framing import BodyAllocator, portable_body
from ..protocol.mechanisms.base import PartAllocator
from . import allocator, bodies

__all__ = ["ENV_VAR", "Policy", "allocator", "bodies", "body_allocator", "enabled", "policy"]

#: The environment variable that switches every native trick off when set to one of
#: ``0``, ``false``, ``no``, ``off`` (any case).  Unset or anything else: on.
ENV_VAR = "ZMTP_NATIVE"

_OFF = frozenset({"0", "false", "no", "off"})


def enabled() -> bool:
    """Whether the environment allows native tricks (read at each call)."""
    return os.environ.get(ENV_VAR, "").strip().lower() not in _OFF


def body_allocator(native: bool | None = None) -> BodyAllocator:
    """The allocator for large frame bodies.

    Args:
        native: True for the zero-copy allocator where this interpreter supports it,
            False for the portable one; None follows :func:`enabled`.
    """
    if native is None:
        native = enabled()
    if native and bodies.zero_copy_body is not None:
        return bodies.zero_copy_body
    return portable_body


@dataclass(frozen=True)
class Policy:
    """What a Context decided about native tricks (see :func:`policy`)."""

    #: Native tricks allowed (each still falls back where unsupported).
    native: bool
    #: The first large body read in place tunes malloc
    #: (:func:`~zmtp._native.allocator.tune_for_large_messages`).
    tune_allocator: bool
    #: What the Context's connections allocate large bodies with.
    body_allocator: BodyAllocator
    #: What its CURVE connections open large parts straight into, or None (into a
    #: scratch buffer, then copied).
    part_allocator: PartAllocator | None = None


def policy(native: bool | None = None, tune_allocator: bool = False) -> Policy:
    """Resolve a Context's ``native`` and ``tune_allocator`` arguments.

    Args:
        native: True or False, or None to follow the environment (:func:`enabled`).
        tune_allocator: tune malloc on the first large message; ignored (False) when
            native tricks are off.

    Raises:
        TypeError: an argument of the wrong type.
    """
    if native is not None and not isinstance(native, bool):
        raise TypeError(f"native must be a bool or None, not {type(native).__name__}")
    if not isinstance(tune_allocator, bool):
        raise TypeError(f"tune_allocator must be a bool, not {type(tune_allocator).__name__}")
    if native is None:
        native = enabled()
    parts = bodies.opened_part if native else None
    return Policy(native, tune_allocator and native, body_allocator(native), parts)
