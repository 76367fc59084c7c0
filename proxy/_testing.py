"""Run ``python -m proxy`` as a subprocess and read its output, for tests.

The command line prints one flushed line per event (see :mod:`proxy._cli`), so a test
synchronises on lines instead of sleeping: it starts the proxy with ``tcp://...:0``
endpoints, reads the ``bound to`` lines to learn the ports, talks to the proxy,
signals it and reads the ``final statistics:`` line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import trio

__all__ = ["ProxyProcess", "Samples", "parse_final_statistics", "sample", "scrape"]

#: Prometheus samples: ``{(name, frozenset of (label, value) pairs): value}``.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

_BOUND = re.compile(r"^(frontend|backend|capture|control) (\w+) bound to (\S+)")
_FINAL = re.compile(r"([\w>-]+) messages=(\d+) frames=(\d+) bytes=(\d+)")


def parse_final_statistics(line: str) -> dict[str, tuple[int, int, int]]:
    """``final statistics: ...`` → ``{"frontend->backend": (messages, frames, bytes)}``,
    plus ``"capture_dropped": (n, 0, 0)``."""
    if not line.startswith("final statistics: "):
        raise ValueError(f"not a final statistics line: {line!r}")
    out = {m[1]: (int(m[2]), int(m[3]), int(m[4])) for m in _FINAL.finditer(line)}
    dropped = re.search(r"capture_dropped=(\d+)", line)
    if dropped:
        out["capture_dropped"] = (int(dropped[1]), 0, 0)
    return out


class ProxyProcess:
    """A running ``python -m proxy``; see :meth:`start`."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.lines: list[str] = []  # every stdout line read so far
        self._buffer = bytearray()

    @classmethod
    @asynccontextmanager
    async def start(
        cls, *args: str, env: Mapping[str, str] | None = None
    ) -> AsyncIterator[ProxyProcess]:
        """Start the proxy with ``args`` (and ``env`` added to the environment); kill it
        at the end if it is still running."""
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "proxy", *args],
            env=None if env is None else {**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        proxy = cls(process)
        try:
            yield proxy
        finally:
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                await process.wait()
                for stream in (process.stdout, process.stderr):
                    if stream is not None:
                        await stream.aclose()

    async def readline(self) -> str:
        """The next stdout line, without its newline.

        Raises:
            EOFError: stdout ended first.
        """
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            chunk = await self.process.stdout.receive_some(65536)
            if not chunk:
                raise EOFError(f"proxy output ended; lines so far: {self.lines}")
            self._buffer += chunk
        raw, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        line = raw.decode()
        self.lines.append(line)
        return line

    async def wait_for(self, prefix: str) -> str:
        """Read lines until one starts with ``prefix``; return it."""
        while True:
            line = await self.readline()
            if line.startswith(prefix):
                return line

    async def endpoints(self) -> dict[str, str]:
        """Read up to the ``running`` line; return ``{role: resolved endpoint}``."""
        found: dict[str, str] = {}
        while True:
            line = await self.readline()
            m = _BOUND.match(line)
            if m:
                found[m[1]] = m[3].replace("0.0.0.0", "127.0.0.1")
            elif line.startswith("metrics on "):
                found["metrics"] = line.removeprefix("metrics on ")
            if "running" in line:
                return found

    def send_signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    async def finish(self) -> tuple[int, list[str], str]:
        """Wait for exit; return (status, remaining stdout lines, all of stderr)."""
        assert self.process.stdout is not None and self.process.stderr is not None
        rest: list[str] = []
        while True:
            try:
                rest.append(await self.readline())
            except EOFError:
                break
        err = bytearray()
        while chunk := await self.process.stderr.receive_some(65536):
            err += chunk
        status = await self.process.wait()
        return status, rest, err.decode()


async def scrape(url: str) -> Samples:
    """GET a Prometheus endpoint (in a worker thread) and parse it with
    prometheus_client's own parser (so the test checks the real exposition format)."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    def get() -> str:
        with urllib.request.urlopen(url, timeout=20) as response:
            body: bytes = response.read()
            return body.decode()

    text = await trio.to_thread.run_sync(get)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; KeyError (listing what there is) if it is missing."""
    key = (name, frozenset(labels.items()))
    if key not in samples:
        have = sorted(f"{n}{dict(lb)}" for n, lb in samples if n == name)
        raise KeyError(f"no sample {name}{labels}; have {have}")
    return samples[key]
