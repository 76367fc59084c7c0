"""The largest frame a peer may announce: what this process could ever hold.

libzmq allocates the size a frame header announces at once; an absurd size (2^62)
fails that allocation and the peer is dropped within a millisecond.  Our decoder
preallocates at most ``PREALLOCATE_MAX`` (8 MiB) from a size field and collects the
rest as it arrives, so without a ceiling a peer that announces 2^62 bytes and trickles
them would grow our memory at its own pace, for ever.

So with ``maxmsgsize = -1`` (libzmq's default: no limit of the user's) a frame is
refused at its header when it is larger than this process could ever hold: the lowest
of the machine's physical memory and the process's ``RLIMIT_AS`` and ``RLIMIT_DATA``.
That refuses what libzmq's allocation would refuse, deterministically, and accepts
every message libzmq could receive on the same machine.  Anything lower is the user's
choice: ``maxmsgsize`` sets it (specs/libzmq-behaviour.md §2.1; README "Limits").
"""

from __future__ import annotations

import functools
import os
import sys

__all__ = ["frame_limit", "memory_ceiling"]

#: When nothing can be read (no sysconf, no rlimits): 2^48 bytes, far above any machine
#: this runs on and far below the 2^63 a header can announce.
_UNKNOWN = 1 << 48


@functools.cache
def memory_ceiling() -> tuple[int, str]:
    """The most memory this process could ever hold, and what sets it.

    Returns:
        (bytes, a short description such as ``"physical memory"`` or ``"RLIMIT_AS"``).
    """
    limits: list[tuple[int, str]] = []
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page = os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and page > 0:
            limits.append((pages * page, "physical memory"))
    except (AttributeError, ValueError, OSError):
        pass
    if sys.platform != "win32":
        import resource  # noqa: PLC0415 (POSIX only)

        for name in ("RLIMIT_AS", "RLIMIT_DATA"):
            which = getattr(resource, name, None)
            if which is None:
                continue
            soft, _ = resource.getrlimit(which)
            if soft != resource.RLIM_INFINITY and soft > 0:
                limits.append((soft, name))
    if not limits:
        return _UNKNOWN, "no known memory limit"
    return min(limits)


def frame_limit(maxmsgsize: int) -> tuple[int, str]:
    """The frame-size limit a connection enforces, and why.

    Args:
        maxmsgsize: the socket option (-1: none of the user's).

    Returns:
        (limit in bytes, "" when it is the user's maxmsgsize, else a note saying where
        the ceiling comes from, for the log line of a peer that hits it).
    """
    if maxmsgsize >= 0:
        return maxmsgsize, ""
    ceiling, source = memory_ceiling()
    return ceiling, (
        f"with maxmsgsize unset, frames are limited to what this process could ever "
        f"hold ({source}); set maxmsgsize to choose a limit"
    )
