"""Tuning of glibc's allocator for processes that move large messages.

Every large message a socket receives becomes a fresh ``bytes`` object, freed when the
application drops it.  glibc maps blocks above its mmap threshold (128 KiB at first)
from the kernel for each allocation, and hands the top of its heap back whenever more
than its trim threshold is free there; memory handed back is zero-filled by the kernel,
one page fault per 4 KiB, when it is used again.  A receiver frees messages in bursts,
so with the default thresholds a stream of 1 MiB messages paid about 50-250 faults per
message: about half of its receive CPU (bench/RESULTS.md).

Raising both thresholds keeps that memory in the process for reuse.  But malloc's
settings belong to the whole process, so a library changes them only when asked.  Two
levels:

* :func:`tune_for_large_messages`: a socket calls it the first time it reads a large
  frame body in place (over tcp or ipc, with 128 KiB or more of it still to come), if
  and only if its Context was created with ``tune_allocator=True`` (and native tricks
  are not switched off: ``ZMTP_NATIVE=0``, ``Context(native=False)``).  It sets the
  thresholds glibc's own heuristic reaches once the process has freed one 32 MiB
  block: mmap threshold 32 MiB, trim threshold twice that, so at most 64 MiB of free
  heap is kept.  glibc raises them by itself only as far as the largest block freed so
  far: for 1 MiB messages, a trim threshold of 2 MiB, below the bursts a receiver frees.
* :func:`tune_allocator`: more generous (1 GiB kept) for processes that do nothing
  else; ``python -m proxy`` calls it unless started with ``--no-tune-allocator`` (or
  with ``ZMTP_NATIVE=0`` in its environment).

Nothing is done on import.  Without ``ctypes``, or on a C library without ``mallopt``
(not glibc), both functions change nothing and return False.  They do not read
``ZMTP_NATIVE`` themselves: the callers' policy does (:mod:`zmtp._native`).
"""

from __future__ import annotations

import logging
from typing import Any

try:
    import ctypes
    import ctypes.util
except ImportError:  # an interpreter built without it: tuning is unavailable
    ctypes = None  # type: ignore[assignment]

__all__ = ["tune_allocator", "tune_for_large_messages"]

log = logging.getLogger("zmtp")

# mallopt(3) parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: glibc's ceiling for its dynamic mmap threshold on 64-bit systems
#: (DEFAULT_MMAP_THRESHOLD_MAX); the dynamic trim threshold is twice the mmap threshold.
_GLIBC_DYNAMIC_MAX = 32 * 1024 * 1024

#: The result of the first tuning attempt in this process (None: not tried yet).
_tuned: bool | None = None


def tune_for_large_messages() -> bool:
    """Set glibc's thresholds as its own heuristic would after one 32 MiB message.

    Does nothing if this process already tuned the allocator (by this function or by
    :func:`tune_allocator`, whose settings are kept).

    Returns:
        True if the settings are in force (now or from before).
    """
    if _tuned is not None:
        return _tuned
    return tune_allocator(mmap_threshold=_GLIBC_DYNAMIC_MAX, trim_threshold=2 * _GLIBC_DYNAMIC_MAX)


def tune_allocator(
    *, mmap_threshold: int = 256 * 1024 * 1024, trim_threshold: int = 1024 * 1024 * 1024
) -> bool:
    """Raise glibc's mmap and trim thresholds for this process.

    Args:
        mmap_threshold: allocations up to this size come from the heap, not from a new
            mapping each time (glibc caps it at 32 MiB on 64-bit systems; larger values
            are clamped by glibc and still take effect up to that cap).
        trim_threshold: free memory at the top of the heap is kept up to this size.

    Returns:
        True if glibc accepted both settings; False on other C libraries or without
        ``ctypes`` (nothing is changed then).

    Raises:
        ValueError: a negative threshold.
    """
    if mmap_threshold < 0 or trim_threshold < 0:
        raise ValueError("thresholds must be >= 0")
    mallopt = _load_mallopt()
    if mallopt is None:
        log.debug("no mallopt in this process's C library: the allocator is left alone")
        return _remember(False)
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # glibc bounds M_MMAP_THRESHOLD by HEAP_MAX/2 (32 MiB on 64-bit); it rejects
    # larger values, so clamp rather than fail.
    ok_mmap: bool = mallopt(_M_MMAP_THRESHOLD, min(mmap_threshold, 32 * 1024 * 1024)) == 1
    ok_trim: bool = mallopt(_M_TRIM_THRESHOLD, min(trim_threshold, 2**31 - 1)) == 1
    if not (ok_mmap and ok_trim):
        log.debug("mallopt refused the allocator settings (mmap=%s, trim=%s)", ok_mmap, ok_trim)
    return _remember(ok_mmap and ok_trim)


def _load_mallopt() -> Any:
    """The C library's ``mallopt`` function, or None (no ctypes, not glibc)."""
    if ctypes is None:
        return None
    try:
        # The process's own namespace has the C library's symbols; that lookup is
        # instant, while find_library() runs ldconfig (tens of milliseconds).
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        pass
    try:
        name = ctypes.util.find_library("c")
        return ctypes.CDLL(name).mallopt if name is not None else None
    except (OSError, AttributeError):
        return None


def _remember(result: bool) -> bool:
    global _tuned
    _tuned = result  # a C library that refused once would refuse again
    return result
