"""The tracer on PLAIN and CURVE conversations (RFC 24, RFC 26): field by field.

The conversations are real: our sans-IO mechanisms (``PlainClient``/``PlainServer``,
``CurveClient``/``CurveServer``, already checked against libzmq in
interop/test_plain_interop.py and interop/test_curve_interop.py) are driven through
their handshakes by hand, and the command frames they return are what a connection
sends; traffic is framed as the connection frames it (plain frames after PLAIN, one
MESSAGE per part in a data frame after CURVE).  The CURVE conversation is deterministic:
its transient keys and random nonces come from fixed values through the mechanism's
test seams (``_new_transient``, ``_random``), so its trace is pinned line by line.

What is checked: every field of every handshake command; a PLAIN password never shown
(human, JSON, HTML) unless asked; every CURVE MESSAGE shown as encrypted with its nonce
and size; libzmq's malformed PLAIN ERROR; damaged commands as problems, not crashes;
the construct grammar (zmtp.tools.grammar) agreeing with the tracer's fields; and, with
hypothesis, that chunking never changes a trace and garbage after a CURVE greeting
gives nothing but records.  interop/test_tap_security.py does the same with libzmq's
own bytes through the tap.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import construct
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zmtp.protocol import z85
from zmtp.protocol.commands import (
    Command as WireCommand,
)
from zmtp.protocol.commands import (
    encode_command,
    encode_error,
    encode_ping,
    parse_command,
)
from zmtp.protocol.framing import FLAG_COMMAND, FLAG_LONG, FLAG_MORE, OutputBuffer, encode_frame
from zmtp.protocol.framing import encode_message as frame_message
from zmtp.protocol.greeting import build_greeting
from zmtp.protocol.keys import private_key
from zmtp.protocol.mechanisms import Mechanism, MechanismStatus, PlainClient, PlainServer
from zmtp.protocol.mechanisms import curve as curve_module
from zmtp.protocol.mechanisms.curve import CurveClient, CurveServer
from zmtp.tools import grammar
from zmtp.tools.cli import main as cli_main
from zmtp.tools.decode import decode_paths
from zmtp.tools.format import HumanFormatter, JsonFormatter
from zmtp.tools.html import HtmlLadder
from zmtp.tools.trace import (
    Command,
    ConversationTracer,
    CurveMessage,
    DecodeError,
    End,
    Greeting,
    Message,
    Record,
    StreamTracer,
    TraceEvent,
)

# ---------------------------------------------------------------------------------------
# Conversations

#: Long-term secret keys of the CURVE conversation (any 32 octets are a secret key).
CLIENT_SECRET = bytes(range(1, 33))
SERVER_SECRET = bytes(range(101, 133))
#: The transient secrets the mechanisms are handed, in the order they ask: the
#: client's C' (at HELLO), then the server's S' (at WELCOME).
CLIENT_TRANSIENT_SECRET = bytes(range(201, 233))
SERVER_TRANSIENT_SECRET = bytes(range(33, 65))

#: [P] libzmq 4.3.5's PLAIN ERROR, as it goes out (specs/libzmq-behaviour.md §4.1).
LIBZMQ_PLAIN_ERROR = bytes.fromhex("0409") + b"\x5eRROR" + b"\x03400"


@dataclass(frozen=True)
class Conversation:
    """Both directions of one connection, greeting first."""

    c2s: bytes
    s2c: bytes
    #: Each direction's pieces in the order they were sent (for interleaving).
    steps: tuple[tuple[str, bytes], ...]


def _body(frame: bytes) -> bytes:
    return frame[9:] if frame[0] & FLAG_LONG else frame[2:]


def _command(frame: bytes) -> WireCommand:
    return parse_command(_body(frame))


def _handshake(
    client: Mechanism,
    server: Mechanism,
    client_props: list[tuple[str, bytes]],
    server_props: list[tuple[str, bytes]],
) -> list[tuple[str, bytes]]:
    """Run the handshake; return the frames each side sent, in order."""
    steps: list[tuple[str, bytes]] = []
    pending = [("c2s", f) for f in client.start(client_props)]
    pending += [("s2c", f) for f in server.start(server_props)]
    while pending:
        direction, frame = pending.pop(0)
        steps.append((direction, frame))
        receiver = server if direction == "c2s" else client
        back = "s2c" if direction == "c2s" else "c2s"
        pending += [(back, f) for f in receiver.receive_command(_command(frame))]
    assert client.status is MechanismStatus.READY
    assert server.status is MechanismStatus.READY
    return steps


def _conversation(mechanism: bytes, steps: list[tuple[str, bytes]]) -> Conversation:
    greetings = [
        ("c2s", build_greeting(mechanism, as_server=False)),
        ("s2c", build_greeting(mechanism, as_server=True)),
    ]
    everything = greetings + steps
    c2s = b"".join(data for d, data in everything if d == "c2s")
    s2c = b"".join(data for d, data in everything if d == "s2c")
    return Conversation(c2s, s2c, tuple(everything))


def _frames(*parts: bytes) -> bytes:
    out = OutputBuffer()
    frame_message(out, list(parts))
    return b"".join(bytes(c) for c in out.chunks())


def plain_conversation(password: bytes = b"secret") -> Conversation:
    """DEALER 'admin' / ``password`` to a ROUTER that accepts it, then a request and
    its reply in clear."""
    client = PlainClient(b"admin", password)
    server = PlainServer(authorize=lambda credentials: credentials.password == password)
    steps = _handshake(
        client,
        server,
        [("Socket-Type", b"DEALER"), ("Identity", b"")],
        [("Socket-Type", b"ROUTER")],
    )
    steps += [("c2s", _frames(b"hello", b"world")), ("s2c", _frames(b"reply"))]
    return _conversation(b"PLAIN", steps)


def plain_refusal(*, libzmq_error: bool) -> Conversation:
    """A HELLO with a wrong password, refused with ERROR "400": ours, or the malformed
    one libzmq sends."""
    client = PlainClient(b"admin", b"wrong")
    hello = client.start([("Socket-Type", b"DEALER")])
    error = LIBZMQ_PLAIN_ERROR if libzmq_error else encode_error(b"400")
    return _conversation(b"PLAIN", [("c2s", hello[0]), ("s2c", error)])


def _seeded() -> tuple[Iterator[bytes], Iterator[bytes]]:
    transients = iter([CLIENT_TRANSIENT_SECRET, SERVER_TRANSIENT_SECRET])
    counter = itertools.count(1)

    def random_bytes() -> Iterator[bytes]:
        # Long nonces and the cookie key: distinct, recognisable, fixed.
        while True:
            n = next(counter)
            yield bytes((n,)) * 32

    return transients, random_bytes()


def curve_conversation() -> Conversation:
    """DEALER to ROUTER under CURVE, deterministic: the handshake, then the client's
    two-part request, a PING it sends as an inner command, and the server's reply of
    one 300-octet part (a LONG frame)."""
    transients, randoms = _seeded()
    with (
        mock.patch.object(curve_module, "_new_transient", lambda: private_key(next(transients))),
        mock.patch.object(curve_module, "_random", lambda size: next(randoms)[:size]),
    ):
        client_secret = private_key(CLIENT_SECRET)
        server_secret = private_key(SERVER_SECRET)
        client = CurveClient(
            bytes(server_secret.public_key), bytes(client_secret.public_key), CLIENT_SECRET
        )
        server = CurveServer(SERVER_SECRET)
        steps = _handshake(
            client,
            server,
            [("Socket-Type", b"DEALER"), ("Identity", b"")],
            [("Socket-Type", b"ROUTER")],
        )
    steps += [
        ("c2s", client.encode_message([b"hello", b"world"])),
        ("c2s", client.encode_command(_body(encode_ping(100)))),
        ("s2c", server.encode_message([b"x" * 300])),
    ]
    return _conversation(b"CURVE", steps)


# ---------------------------------------------------------------------------------------
# Helpers


def trace_conversation(
    conv: Conversation, *, show_passwords: bool = False, preview: int = 32
) -> list[TraceEvent]:
    """Every event of ``conv`` fed as it was sent, then both directions closed."""
    tracer = ConversationTracer(1, preview=preview, show_passwords=show_passwords)
    events: list[TraceEvent] = []
    for direction, data in conv.steps:
        events += tracer.feed(direction, data)  # type: ignore[arg-type]
    events += tracer.close("c2s")
    events += tracer.close("s2c")
    return events


def records(events: list[TraceEvent], direction: str) -> list[Record]:
    return [e.record for e in events if e.direction == direction]  # type: ignore[misc]


def trace(data: bytes, *, splits: list[int] | None = None, **options: bool) -> list[Record]:
    """One direction fed to a fresh StreamTracer, cut at ``splits``, then closed."""
    tracer = StreamTracer(**options)
    out: list[Record] = []
    cuts = [0, *sorted(splits or []), len(data)]
    for a, b in itertools.pairwise(cuts):
        out += tracer.feed(data[a:b])
    return out + tracer.close()


def wire_total(recs: list[Record]) -> int:
    """Bytes covered by the records plus what End reports as undecoded."""
    total = 0
    for r in recs:
        if isinstance(r, Greeting | Command | Message | CurveMessage):
            total += r.wire_size
        elif isinstance(r, End):
            total += r.undecoded
    return total


def rendered(events: list[TraceEvent]) -> str:
    """Everything the three renderers make of ``events``: human, JSON and HTML."""
    human, as_json = HumanFormatter(preview=64), JsonFormatter(preview=64)
    ladder = HtmlLadder(title="t", preview=64)
    lines: list[str] = []
    for event in events:
        lines += human.format(event) + as_json.format(event)
        ladder.add(event)
    return "\n".join(lines) + ladder.render()


def curve_stream(*frames: bytes) -> bytes:
    """A CURVE client's greeting, then ``frames``."""
    return build_greeting(b"CURVE") + b"".join(frames)


def nonce(n: int) -> bytes:
    return n.to_bytes(8, "big")


def transient_public(secret: bytes) -> bytes:
    return bytes(private_key(secret).public_key)


# ---------------------------------------------------------------------------------------
# PLAIN (RFC 24)


def test_plain_handshake_field_by_field() -> None:
    events = trace_conversation(plain_conversation())
    c2s, s2c = records(events, "c2s"), records(events, "s2c")
    hello, initiate = (r for r in c2s if isinstance(r, Command))
    assert (hello.name, hello.username, hello.password_size) == ("HELLO", b"admin", 6)
    assert hello.password is None  # not kept unless asked
    assert hello.problem is None
    assert initiate.name == "INITIATE"
    assert initiate.properties == (("Socket-Type", b"DEALER"), ("Identity", b""))
    welcome, ready = (r for r in s2c if isinstance(r, Command))
    assert (welcome.name, welcome.size, welcome.data, welcome.problem) == ("WELCOME", 8, b"", None)
    assert ready.properties == (("Socket-Type", b"ROUTER"),)
    # Traffic is plain ZMTP after PLAIN: messages, not CURVE MESSAGEs.
    (request,) = (r for r in c2s if isinstance(r, Message))
    assert [f.preview for f in request.frames] == [b"hello", b"world"]
    assert request.problem is None
    for direction, recs in (("c2s", c2s), ("s2c", s2c)):
        assert not any(isinstance(r, DecodeError) for r in recs), direction
        conv_bytes = getattr(plain_conversation(), direction)
        assert wire_total(recs) == len(conv_bytes)


def test_plain_password_hidden_everywhere_by_default() -> None:
    password = b"s3cr3t-Pa55"
    events = trace_conversation(plain_conversation(password))
    out = rendered(events)
    assert "<11 octets hidden>" in out
    for form in (password.decode(), password.hex(), "s3cr3t"):
        assert form not in out
    # The records do not hold it either.
    assert password not in repr(events).encode()


def test_plain_password_shown_when_asked() -> None:
    events = trace_conversation(plain_conversation(b"secret"), show_passwords=True)
    hello = records(events, "c2s")[1]
    assert isinstance(hello, Command)
    assert (hello.username, hello.password, hello.password_size) == (b"admin", b"secret", 6)
    (line,) = HumanFormatter().body(events[2])
    assert line == "HELLO (19 B) username 'admin' password 'secret'"
    obj = JsonFormatter().to_dict(events[2])
    assert obj["password"] == {"hex": b"secret".hex(), "text": "secret"}
    assert "password_hidden" not in obj


def test_plain_hello_lines_and_json_hide_the_password() -> None:
    events = trace_conversation(plain_conversation())
    hello_event = events[2]
    (line,) = HumanFormatter().body(hello_event)
    assert line == "HELLO (19 B) username 'admin' password <6 octets hidden>"
    obj = JsonFormatter().to_dict(hello_event)
    assert obj["username"] == {"hex": b"admin".hex(), "text": "admin"}
    assert (obj["password_size"], obj["password_hidden"]) == (6, True)
    assert "password" not in obj


def test_malformed_plain_hello_shows_no_bytes_unless_asked() -> None:
    # The password length (9) overshoots: the bytes may still be the password.
    bad = encode_command(b"HELLO", b"\x05admin\x09secret")
    data = build_greeting(b"PLAIN") + bad
    (_, hello, _end) = trace(data)
    assert isinstance(hello, Command)
    assert hello.problem is not None and "malformed HELLO" in hello.problem
    assert hello.data == b""
    assert hello.username is None
    assert b"secret" not in repr(hello).encode()
    (_, shown, _end) = trace(data, show_passwords=True)
    assert isinstance(shown, Command)
    assert b"secret" in shown.data


@pytest.mark.parametrize("libzmq_error", [False, True], ids=["ours", "libzmq"])
def test_plain_error_in_both_forms(libzmq_error: bool) -> None:
    events = trace_conversation(plain_refusal(libzmq_error=libzmq_error))
    (error,) = (r for r in records(events, "s2c") if isinstance(r, Command))
    assert (error.name, error.reason) == ("ERROR", b"400")
    (line,) = HumanFormatter().body(next(e for e in events if e.record is error))
    if libzmq_error:
        # [P] 04 09 5E 'RROR' 03 '400': shown as ERROR, with a note on its name.
        assert error.size == 9
        assert error.problem is not None and "libzmq" in error.problem
        assert line.startswith("ERROR (9 B) reason '400' !! malformed name 0x5E 'RROR'")
    else:
        assert error.problem is None
        assert line == "ERROR (10 B) reason '400'"


def test_plain_welcome_must_be_empty() -> None:
    data = build_greeting(b"PLAIN", as_server=True) + encode_command(b"WELCOME", b"x")
    (_, welcome, _end) = trace(data)
    assert isinstance(welcome, Command)
    assert welcome.problem is not None and "empty" in welcome.problem


# ---------------------------------------------------------------------------------------
# CURVE (RFC 26)

#: The deterministic CURVE conversation as `decode` prints it (times and prefixes aside):
#: client HELLO 1, INITIATE 2, MESSAGEs 3-5; server READY 1, MESSAGE 2.
CURVE_GOLDEN = [
    "c2s greeting ZMTP 3.1 CURVE as-server=0, signature ff 00 00 00 00 00 00 00 00 7f "
    "(padding all zero)",
    "s2c greeting ZMTP 3.1 CURVE as-server=1, signature ff 00 00 00 00 00 00 00 00 7f "
    "(padding all zero)",
    "c2s HELLO (200 B) version 1.0, padding 72 B zero, "
    "C' oEYR4x[+:WbZ$oM0%sczLk?e=/gubgD{61lb&{0U, nonce 1, "
    "signature box 80 B (encrypted: the 64-zero signature)",
    "s2c WELCOME (168 B) long nonce 03030303030303030303030303030303, "
    "box 144 B (encrypted: S' and the cookie)",
    "c2s INITIATE (292 B) cookie 96 B, nonce 2, box 179 B (encrypted: C, the vouch, metadata 35 B)",
    "s2c READY (52 B) nonce 1, box 38 B (encrypted: metadata 22 B)",
    "c2s MESSAGE (38 B) flags 00, nonce 3, box 22 B (encrypted: flags + 5 B)",
    "c2s MESSAGE (38 B) flags 00, nonce 4, box 22 B (encrypted: flags + 5 B)",
    "c2s MESSAGE (40 B) flags 00, nonce 5, box 24 B (encrypted: flags + 7 B)",
    "s2c MESSAGE (333 B) flags 02 LONG, nonce 2, box 317 B (encrypted: flags + 300 B)",
    "c2s closed after 689 B",
    "s2c closed after 630 B",
]


def test_curve_conversation_golden_lines() -> None:
    human = HumanFormatter()
    lines = [
        f"{e.direction} {line}"
        for e in trace_conversation(curve_conversation())
        for line in human.body(e)
    ]
    assert lines == CURVE_GOLDEN


def test_curve_handshake_field_by_field() -> None:
    conv = curve_conversation()
    events = trace_conversation(conv)
    c2s, s2c = records(events, "c2s"), records(events, "s2c")
    hello, initiate = (r for r in c2s if isinstance(r, Command))
    c_prime = transient_public(CLIENT_TRANSIENT_SECRET)
    assert hello == Command(
        offset=64,
        flags=FLAG_COMMAND,
        size=200,
        name="HELLO",
        version=(1, 0),
        encrypted=True,
        padding_ok=True,
        transient_key=c_prime,
        nonce=1,
        box_size=80,
    )
    assert hello.transient_key_z85 == z85.encode(c_prime).decode()
    assert (initiate.cookie_size, initiate.nonce, initiate.box_size) == (96, 2, 292 - 9 - 104)
    assert initiate.encrypted and initiate.properties is None  # its metadata is in the box
    welcome, ready = (r for r in s2c if isinstance(r, Command))
    # The mechanism's third random draw is WELCOME's long nonce (cookie key, cookie
    # nonce, then this): 16 octets of 0x03.
    assert (welcome.long_nonce, welcome.box_size, welcome.nonce) == (b"\x03" * 16, 144, None)
    assert (ready.nonce, ready.box_size, ready.properties) == (1, 52 - 6 - 8, None)
    assert all(c.problem is None for c in (hello, welcome, initiate, ready))
    for direction in ("c2s", "s2c"):
        recs = records(events, direction)
        assert wire_total(recs) == len(getattr(conv, direction))
        assert recs[-1] == End(len(getattr(conv, direction)))


def test_every_curve_message_is_encrypted_with_increasing_nonces() -> None:
    events = trace_conversation(curve_conversation())
    c2s = [r for r in records(events, "c2s") if isinstance(r, CurveMessage)]
    s2c = [r for r in records(events, "s2c") if isinstance(r, CurveMessage)]
    assert not any(isinstance(r, Message) for e in events for r in [e.record])
    # Each part is one MESSAGE of 33 + its size (a 5-octet part: 38, RFC 26 / [P]); the
    # PING went as an inner command of 7 octets (1 + 4 + 2).
    assert [(m.nonce, m.size, m.payload_size, m.flags) for m in c2s] == [
        (3, 38, 5, 0x00),
        (4, 38, 5, 0x00),
        (5, 40, 7, 0x00),
    ]
    assert [(m.nonce, m.size, m.payload_size, m.flags) for m in s2c] == [(2, 333, 300, FLAG_LONG)]
    assert all(m.problem is None and m.data == b"" for m in c2s + s2c)
    as_json = JsonFormatter()
    objs = [as_json.to_dict(e) for e in events if isinstance(e.record, CurveMessage)]
    assert [(o["event"], o["nonce"], o["size"], o["encrypted"]) for o in objs] == [
        ("curve_message", 3, 38, True),
        ("curve_message", 4, 38, True),
        ("curve_message", 5, 40, True),
        ("curve_message", 2, 333, True),
    ]
    assert objs[-1]["flags"] == FLAG_LONG and objs[-1]["box_size"] == 317


def test_curve_json_fields() -> None:
    events = trace_conversation(curve_conversation())
    as_json = JsonFormatter()
    hello, welcome, initiate, ready = (
        as_json.to_dict(e) for e in events if isinstance(e.record, Command)
    )
    c_prime = z85.encode(transient_public(CLIENT_TRANSIENT_SECRET)).decode()
    assert {k: hello[k] for k in ("name", "version", "padding_ok", "transient_key")} == {
        "name": "HELLO",
        "version": "1.0",
        "padding_ok": True,
        "transient_key": c_prime,
    }
    assert (hello["nonce"], hello["box_size"], hello["encrypted"]) == (1, 80, True)
    assert (welcome["long_nonce"], welcome["box_size"]) == ("03" * 16, 144)
    assert (initiate["cookie_size"], initiate["nonce"]) == (96, 2)
    assert (ready["nonce"], ready["box_size"]) == (1, 38)
    assert "data" not in hello  # boxes are sized, not dumped


def test_curve_ladder_shows_encrypted_messages() -> None:
    ladder = HtmlLadder(title="curve")
    ladder.add_all(trace_conversation(curve_conversation()))
    page = ladder.render()
    assert page.count("<b>MESSAGE</b>") == 4
    assert "nonce 5" in page and "box 317 B" in page
    assert "C&#x27; oEYR4x" in page  # C' in Z85, escaped


class TestDamagedCurve:
    """Wrong sizes, wrong versions, nonces that do not increase, frames that are not
    MESSAGEs: each is a problem on its record, never an exception or a DecodeError."""

    def one(self, *frames: bytes) -> list[Command | CurveMessage]:
        recs = trace(curve_stream(*frames))
        assert not any(isinstance(r, DecodeError) for r in recs)
        assert wire_total(recs) == len(curve_stream(*frames))
        return [r for r in recs if isinstance(r, Command | CurveMessage)]

    def test_short_hello_keeps_what_fits(self) -> None:
        (hello,) = self.one(encode_command(b"HELLO", b"\x01\x00" + bytes(72) + bytes(20)))
        assert isinstance(hello, Command)
        assert hello.problem is not None and "HELLO of 100 B, not 200" in hello.problem
        assert (hello.version, hello.padding_ok, hello.transient_key) == ((1, 0), True, None)
        assert (hello.nonce, hello.box_size) == (None, None)
        assert hello.data == b"\x01\x00" + bytes(30)  # a preview from the version on

    def test_hello_version_and_padding(self) -> None:
        data = b"\x02\x01" + b"\x01" + bytes(71) + bytes(32) + nonce(1) + bytes(80)
        (hello,) = self.one(encode_command(b"HELLO", data))
        assert isinstance(hello, Command)
        assert (hello.version, hello.padding_ok, hello.nonce) == ((2, 1), False, 1)
        assert hello.problem is not None
        assert "version 2.1" in hello.problem and "padding" in hello.problem
        (line,) = HumanFormatter().body(TraceEvent(1, "c2s", hello))
        assert "padding NOT zero" in line

    def test_long_welcome(self) -> None:
        (welcome,) = self.one(encode_command(b"WELCOME", bytes(170)))
        assert isinstance(welcome, Command)
        assert welcome.problem is not None and "WELCOME of 178 B, not 168" in welcome.problem
        assert welcome.box_size == 154

    def test_short_initiate_ready_message(self) -> None:
        initiate, ready, message = self.one(
            encode_command(b"INITIATE", bytes(50)),
            encode_command(b"READY", nonce(1) + bytes(3)),
            encode_command(b"MESSAGE", nonce(2)),
        )
        assert isinstance(initiate, Command)
        assert initiate.problem is not None and "at least 257" in initiate.problem
        assert (initiate.cookie_size, initiate.nonce, initiate.data) == (50, None, bytes(32))
        assert isinstance(ready, Command)
        assert ready.problem is not None and "READY of 17 B, at least 30" in ready.problem
        assert (ready.nonce, ready.box_size) == (1, 3)
        assert isinstance(message, Command)
        assert message.problem is not None and "MESSAGE of 16 B, at least 33" in message.problem

    def test_nonces_must_increase(self) -> None:
        ready = encode_command(b"READY", nonce(5) + bytes(16))
        again = encode_frame(b"\x07MESSAGE" + nonce(5) + bytes(17))
        back = encode_frame(b"\x07MESSAGE" + nonce(2) + bytes(17))
        on = encode_frame(b"\x07MESSAGE" + nonce(9) + bytes(17))
        first, *rest = self.one(ready, again, back, on)
        assert first.problem is None
        assert [m.problem is not None for m in rest] == [True, True, False]
        assert "nonce 5 does not follow 5" in (rest[0].problem or "")
        assert "nonce 2 does not follow 5" in (rest[1].problem or "")

    def test_data_frames_that_are_not_messages(self) -> None:
        ready = encode_command(b"READY", nonce(1) + bytes(16))
        plain = encode_frame(b"hello in clear")
        more = encode_frame(b"\x07MESSAGE" + nonce(2) + bytes(17), FLAG_MORE)
        short = encode_frame(b"\x07MESSAGE" + nonce(3)[:4])
        _, clear, with_more, cut = self.one(ready, plain, more, short)
        assert isinstance(clear, CurveMessage)
        assert clear.problem is not None and "not a CURVE MESSAGE" in clear.problem
        assert (clear.nonce, clear.data) == (None, b"hello in clear")
        assert isinstance(with_more, CurveMessage)
        assert with_more.problem is not None and "MORE" in with_more.problem
        assert with_more.nonce == 2
        assert isinstance(cut, CurveMessage)
        assert cut.problem is not None and "at least 33" in cut.problem
        assert (cut.nonce, cut.box_size, cut.data) == (None, None, nonce(3)[:4])
        lines = [HumanFormatter().body(TraceEvent(1, "c2s", r))[0] for r in (clear, cut)]
        assert "data 68 65 6c 6c 6f" in lines[0]
        assert "!! " in lines[1]

    def test_message_before_the_handshake(self) -> None:
        (early,) = self.one(encode_frame(b"\x07MESSAGE" + nonce(1) + bytes(17)))
        assert isinstance(early, CurveMessage)
        assert early.problem is not None and "before" in early.problem

    def test_error_in_clear(self) -> None:
        (error,) = self.one(encode_error(b"Invalid box"))
        assert isinstance(error, Command)
        assert (error.name, error.reason, error.encrypted) == ("ERROR", b"Invalid box", False)


# ---------------------------------------------------------------------------------------
# Chunking and garbage (hypothesis)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CURVE = curve_conversation()
PLAIN = plain_conversation()
WHOLE = {
    (name, d): trace(getattr(conv, d))
    for name, conv in (("curve", CURVE), ("plain", PLAIN))
    for d in ("c2s", "s2c")
}


@SETTINGS
@given(
    which=st.sampled_from(sorted(WHOLE)),
    cuts=st.lists(st.integers(min_value=1, max_value=1200), max_size=30),
)
def test_any_chunking_gives_the_same_trace(which: tuple[str, str], cuts: list[int]) -> None:
    name, direction = which
    data = getattr(CURVE if name == "curve" else PLAIN, direction)
    splits = sorted({c for c in cuts if c < len(data)})
    assert trace(data, splits=splits) == WHOLE[which]


@SETTINGS
@given(st.data())
def test_interleaved_chunks_give_the_same_conversation(data: st.DataObject) -> None:
    """Both directions through a ConversationTracer, each cut anywhere, the pieces
    interleaved in any order that keeps each direction's own order."""
    conv = data.draw(st.sampled_from([CURVE, PLAIN]))
    pieces: dict[str, list[bytes]] = {}
    for direction in ("c2s", "s2c"):
        whole = getattr(conv, direction)
        cuts = data.draw(st.lists(st.integers(1, len(whole) - 1), max_size=12), label=direction)
        bounds = [0, *sorted(set(cuts)), len(whole)]
        pieces[direction] = [whole[a:b] for a, b in itertools.pairwise(bounds)]
    tracer = ConversationTracer(1)
    events: list[TraceEvent] = []
    while pieces["c2s"] or pieces["s2c"]:
        ready = [d for d in ("c2s", "s2c") if pieces[d]]
        direction = data.draw(st.sampled_from(ready))
        events += tracer.feed(direction, pieces[direction].pop(0))  # type: ignore[arg-type]
    events += tracer.close("c2s") + tracer.close("s2c")
    expected = trace_conversation(conv)
    for direction in ("c2s", "s2c"):
        assert records(events, direction) == records(expected, direction)


CURVE_NAMES = [b"\x05HELLO", b"\x07WELCOME", b"\x08INITIATE", b"\x05READY", b"\x07MESSAGE"]
CURVE_NAMES.append(b"\x05ERROR")
#: A CURVE client's stream up to and including INITIATE: what garbage follows.
CURVE_HANDSHAKE_C2S = curve_stream(
    *(frame for d, frame in CURVE.steps[2:] if d == "c2s" and frame[0] & FLAG_COMMAND)
)


@SETTINGS
@given(
    prefix=st.sampled_from([build_greeting(b"CURVE"), CURVE_HANDSHAKE_C2S]),
    garbage=st.one_of(
        st.binary(max_size=600),
        # Frames that parse, with bodies that may or may not be CURVE commands.
        st.lists(
            st.tuples(
                st.sampled_from([0x00, 0x01, 0x02, 0x04, 0x06, 0x05, 0x0C]),
                st.one_of(
                    st.binary(max_size=300),
                    st.tuples(st.sampled_from(CURVE_NAMES), st.binary(max_size=300)).map(
                        lambda pair: pair[0] + pair[1]
                    ),
                ),
            ),
            max_size=8,
        ).map(lambda frames: b"".join(encode_frame(body, f & ~FLAG_LONG) for f, body in frames)),
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=900), max_size=10),
)
def test_garbage_after_a_curve_greeting_gives_only_records(
    prefix: bytes, garbage: bytes, cuts: list[int]
) -> None:
    data = prefix + garbage
    splits = sorted({c for c in cuts if c < len(data)})
    recs = trace(data, splits=splits)  # never raises
    assert isinstance(recs[0], Greeting) and isinstance(recs[-1], End)
    assert all(isinstance(r, Greeting | Command | CurveMessage | DecodeError | End) for r in recs)
    assert sum(isinstance(r, DecodeError) for r in recs) <= 1
    assert wire_total(recs) == len(data)
    human, as_json = HumanFormatter(), JsonFormatter()
    for r in recs:  # and every record renders
        event = TraceEvent(1, "c2s", r)
        human.format(event)
        json.loads(as_json.format(event)[0])


# ---------------------------------------------------------------------------------------
# The grammar as an oracle (zmtp.tools.grammar)


def _command_bodies(conv: Conversation) -> list[tuple[str, bytes]]:
    out = []
    for direction, chunk in conv.steps[2:]:
        pos = 0
        while pos < len(chunk):
            flags = chunk[pos]
            head, size = (9, int.from_bytes(chunk[pos + 1 : pos + 9], "big"))
            if not flags & FLAG_LONG:
                head, size = 2, chunk[pos + 1]
            out.append((direction, chunk[pos + head : pos + head + size]))
            pos += head + size
    return out


def test_grammar_reads_the_plain_conversation_as_the_tracer_does() -> None:
    events = trace_conversation(plain_conversation(), show_passwords=True)
    commands = [e.record for e in events if isinstance(e.record, Command)]
    bodies = [b for _, b in _command_bodies(plain_conversation())][: len(commands)]
    for cmd, body in zip(commands, bodies, strict=True):
        parsed = grammar.parse_mechanism_command(b"PLAIN", body)
        assert parsed.name.decode() == cmd.name
        if cmd.name == "HELLO":
            assert (parsed.data.username, parsed.data.password) == (cmd.username, cmd.password)
        elif cmd.name in ("INITIATE", "READY"):
            got = tuple((p.name.decode(), p.value) for p in parsed.data.properties)
            assert got == cmd.properties
    # libzmq's malformed ERROR is not a command the grammar accepts.
    with pytest.raises(construct.ConstructError):
        grammar.parse_mechanism_command(b"PLAIN", LIBZMQ_PLAIN_ERROR[2:])
    with pytest.raises(construct.ConstructError):
        grammar.parse_mechanism_command(b"PLAIN", b"\x07WELCOME!")


def test_grammar_reads_the_curve_conversation_as_the_tracer_does() -> None:
    events = trace_conversation(curve_conversation())
    recs = [e.record for e in events if isinstance(e.record, Command | CurveMessage)]
    bodies = _command_bodies(curve_conversation())
    assert len(recs) == len(bodies)
    for r, (_, body) in zip(recs, bodies, strict=True):
        if isinstance(r, CurveMessage):
            parsed = grammar.CURVE_MESSAGE_BODY.parse(body).message
            assert (parsed.short_nonce, len(parsed.box)) == (r.nonce, r.box_size)
            continue
        parsed = grammar.parse_mechanism_command(b"CURVE", body)
        assert parsed.name.decode() == r.name
        data = parsed.data
        if r.name == "HELLO":
            assert (data.version.major, data.version.minor) == r.version
            assert (data.client_transient_key, data.short_nonce) == (r.transient_key, r.nonce)
            assert len(data.signature_box) == r.box_size
        elif r.name == "WELCOME":
            assert (data.long_nonce, len(data.box)) == (r.long_nonce, r.box_size)
        elif r.name == "INITIATE":
            cookie = len(data.cookie.long_nonce) + len(data.cookie.box)
            assert (cookie, data.short_nonce, len(data.box)) == (r.cookie_size, r.nonce, r.box_size)
        else:
            assert (data.short_nonce, len(data.box)) == (r.nonce, r.box_size)


CURVE_SIZES = {b"HELLO": 194, b"WELCOME": 160, b"INITIATE": 248, b"READY": 24, b"MESSAGE": 25}


@SETTINGS
@given(
    name=st.sampled_from(sorted(CURVE_SIZES)),
    delta=st.integers(min_value=-30, max_value=30),
    fill=st.sampled_from([0x00, 0x01]),
)
def test_grammar_and_tracer_agree_on_curve_command_sizes(
    name: bytes, delta: int, fill: int
) -> None:
    """A command of about the right size: the tracer finds no problem exactly when the
    grammar parses it (short nonces 1, so that they increase)."""
    size = max(CURVE_SIZES[name] + delta, 0)
    data = bytearray(bytes((fill,)) * size)
    if name == b"HELLO" and size >= 2:
        data[:2] = b"\x01\x00"
        data[2:74] = bytes(min(72, max(size - 2, 0)))
    at = {b"HELLO": 106, b"INITIATE": 96}.get(name, 0)
    if name != b"WELCOME" and size >= at + 8:
        data[at : at + 8] = nonce(1)
    body = bytes((len(name),)) + name + bytes(data)
    (_, cmd, _end) = trace(curve_stream(encode_frame(body, FLAG_COMMAND)))
    assert isinstance(cmd, Command)
    try:
        grammar.parse_mechanism_command(b"CURVE", body)
    except construct.ConstructError:
        assert cmd.problem is not None
    else:
        assert cmd.problem is None, cmd.problem


# ---------------------------------------------------------------------------------------
# --show-passwords on the command line


def write_recording(directory: Path, conv: Conversation) -> None:
    directory.mkdir()
    (directory / "conn-1-c2s.bin").write_bytes(conv.c2s)
    (directory / "conn-1-s2c.bin").write_bytes(conv.s2c)


def test_decode_cli_hides_then_shows_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = tmp_path / "rec"
    write_recording(rec, plain_conversation(b"hunter2"))
    assert cli_main(["decode", str(rec)]) == 0
    hidden = capsys.readouterr().out
    assert "password <7 octets hidden>" in hidden
    assert "hunter2" not in hidden
    assert cli_main(["decode", "--json", str(rec)]) == 0
    hidden_json = capsys.readouterr().out
    assert "hunter2" not in hidden_json and b"hunter2".hex() not in hidden_json
    assert cli_main(["decode", "--show-passwords", str(rec)]) == 0
    assert "username 'admin' password 'hunter2'" in capsys.readouterr().out
    html = tmp_path / "ladder.html"
    assert cli_main(["decode", "--html", str(html), str(rec)]) == 0
    capsys.readouterr()
    assert "hunter2" not in html.read_text()


def test_decode_paths_show_passwords(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    write_recording(rec, plain_conversation(b"hunter2"))
    for show, expected in ((False, None), (True, b"hunter2")):
        hellos = [
            e.record
            for e in decode_paths([rec], show_passwords=show)
            if isinstance(e.record, Command) and e.record.name == "HELLO"
        ]
        assert [h.password for h in hellos] == [expected]


def test_curve_recording_decodes_with_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = tmp_path / "rec"
    write_recording(rec, curve_conversation())
    assert cli_main(["decode", str(rec)]) == 0
    out = capsys.readouterr().out.splitlines()
    # Without a timeline: the client's side first, then the server's.
    expected = [line for line in CURVE_GOLDEN if line.startswith("c2s")]
    expected += [line for line in CURVE_GOLDEN if line.startswith("s2c")]
    got = [line.split(" ", 3)[2:] for line in out[1:]]  # no time, no "#1"
    assert [f"{'c2s' if a == 'c>s' else 's2c'} {b}" for a, b in got] == expected
