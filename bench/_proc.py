"""Starting worker processes and reading what they say, with deadlines.

Every benchmark process is a fresh interpreter (``subprocess``, never ``fork``: trio
and libzmq's threads do not survive a fork), started from the repository root with
the root on ``PYTHONPATH`` so that ``bench`` imports whether or not it is installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["ROOT", "BenchError", "Proc", "Processes"]

ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """A measurement could not be made (a worker failed, hung or said nonsense)."""


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Proc:
    """One worker process: its stdout read line by line, stderr kept in a file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        stdin: bool = False,
        wrapped: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        #: The command runs the worker as its child (a profiler), not as itself.
        self.wrapped = wrapped
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  (closed by close())
        self.popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=_env(env),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        assert self.popen.stdout is not None
        self._fd = self.popen.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._buffer = b""
        self._eof = False
        self.lines: list[str] = []

    @classmethod
    def worker(
        cls,
        role: str,
        params: dict[str, Any],
        *,
        stdin: bool = False,
        prefix: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> Proc:
        """Start ``python -m bench.worker role json(params)`` (after ``prefix``, a
        command such as a profiler that runs it; with ``env`` added to the environment)."""
        argv = [*prefix, sys.executable, "-m", "bench.worker", role, json.dumps(params)]
        return cls(role, argv, stdin=stdin, wrapped=bool(prefix), env=env)

    def _read_line(self, deadline: float) -> str | None:
        """The next line of stdout, or None at EOF; BenchError after the deadline."""
        while b"\n" not in self._buffer:
            if self._eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.name}: timed out{self._tail()}")
            with selectors.DefaultSelector() as sel:
                sel.register(self._fd, selectors.EVENT_READ)
                if not sel.select(left):
                    continue
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                self._eof = True
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        text = line.decode(errors="replace")
        self.lines.append(text)
        return text

    def expect(self, prefix: str, deadline: float) -> str:
        """Read lines until one starts with ``prefix``; return the rest of it."""
        while True:
            line = self._read_line(deadline)
            if line is None:
                self.popen.wait()
                raise BenchError(
                    f"{self.name}: exited with status {self.popen.returncode} before "
                    f"saying {prefix!r}{self._tail()}"
                )
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def ready(self, deadline: float) -> list[str]:
        """Wait for ``READY``; return the words that followed (endpoints)."""
        return self.expect("READY", deadline).split()

    def result(self, deadline: float) -> dict[str, Any]:
        """Wait for ``RESULT`` and for the process to exit 0; return the result."""
        values: dict[str, Any] = json.loads(self.expect("RESULT", deadline))
        self.wait(deadline)
        return values

    def wait(self, deadline: float) -> None:
        """Wait for the process to exit; BenchError unless it exits 0 in time."""
        try:
            status = self.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise BenchError(f"{self.name}: did not exit in time{self._tail()}") from None
        if status != 0:
            raise BenchError(f"{self.name}: exited with status {status}{self._tail()}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the process has used so far (Linux /proc)."""
        with open(f"/proc/{self.popen.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        # utime and stime are fields 14 and 15 of stat(5), in clock ticks.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def say(self, line: str) -> None:
        """Write a line to the process's stdin."""
        assert self.popen.stdin is not None
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()

    def _signal(self, signum: int) -> None:
        """Signal the process, or, when it runs one under a profiler, that one: a
        ``py-spy record`` exits (writing its output) when its child does."""
        targets = _children(self.popen.pid) if self.wrapped else []
        for pid in targets or [self.popen.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def terminate(self, deadline: float) -> None:
        """SIGTERM, then SIGKILL if it has not exited by ``deadline``."""
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.kill()
                self.popen.wait()

    def close(self) -> None:
        """Kill the process if it still runs and release its pipes."""
        if self.popen.poll() is None:
            self._signal(signal.SIGKILL)
            self.popen.kill()
            self.popen.wait()
        for stream in (self.popen.stdout, self.popen.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._stderr.close()

    def _tail(self) -> str:
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace").strip().splitlines()
        out = self.lines[-5:]
        text = "".join(f"\n    stderr: {line}" for line in err[-15:])
        text += "".join(f"\n    stdout: {line}" for line in out)
        return text


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc; empty elsewhere)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(x) for x in f.read().split()]
    return found


class Processes:
    """The processes of one measurement; all of them are killed on exit."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def add(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in self.procs:
            proc.close()
