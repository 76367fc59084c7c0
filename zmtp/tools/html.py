"""``python -m zmtp decode --html FILE``: a ladder diagram of each conversation, as one
self-contained HTML page (inline CSS and a few lines of JS; nothing is fetched).

Theory of operation
-------------------
:class:`HtmlLadder` collects :class:`~zmtp.tools.trace.TraceEvent` objects (``add``) and
renders them (``render``).  Each connection gets a section with two lifelines, the
client's on the left and the server's on the right, and one row per event, top to
bottom in the order the events happened:

* greetings, with their parts (signature, version, mechanism, as-server, filler) as
  chips under the arrow;
* commands: the handshake (READY, HELLO, WELCOME, INITIATE, ERROR), PING/PONG (dashed),
  SUBSCRIBE/CANCEL with their topics;
* messages, with one chip per frame (size, MORE, a preview of the body); under CURVE,
  each encrypted MESSAGE with its nonce and box size;
* where decoding failed, where each side closed, and notes (a capture starting
  mid-connection, a mechanism mismatch).

Time runs down the page: the left column gives each event's time since the connection
opened, and the space between two rows grows with the time between them (on a log
scale, so a ten-second silence does not push the rest off the screen).  Hovering over a
row shows a one-line summary (``title``); clicking opens the full decoded text, the
lines ``decode`` prints, inline (``<details>``, which needs no script).

The script only adds "expand all"/"collapse all" and, after layout, marks
``<body data-drawn="N">`` with the number of arrows actually drawn with a width, which
is what the browser test checks.  Everything shown comes from the trace records and is
escaped, so a peer's bytes cannot inject markup.

A conversation can be long: at most ``limit`` events per connection are drawn; a last
row says how many were left out.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from .format import HumanFormatter
from .trace import (
    DEFAULT_PREVIEW,
    Command,
    CurveMessage,
    DecodeError,
    End,
    Frame,
    Greeting,
    Identity,
    LegacyGreeting,
    Message,
    Notice,
    Opened,
    TraceEvent,
)

__all__ = ["DEFAULT_LIMIT", "HtmlLadder"]

#: Events drawn per connection, by default.
DEFAULT_LIMIT = 2000
_CHIPS = 8  # frames (or properties) shown as chips before "+N more"
_CHIP_TEXT = 24  # characters of a body preview in a chip
_HANDSHAKE = frozenset({"READY", "HELLO", "WELCOME", "INITIATE", "ERROR"})


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _preview(data: bytes, size: int) -> str:
    """A short text of a body: quoted if printable, else hex; '...' if cut."""
    shown = data[:_CHIP_TEXT]
    if not size:
        return '""'
    if all(0x20 <= b < 0x7F for b in shown):
        text = '"' + shown.decode("ascii") + '"'
    else:
        text = shown[: _CHIP_TEXT // 3].hex(" ")
        shown = shown[: _CHIP_TEXT // 3]
    return text + ("\u2026" if size > len(shown) else "")


@dataclass
class _Conn:
    conn: int
    client: str = "?"
    server: str = "?"
    start: float | None = None
    events: list[TraceEvent] = field(default_factory=list)
    left_out: int = 0
    lone: bool = False
    bytes: dict[str, int] = field(default_factory=lambda: {"c2s": 0, "s2c": 0, "stream": 0})
    counts: dict[str, int] = field(default_factory=dict)


class HtmlLadder:
    """Collects trace events and renders them as a ladder diagram page.

    Args:
        title: the page title (say, the files decoded).
        preview: bytes of each frame body shown in the details.
        limit: events drawn per connection; the rest are counted.
    """

    def __init__(
        self, *, title: str, preview: int = DEFAULT_PREVIEW, limit: int = DEFAULT_LIMIT
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.title = title
        self.limit = limit
        self._conns: dict[int, _Conn] = {}
        self._human = HumanFormatter(color=False, preview=preview)

    def add(self, event: TraceEvent) -> None:
        """Take one event (in the order they happened)."""
        c = self._conns.get(event.conn)
        if c is None:
            c = self._conns[event.conn] = _Conn(event.conn)
        r = event.record
        if c.start is None and event.time is not None:
            c.start = event.time
        if isinstance(r, Opened):
            c.client, c.server = r.client, r.server
            return
        if event.direction == "stream":
            c.lone = True
        kind = _kind(r)
        c.counts[kind] = c.counts.get(kind, 0) + 1
        if event.direction is not None and not isinstance(r, End | Notice | DecodeError):
            c.bytes[event.direction] += r.wire_size
        if len(c.events) >= self.limit:
            c.left_out += 1
            return
        c.events.append(event)

    def add_all(self, events: Iterable[TraceEvent]) -> None:
        """Take every event of an iterable."""
        for event in events:
            self.add(event)

    # -- rendering -----------------------------------------------------------------------

    def render(self) -> str:
        """The whole page."""
        conns = sorted(self._conns.values(), key=lambda c: c.conn)
        toc = "".join(
            f'<li><a href="#conn-{c.conn}">#{c.conn}</a> {_e(c.client)} \u2192 {_e(c.server)}'
            f" <small>{_e(self._tally(c))}</small></li>"
            for c in conns
        )
        body = "".join(self._section(c) for c in conns) or (
            '<p class="empty">No conversation was decoded.</p>'
        )
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(self.title)}</title><style>{_CSS}</style></head>"
            f'<body data-drawn="0"><header><h1>ZMTP conversation{"s" if len(conns) != 1 else ""}'
            f'</h1><p class="sub">{_e(self.title)}</p>'
            f'<nav><ol class="toc">{toc}</ol>'
            '<p class="tools"><button type="button" id="expand">expand all</button> '
            '<button type="button" id="collapse">collapse all</button> '
            "<span>hover over a row for a summary, click it for the decoded details</span>"
            f"</p></nav>{_LEGEND}</header><main>{body}</main>"
            f"<script>{_JS}</script></body></html>\n"
        )

    @staticmethod
    def _tally(c: _Conn) -> str:
        names = [("greeting", "greetings"), ("message", "messages"), ("command", "commands")]
        parts = [f"{c.counts.get(k, 0)} {label}" for k, label in names]
        if c.counts.get("error"):
            parts.append(f"{c.counts['error']} decode error(s)")
        return ", ".join(parts)

    def _section(self, c: _Conn) -> str:
        left = "sender" if c.lone else "client"
        right = "receiver" if c.lone else "server"
        rows: list[str] = []
        prev: float | None = c.start
        for event in c.events:
            rows.append(self._row(c, event, prev))
            if event.time is not None:
                prev = event.time
        if c.left_out:
            rows.append(
                _note_row(f"{c.left_out} more events not drawn (the limit is {self.limit})")
            )
        sent = (
            f"{c.bytes['stream']} B"
            if c.lone
            else f"{c.bytes['c2s']} B client\u2192server, {c.bytes['s2c']} B server\u2192client"
        )
        return (
            f'<section class="conn" id="conn-{c.conn}">'
            f"<h2>#{c.conn} <span>{_e(c.client)}</span> \u2192 <span>{_e(c.server)}</span></h2>"
            f'<p class="sub">{_e(self._tally(c))}; {_e(sent)}</p>'
            '<div class="ladder">'
            '<div class="heads"><div class="t">time</div><div class="lane">'
            f'<div class="head client"><b>{left}</b><small>{_e(c.client)}</small></div>'
            f'<div class="head server"><b>{right}</b><small>{_e(c.server)}</small></div>'
            "</div></div>"
            + "".join(rows)
            + '<div class="foot"><div class="t"></div><div class="lane"></div></div>'
            "</div></section>"
        )

    def _row(self, c: _Conn, event: TraceEvent, prev: float | None) -> str:
        r = event.record
        lines = self._human.body(event)
        when, gap_px, pause = _timing(c.start, prev, event.time)
        style = f' style="--gap:{gap_px}px"' if gap_px else ""
        detail = _e("\n".join(lines))
        if isinstance(r, Notice):
            return _note_row(r.text, when=when, style=style, pause=pause)
        direction = "c2s" if event.direction in ("c2s", "stream") else "s2c"
        kind = _kind(r)
        label, chips, extra = _describe(r)
        classes = f"ev {direction} {kind}{extra}"
        return (
            f'<details class="{classes}"{style}><summary title="{_e(lines[0])}">'
            f'<span class="t">{pause}{when}</span><span class="lane"><span class="msg">'
            f'<span class="label">{label}</span><span class="arrow"></span>'
            f'<span class="chips">{chips}</span></span></span></summary>'
            f'<div class="detail"><span class="t"></span><span class="lane"><pre>{detail}'
            "</pre></span></div></details>"
        )


def _kind(r: object) -> str:
    if isinstance(r, Greeting | LegacyGreeting):
        return "greeting"
    if isinstance(r, Identity):
        return "command"
    if isinstance(r, Message | CurveMessage):
        return "message"
    if isinstance(r, Command):
        return "command"
    if isinstance(r, DecodeError):
        return "error"
    if isinstance(r, End):
        return "end"
    return "note"


def _timing(start: float | None, prev: float | None, t: float | None) -> tuple[str, int, str]:
    """(time label, extra space above the row in px, pause marker)."""
    if t is None or start is None:
        return "", 0, ""
    rel = t - start
    label = f"+{rel:.6f} s" if rel < 10 else f"+{rel:.3f} s"
    gap = 0.0 if prev is None else max(t - prev, 0.0)
    # 0 px for back-to-back events, ~12 px per decade above 100 us, at most 72 px.
    px = 0 if gap <= 1e-4 else min(72, round(12 * math.log10(gap / 1e-4)))
    pause = f'<span class="pause">{_e(_duration(gap))} later</span>' if gap >= 0.05 else ""
    return label, px, pause


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _note_row(text: str, *, when: str = "", style: str = "", pause: str = "") -> str:
    return (
        f'<div class="ev note"{style} title="{_e(text)}"><span class="t">{pause}{when}</span>'
        f'<span class="lane"><span class="notetext">{_e(text)}</span></span></div>'
    )


def _chip(text: str, cls: str = "") -> str:
    return f'<span class="chip{(" " + cls) if cls else ""}">{_e(text)}</span>'


def _describe(r: object) -> tuple[str, str, str]:
    """(label HTML, chips HTML, extra classes) for a record drawn as an arrow."""
    if isinstance(r, Greeting):
        label = f"<b>greeting</b> ZMTP {r.major}.{r.minor} {_e(r.mechanism)}"
        chips = (
            _chip(f"signature ff {r.padding.hex(' ')} 7f \u00b7 10 B", "part")
            + _chip(f"version {r.major}.{r.minor} \u00b7 2 B", "part")
            + _chip(f"mechanism {r.mechanism} \u00b7 20 B", "part")
            + _chip(f"as-server {int(r.as_server)} \u00b7 1 B", "part")
            + _chip(f"filler{'' if r.filler_zero else ' (not zero!)'} \u00b7 31 B", "part")
        )
        return label, chips, ""
    if isinstance(r, LegacyGreeting):
        # A ZMTP 2.0/1.0 side (RFC 15, RFC 13): what it sent, and why it reads so.
        label = f"<b>greeting</b> ZMTP {r.version[0]}.{r.version[1]}"
        chips = ""
        if r.revision is not None:
            chips += _chip(f"signature ff {r.padding.hex(' ')} 7f \u00b7 10 B", "part")
            chips += _chip(f"revision {r.revision:#04x} \u00b7 1 B", "part")
            kind = f" {r.socket_type_name}" if r.socket_type_name else ""
            chips += _chip(f"socket type {r.socket_type}{kind} \u00b7 1 B", "part")
        chips += _chip(r.detected_by, "reason")
        return label, chips, ""
    if isinstance(r, Identity):
        return "<b>identity</b>", _frame_chip(r.frame), ""
    if isinstance(r, Message):
        n = len(r.frames)
        label = f"<b>message</b> {n} frame{'s' if n != 1 else ''}, {r.size} B"
        if r.problem:
            label += f' <span class="problem">{_e(r.problem)}</span>'
        chips = "".join(_frame_chip(f) for f in r.frames[:_CHIPS])
        if n > _CHIPS:
            chips += _chip(f"+{n - _CHIPS} more frames")
        return label, chips, " problem" if r.problem else ""
    if isinstance(r, Command):
        return _describe_command(r)
    if isinstance(r, CurveMessage):
        label = f"<b>MESSAGE</b> <small>{r.size} B, encrypted</small>"
        parts: list[str] = []
        if r.nonce is not None:
            parts.append(_chip(f"nonce {r.nonce}"))
        if r.box_size is not None:
            parts.append(_chip(f"box {r.box_size} B", "frame"))
        if r.problem:
            label += f' <span class="problem">{_e(r.problem)}</span>'
        return label, "".join(parts), " problem" if r.problem else ""
    if isinstance(r, DecodeError):
        return f"<b>decode error</b> at byte {r.offset}", _chip(r.reason, "reason"), ""
    assert isinstance(r, End)
    text = f"<b>closed</b> after {r.offset} B"
    if r.undecoded:
        text += f" ({r.undecoded} B not decoded)"
    return text, "", ""


def _describe_command(c: Command) -> tuple[str, str, str]:
    name = c.name or "?"
    if name in ("PING", "PONG"):
        kind = " heartbeat"
    elif name in ("SUBSCRIBE", "CANCEL"):
        kind = " subscription"
    elif name == "ERROR":
        kind = " handshake failure"
    elif name in _HANDSHAKE:
        kind = " handshake"
    else:
        kind = ""
    label = f"<b>{_e(name)}</b> <small>{c.size} B</small>"
    chips: list[str] = []
    if c.properties is not None:
        chips.extend(_chip(f"{k}={_preview(v, len(v))}") for k, v in c.properties[:_CHIPS])
    if c.ttl is not None:
        chips.append(_chip(f"ttl {c.ttl / 10:g} s"))
    if c.context is not None:
        chips.append(_chip(f"context {_preview(c.context, len(c.context))}"))
    if c.topic is not None:
        chips.append(_chip(f"topic {_preview(c.topic, len(c.topic))}", "topic"))
    if c.reason is not None:
        chips.append(_chip(f"reason {_preview(c.reason, len(c.reason))}", "reason"))
    if c.username is not None:
        chips.append(_chip(f"username {_preview(c.username, len(c.username))}"))
        if c.password is not None:
            chips.append(_chip(f"password {_preview(c.password, len(c.password))}"))
        else:
            chips.append(_chip(f"password <{c.password_size} octets hidden>"))
    if c.version is not None:
        chips.append(_chip(f"version {c.version[0]}.{c.version[1]}"))
    if c.transient_key_z85 is not None:
        chips.append(_chip(f"C' {c.transient_key_z85}"))
    if c.long_nonce is not None:
        chips.append(_chip(f"long nonce {c.long_nonce.hex()}"))
    if c.cookie_size is not None:
        chips.append(_chip(f"cookie {c.cookie_size} B"))
    if c.nonce is not None:
        chips.append(_chip(f"nonce {c.nonce}"))
    if c.box_size is not None:
        chips.append(_chip(f"box {c.box_size} B (encrypted)"))
    elif c.encrypted:
        chips.append(_chip("CURVE box (encrypted)"))
    if c.problem:
        label += f' <span class="problem">{_e(c.problem)}</span>'
        kind += " problem"
    return label, "".join(chips), kind


def _frame_chip(f: Frame) -> str:
    text = f"{f.size} B"
    if f.size:
        text += " " + _preview(f.preview, f.size)
    return _chip(text + (" \u2026MORE" if f.more else ""), "frame more" if f.more else "frame")


_LEGEND = (
    '<ul class="legend">'
    '<li class="greeting">greeting</li><li class="handshake">handshake command</li>'
    '<li class="message">message</li><li class="heartbeat">PING / PONG</li>'
    '<li class="subscription">SUBSCRIBE / CANCEL</li><li class="error">decode error</li>'
    '<li class="end">close</li></ul>'
)

_CSS = """
:root{--ink:#1f2933;--muted:#66788a;--life:#9aa5b1;--bg:#fbfcfd;--greeting:#2f9e44;
--handshake:#d9480f;--message:#1c7ed6;--heartbeat:#868e96;--subscription:#9c36b5;
--error:#e03131;--end:#495057;--time:9.5rem;--lane-pad:8.5rem}
*{box-sizing:border-box}
body{margin:0;font:14px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:var(--bg)}
header{padding:1rem 1.5rem .5rem;border-bottom:1px solid #e4e7eb;background:#fff}
h1{margin:0;font-size:1.35rem}h2{margin:0 0 .2rem;font-size:1.1rem}
h2 span{font-family:ui-monospace,Menlo,Consolas,monospace;font-weight:500}
.sub{margin:.15rem 0 .4rem;color:var(--muted)}
.toc{margin:.3rem 0;padding-left:1.4rem}.toc small{color:var(--muted)}
.tools{margin:.3rem 0;color:var(--muted);font-size:.85rem}
.tools button{font:inherit;padding:.1rem .6rem;border:1px solid #cbd2d9;border-radius:4px;
background:#f5f7fa;cursor:pointer}
.legend{display:flex;flex-wrap:wrap;gap:.4rem 1.1rem;list-style:none;margin:.4rem 0;padding:0;
font-size:.85rem}
.legend li::before{content:"";display:inline-block;width:1.6rem;height:3px;margin-right:.4rem;
vertical-align:middle;background:var(--c)}
.legend .greeting{--c:var(--greeting)}.legend .handshake{--c:var(--handshake)}
.legend .message{--c:var(--message)}.legend .subscription{--c:var(--subscription)}
.legend .error{--c:var(--error)}.legend .end{--c:var(--end)}
.legend .heartbeat::before{background:repeating-linear-gradient(90deg,var(--heartbeat) 0 6px,
transparent 6px 10px)}
main{padding:1rem 1.5rem 3rem}
.conn{margin-bottom:2.5rem}
.ladder{min-width:44rem;max-width:80rem}
.heads,.ev>summary,.ev.note,.detail,.foot{display:grid;grid-template-columns:var(--time) 1fr}
.lane{position:relative;margin:0 var(--lane-pad);border-left:3px solid var(--life);
border-right:3px solid var(--life);min-width:0}
.heads .lane{border:0;display:flex;justify-content:space-between;height:3.6rem}
.head{position:relative;display:flex;flex-direction:column;align-items:center;justify-content:center;
width:15rem;padding:.3rem .5rem;border:2px solid var(--life);border-radius:8px;background:#fff;
text-align:center;overflow:hidden}
.head.client{transform:translateX(-50%);margin-left:1.5px}
.head.server{transform:translateX(50%);margin-right:1.5px}
.head small{font-family:ui-monospace,Menlo,Consolas,monospace;color:var(--muted);
white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:100%}
.foot .lane{height:1.2rem}
.t{padding:.35rem .6rem 0 0;text-align:right;color:var(--muted);
font:12px ui-monospace,Menlo,Consolas,monospace;white-space:nowrap}
.pause{display:block;color:#a0aec0;font-style:italic;font-size:11px}
.ev{--c:var(--message)}
.ev>summary{list-style:none;cursor:pointer}
.ev>summary>.lane,.ev.note>.lane{padding-top:var(--gap,0px)}
.ev>summary>.t,.ev.note>.t{padding-top:calc(.35rem + var(--gap,0px))}
.ev>summary::-webkit-details-marker{display:none}
.ev>summary:hover .msg{background:#eef4fb}
.ev[open]>summary .msg{background:#e7f0fa}
.msg{display:flex;flex-direction:column;padding:.25rem .5rem .35rem;border-radius:4px}
.label{font-size:.92rem;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.c2s .label{text-align:left}.s2c .label{text-align:right}
.arrow{position:relative;height:2px;margin:.2rem -.5rem .25rem;background:var(--c)}
.c2s .arrow{margin-right:calc(-.5rem - 1px)}.s2c .arrow{margin-left:calc(-.5rem - 1px)}
.arrow::after{content:"";position:absolute;top:-5px;border-top:6px solid transparent;
border-bottom:6px solid transparent}
.c2s .arrow::after{right:0;border-left:11px solid var(--c)}
.s2c .arrow::after{left:0;border-right:11px solid var(--c)}
.chips{display:flex;flex-wrap:wrap;gap:.25rem}.s2c .chips{justify-content:flex-end}
.chip{padding:0 .4rem;border:1px solid #d5dde5;border-radius:3px;background:#fff;
font:12px/1.5 ui-monospace,Menlo,Consolas,monospace;white-space:nowrap;max-width:100%;
overflow:hidden;text-overflow:ellipsis}
.chip.frame{border-color:#a5c8ef;background:#f1f7fe}
.chip.more{border-right:3px solid var(--message)}
.chip.part{border-color:#b2dfbf;background:#f2fbf4}
.chip.topic{border-color:#dbb8e6;background:#faf2fc}
.chip.reason{border-color:#f3b1b1;background:#fff5f5}
.greeting{--c:var(--greeting)}.handshake{--c:var(--handshake)}
.heartbeat{--c:var(--heartbeat)}.subscription{--c:var(--subscription)}
.error,.handshake.failure{--c:var(--error)}.end{--c:var(--end)}
.heartbeat .arrow{background:repeating-linear-gradient(90deg,var(--c) 0 6px,transparent 6px 10px)}
.heartbeat .label{color:var(--muted)}
.end .arrow{height:0;border-top:2px dotted var(--c);background:none}
.error .label,.problem{color:var(--error)}
.problem{font-size:.85rem}
.notetext{display:block;margin:.35rem auto;max-width:70%;padding:.2rem .6rem;
border:1px solid #f0d58c;
border-radius:4px;background:#fff9db;text-align:center;font-size:.88rem}
.detail pre{margin:.1rem .5rem .5rem;padding:.5rem .6rem;border-radius:4px;background:#f0f4f8;
font:12px/1.45 ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all}
.empty{color:var(--muted)}
"""

_JS = """
(function(){
  var all=document.querySelectorAll('details.ev');
  document.getElementById('expand').onclick=function(){all.forEach(function(d){d.open=true;});};
  document.getElementById('collapse').onclick=function(){all.forEach(function(d){d.open=false;});};
  // For tests and the curious: how many arrows the layout actually drew.
  var drawn=0;
  document.querySelectorAll('.ev .arrow').forEach(function(a){
    if(a.getBoundingClientRect().width>40){drawn++;}
  });
  document.body.setAttribute('data-drawn',String(drawn));
})();
"""
