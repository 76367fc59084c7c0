"""Write ZMTP conversations as a pcap capture that Wireshark, tshark and tcpdump open.

``python -m zmtp tap --pcap FILE`` and ``python -m zmtp decode --pcap-out FILE`` use
:class:`PcapWriter`: it is told what each side of each connection sent (bytes, in order,
with the time they passed) and synthesises the TCP conversation that would carry them.

Theory of operation
-------------------
A capture tool follows a TCP stream by its sequence numbers, so every connection is
written as a complete, consistent one:

* a three-way handshake (SYN, SYN-ACK, ACK) when the connection opens;
* the bytes of each direction in segments of at most one MSS (1460 bytes over IPv4,
  1440 over IPv6: an Ethernet MTU of 1500), each carrying PSH on its last segment, the
  sequence number that follows the previous segment and an ACK of everything the other
  side has sent so far;
* FIN (and the peer's ACK of it) when a direction ends, and at :meth:`PcapWriter.close`
  for connections still open, so dissectors see every stream end.

Frames are Ethernet II over IPv4, or IPv6 when an address is IPv6 (an IPv4 address beside
an IPv6 one becomes ``::ffff:a.b.c.d``); dpkt computes the IP and TCP checksums.
Addresses come from the connection's ends (``127.0.0.1:5555``, ``tcp://[::1]:5555``).
Ends that are not IP addresses (ipc paths, host names, file names) are written as
``127.0.0.1``, the client on port ``40000 + n`` for connection *n*, the server on port
5555, ZeroMQ's customary port: the capture shows the conversation, not the real transport.

Timestamps never go backwards (a capture whose times do confuses the tools): each packet
is stamped no earlier than the one before it.  A connection with no times at all (a byte
file decoded without its timeline) is given times 1 ms apart from the last packet.

dpkt is the optional extra ``zmtp[pcap]``; it is imported only when a writer is made.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from .trace import Direction

__all__ = ["PcapWriter", "WireSink", "parse_address"]

_MSS = {4: 1460, 6: 1440}
_WINDOW = 65535
_SERVER_PORT = 5555
_CLIENT_BASE = 40000
_MAC_CLIENT = bytes.fromhex("020000000001")
_MAC_SERVER = bytes.fromhex("020000000002")
_STEP = 0.001  # seconds between packets that have no time of their own
_HOSTPORT = re.compile(r"^(?:tcp://)?(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<v4>[0-9.]+)):(?P<port>\d+)$")


class WireSink(Protocol):
    """Receives what each side of each connection sent, in order (see PcapWriter)."""

    def open(self, conn: int, client: str, server: str, time: float | None) -> None:
        """Connection ``conn`` began between ``client`` and ``server``."""

    def data(self, conn: int, direction: Direction, data: bytes, time: float | None) -> None:
        """``data`` went ``direction`` (``stream`` is taken as client to server)."""

    def eof(self, conn: int, direction: Direction, time: float | None) -> None:
        """That direction ended (its sender closed)."""


def parse_address(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int] | None:
    """``(address, port)`` from ``HOST:PORT``, ``[V6]:PORT`` or ``tcp://...``; None if the
    text is not a numeric IP address with a port (an ipc path, a host name, a file)."""
    m = _HOSTPORT.match(text.strip())
    if m is None:
        return None
    try:
        addr = ipaddress.ip_address(m["v6"] or m["v4"])
    except ValueError:
        return None
    port = int(m["port"])
    return (addr, port) if 0 < port < 65536 else None


@dataclass
class _Side:
    addr: bytes
    port: int
    mac: bytes
    seq: int  # the next sequence number this side sends
    finished: bool = False


@dataclass
class _Conn:
    version: int
    sides: dict[str, _Side]  # "c" (client), "s" (server)


class PcapWriter:
    """Writes connections to a pcap file as they are reported.  Not thread-safe.

    Args:
        path: the file to create (replaced if it exists).

    Raises:
        ImportError: dpkt is not installed (``pip install 'zmtp[pcap]'``).
        OSError: the file cannot be created.

    Use as a context manager, or call :meth:`close`; each packet is flushed as it is
    written, so a capture cut short (a killed tap) is still readable up to there.
    """

    def __init__(self, path: Path | str) -> None:
        import dpkt  # noqa: PLC0415 - the optional extra, needed only here

        self._dpkt: Any = dpkt
        self._file: IO[bytes] = Path(path).open("wb")  # noqa: SIM115 - closed in close()
        try:
            self._writer = dpkt.pcap.Writer(self._file, snaplen=65535, linktype=1)
        except BaseException:
            self._file.close()
            raise
        self._conns: dict[int, _Conn] = {}
        self._last: float | None = None
        self._ip_id = 0
        self.packets = 0
        self.closed = False

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- WireSink ------------------------------------------------------------------------

    def open(self, conn: int, client: str, server: str, time: float | None) -> None:
        """Start connection ``conn``: writes its three-way handshake."""
        if self.closed or conn in self._conns:
            return
        ends = _ends(conn, client, server)
        version = 6 if any(isinstance(a, ipaddress.IPv6Address) for a, _ in ends) else 4
        packed = [(a.packed if version == 4 else _as_v6(a).packed, port) for a, port in ends]
        # Fixed, distinct initial sequence numbers per connection: reproducible output.
        isn_c = (0x10000000 + conn * 0x01000193) & 0xFFFFFFFF
        isn_s = (0x80000000 + conn * 0x0100019D) & 0xFFFFFFFF
        c = _Conn(
            version,
            {
                "c": _Side(packed[0][0], packed[0][1], _MAC_CLIENT, isn_c),
                "s": _Side(packed[1][0], packed[1][1], _MAC_SERVER, isn_s),
            },
        )
        self._conns[conn] = c
        t = self._stamp(time)
        tcp = self._dpkt.tcp
        self._segment(c, "c", tcp.TH_SYN, b"", t, ack=False)
        self._segment(c, "s", tcp.TH_SYN | tcp.TH_ACK, b"", t)
        self._segment(c, "c", tcp.TH_ACK, b"", t)

    def data(self, conn: int, direction: Direction, data: bytes, time: float | None) -> None:
        """Bytes of one direction: written as MSS-sized segments."""
        c = self._live(conn)
        if c is None or not data:
            return
        side = "s" if direction == "s2c" else "c"
        if c.sides[side].finished:
            return  # bytes after a FIN cannot be expressed in TCP
        t = self._stamp(time)
        tcp = self._dpkt.tcp
        mss = _MSS[c.version]
        view = memoryview(data)
        for i in range(0, len(view), mss):
            last = i + mss >= len(view)
            flags = tcp.TH_ACK | (tcp.TH_PUSH if last else 0)
            self._segment(c, side, flags, bytes(view[i : i + mss]), t)

    def eof(self, conn: int, direction: Direction, time: float | None) -> None:
        """One direction ended: its FIN, and the other side's ACK of it."""
        c = self._live(conn)
        if c is None:
            return
        side = "s" if direction == "s2c" else "c"
        if c.sides[side].finished:
            return
        self._fin(c, side, self._stamp(time))

    def close(self) -> None:
        """End every connection still open (FINs) and close the file."""
        if self.closed:
            return
        try:
            for c in self._conns.values():
                for side in ("c", "s"):
                    if not c.sides[side].finished:
                        self._fin(c, side, self._stamp(None))
        finally:
            self.closed = True
            with contextlib.suppress(OSError):
                self._file.close()

    # -- packets -------------------------------------------------------------------------

    def _live(self, conn: int) -> _Conn | None:
        if self.closed:
            return None
        c = self._conns.get(conn)
        if c is None:
            # Data for a connection nobody opened (a lone byte stream): open it first.
            self.open(conn, "?", "?", None)
            c = self._conns[conn]
        return c

    def _stamp(self, time: float | None) -> float:
        if time is None:
            t = _time.time() if self._last is None else self._last + _STEP
        else:
            t = time
        if self._last is not None and t < self._last:
            t = self._last
        self._last = t
        return t

    def _fin(self, c: _Conn, side: str, t: float) -> None:
        tcp = self._dpkt.tcp
        self._segment(c, side, tcp.TH_FIN | tcp.TH_ACK, b"", t)
        c.sides[side].seq = (c.sides[side].seq + 1) & 0xFFFFFFFF  # a FIN takes one number
        c.sides[side].finished = True
        # The peer acknowledges the FIN (after both FINs, this is the close's last ACK).
        self._segment(c, "s" if side == "c" else "c", tcp.TH_ACK, b"", t)

    def _segment(
        self, c: _Conn, side: str, flags: int, payload: bytes, t: float, *, ack: bool = True
    ) -> None:
        dpkt = self._dpkt
        me, peer = c.sides[side], c.sides["s" if side == "c" else "c"]
        seg = dpkt.tcp.TCP(
            sport=me.port,
            dport=peer.port,
            seq=me.seq,
            ack=peer.seq if ack else 0,
            flags=flags,
            win=_WINDOW,
            data=payload,
        )
        if flags & dpkt.tcp.TH_SYN:
            # MSS option, as real SYNs carry it (kind 2, length 4).
            seg.opts = b"\x02\x04" + _MSS[c.version].to_bytes(2, "big")
            seg.off = 5 + len(seg.opts) // 4
            me.seq = (me.seq + 1) & 0xFFFFFFFF  # a SYN takes one sequence number
        else:
            me.seq = (me.seq + len(payload)) & 0xFFFFFFFF
        ip: Any
        if c.version == 4:
            self._ip_id = (self._ip_id + 1) & 0xFFFF
            ip = dpkt.ip.IP(
                src=me.addr,
                dst=peer.addr,
                p=dpkt.ip.IP_PROTO_TCP,
                ttl=64,
                id=self._ip_id,
                df=1,
                data=seg,
            )
            ip.len = 20 + len(seg)
            eth_type = dpkt.ethernet.ETH_TYPE_IP
        else:
            ip = dpkt.ip6.IP6(
                src=me.addr,
                dst=peer.addr,
                nxt=dpkt.ip.IP_PROTO_TCP,
                hlim=64,
                plen=len(seg),
                data=seg,
            )
            eth_type = dpkt.ethernet.ETH_TYPE_IP6
        frame = dpkt.ethernet.Ethernet(src=me.mac, dst=peer.mac, type=eth_type, data=ip)
        self._writer.writepkt(bytes(frame), ts=t)
        self._file.flush()
        self.packets += 1


def _ends(
    conn: int, client: str, server: str
) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """The two ends as (address, port), with stand-ins where they are not IP addresses."""
    c = parse_address(client) or (ipaddress.IPv4Address("127.0.0.1"), 0)
    s = parse_address(server) or (ipaddress.IPv4Address("127.0.0.1"), _SERVER_PORT)
    if c[1] == 0 or c == s:
        c = (c[0], _CLIENT_BASE + conn % 20000)
    return [c, s]


def _as_v6(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    if isinstance(addr, ipaddress.IPv6Address):
        return addr
    return ipaddress.IPv6Address(f"::ffff:{addr}")
