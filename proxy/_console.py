"""Console output and signal handling shared by the command line and the demo.

Output goes to stdout one flushed line at a time, so a supervisor or a test can read
it as it comes; on a terminal the statistics line is rewritten in place.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import trio

from ._health import SocketHealth, health_line
from ._proxy import DirectionStatistics, Proxy, ProxyStatistics

__all__ = [
    "PROG",
    "JsonFormatter",
    "Output",
    "Stopper",
    "error",
    "final_line",
    "human_bytes",
    "live_line",
    "print_statistics",
]

PROG = "zmtp-proxy"


def human_bytes(n: float) -> str:
    """``1234567`` → ``"1.2 MB"`` (SI units, as network rates usually are)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def live_line(
    directions: Sequence[str], before: ProxyStatistics, after: ProxyStatistics, seconds: float
) -> str:
    """One line: per direction, totals so far and rates since ``before``."""
    parts = []
    for name in directions:
        new = _direction(after, name)
        old = _direction(before, name)
        dt = seconds if seconds > 0 else math.inf
        rate_m = (new.messages - old.messages) / dt
        rate_b = (new.bytes - old.bytes) / dt
        parts.append(
            f"{name} {new.messages} msgs {human_bytes(new.bytes)} "
            f"({rate_m:.0f} msg/s, {human_bytes(rate_b)}/s)"
        )
    if not parts:
        parts.append("no direction can carry messages between these socket types")
    if after.capture_dropped:
        parts.append(f"capture dropped {after.capture_dropped}")
    return " | ".join(parts)


def final_line(directions: Sequence[str], stats: ProxyStatistics) -> str:
    """The ``final statistics:`` line, ``key=value`` so scripts can read it."""
    parts = []
    for name in directions:
        d = _direction(stats, name)
        parts.append(f"{name} messages={d.messages} frames={d.frames} bytes={d.bytes}")
    parts.append(f"capture_dropped={stats.capture_dropped}")
    return "final statistics: " + "; ".join(parts)


def _direction(stats: ProxyStatistics, name: str) -> DirectionStatistics:
    return stats.frontend_to_backend if name == "frontend->backend" else stats.backend_to_frontend


class Output:
    """stdout for people and scripts: whole lines, flushed; a live line on a terminal."""

    def __init__(self, stream: TextIO, *, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self._live_shown = False

    def line(self, text: str) -> None:
        """Print one line (unless quiet)."""
        if self.quiet:
            return
        self._end_live()
        self.stream.write(text + "\n")
        self.stream.flush()

    def live(self, text: str) -> None:
        """Show the statistics line: rewritten in place on a terminal, else appended."""
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self._live_shown = True
        else:
            self.stream.write("stats: " + text + "\n")
        self.stream.flush()

    def _end_live(self) -> None:
        if self._live_shown:
            self.stream.write("\n")
            self._live_shown = False


def error(message: str) -> None:
    """A one-line error on stderr."""
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


async def print_statistics(
    proxy: Proxy,
    interval: float,
    out: Output,
    health: Callable[[], Sequence[SocketHealth]] | None = None,
) -> None:
    """Print the live statistics line every ``interval`` seconds, for ever; with
    ``health``, what :func:`~proxy._health.health_line` says about the sockets too."""
    before = proxy.statistics()
    then = trio.current_time()
    while True:
        await trio.sleep(interval)
        now = trio.current_time()
        after = proxy.statistics()
        text = live_line(proxy.directions, before, after, now - then)
        if health is not None and (extra := health_line(health())):
            text += " | " + extra
        out.live(text)
        before, then = after, now


class JsonFormatter(logging.Formatter):
    """``--log-format json``: one JSON object per log record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class Stopper:
    """Turns SIGINT/SIGTERM into a clean stop: the first cancels :attr:`scope` (the
    proxy), a second one during the linger flush exits at once."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.signal_name: str | None = None

    async def watch(self, signals: Any) -> None:
        async for signum in signals:
            if self.signal_name is None:
                self.signal_name = signal.Signals(signum).name
                self.scope.cancel()
            else:
                error("second signal: exiting without flushing queued messages")
                sys.stdout.flush()
                os._exit(1)
