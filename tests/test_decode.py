"""Decoding recorded traffic (zmtp.tools.decode) and the ``python -m zmtp decode`` command.

Conversations are built with the core encoders, so the expected records are known
exactly: whatever the container (tap recording, hex dump, pcap with reordered and
retransmitted segments), decoding must give the records a tracer gives on the raw bytes.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zmtp.protocol.commands import encode_ping, encode_pong, encode_ready
from zmtp.tools.decode import DecodeInputError, DecodeSummary, decode_paths, parse_hexdump
from zmtp.tools.trace import (
    DecodeError,
    End,
    Notice,
    Opened,
    Record,
    StreamTracer,
    TraceEvent,
)

from ._helpers import libzmq_greeting, message_bytes

dpkt = pytest.importorskip("dpkt")

# ---------------------------------------------------------------------------------------
# A conversation with known bytes


C2S = (
    libzmq_greeting(5)
    + encode_ready([("Socket-Type", b"DEALER"), ("Identity", b"alice")])
    + message_bytes(b"request", b"x" * 700)
    + encode_ping(15)
    + message_bytes(b"bye")
)
S2C = (
    libzmq_greeting()
    + encode_ready([("Socket-Type", b"ROUTER"), ("Identity", b"")])
    + encode_pong()
    + message_bytes(b"reply" * 80)
)


def records_of(data: bytes, preview: int = 32) -> list[Record]:
    tracer = StreamTracer(preview=preview)
    return tracer.feed(data) + tracer.close()


def by_direction(events: list[TraceEvent]) -> dict[str | None, list[object]]:
    out: dict[str | None, list[object]] = {}
    for e in events:
        out.setdefault(e.direction, []).append(e.record)
    return out


# ---------------------------------------------------------------------------------------
# Hex dumps


def _xxd(data: bytes) -> str:
    """xxd's default layout: offset, 8 groups of 2 bytes, two spaces, text."""
    lines = []
    for off in range(0, len(data), 16):
        row = data[off : off + 16]
        groups = " ".join(row[i : i + 2].hex() for i in range(0, len(row), 2))
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{off:08x}: {groups:<39}  {text}")
    return "\n".join(lines) + "\n"


def _hexdump_c(data: bytes) -> str:
    """hexdump -C's layout, including '*' for repeated rows and the final offset."""
    lines, prev, starred = [], None, False
    for off in range(0, len(data), 16):
        row = data[off : off + 16]
        if row == prev and len(row) == 16:
            if not starred:
                lines.append("*")
                starred = True
            continue
        starred, prev = False, row
        left = " ".join(f"{b:02x}" for b in row[:8])
        right = " ".join(f"{b:02x}" for b in row[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{off:08x}  {left:<23}  {right:<23}  |{text}|")
    if data:  # hexdump prints nothing at all for an empty file
        lines.append(f"{len(data):08x}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("data", [C2S, S2C, b"", b"\x00" * 100 + b"|x|", bytes(range(256))])
def test_hexdump_formats(data: bytes) -> None:
    assert parse_hexdump(data.hex()) == data
    assert parse_hexdump(data.hex(" ", 1).upper()) == data
    assert parse_hexdump("# a comment\n" + data.hex("\n", 7)) == data
    assert parse_hexdump(_xxd(data)) == data
    assert parse_hexdump(_hexdump_c(data)) == data


@pytest.mark.parametrize("tool", [["xxd"], ["hexdump", "-C"], ["xxd", "-a"]])
def test_hexdump_of_real_tools(tool: list[str], tmp_path: Path) -> None:
    if shutil.which(tool[0]) is None:
        pytest.skip(f"{tool[0]} is not installed")
    path = tmp_path / "c2s.bin"
    path.write_bytes(C2S)
    text = subprocess.run([*tool, str(path)], capture_output=True, check=True, text=True).stdout
    assert parse_hexdump(text) == C2S


@pytest.mark.parametrize(
    "text",
    [
        "ff0",  # odd number of digits
        "ff zz",
        "00000000: ff 00\n00000020: 00 00\n",  # a hole without '*'
        "00000000  ff 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n"
        "garbage line\n",
    ],
)
def test_bad_hexdumps(text: str) -> None:
    with pytest.raises(DecodeInputError):
        parse_hexdump(text)


# ---------------------------------------------------------------------------------------
# Recorded byte files


def test_recording_with_timeline_interleaves_like_live(tmp_path: Path) -> None:
    (tmp_path / "conn-4-c2s.bin").write_bytes(C2S)
    (tmp_path / "conn-4-s2c.bin").write_bytes(S2C)
    cut = len(libzmq_greeting(5))
    lines = [
        {"conn": 4, "client": "127.0.0.1:1000", "server": "tcp://127.0.0.1:2000", "time": 10.0},
        {"t": 11.0, "dir": "c2s", "n": cut},
        {"t": 12.0, "dir": "s2c", "n": len(S2C)},
        {"t": 13.0, "dir": "c2s", "n": len(C2S) - cut},
        {"t": 14.0, "dir": "s2c", "eof": True},
        {"t": 15.0, "dir": "c2s", "eof": True},
    ]
    (tmp_path / "conn-4-timeline.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    for args in ([tmp_path], [tmp_path / "conn-4-c2s.bin", tmp_path / "conn-4-s2c.bin"]):
        events = list(decode_paths(args))
        assert events[0] == TraceEvent(
            1, None, Opened("127.0.0.1:1000", "tcp://127.0.0.1:2000"), 10.0
        )
        got = by_direction(events[1:])
        assert got["c2s"] == records_of(C2S)
        assert got["s2c"] == records_of(S2C)
        times = [(e.direction, e.time) for e in events[1:]]
        assert times[0] == ("c2s", 11.0)  # the client greeting, then the whole server side
        assert [t for d, t in times if d == "s2c"][:-1] == [12.0] * (len(got["s2c"]) - 1)
        assert events[-2:] == [
            TraceEvent(1, "s2c", End(len(S2C)), 14.0),
            TraceEvent(1, "c2s", End(len(C2S)), 15.0),
        ]


def test_pair_without_timeline_and_lone_stream(tmp_path: Path) -> None:
    (tmp_path / "x-c2s.dat").write_bytes(C2S)
    (tmp_path / "x-s2c.hex").write_text(_xxd(S2C))
    (tmp_path / "lone.bin").write_bytes(S2C)
    events = list(
        decode_paths([tmp_path / "x-c2s.dat", tmp_path / "x-s2c.hex", tmp_path / "lone.bin"])
    )
    first = [e for e in events if e.conn == 1]
    assert first[0].record == Opened(str(tmp_path / "x-c2s.dat"), str(tmp_path / "x-s2c.hex"))
    assert by_direction(first[1:]) == {"c2s": records_of(C2S), "s2c": records_of(S2C)}
    second = [e for e in events if e.conn == 2]
    assert by_direction(second[1:]) == {"stream": records_of(S2C)}
    assert all(e.time is None for e in events)


def test_timeline_that_does_not_fit_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "conn-1-c2s.bin").write_bytes(C2S)
    (tmp_path / "conn-1-s2c.bin").write_bytes(S2C)
    (tmp_path / "conn-1-timeline.jsonl").write_text('{"conn": 1}\n{"t": 1, "dir": "c2s", "n": 3}\n')
    events = list(decode_paths([tmp_path]))
    assert any(isinstance(e.record, Notice) for e in events)
    assert by_direction(events)["c2s"] == records_of(C2S)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeInputError, match="no such file"):
        list(decode_paths([tmp_path / "nope.bin"]))


# ---------------------------------------------------------------------------------------
# pcap


CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 5555)
SYN, ACK, FIN, RST, PSH = (
    dpkt.tcp.TH_SYN,
    dpkt.tcp.TH_ACK,
    dpkt.tcp.TH_FIN,
    dpkt.tcp.TH_RST,
    dpkt.tcp.TH_PUSH,
)


def ip_packet(
    src: tuple[str, int], dst: tuple[str, int], seq: int, flags: int, data: bytes = b""
) -> Any:
    tcp = dpkt.tcp.TCP(
        sport=src[1], dport=dst[1], seq=seq & 0xFFFFFFFF, ack=0, flags=flags, data=data
    )
    if ":" in src[0]:
        family = socket.AF_INET6
        return dpkt.ip6.IP6(
            src=socket.inet_pton(family, src[0]),
            dst=socket.inet_pton(family, dst[0]),
            nxt=6,
            hlim=64,
            plen=len(bytes(tcp)),
            data=tcp,
        )
    return dpkt.ip.IP(src=socket.inet_aton(src[0]), dst=socket.inet_aton(dst[0]), p=6, data=tcp)


def frame(linktype: int, ip: Any) -> bytes:
    if linktype == dpkt.pcap.DLT_EN10MB:
        v6 = isinstance(ip, dpkt.ip6.IP6)
        eth_type = dpkt.ethernet.ETH_TYPE_IP6 if v6 else dpkt.ethernet.ETH_TYPE_IP
        return bytes(
            dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=eth_type, data=ip)
        )
    if linktype == dpkt.pcap.DLT_LINUX_SLL:
        return bytes(dpkt.sll.SLL(ethtype=0x0800, data=ip))
    if linktype in (12, 14, 101):  # raw IP, under each of its numbers
        return bytes(ip)
    assert linktype == dpkt.pcap.DLT_NULL
    family = 30 if isinstance(ip, dpkt.ip6.IP6) else 2  # host byte order, as BSD writes it
    return family.to_bytes(4, sys.byteorder) + bytes(ip)


def segments(
    src: tuple[str, int],
    dst: tuple[str, int],
    isn: int,
    data: bytes,
    rng: random.Random,
) -> list[Any]:
    """Data segments for one direction: random sizes, some duplicated or overlapping."""
    out: list[Any] = []
    pos = 0
    while pos < len(data):
        size = rng.choice([1, 7, 100, 536, 1460])
        out.append(ip_packet(src, dst, isn + 1 + pos, ACK | PSH, data[pos : pos + size]))
        if rng.random() < 0.2:  # a retransmission, possibly of a larger span
            more = rng.choice([0, 3])
            out.append(ip_packet(src, dst, isn + 1 + pos, ACK, data[pos : pos + size + more]))
        pos += size
    return out


def conversation(
    client: tuple[str, int],
    server: tuple[str, int],
    c2s: bytes,
    s2c: bytes,
    rng: random.Random,
    *,
    isns: tuple[int, int] = (1000, 2**32 - 50),  # the server's wraps around 2^32
    shuffle: bool = True,
) -> list[Any]:
    """SYN, SYN-ACK, ACK, both directions' data (mixed, some out of order), FIN, FIN."""
    ci, si = isns
    data = segments(client, server, ci, c2s, rng) + segments(server, client, si, s2c, rng)
    if shuffle:
        # Keep each direction mostly in order but swap neighbours now and then.
        rng.shuffle(data)
        for i in range(len(data) - 1):
            if rng.random() < 0.3:
                data[i], data[i + 1] = data[i + 1], data[i]
    return [
        ip_packet(client, server, ci, SYN),
        ip_packet(server, client, si, SYN | ACK),
        ip_packet(client, server, ci + 1, ACK),
        *data,
        ip_packet(client, server, ci + 1 + len(c2s), FIN | ACK),
        ip_packet(server, client, si + 1 + len(s2c), FIN | ACK),
    ]


def write_capture(path: Path, packets: list[Any], *, linktype: int = 1, ng: bool = False) -> None:
    with path.open("wb") as f:
        writer = (dpkt.pcapng.Writer if ng else dpkt.pcap.Writer)(f, linktype=linktype)
        for i, ip in enumerate(packets):
            writer.writepkt(frame(linktype, ip), ts=1_700_000_000 + i / 1000)


@pytest.mark.parametrize(
    ("linktype", "ng", "family"),
    [
        (1, False, "v4"),
        (1, True, "v6"),
        (113, False, "v4"),
        (101, True, "v4"),
        (12, False, "v6"),
        (0, False, "v6"),
    ],
)
def test_pcap_reassembles_both_directions(
    linktype: int, ng: bool, family: str, tmp_path: Path
) -> None:
    rng = random.Random(linktype * 10 + ng)
    client, server = (CLIENT, SERVER) if family == "v4" else (("::1", 40000), ("::1", 5555))
    path = tmp_path / ("cap.pcapng" if ng else "cap.pcap")
    write_capture(path, conversation(client, server, C2S, S2C, rng), linktype=linktype, ng=ng)
    events = list(decode_paths([path]))
    host = client[0] if family == "v4" else f"[{client[0]}]"
    shost = server[0] if family == "v4" else f"[{server[0]}]"
    assert events[0].record == Opened(f"{host}:{client[1]}", f"{shost}:{server[1]}")
    got = by_direction(events[1:])
    assert got["c2s"] == records_of(C2S)
    assert got["s2c"] == records_of(S2C)
    assert all(e.time is not None and e.time >= 1_700_000_000 for e in events)


def test_pcap_several_connections_port_filter_and_reuse(tmp_path: Path) -> None:
    rng = random.Random(7)
    other = ("10.0.0.3", 41000)
    a = conversation(CLIENT, SERVER, C2S, S2C, rng, shuffle=False)
    b = conversation(other, ("10.0.0.2", 6000), S2C, C2S, rng, shuffle=False)
    # The first 4-tuple is reused by a new connection after the first one ends.
    c = conversation(CLIENT, SERVER, C2S[:100], S2C[:70], rng, isns=(5, 9), shuffle=False)
    mixed = [p for pair in zip(a, b, strict=False) for p in pair] + a[len(b) :] + b[len(a) :]
    path = tmp_path / "many.pcap"
    write_capture(path, mixed + c)
    events = list(decode_paths([path]))
    conns = sorted({e.conn for e in events})
    assert conns == [1, 2, 3]
    one = by_direction([e for e in events if e.conn == 1][1:])
    two = by_direction([e for e in events if e.conn == 2][1:])
    three = by_direction([e for e in events if e.conn == 3][1:])
    assert (one["c2s"], one["s2c"]) == (records_of(C2S), records_of(S2C))
    assert (two["c2s"], two["s2c"]) == (records_of(S2C), records_of(C2S))
    assert (three["c2s"], three["s2c"]) == (records_of(C2S[:100]), records_of(S2C[:70]))
    only = list(decode_paths([path], port=6000))
    assert {e.conn for e in only} == {1}
    assert by_direction(only[1:])["c2s"] == records_of(S2C)


@pytest.mark.parametrize("lost_byte", [200, 2000, len(C2S) + 3000 - 1])
def test_pcap_lost_segment_stops_that_direction(lost_byte: int, tmp_path: Path) -> None:
    c2s = C2S + message_bytes(b"tail" * 750)
    packets = conversation(CLIENT, SERVER, c2s, S2C, random.Random(lost_byte), shuffle=False)

    def carries_lost_byte(p: Any) -> bool:
        tcp = p.data
        return bool(
            tcp.sport == CLIENT[1] and tcp.seq <= 1001 + lost_byte < tcp.seq + len(tcp.data)
        )

    lost = [p for p in packets if carries_lost_byte(p)]
    assert lost
    start = min(p.data.seq for p in lost) - 1001
    path = tmp_path / "lossy.pcap"
    write_capture(path, [p for p in packets if not carries_lost_byte(p)])
    got = by_direction(list(decode_paths([path])))
    assert got["s2c"] == records_of(S2C)
    # Everything before the hole is decoded as usual, then decoding stops there.
    before = StreamTracer().feed(c2s[:start])
    assert got["c2s"][: len(before)] == before
    err, end = got["c2s"][len(before) :]
    assert isinstance(err, DecodeError)
    assert err.offset == start
    assert f"missing bytes {start}-" in err.reason
    assert isinstance(end, End)
    assert end.offset == start


def test_pcap_mid_connection_and_reset(tmp_path: Path) -> None:
    packets = conversation(CLIENT, SERVER, C2S, S2C, random.Random(5), shuffle=False)[3:-2]
    packets.append(ip_packet(SERVER, CLIENT, 0, RST))
    path = tmp_path / "mid.pcap"
    write_capture(path, packets)
    events = list(decode_paths([path]))
    notices = [e.record.text for e in events if isinstance(e.record, Notice)]
    assert any("mid-connection" in n for n in notices)
    assert any("reset" in n for n in notices)
    got = by_direction(events)
    assert got["c2s"] == records_of(C2S)
    assert got["s2c"] == records_of(S2C)


def test_pcap_without_dpkt_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cap.pcap"
    write_capture(path, conversation(CLIENT, SERVER, C2S, S2C, random.Random(1)))
    monkeypatch.setitem(sys.modules, "dpkt", None)
    with pytest.raises(DecodeInputError, match=r"zmtp\[pcap\]"):
        list(decode_paths([path]))


def test_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "fake.pcap"
    path.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 3)
    with pytest.raises(DecodeInputError, match="pcap"):
        list(decode_paths([path]))


# ---------------------------------------------------------------------------------------
# The command line


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zmtp", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_decode(tmp_path: Path) -> None:
    (tmp_path / "conn-1-c2s.bin").write_bytes(C2S)
    (tmp_path / "conn-1-s2c.hex").write_text(_hexdump_c(S2C))
    write_capture(
        tmp_path / "cap.pcapng", conversation(CLIENT, SERVER, C2S, S2C, random.Random(2)), ng=True
    )
    human = run_cli(
        "decode", tmp_path / "conn-1-c2s.bin", tmp_path / "conn-1-s2c.hex", "--color", "never"
    )
    assert human.returncode == 0, human.stderr
    assert "READY (46 B) Socket-Type='DEALER' Identity='alice'" in human.stdout
    assert "#1 s>c PONG" in human.stdout
    assert "\x1b[" not in human.stdout
    js = run_cli("decode", "--json", "--preview", "4", tmp_path / "cap.pcapng")
    assert js.returncode == 0, js.stderr
    objs = [json.loads(line) for line in js.stdout.splitlines()]
    assert objs[0]["event"] == "open"
    assert [o["name"] for o in objs if o["event"] == "command"] == [
        "READY",
        "READY",
        "PING",
        "PONG",
    ] or [o["name"] for o in objs if o["event"] == "command"].count("READY") == 2
    frames = [f for o in objs if o["event"] == "message" for f in o["frames"]]
    assert all(len(f["hex"]) <= 8 for f in frames)
    assert sum(o["wire_size"] for o in objs if "wire_size" in o) == len(C2S) + len(S2C)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["decode"], "required"),
        (["decode", "/nonexistent/x.bin"], "no such file"),
        (["decode", "--preview", "-1", "x"], "preview"),
        (["tap", "tcp://127.0.0.1:1"], "required"),
        (["tap", "udp://x:1", "tcp://127.0.0.1:1"], "not tcp://"),
        (["tap", "tcp://127.0.0.1:0", "tcp://*:1"], "only allowed"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_cli_bad_arguments_one_line_exit_2(args: list[str], words: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert words in result.stderr


# ---------------------------------------------------------------------------------------
# Saying what was found; times; one file of a recording


def _not_zmtp(tmp_path: Path) -> list[Path]:
    (tmp_path / "http.txt").write_text("GET / HTTP/1.1\r\n\r\n")
    return [tmp_path / "http.txt"]


def _empty_dir(tmp_path: Path) -> list[Path]:
    (tmp_path / "rec").mkdir()
    return [tmp_path / "rec"]


def _empty_file(tmp_path: Path) -> list[Path]:
    (tmp_path / "conn-1-c2s.bin").write_bytes(b"")
    return [tmp_path / "conn-1-c2s.bin"]


def _other_port(tmp_path: Path) -> list[Path]:
    path = tmp_path / "cap.pcap"
    write_capture(path, conversation(CLIENT, SERVER, C2S, S2C, random.Random(3)))
    return ["--port", "6000", path]  # type: ignore[list-item]


def _timeline_only(tmp_path: Path) -> list[Path]:
    (tmp_path / "conn-1-timeline.jsonl").write_text('{"conn": 1}\n')
    return [tmp_path / "conn-1-timeline.jsonl"]


def _some_not_zmtp(tmp_path: Path) -> list[Path]:
    (tmp_path / "a-c2s.bin").write_bytes(C2S)
    (tmp_path / "a-s2c.bin").write_bytes(b"\x00garbage")
    return [tmp_path / "a-c2s.bin", tmp_path / "a-s2c.bin"]


@pytest.mark.parametrize(
    ("make", "printed", "words"),
    [
        (_empty_dir, False, "no conversation found: {tmp}/rec: an empty directory"),
        (
            _not_zmtp,
            True,
            # Not starting with 0xFF reads as a ZMTP 1.0 opening, as libzmq reads it.
            "1 connection, none of them ZMTP; #1 stream reads as a ZMTP 1.0/2.0 opening "
            "(byte 0 is 0x47, not 0xff) that never completed: most likely not ZMTP",
        ),
        (_empty_file, True, "none of them ZMTP; no greeting in any direction"),
        (_other_port, False, "no conversation found: {tmp}/cap.pcap: 10 IP packets, "),
        (_other_port, False, "1 TCP connection (port 5555), none with port 6000"),
        (_timeline_only, False, "a timeline without its byte files"),
        (_some_not_zmtp, True, "1 connection, 1 of them ZMTP; decoding stopped in #1 s2c"),
    ],
)
def test_cli_decode_says_what_it_found_and_exits_1(
    make: Any, printed: bool, words: str, tmp_path: Path
) -> None:
    result = run_cli("decode", "--color", "never", *make(tmp_path))
    assert result.returncode == 1
    assert bool(result.stdout) == printed
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("python -m zmtp decode: ")
    assert words.format(tmp=tmp_path) in result.stderr


def test_summary_of_a_good_recording(tmp_path: Path) -> None:
    (tmp_path / "conn-1-c2s.bin").write_bytes(C2S)
    (tmp_path / "conn-1-s2c.bin").write_bytes(S2C)
    summary = DecodeSummary()
    events = list(decode_paths([tmp_path], summary=summary))
    assert summary.ok
    assert summary.conversations == 1
    assert summary.greetings == {(1, "c2s"), (1, "s2c")}
    assert summary.errors == []
    assert events  # and the CLI says nothing and exits 0:
    result = run_cli("decode", tmp_path)
    assert (result.returncode, result.stderr) == (0, "")


def nondecreasing(events: list[TraceEvent]) -> bool:
    last: dict[int, float] = {}
    for e in events:
        if e.time is not None:
            if e.time < last.get(e.conn, e.time):
                return False
            last[e.conn] = e.time
    return True


def test_recording_times_never_go_backwards(tmp_path: Path) -> None:
    # Two relay tasks stamp the two directions: a timeline may step back between them.
    (tmp_path / "conn-1-c2s.bin").write_bytes(C2S)
    (tmp_path / "conn-1-s2c.bin").write_bytes(S2C)
    cut = len(libzmq_greeting(5))
    lines = [
        {"conn": 1, "client": "a", "server": "b", "time": 10.0},
        {"t": 11.0, "dir": "c2s", "n": cut},
        {"t": 12.5, "dir": "s2c", "n": len(S2C)},
        {"t": 12.0, "dir": "c2s", "n": len(C2S) - cut},  # back by 0.5 s
        {"t": 11.5, "dir": "s2c", "eof": True},
        {"t": 13.0, "dir": "c2s", "eof": True},
    ]
    (tmp_path / "conn-1-timeline.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    events = list(decode_paths([tmp_path]))
    assert nondecreasing(events)
    c2s_times = {e.time for e in events if e.direction == "c2s"}
    assert c2s_times == {11.0, 12.5, 13.0}  # held at 12.5, not moved past what follows
    assert [e.time for e in events if isinstance(e.record, End)] == [12.5, 13.0]


def test_capture_times_never_go_backwards(tmp_path: Path) -> None:
    packets = conversation(CLIENT, SERVER, C2S, S2C, random.Random(4), shuffle=False)
    path = tmp_path / "jitter.pcap"
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for i, ip in enumerate(packets):
            # Timestamps from two capture queues: every other packet is 5 ms "late".
            writer.writepkt(frame(1, ip), ts=1_700_000_000 + i / 1000 - (i % 2) * 0.005)
    events = list(decode_paths([path]))
    assert nondecreasing(events)
    got = by_direction(events)
    assert (got["c2s"], got["s2c"]) == (records_of(C2S), records_of(S2C))


def test_one_file_of_a_recording_keeps_its_times(tmp_path: Path) -> None:
    (tmp_path / "conn-2-c2s.bin").write_bytes(C2S)
    (tmp_path / "conn-2-s2c.bin").write_bytes(S2C)
    cut = len(libzmq_greeting(5))
    lines = [
        {"conn": 2, "client": "127.0.0.1:1000", "server": "tcp://127.0.0.1:2000", "time": 10.0},
        {"t": 11.0, "dir": "c2s", "n": cut},
        {"t": 12.0, "dir": "s2c", "n": len(S2C)},
        {"t": 13.0, "dir": "c2s", "n": len(C2S) - cut},
        {"t": 14.0, "dir": "s2c", "eof": True},
        {"t": 15.0, "dir": "c2s", "eof": True},
    ]
    (tmp_path / "conn-2-timeline.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    events = list(decode_paths([tmp_path / "conn-2-c2s.bin"]))
    assert events[0] == TraceEvent(1, None, Opened("127.0.0.1:1000", "tcp://127.0.0.1:2000"), 10.0)
    notices = [e.record.text for e in events if isinstance(e.record, Notice)]
    assert notices == ["only conn-2-c2s.bin was given: s2c not decoded"]
    assert by_direction(events)["c2s"] == records_of(C2S)
    assert "s2c" not in by_direction(events)
    assert next(e.time for e in events if e.direction == "c2s") == 11.0
    assert events[-1] == TraceEvent(1, "c2s", End(len(C2S)), 15.0)
    result = run_cli("decode", tmp_path / "conn-2-s2c.bin")
    assert result.returncode == 0, result.stderr
    assert "does not fit" not in result.stdout


def test_timeline_mismatch_says_why(tmp_path: Path) -> None:
    (tmp_path / "conn-1-c2s.bin").write_bytes(C2S)
    (tmp_path / "conn-1-s2c.bin").write_bytes(S2C)
    (tmp_path / "conn-1-timeline.jsonl").write_text('{"conn": 1}\n{"t": 1, "dir": "c2s", "n": 3}\n')
    notices = [e.record.text for e in decode_paths([tmp_path]) if isinstance(e.record, Notice)]
    assert notices == [
        f"the timeline conn-1-timeline.jsonl does not fit conn-1-c2s.bin + conn-1-s2c.bin "
        f"(it records 3 B of conn-1-c2s.bin, which holds {len(C2S)} B): "
        f"decoding without times, client side first"
    ]
