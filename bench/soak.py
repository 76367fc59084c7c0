"""``python -m bench.soak``: the proxy under churn for N minutes; is it still sound?

Not a benchmark (nothing is timed against libzmq) and not part of CI: a long run that
checks what only a long run shows.  Two ``python -m proxy`` subprocesses run, a
ROUTER↔DEALER queue and a PULL↔PUSH pipeline, each with ``--handshake-ivl``.  Around
them, at random:

- producers (pyzmq and ours, in subprocesses) connect to the pipeline, push a numbered
  sequence at a bounded rate, and either finish (close with linger, exit) or are
  SIGKILLed mid-stream; some stall for a while mid-multipart;
- clients (pyzmq DEALERs in threads of this process, and DEALERs of ours in
  subprocesses) connect to the queue, keep a window of requests in flight, stall
  (stop reading) for a while, check every reply, and disconnect, or are SIGKILLed;
- raw sockets connect to either proxy and send nothing or half a greeting, until the
  proxy's ``handshake_ivl`` closes them.

The stable ends are two pyzmq PULL consumers (one pauses now and then, so that
backpressure reaches the producers) and echo workers (a pyzmq DEALER and one of ours).

Every few seconds the proxies' RSS (``VmRSS`` in ``/proc/PID/status``) and open file
descriptors (``/proc/PID/fd``) are sampled.  It passes when

- RSS is flat after warm-up: the median of the last tenth of the samples is within
  ``--rss-slack`` MiB of the median of the first tenth after warm-up, for each proxy;
- file descriptors are back at their baseline (stable peers connected, no churn) once
  the churn has stopped and its peers are gone;
- nothing is lost or duplicated on the blocking paths: every message of a producer
  that finished arrived exactly once, and a killed producer's messages that arrived
  are exactly a prefix of its sequence (it cannot have acknowledged more: PUSH has no
  acknowledgement, and TCP and the proxy keep order, so a gap or a repeat is a bug);
  every client that finished got exactly one reply per request (a killed client's
  replies are dropped by the ROUTER, as in libzmq, and not counted);
- neither proxy exited.

It prints one line per sample, then a summary, and exits 0 on a pass, 1 on a failure
(the summary says which check), 2 for bad arguments.  ``--json FILE`` saves the
samples and the summary.

Examples::

    python -m bench.soak --minutes 30
    python -m bench.soak --minutes 2 --warmup 20       # a quick look
    python -m bench.soak --minutes 10 --tracemalloc /tmp/soak-trace   # where RSS goes

``--tracemalloc DIR`` is a diagnostic, not a check: each proxy runs under
``tracemalloc`` (25 frames), and every ``--trace-interval`` seconds appends its RSS,
the memory Python has traced, and the live object count to ``DIR/NAME.tsv``, and
rewrites ``DIR/NAME.txt`` with the allocations that grew most since the first
snapshot after warm-up, grouped by traceback; the malloc heap's bytes in use and free
(glibc's ``mallinfo2``) are sampled too, and once the churn has drained, RSS before
and after ``malloc_trim(0)``.  Traced memory flat while RSS grows is the allocator
(fragmentation, a heap that keeps its high-water mark); traced memory growing names
the leak.  The
tracing slows the proxies down and costs memory of its own, so the RSS check is not
meaningful in such a run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
_BOUND = re.compile(r"^(frontend|backend) (\w+) bound to (\S+)")

#: How long any single wait in the run may take before it counts as a failure.
WAIT = 30.0


# --------------------------------------------------------------------------- peers
# ``python -m bench.soak --peer KIND ...`` runs one churn peer in its own process, so
# that it can be SIGKILLed.  Each prints ``ok ...`` and exits 0 when it finished.


def _peer_push_zmq(endpoint: str, ident: str, n: int, rate: float, stall: bool) -> None:
    import zmq  # noqa: PLC0415 - only the peers and the driver need pyzmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, 100)
    sock.connect(endpoint)
    for i in range(n):
        if stall and i == n // 2:
            # Half a message on the wire, then a pause: the proxy holds the frames.
            sock.send(ident.encode(), zmq.SNDMORE)
            time.sleep(random.uniform(1, 4))
            sock.send_multipart([b"%d" % i, b"x" * 64])
        else:
            sock.send_multipart([ident.encode(), b"%d" % i, b"x" * 64])
        time.sleep(1 / rate)
    sock.close(linger=-1)
    ctx.term()
    print(f"ok sent={n}", flush=True)


def _peer_push_ours(endpoint: str, ident: str, n: int, rate: float, stall: bool) -> None:
    import trio  # noqa: PLC0415

    import zmtp  # noqa: PLC0415

    async def run() -> None:
        async with zmtp.Context() as ctx:
            sock = ctx.socket(zmtp.PUSH, sndhwm=100)
            await sock.connect(endpoint)
            for i in range(n):
                if stall and i == n // 2:
                    await sock.send(ident.encode(), more=True)
                    await trio.sleep(random.uniform(1, 4))
                    await sock.send(b"%d" % i, more=True)
                    await sock.send(b"x" * 64)
                else:
                    await sock.send_multipart([ident.encode(), b"%d" % i, b"x" * 64])
                await trio.sleep(1 / rate)
            await sock.aclose(linger=-1)

    trio.run(run)
    print(f"ok sent={n}", flush=True)


def _peer_dealer_ours(endpoint: str, ident: str, n: int, rate: float, stall: bool) -> None:
    import trio  # noqa: PLC0415

    import zmtp  # noqa: PLC0415

    async def run() -> None:
        async with zmtp.Context() as ctx:
            sock = ctx.socket(zmtp.DEALER, routing_id=ident.encode())
            await sock.connect(endpoint)
            got: set[int] = set()
            sent = 0
            window = 20
            with trio.fail_after(n / rate + WAIT):
                while len(got) < n:
                    while sent < n and sent - len(got) < window:
                        await sock.send_multipart([b"", ident.encode(), b"%d" % sent])
                        sent += 1
                        await trio.sleep(1 / rate)
                    if stall and len(got) == n // 2:
                        await trio.sleep(random.uniform(1, 4))  # replies pile up
                    reply = await sock.recv_multipart()
                    seq = int(reply[2])
                    if reply[1] != ident.encode() or seq in got:
                        raise SystemExit(f"bad or duplicate reply {reply!r}")
                    got.add(seq)
            await sock.aclose(linger=0)

    trio.run(run)
    print(f"ok replies={n}", flush=True)


def _peer_worker_ours(endpoint: str, ident: str, n: int, rate: float, stall: bool) -> None:
    """A stable echo worker of ours (runs until killed)."""
    import trio  # noqa: PLC0415

    import zmtp  # noqa: PLC0415

    async def run() -> None:
        async with zmtp.Context() as ctx:
            sock = ctx.socket(zmtp.DEALER)
            await sock.connect(endpoint)
            print("ok started", flush=True)
            while True:
                batch = await sock.recv_many(100)
                for msg in batch:
                    await sock.send_multipart([*msg, b"ours"])

    trio.run(run)


_PEERS = {
    "push-zmq": _peer_push_zmq,
    "push-ours": _peer_push_ours,
    "dealer-ours": _peer_dealer_ours,
    "worker-ours": _peer_worker_ours,
}


def _peer_main(argv: Sequence[str]) -> int:
    kind, endpoint, ident, n, rate, stall = argv
    _PEERS[kind](endpoint, ident, int(n), float(rate), stall == "1")
    return 0


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc 2.33+): the malloc heap's own accounting."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _malloc_kib(libc: ctypes.CDLL | None) -> str:
    """``heap in use/free/mmapped`` in KiB from mallinfo2, tab-separated ("" if none).

    In use flat while free grows is fragmentation; both flat while RSS grows is
    memory outside malloc (pymalloc's arenas, mappings).
    """
    fn = getattr(libc, "mallinfo2", None)
    if fn is None:
        return "\t\t"
    fn.restype = _MallInfo2
    mi = fn()
    return f"{mi.uordblks // 1024}\t{mi.fordblks // 1024}\t{mi.hblkhd // 1024}"


def _traced_proxy_main(argv: Sequence[str]) -> int:
    """``--traced-proxy PREFIX INTERVAL WARMUP PROXY-ARGS...``: the proxy under tracemalloc.

    A daemon thread samples while trio runs the proxy in the main thread (where its
    signal handling needs to be): taking a snapshot holds the GIL, so it sees a
    consistent heap, and the proxy only pauses for it.  SIGUSR1 (the driver sends it
    once the churn has drained) takes a sample, calls ``malloc_trim(0)`` and takes
    another: how much of the RSS was free heap that glibc could give back.
    """
    import gc  # noqa: PLC0415
    import linecache  # noqa: PLC0415
    import tracemalloc  # noqa: PLC0415

    from proxy._cli import main as proxy_main  # noqa: PLC0415

    prefix, interval, warmup, *proxy_args = argv
    libc: ctypes.CDLL | None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        libc = None
    trim_now = threading.Event()
    signal.signal(signal.SIGUSR1, lambda _sig, _frame: trim_now.set())
    tracemalloc.start(25)
    t0 = time.monotonic()
    tsv = Path(prefix + ".tsv")
    tsv.write_text(
        "t_s\trss_kib\ttraced_kib\tgc_objects\theap_in_use_kib\theap_free_kib\tmmapped_kib\tnote\n"
    )
    # The sampler's own memory is not the proxy's: the snapshots it keeps, and
    # tracemalloc's and linecache's working lists.
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, linecache.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
        tracemalloc.Filter(False, __file__),
    ]

    def row(note: str = "") -> tracemalloc.Snapshot:
        t = time.monotonic() - t0
        snap = tracemalloc.take_snapshot().filter_traces(ignore)
        traced = sum(stat.size for stat in snap.statistics("filename"))
        status = Path("/proc/self/status").read_text()
        m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        with tsv.open("a") as f:
            f.write(
                f"{t:.0f}\t{m[1] if m else 0}\t{traced // 1024}\t{len(gc.get_objects())}"
                f"\t{_malloc_kib(libc)}\t{note}\n"
            )
        return snap

    def sampler() -> None:
        first: tracemalloc.Snapshot | None = None
        while True:
            if trim_now.wait(float(interval)):
                trim_now.clear()
                row("before malloc_trim")
                if libc is not None and hasattr(libc, "malloc_trim"):
                    libc.malloc_trim(0)
                row("after malloc_trim")
                continue
            snap = row()
            t = time.monotonic() - t0
            if t < float(warmup):
                continue
            if first is None:
                first = snap
                continue
            lines = [f"after {t:.0f} s, growth since the first snapshot after warm-up:"]
            for stat in snap.compare_to(first, "traceback")[:12]:
                lines.append(
                    f"\n{stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+} blocks "
                    f"(now {stat.size / 1024:.1f} KiB in {stat.count})"
                )
                # Innermost frame first, file:line only: linecache would show the
                # file as it is now, not as the proxy loaded it if it was edited since.
                frames = list(stat.traceback)[::-1][:10]
                lines.extend(f"    {f.filename}:{f.lineno}" for f in frames)
            Path(prefix + ".txt").write_text("\n".join(lines) + "\n")

    threading.Thread(target=sampler, daemon=True).start()
    return proxy_main(proxy_args)


# --------------------------------------------------------------------------- driver


def _env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=_env(), stdin=subprocess.DEVNULL, **kw
    )


class ProxyProc:
    """One ``python -m proxy`` subprocess and its resolved endpoints."""

    def __init__(
        self,
        name: str,
        frontend: str,
        backend: str,
        hs_ivl: int,
        extra: list[str],
        *,
        trace: list[str] | None = None,
    ) -> None:
        self.name = name
        # Under --tracemalloc: this module's --traced-proxy runs the same proxy.
        launcher = (
            ["-m", "proxy"] if trace is None else ["-m", "bench.soak", "--traced-proxy", *trace]
        )
        self.proc = _spawn(
            [
                *launcher, "--frontend", f"{frontend}@tcp://127.0.0.1:0",
                "--backend", f"{backend}@tcp://127.0.0.1:0",
                "--handshake-ivl", str(hs_ivl), "--stats-interval", "0", *extra,
            ],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.endpoints: dict[str, str] = {}
        assert self.proc.stdout is not None and self.proc.stderr is not None
        deadline = time.monotonic() + WAIT
        while "running" not in (line := self.proc.stdout.readline().decode()):
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"proxy {name} did not start: {self.proc.stderr!r}")
            m = _BOUND.match(line)
            if m:
                self.endpoints[m[1]] = m[3]
        # Both pipes are read for the whole run: the proxy logs a WARNING per stalled
        # handshake, and a pipe nobody reads fills (64 KiB, some 400 lines) and then
        # blocks the proxy in write(2), frozen, which a 30-minute run reached.
        self.out_lines: list[str] = []
        self.err_lines: list[str] = []
        self._readers = [
            threading.Thread(target=_collect, args=(pipe, lines), daemon=True)
            for pipe, lines in (
                (self.proc.stdout, self.out_lines),
                (self.proc.stderr, self.err_lines),
            )
        ]
        for t in self._readers:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        text = Path(f"/proc/{self.pid}/status").read_text()
        m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
        return int(m[1]) if m else 0

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> str:
        """SIGTERM, wait; return the final statistics line (or why there is none)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self._readers:
            t.join(timeout=WAIT)  # EOF once the process has gone
        lines = [ln for ln in self.out_lines if ln.startswith("final statistics")]
        return lines[-1] if lines else f"exit {self.proc.returncode}: {self.err_lines[-3:]}"

    def log_summary(self) -> dict[str, int]:
        """The proxy's log lines on stderr, counted by level."""
        counts: dict[str, int] = {}
        for line in self.err_lines:
            m = re.match(r"\S+: (\w+): ", line)
            level = m[1] if m else "other"
            counts[level] = counts.get(level, 0) + 1
        return counts


def _collect(pipe: Any, lines: list[str]) -> None:
    """Read a child's pipe to its end, a line at a time (list.append is atomic)."""
    for raw in pipe:
        lines.append(raw.decode(errors="replace").rstrip("\n"))


@dataclass
class Ledger:
    """What the consumers received, per producer: one byte per sequence number."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: dict[str, bytearray] = field(default_factory=dict)
    received: int = 0
    duplicates: int = 0
    last_arrival: float = field(default_factory=time.monotonic)

    def expect(self, ident: str, n: int) -> None:
        with self.lock:
            self.seen[ident] = bytearray(n)

    def record(self, ident: str, seq: int) -> None:
        with self.lock:
            marks = self.seen.get(ident)
            self.received += 1
            self.last_arrival = time.monotonic()
            if marks is None or seq >= len(marks):
                self.duplicates += 1  # from nobody we started: count it against us
            elif marks[seq]:
                self.duplicates += 1
            else:
                marks[seq] = 1

    def count(self, ident: str) -> int:
        with self.lock:
            return sum(self.seen[ident])

    def check_prefix(self, ident: str) -> str | None:
        """None if what arrived from ``ident`` is 0..k-1 for some k; else what is wrong."""
        with self.lock:
            marks = self.seen[ident]
            k = marks.find(0)
            if k >= 0 and any(marks[k:]):
                return f"{ident}: gap after {k} (later ones arrived)"
        return None


@dataclass
class Tally:
    """Counts for the summary, and the failures seen."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, name: str, k: int = 1) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + k

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)
        print(f"FAIL: {what}", flush=True)


class Soak:
    """The run: proxies, stable peers, churn, sampling and the final checks."""

    def __init__(self, args: argparse.Namespace) -> None:
        import zmq  # noqa: PLC0415

        self.zmq = zmq
        self.args = args
        self.rng = random.Random(args.seed)
        self.ctx = zmq.Context()
        self.stop = threading.Event()  # the stable peers
        self.churn_stop = threading.Event()
        self.ledger = Ledger()
        self.tally = Tally()
        self.threads: list[threading.Thread] = []
        self.children: list[tuple[subprocess.Popen[bytes], str, str, bool]] = []
        extra = list(args.proxy_arg)

        def trace(name: str) -> list[str] | None:
            if args.tracemalloc is None:
                return None
            Path(args.tracemalloc).mkdir(parents=True, exist_ok=True)
            prefix = str(Path(args.tracemalloc, name))
            return [prefix, str(args.trace_interval), str(args.warmup)]

        self.queue = ProxyProc(
            "queue", "ROUTER", "DEALER", args.handshake_ivl, extra, trace=trace("queue")
        )
        self.pipe = ProxyProc(
            "pipeline", "PULL", "PUSH", args.handshake_ivl, extra, trace=trace("pipeline")
        )
        self.samples: list[dict[str, Any]] = []
        self.seq = 0

    def _thread(self, target: Any, *a: Any) -> threading.Thread:
        t = threading.Thread(target=target, args=a, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def _ident(self, kind: str) -> str:
        self.seq += 1
        return f"{kind}-{self.seq}"

    # ---------------------------------------------------------------- stable peers

    def consumer(self, pausing: bool) -> None:
        zmq = self.zmq
        sock = self.ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.pipe.endpoints["backend"])
        next_pause = time.monotonic() + 20
        while not self.stop.is_set():
            if pausing and time.monotonic() > next_pause:
                time.sleep(self.rng.uniform(1, 3))  # a stalled consumer: backpressure
                next_pause = time.monotonic() + self.rng.uniform(10, 40)
            if sock.poll(100):
                for _ in range(1000):
                    try:
                        ident, seq, _body = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.ledger.record(ident.decode(), int(seq))
        sock.close()

    def worker(self) -> None:
        zmq = self.zmq
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.queue.endpoints["backend"])
        while not self.stop.is_set():
            if sock.poll(100):
                for _ in range(1000):
                    try:
                        msg = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    sock.send_multipart([*msg, b"zmq"])
        sock.close()

    # ---------------------------------------------------------------- churn

    def client_thread(self, ident: str, n: int, stall: bool) -> None:
        """A pyzmq DEALER client: a window of requests, every reply exactly once."""
        zmq = self.zmq
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IDENTITY, ident.encode())
        sock.connect(self.queue.endpoints["frontend"])
        got: set[int] = set()
        sent = 0
        window = 20
        deadline = time.monotonic() + n / self.args.rate + WAIT
        try:
            while len(got) < n:
                while sent < n and sent - len(got) < window:
                    sock.send_multipart([b"", ident.encode(), b"%d" % sent])
                    sent += 1
                    time.sleep(1 / self.args.rate)
                if stall and len(got) == n // 2:
                    time.sleep(self.rng.uniform(1, 4))
                    stall = False
                if time.monotonic() > deadline:
                    self.tally.fail(f"client {ident}: {n - len(got)} of {n} replies lost")
                    return
                if not sock.poll(100):
                    continue
                reply = sock.recv_multipart()
                seq = int(reply[2])
                if reply[1] != ident.encode() or seq in got:
                    self.tally.fail(f"client {ident}: bad or duplicate reply {reply[:3]!r}")
                    return
                got.add(seq)
            self.tally.add("requests answered", n)
            self.tally.add("clients finished")
        finally:
            sock.close()

    def staller(self, target: str, half: bool) -> None:
        """A raw connection that sends nothing (or half a greeting) until closed."""
        host, _, port = target.removeprefix("tcp://").rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=WAIT) as s:
                if half:
                    s.sendall(b"\xff" + bytes(8) + b"\x7f\x03")  # 11 of 64 bytes
                s.settimeout(self.args.handshake_ivl / 1000 + WAIT)
                while s.recv(4096):  # our greeting, then EOF when we are dropped
                    pass
            self.tally.add("stalled handshakes closed by the proxy")
        except TimeoutError:
            self.tally.fail(f"a stalled connection to {target} was never closed")
        except OSError:
            self.tally.add("stalled handshakes closed by the proxy")

    def spawn_peer(self, kind: str, endpoint: str, n: int, *, kill: bool, stall: bool) -> None:
        ident = self._ident(kind)
        if kind.startswith("push"):
            self.ledger.expect(ident, n)
        proc = _spawn(
            ["-m", "bench.soak", "--peer", kind, endpoint, ident, str(n),
             str(self.args.rate), "1" if stall else "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.children.append((proc, kind, ident, kill))
        if kill:
            delay = self.rng.uniform(0.5, 6)
            threading.Timer(delay, _kill, (proc,)).start()

    def reap(self, *, block: bool = False) -> None:
        """Collect finished churn subprocesses and check each outcome."""
        still = []
        for proc, kind, ident, killed in self.children:
            if block:
                try:
                    proc.wait(timeout=(WAIT * 4 if not killed else WAIT))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    self.tally.fail(f"{ident} did not finish")
            if proc.poll() is None:
                still.append((proc, kind, ident, killed))
                continue
            out, err = proc.communicate()
            if proc.returncode == -signal.SIGKILL:
                self.tally.add(f"{kind.split('-')[0]} peers SIGKILLed")
                if kind.startswith("push"):
                    self.killed_producers.append(ident)
            elif proc.returncode == 0:
                self.tally.add(f"{kind.split('-')[0]} peers finished")
                if kind.startswith("push"):
                    self.finished_producers.append(ident)
                else:
                    self.tally.add("requests answered", int(out.split(b"=")[-1]))
            else:
                self.tally.fail(f"{ident} exited {proc.returncode}: {err.decode()[-500:]}")
        self.children = still

    killed_producers: list[str]
    finished_producers: list[str]

    def churn_step(self) -> None:
        rng = self.rng
        live = sum(1 for c in self.children if c[0].poll() is None)
        action = rng.random()
        pipe_in = self.pipe.endpoints["frontend"]
        queue_in = self.queue.endpoints["frontend"]
        n = rng.randint(200, 3000)
        if action < 0.45 and live < self.args.max_procs:
            kind = rng.choice(["push-zmq", "push-ours", "push-zmq", "push-ours", "dealer-ours"])
            ep = queue_in if kind.startswith("dealer") else pipe_in
            # One to be killed runs long enough to be killed mid-stream (< 6 s).
            kill = rng.random() < 0.5
            self.spawn_peer(kind, ep, 20_000 if kill else n, kill=kill, stall=rng.random() < 0.3)
        elif action < 0.80:
            if sum(t.is_alive() for t in self.threads) < self.args.max_threads:
                self._thread(self.client_thread, self._ident("dealer-zmq"),
                             rng.randint(50, 1000), rng.random() < 0.3)  # fmt: skip
        elif sum(t.is_alive() for t in self.threads) < self.args.max_threads:
            target = rng.choice([pipe_in, queue_in, self.pipe.endpoints["backend"]])
            self._thread(self.staller, target, rng.random() < 0.5)

    # ---------------------------------------------------------------- run

    def sample(self, t0: float, phase: str) -> dict[str, Any]:
        s = {
            "t": round(time.monotonic() - t0, 1),
            "phase": phase,
            "queue_rss_kib": self.queue.rss_kib(),
            "pipeline_rss_kib": self.pipe.rss_kib(),
            "queue_fds": self.queue.fds(),
            "pipeline_fds": self.pipe.fds(),
            "received": self.ledger.received,
        }
        self.samples.append(s)
        print(
            f"{s['t']:7.1f}s {phase:8} rss queue {s['queue_rss_kib'] / 1024:6.1f} MiB "
            f"pipeline {s['pipeline_rss_kib'] / 1024:6.1f} MiB | fds {s['queue_fds']:4} "
            f"{s['pipeline_fds']:4} | pushed msgs received {s['received']} | "
            f"peers live {sum(1 for c in self.children if c[0].poll() is None)} procs "
            f"{sum(t.is_alive() for t in self.threads)} threads",
            flush=True,
        )
        return s

    def run(self) -> dict[str, Any]:
        args = self.args
        self.killed_producers = []
        self.finished_producers = []
        stable = [
            self._thread(self.consumer, False),
            self._thread(self.consumer, True),
            self._thread(self.worker),
        ]
        self.threads.clear()  # churn threads only, from here on
        ours_worker = _spawn(
            ["-m", "bench.soak", "--peer", "worker-ours", self.queue.endpoints["backend"],
             "w", "0", "0", "0"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert ours_worker.stdout is not None
        ours_worker.stdout.readline()
        t0 = time.monotonic()
        # Baseline: stable peers connected (their sockets are up once a probe passes).
        self._thread(self.client_thread, "probe", 10, False).join()
        self.threads.clear()
        time.sleep(1)  # the probe's connection to close, the consumers' to open
        base = self.sample(t0, "baseline")
        end = t0 + args.minutes * 60
        next_sample = time.monotonic() + args.interval
        while time.monotonic() < end and not self.tally.failures:
            if not (self.queue.alive() and self.pipe.alive()):
                self.tally.fail("a proxy exited during the run")
                break
            self.churn_step()
            self.reap()
            self.threads = [t for t in self.threads if t.is_alive()]
            if time.monotonic() >= next_sample:
                phase = "warmup" if time.monotonic() - t0 < args.warmup else "run"
                self.sample(t0, phase)
                next_sample += args.interval
            time.sleep(self.rng.uniform(0.05, 2 * args.step))
        # Drain: churn stops; wait for the peers still running, then for quiet.
        print("churn stopped; draining", flush=True)
        for t in self.threads:
            t.join(timeout=WAIT * 4)
        self.reap(block=True)
        while time.monotonic() - self.ledger.last_arrival < 3:
            time.sleep(0.5)
        fds_back = False
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            final = self.sample(t0, "drained")
            if (final["queue_fds"], final["pipeline_fds"]) <= (
                base["queue_fds"],
                base["pipeline_fds"],
            ):
                fds_back = True
                break
            time.sleep(1)
        if args.tracemalloc is not None:
            self.trim_sample()
        return self.verdict(base, final, fds_back, [*stable], ours_worker)

    def trim_sample(self) -> None:
        """Have each traced proxy sample before and after ``malloc_trim(0)``."""
        for p in (self.queue, self.pipe):
            p.proc.send_signal(signal.SIGUSR1)
        tsvs = [Path(self.args.tracemalloc, f"{name}.tsv") for name in ("queue", "pipeline")]
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if all("after malloc_trim" in tsv.read_text() for tsv in tsvs):
                return
            time.sleep(0.5)
        print("no malloc_trim sample from the traced proxies", flush=True)

    def verdict(
        self,
        base: dict[str, Any],
        final: dict[str, Any],
        fds_back: bool,
        stable: list[threading.Thread],
        ours_worker: subprocess.Popen[bytes],
    ) -> dict[str, Any]:
        args = self.args
        lost = 0
        for ident in self.finished_producers:
            got = self.ledger.count(ident)
            want = len(self.ledger.seen[ident])
            if got != want:
                lost += want - got
                self.tally.fail(f"producer {ident} finished: {got} of {want} arrived")
        for ident in self.killed_producers:
            problem = self.ledger.check_prefix(ident)
            if problem:
                self.tally.fail(f"killed producer {problem}")
        if self.ledger.duplicates:
            self.tally.fail(f"{self.ledger.duplicates} duplicate or unknown messages")
        if not fds_back:
            self.tally.fail(
                f"fds not back to baseline: queue {final['queue_fds']} (was "
                f"{base['queue_fds']}), pipeline {final['pipeline_fds']} (was "
                f"{base['pipeline_fds']})"
            )
        rss: dict[str, Any] = {}
        after = [s for s in self.samples if s["phase"] == "run"]
        for name in ("queue", "pipeline"):
            key = f"{name}_rss_kib"
            if len(after) < 10:
                self.tally.fail("too few samples after warm-up to judge RSS")
                break
            tenth = max(1, len(after) // 10)
            start = statistics.median(s[key] for s in after[:tenth])
            end = statistics.median(s[key] for s in after[-tenth:])
            rss[name] = {
                "baseline_mib": round(base[key] / 1024, 1),
                "after_warmup_mib": round(start / 1024, 1),
                "end_mib": round(end / 1024, 1),
                "peak_mib": round(max(s[key] for s in self.samples) / 1024, 1),
                "growth_mib": round((end - start) / 1024, 2),
            }
            if end - start > args.rss_slack * 1024:
                self.tally.fail(f"{name} proxy RSS grew {(end - start) / 1024:.1f} MiB")
        self.stop.set()
        for t in stable:
            t.join(timeout=WAIT)
        ours_worker.kill()
        ours_worker.wait()
        stats = {"queue": self.queue.stop(), "pipeline": self.pipe.stop()}
        logs = {"queue": self.queue.log_summary(), "pipeline": self.pipe.log_summary()}
        self.ctx.term()
        return {
            "minutes": args.minutes,
            "seed": args.seed,
            "rss": rss,
            "fds": {
                "queue": [
                    base["queue_fds"],
                    max(s["queue_fds"] for s in self.samples),
                    final["queue_fds"],
                ],
                "pipeline": [
                    base["pipeline_fds"],
                    max(s["pipeline_fds"] for s in self.samples),
                    final["pipeline_fds"],
                ],
            },
            "pushed_messages_received": self.ledger.received,
            "duplicates": self.ledger.duplicates,
            "lost": lost,
            "producers_finished": len(self.finished_producers),
            "producers_killed": len(self.killed_producers),
            "counts": dict(sorted(self.tally.counts.items())),
            "proxy_final_statistics": stats,
            "proxy_log_lines": logs,
            "failures": list(self.tally.failures),
        }


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--peer"]:
        return _peer_main(argv[1:])
    if argv[:1] == ["--traced-proxy"]:
        return _traced_proxy_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=30, help="length of the churn")
    parser.add_argument("--warmup", type=float, default=120, help="seconds before RSS counts")
    parser.add_argument("--interval", type=float, default=5, help="seconds between samples")
    parser.add_argument("--step", type=float, default=0.5, help="mean seconds between actions")
    parser.add_argument("--rate", type=float, default=200, help="msgs/s per producer/client")
    parser.add_argument("--max-procs", type=int, default=6, help="churn subprocesses at once")
    parser.add_argument("--max-threads", type=int, default=40, help="churn threads at once")
    parser.add_argument("--handshake-ivl", type=int, default=2000, help="the proxies' (ms)")
    parser.add_argument("--rss-slack", type=float, default=4.0, help="MiB of RSS growth allowed")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--proxy-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra argument for both proxies, e.g. --proxy-arg=--no-tune-allocator",
    )
    parser.add_argument("--json", metavar="FILE", help="save samples and summary")
    parser.add_argument(
        "--tracemalloc",
        metavar="DIR",
        help="diagnostic: run the proxies under tracemalloc, writing to DIR (see above)",
    )
    parser.add_argument(
        "--trace-interval", type=float, default=60, help="seconds between tracemalloc samples"
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.warmup < 0 or args.interval <= 0:
        parser.error("--minutes and --interval must be positive, --warmup not negative")
    if args.seed is None:
        args.seed = random.randrange(2**32)
    print(f"soak: {args.minutes} min, seed {args.seed}", flush=True)
    soak = Soak(args)
    try:
        summary = soak.run()
    finally:
        for proc, *_ in soak.children:
            _kill(proc)
        for p in (soak.queue, soak.pipe):
            if p.alive():
                p.proc.kill()
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "samples": soak.samples}))
    if summary["failures"]:
        print(f"soak: FAILED ({len(summary['failures'])} failures)")
        return 1
    print("soak: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
