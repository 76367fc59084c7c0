"""The zero-copy body allocator: large incoming frame bodies built as uninitialised ``bytes``.

A large frame body is known to be ``size`` bytes long as soon as its header arrives.
Receiving it into pieces and joining them costs a copy of the whole body and, worse, a
fresh allocation for every read: above glibc's mmap threshold each one is new memory,
and the kernel zero-fills it page by page (one fault per 4 KiB) before the data is even
copied in.  That, not Python, was most of the time spent receiving 1 MiB messages.

So the decoder (:class:`zmtp.protocol.framing.FrameDecoder`) allocates the body once, at
its final size, and the transport reads straight into it (``os.readv``).  The object
handed to the application must be ``bytes``, which is immutable from Python; CPython
itself builds ``bytes`` this way (``os.read`` allocates an uninitialised object with
``PyBytes_FromStringAndSize(NULL, n)`` and lets ``read(2)`` fill it).
:data:`zero_copy_body` does the same through ``ctypes``: the object is private to the
decoder until every byte has been written, and it is never hashed or shared before
that.  Where that is not possible (another interpreter, no ``ctypes``, or the
self-check below fails) it is None, and the decoder uses the portable allocator of the
protocol core (a ``bytearray`` copied into ``bytes`` once complete).

Whether it is used is decided by :func:`zmtp._native.body_allocator`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

try:
    import ctypes
except ImportError:  # an interpreter built without it: the portable path only
    ctypes = None  # type: ignore[assignment]

__all__ = ["ZERO_COPY", "opened_part", "zero_copy_body"]


def _bytes_from_size() -> Callable[[None, int], bytes] | None:
    """``PyBytes_FromStringAndSize`` through ``ctypes`` (``(None, n)``: an uninitialised
    ``bytes`` of ``n`` octets), or None where that is not possible."""
    if sys.implementation.name != "cpython" or ctypes is None:
        return None
    try:
        from_size = ctypes.pythonapi.PyBytes_FromStringAndSize
        from_size.restype = ctypes.py_object
        from_size.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    except (AttributeError, OSError):
        return None
    return from_size


def _make_zero_copy() -> Callable[[int], tuple[bytes | bytearray, memoryview]] | None:
    """Return an allocator that builds uninitialised ``bytes``, or None if unsafe here."""
    from_size = _bytes_from_size()
    if from_size is None or ctypes is None:
        return None
    try:
        from_memory = ctypes.pythonapi.PyMemoryView_FromMemory
        from_memory.restype = ctypes.py_object
        from_memory.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
    except (AttributeError, OSError):
        return None
    # ob_sval, the first byte of a bytes object's data, sits just before the trailing
    # NUL that __basicsize__ counts.  id() is the object's address in CPython.
    offset = bytes.__basicsize__ - 1
    pybuf_write = 0x200

    def new(size: int) -> tuple[bytes | bytearray, memoryview]:
        body: bytes = from_size(None, size)
        # The view does not keep ``body`` alive: the decoder holds both together and
        # drops the view before it hands ``body`` out.
        view: memoryview = from_memory(id(body) + offset, size, pybuf_write)
        return body, view

    # Check the layout before trusting it: write through the view, read through bytes.
    try:
        probe, view = new(64)
        pattern = bytes(range(64))
        view[:] = pattern
        del view
        if probe != pattern or len(probe) != 64 or hash(probe) != hash(pattern):
            return None
    except Exception:  # anything unexpected: use the portable path
        return None
    return new


def _make_opened_part() -> Callable[[int], tuple[bytes, int]] | None:
    """Return an allocator of uninitialised ``bytes`` that also gives the address of
    the octet just before the data, or None if unsafe here (see
    :data:`opened_part`)."""
    from_size = _bytes_from_size()
    if from_size is None or ctypes is None:
        return None
    before = bytes.__basicsize__ - 2  # ob_sval - 1: the last octet of ob_shash

    def new(size: int) -> tuple[bytes, int]:
        body: bytes = from_size(None, size)
        return body, id(body) + before

    # Check the layout before trusting it: the 8 octets before the data must be the
    # cached hash, -1 (every octet 0xFF) on a new object and hash(body) once hashed,
    # and an octet written there and put back must leave the object as it was.
    try:
        probe, at = new(16)
        cached = ctypes.c_int64.from_address(at - 7)
        if cached.value != -1 or ctypes.c_uint8.from_address(at).value != 0xFF:
            return None
        ctypes.memmove(id(probe) + before + 1, bytes(range(16)), 16)
        ctypes.c_uint8.from_address(at).value = 0x01
        ctypes.c_uint8.from_address(at).value = 0xFF
        if probe != bytes(range(16)) or hash(probe) != hash(bytes(range(16))):
            return None
        if cached.value != hash(probe):
            return None
    except Exception:  # anything unexpected: not used
        return None
    return new


#: ``opened_part(size) -> (part, address)``: an uninitialised ``bytes`` of ``size``
#: octets and the address of the octet before its first, for a CURVE box to be opened
#: straight into it (:data:`~zmtp.protocol.mechanisms.base.PartAllocator`): libsodium
#: writes the box's inner flags octet there and the part after it, and the caller puts
#: that octet back (0xFF) at once.  That octet is the last of the object's cached hash,
#: -1 on a new object; nothing else can see the object meanwhile.  This spares opening
#: into a scratch buffer and copying out (a MiB per 1 MiB part).  None where that is
#: not possible (the layout check above fails, or no ``ctypes``).
opened_part: Callable[[int], tuple[bytes, int]] | None = _make_opened_part()

#: ``zero_copy_body(size) -> (body, view)``: an uninitialised ``bytes`` of ``size`` bytes
#: to fill through ``view`` (a :data:`~zmtp.protocol.framing.BodyAllocator`); None where
#: that is not possible.
zero_copy_body: Callable[[int], tuple[bytes | bytearray, memoryview]] | None = _make_zero_copy()

#: True when large bodies can be received in place, without a final copy.
ZERO_COPY = zero_copy_body is not None
