"""Renderers for wire traces: human-readable lines and JSON lines.

Both turn a :class:`~zmtp.tools.trace.TraceEvent` into lines of text; the caller writes them.

Human format: one event per line (a message is a header line plus one line per frame),
and every line starts with the same prefix so that ``grep '#3 s>c'`` keeps whole
conversations intact::

    14:02:11.123456 #1 c>s READY Socket-Type='REQ' Identity=''

The time is local wall-clock time, or dashes when unknown.  ANSI colour is used only when
asked for (:func:`use_color` decides for a stream: a TTY, and ``NO_COLOR`` unset, per
https://no-color.org).

JSON format: one object per event with ``time``, ``conn``, ``dir`` and ``event`` keys
plus the record's fields; bytes are given as ``{"hex": ..., "text": ...}`` where text is
a printable-ASCII preview (other bytes shown as ``.``).

Secrets: a PLAIN password appears only if the record holds it, which it does only when
the tracer was asked (``show_passwords``); otherwise its size is shown, as
``<N octets hidden>`` (``"password_hidden": true`` in JSON).  CURVE boxes are shown as
what they are, encrypted, with their sizes; C' (a public key) is shown in Z85.
"""

from __future__ import annotations

import json
import os
import time as _time
from typing import Any, Literal, TextIO

from .trace import (
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

__all__ = ["HumanFormatter", "JsonFormatter", "use_color"]

ColorMode = Literal["auto", "always", "never"]

_ARROWS = {"c2s": "c>s", "s2c": "s>c", "stream": "-->", None: "   "}

# SGR codes.
_RESET = "\x1b[0m"
_DIM = "2"
_BOLD = "1"
_RED = "31"
_GREEN = "32"
_YELLOW = "33"
_MAGENTA = "35"
_CYAN = "36"
_DIR_COLORS = {"c2s": _CYAN, "s2c": _MAGENTA, "stream": _CYAN}


def use_color(stream: TextIO, mode: ColorMode = "auto") -> bool:
    """Whether to colour output written to ``stream``."""
    if mode != "auto":
        return mode == "always"
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _printable(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in data)


def _is_text(data: bytes) -> bool:
    return all(0x20 <= b < 0x7F for b in data)


def _show(data: bytes, limit: int | None = None, size: int | None = None) -> str:
    """A short rendering of a bytes field: quoted text if printable, else hex."""
    full = len(data) if size is None else size
    shown = data if limit is None else data[:limit]
    more = full - len(shown)
    text = repr(shown.decode("ascii")) if _is_text(shown) else "0x" + shown.hex()
    return text + (f"...(+{more} B)" if more > 0 else "")


def _flags_text(flags: int) -> str:
    names = [n for bit, n in ((0x01, "MORE"), (0x02, "LONG"), (0x04, "COMMAND")) if flags & bit]
    if flags & 0xF8:
        names.append(f"reserved={flags & 0xF8:#04x}")
    return f"flags {flags:02x}" + (" " + "|".join(names) if names else "")


class HumanFormatter:
    """Renders events as readable lines.

    Args:
        color: emit ANSI colour codes.
        preview: bytes of each body to show (records may hold fewer).
    """

    def __init__(self, *, color: bool = False, preview: int = 32) -> None:
        self.color = color
        self.preview = preview

    def _c(self, text: str, *codes: str) -> str:
        if not self.color or not codes:
            return text
        return f"\x1b[{';'.join(codes)}m{text}{_RESET}"

    def _prefix(self, event: TraceEvent) -> str:
        if event.time is None:
            stamp = "--:--:--.------"
        else:
            frac = round((event.time % 1) * 1_000_000)
            secs = int(event.time)
            if frac == 1_000_000:
                secs, frac = secs + 1, 0
            stamp = _time.strftime("%H:%M:%S", _time.localtime(secs)) + f".{frac:06d}"
        arrow = _ARROWS[event.direction]
        color = _DIR_COLORS.get(event.direction or "", "")
        return (
            f"{self._c(stamp, _DIM)} {self._c(f'#{event.conn}', _BOLD)} "
            f"{self._c(arrow, color) if color else arrow} "
        )

    def format(self, event: TraceEvent) -> list[str]:
        """The lines for one event (without newlines)."""
        prefix = self._prefix(event)
        return [prefix + line for line in self._body(event)]

    def body(self, event: TraceEvent) -> list[str]:
        """The lines for one event without their time/connection/direction prefix."""
        return self._body(event)

    def _body(self, event: TraceEvent) -> list[str]:
        r = event.record
        if isinstance(r, Greeting):
            return [self._greeting(r)]
        if isinstance(r, LegacyGreeting):
            return [self._legacy(r)]
        if isinstance(r, Identity):
            return [self._c("identity", _BOLD) + self._frame(r.frame, 1, 1)[len("  frame 1/1") :]]
        if isinstance(r, Command):
            return [self._command(r)]
        if isinstance(r, Message):
            return self._message(r)
        if isinstance(r, CurveMessage):
            return [self._curve_message(r)]
        if isinstance(r, DecodeError):
            text = f"DECODE ERROR at byte {r.offset}: {r.reason}"
            if r.data:
                text += f"; bytes there: {r.data.hex(' ')} |{_printable(r.data)}|"
            return [
                self._c(text, _BOLD, _RED),
                self._c("(not decoding this direction further)", _RED),
            ]
        if isinstance(r, End):
            text = f"closed after {r.offset} B"
            if r.undecoded:
                text += f" ({r.undecoded} B not decoded)"
            return [self._c(text, _DIM)]
        if isinstance(r, Opened):
            return [self._c(f"connection {r.client} -> {r.server}", _BOLD)]
        assert isinstance(r, Notice)
        return [self._c(r.text, _YELLOW)]

    def _legacy(self, g: LegacyGreeting) -> str:
        text = f"{self._c('greeting', _BOLD, _GREEN)} ZMTP {g.version[0]}.{g.version[1]}"
        if g.revision is not None:
            text += f" (revision byte {g.revision:#04x}), socket type {g.socket_type}"
            if g.socket_type_name:
                text += f" {g.socket_type_name}"
            text += f", padding = {int.from_bytes(g.padding, 'big')}"
        return text + f"; {g.detected_by}"

    def _greeting(self, g: Greeting) -> str:
        value = g.padding_value
        # RFC 23: the padding must not be interpreted; libzmq fills it anyway.
        note = "all zero" if value == 0 else f"= {value}, libzmq's routing-id length + 1"
        text = (
            f"{self._c('greeting', _BOLD, _GREEN)} ZMTP {g.major}.{g.minor} {g.mechanism} "
            f"as-server={int(g.as_server)}, signature ff {g.padding.hex(' ')} 7f "
            f"(padding {note})"
        )
        if not g.filler_zero:
            text += self._c(", filler bytes 33-63 not zero", _RED)
        return text

    def _command(self, c: Command) -> str:
        parts = [self._c(c.name or "?", _BOLD, _YELLOW), f"({c.size} B)"]
        limit = self.preview
        if c.properties is not None:
            parts.extend(f"{name}={_show(value, max(limit, 64))}" for name, value in c.properties)
            if not c.properties:
                parts.append("no properties")
        if c.reason is not None:
            parts.append(f"reason {_show(c.reason)}")
        if c.ttl is not None:
            parts.append(f"ttl {c.ttl / 10:g}s")
        if c.context is not None:
            parts.append(f"context {_show(c.context, limit)}")
        if c.topic is not None:
            parts.append(f"topic {_show(c.topic, limit)}")
        if c.username is not None:
            if c.password is not None:
                password = _show(c.password)
            else:
                password = f"<{c.password_size} octets hidden>"
            parts.append(f"username {_show(c.username)} password {password}")
        curve = _curve_fields(c)
        if curve:
            parts.append(curve)
        elif c.encrypted:
            parts.append("CURVE box (encrypted)")
        if c.data and (not c.encrypted or c.box_size is None):
            shown = c.data[:limit]
            # The data follows the name-length byte and the name ("?": the whole body).
            total = c.size if c.name == "?" else c.size - 1 - len(c.name)
            parts.append(f"data {shown.hex(' ')} |{_printable(shown)}|")
            if total > len(shown):
                parts.append(f"...(+{total - len(shown)} B)")
        if c.flags & ~0x06:
            parts.append(_flags_text(c.flags))
        text = " ".join(parts)
        if c.problem:
            text += " " + self._c(f"!! {c.problem}", _RED)
        return text

    def _curve_message(self, m: CurveMessage) -> str:
        parts = [self._c("MESSAGE", _BOLD), f"({m.size} B)", _flags_text(m.flags) + ","]
        if m.nonce is not None:
            parts.append(f"nonce {m.nonce},")
        if m.box_size is not None:
            parts.append(f"box {m.box_size} B {_box_note('MESSAGE', m.box_size)}")
        if m.data:
            shown = m.data[: self.preview]
            parts.append(f"data {shown.hex(' ')} |{_printable(shown)}|")
            if m.size > len(shown):
                parts.append(f"...(+{m.size - len(shown)} B)")
        text = " ".join(parts).rstrip(",")
        if m.problem:
            text += " " + self._c(f"!! {m.problem}", _RED)
        return text

    def _frame(self, f: Frame, index: int, count: int) -> str:
        shown = f.preview[: self.preview]
        text = f"  frame {index}/{count}: {f.size} B, {_flags_text(f.flags)}"
        if shown:
            text += f"  {shown.hex(' ')}  |{_printable(shown)}|"
            if f.size > len(shown):
                text += f" ...(+{f.size - len(shown)} B)"
        return text

    def _message(self, m: Message) -> list[str]:
        n = len(m.frames)
        head = (
            f"{self._c('message', _BOLD)} {n} frame{'s' if n != 1 else ''}, "
            f"{m.size} B ({m.wire_size} B on the wire)"
        )
        if m.problem:
            head += " " + self._c(f"!! {m.problem}", _RED)
        return [head] + [self._frame(f, i, n) for i, f in enumerate(m.frames, 1)]


def _box_note(name: str, box_size: int) -> str:
    """What a CURVE box of ``name`` holds (RFC 26), sized: the reader cannot open it."""
    inside = box_size - 16  # the authenticator
    if inside < 0:
        return "(encrypted; too small for a box)"
    if name == "HELLO":
        return "(encrypted: the 64-zero signature)"
    if name == "WELCOME":
        return "(encrypted: S' and the cookie)"
    if name == "INITIATE":
        # C (32), the vouch's nonce (16) and box (80), then the metadata.
        return f"(encrypted: C, the vouch, metadata {max(inside - 128, 0)} B)"
    if name == "READY":
        return f"(encrypted: metadata {inside} B)"
    if name == "MESSAGE" and inside >= 1:
        return f"(encrypted: flags + {inside - 1} B)"
    return "(encrypted)"


def _curve_fields(c: Command) -> str:
    """The CURVE fields of a command, comma-separated, or "" if it has none."""
    fields = []
    if c.version is not None:
        fields.append(f"version {c.version[0]}.{c.version[1]}")
    if c.padding_ok is not None:
        fields.append("padding 72 B zero" if c.padding_ok else "padding NOT zero")
    key = c.transient_key_z85
    if key is not None:
        fields.append(f"C' {key}")
    if c.long_nonce is not None:
        fields.append(f"long nonce {c.long_nonce.hex()}")
    if c.cookie_size is not None:
        fields.append(f"cookie {c.cookie_size} B")
    if c.nonce is not None:
        fields.append(f"nonce {c.nonce}")
    if c.box_size is not None:
        what = "signature box" if c.name == "HELLO" else "box"
        fields.append(f"{what} {c.box_size} B {_box_note(c.name, c.box_size)}")
    return ", ".join(fields)


def _bytes(data: bytes) -> dict[str, str]:
    return {"hex": data.hex(), "text": _printable(data)}


class JsonFormatter:
    """Renders each event as one JSON object (one line).

    Args:
        preview: bytes of each frame body to include (records may hold fewer).
    """

    def __init__(self, *, preview: int = 32) -> None:
        self.preview = preview

    def format(self, event: TraceEvent) -> list[str]:
        """One line holding the event as JSON."""
        return [json.dumps(self.to_dict(event), separators=(",", ":"))]

    def to_dict(self, event: TraceEvent) -> dict[str, Any]:
        """The event as a JSON-compatible dict."""
        out: dict[str, Any] = {"time": event.time, "conn": event.conn, "dir": event.direction}
        r = event.record
        if isinstance(r, Greeting):
            out.update(
                event="greeting",
                offset=r.offset,
                wire_size=r.wire_size,
                version=f"{r.major}.{r.minor}",
                mechanism=r.mechanism,
                as_server=r.as_server,
                padding=r.padding.hex(),
                filler_zero=r.filler_zero,
            )
        elif isinstance(r, Command):
            out.update(
                event="command",
                name=r.name,
                offset=r.offset,
                size=r.size,
                wire_size=r.wire_size,
                flags=r.flags,
            )
            if r.properties is not None:
                out["properties"] = [{"name": n, "value": _bytes(v)} for n, v in r.properties]
            for key in ("reason", "context", "topic", "username"):
                value = getattr(r, key)
                if value is not None:
                    out[key] = _bytes(value)
            if r.ttl is not None:
                out["ttl"] = r.ttl
            if r.password_size is not None:
                out["password_size"] = r.password_size
                if r.password is not None:
                    out["password"] = _bytes(r.password)
                else:
                    out["password_hidden"] = True
            if r.version is not None:
                out["version"] = f"{r.version[0]}.{r.version[1]}"
            if r.padding_ok is not None:
                out["padding_ok"] = r.padding_ok
            if r.transient_key is not None:
                out["transient_key"] = r.transient_key_z85 or r.transient_key.hex()
            if r.long_nonce is not None:
                out["long_nonce"] = r.long_nonce.hex()
            for key in ("cookie_size", "nonce", "box_size"):
                value = getattr(r, key)
                if value is not None:
                    out[key] = value
            if r.encrypted:
                out["encrypted"] = True
            if r.data:
                out["data"] = _bytes(r.data[: self.preview])
            out["problem"] = r.problem
        elif isinstance(r, CurveMessage):
            out.update(
                event="curve_message",
                offset=r.offset,
                size=r.size,
                wire_size=r.wire_size,
                flags=r.flags,
                nonce=r.nonce,
                box_size=r.box_size,
                encrypted=True,
            )
            if r.data:
                out["data"] = _bytes(r.data[: self.preview])
            out["problem"] = r.problem
        elif isinstance(r, Message):
            out.update(
                event="message",
                offset=r.offset,
                size=r.size,
                wire_size=r.wire_size,
                frames=[
                    {
                        "offset": f.offset,
                        "size": f.size,
                        "flags": f.flags,
                        "more": f.more,
                        **_bytes(f.preview[: self.preview]),
                        "truncated": f.size > min(len(f.preview), self.preview),
                    }
                    for f in r.frames
                ],
                problem=r.problem,
            )
        elif isinstance(r, LegacyGreeting):
            out.update(
                event="legacy_greeting",
                offset=r.offset,
                wire_size=r.wire_size,
                version=f"{r.version[0]}.{r.version[1]}",
                revision=r.revision,
                socket_type=r.socket_type,
                socket_type_name=r.socket_type_name,
                padding=r.padding.hex(),
                detected_by=r.detected_by,
            )
        elif isinstance(r, Identity):
            f = r.frame
            out.update(event="identity", offset=f.offset, size=f.size, flags=f.flags)
            out.update(_bytes(f.preview[: self.preview]))
        elif isinstance(r, DecodeError):
            out.update(event="decode_error", offset=r.offset, reason=r.reason, data=_bytes(r.data))
        elif isinstance(r, End):
            out.update(event="end", bytes=r.offset, undecoded=r.undecoded)
        elif isinstance(r, Opened):
            out.update(event="open", client=r.client, server=r.server)
        else:
            out.update(event="notice", text=r.text)
        return out
