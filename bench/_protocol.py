"""What the benchmark driver and its worker processes say to each other.

A worker is ``python -m bench.worker ROLE JSON``.  It talks on stdout, one flushed
line per message: ``READY <words>`` once it is set up (the words are endpoints it
bound, or nothing), and ``RESULT <json>`` at the end.  Anything else on stdout is
ignored.  The driver may send ``GO`` on stdin (the publisher of the pub/sub scenario
waits for it).  Errors go to stderr with a non-zero exit status.

Times are ``time.monotonic()`` (``CLOCK_MONOTONIC`` on Linux, the same clock in every
process), so that the pub/sub driver can span the first and last deliveries of
several subscriber processes with one window.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
from typing import Any

__all__ = ["DATA", "PROBE", "cpu", "faults", "latency_summary", "payload", "ready", "result", "rss"]

#: First byte of a pub/sub data message; probes (sent until every subscriber has
#: joined, to defeat the slow-joiner problem) start with PROBE.
DATA = b"D"

#: Fixed CURVE key pairs (Z85) for the ``curve/`` cases: the bench measures the
#: traffic, not key generation, and every implementation gets the same keys.
CURVE_SERVER_PUBLIC = b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
CURVE_SERVER_SECRET = b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
CURVE_CLIENT_PUBLIC = b"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
CURVE_CLIENT_SECRET = b"D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"


def curve_options(server: bool) -> dict[str, bytes | bool]:
    """Socket options (libzmq's names, without the prefix) for a CURVE server or
    client with the fixed keys.  A server also sets its public key: pyomq runs NULL
    without it (libzmq and we derive it)."""
    if server:
        return {
            "curve_server": True,
            "curve_secretkey": CURVE_SERVER_SECRET,
            "curve_publickey": CURVE_SERVER_PUBLIC,
        }
    return {
        "curve_serverkey": CURVE_SERVER_PUBLIC,
        "curve_publickey": CURVE_CLIENT_PUBLIC,
        "curve_secretkey": CURVE_CLIENT_SECRET,
    }


PROBE = b"P"


def payload(size: int, first: bytes = b"x") -> bytes:
    """A message body of ``size`` bytes starting with ``first``."""
    if size <= 0:
        return b""
    return first[:size] + b"x" * (size - len(first[:size]))


def cpu() -> float:
    """CPU seconds (user + system) this process has used, all its threads included
    (so libzmq's I/O thread counts for pyzmq)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def faults() -> int:
    """Minor page faults of this process so far: each is a page of fresh memory touched
    (large messages landing in new allocations show up here)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def rss() -> int:
    """This process's resident set size now, in bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def ready(*words: str) -> None:
    """Tell the driver this worker is set up (and where it listens)."""
    print("READY", *words, flush=True)


def result(values: dict[str, Any]) -> None:
    """Hand the measurement to the driver."""
    sys.stdout.write("RESULT " + json.dumps(values) + "\n")
    sys.stdout.flush()


def latency_summary(samples_ns: list[int]) -> dict[str, Any]:
    """Median and 99th percentile of round-trip times, in microseconds."""
    us = [s / 1000 for s in samples_ns]
    return {
        "median_us": statistics.median(us),
        "p99_us": statistics.quantiles(us, n=100)[98],
        "samples": len(us),
    }
