"""The tap between libzmq peers speaking PLAIN (RFC 24) and CURVE (RFC 26).

Each test puts the tap (in-process, port 0) between two pyzmq sockets using a security
mechanism, runs a short conversation and checks what the trace shows field by field:

* PLAIN: the username, the password hidden (human, JSON and HTML output) unless
  ``show_passwords``, the metadata of INITIATE and READY, an empty WELCOME, and
  libzmq's malformed ERROR (``04 09 5E 'RROR' 03 '400'``) read as ERROR;
* CURVE: HELLO's version, padding, C' and nonce, WELCOME's long nonce, INITIATE's
  cookie, every box sized and encrypted, and each message part as one encrypted
  MESSAGE with its nonce: the client's HELLO 1, INITIATE 2, first MESSAGE 3; the
  server's READY 1, first MESSAGE 2 (specs/libzmq-behaviour.md §4.2).

In every case the trace accounts for every byte relayed with no decode error, and the
recording decodes to the same records.  A PLAIN server needs a ZAP handler
(specs/libzmq-behaviour.md §4.1): pyzmq's ThreadAuthenticator is that here.  No sleeps:
every wait is for an event the tap saw, bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from zmtp.protocol import z85
from zmtp.protocol.metadata import encode_properties
from zmtp.tools.decode import decode_paths
from zmtp.tools.format import HumanFormatter, JsonFormatter
from zmtp.tools.html import HtmlLadder
from zmtp.tools.trace import (
    Command,
    CurveMessage,
    DecodeError,
    End,
    Greeting,
    Identity,
    LegacyGreeting,
    Message,
    Notice,
    Opened,
    Record,
    TraceEvent,
)

from ._helpers import TIMEOUT, TRANSPORTS, BindZmq, SocketFactory, ipc_path
from ._tap_helpers import Collector, LineReader, running_tap

zmq = pytest.importorskip("zmq")
thread_auth = pytest.importorskip("zmq.auth.thread")

pytestmark = pytest.mark.interop

PASSWORD = b"secret-Pa55"


@pytest.fixture
def authenticator(zmq_context: Any) -> Iterator[Any]:
    """A running ZAP handler that knows one user, admin / PASSWORD."""
    auth = thread_auth.ThreadAuthenticator(zmq_context)
    auth.start()
    auth.configure_plain(domain="*", passwords={"admin": PASSWORD.decode()})
    try:
        yield auth
    finally:
        auth.stop()


def tap_listen(transport: str, ipc_dir: Path) -> str:
    if transport == "tcp":
        return "tcp://127.0.0.1:0"
    return f"ipc://{ipc_path(ipc_dir, 'tap')}"


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await trio.to_thread.run_sync(fn, *args)


def wire_total(records: list[Record]) -> int:
    total = 0
    for r in records:
        if isinstance(r, Greeting | LegacyGreeting | Identity | Command | Message | CurveMessage):
            total += r.wire_size
        elif isinstance(r, End):
            total += r.undecoded
    return total


def check_accounting(collector: Collector, rec: Path, direction: str, conn: int = 1) -> bytes:
    """Every recorded byte is in a record, nothing failed to decode; returns the bytes."""
    recorded = (rec / f"conn-{conn}-{direction}.bin").read_bytes()
    records = collector.records(direction, conn)  # type: ignore[arg-type]
    assert not any(isinstance(r, DecodeError) for r in records), records
    assert records[-1] == End(len(recorded), undecoded=0)
    assert wire_total(records) == len(recorded)
    return recorded


def commands(records: list[Record]) -> list[Command]:
    return [r for r in records if isinstance(r, Command)]


def rendered(events: list[TraceEvent]) -> str:
    human, as_json = HumanFormatter(preview=1 << 16), JsonFormatter(preview=1 << 16)
    ladder = HtmlLadder(title="tap")
    lines: list[str] = []
    for event in events:
        lines += human.format(event) + as_json.format(event)
        ladder.add(event)
    return "\n".join(lines) + ladder.render()


def comparable(events: list[TraceEvent]) -> list[tuple[str | None, Record]]:
    return [(e.direction, e.record) for e in events if not isinstance(e.record, Opened | Notice)]


# ---------------------------------------------------------------------------------------
# PLAIN


@pytest.mark.usefixtures("authenticator")
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_plain_through_tap(
    transport: str,
    zmq_socket: SocketFactory,
    bind_zmq: BindZmq,
    ipc_dir: Path,
    tmp_path: Path,
) -> None:
    rep = zmq_socket(zmq.REP, PLAIN_SERVER=1)
    upstream = bind_zmq(rep, transport)
    rec = tmp_path / "rec"
    with trio.fail_after(TIMEOUT):
        async with running_tap(tap_listen(transport, ipc_dir), upstream.zmq, record_dir=rec) as (
            endpoint,
            collector,
            _,
        ):
            req = zmq_socket(zmq.REQ, PLAIN_USERNAME=b"admin", PLAIN_PASSWORD=PASSWORD)
            req.connect(endpoint)
            await in_thread(req.send, b"hello")
            assert await in_thread(rep.recv_multipart) == [b"hello"]
            await in_thread(rep.send, b"world")
            assert await in_thread(req.recv_multipart) == [b"world"]
            req.close(linger=0)
            await collector.wait_for(lambda c: c.closed("c2s") and c.closed("s2c"))

    check_accounting(collector, rec, "c2s")
    check_accounting(collector, rec, "s2c")
    c2s, s2c = collector.records("c2s"), collector.records("s2c")
    assert isinstance(c2s[0], Greeting) and c2s[0].mechanism == "PLAIN"
    hello, initiate = commands(c2s)
    assert (hello.name, hello.username, hello.password_size) == ("HELLO", b"admin", len(PASSWORD))
    assert hello.password is None
    assert initiate.name == "INITIATE"
    assert initiate.properties == (("Socket-Type", b"REQ"), ("Identity", b""))
    welcome, ready = commands(s2c)
    assert (welcome.name, welcome.size, welcome.problem) == ("WELCOME", 8, None)
    assert ready.name == "READY" and ready.properties == (("Socket-Type", b"REP"),)
    assert all(c.problem is None for c in commands(c2s) + commands(s2c))
    # After PLAIN, traffic is in clear: ordinary messages.
    (request,) = (r for r in c2s if isinstance(r, Message))
    assert [f.preview for f in request.frames] == [b"", b"hello"]

    out = rendered(collector.events)
    assert f"password <{len(PASSWORD)} octets hidden>" in out
    assert PASSWORD.decode() not in out and PASSWORD.hex() not in out

    # The recording decodes to the same records, and shows the password when asked.
    assert comparable(list(decode_paths([rec], preview=1 << 16))) == comparable(collector.events)
    shown = [
        e.record
        for e in decode_paths([rec], show_passwords=True)
        if isinstance(e.record, Command) and e.record.name == "HELLO"
    ]
    assert [(h.username, h.password) for h in shown] == [(b"admin", PASSWORD)]


async def test_plain_refusal_shows_libzmqs_malformed_error(
    zmq_socket: SocketFactory, bind_zmq: BindZmq, tmp_path: Path, authenticator: Any
) -> None:
    rep = zmq_socket(zmq.REP, PLAIN_SERVER=1)
    upstream = bind_zmq(rep, "tcp")
    rec = tmp_path / "rec"
    with trio.fail_after(TIMEOUT):
        async with running_tap("tcp://127.0.0.1:0", upstream.zmq, record_dir=rec) as (
            endpoint,
            collector,
            _,
        ):
            # RECONNECT_IVL=-1: one attempt, so the tap sees one connection.
            req = zmq_socket(
                zmq.REQ, PLAIN_USERNAME=b"admin", PLAIN_PASSWORD=b"wrong", RECONNECT_IVL=-1
            )
            req.connect(endpoint)
            await collector.wait_for(lambda c: c.count("s2c", "ERROR") == 1)
            req.close(linger=0)
            await collector.wait_for(lambda c: c.closed("c2s", 1) and c.closed("s2c", 1))

    check_accounting(collector, rec, "c2s")
    recorded = check_accounting(collector, rec, "s2c")
    # [P] 04 09 5E 'RROR' 03 '400' (specs/libzmq-behaviour.md §4.1).
    assert recorded.endswith(bytes.fromhex("0409") + b"\x5eRROR\x03400")
    (hello,) = commands(collector.records("c2s", 1))
    assert (hello.username, hello.password, hello.password_size) == (b"admin", None, 5)
    (error,) = commands(collector.records("s2c", 1))
    assert (error.name, error.reason, error.size) == ("ERROR", b"400", 9)
    assert error.problem is not None and "libzmq" in error.problem
    line = next(HumanFormatter().body(e)[0] for e in collector.events if e.record is error)
    assert line.startswith("ERROR (9 B) reason '400' !! malformed name 0x5E 'RROR'")
    assert "wrong" not in rendered(collector.events)


def test_cli_tap_show_passwords(
    zmq_socket: SocketFactory, bind_zmq: BindZmq, authenticator: Any
) -> None:
    """``python -m zmtp tap --show-passwords`` prints the password it relays."""
    rep = zmq_socket(zmq.REP, PLAIN_SERVER=1)
    upstream = bind_zmq(rep, "tcp")
    args = ["tap", "tcp://127.0.0.1:0", upstream.zmq, "--show-passwords", "--color", "never"]
    with subprocess.Popen(
        [sys.executable, "-m", "zmtp", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = LineReader(proc.stdout), LineReader(proc.stderr)
        try:
            first = err.next_line(TIMEOUT) or ""
            assert first.startswith("tap: listening on "), first
            endpoint = first.split()[3].rstrip(",")
            req = zmq_socket(zmq.REQ, PLAIN_USERNAME=b"admin", PLAIN_PASSWORD=PASSWORD)
            req.connect(endpoint)
            req.send(b"hi")
            assert rep.recv_multipart() == [b"hi"]
            rep.send(b"ho")
            assert req.recv_multipart() == [b"ho"]
            req.close(linger=0)
            lines = out.until(lambda ls: sum("closed after" in x for x in ls) == 2, TIMEOUT)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(TIMEOUT) == 0, err.rest(TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(TIMEOUT)
            out.join(TIMEOUT)
            err.join(TIMEOUT)
    text = "\n".join(lines)
    size = 6 + 1 + len(b"admin") + 1 + len(PASSWORD)  # RFC 24 HELLO
    assert f"c>s HELLO ({size} B) username 'admin' password '{PASSWORD.decode()}'" in text


# ---------------------------------------------------------------------------------------
# CURVE


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_curve_through_tap(
    transport: str,
    zmq_socket: SocketFactory,
    bind_zmq: BindZmq,
    ipc_dir: Path,
    tmp_path: Path,
) -> None:
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    router = zmq_socket(zmq.ROUTER, CURVE_SERVER=1, CURVE_SECRETKEY=server_secret)
    upstream = bind_zmq(router, transport)
    rec = tmp_path / "rec"
    reply = b"x" * 300  # a LONG frame: outer flags 02
    with trio.fail_after(TIMEOUT):
        async with running_tap(tap_listen(transport, ipc_dir), upstream.zmq, record_dir=rec) as (
            endpoint,
            collector,
            _,
        ):
            dealer = zmq_socket(
                zmq.DEALER,
                CURVE_SERVERKEY=server_public,
                CURVE_PUBLICKEY=client_public,
                CURVE_SECRETKEY=client_secret,
            )
            dealer.connect(endpoint)
            await in_thread(dealer.send_multipart, [b"hello", b"world"])
            ident, *request = await in_thread(router.recv_multipart)
            assert request == [b"hello", b"world"]
            await in_thread(router.send_multipart, [ident, reply])
            assert await in_thread(dealer.recv_multipart) == [reply]
            dealer.close(linger=0)
            await collector.wait_for(lambda c: c.closed("c2s") and c.closed("s2c"))

    check_accounting(collector, rec, "c2s")
    check_accounting(collector, rec, "s2c")
    c2s, s2c = collector.records("c2s"), collector.records("s2c")
    assert isinstance(c2s[0], Greeting) and c2s[0].mechanism == "CURVE"
    assert not any(isinstance(r, Message) for r in c2s + s2c)

    # The handshake, field by field (sizes: specs/libzmq-behaviour.md §4.2).
    hello, initiate = commands(c2s)
    assert (hello.name, hello.size, hello.version, hello.padding_ok) == ("HELLO", 200, (1, 0), True)
    assert hello.transient_key is not None and len(hello.transient_key) == 32
    assert hello.transient_key_z85 == z85.encode(hello.transient_key).decode()
    assert (hello.nonce, hello.box_size) == (1, 80)
    dealer_meta = encode_properties([("Socket-Type", b"DEALER"), ("Identity", b"")])
    assert (initiate.name, initiate.cookie_size, initiate.nonce) == ("INITIATE", 96, 2)
    assert initiate.box_size == 16 + 32 + 16 + 80 + len(dealer_meta)
    assert initiate.properties is None  # encrypted
    welcome, ready = commands(s2c)
    assert (welcome.name, welcome.size, welcome.box_size) == ("WELCOME", 168, 144)
    assert welcome.long_nonce is not None and len(welcome.long_nonce) == 16
    router_meta = encode_properties([("Socket-Type", b"ROUTER"), ("Identity", b"")])
    assert (ready.name, ready.nonce, ready.box_size) == ("READY", 1, 16 + len(router_meta))
    assert ready.size == 65  # [P] READY from a ROUTER
    for cmd in (hello, initiate, welcome, ready):
        assert cmd.encrypted and cmd.problem is None

    # Every part is one encrypted MESSAGE in a data frame, nonces counting on.
    sent = [r for r in c2s if isinstance(r, CurveMessage)]
    back = [r for r in s2c if isinstance(r, CurveMessage)]
    assert [(m.nonce, m.size, m.flags, m.payload_size) for m in sent] == [
        (3, 38, 0x00, 5),  # [P] a 5-byte part is a 38-byte MESSAGE
        (4, 38, 0x00, 5),
    ]
    assert [(m.nonce, m.size, m.flags, m.payload_size) for m in back] == [(2, 333, 0x02, 300)]
    assert all(m.problem is None for m in sent + back)

    human = HumanFormatter()
    lines = [human.body(e)[0] for e in collector.events if isinstance(e.record, CurveMessage)]
    assert lines == [
        "MESSAGE (38 B) flags 00, nonce 3, box 22 B (encrypted: flags + 5 B)",
        "MESSAGE (38 B) flags 00, nonce 4, box 22 B (encrypted: flags + 5 B)",
        "MESSAGE (333 B) flags 02 LONG, nonce 2, box 317 B (encrypted: flags + 300 B)",
    ]
    text = rendered(collector.events)
    assert b"hello".hex() not in text and "'hello'" not in text  # nothing in clear

    # The recording decodes to the same records.
    assert comparable(list(decode_paths([rec], preview=1 << 16))) == comparable(collector.events)
