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

__all__ = ["ZERO_COPY", "zero_copy_body"]


def _make_zero_copy() -> Callable[[int], tuple[bytes | bytearray, memoryview]] | None:
    """Return an allocator that builds uninitialised ``bytes``, or None if unsafe here."""
    if sys.implementation.name != "cpython" or ctypes is None:
        return None
    try:
        api = ctypes.pythonapi
        from_size = api.PyBytes_FromStringAndSize
        from_size.restype = ctypes.py_object
        from_size.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
        from_memory = api.PyMemoryView_FromMemory
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


#: ``zero_copy_body(size) -> (body, view)``: an uninitialised ``bytes`` of ``size`` bytes
#: to fill through ``view`` (a :data:`~zmtp.protocol.framing.BodyAllocator`); None where
#: that is not possible.
zero_copy_body: Callable[[int], tuple[bytes | bytearray, memoryview]] | None = _make_zero_copy()

#: True when large bodies can be received in place, without a final copy.
ZERO_COPY = zero_copy_body is not None
