"""``python -m zmtp decode``: decode recorded ZMTP traffic.

Inputs (``--format auto`` tells them apart by content):

* **raw byte files**, such as ``conn-<n>-c2s.bin`` / ``conn-<n>-s2c.bin`` from
  ``python -m zmtp tap --record``.  Files whose names differ only by ``c2s``/``s2c`` are
  paired into one conversation; a ``conn-<n>-timeline.jsonl`` next to them (written by
  the tap) restores when each chunk passed, so the directions interleave as they did
  live.  Without it the client side is shown first, then the server side.  A file that
  has no partner is decoded as a lone stream (direction ``-->``).
* **hex dumps** of such a stream: plain hex digits (whitespace anywhere), ``xxd`` output
  and ``hexdump -C`` output (including its ``*`` lines for repeated rows).
* **pcap and pcapng captures** (optional extra ``zmtp[pcap]``, which brings dpkt).  Each
  TCP connection in the capture is reassembled, both directions, in sequence-number
  order: retransmitted and overlapping segments are trimmed, out-of-order ones held until
  the gap before them fills.  Bytes the capture lost stop the decoding of that direction
  with a clear message instead of producing nonsense.  Ethernet, Linux cooked (SLL and
  SLL2), raw IP and BSD loopback link types are understood, over IPv4 and IPv6.

Every input becomes the same :class:`~zmtp.tools.trace.TraceEvent` stream the live tap
produces, so the output formats are the same.

Within a connection, event times never go backwards (:class:`_Tracer` holds them at the
latest so far): two directions stamped by different tasks, or a capture's packets, may
step back.  :class:`DecodeSummary` collects what was found, so the command line can say
so (and exit non-zero) when there was no ZMTP.  A :class:`~zmtp.tools.pcap.WireSink` can
be given every decoded byte (``--pcap-out``).

One module (some 840 lines) for the four input formats, their detection and the
summary of what was found: each part is small, they share the summary and the tracer,
and detection needs all of them.
"""

from __future__ import annotations

import heapq
import json
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..protocol._buffers import BytesLike
from .pcap import WireSink
from .trace import (
    DEFAULT_PREVIEW,
    ConversationTracer,
    DecodeError,
    Direction,
    Greeting,
    Identity,
    LegacyGreeting,
    Notice,
    Opened,
    Record,
    StreamTracer,
    TraceEvent,
)

__all__ = ["DecodeInputError", "DecodeSummary", "decode_paths", "parse_hexdump", "trace_pcap"]

Format = Literal["auto", "raw", "hex", "pcap"]

_PCAP_MAGICS = (
    b"\xd4\xc3\xb2\xa1",  # microsecond, little-endian
    b"\xa1\xb2\xc3\xd4",  # microsecond, big-endian
    b"\x4d\x3c\xb2\xa1",  # nanosecond, little-endian
    b"\xa1\xb2\x3c\x4d",  # nanosecond, big-endian
    b"\x0a\x0d\x0d\x0a",  # pcapng section header block
)
_FEED = 64 * 1024
_BOTH: tuple[Direction, Direction] = ("c2s", "s2c")


class DecodeInputError(Exception):
    """An input file cannot be read as the format it was given (or detected) as."""


# ---------------------------------------------------------------------------------------
# Hex dumps

_XXD_LINE = re.compile(r"^([0-9a-fA-F]+):\s?(.*)$")
_HEXDUMP_C_LINE = re.compile(r"^([0-9a-fA-F]+)\s+((?:[0-9a-fA-F]{2}\s+){1,16})\|")
_OFFSET_ONLY = re.compile(r"^([0-9a-fA-F]+)\s*$")


def _hex_bytes(text: str, where: str) -> bytes:
    digits = "".join(text.split())
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise DecodeInputError(f"{where}: not hex: {text.strip()[:40]!r}") from None


def parse_hexdump(text: str) -> bytes:
    """The bytes in a hex dump (plain, ``xxd`` or ``hexdump -C``; see module docstring).

    Raises:
        DecodeInputError: the text is none of these.
    """
    lines = [
        (n, line.rstrip())
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        return b""
    first = lines[0][1]
    if _XXD_LINE.match(first) and not _HEXDUMP_C_LINE.match(first):
        kind = "xxd"
    elif _HEXDUMP_C_LINE.match(first):
        kind = "hexdump"
    else:
        return _hex_bytes(" ".join(line for _, line in lines), "line 1")
    rows: list[tuple[int, bytes] | None] = []  # (offset, bytes), None for '*'
    end: int | None = None
    for n, line in lines:
        where = f"line {n}"
        if line.strip() == "*":
            rows.append(None)
            continue
        if m := _OFFSET_ONLY.match(line):  # hexdump's closing line: the total length
            end = int(m[1], 16)
            continue
        if kind == "xxd":
            m = _XXD_LINE.match(line)
            if not m:
                raise DecodeInputError(f"{where}: not an xxd line: {line[:40]!r}")
            # The hex column ends at the first double space; the text column follows.
            rows.append((int(m[1], 16), _hex_bytes(m[2].split("  ")[0], where)))
        else:
            m = _HEXDUMP_C_LINE.match(line)
            if not m:
                raise DecodeInputError(f"{where}: not a hexdump -C line: {line[:40]!r}")
            rows.append((int(m[1], 16), _hex_bytes(m[2], where)))
    return _assemble_rows(rows, end)


def _assemble_rows(rows: list[tuple[int, bytes] | None], end: int | None) -> bytes:
    """Join offset-labelled rows; ``*`` means "the previous row repeats up to the next"."""
    out = bytearray()
    base: int | None = None
    last = b""
    starred = False

    def fill_to(offset: int) -> None:
        gap = offset - (base or 0) - len(out)
        if gap < 0 or (gap and (not last or gap % len(last))):
            raise DecodeInputError(f"hex dump offsets do not add up at {offset:#x}")
        out.extend(last * (gap // len(last)) if gap else b"")

    for row in rows:
        if row is None:
            starred = True
            continue
        offset, data = row
        if base is None:
            base = offset
        if starred:
            fill_to(offset)
            starred = False
        elif offset - base != len(out):
            raise DecodeInputError(
                f"hex dump row at offset {offset:#x} does not follow the previous one"
            )
        out += data
        last = data
    if end is not None and starred:
        fill_to(end)
    return bytes(out)


# ---------------------------------------------------------------------------------------
# Files and their pairing

_DIR_IN_NAME = re.compile(r"^(?P<pre>.*?)(?P<dir>c2s|s2c)(?P<post>.*)$")
_TIMELINE = re.compile(r"^(?P<pre>.*)timeline\.jsonl$")


@dataclass
class _Group:
    key: tuple[str, str, str]
    streams: dict[Direction, Path] = field(default_factory=dict)
    timeline: Path | None = None


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _expand(paths: Iterable[Path], summary: DecodeSummary) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted((p for p in path.iterdir() if p.is_file()), key=_natural_key)
            if not inside:
                summary.found.append(f"{path}: an empty directory")
            out.extend(inside)
        elif path.exists():
            out.append(path)
        else:
            raise DecodeInputError(f"{path}: no such file or directory")
    return out


def _detect(data: bytes) -> Format:
    if data[:4] in _PCAP_MAGICS:
        return "pcap"
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return "raw"
    if text.strip() and all(c.isprintable() or c.isspace() for c in text):
        try:
            parse_hexdump(text)
        except DecodeInputError:
            return "raw"
        return "hex"
    return "raw"


def _read_stream(path: Path, data: bytes, fmt: Format) -> bytes:
    if fmt == "hex" or (fmt == "auto" and _detect(data) == "hex"):
        try:
            return parse_hexdump(data.decode("ascii"))
        except UnicodeDecodeError:
            raise DecodeInputError(f"{path}: not an ASCII hex dump") from None
        except DecodeInputError as exc:
            raise DecodeInputError(f"{path}: {exc}") from None
    return data


def _read_timeline(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        lines = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
    except (OSError, ValueError) as exc:
        raise DecodeInputError(f"{path}: unreadable timeline: {exc}") from None
    if not lines or not all(isinstance(x, dict) for x in lines):
        raise DecodeInputError(f"{path}: not a timeline")
    return lines[0], lines[1:]


# ---------------------------------------------------------------------------------------
# What was found, and the times


@dataclass
class DecodeSummary:
    """What :func:`decode_paths` found, filled in as it yields; read it afterwards.

    ``python -m zmtp decode`` uses it to say what it found and to exit non-zero when the
    input held no ZMTP conversation or a direction stopped at a decode error.
    """

    #: Inputs that gave no conversation, with what they held instead.
    found: list[str] = field(default_factory=list)
    #: Connections (conversations) decoded.
    conversations: int = 0
    #: (connection, direction) pairs that began with a ZMTP greeting.
    greetings: set[tuple[int, Direction]] = field(default_factory=set)
    #: Where decoding stopped: "#<conn> <dir> at byte N: reason", in order.
    errors: list[str] = field(default_factory=list)
    #: Directions that read as a ZMTP 2.0/1.0 opening, with why, until their identity
    #: frame completes one (then they count as greetings).  Anything not starting with
    #: 0xFF reads as a 1.0 opening, as libzmq reads it, so one that never completes is
    #: most likely not ZMTP at all.
    openings: dict[tuple[int, Direction], str] = field(default_factory=dict)

    def observe(self, event: TraceEvent) -> None:
        """Account for one event."""
        r = event.record
        if isinstance(r, Opened):
            self.conversations += 1
        elif isinstance(r, Greeting) and event.direction is not None:
            self.greetings.add((event.conn, event.direction))
        elif isinstance(r, LegacyGreeting) and event.direction is not None:
            self.openings[(event.conn, event.direction)] = r.detected_by
        elif isinstance(r, Identity) and event.direction is not None:
            if self.openings.pop((event.conn, event.direction), None) is not None:
                self.greetings.add((event.conn, event.direction))
        elif isinstance(r, DecodeError):
            self.errors.append(f"#{event.conn} {event.direction} at byte {r.offset}: {r.reason}")

    @property
    def ok(self) -> bool:
        """True if some ZMTP was decoded and nothing failed to decode."""
        return bool(self.greetings) and not self.errors

    def verdict(self) -> str:
        """One paragraph on what was found (for the end of a run that is not :attr:`ok`)."""
        if not self.conversations:
            return "no conversation found: " + ("; ".join(self.found) or "no input files")
        conns = f"{self.conversations} connection{'s' if self.conversations != 1 else ''}"
        zmtp = len({conn for conn, _ in self.greetings})
        parts = [f"{conns}, {zmtp} of them ZMTP" if zmtp else f"{conns}, none of them ZMTP"]
        if self.errors:
            shown = self.errors[:3]
            more = f" (and {len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
            parts.append("decoding stopped in " + "; ".join(shown) + more)
        elif not self.greetings and self.openings:
            (conn, direction), why = next(iter(self.openings.items()))
            parts.append(
                f"#{conn} {direction} reads as a ZMTP 1.0/2.0 opening ({why}) that never "
                "completed: most likely not ZMTP"
            )
        elif not self.greetings:
            parts.append("no greeting in any direction (empty or cut short)")
        parts.extend(self.found)
        return "; ".join(parts)


class _Tracer(ConversationTracer):
    """A conversation tracer for recorded input: its times never go backwards, and every
    byte it is fed is also handed to a :class:`~zmtp.tools.pcap.WireSink` (``--pcap-out``).

    Recordings interleave two directions whose stamps come from different places (two
    relay tasks, a capture's packets), so a later event may carry an earlier time; each
    event is stamped no earlier than the one before it in the same connection.
    """

    def __init__(
        self, conn: int, *, preview: int, wire: WireSink | None, show_passwords: bool = False
    ) -> None:
        super().__init__(conn, preview=preview, show_passwords=show_passwords)
        self._wire = wire
        self._last: float | None = None

    def _t(self, time: float | None) -> float | None:
        if time is not None and self._last is not None and time < self._last:
            time = self._last
        if time is not None:
            self._last = time
        return time

    def event(
        self,
        record: Record | Opened | Notice,
        time: float | None = None,
        direction: Direction | None = None,
    ) -> TraceEvent:
        time = self._t(time)
        if isinstance(record, Opened) and self._wire is not None:
            self._wire.open(self.conn, record.client, record.server, time)
        return super().event(record, time, direction)

    def feed(
        self, direction: Direction, data: BytesLike, time: float | None = None
    ) -> list[TraceEvent]:
        time = self._t(time)
        if self._wire is not None:
            self._wire.data(self.conn, direction, bytes(data), time)
        return super().feed(direction, data, time)

    def close(self, direction: Direction, time: float | None = None) -> list[TraceEvent]:
        time = self._t(time)
        if self._wire is not None and not self.tracers[direction].closed:
            self._wire.eof(self.conn, direction, time)
        return super().close(direction, time)

    def interrupt(
        self, direction: Direction, reason: str, time: float | None = None
    ) -> list[TraceEvent]:
        return super().interrupt(direction, reason, self._t(time))


# ---------------------------------------------------------------------------------------
# Decoding files


def decode_paths(
    paths: Iterable[Path | str],
    *,
    preview: int = DEFAULT_PREVIEW,
    fmt: Format = "auto",
    port: int | None = None,
    summary: DecodeSummary | None = None,
    wire: WireSink | None = None,
    show_passwords: bool = False,
) -> Iterator[TraceEvent]:
    """Decode files (and the files in directories) into trace events.

    Within a connection, event times never go backwards.

    Args:
        paths: files or directories.
        preview: bytes of each frame body kept in records.
        fmt: the input format, or ``auto`` to detect it per file.
        port: for captures, only decode TCP connections with this port on one side.
        summary: filled in with what was found (see :class:`DecodeSummary`).
        wire: also given every decoded connection's bytes (a
            :class:`~zmtp.tools.pcap.PcapWriter` for ``--pcap-out``).
        show_passwords: keep PLAIN passwords in the records (``--show-passwords``);
            by default only their sizes are shown.

    Raises:
        DecodeInputError: a file is missing or malformed for its format, or dpkt is
            needed and not installed.
    """
    summary = DecodeSummary() if summary is None else summary
    for event in _decode_paths(
        paths,
        preview=preview,
        fmt=fmt,
        port=port,
        summary=summary,
        wire=wire,
        show_passwords=show_passwords,
    ):
        summary.observe(event)
        yield event


def _decode_paths(
    paths: Iterable[Path | str],
    *,
    preview: int,
    fmt: Format,
    port: int | None,
    summary: DecodeSummary,
    wire: WireSink | None,
    show_passwords: bool,
) -> Iterator[TraceEvent]:
    files = _expand((Path(p) for p in paths), summary)
    conn = 0
    groups: dict[tuple[str, str, str], _Group] = {}
    order: list[_Group | Path] = []  # groups and pcap files, in command-line order
    for path in files:
        if (m := _TIMELINE.match(path.name)) and fmt in ("auto", "raw"):
            key = (str(path.parent), m["pre"], "")
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(key)
                order.append(group)
            group.timeline = path
            continue
        with path.open("rb") as f:
            head = f.read(4)
        if fmt == "pcap" or (fmt == "auto" and head in _PCAP_MAGICS):
            order.append(path)
            continue
        m = _DIR_IN_NAME.match(path.name)
        if m:
            key = (str(path.parent), m["pre"], m["post"].rsplit(".", 1)[0])
            direction: Direction = "c2s" if m["dir"] == "c2s" else "s2c"
        else:
            key = (str(path.parent), path.name, "\0lone")
            direction = "stream"
        group = groups.get(key)
        if group is None or direction in group.streams:
            group = groups[key] = _Group(key)
            order.append(group)
        group.streams[direction] = path
    # A timeline names its streams by the same prefix: attach streams found under a
    # timeline key with an extension-less suffix.
    for group in list(groups.values()):
        if group.streams and group.timeline is None:
            sibling = Path(group.key[0]) / f"{group.key[1]}timeline.jsonl"
            if sibling.is_file():
                group.timeline = sibling
    for item in order:
        if isinstance(item, _Group) and not item.streams and item.timeline is not None:
            summary.found.append(f"{item.timeline}: a timeline without its byte files")
    ctx: dict[str, Any] = {
        "preview": preview,
        "fmt": fmt,
        "wire": wire,
        "show_passwords": show_passwords,
    }
    if order and all(isinstance(item, _Group) and item.timeline for item in order):
        # Recordings with timelines: interleave the connections as they happened live.
        numbered = [g for g in order if isinstance(g, _Group) and g.streams]
        yield from heapq.merge(
            *(_decode_group(g, n, **ctx) for n, g in enumerate(numbered, 1)),
            key=lambda e: e.time or 0.0,
        )
        return
    for item in order:
        if isinstance(item, Path):
            for event in _trace_pcap(
                item,
                preview=preview,
                port=port,
                first_conn=conn + 1,
                summary=summary,
                wire=wire,
                show_passwords=show_passwords,
            ):
                conn = max(conn, event.conn)
                yield event
            continue
        if not item.streams:
            continue  # a timeline given without its byte files
        conn += 1
        yield from _decode_group(item, conn, **ctx)


def _decode_group(
    group: _Group,
    conn: int,
    *,
    preview: int,
    fmt: Format,
    wire: WireSink | None,
    show_passwords: bool,
) -> Iterator[TraceEvent]:
    streams = {d: _read_stream(p, p.read_bytes(), fmt) for d, p in group.streams.items()}
    if "stream" in streams:
        path = group.streams["stream"]
        tracer = StreamTracer(preview=preview, show_passwords=show_passwords)
        yield TraceEvent(conn, None, Opened(str(path), "?"))
        if wire is not None:
            wire.open(conn, str(path), "?", None)
            wire.data(conn, "stream", streams["stream"], None)
            wire.eof(conn, "stream", None)
        for i in range(0, len(streams["stream"]), _FEED):
            for record in tracer.feed(streams["stream"][i : i + _FEED]):
                yield TraceEvent(conn, "stream", record)
        for record in tracer.close():
            yield TraceEvent(conn, "stream", record)
        return
    trace = _Tracer(conn, preview=preview, wire=wire, show_passwords=show_passwords)
    names = " + ".join(p.name for p in group.streams.values())
    chunks = _timeline_chunks(group, streams) if group.timeline else None
    if not isinstance(chunks, tuple):
        yield trace.event(Opened(*_ends(group)))
        if group.timeline:
            yield trace.event(
                Notice(
                    f"the timeline {group.timeline.name} does not fit {names} ({chunks}): "
                    f"decoding without times, client side first"
                )
            )
        for direction in _BOTH:
            if direction in streams:
                whole = streams[direction]
                for i in range(0, len(whole), _FEED):
                    yield from trace.feed(direction, whole[i : i + _FEED])
                yield from trace.close(direction)
        return
    head, steps = chunks
    yield trace.event(Opened(head.get("client", "?"), head.get("server", "?")), head.get("time"))
    if len(streams) == 1:
        # One file of a recording: its times come from the timeline all the same.
        (given,) = streams
        other = "s2c" if given == "c2s" else "c2s"
        yield trace.event(
            Notice(f"only {group.streams[given].name} was given: {other} not decoded"),
            head.get("time"),
        )
    for when, direction, data in steps:
        if data is None:
            yield from trace.close(direction, when)
        else:
            yield from trace.feed(direction, data, when)
    for direction in streams:
        yield from trace.close(direction, steps[-1][0] if steps else None)


def _ends(group: _Group) -> tuple[str, str]:
    c2s, s2c = group.streams.get("c2s"), group.streams.get("s2c")
    return (str(c2s) if c2s else "?", str(s2c) if s2c else "?")


_Step = tuple[float | None, Direction, bytes | None]


def _timeline_chunks(
    group: _Group, streams: dict[Direction, bytes]
) -> tuple[dict[str, Any], list[_Step]] | str:
    """The recorded chunks in live order, or why the timeline does not fit the files.

    Lines for a direction whose file was not given are skipped: decoding one file of a
    recording is fine.
    """
    assert group.timeline is not None
    try:
        head, lines = _read_timeline(group.timeline)
    except DecodeInputError as exc:
        return str(exc).removeprefix(f"{group.timeline}: ")
    pos: dict[Direction, int] = {"c2s": 0, "s2c": 0}
    steps: list[_Step] = []
    for number, line in enumerate(lines, 2):
        direction = line.get("dir")
        if direction not in ("c2s", "s2c"):
            return f"line {number} has no direction"
        if direction not in streams:
            continue
        when = line.get("t")
        when = float(when) if isinstance(when, int | float) else None
        if line.get("eof"):
            steps.append((when, direction, None))
            continue
        n = line.get("n")
        if not isinstance(n, int) or n < 0:
            return f"line {number} has no byte count"
        if pos[direction] + n > len(streams[direction]):
            return (
                f"it records more than the {len(streams[direction])} B "
                f"of {group.streams[direction].name}"
            )
        steps.append((when, direction, streams[direction][pos[direction] : pos[direction] + n]))
        pos[direction] += n
    for d, data in streams.items():
        if pos[d] != len(data):
            return f"it records {pos[d]} B of {group.streams[d].name}, which holds {len(data)} B"
    return head, steps


# ---------------------------------------------------------------------------------------
# pcap / pcapng


class _Reassembler:
    """One direction of a TCP connection: segments in, in-order bytes out.

    Offsets are relative to the first byte of data (ISN + 1 when the SYN was captured);
    32-bit sequence numbers are unwrapped around the next expected offset, so streams
    longer than 4 GiB and sequence-number wraparound both work.
    """

    def __init__(self, isn: int | None) -> None:
        self.base = None if isn is None else (isn + 1) & 0xFFFFFFFF
        self.next = 0
        self.pending: dict[int, bytes] = {}
        self.fin_at: int | None = None

    def _offset(self, seq: int) -> int:
        assert self.base is not None
        rel = (seq - self.base) & 0xFFFFFFFF
        delta = (rel - (self.next & 0xFFFFFFFF) + (1 << 31)) % (1 << 32) - (1 << 31)
        return self.next + delta

    def add(self, seq: int, payload: bytes, fin: bool) -> bytes:
        """A segment's data starting at ``seq``; returns the bytes now in order."""
        if self.base is None:
            self.base = seq  # capture started mid-connection
        off = self._offset(seq)
        end = off + len(payload)
        if fin and self.fin_at is None:
            self.fin_at = end
        if end <= self.next or not payload:
            return b""  # a retransmission (or a bare ACK/FIN)
        if off > self.next:
            if len(payload) > len(self.pending.get(off, b"")):
                self.pending[off] = payload
            return b""
        out = [payload[self.next - off :]]
        self.next = end
        while self.pending:
            first = min(self.pending)
            if first > self.next:
                break
            data = self.pending.pop(first)
            if first + len(data) > self.next:
                out.append(data[self.next - first :])
                self.next = first + len(data)
        return b"".join(out)

    @property
    def finished(self) -> bool:
        """True once every byte up to the FIN has been delivered."""
        return self.fin_at is not None and self.next >= self.fin_at

    @property
    def gap(self) -> tuple[int, int] | None:
        """The first missing byte range, if segments are waiting beyond a hole."""
        if self.pending:
            return self.next, min(self.pending)
        if self.fin_at is not None and self.fin_at > self.next:
            return self.next, self.fin_at  # the FIN arrived, bytes before it did not
        return None


@dataclass
class _TcpConn:
    conn: int
    client: tuple[str, int]
    server: tuple[str, int]
    trace: ConversationTracer
    dirs: dict[Direction, _Reassembler]
    syn_isn: int | None = None
    closed: set[Direction] = field(default_factory=set)
    reset: bool = False


def _addr(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def _fmt_addr(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ip_from_link(dpkt: Any, linktype: int, buf: bytes) -> Any:
    """The IP packet inside a captured frame, or None."""
    if linktype == 1:  # DLT_EN10MB (VLAN tags are unwrapped by dpkt)
        return dpkt.ethernet.Ethernet(buf).data
    if linktype == 113:  # DLT_LINUX_SLL
        return dpkt.sll.SLL(buf).data
    if linktype == 276:  # DLT_LINUX_SLL2
        return dpkt.sll2.SLL2(buf).data
    if linktype in (0, 108):  # DLT_NULL, DLT_LOOP
        return dpkt.loopback.Loopback(buf).data
    if linktype in (12, 14, 101, 228, 229):  # raw IP, whichever number the OS uses
        if not buf:
            return None
        version = buf[0] >> 4
        if version == 4:
            return dpkt.ip.IP(buf)
        return dpkt.ip6.IP6(buf) if version == 6 else None
    raise DecodeInputError(f"unsupported link type {linktype}")


def _import_dpkt() -> Any:
    try:
        import dpkt  # noqa: PLC0415 - an optional extra, imported only when needed
    except ImportError:
        raise DecodeInputError(
            "reading pcap files needs dpkt: pip install 'zmtp[pcap]' (or pip install dpkt)"
        ) from None
    return dpkt


def _packets(dpkt: Any, path: Path) -> Iterator[tuple[float, Any]]:
    """(timestamp, IP packet) for every IPv4/IPv6 packet in a capture."""
    with path.open("rb") as f:
        try:
            reader = dpkt.pcap.UniversalReader(f)
        except (ValueError, dpkt.dpkt.UnpackError) as exc:
            raise DecodeInputError(f"{path}: not a pcap or pcapng file: {exc}") from None
        linktype = reader.datalink()
        try:
            for ts, buf in reader:
                try:
                    ip = _ip_from_link(dpkt, linktype, buf)
                except (dpkt.dpkt.UnpackError, dpkt.dpkt.NeedData, ValueError):
                    continue
                if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                    yield float(ts), ip
        except (dpkt.dpkt.UnpackError, dpkt.dpkt.NeedData, ValueError) as exc:
            raise DecodeInputError(f"{path}: damaged capture: {exc}") from None


def trace_pcap(
    path: Path,
    *,
    preview: int = DEFAULT_PREVIEW,
    port: int | None = None,
    first_conn: int = 1,
    show_passwords: bool = False,
) -> Iterator[TraceEvent]:
    """Decode every TCP connection in a pcap/pcapng capture, in capture order.

    ``show_passwords`` keeps PLAIN passwords in the records (see :func:`decode_paths`).

    Raises:
        DecodeInputError: dpkt is missing or the file is not a readable capture.
    """
    return _trace_pcap(
        path,
        preview=preview,
        port=port,
        first_conn=first_conn,
        summary=DecodeSummary(),
        wire=None,
        show_passwords=show_passwords,
    )


def _trace_pcap(
    path: Path,
    *,
    preview: int,
    port: int | None,
    first_conn: int,
    summary: DecodeSummary,
    wire: WireSink | None,
    show_passwords: bool,
) -> Iterator[TraceEvent]:
    dpkt = _import_dpkt()
    conns: dict[tuple[tuple[str, int], tuple[str, int]], _TcpConn] = {}
    numbers = iter(range(first_conn, 1 << 62))
    live: list[_TcpConn] = []
    packets = 0
    seen: dict[tuple[tuple[str, int], tuple[str, int]], int] = {}  # 4-tuple -> server port
    for ts, ip in _packets(dpkt, path):
        packets += 1
        tcp = ip.data
        if not isinstance(tcp, dpkt.tcp.TCP):
            continue
        if isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset):
            continue  # IP fragments: not reassembled (loopback and LAN captures lack them)
        src, dst = (_addr(ip.src), tcp.sport), (_addr(ip.dst), tcp.dport)
        key = (min(src, dst), max(src, dst))
        if tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK:
            seen[key] = tcp.dport  # the server's port, known for sure
        else:
            seen.setdefault(key, min(tcp.sport, tcp.dport))  # a guess: the lower one
        if port is not None and port not in (tcp.sport, tcp.dport):
            continue
        flags = tcp.flags
        syn, ack = bool(flags & dpkt.tcp.TH_SYN), bool(flags & dpkt.tcp.TH_ACK)
        fin, rst = bool(flags & dpkt.tcp.TH_FIN), bool(flags & dpkt.tcp.TH_RST)
        c = conns.get(key)
        if syn and not ack and c is not None and c.syn_isn != tcp.seq:
            # The 4-tuple is reused by a new connection: finish the old one.
            yield from _finish(c, ts)
            c = None
        if c is None:
            if rst or (fin and not tcp.data):
                continue  # the tail of a connection the capture did not see
            if syn:
                client, server = (src, dst) if not ack else (dst, src)
            else:
                # Mid-connection: guess that the lower port is the server's.
                client, server = (src, dst) if src[1] > dst[1] else (dst, src)
            n = next(numbers)
            tracer = _Tracer(n, preview=preview, wire=wire, show_passwords=show_passwords)
            c = _TcpConn(n, client, server, tracer, {})
            conns[key] = c
            live.append(c)
            yield c.trace.event(Opened(_fmt_addr(client), _fmt_addr(server)), ts)
            if not syn:
                yield c.trace.event(Notice("capture starts mid-connection: decoding may fail"), ts)
        direction: Direction = "c2s" if src == c.client else "s2c"
        if syn:
            if not ack:
                c.syn_isn = tcp.seq
            if direction not in c.dirs:
                c.dirs[direction] = _Reassembler(tcp.seq)
            seq = (tcp.seq + 1) & 0xFFFFFFFF  # a SYN's data starts after the SYN itself
        else:
            seq = tcp.seq
        r = c.dirs.setdefault(direction, _Reassembler(None))
        payload = bytes(tcp.data)
        if isinstance(ip, dpkt.ip.IP):
            expected = ip.len - ip.hl * 4 - tcp.off * 4
            payload = payload[: max(expected, 0)] if ip.len else payload
        if direction not in c.closed:
            data = r.add(seq, payload, fin)
            if data:
                yield from c.trace.feed(direction, data, ts)
            if r.finished:
                c.closed.add(direction)
                yield from c.trace.close(direction, ts)
        if rst and not c.reset:
            c.reset = True
            yield c.trace.event(Notice(f"{direction}: connection reset (RST)"), ts)
            yield from _finish(c, ts)
            del conns[key]
    for c in live:
        if not c.reset and conns.get((min(c.client, c.server), max(c.client, c.server))) is c:
            yield from _finish(c, None)
    if not live:
        ports = sorted(set(seen.values()))
        what = f"{path}: {packets} IP packet{'s' if packets != 1 else ''}, "
        if not seen:
            what += "no TCP"
        else:
            what += f"{len(seen)} TCP connection{'s' if len(seen) != 1 else ''} (port"
            what += f"{'s' if len(ports) != 1 else ''} {', '.join(map(str, ports[:10]))}"
            what += ", ...)" if len(ports) > 10 else ")"
            if port is not None:
                what += f", none with port {port}"
        summary.found.append(what)


def _finish(c: _TcpConn, ts: float | None) -> Iterator[TraceEvent]:
    for direction in _BOTH:
        if direction in c.closed:
            continue
        c.closed.add(direction)
        r = c.dirs.get(direction)
        gap = r.gap if r is not None else None
        if gap is not None:
            start, stop = gap
            yield from c.trace.interrupt(
                direction,
                f"the capture is missing bytes {start}-{stop - 1} of this direction "
                f"(lost packets?): cannot decode past them",
                ts,
            )
        yield from c.trace.close(direction, ts)
