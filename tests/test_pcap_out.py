"""Writing conversations as pcap (zmtp.tools.pcap, ``decode --pcap-out``).

The capture must be one that capture tools follow: every packet a valid Ethernet/IP/TCP
frame with correct checksums, each direction's sequence numbers contiguous from a
SYN/SYN-ACK/ACK handshake to a FIN, ACKs matching what the other side sent, times that
never go backwards.  It is read back with dpkt (and with tshark when installed: it must
find nothing to complain about), and decoding it gives the conversation back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zmtp.tools.decode import decode_paths
from zmtp.tools.pcap import PcapWriter, parse_address
from zmtp.tools.trace import Notice, Opened, Record, TraceEvent

from ._helpers import libzmq_greeting, message_bytes

dpkt = pytest.importorskip("dpkt")

C2S = libzmq_greeting(3) + message_bytes(b"x" * 4000, b"tail")
S2C = libzmq_greeting() + message_bytes(b"reply")


def record(directory: Path, *, client: str, server: str, backwards: bool = False) -> Path:
    """A tap recording of C2S/S2C in five chunks (times optionally stepping back), in
    ``directory/rec``."""
    directory = directory / "rec"
    directory.mkdir()
    (directory / "conn-1-c2s.bin").write_bytes(C2S)
    (directory / "conn-1-s2c.bin").write_bytes(S2C)
    lines = [
        {"conn": 1, "client": client, "server": server, "time": 100.0},
        {"t": 100.25, "dir": "c2s", "n": 10},
        {"t": 100.5, "dir": "s2c", "n": len(S2C)},
        {"t": 100.375 if backwards else 100.75, "dir": "c2s", "n": len(C2S) - 10},
        {"t": 101.0, "dir": "c2s", "eof": True},
        {"t": 101.5, "dir": "s2c", "eof": True},
    ]
    (directory / "conn-1-timeline.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return directory


def packets(path: Path) -> Iterator[tuple[float, Any, Any, bytes]]:
    """(time, IP packet, TCP segment, raw frame) of every packet."""
    with path.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        for ts, buf in reader:
            eth = dpkt.ethernet.Ethernet(buf)
            yield ts, eth.data, eth.data.data, buf


def checksums_valid(ip: Any) -> bool:
    """Re-serialising with the checksums cleared must give the same sums back."""
    raw = bytes(ip)
    again = type(ip)(raw)
    tcp = again.data
    tcp.sum = 0
    if isinstance(again, dpkt.ip.IP):
        again.sum = 0
    return bytes(again) == raw


def check_tcp(path: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """Check every connection's TCP is consistent; returns per (sport, dport) what was seen."""
    side: dict[tuple[int, int], dict[str, Any]] = {}
    last = 0.0
    for ts, ip, tcp, buf in packets(path):
        assert ts >= last, "time went backwards"
        last = ts
        assert len(buf) <= 1514, "larger than an Ethernet frame"
        assert checksums_valid(ip)
        key, back = (tcp.sport, tcp.dport), (tcp.dport, tcp.sport)
        flags = tcp.flags
        if flags & dpkt.tcp.TH_SYN:
            assert key not in side
            side[key] = {"next": (tcp.seq + 1) & 0xFFFFFFFF, "data": b"", "fin": False}
            if flags & dpkt.tcp.TH_ACK:
                assert tcp.ack == side[back]["next"]  # the SYN-ACK acknowledges the SYN
            continue
        me = side[key]
        assert flags & dpkt.tcp.TH_ACK
        assert tcp.ack == side[back]["next"], "ACK of what the peer sent so far"
        assert tcp.seq == me["next"], "sequence numbers follow on"
        if me["fin"]:  # after its FIN, a side only acknowledges
            assert not tcp.data
            assert not flags & dpkt.tcp.TH_FIN
        me["data"] += bytes(tcp.data)
        me["next"] = (me["next"] + len(tcp.data) + bool(flags & dpkt.tcp.TH_FIN)) & 0xFFFFFFFF
        if flags & dpkt.tcp.TH_FIN:
            me["fin"] = True
    assert all(s["fin"] for s in side.values()), "every direction ends with a FIN"
    return side


def comparable(events: list[TraceEvent]) -> list[tuple[str | None, Record]]:
    return [(e.direction, e.record) for e in events if not isinstance(e.record, Opened | Notice)]


def test_recording_to_pcap_and_back(tmp_path: Path) -> None:
    rec = record(tmp_path, client="127.0.0.1:40123", server="tcp://127.0.0.1:5556")
    out = tmp_path / "out.pcap"
    with PcapWriter(out) as writer:
        original = list(decode_paths([rec], wire=writer))
    side = check_tcp(out)
    assert side[(40123, 5556)]["data"] == C2S
    assert side[(5556, 40123)]["data"] == S2C
    times = [ts for ts, *_ in packets(out)]
    assert times[0] == 100.0
    assert times[-1] == 101.5
    # Decoding the capture gives the same conversation, in the same order.
    back = list(decode_paths([out]))
    assert back[0].record == Opened("127.0.0.1:40123", "127.0.0.1:5556")
    assert comparable(back) == comparable(original)


def test_segments_fit_an_ethernet_mtu(tmp_path: Path) -> None:
    out = tmp_path / "big.pcap"
    with PcapWriter(out) as writer:
        writer.open(1, "10.0.0.1:40000", "10.0.0.2:5555", 1.0)
        writer.data(1, "c2s", b"a" * 10_000, 2.0)
    lengths = [len(tcp.data) for *_, tcp, _ in packets(out) if tcp.data]
    assert lengths == [1460] * 6 + [10_000 - 6 * 1460]
    pushed = [bool(tcp.flags & dpkt.tcp.TH_PUSH) for *_, tcp, _ in packets(out) if tcp.data]
    assert pushed == [False] * 6 + [True]


@pytest.mark.parametrize(
    ("client", "server", "family", "ports"),
    [
        ("[::1]:40001", "tcp://[::1]:5557", dpkt.ip6.IP6, (40001, 5557)),
        # One end IPv6, the other IPv4: both as IPv6 (the IPv4 one mapped).
        ("[fe80::1]:40002", "tcp://127.0.0.1:5558", dpkt.ip6.IP6, (40002, 5558)),
        # ipc: stand-in addresses and ports.
        ("ipc:///tmp/x.sock", "ipc:///tmp/x.sock", dpkt.ip.IP, (40001, 5555)),
        ("/rec/conn-1-c2s.bin", "?", dpkt.ip.IP, (40001, 5555)),
    ],
)
def test_addresses(
    client: str, server: str, family: Any, ports: tuple[int, int], tmp_path: Path
) -> None:
    rec = record(tmp_path, client=client, server=server)
    out = tmp_path / "out.pcap"
    with PcapWriter(out) as writer:
        list(decode_paths([rec], wire=writer))
    assert {type(ip) for _, ip, _, _ in packets(out)} == {family}
    side = check_tcp(out)
    assert side[ports]["data"] == C2S
    if client.startswith("[fe80"):
        _, ip, _, _ = next(packets(out))
        assert ip.dst == bytes.fromhex("00000000000000000000ffff7f000001")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5555", ("127.0.0.1", 5555)),
        ("tcp://[::1]:80", ("::1", 80)),
        ("tcp://localhost:5555", None),
        ("ipc:///tmp/s", None),
        ("127.0.0.1:0", None),
        ("127.0.0.1:70000", None),
        ("300.0.0.1:5", None),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int] | None) -> None:
    got = parse_address(text)
    assert (None if got is None else (str(got[0]), got[1])) == expected


def test_times_never_go_backwards_and_unfinished_connections_get_fins(tmp_path: Path) -> None:
    rec = record(tmp_path, client="127.0.0.1:40123", server="127.0.0.1:5556", backwards=True)
    (rec / "conn-1-timeline.jsonl").write_text(
        "\n".join((rec / "conn-1-timeline.jsonl").read_text().splitlines()[:-2]) + "\n"
    )
    out = tmp_path / "out.pcap"
    with PcapWriter(out) as writer:
        list(decode_paths([rec], wire=writer))
    check_tcp(out)  # monotonic times, FINs written at close


def test_tshark_reads_it_without_complaint(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (optional: apt-get install tshark)")
    rec = record(tmp_path, client="127.0.0.1:40123", server="tcp://127.0.0.1:5556")
    out = tmp_path / "out.pcap"
    with PcapWriter(out) as writer:
        list(decode_paths([rec], wire=writer))
    run = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(out),
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "tcp.len",
            "-e",
            "tcp.analysis.flags",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
            "-e",
            "tcp.checksum.status",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [line.split("\t") for line in run.stdout.splitlines()]
    assert len(rows) == len(list(packets(out)))
    assert sum(int(r[1]) for r in rows) == len(C2S) + len(S2C)
    for number, _, analysis, malformed, severity, checksum in rows:
        assert (analysis, malformed) == ("", ""), f"frame {number}"
        # Notes (SYN, FIN) are fine; warnings and errors are not.
        assert all(int(s) < 6291456 for s in severity.split(",") if s), f"frame {number}"
        assert checksum == "1", f"frame {number}: checksum not good"  # 1 = verified good


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zmtp", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_decode_pcap_out(tmp_path: Path) -> None:
    rec = record(tmp_path, client="127.0.0.1:40123", server="tcp://127.0.0.1:5556")
    out = tmp_path / "out.pcap"
    result = run_cli("decode", "--json", rec, "--pcap-out", out)
    assert result.returncode == 0, result.stderr
    side = check_tcp(out)
    assert (side[(40123, 5556)]["data"], side[(5556, 40123)]["data"]) == (C2S, S2C)
    again = run_cli("decode", "--json", out)
    strip = [
        {k: v for k, v in json.loads(x).items() if k != "time"} for x in result.stdout.splitlines()
    ]
    strip_again = [
        {k: v for k, v in json.loads(x).items() if k != "time"} for x in again.stdout.splitlines()
    ]
    assert strip_again[1:] == strip[1:]  # all but the "open" line, whose ends differ


def test_cli_pcap_out_needs_dpkt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zmtp.tools.cli import main  # noqa: PLC0415

    rec = record(tmp_path, client="a", server="b")
    monkeypatch.setitem(sys.modules, "dpkt", None)
    with pytest.raises(SystemExit) as exc:
        main(["decode", str(rec), "--pcap-out", str(tmp_path / "x.pcap")])
    assert exc.value.code == 2
    assert not (tmp_path / "x.pcap").exists()
