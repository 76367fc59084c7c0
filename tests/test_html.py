"""``decode --html``: the ladder diagram page (zmtp.tools.html).

A recording with known contents (built with the core encoders) is rendered; the page's
elements are checked with the standard library's HTML parser, and then in a real
headless browser (Debian's chromium): the page loads, its script runs, and the layout
draws every arrow with a width.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from zmtp.protocol.commands import (
    encode_cancel,
    encode_ping,
    encode_pong,
    encode_ready,
    encode_subscribe,
)
from zmtp.tools.decode import decode_paths
from zmtp.tools.html import HtmlLadder
from zmtp.tools.trace import Notice, TraceEvent

from ._helpers import libzmq_greeting, message_bytes

EVIL = b"<script>x()</script>"
C2S = (
    libzmq_greeting()
    + encode_ready([("Socket-Type", b"SUB")])
    + encode_subscribe(b"weather/")
    + encode_ping(15, b"hb")
    + encode_cancel(EVIL)
)
S2C = (
    libzmq_greeting()
    + encode_ready([("Socket-Type", b"PUB")])
    + message_bytes(b"weather/paris", b"21C", b"\x00\x01binary")
    + encode_pong(b"hb")
)
# Not ZMTP: a first byte other than 0xFF reads as a ZMTP 1.0 opening (as libzmq reads
# it), and 00 is a 1.0 length no peer may send: a decode error at byte 0.
GARBAGE = b"\x00GET / HTTP/1.1\r\n\r\n"


def recording(directory: Path) -> Path:
    """conn-1: a SUB talking to a PUB (with a pause); conn-2: not ZMTP."""
    rec = directory / "rec"
    rec.mkdir()
    (rec / "conn-1-c2s.bin").write_bytes(C2S)
    (rec / "conn-1-s2c.bin").write_bytes(S2C)
    g = len(libzmq_greeting())
    ready_c = len(encode_ready([("Socket-Type", b"SUB")]))
    lines = [
        {"conn": 1, "client": "127.0.0.1:40001", "server": "tcp://127.0.0.1:5556", "time": 50.0},
        {"t": 50.001, "dir": "c2s", "n": g},
        {"t": 50.002, "dir": "s2c", "n": g + len(encode_ready([("Socket-Type", b"PUB")]))},
        {"t": 50.003, "dir": "c2s", "n": ready_c + len(encode_subscribe(b"weather/"))},
        {"t": 50.004, "dir": "s2c", "n": len(message_bytes(b"weather/paris", b"21C", b"x" * 8))},
        {"t": 51.5, "dir": "c2s", "n": len(C2S) - g - ready_c - len(encode_subscribe(b"weather/"))},
        {"t": 51.501, "dir": "s2c", "n": len(encode_pong(b"hb"))},
        {"t": 52.0, "dir": "c2s", "eof": True},
        {"t": 52.0, "dir": "s2c", "eof": True},
    ]
    (rec / "conn-1-timeline.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (rec / "conn-2-c2s.bin").write_bytes(GARBAGE)
    (rec / "conn-2-s2c.bin").write_bytes(b"")
    (rec / "conn-2-timeline.jsonl").write_text(
        json.dumps({"conn": 2, "client": "127.0.0.1:40002", "server": "x", "time": 53.0})
        + "\n"
        + json.dumps({"t": 53.5, "dir": "c2s", "n": len(GARBAGE)})
        + "\n"
    )
    return rec


class Elements(HTMLParser):
    """Every element as (tag, attributes, text directly inside), and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        self._open: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}, []))
        if tag not in ("meta", "br", "img", "input", "link"):
            self._open.append(len(self.elements) - 1)

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open:
            self.elements[self._open[-1]][2].append(data)

    def having(self, *classes: str) -> list[tuple[str, dict[str, str], list[str]]]:
        return [e for e in self.elements if set(classes) <= set(e[1].get("class", "").split())]

    def text(self, *classes: str) -> list[str]:
        return ["".join(e[2]) for e in self.having(*classes)]


def parse(page: str) -> Elements:
    parser = Elements()
    parser.feed(page)
    parser.close()
    return parser


# What conn 1 must show: (direction, kind class, label text in bold) per arrow, in order.
EXPECTED = [
    ("c2s", "greeting", "greeting"),
    ("s2c", "greeting", "greeting"),
    ("s2c", "handshake", "READY"),
    ("c2s", "handshake", "READY"),
    ("c2s", "subscription", "SUBSCRIBE"),
    ("s2c", "message", "message"),
    ("c2s", "heartbeat", "PING"),
    ("c2s", "subscription", "CANCEL"),
    ("s2c", "heartbeat", "PONG"),
    ("c2s", "end", "closed"),
    ("s2c", "end", "closed"),
]


def check_page(page: str) -> Elements:
    """The elements a reader must find, in the order they happened."""
    doc = parse(page)
    sections = doc.having("conn")
    assert [s[1]["id"] for s in sections] == ["conn-1", "conn-2"]
    rows = [e for e in doc.having("ev") if e[0] == "details"]
    first = rows[: len(EXPECTED)]
    classes = [e[1]["class"].split() for e in first]
    assert [c[1] for c in classes] == [d for d, _, _ in EXPECTED]
    assert all(k in c for c, (_, k, _) in zip(classes, EXPECTED, strict=True))
    bold = [e for e in doc.elements if e[0] == "b"]
    labels = ["".join(e[2]) for e in bold if e[1] == {}][2:]  # after the two head boxes
    assert labels[: len(EXPECTED)] == [x for _, _, x in EXPECTED]
    # The greeting parts, frames with MORE, the topics, the heartbeat TTL.
    parts = doc.text("chip", "part")
    assert parts[:5] == [
        "signature ff 00 00 00 00 00 00 00 01 7f \u00b7 10 B",
        "version 3.1 \u00b7 2 B",
        "mechanism NULL \u00b7 20 B",
        "as-server 0 \u00b7 1 B",
        "filler \u00b7 31 B",
    ]
    assert len(parts) == 10
    frames = doc.text("chip", "frame")
    assert frames == [
        '13 B "weather/paris" \u2026MORE',
        '3 B "21C" \u2026MORE',
        "8 B 00 01 62 69 6e 61 72 79",
    ]
    assert len(doc.having("chip", "more")) == 2
    topics = doc.text("chip", "topic")
    assert topics == ['topic "weather/"', 'topic "<script>x()</script>"']
    assert "ttl 1.5 s" in doc.text("chip")
    # Times since the connection opened, and the pause before the PING marked.
    times = [t for t in doc.text("t") if t.startswith("+")]
    assert times[0] == "+0.001000 s"
    assert "1.50 s later" in doc.text("pause")
    # Hover: every arrow row has a summary title; click: the decoded lines inside.
    summaries = [e for e in doc.elements if e[0] == "summary"]
    assert all(e[1]["title"] for e in summaries)
    assert summaries[6][1]["title"] == "PING (9 B) ttl 1.5s context 'hb'"
    details = ["".join(e[2]) for e in doc.elements if e[0] == "pre"]
    assert "frame 3/3: 8 B, flags 00  00 01 62 69 6e 61 72 79  |..binary|" in details[5]
    # conn 2: read as a ZMTP 1.0 opening, then the decode error in red with its reason.
    assert "decode error" in labels
    assert any("error" in e[1]["class"].split() for e in rows)
    reasons = doc.text("chip", "reason")
    assert any("byte 0 is 0x00" in t for t in reasons)
    assert any("length 0" in t for t in reasons)
    # A peer's bytes never become markup: the one script is the page's own.
    assert [e[0] for e in doc.elements].count("script") == 1
    assert "<script>x()</script>" in page.replace("&lt;", "<").replace("&gt;", ">")
    assert "<script>x()" not in page
    return doc


def render(rec: Path, **options: int) -> str:
    ladder = HtmlLadder(title=str(rec), preview=64, **options)
    ladder.add_all(decode_paths([rec], preview=64))
    return ladder.render()


def test_ladder_elements(tmp_path: Path) -> None:
    check_page(render(recording(tmp_path)))


def test_ladder_limit(tmp_path: Path) -> None:
    doc = parse(render(recording(tmp_path), limit=3))
    notes = doc.text("notetext")
    assert "8 more events not drawn (the limit is 3)" in notes
    assert len([e for e in doc.having("ev") if e[0] == "details"]) == 3 + 3
    with pytest.raises(ValueError, match="limit"):
        HtmlLadder(title="x", limit=0)


def test_notices_are_drawn_as_notes() -> None:
    ladder = HtmlLadder(title="t")
    ladder.add(TraceEvent(1, None, Notice("capture starts mid-connection"), 1.0))
    assert parse(ladder.render()).text("notetext") == ["capture starts mid-connection"]
    assert "No conversation" in HtmlLadder(title="t").render()


def test_cli_decode_html(tmp_path: Path) -> None:
    rec = recording(tmp_path)
    out = tmp_path / "ladder.html"
    result = subprocess.run(
        [sys.executable, "-m", "zmtp", "decode", "--preview", "64", str(rec), "--html", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # conn-2 is not ZMTP: exit 1, and the page is written all the same.
    assert result.returncode == 1
    assert "decoding stopped in #2 c2s" in result.stderr
    check_page(out.read_text("utf-8"))


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip(
            "CHROMIUM IS NOT INSTALLED: the --html page is not checked in a real browser "
            "(apt-get install chromium; .ci/run installs it)"
        )
    return path


def test_ladder_renders_in_chromium(tmp_path: Path) -> None:
    browser = chromium()
    page = tmp_path / "ladder.html"
    page.write_text(render(recording(tmp_path)), encoding="utf-8")
    profile = tmp_path / "profile"
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1200,900",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    # The DOM as the browser built it holds every element...
    doc = check_page(dom)
    # ...and its script ran after layout and found every arrow drawn with a width.
    body = next(e for e in doc.elements if e[0] == "body")
    arrows = len([e for e in doc.having("ev") if e[0] == "details"])
    assert arrows == len(EXPECTED) + 4  # conn 2: 1.0 opening, decode error, two closes
    assert body[1]["data-drawn"] == str(arrows)
