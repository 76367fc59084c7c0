"""``python -m zmtp tap``: a transparent relay that prints the ZMTP conversations through it.

Theory of operation
-------------------
The tap listens on one endpoint and, for each connection accepted there, opens one
connection to the upstream endpoint.  Two pump tasks per connection copy bytes, one per
direction.  Each chunk is stamped, recorded and handed to that direction's
:class:`~zmtp.tools.trace.StreamTracer` (its events emitted) as soon as it is read, and
only then forwarded (``send_all`` to the other side).  Decoding cannot alter the bytes,
and a side that speaks garbage is relayed exactly like a good one; each chunk waits for
its own events to be decoded and emitted, which keeps the output in causal order (see
"Times").  The peers see the same byte stream they would see without the tap; only the TCP
segmentation may differ, which ZMTP does not care about.

EOF is relayed as a half-close (``send_eof``), so a peer that closes its sending side
still receives the rest of the other direction.  A reset or any I/O error on either side
closes both.

Records go to an ``emit`` callback as :class:`~zmtp.tools.trace.TraceEvent` objects; the CLI
renders them (see :mod:`zmtp.tools.format`).

Recording (``--record DIR``): for connection *n* the tap writes, as the bytes pass,

* ``conn-<n>-c2s.bin``: every byte the client sent, unchanged;
* ``conn-<n>-s2c.bin``: every byte the server sent, unchanged;
* ``conn-<n>-timeline.jsonl``: a first line ``{"conn", "client", "server", "time"}`` and
  then one line per chunk ``{"t", "dir", "n"}`` (or ``{"t", "dir", "eof": true}``), so
  that ``python -m zmtp decode`` can interleave the two directions as they happened.

Connection numbers continue after the highest already in DIR, so nothing is overwritten.

``--pcap FILE`` hands every chunk to a :class:`~zmtp.tools.pcap.PcapWriter` as well, which
writes the conversations as a capture Wireshark opens.

Times.  Every event is stamped when its chunk is read, by one clock for the whole tap
that never goes backwards (the wall clock, held at its last value if it steps back), and
emitted with no checkpoint between the read, the stamp and the emit.  So the times in the
output, the timeline and the pcap never decrease, across directions and connections, and
the output is causal: a chunk is shown before the peer it goes to can receive it, so
anything that peer sends in reply is shown after it.  (Stamping and decoding after
forwarding would not be: a chunk waiting in ``send_all`` would be shown after the reply
it caused, with an earlier time.)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import trio

from ..sockets import Endpoint, open_listener, open_stream
from ..sockets import parse_endpoint as _parse
from .pcap import WireSink
from .trace import DEFAULT_PREVIEW, ConversationTracer, Direction, Notice, Opened, TraceEvent

__all__ = ["Endpoint", "Tap", "parse_endpoint"]

#: Bytes read per receive.
_CHUNK = 64 * 1024


def parse_endpoint(text: str, *, listen: bool = False) -> Endpoint:
    """Parse a tcp or ipc endpoint for the tap (libzmq's syntax, as the sockets use).

    When ``listen`` is true, ``*`` may stand for every interface or an ephemeral port,
    and port 0 is allowed.

    Raises:
        ValueError: not a tcp or ipc endpoint (inproc has no wire to tap).
    """
    try:
        ep = _parse(text, bind=listen)
    except ValueError:
        if text.partition("://")[0] not in ("tcp", "ipc"):
            raise ValueError(f"{text!r} is not tcp://HOST:PORT or ipc://PATH") from None
        if not listen and "*" in text and _parses_for_bind(text):
            raise ValueError(f"{text!r}: '*' is only allowed in the listening endpoint") from None
        raise
    if ep.transport == "inproc":
        raise ValueError(f"{text!r}: the tap relays tcp://HOST:PORT or ipc://PATH, not inproc")
    return ep


def _parses_for_bind(text: str) -> bool:
    try:
        _parse(text, bind=True)
    except ValueError:
        return False
    return True


def _sockname(sock: trio.socket.SocketType, peer: bool = False) -> str:
    try:
        addr = sock.getpeername() if peer else sock.getsockname()
    except OSError:
        return "?"
    if sock.family == socket.AF_UNIX:
        if isinstance(addr, bytes):
            addr = addr.decode(errors="replace")
        addr = str(addr)
        return "ipc://" + ("@" + addr[1:] if addr.startswith("\0") else addr or "(unnamed)")
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Recorder:
    """Writes one connection's raw bytes and timeline (see the module docstring)."""

    def __init__(self, directory: Path, conn: int, client: str, server: str, when: float) -> None:
        base = directory / f"conn-{conn}"
        self._files: dict[Direction, IO[bytes]] = {}
        self._timeline: IO[str] | None = None
        try:
            for direction in ("c2s", "s2c"):
                self._files[direction] = open(f"{base}-{direction}.bin", "wb")  # noqa: SIM115
            self._timeline = open(f"{base}-timeline.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        except BaseException:
            self.close()
            raise
        self._line({"conn": conn, "client": client, "server": server, "time": when})

    def _line(self, obj: dict[str, object]) -> None:
        assert self._timeline is not None
        self._timeline.write(json.dumps(obj) + "\n")
        self._timeline.flush()

    def write(self, direction: Direction, data: bytes, when: float) -> None:
        f = self._files[direction]
        f.write(data)
        f.flush()  # a recording is for bug reports: keep it complete if the tap is killed
        self._line({"t": when, "dir": direction, "n": len(data)})

    def eof(self, direction: Direction, when: float) -> None:
        self._line({"t": when, "dir": direction, "eof": True})

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        if self._timeline is not None:
            self._timeline.close()


class _Clock:
    """Wall-clock time that never goes backwards (see "Times" in the module docstring)."""

    def __init__(self, wall: Callable[[], float]) -> None:
        self._wall = wall
        self._last = float("-inf")

    def __call__(self) -> float:
        self._last = max(self._last, self._wall())
        return self._last


@dataclass(slots=True)
class _Relay:
    """What the two pump tasks of one connection share."""

    trace: ConversationTracer
    recorder: _Recorder | None
    cancel_scope: trio.CancelScope


def _next_conn_number(directory: Path) -> int:
    highest = 0
    for entry in directory.iterdir():
        m = re.match(r"conn-(\d+)-", entry.name)
        if m:
            highest = max(highest, int(m[1]))
    return highest + 1


class Tap:
    """The relay.  Run :meth:`serve` in a trio task.

    Args:
        listen: where to accept connections.
        upstream: where to relay each of them.
        emit: called with every :class:`TraceEvent`, in order.  It runs in the relay's
            tasks, so it should not block for long.
        preview: bytes of each frame body kept in records.
        record_dir: if set, raw bytes are recorded there (created if needed).
        wire: if set, told every connection, chunk and EOF (a
            :class:`~zmtp.tools.pcap.PcapWriter` for ``--pcap``).
        clock: the wall clock (seconds since the epoch); the tap's stamps are this
            clock's values, held when it steps back.
        show_passwords: keep PLAIN passwords in the records (``--show-passwords``);
            by default only their sizes are.  (A recording or pcap holds the raw bytes,
            passwords included, either way.)
    """

    def __init__(
        self,
        listen: Endpoint,
        upstream: Endpoint,
        emit: Callable[[TraceEvent], None],
        *,
        preview: int = DEFAULT_PREVIEW,
        record_dir: Path | None = None,
        wire: WireSink | None = None,
        clock: Callable[[], float] = time.time,
        show_passwords: bool = False,
    ) -> None:
        self.listen = listen
        self.upstream = upstream
        self._emit = emit
        self.preview = preview
        self.record_dir = record_dir
        self._wire = wire
        self._now = _Clock(clock)
        self.show_passwords = show_passwords
        self._numbers: itertools.count[int] = itertools.count(1)
        #: Bytes relayed so far, per direction, over all connections.
        self.relayed: dict[Direction, int] = {"c2s": 0, "s2c": 0}

    # -- listening -----------------------------------------------------------------------

    async def serve(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen and relay until cancelled.

        Reports the endpoints actually bound (the real port when 0 was asked for) through
        ``task_status``.

        Raises:
            OSError: cannot listen.
        """
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            self._numbers = itertools.count(_next_conn_number(self.record_dir))
        # The sockets' own listener: one address (IPv4 first for ``*``), a stale ipc
        # file removed first, and on close only the file it created is removed.
        listening = await open_listener(self.listen, backlog=128)
        try:
            task_status.started([listening.endpoint])
            await trio.serve_listeners(self._handle, [listening.listener])
        finally:
            with trio.CancelScope(shield=True):
                await listening.aclose()

    # -- one connection ------------------------------------------------------------------

    async def _handle(self, client: trio.SocketStream) -> None:
        conn = next(self._numbers)
        trace = ConversationTracer(conn, preview=self.preview, show_passwords=self.show_passwords)
        client_name = _sockname(client.socket, peer=True)
        try:
            upstream = await open_stream(self.upstream)
        except OSError as exc:
            self._emit(
                trace.event(Notice(f"cannot connect to {self.upstream}: {exc}"), self._now())
            )
            await trio.aclose_forcefully(client)
            return
        server_name = str(self.upstream)
        opened = self._now()
        if self._wire is not None:
            self._wire.open(conn, client_name, server_name, opened)
        self._emit(trace.event(Opened(client_name, server_name), opened))
        recorder = None
        try:
            if self.record_dir is not None:
                recorder = _Recorder(self.record_dir, conn, client_name, server_name, opened)
            async with client, upstream, trio.open_nursery() as nursery:
                relay = _Relay(trace, recorder, nursery.cancel_scope)
                nursery.start_soon(self._pump, relay, client, upstream, "c2s")
                nursery.start_soon(self._pump, relay, upstream, client, "s2c")
        finally:
            if recorder is not None:
                recorder.close()

    async def _pump(
        self, relay: _Relay, src: trio.SocketStream, dst: trio.SocketStream, direction: Direction
    ) -> None:
        trace, recorder = relay.trace, relay.recorder

        def end_of_direction(when: float) -> None:
            # Recording the EOF and emitting End in one synchronous step keeps the
            # timeline in the same order as the live output (see below).
            if trace.tracers[direction].closed:
                return
            if recorder is not None:
                recorder.eof(direction, when)
            if self._wire is not None:
                self._wire.eof(trace.conn, direction, when)
            for event in trace.close(direction, when):
                self._emit(event)

        try:
            while True:
                data = await src.receive_some(_CHUNK)
                if not data:
                    break
                # Stamp, record and decode with no checkpoint in between, and before
                # forwarding: the order of the output and of the timeline is the order in
                # which chunks arrived, and it is causal (see "Times" above).
                passed = self._now()
                if recorder is not None:
                    recorder.write(direction, data, passed)
                if self._wire is not None:
                    self._wire.data(trace.conn, direction, data, passed)
                for event in trace.feed(direction, data, passed):
                    self._emit(event)
                await dst.send_all(data)
                self.relayed[direction] += len(data)
            end_of_direction(self._now())
            # Relay the half-close; the other direction keeps flowing until its own EOF.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await dst.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            # A reset (or a failed write) on one side: close the whole connection, as
            # the peer on the other side would see if it were connected directly.
            cause = exc.__cause__ or exc
            self._emit(trace.event(Notice(f"{direction}: connection broken: {cause}"), self._now()))
            relay.cancel_scope.cancel()
        finally:
            end_of_direction(self._now())
