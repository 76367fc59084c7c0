"""Opt-in tuning of glibc's allocator for processes that move large messages.

Every large message a socket receives becomes a fresh ``bytes`` object.  With glibc's
default settings, blocks of more than 128 KiB are mapped from the kernel for each
allocation, and the top of the heap is handed back whenever enough of it is free, so
each megabyte received costs about 256 page faults (one per 4 KiB page) on top of the
copies.  The benchmark suite measured this as the main cost of receiving 64 KiB and
1 MiB messages (bench/RESULTS.md, "Large messages with glibc's allocator tuned"): with
the two thresholds raised, receive CPU per MiB fell by about two thirds.

The price is memory: freed blocks stay in the process for reuse instead of going back
to the kernel.  That is the right trade for a proxy or a data pipeline and the wrong
one for a small tool that briefly handles one large message, so this is not done on
import.  ``python -m proxy`` does it unless started with ``--no-tune-allocator``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["tune_allocator"]

log = logging.getLogger("zmtp")

# mallopt(3) parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


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
        True if glibc accepted both settings; False on other C libraries (nothing is
        changed there).

    Raises:
        ValueError: a negative threshold.
    """
    if mmap_threshold < 0 or trim_threshold < 0:
        raise ValueError("thresholds must be >= 0")
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # glibc bounds M_MMAP_THRESHOLD by HEAP_MAX/2 (32 MiB on 64-bit); it rejects
    # larger values, so clamp rather than fail.
    ok_mmap: bool = mallopt(_M_MMAP_THRESHOLD, min(mmap_threshold, 32 * 1024 * 1024)) == 1
    ok_trim: bool = mallopt(_M_TRIM_THRESHOLD, min(trim_threshold, 2**31 - 1)) == 1
    if not (ok_mmap and ok_trim):
        log.debug("mallopt refused the allocator settings (mmap=%s, trim=%s)", ok_mmap, ok_trim)
    return ok_mmap and ok_trim
