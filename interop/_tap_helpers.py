"""Helpers for the tap tests: run the tap in-process, rebuild bytes from records, turn a
recording into a pcap capture, read a subprocess's output lines with a timeout."""

from __future__ import annotations

import json
import queue
import random
import socket
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import trio

from zmtp.protocol.commands import (
    encode_cancel,
    encode_command,
    encode_error,
    encode_ping,
    encode_pong,
    encode_subscribe,
)
from zmtp.protocol.framing import FLAG_LONG, FLAG_MORE, encode_frame
from zmtp.protocol.greeting import build_greeting
from zmtp.protocol.metadata import encode_properties
from zmtp.tools.tap import Tap, parse_endpoint
from zmtp.tools.trace import (
    Command,
    DecodeError,
    Direction,
    End,
    Greeting,
    Message,
    Notice,
    Opened,
    Record,
    TraceEvent,
)

__all__ = [
    "Collector",
    "LineReader",
    "pcap_from_recording",
    "reencode",
    "running_tap",
]


class Collector:
    """The tap's ``emit``: keeps every event and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.events: list[TraceEvent] = []
        self._wakeup = trio.Event()

    def __call__(self, event: TraceEvent) -> None:
        self.events.append(event)
        self._wakeup.set()

    async def wait_for(self, predicate: Callable[[Collector], bool]) -> None:
        """Wait until ``predicate(self)`` holds (the caller bounds the wait)."""
        while not predicate(self):
            # emit runs in trio tasks of the same run: nothing can slip in between the
            # check and the new Event.
            self._wakeup = trio.Event()
            await self._wakeup.wait()

    def records(self, direction: Direction, conn: int | None = None) -> list[Record]:
        """The records of one direction (of one connection, or of all)."""
        out: list[Record] = []
        for e in self.events:
            r = e.record
            if e.direction == direction and (conn is None or e.conn == conn):
                assert not isinstance(r, Opened | Notice)
                out.append(r)
        return out

    def closed(self, direction: Direction, conn: int | None = None) -> bool:
        """True once that direction has ended."""
        return any(isinstance(r, End) for r in self.records(direction, conn))

    def count(self, direction: Direction, name: str) -> int:
        """How many commands called ``name`` went that way."""
        return sum(1 for r in self.records(direction) if isinstance(r, Command) and r.name == name)


@asynccontextmanager
async def running_tap(
    listen: str,
    upstream: str,
    *,
    record_dir: Path | None = None,
    preview: int = 1 << 16,
    **options: Any,
) -> AsyncIterator[tuple[str, Collector, Tap]]:
    """A tap serving in a background task: yields (bound endpoint, collector, tap).

    ``options`` go to :class:`Tap` as they are (``wire``, ``clock``)."""
    collector = Collector()
    tap = Tap(
        parse_endpoint(listen, listen=True),
        parse_endpoint(upstream),
        collector,
        preview=preview,
        record_dir=record_dir,
        **options,
    )
    async with trio.open_nursery() as nursery:
        bound: list[str] = await nursery.start(tap.serve)
        yield bound[0], collector, tap
        nursery.cancel_scope.cancel()


def reencode(records: Sequence[Record]) -> bytes:
    """Rebuild the wire bytes from a direction's records (previews must be whole).

    Equality with what was recorded proves that the trace lost or invented nothing.
    """
    out = bytearray()
    for r in records:
        if isinstance(r, Greeting):
            g = bytearray(build_greeting(r.mechanism.encode(), as_server=r.as_server))
            g[1:9] = r.padding
            g[10], g[11] = r.major, r.minor
            out += g
        elif isinstance(r, Command):
            out += _reencode_command(r)
        elif isinstance(r, Message):
            for f in r.frames:
                assert not f.truncated, "use a preview as large as the frames"
                frame = encode_frame(f.preview, f.flags & FLAG_MORE)
                assert frame[0] & FLAG_LONG == f.flags & FLAG_LONG, "not libzmq's encoding"
                out += frame
        elif isinstance(r, DecodeError):
            raise AssertionError(f"unexpected decode error: {r}")
    return bytes(out)


def _reencode_command(c: Command) -> bytes:
    if c.name == "READY":
        assert c.properties is not None
        return encode_command(b"READY", encode_properties(list(c.properties)))
    if c.name == "PING":
        assert c.ttl is not None
        assert c.context is not None
        return encode_ping(c.ttl, c.context)
    if c.name == "PONG":
        assert c.context is not None
        return encode_pong(c.context)
    if c.name in ("SUBSCRIBE", "CANCEL"):
        assert c.topic is not None
        return (encode_subscribe if c.name == "SUBSCRIBE" else encode_cancel)(c.topic)
    if c.name == "ERROR":
        assert c.reason is not None
        return encode_error(c.reason)
    raise AssertionError(f"no re-encoder for {c.name}")


# ---------------------------------------------------------------------------------------
# pcap synthesis


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.removeprefix("tcp://").rpartition(":")
    return host.strip("[]"), int(port)


def pcap_from_recording(
    rec_dir: Path, conn: int, out: Path, *, rng: random.Random | None = None
) -> None:
    """Write the recorded connection as an Ethernet/IPv4/TCP pcap, as tcpdump would.

    Segments are at most 1460 bytes and carry the recorded timestamps.  With ``rng``,
    some segments are retransmitted (a duplicate, sometimes overlapping the next one)
    and neighbouring segments are swapped, so that the capture is out of order.
    """
    import dpkt  # noqa: PLC0415 - only the pcap tests need it

    timeline = (rec_dir / f"conn-{conn}-timeline.jsonl").read_text("utf-8")
    lines = [json.loads(x) for x in timeline.splitlines()]
    head, steps = lines[0], lines[1:]
    data = {d: (rec_dir / f"conn-{conn}-{d}.bin").read_bytes() for d in ("c2s", "s2c")}
    ends = {"c2s": (_hostport(head["client"]), _hostport(head["server"]))}
    ends["s2c"] = (ends["c2s"][1], ends["c2s"][0])
    isn = {"c2s": 1000, "s2c": 2**32 - 100}  # the server's sequence numbers wrap

    def packet(direction: str, seq: int, flags: int, payload: bytes = b"") -> Any:
        (src, sport), (dst, dport) = ends[direction]
        tcp = dpkt.tcp.TCP(
            sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, flags=flags, data=payload
        )
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=6, data=tcp)
        return dpkt.ethernet.Ethernet(
            src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip
        )

    t0 = float(head["time"])
    syn, ack, fin, psh = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN, dpkt.tcp.TH_PUSH
    packets: list[tuple[float, Any]] = [
        (t0, packet("c2s", isn["c2s"], syn)),
        (t0, packet("s2c", isn["s2c"], syn | ack)),
        (t0, packet("c2s", isn["c2s"] + 1, ack)),
    ]
    pos = {"c2s": 0, "s2c": 0}
    for step in steps:
        d, t = step["dir"], float(step["t"])
        if step.get("eof"):
            packets.append((t, packet(d, isn[d] + 1 + pos[d], fin | ack)))
            continue
        chunk = data[d][pos[d] : pos[d] + step["n"]]
        for i in range(0, len(chunk), 1460):
            seq = isn[d] + 1 + pos[d] + i
            packets.append((t, packet(d, seq, ack | psh, chunk[i : i + 1460])))
            if rng is not None and rng.random() < 0.2:
                extra = rng.choice([0, 5])  # retransmit, sometimes overlapping what follows
                again = data[d][pos[d] + i : pos[d] + i + 1460 + extra]
                packets.append((t, packet(d, seq, ack, again)))
        pos[d] += len(chunk)
    if rng is not None:
        body = packets[3:]
        for i in range(len(body) - 1):
            if rng.random() < 0.3:
                body[i], body[i + 1] = body[i + 1], body[i]
        times = sorted(t for t, _ in body)
        packets[3:] = [(t, p) for t, (_, p) in zip(times, body, strict=True)]
    with out.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for t, p in packets:
            writer.writepkt(p, ts=t)


# ---------------------------------------------------------------------------------------
# Subprocess output


class LineReader:
    """Reads a text pipe in a daemon thread so lines can be awaited with a timeout."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self._thread.start()

    def _run(self, pipe: IO[str]) -> None:
        for line in pipe:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next_line(self, timeout: float) -> str | None:
        """The next line, or None at EOF.

        Raises:
            queue.Empty: nothing within ``timeout`` seconds.
        """
        line = self._queue.get(timeout=timeout)
        if line is not None:
            self.lines.append(line)
        return line

    def until(self, predicate: Callable[[list[str]], bool], timeout: float) -> list[str]:
        """Read lines until ``predicate(lines so far)`` holds; each wait is bounded."""
        while not predicate(self.lines):
            if self.next_line(timeout) is None:
                raise AssertionError(f"EOF before the expected output: {self.lines[-5:]}")
        return self.lines

    def join(self, timeout: float) -> None:
        """Wait for the reader thread to see EOF."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "pipe still open"

    def rest(self, timeout: float) -> list[str]:
        """Every remaining line until EOF."""
        while self.next_line(timeout) is not None:
            pass
        return self.lines
