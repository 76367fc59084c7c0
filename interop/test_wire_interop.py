"""Wire-level interop of the sans-IO core against a real libzmq 4.3.5 (through pyzmq).

Our side is a bare :class:`zmtp.Connection` pumped over a trio stream
(``_wire_helpers.WireConnection``); the other side is a pyzmq socket whose blocking calls
run in worker threads with RCVTIMEO/SNDTIMEO set, so nothing can hang.  Cases cover both
connection directions (we connect and libzmq binds, libzmq connects and we accept) over
tcp and ipc, for DEALER, ROUTER, PUSH and PULL peers.

Nothing here waits on a clock: every wait is "until this event arrives", bounded by a
generous timeout that only turns a hang into a failure.  References to
``specs/libzmq-behaviour.md §x`` are to observed libzmq 4.3.5 behaviour.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from zmtp import (
    Connection,
    ConnectionClosed,
    GreetingReceived,
    HandshakeComplete,
    IncompatibleSocketType,
    Mechanism,
    MechanismMismatch,
    Phase,
    Pong,
    SocketType,
)
from zmtp.protocol.commands import Command, encode_ready
from zmtp.protocol.framing import FrameDecoder
from zmtp.protocol.greeting import GREETING_LEN, GreetingParser, build_greeting, greeting_head

from ._helpers import TIMEOUT, TRANSPORTS, BindZmq, Endpoint, SocketFactory, libzmq_greeting
from ._wire_helpers import WireConnection, open_stream, serve_one

zmq = pytest.importorskip("zmq")
zmq_monitor = pytest.importorskip("zmq.utils.monitor")

pytestmark = pytest.mark.interop

S = SocketType

#: (our type, libzmq's type) pairs that RFC 37 allows to talk.
PAIRS = [
    (S.DEALER, S.ROUTER),
    (S.ROUTER, S.DEALER),
    (S.PUSH, S.PULL),
    (S.PULL, S.PUSH),
    (S.DEALER, S.DEALER),
]
PAIR_IDS = [f"our_{a.name}-their_{b.name}" for a, b in PAIRS]
WE_CONNECT = "we_connect"
THEY_CONNECT = "they_connect"
SIDES = [WE_CONNECT, THEY_CONNECT]

#: The routing id our REQ/DEALER/ROUTER announces in READY.
OUR_ID = b"abc"
#: The ZMQ_IDENTITY given to libzmq DEALERs, which they announce in READY.
THEIR_ID = b"libzmq-dealer"

#: Types whose READY carries Identity, in libzmq (specs/libzmq-behaviour.md §2.4) and so
#: in ours; written out here rather than imported so that the core's table is checked,
#: not trusted.
SENDS_IDENTITY = {S.REQ, S.DEALER, S.ROUTER}
#: Types that can send data messages (the others here only receive).
SENDERS = {S.DEALER, S.ROUTER, S.PUSH}


def their_identity(theirs: SocketType) -> bytes:
    """The Identity a libzmq socket of this type announces in these tests."""
    return THEIR_ID if theirs is S.DEALER else b""


def _rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


#: Multipart messages chosen for the framing edges (RFC 37 "Framing"): empty frames,
#: the 255/256 boundary between short and long size fields, a body over 64 KiB (our
#: decoder switches to chunked collection there) and one of several MiB.
SAMPLES: list[list[bytes]] = [
    [b""],
    [b"", b"", b""],
    [b"x" * 255],
    [b"y" * 256],
    [b"a" * 254, b"b" * 255, b"c" * 256, b"d" * 257, b""],
    [b"head", _rand(64 * 1024 + 1, 1), b"tail"],
    [_rand(3 * 1024 * 1024 + 7, 2)],
]
#: Many small messages in one burst; they must arrive complete and in order.
BURST: list[list[bytes]] = [[b"%d" % i, b"burst"] for i in range(1000)]


# ---------------------------------------------------------------------------- helpers


class Lab:
    """The pyzmq fixtures of one test, bundled: makes libzmq peers and connects to them."""

    def __init__(self, make: SocketFactory, bind_zmq: BindZmq, ipc_dir: Path) -> None:
        self.make = make
        self.bind_zmq = bind_zmq
        self.ipc_dir = ipc_dir

    def bind(self, sock: Any, transport: str = "tcp") -> Endpoint:
        """Bind ``sock`` on a free tcp port or a fresh ipc path."""
        endpoint: Endpoint = self.bind_zmq(sock, transport)
        return endpoint

    @asynccontextmanager
    async def connected(
        self,
        ours: SocketType,
        theirs: SocketType,
        transport: str = "tcp",
        side: str = WE_CONNECT,
        *,
        mechanism: Mechanism | None = None,
        options: Mapping[str, int | bytes] | None = None,
    ) -> AsyncIterator[tuple[WireConnection, Any]]:
        """Yield our connection (not yet handshaken) and the libzmq socket it talks to.

        ``options`` are pyzmq socket options by name; a libzmq DEALER gets THEIR_ID,
        and our REQ/DEALER/ROUTER announces OUR_ID.  A libzmq ROUTER gets ROUTER_MANDATORY:
        by default it silently drops what it cannot route *and* what exceeds SNDHWM (a
        burst of 1000 behind a 3 MiB frame can), where mandatory makes it block or fail.
        """
        their_options = dict(options or {})
        if theirs is S.DEALER:
            their_options.setdefault("IDENTITY", THEIR_ID)
        if theirs is S.ROUTER:
            their_options.setdefault("ROUTER_MANDATORY", 1)
        sock = self.make(int(theirs), **their_options)
        routing_id = OUR_ID if ours in SENDS_IDENTITY else b""
        async with AsyncExitStack() as stack:
            if side == WE_CONNECT:
                endpoint = self.bind(sock, transport)
                with trio.fail_after(TIMEOUT):
                    stream = await open_stream(endpoint)
            else:
                endpoint, listener = await stack.enter_async_context(
                    serve_one(transport, self.ipc_dir)
                )
                sock.connect(endpoint.zmq)
                with trio.fail_after(TIMEOUT):
                    stream = await listener.accept()
            await stack.enter_async_context(stream)
            conn = Connection(ours, routing_id=routing_id, mechanism=mechanism)
            yield WireConnection(stream, conn), sock


@pytest.fixture
def lab(zmq_socket: SocketFactory, bind_zmq: BindZmq, ipc_dir: Path) -> Lab:
    """The pyzmq fixtures bundled in a :class:`Lab`."""
    return Lab(zmq_socket, bind_zmq, ipc_dir)


async def greet_holding_ready(wire: WireConnection) -> bytes:
    """Exchange greetings but keep our READY back; return it unsent.

    libzmq processes a READY that arrives with the greeting before it gets round to
    sending its own, so when it rejects ours we may never see its READY.  Holding ours
    back until libzmq's READY has arrived makes the order, and the test, deterministic.
    """
    wire.auto_flush = False
    sent = 0
    held = b""
    while True:
        # Our greeting goes out in its stages (signature, then 03 once libzmq's
        # signature is in, then the rest); whatever follows it is held back.
        queued = held + wire.conn.bytes_to_send()
        part = queued[: GREETING_LEN - sent]
        await wire.stream.send_all(part)
        sent += len(part)
        held = queued[len(part) :]
        if wire.conn.phase is not Phase.GREETING:
            return held
        await wire.receive_until(
            lambda: wire.conn.has_data_to_send or wire.conn.phase is not Phase.GREETING
        )


def envelope(theirs: SocketType) -> list[bytes]:
    """The routing frames a libzmq socket of this type adds to or expects on our messages."""
    return [OUR_ID] if theirs is S.ROUTER else []


def their_send(sock: Any, theirs: SocketType, messages: list[list[bytes]]) -> None:
    """Send from the libzmq socket (in a worker thread); a ROUTER addresses us by OUR_ID."""
    env = envelope(theirs)
    for message in messages:
        sock.send_multipart(env + message)


def their_receive(sock: Any, theirs: SocketType, count: int) -> list[list[bytes]]:
    """Receive ``count`` messages at the libzmq socket (in a worker thread).

    A ROUTER prefixes the routing id it learned from our READY: it must be OUR_ID.
    """
    env = envelope(theirs)
    out = []
    for _ in range(count):
        frames = sock.recv_multipart()
        assert frames[: len(env)] == env, f"routing envelope {frames[:1]!r}, expected {env!r}"
        out.append(frames[len(env) :])
    return out


async def we_send_they_receive(
    wire: WireConnection, sock: Any, theirs: SocketType, messages: list[list[bytes]]
) -> list[list[bytes]]:
    """Send from our side while libzmq receives concurrently (it may apply back-pressure)."""
    got: list[list[bytes]] = []

    async def receive() -> None:
        got.extend(await trio.to_thread.run_sync(their_receive, sock, theirs, len(messages)))

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            await wire.send(messages)
    return got


async def they_send_we_receive(
    wire: WireConnection, sock: Any, theirs: SocketType, messages: list[list[bytes]]
) -> list[list[bytes]]:
    """Send from libzmq while our side pumps concurrently."""
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, their_send, sock, theirs, messages)
            got = await wire.receive_messages(len(messages))
    return got


async def read_at_least(stream: trio.abc.ReceiveStream, buf: bytearray, n: int) -> None:
    """Read into ``buf`` until it holds at least ``n`` bytes (fail on EOF)."""
    with trio.fail_after(TIMEOUT):
        while len(buf) < n:
            data = await stream.receive_some(4096)
            assert data, f"EOF after {len(buf)} bytes, wanted {n}"
            buf += data


async def read_until_eof(stream: trio.abc.ReceiveStream) -> bytes:
    """Read until the peer closes (EOF or reset); return everything received."""
    buf = bytearray()
    with trio.fail_after(TIMEOUT):
        while True:
            try:
                data = await stream.receive_some(4096)
            except trio.BrokenResourceError:
                break
            if not data:
                break
            buf += data
    return bytes(buf)


def ready_golden(socket_type: bytes, *, identity: bool) -> bytes:
    """A READY command frame as libzmq encodes it, spelled out byte by byte."""
    body = b"\x05READY" + b"\x0bSocket-Type" + len(socket_type).to_bytes(4, "big") + socket_type
    if identity:
        body += b"\x08Identity" + bytes(4)
    return b"\x04" + bytes([len(body)]) + body


# ---------------------------------------------------------------------------- handshake


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=PAIR_IDS)
async def test_null_handshake_and_metadata(
    lab: Lab, ours: SocketType, theirs: SocketType, transport: str, side: str
) -> None:
    async with lab.connected(ours, theirs, transport, side) as (wire, _):
        hs = await wire.handshake()

    first, second = wire.events
    assert isinstance(first, GreetingReceived)
    assert second is hs
    greeting = first.greeting
    assert greeting.version == (3, 1)
    assert greeting.mechanism == b"NULL"
    # libzmq never sets as-server (specs/libzmq-behaviour.md §1.4), even on the side that
    # accepted.
    assert greeting.as_server is False
    assert hs.version == (3, 1)
    assert hs.socket_type is theirs
    # Exactly what libzmq sends, spelled and ordered as it spells them
    # (specs/libzmq-behaviour.md §2.4): Socket-Type always, Identity only from
    # REQ/DEALER/ROUTER, nothing else.
    expected = [("Socket-Type", theirs.name.encode())]
    if theirs in SENDS_IDENTITY:
        expected.append(("Identity", their_identity(theirs)))
    assert list(hs.metadata.items()) == expected
    assert hs.identity == their_identity(theirs)
    assert wire.conn.phase is Phase.TRAFFIC


# ---------------------------------------------------------------------------- messages


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=PAIR_IDS)
async def test_multipart_messages_byte_for_byte(
    lab: Lab, ours: SocketType, theirs: SocketType, transport: str, side: str
) -> None:
    messages = SAMPLES + BURST
    async with lab.connected(ours, theirs, transport, side) as (wire, sock):
        await wire.handshake()
        # Ours first: a libzmq ROUTER can only address us once it has attached our pipe,
        # and receiving our message proves it has (their_receive also checks OUR_ID).
        if ours in SENDERS:
            assert await we_send_they_receive(wire, sock, theirs, messages) == messages
        if theirs in SENDERS:
            assert await they_send_we_receive(wire, sock, theirs, messages) == messages
        assert wire.conn.phase is Phase.TRAFFIC
        assert not wire.closed


async def test_libzmq_router_tells_dealers_apart_by_routing_id(lab: Lab) -> None:
    # Two of our DEALERs with distinct routing ids on one libzmq ROUTER: each message
    # arrives under the id its sender announced in READY, and a reply addressed by id
    # reaches that sender only.
    router = lab.make(zmq.ROUTER, ROUTER_MANDATORY=1)
    endpoint = lab.bind(router)
    async with AsyncExitStack() as stack:
        wires = []
        for rid in (b"abc", b"\xffbinary id"):
            stream = await stack.enter_async_context(await open_stream(endpoint))
            wire = WireConnection(stream, Connection(S.DEALER, routing_id=rid))
            await wire.handshake()
            wires.append((rid, wire))
        for rid, wire in wires:
            await wire.send([[b"from", rid]])
            frames = await trio.to_thread.run_sync(router.recv_multipart)
            assert frames == [rid, b"from", rid]
        for rid, wire in reversed(wires):
            await trio.to_thread.run_sync(router.send_multipart, [rid, b"to", rid])
            assert await wire.receive_messages(1) == [[b"to", rid]]


# ---------------------------------------------------------------------------- heartbeats


@pytest.mark.parametrize("context", [b"", b"0123456789abcdef"], ids=["no_context", "16_bytes"])
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_our_ping_gets_libzmq_pong(
    lab: Lab, transport: str, side: str, context: bytes
) -> None:
    async with lab.connected(S.DEALER, S.ROUTER, transport, side) as (wire, sock):
        await wire.handshake()
        # TTL 100 ds = 10 s: libzmq arms a timer that long, well past this test.
        wire.conn.send_ping(ttl=100, context=context)
        await wire.receive_until(lambda: bool(wire.pongs()))
        assert wire.pongs() == [Pong(context)]
        # The connection still carries messages after the exchange.
        got = await we_send_they_receive(wire, sock, S.ROUTER, [[b"after ping"]])
        assert got == [[b"after ping"]]


# libzmq pings every IVL and drops a peer that stays silent for TIMEOUT after a PING
# (specs/libzmq-behaviour.md §3.2).  Waiting for more PINGs than fit in one TIMEOUT
# proves that our automatic PONGs kept us connected, without measuring time: without
# them libzmq hangs up before it has sent PINGS_BEYOND_TIMEOUT of them (the control
# test below shows it does).
HEARTBEAT_IVL_MS = 20
HEARTBEAT_TIMEOUT_MS = 1000  # generous: our PONG must get through a loaded CI box
PINGS_BEYOND_TIMEOUT = HEARTBEAT_TIMEOUT_MS // HEARTBEAT_IVL_MS + 10
HEARTBEAT_OPTIONS: dict[str, int | bytes] = {
    "HEARTBEAT_IVL": HEARTBEAT_IVL_MS,
    "HEARTBEAT_TIMEOUT": HEARTBEAT_TIMEOUT_MS,
    "HEARTBEAT_TTL": 1500,
}


@pytest.mark.parametrize("side", SIDES)
async def test_libzmq_heartbeats_answered_automatically(lab: Lab, side: str) -> None:
    async with lab.connected(S.DEALER, S.ROUTER, "tcp", side, options=HEARTBEAT_OPTIONS) as (
        wire,
        sock,
    ):
        await wire.handshake()
        await wire.receive_until(lambda: len(wire.pings()) >= PINGS_BEYOND_TIMEOUT)
        # libzmq's PING carries HEARTBEAT_TTL in deciseconds and no context.
        assert {(p.ttl, p.context) for p in wire.pings()} == {(15, b"")}
        assert not wire.closed
        # Still connected, both ways.
        assert await we_send_they_receive(wire, sock, S.ROUTER, [[b"alive"]]) == [[b"alive"]]
        assert await they_send_we_receive(wire, sock, S.ROUTER, [[b"too"]]) == [[b"too"]]


async def test_control_libzmq_drops_us_without_pongs(lab: Lab) -> None:
    # The control for the test above: same settings, but the queued PONGs are never sent.
    async with lab.connected(S.DEALER, S.ROUTER, options=HEARTBEAT_OPTIONS) as (wire, _):
        await wire.handshake()
        wire.auto_flush = False
        await wire.receive_until_closed()
    assert 1 <= len(wire.pings()) < PINGS_BEYOND_TIMEOUT
    assert wire.conn.has_data_to_send  # the PONGs we withheld


# ---------------------------------------------------------------------------- negative

INCOMPATIBLE = [(S.PUB, S.PULL), (S.PUSH, S.DEALER)]
INCOMPATIBLE_IDS = [f"our_{a.name}-their_{b.name}" for a, b in INCOMPATIBLE]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("ours", "theirs"), INCOMPATIBLE, ids=INCOMPATIBLE_IDS)
async def test_incompatible_socket_type_detected_by_us(
    lab: Lab, ours: SocketType, theirs: SocketType, transport: str, side: str
) -> None:
    async with lab.connected(ours, theirs, transport, side) as (wire, _):
        with pytest.raises(IncompatibleSocketType) as info:
            # libzmq's READY may come with the end of its greeting (then the helper
            # meets it), or after.
            await greet_holding_ready(wire)
            await wire.receive_until(lambda: wire.conn.phase is not Phase.HANDSHAKE)
        assert (info.value.ours, info.value.theirs) == (ours.name, theirs.name)
        assert wire.conn.phase is Phase.CLOSED
        # RFC 37 "Error Handling": we queued an ERROR after our (unsent) READY.  libzmq
        # takes it as a protocol error and hangs up.
        queued = wire.conn.bytes_to_send()
        error = b"\x04\x1a\x05ERROR\x13Invalid socket type"
        assert queued.endswith(error)
        assert FrameDecoder().decode(queued[: -len(error)]) in ([], [(4, queued[2 : -len(error)])])
        await wire.stream.send_all(queued)
        await read_until_eof(wire.stream)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(("ours", "theirs"), INCOMPATIBLE, ids=INCOMPATIBLE_IDS)
async def test_incompatible_socket_type_detected_by_libzmq(
    lab: Lab, ours: SocketType, theirs: SocketType, side: str
) -> None:
    # With our own check off the handshake completes on our side, and it is libzmq that
    # refuses: it sends no ERROR, it just hangs up (specs/libzmq-behaviour.md §2.5).
    async with lab.connected(ours, theirs, "tcp", side) as (wire, _):
        wire.conn.check_socket_type = False
        ready = await greet_holding_ready(wire)
        hs = await wire.handshake()
        assert hs.socket_type is theirs
        await wire.stream.send_all(ready)
        closed = await wire.receive_until_closed()
    assert closed == ConnectionClosed(clean=True)
    assert [type(e) for e in wire.events] == [GreetingReceived, HandshakeComplete, ConnectionClosed]


class FakePlain(Mechanism):
    """Test-only: announces PLAIN in its greeting and must never get further."""

    name = b"PLAIN"

    def start(self, properties: list[tuple[str, bytes]]) -> list[bytes]:
        raise AssertionError("the handshake must not start after a mechanism mismatch")

    def receive_command(self, command: Command) -> list[bytes]:
        raise AssertionError("the handshake must not start after a mechanism mismatch")


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_mechanism_mismatch_detected_by_us(lab: Lab, transport: str, side: str) -> None:
    async with lab.connected(S.PUSH, S.PULL, transport, side, mechanism=FakePlain()) as (
        wire,
        _,
    ):
        # Send our 03 alone and hold the rest: libzmq, given our whole greeting in one
        # segment, may close before finishing its own (D-14), and we would see EOF.
        wire.auto_flush = False
        await wire.flush()  # our signature
        await wire.receive_until(lambda: wire.conn.has_data_to_send)  # libzmq's is in
        await wire.stream.send_all(wire.conn.bytes_to_send()[:1])
        with pytest.raises(MechanismMismatch) as info:
            await wire.receive_until(lambda: False)
    assert (info.value.ours, info.value.theirs) == (b"PLAIN", b"NULL")
    assert wire.conn.phase is Phase.CLOSED
    assert [type(e) for e in wire.events] == []


async def test_mechanism_mismatch_detected_by_libzmq(lab: Lab) -> None:
    pull = lab.make(zmq.PULL)
    monitor = lab.make.track(pull.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL))
    endpoint = lab.bind(pull)
    async with await open_stream(endpoint) as stream:
        # A whole hand-built PLAIN greeting in one piece.
        await stream.send_all(build_greeting(b"PLAIN"))
        received = await read_until_eof(stream)
        event = await trio.to_thread.run_sync(zmq_monitor.recv_monitor_message, monitor)
    # libzmq hangs up without READY, perhaps before finishing its own greeting
    # (specs/libzmq-behaviour.md §1.4), and its monitor says why.
    assert libzmq_greeting().startswith(received)
    assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    assert event["value"] == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
    pull.disable_monitor()


# ---------------------------------------------------------------------------- greeting bytes


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("theirs", "identity", "padding"),
    [(S.PULL, b"", 1), (S.DEALER, b"abc", 4)],
    ids=["PULL", "DEALER-identity-abc"],
)
async def test_libzmq_staged_greeting(
    lab: Lab, transport: str, theirs: SocketType, identity: bytes, padding: int
) -> None:
    sock = lab.make(int(theirs), **({"IDENTITY": identity} if identity else {}))
    endpoint = lab.bind(sock, transport)
    buf = bytearray()
    async with await open_stream(endpoint) as stream:
        # 1. Before we send anything libzmq sends its 10-byte signature, and no more: the
        #    next byte waits for our signature (specs/libzmq-behaviour.md §1.2).
        await read_at_least(stream, buf, 10)
        assert bytes(buf) == b"\xff" + padding.to_bytes(8, "big") + b"\x7f"
        # 2. Our signature alone earns exactly its major version.
        await stream.send_all(greeting_head()[:10])
        await read_at_least(stream, buf, 11)
        assert bytes(buf[10:]) == b"\x03"
        # 3. Our major version earns the rest of its greeting, and nothing more until
        #    our greeting is complete (READY waits for that).
        await stream.send_all(greeting_head()[10:])
        await read_at_least(stream, buf, GREETING_LEN)
    assert bytes(buf) == libzmq_greeting(identity)

    # Our parser, fed libzmq's greeting one byte at a time.
    parser = GreetingParser()
    for i in range(GREETING_LEN):
        assert parser.feed(buf[i : i + 1]) == b""
        assert parser.received == i + 1
        assert parser.major == (3 if i >= 10 else None)
        assert (parser.greeting is None) == (i < GREETING_LEN - 1)
    greeting = parser.greeting
    assert greeting is not None
    assert (greeting.version, greeting.mechanism, greeting.as_server) == ((3, 1), b"NULL", False)
    assert greeting.padding == padding.to_bytes(8, "big")


@pytest.mark.parametrize(
    ("theirs", "golden"),
    [
        # The vector recorded in specs/libzmq-behaviour.md §2.4, written out
        # independently of our encoder.
        (
            S.ROUTER,
            bytes.fromhex("0429")
            + b"\x05READY\x0bSocket-Type"
            + bytes.fromhex("00000006")
            + b"ROUTER\x08Identity"
            + bytes.fromhex("00000000"),
        ),
        (
            S.PUB,
            bytes.fromhex("0419") + b"\x05READY\x0bSocket-Type" + b"\x00\x00\x00\x03PUB",
        ),
    ],
    ids=["ROUTER", "PUB"],
)
async def test_golden_ready_from_live_libzmq(lab: Lab, theirs: SocketType, golden: bytes) -> None:
    assert golden == ready_golden(theirs.name.encode(), identity=theirs in SENDS_IDENTITY)
    peer = S.DEALER if theirs is S.ROUTER else S.SUB
    endpoint = lab.bind(lab.make(int(theirs)))
    buf = bytearray()
    async with await open_stream(endpoint) as stream:
        # Our whole greeting at once: libzmq answers with the rest of its own and READY.
        await stream.send_all(build_greeting())
        await read_at_least(stream, buf, GREETING_LEN + len(golden))
        # Finish the handshake properly rather than leave libzmq half-way.
        await stream.send_all(encode_ready([("Socket-Type", peer.wire_name)]))
    # Nothing else came before our READY: exactly libzmq's greeting, then READY.
    assert bytes(buf[:GREETING_LEN]) == libzmq_greeting()
    assert bytes(buf[GREETING_LEN:]) == golden

    # Decoding: libzmq's live bytes, one at a time, through a Connection.
    conn = Connection(peer)
    events = []
    for i in range(len(buf)):
        events += conn.receive_data(buf[i : i + 1])
    assert [type(e) for e in events] == [GreetingReceived, HandshakeComplete]
    assert conn.handshake is not None
    assert conn.handshake.socket_type is theirs
    # Encoding: our Connection of the same type sends the same READY.
    same = Connection(theirs)
    same.receive_data(libzmq_greeting())
    assert same.bytes_to_send()[GREETING_LEN:] == golden
