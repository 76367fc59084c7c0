"""The per-connection state machine (zmtp.protocol.connection), sans-IO.

Peer bytes are built with the construct grammar (``zmtp.tools.grammar``), independently of
the encoders under test, wherever that is practical.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.protocol.commands import encode_ready
from zmtp.protocol.connection import Connection, Phase
from zmtp.protocol.errors import (
    HandshakeError,
    IncompatibleSocketType,
    LocalProtocolError,
    MechanismMismatch,
    MessageTooLarge,
    PeerError,
    ProtocolError,
    RemoteProtocolError,
    VersionError,
)
from zmtp.protocol.events import (
    Cancel,
    ConnectionClosed,
    ErrorReceived,
    Event,
    GreetingReceived,
    HandshakeComplete,
    Messages,
    Ping,
    Pong,
    Subscribe,
    UnknownCommand,
)
from zmtp.protocol.framing import LARGE_PAYLOAD, FrameDecoder
from zmtp.protocol.greeting import Greeting, LegacyGreeting, signature
from zmtp.protocol.socket_types import SocketType
from zmtp.tools import grammar

from ._helpers import split_at

# --------------------------------------------------------------------------- helpers

#: libzmq 4.3.5's greeting as sent by a socket without identity (padding = 0 + 1).
LIBZMQ_PADDING = (1).to_bytes(8, "big")


def peer_greeting(
    mechanism: bytes = b"NULL", *, major: int = 3, minor: int = 1, as_server: bool = False
) -> bytes:
    return grammar.build_greeting(
        mechanism, major=major, minor=minor, as_server=as_server, padding=LIBZMQ_PADDING
    )


def ready(*props: tuple[bytes, bytes]) -> bytes:
    """A READY command frame built by the grammar."""
    return grammar.build_command(
        b"READY", {"properties": [{"name": n, "value": v} for n, v in props]}
    )


def command(name: bytes, data: Any = b"") -> bytes:
    return grammar.build_command(name, data)


def frames(*bodies: bytes) -> bytes:
    """One multipart data message."""
    last = len(bodies) - 1
    return b"".join(grammar.build_frame(b, more=i < last) for i, b in enumerate(bodies))


def ping(ttl: int = 0, context: bytes = b"") -> bytes:
    return command(b"PING", {"ttl": ttl, "context": context})


def pong(context: bytes = b"") -> bytes:
    return command(b"PONG", {"context": context})


def error(reason: bytes) -> bytes:
    return command(b"ERROR", {"reason": reason})


def sent_frames(conn: Connection, *, skip_greeting: bool = False) -> list[tuple[int, bytes]]:
    """Everything the connection queued, decoded as frames."""
    raw = conn.bytes_to_send()
    if skip_greeting:
        raw = raw[64:]
    return FrameDecoder().decode(raw)


def in_handshake(ours: SocketType = SocketType.DEALER, **kwargs: Any) -> Connection:
    conn = Connection(ours, **kwargs)
    conn.receive_data(peer_greeting())
    conn.bytes_to_send()
    return conn


def in_traffic(
    ours: SocketType = SocketType.DEALER,
    peer: bytes = b"ROUTER",
    *,
    minor: int = 1,
    major: int = 3,
    **kwargs: Any,
) -> Connection:
    conn = Connection(ours, **kwargs)
    events = conn.receive_data(
        peer_greeting(major=major, minor=minor) + ready((b"Socket-Type", peer))
    )
    assert isinstance(events[-1], HandshakeComplete)
    conn.bytes_to_send()
    return conn


def closed() -> Connection:
    conn = in_traffic()
    conn.receive_data(b"")
    return conn


def flatten(events: list[Event]) -> list[Any]:
    """Events with every ``Messages`` batch expanded to one entry per message, so that
    streams fed in different pieces (hence batched differently) can be compared."""
    out: list[Any] = []
    for ev in events:
        if isinstance(ev, Messages):
            out += [("message", m) for m in ev.messages]
        else:
            out.append(ev)
    return out


def pump(a: Connection, b: Connection, *, step: int | None = None) -> tuple[list[Any], list[Any]]:
    """Move bytes between two connections until neither has anything to send.

    With ``step``, bytes are delivered ``step`` at a time, alternating directions.
    """
    ev_a: list[Any] = []
    ev_b: list[Any] = []
    pending_ab = b""
    pending_ba = b""
    while True:
        pending_ab += a.bytes_to_send()
        pending_ba += b.bytes_to_send()
        if not pending_ab and not pending_ba:
            return ev_a, ev_b
        n = step or max(len(pending_ab), len(pending_ba))
        if pending_ab:
            ev_b += b.receive_data(pending_ab[:n])
            pending_ab = pending_ab[n:]
        if pending_ba:
            ev_a += a.receive_data(pending_ba[:n])
            pending_ba = pending_ba[n:]


# --------------------------------------------------------------------------- phases


class TestPhases:
    def test_initial_state(self) -> None:
        conn = Connection(SocketType.PUSH)
        assert conn.phase is Phase.GREETING
        assert conn.peer_version is None
        assert conn.handshake is None
        assert conn.error is None
        assert conn.has_data_to_send
        # RFC 23 "Version Negotiation", as libzmq does it: the signature goes out at once,
        # its padding the routing-id length + 1 for ZMTP 1.0 peers (RFC 15); the major
        # version waits for the peer's signature (specs/libzmq-behaviour.md §1.2).
        assert conn.bytes_to_send() == signature(0) == bytes.fromhex("ff" + "00" * 7 + "017f")
        assert not conn.has_data_to_send
        assert "PUSH" in repr(conn)
        assert "GREETING" in repr(conn)

    def test_greeting_in_libzmq_stages(self) -> None:
        # libzmq sends its greeting in three pieces, each after the peer's previous
        # piece arrived (specs/libzmq-behaviour.md §1.2); neither side may wait for the
        # whole greeting.
        conn = Connection(SocketType.DEALER)
        conn.bytes_to_send()
        raw = peer_greeting()
        assert conn.receive_data(raw[:9]) == []
        assert conn.bytes_to_send() == b""
        assert conn.receive_data(raw[9:10]) == []
        # The peer's signature is versioned: our major version goes out.
        assert conn.bytes_to_send() == b"\x03"
        assert conn.receive_data(raw[10:11]) == []
        # The peer's major version is known: the rest of our greeting goes out.
        assert conn.bytes_to_send() == grammar.build_greeting()[11:]
        assert conn.phase is Phase.GREETING
        [event] = conn.receive_data(raw[11:])
        assert event == GreetingReceived(Greeting(3, 1, b"NULL", False, padding=LIBZMQ_PADDING))
        assert conn.phase is Phase.HANDSHAKE
        assert conn.peer_version == (3, 1)
        # NULL: READY straight after the greeting, before the peer's READY arrives
        # (RFC 23: each peer MUST send READY before attempting to receive one).
        assert conn.bytes_to_send() == ready((b"Socket-Type", b"DEALER"), (b"Identity", b""))
        [event] = conn.receive_data(ready((b"Socket-Type", b"ROUTER")))
        assert isinstance(event, HandshakeComplete)
        assert event.version == (3, 1)
        assert event.socket_type is SocketType.ROUTER
        assert event.metadata == {"Socket-Type": b"ROUTER"}
        assert event.identity == b""
        assert conn.handshake is event
        assert conn.phase is Phase.TRAFFIC

    def test_whole_greeting_handshake_and_traffic_in_one_chunk(self) -> None:
        conn = Connection(SocketType.PULL)
        events = conn.receive_data(
            peer_greeting() + ready((b"Socket-Type", b"PUSH")) + frames(b"a") + frames(b"b", b"")
        )
        assert [type(e) for e in events] == [GreetingReceived, HandshakeComplete, Messages]
        assert events[2] == Messages([[b"a"], [b"b", b""]])
        # RFC 23: a peer that reads a full greeting MUST send its full greeting.
        assert conn.bytes_to_send() == peer_greeting() + ready((b"Socket-Type", b"PULL"))

    def test_greeting_byte_by_byte(self) -> None:
        conn = Connection(SocketType.PULL)
        raw = peer_greeting() + ready((b"Socket-Type", b"PUSH"))
        events: list[Event] = []
        for i in range(len(raw)):
            events += conn.receive_data(raw[i : i + 1])
        assert [type(e) for e in events] == [GreetingReceived, HandshakeComplete]

    def test_as_server_is_ignored_by_null(self) -> None:
        # RFC 23 "Topology": without roles in the mechanism, as-server has no
        # significance.  We send 0 with NULL (RFC 23: MUST be zero) and accept 1.
        conn = Connection(SocketType.PAIR)
        events = conn.receive_data(peer_greeting(as_server=True) + ready((b"Socket-Type", b"PAIR")))
        assert isinstance(events[-1], HandshakeComplete)
        assert conn.bytes_to_send()[32] == 0

    @pytest.mark.parametrize(
        ("ours", "expected"),
        [
            (SocketType.DEALER, [("Socket-Type", b"DEALER"), ("Identity", b"me")]),
            (SocketType.REQ, [("Socket-Type", b"REQ"), ("Identity", b"me")]),
            (SocketType.ROUTER, [("Socket-Type", b"ROUTER"), ("Identity", b"me")]),
            (SocketType.PUB, [("Socket-Type", b"PUB")]),
            (SocketType.PULL, [("Socket-Type", b"PULL")]),
        ],
    )
    def test_our_ready(self, ours: SocketType, expected: list[tuple[str, bytes]]) -> None:
        # Exactly libzmq's spelling: Socket-Type always, Identity from REQ/DEALER/ROUTER.
        conn = Connection(ours, routing_id=b"me", metadata={"X-App": b"demo"})
        conn.receive_data(peer_greeting())
        [(_, body)] = sent_frames(conn, skip_greeting=True)
        parsed = grammar.parse_command(body)
        assert parsed.name == b"READY"
        assert [(p.name.decode(), p.value) for p in parsed.data.properties] == [
            *expected,
            ("X-App", b"demo"),
        ]

    def test_second_ready_after_handshake_is_ignored(self) -> None:
        # libzmq ignores unknown commands after the handshake, a second READY included.
        conn = in_traffic()
        events = conn.receive_data(ready((b"Socket-Type", b"PUB")))
        assert events == [
            UnknownCommand(b"READY", grammar.build_properties([(b"Socket-Type", b"PUB")]))
        ]
        assert conn.phase is Phase.TRAFFIC

    def test_unknown_command_in_traffic(self) -> None:
        conn = in_traffic()
        assert conn.receive_data(command(b"JOIN", b"group")) == [UnknownCommand(b"JOIN", b"group")]
        assert conn.phase is Phase.TRAFFIC


class TestEndOfStream:
    def test_clean_eof_in_traffic(self) -> None:
        conn = in_traffic()
        assert conn.receive_data(b"") == [ConnectionClosed(clean=True)]
        assert conn.phase is Phase.CLOSED

    def test_eof_mid_message_discards_the_partial_message(self) -> None:
        conn = in_traffic()
        assert conn.receive_data(frames(b"whole") + grammar.build_frame(b"part", more=True)) == [
            Messages([[b"whole"]])
        ]
        # Multipart messages are atomic (RFC 23/37 "Messages"): the part is dropped.
        assert conn.receive_data(b"") == [ConnectionClosed(clean=False)]

    def test_eof_mid_frame(self) -> None:
        conn = in_traffic()
        assert conn.receive_data(frames(b"abc")[:3]) == []
        assert conn.receive_data(b"") == [ConnectionClosed(clean=False)]

    @pytest.mark.parametrize(
        "make",
        [lambda: Connection(SocketType.DEALER), in_handshake],
        ids=["greeting", "handshake"],
    )
    def test_eof_before_traffic_is_unclean(self, make: Callable[[], Connection]) -> None:
        conn = make()
        assert conn.receive_data(b"") == [ConnectionClosed(clean=False)]
        assert conn.phase is Phase.CLOSED

    def test_empty_memoryview_is_eof(self) -> None:
        conn = in_traffic()
        assert conn.receive_data(memoryview(b"")) == [ConnectionClosed(clean=True)]

    @pytest.mark.parametrize(
        "make_closed",
        [
            closed,
            lambda: _after(in_traffic(), error(b"bye")),
            lambda: _after(in_handshake(), error(b"no")),
            lambda: _after(in_handshake(), frames(b"early"), raises=HandshakeError),
            lambda: _after(in_traffic(), b"\x04\x00", raises=RemoteProtocolError),
        ],
        ids=["eof", "error-in-traffic", "error-in-handshake", "handshake-error", "bad-frame"],
    )
    def test_receive_after_close_is_a_local_error(
        self, make_closed: Callable[[], Connection]
    ) -> None:
        conn = make_closed()
        assert conn.phase is Phase.CLOSED
        with pytest.raises(LocalProtocolError, match="closed"):
            conn.receive_data(frames(b"late"))
        with pytest.raises(LocalProtocolError):
            conn.receive_data(b"")
        assert conn.phase is Phase.CLOSED


def _after(conn: Connection, data: bytes, *, raises: type[Exception] | None = None) -> Connection:
    if raises is None:
        conn.receive_data(data)
    else:
        with pytest.raises(raises):
            conn.receive_data(data)
    return conn


# --------------------------------------------------------------------------- handshake errors


def error_frames(conn: Connection) -> list[bytes]:
    """Reasons of the ERROR commands the connection queued."""
    out = []
    for _, body in sent_frames(conn):
        parsed = grammar.parse_command(body)
        if parsed.name == b"ERROR":
            out.append(parsed.data.reason)
    return out


class TestHandshakeErrors:
    def test_data_before_handshake(self) -> None:
        conn = in_handshake()
        with pytest.raises(HandshakeError, match="before the handshake") as info:
            conn.receive_data(frames(b"too early"))
        assert conn.phase is Phase.CLOSED
        assert conn.error is info.value
        # RFC 23/37 "Error Handling": an ERROR command tells the peer why.
        assert error_frames(conn) == [b"Data before handshake"]

    def test_data_in_the_same_chunk_as_the_greeting(self) -> None:
        conn = Connection(SocketType.DEALER)
        conn.bytes_to_send()
        with pytest.raises(HandshakeError):
            conn.receive_data(peer_greeting() + frames(b"too early"))
        # Our greeting tail and READY were queued before the ERROR.
        raw = conn.bytes_to_send()
        assert raw.startswith(grammar.build_greeting()[10:])
        assert FrameDecoder().decode(raw[54:])[-1] == (4, b"\x05ERROR\x15Data before handshake")

    @pytest.mark.parametrize(
        "frame",
        [ping(), pong(), command(b"SUBSCRIBE", {"topic": b"x"}), command(b"HELLO")],
        ids=["ping", "pong", "subscribe", "hello"],
    )
    def test_other_commands_during_the_handshake(self, frame: bytes) -> None:
        conn = in_handshake()
        with pytest.raises(HandshakeError, match="expected READY or ERROR"):
            conn.receive_data(frame)
        assert error_frames(conn) == [b"Unexpected command"]
        assert conn.phase is Phase.CLOSED

    def test_malformed_metadata(self) -> None:
        conn = in_handshake()
        with pytest.raises(HandshakeError, match="malformed metadata"):
            conn.receive_data(command(b"READY", b"\x0bSocket-Type\x00\x00"))
        assert error_frames(conn) == [b"Malformed metadata"]

    def test_malformed_command_frame(self) -> None:
        conn = in_handshake()
        with pytest.raises(RemoteProtocolError, match="malformed command"):
            conn.receive_data(b"\x04\x02\x05R")
        assert conn.phase is Phase.CLOSED

    def test_error_from_the_peer_during_the_handshake(self) -> None:
        # RFC 23/37: an incoming ERROR is fatal; close, do not reconnect.
        conn = in_handshake()
        events = conn.receive_data(error(b"400") + frames(b"ignored"))
        assert events == [ErrorReceived(b"400")]
        assert conn.phase is Phase.CLOSED
        assert isinstance(conn.error, PeerError)
        assert conn.error.reason == b"400"
        assert conn.error.fatal
        assert conn.bytes_to_send() == b""  # no ERROR in reply to an ERROR

    def test_error_in_the_same_chunk_as_the_greeting(self) -> None:
        conn = Connection(SocketType.DEALER)
        events = conn.receive_data(peer_greeting() + error(b"go away"))
        assert [type(e) for e in events] == [GreetingReceived, ErrorReceived]
        assert conn.phase is Phase.CLOSED

    def test_mechanism_mismatch(self) -> None:
        conn = Connection(SocketType.DEALER)
        conn.bytes_to_send()
        with pytest.raises(MechanismMismatch, match="PLAIN") as info:
            conn.receive_data(peer_greeting(b"PLAIN"))
        assert (info.value.ours, info.value.theirs) == (b"NULL", b"PLAIN")
        assert conn.phase is Phase.CLOSED
        # RFC 23/37: MUST close.  No ERROR: there is no agreed mechanism to carry it
        # (libzmq also closes silently).  The greeting tail had gone out at byte 11.
        assert conn.bytes_to_send() == grammar.build_greeting()[10:]

    def test_version_byte_2_is_refused(self) -> None:
        # 0 and 1 are ZMTP 1.0 and 2.0 (tests/test_legacy_connection.py); 2 was never
        # a version (D-15).
        conn = Connection(SocketType.DEALER)
        conn.bytes_to_send()
        conn.receive_data(peer_greeting(major=2)[:10])
        with pytest.raises(VersionError, match=r"pre-3\.0") as info:
            conn.receive_data(peer_greeting(major=2)[10:])
        assert "version byte 2" in str(info.value)
        assert info.value.major == 2
        assert conn.phase is Phase.CLOSED
        # Refused at byte 10: only our major version went out, not the ZMTP 3 rest.
        assert conn.bytes_to_send() == b"\x03"

    def test_not_zmtp_at_all(self) -> None:
        # Whatever does not start with FF is a ZMTP 1.0 peer by RFC 15's detection,
        # as libzmq sees it: an HTTP request reads as the start of a 71-byte identity
        # frame, and the handshake timer (socket layer) ends the wait.
        conn = Connection(SocketType.DEALER)
        [event] = conn.receive_data(b"GET / HTTP/1.1\r\n")
        assert isinstance(event, GreetingReceived)
        assert isinstance(event.greeting, LegacyGreeting)
        assert conn.phase is Phase.HANDSHAKE
        # A zero length is no 1.0 frame at all: refused at once.
        conn = Connection(SocketType.DEALER)
        with pytest.raises(RemoteProtocolError, match="length 0"):
            conn.receive_data(b"\x00\x00")
        assert conn.phase is Phase.CLOSED

    def test_oversized_frame_in_the_handshake(self) -> None:
        conn = in_handshake(max_message_size=100)
        with pytest.raises(MessageTooLarge):
            conn.receive_data(b"\x06" + (1 << 30).to_bytes(8, "big"))
        assert conn.phase is Phase.CLOSED


# --------------------------------------------------------------------------- socket types

#: RFC 37 "The Socket-Type Property", spelled out independently of zmtp.protocol.socket_types.
RFC_TABLE = {
    "REQ": {"REP", "ROUTER"},
    "REP": {"REQ", "DEALER"},
    "DEALER": {"REP", "DEALER", "ROUTER"},
    "ROUTER": {"REQ", "DEALER", "ROUTER"},
    "PUB": {"SUB", "XSUB"},
    "XPUB": {"SUB", "XSUB"},
    "SUB": {"PUB", "XPUB"},
    "XSUB": {"PUB", "XPUB"},
    "PUSH": {"PULL"},
    "PULL": {"PUSH"},
    "PAIR": {"PAIR"},
}
ALL_PAIRS = list(itertools.product(sorted(RFC_TABLE), repeat=2))


class TestSocketTypes:
    def test_every_type_is_covered(self) -> None:
        assert set(RFC_TABLE) == {t.name for t in SocketType}

    @pytest.mark.parametrize(("ours", "theirs"), ALL_PAIRS, ids=[f"{a}-{b}" for a, b in ALL_PAIRS])
    def test_compatibility(self, ours: str, theirs: str) -> None:
        a = Connection(SocketType[ours])
        b = Connection(SocketType[theirs])
        if theirs in RFC_TABLE[ours]:
            ev_a, ev_b = pump(a, b)
            assert isinstance(ev_a[-1], HandshakeComplete)
            assert ev_a[-1].socket_type is SocketType[theirs]
            assert isinstance(ev_b[-1], HandshakeComplete)
            assert a.phase is b.phase is Phase.TRAFFIC
        else:
            for _ in range(3):  # signatures, major versions, greeting tails (with READY)
                a_out, b_out = a.bytes_to_send(), b.bytes_to_send()
                a.receive_data(b_out)
                b.receive_data(a_out)
            a_ready, b_ready = a.bytes_to_send(), b.bytes_to_send()
            # The table is symmetric, so both sides refuse.
            for conn, peer_ready, us, them in (
                (a, b_ready, ours, theirs),
                (b, a_ready, theirs, ours),
            ):
                with pytest.raises(IncompatibleSocketType) as info:
                    conn.receive_data(peer_ready)
                assert (info.value.ours, info.value.theirs) == (us, them)
                assert conn.phase is Phase.CLOSED
                # RFC 37: SHOULD reply with ERROR, then disconnect (libzmq only closes).
                assert error_frames(conn) == [b"Invalid socket type"]

    def test_missing_socket_type_is_accepted(self) -> None:
        # libzmq accepts a READY without properties; RFC 37 only says SHOULD send it.
        conn = in_handshake(SocketType.PULL)
        [event] = conn.receive_data(ready())
        assert isinstance(event, HandshakeComplete)
        assert event.socket_type is None
        assert event.metadata == {}

    @pytest.mark.parametrize(
        "value",
        [b"FOO", b"push", b"CLIENT", b"", b"\xff"],
        ids=["unknown", "lower-case", "rfc37-draft-type", "empty", "binary"],
    )
    def test_unknown_socket_type_is_rejected(self, value: bytes) -> None:
        conn = in_handshake(SocketType.PULL)
        with pytest.raises(IncompatibleSocketType, match="unknown Socket-Type"):
            conn.receive_data(ready((b"Socket-Type", value)))
        assert error_frames(conn) == [b"Invalid socket type"]
        assert conn.phase is Phase.CLOSED

    def test_property_name_case_is_not_significant(self) -> None:
        # RFC 37: case of names SHALL NOT be significant.  libzmq ignores a lower-case
        # "socket-type" (and so accepted PUB talking to PULL); we honour it.
        conn = in_handshake(SocketType.PULL)
        with pytest.raises(IncompatibleSocketType):
            conn.receive_data(ready((b"socket-type", b"PUB")))

    def test_checks_can_be_disabled(self) -> None:
        conn = in_handshake(SocketType.PULL, check_socket_type=False)
        [event] = conn.receive_data(ready((b"Socket-Type", b"PUB")))
        assert isinstance(event, HandshakeComplete)
        assert event.socket_type is SocketType.PUB
        conn = in_handshake(SocketType.PULL, check_socket_type=False)
        [event] = conn.receive_data(ready((b"Socket-Type", b"CLIENT")))
        assert isinstance(event, HandshakeComplete)
        assert event.socket_type is None
        assert event.metadata["Socket-Type"] == b"CLIENT"

    def test_peer_identity_and_metadata(self) -> None:
        conn = in_handshake(SocketType.ROUTER)
        [event] = conn.receive_data(
            ready((b"Socket-Type", b"DEALER"), (b"Identity", b"peer-1"), (b"X-Hello", b"world"))
        )
        assert isinstance(event, HandshakeComplete)
        assert event.identity == b"peer-1"
        assert event.metadata["x-hello"] == b"world"

    def test_identity_starting_with_zero_is_accepted(self) -> None:
        # RFC 37 reserves it, but libzmq accepts it as-is and so do we (on receipt).
        conn = in_handshake(SocketType.ROUTER)
        [event] = conn.receive_data(ready((b"Socket-Type", b"DEALER"), (b"Identity", b"\x00ab")))
        assert isinstance(event, HandshakeComplete)
        assert event.identity == b"\x00ab"


# --------------------------------------------------------------------------- versions


class TestVersions:
    def test_zmtp_3_0_peer_gets_legacy_subscriptions(self) -> None:
        conn = in_traffic(SocketType.SUB, b"PUB", minor=0)
        assert conn.peer_version == (3, 0)
        assert conn.handshake is not None
        assert conn.handshake.version == (3, 0)
        assert conn.legacy_subscriptions
        conn.send_subscribe(b"pre")
        conn.send_cancel(b"pre")
        # [P] exactly what libzmq's SUB sends a 3.0 peer.
        assert (
            conn.bytes_to_send()
            == bytes.fromhex("000401") + b"pre" + bytes.fromhex("000400") + b"pre"
        )

    def test_zmtp_3_1_peer_gets_commands(self) -> None:
        conn = in_traffic(SocketType.SUB, b"PUB", minor=1)
        assert not conn.legacy_subscriptions
        conn.send_subscribe(b"pre")
        conn.send_cancel(b"pre")
        # [P] exactly what libzmq's SUB sends a 3.1 peer.
        assert conn.bytes_to_send() == (
            bytes.fromhex("040d09") + b"SUBSCRIBEpre" + bytes.fromhex("040a06") + b"CANCELpre"
        )

    @pytest.mark.parametrize(("major", "minor"), [(3, 2), (4, 0), (255, 255)])
    def test_higher_versions_are_served_as_3_1(self, major: int, minor: int) -> None:
        # RFC 23/37: MUST accept higher versions, and talk our own protocol to them.
        conn = in_traffic(SocketType.SUB, b"PUB", major=major, minor=minor)
        assert not conn.legacy_subscriptions
        assert conn.peer_version == (major, minor)  # as announced
        assert conn.handshake is not None and conn.handshake.version == (major, minor)
        conn.send_subscribe(b"t")
        assert conn.bytes_to_send() == command(b"SUBSCRIBE", {"topic": b"t"})

    def test_greeting_event_reports_the_announced_version(self) -> None:
        conn = Connection(SocketType.SUB)
        [event] = conn.receive_data(peer_greeting(major=4, minor=2))
        assert isinstance(event, GreetingReceived)
        assert event.greeting.version == (4, 2)


# --------------------------------------------------------------------------- traffic


class TestTraffic:
    def test_messages_are_batched(self) -> None:
        conn = in_traffic()
        events = conn.receive_data(frames(b"a") + frames(b"", b"b") + frames(b"c", b"d", b"e"))
        assert events == [Messages([[b"a"], [b"", b"b"], [b"c", b"d", b"e"]])]

    def test_commands_split_batches_and_keep_their_order(self) -> None:
        conn = in_traffic(SocketType.XPUB, b"XSUB")
        events = conn.receive_data(
            frames(b"1")
            + frames(b"2")
            + command(b"SUBSCRIBE", {"topic": b"t"})
            + frames(b"3")
            + command(b"CANCEL", {"topic": b"t"})
        )
        assert events == [
            Messages([[b"1"], [b"2"]]),
            Subscribe(b"t"),
            Messages([[b"3"]]),
            Cancel(b"t"),
        ]

    def test_command_inside_a_multipart_message(self) -> None:
        conn = in_traffic()
        raw = (
            grammar.build_frame(b"head", more=True)
            + ping(10, b"c")
            + grammar.build_frame(b"", more=True)
            + pong(b"p")
            + grammar.build_frame(b"tail")
        )
        # The commands take effect at once; the message is delivered whole, after them.
        assert conn.receive_data(raw) == [
            Ping(10, b"c"),
            Pong(b"p"),
            Messages([[b"head", b"", b"tail"]]),
        ]
        assert conn.bytes_to_send() == pong(b"c")

    def test_legacy_subscriptions_stay_data(self) -> None:
        # [P] libzmq's XSUB forwards application subscriptions as data frames even on
        # 3.1; interpreting them is the socket's job.
        conn = in_traffic(SocketType.XPUB, b"XSUB")
        assert conn.receive_data(bytes.fromhex("000401") + b"pre") == [Messages([[b"\x01pre"]])]

    def test_reserved_flag_bits_are_ignored(self) -> None:
        # [P] libzmq delivered "x" for 08 01 78.
        conn = in_traffic()
        assert conn.receive_data(bytes.fromhex("080178")) == [Messages([[b"x"]])]

    def test_long_flag_with_small_size(self) -> None:
        conn = in_traffic()
        raw = b"\x02" + (2).to_bytes(8, "big") + b"ok"
        assert conn.receive_data(raw) == [Messages([[b"ok"]])]

    def test_large_frames(self) -> None:
        conn = in_traffic()
        big = bytes(range(256)) * 300  # 76800 bytes: above 64 KiB
        mid = b"m" * 300
        raw = frames(big, mid, b"")
        events: list[Event] = []
        for i in range(0, len(raw), 1000):
            events += conn.receive_data(raw[i : i + 1000])
        assert events == [Messages([[big, mid, b""]])]

    def test_error_in_traffic(self) -> None:
        conn = in_traffic()
        events = conn.receive_data(
            frames(b"before") + grammar.build_frame(b"partial", more=True) + error(b"bye")
        )
        assert events == [Messages([[b"before"]]), ErrorReceived(b"bye")]
        assert conn.phase is Phase.CLOSED
        assert isinstance(conn.error, PeerError)

    def test_frames_after_an_error_are_ignored(self) -> None:
        conn = in_traffic()
        assert conn.receive_data(error(b"bye") + frames(b"after") + ping()) == [
            ErrorReceived(b"bye")
        ]
        assert conn.bytes_to_send() == b""

    def test_malformed_command_in_traffic(self) -> None:
        conn = in_traffic()
        with pytest.raises(RemoteProtocolError, match="empty command"):
            conn.receive_data(b"\x04\x00")
        assert conn.phase is Phase.CLOSED
        assert conn.bytes_to_send() == b""  # ERROR is a handshake-phase reply only

    def test_libzmq_plain_error_frame_is_a_protocol_error(self) -> None:
        # [P] libzmq's PLAIN ERROR (04 09 5e 'RROR' 03 '400') is not a valid command.
        conn = in_traffic()
        with pytest.raises(RemoteProtocolError, match="name length 94"):
            conn.receive_data(bytes.fromhex("04095e52524f5203343030"))

    def test_message_too_large_from_the_header_alone(self) -> None:
        conn = in_traffic(max_message_size=1000)
        assert conn.max_message_size == 1000
        conn.receive_data(frames(b"x" * 1000))
        with pytest.raises(MessageTooLarge) as info:
            conn.receive_data(b"\x02" + (1001).to_bytes(8, "big"))
        assert not info.value.fatal
        assert conn.phase is Phase.CLOSED
        assert conn.error is info.value


class TestHeartbeat:
    def test_ping_is_answered_with_pong(self) -> None:
        conn = in_traffic()
        assert conn.receive_data(ping(15, b"ctx")) == [Ping(15, b"ctx")]
        assert conn.bytes_to_send() == pong(b"ctx")

    def test_libzmq_ping(self) -> None:
        # [P] libzmq with ZMQ_HEARTBEAT_TTL=1500.
        conn = in_traffic()
        assert conn.receive_data(bytes.fromhex("04070450494e47000f")) == [Ping(15, b"")]
        assert conn.bytes_to_send() == bytes.fromhex("040504504f4e47")

    def test_pong_context_is_truncated_to_16(self) -> None:
        # RFC 37: the echoed context MUST NOT exceed 16 octets.
        conn = in_traffic()
        context = bytes(range(20))
        events = conn.receive_data(command(b"PING", b"\x00\x00" + context))
        assert events == [Ping(0, context)]
        assert conn.bytes_to_send() == pong(context[:16])

    @pytest.mark.parametrize("data", [b"", b"\x01"], ids=["no-ttl", "half-ttl"])
    def test_ping_without_ttl_is_tolerated(self, data: bytes) -> None:
        conn = in_traffic()
        assert conn.receive_data(command(b"PING", data)) == [Ping(0, b"")]
        assert conn.bytes_to_send() == pong()

    def test_pong(self) -> None:
        conn = in_traffic()
        assert conn.receive_data(pong(b"mine")) == [Pong(b"mine")]
        assert conn.bytes_to_send() == b""

    def test_send_ping(self) -> None:
        conn = in_traffic()
        conn.send_ping(15)
        conn.send_ping(0xFFFF, b"0123456789abcdef")
        assert conn.bytes_to_send() == ping(15) + ping(0xFFFF, b"0123456789abcdef")


class TestSending:
    def test_send_message(self) -> None:
        conn = in_traffic()
        assert conn.send_message([b"", b"req1"]) == 4
        # [P] a libzmq REQ's request envelope.
        assert conn.bytes_to_send() == bytes.fromhex("0100") + bytes.fromhex("0004") + b"req1"

    def test_send_messages(self) -> None:
        conn = in_traffic()
        assert conn.send_messages([[b"a"], [b"b", b"c"]]) == 3
        assert conn.bytes_to_send() == frames(b"a") + frames(b"b", b"c")

    def test_large_payload_goes_out_uncopied(self) -> None:
        conn = in_traffic()
        payload = bytes(100_000)
        conn.send_message([b"h", payload])
        assert any(chunk is payload for chunk in conn.data_to_send())

    def test_send_command(self) -> None:
        conn = in_traffic()
        conn.send_command(b"JOIN", b"g")
        assert conn.bytes_to_send() == command(b"JOIN", b"g")

    def test_failed_send_does_not_corrupt_the_stream(self) -> None:
        conn = in_traffic()
        with pytest.raises(TypeError):
            conn.send_message([b"ok", "text"])  # type: ignore[list-item]
        conn.send_message([b"next"])
        assert conn.bytes_to_send() == frames(b"next")

    def test_send_error_in_handshake(self) -> None:
        conn = in_handshake()
        conn.send_error(b"denied")
        assert conn.phase is Phase.CLOSED
        assert conn.bytes_to_send() == error(b"denied")

    def test_send_error_in_traffic(self) -> None:
        conn = in_traffic()
        conn.send_error(b"bye")
        assert conn.phase is Phase.CLOSED
        assert conn.bytes_to_send() == error(b"bye")

    @pytest.mark.parametrize(
        "make", [lambda: Connection(SocketType.PUSH), closed], ids=["greeting", "closed"]
    )
    def test_send_error_needs_a_greeting_and_an_open_connection(
        self, make: Callable[[], Connection]
    ) -> None:
        with pytest.raises(LocalProtocolError):
            make().send_error(b"x")

    @pytest.mark.parametrize(
        "make",
        [lambda: Connection(SocketType.DEALER), in_handshake, closed],
        ids=["greeting", "handshake", "closed"],
    )
    @pytest.mark.parametrize(
        "send",
        [
            lambda c: c.send_message([b"x"]),
            lambda c: c.send_messages([[b"x"]]),
            lambda c: c.send_subscribe(b"t"),
            lambda c: c.send_cancel(b"t"),
            lambda c: c.send_ping(),
            lambda c: c.send_command(b"X"),
        ],
        ids=["message", "messages", "subscribe", "cancel", "ping", "command"],
    )
    def test_nothing_is_sent_outside_traffic(
        self, make: Callable[[], Connection], send: Callable[[Connection], object]
    ) -> None:
        conn = make()
        conn.bytes_to_send()
        with pytest.raises(LocalProtocolError, match="cannot send in phase"):
            send(conn)
        assert conn.bytes_to_send() == b""


# --------------------------------------------------------------------------- partial writes


def hand_back(chunks: list[Any], written: int) -> list[Any]:
    """What a transport that took only ``written`` bytes of ``chunks`` returns, as the
    engine does: a view of the partly written chunk, then the chunks after it."""
    for i, chunk in enumerate(chunks):
        n = len(chunk)
        if written >= n:
            written -= n
            continue
        return [memoryview(chunk)[written:] if written else chunk, *chunks[i + 1 :]]
    return []


def patterned(size: int) -> bytes:
    """A body whose every offset is distinguishable, so a shifted copy shows."""
    return bytes(i % 251 for i in range(size))


#: Bodies short, long (1-byte vs 8-byte size) and large (passed through uncopied).
partial_write_bodies = st.one_of(
    st.binary(max_size=12),
    st.integers(250, 300).map(patterned),
    st.integers(LARGE_PAYLOAD, LARGE_PAYLOAD + 40).map(patterned),
)
partial_write_rounds = st.lists(
    st.tuples(
        st.lists(st.lists(partial_write_bodies, min_size=1, max_size=3), max_size=3),
        st.booleans(),  # a PING (a command) queued too
        st.floats(0, 1),  # how much of the queued output the transport takes
        st.lists(st.binary(max_size=5), max_size=2),  # queued while the write was on
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=100, deadline=None)
@given(partial_write_rounds)
def test_returned_partial_write_goes_first_byte_exact(
    rounds: list[tuple[list[list[bytes]], bool, float, list[bytes]]],
) -> None:
    """Queue, take the output, "write" part of it (more may be queued meanwhile), hand
    the rest back, queue more: what reaches the wire is every frame in order, each
    byte once."""
    conn = in_traffic()
    wire = bytearray()
    expected = b""
    for msgs, with_ping, fraction, meanwhile in rounds:
        conn.send_messages(msgs)
        expected += b"".join(frames(*m) for m in msgs)
        if with_ping:
            conn.send_ping()
            expected += ping()
        chunks = conn.data_to_send()
        total = sum(len(c) for c in chunks)
        written = int(total * fraction)
        wire += b"".join(bytes(c) for c in chunks)[:written]
        for body in meanwhile:
            conn.send_message([body])
            expected += frames(body)
        conn.return_unsent(hand_back(chunks, written))
        assert conn.has_data_to_send == (written < total or bool(meanwhile))
    wire += conn.bytes_to_send()
    assert bytes(wire) == expected


def test_returned_output_precedes_what_was_queued_since() -> None:
    conn = in_traffic()
    big = patterned(LARGE_PAYLOAD + 10)
    conn.send_messages([[b"first"], [big]])
    chunks = conn.data_to_send()
    conn.send_messages([[b"second"]])  # while the write was on
    conn.return_unsent(hand_back(chunks, 3))  # the transport took 3 bytes
    out = conn.data_to_send()
    assert any(c is big for c in out)  # handed back untouched: still not copied
    assert b"".join(bytes(c) for c in out) == (frames(b"first") + frames(big))[3:] + frames(
        b"second"
    )


class TestArgumentValidation:
    @pytest.mark.parametrize(
        ("kwargs", "exc", "match"),
        [
            ({"routing_id": "abc"}, TypeError, "routing_id must be bytes"),
            ({"routing_id": b"x" * 256}, ValueError, "at most 255"),
            ({"routing_id": b"\x00abc"}, ValueError, "zero byte"),
            ({"metadata": {"Socket-Type": b"PUB"}}, ValueError, "set by the connection"),
            ({"metadata": {"identity": b"x"}}, ValueError, "set by the connection"),
            ({"metadata": {"Resource": b"x"}}, ValueError, "set by the connection"),
            ({"metadata": {"User-Id": b"x"}}, ValueError, "set by the connection"),
            ({"metadata": {"bad name": b"x"}}, ValueError, "invalid property name"),
            ({"metadata": {"X-A": "text"}}, TypeError, "must be bytes"),
            ({"max_message_size": -2}, ValueError, "max_message_size"),
            ({"max_message_size": "big"}, ValueError, "max_message_size"),
        ],
    )
    def test_constructor(self, kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
        with pytest.raises(exc, match=match):
            Connection(SocketType.DEALER, **kwargs)

    def test_unknown_socket_type(self) -> None:
        with pytest.raises(ValueError, match="99"):
            Connection(99)  # type: ignore[arg-type]

    def test_socket_type_from_int(self) -> None:
        assert Connection(5).socket_type is SocketType.DEALER  # type: ignore[arg-type]

    def test_longest_routing_id(self) -> None:
        conn = in_handshake(routing_id=b"i" * 255)
        assert conn.phase is Phase.HANDSHAKE

    @pytest.mark.parametrize(
        ("send", "exc"),
        [
            (lambda c: c.send_message(["text"]), TypeError),
            (lambda c: c.send_message([b"ok", 42]), TypeError),
            (lambda c: c.send_message([]), ValueError),
            (lambda c: c.send_ping(-1), ValueError),
            (lambda c: c.send_ping(0x10000), ValueError),
            (lambda c: c.send_ping(0, bytes(17)), ValueError),
            (lambda c: c.send_command(b""), LocalProtocolError),
            (lambda c: c.send_command(b"N" * 256), LocalProtocolError),
        ],
        ids=[
            "str",
            "int",
            "empty",
            "ttl-negative",
            "ttl-big",
            "context-17",
            "name-empty",
            "name-256",
        ],
    )
    def test_send_arguments(
        self, send: Callable[[Connection], object], exc: type[Exception]
    ) -> None:
        conn = in_traffic()
        with pytest.raises(exc):
            send(conn)
        # The connection is unharmed and nothing half-written is queued.
        assert conn.phase is Phase.TRAFFIC
        assert conn.bytes_to_send() == b""


# --------------------------------------------------------------------------- two stacks


class TestTwoConnections:
    @pytest.mark.parametrize("step", [None, 1, 7], ids=["whole", "byte-by-byte", "7-bytes"])
    def test_dealer_and_router(self, step: int | None) -> None:
        # Both sides send before reading (no deadlock, whatever the segmentation).
        dealer = Connection(SocketType.DEALER, routing_id=b"client-1", metadata={"X-Hi": b"yo"})
        router = Connection(SocketType.ROUTER)
        ev_d, ev_r = pump(dealer, router, step=step)
        assert [type(e) for e in ev_d] == [GreetingReceived, HandshakeComplete]
        assert [type(e) for e in ev_r] == [GreetingReceived, HandshakeComplete]
        assert ev_r[1].identity == b"client-1"
        assert ev_r[1].metadata["X-Hi"] == b"yo"
        assert ev_d[1].socket_type is SocketType.ROUTER

        dealer.send_message([b"", b"hello"])
        dealer.send_ping(5, b"x")
        router.send_message([b"world"])
        ev_d, ev_r = pump(dealer, router, step=step)
        assert flatten(ev_r) == [("message", [b"", b"hello"]), Ping(5, b"x")]
        assert flatten(ev_d) == [("message", [b"world"]), Pong(b"x")]

        router.receive_data(b"")
        assert dealer.receive_data(b"") == [ConnectionClosed(clean=True)]


# --------------------------------------------------------------------------- h2-style table

#: A kind of input for every phase.  The greeting is libzmq's; frames use the grammar.
INPUTS: dict[str, bytes] = {
    "greeting": peer_greeting(),
    "ready": ready((b"Socket-Type", b"ROUTER")),
    "ready-incompatible": ready((b"Socket-Type", b"PUB")),
    "error": error(b"nope"),
    "ping": ping(1, b"c"),
    "pong": pong(b"c"),
    "subscribe": command(b"SUBSCRIBE", {"topic": b"t"}),
    "cancel": command(b"CANCEL", {"topic": b"t"}),
    "unknown-command": command(b"HELLO", b"x"),
    "data": frames(b"x"),
    "multipart-data": frames(b"x", b"y"),
    "malformed-command": b"\x04\x00",
    "oversized": b"\x02" + (1 << 20).to_bytes(8, "big"),
    "eof": b"",
}

PHASE_FACTORIES: dict[Phase, Callable[[], Connection]] = {
    Phase.GREETING: lambda: Connection(SocketType.DEALER, max_message_size=1000),
    Phase.HANDSHAKE: lambda: in_handshake(max_message_size=1000),
    Phase.TRAFFIC: lambda: in_traffic(max_message_size=1000),
    Phase.CLOSED: closed,
}

G, H, T, C = Phase.GREETING, Phase.HANDSHAKE, Phase.TRAFFIC, Phase.CLOSED
#: What each (phase, input) leads to: the next phase, or the error raised (the phase is
#: then CLOSED).  Every pair of the product is listed.
EXPECTED: dict[tuple[Phase, str], Phase | type[ProtocolError]] = {
    # Before a greeting, whatever does not start with FF is an unversioned ZMTP 1.0
    # peer (RFC 15 detection, as libzmq): its bytes are 1.0 frames, the first being its
    # identity (tests/test_legacy_connection.py has the details).
    **{(G, name): T for name in INPUTS},
    (G, "greeting"): H,
    (G, "malformed-command"): H,  # a 1.0 frame of length 4, not complete yet
    (G, "data"): RemoteProtocolError,  # 00: a 1.0 length of 0
    (G, "oversized"): RemoteProtocolError,  # 02 then 00: the same
    (G, "eof"): C,
    **{(H, name): HandshakeError for name in INPUTS},
    # FF as a flags octet is a LONG command frame: its body is not a valid command.
    (H, "greeting"): RemoteProtocolError,
    (H, "ready"): T,
    (H, "ready-incompatible"): IncompatibleSocketType,
    (H, "error"): C,
    (H, "malformed-command"): RemoteProtocolError,
    (H, "oversized"): MessageTooLarge,
    (H, "eof"): C,
    **{(T, name): T for name in INPUTS},
    (T, "greeting"): RemoteProtocolError,
    (T, "error"): C,
    (T, "malformed-command"): RemoteProtocolError,
    (T, "oversized"): MessageTooLarge,
    (T, "eof"): C,
    **{(C, name): LocalProtocolError for name in INPUTS},
}
assert len(EXPECTED) == len(PHASE_FACTORIES) * len(INPUTS)

CASES = sorted(EXPECTED, key=lambda k: (list(Phase).index(k[0]), k[1]))


@pytest.mark.parametrize(("phase", "name"), CASES, ids=[f"{p.name}-{n}" for p, n in CASES])
def test_every_phase_and_input(phase: Phase, name: str) -> None:
    conn = PHASE_FACTORIES[phase]()
    assert conn.phase is phase
    conn.bytes_to_send()
    expected = EXPECTED[phase, name]
    if isinstance(expected, Phase):
        conn.receive_data(INPUTS[name])
        assert conn.phase is expected
        return
    with pytest.raises(expected) as info:
        conn.receive_data(INPUTS[name])
    assert conn.phase is Phase.CLOSED
    if isinstance(info.value, RemoteProtocolError):
        assert conn.error is info.value
        # An ERROR command goes back exactly for handshake failures in the handshake.
        errors = [b for _, b in FrameDecoder().decode(conn.bytes_to_send()) if b[1:6] == b"ERROR"]
        assert bool(errors) == (phase is H and isinstance(info.value, HandshakeError))


PHASE_ORDER = {G: 0, H: 1, T: 2, C: 3}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(sorted(INPUTS)), min_size=1, max_size=8))
def test_random_walks_only_move_forward(names: list[str]) -> None:
    # h2's pattern, on sequences: any input in any phase either lands in a valid phase
    # (never an earlier one) or raises a ProtocolError and leaves the connection CLOSED.
    conn = Connection(SocketType.DEALER, max_message_size=1000)
    for name in names:
        before = conn.phase
        try:
            conn.receive_data(INPUTS[name])
        except ProtocolError as exc:
            assert conn.phase is Phase.CLOSED
            assert isinstance(exc, LocalProtocolError) == (before is Phase.CLOSED)
        assert PHASE_ORDER[conn.phase] >= PHASE_ORDER[before]


# --------------------------------------------------------------------------- conversations

bodies = st.one_of(
    st.just(b""),
    st.binary(min_size=1, max_size=16),
    st.binary(min_size=256, max_size=300),  # long frames (> 255)
)
commands = st.one_of(
    st.tuples(st.just(b"PING"), st.integers(0, 0xFFFF), st.binary(max_size=16)),
    st.tuples(st.just(b"PONG"), st.binary(max_size=16)),
    st.tuples(st.just(b"SUBSCRIBE"), st.binary(max_size=20)),
    st.tuples(st.just(b"CANCEL"), st.binary(max_size=20)),
    st.tuples(st.just(b"X-CMD"), st.binary(max_size=20)),
)


def encode_cmd(cmd: tuple[Any, ...]) -> bytes:
    name = cmd[0]
    if name == b"PING":
        return ping(cmd[1], cmd[2])
    if name == b"PONG":
        return pong(cmd[1])
    if name in (b"SUBSCRIBE", b"CANCEL"):
        return command(name, {"topic": cmd[1]})
    return command(name, cmd[1])


def expected_cmd_event(cmd: tuple[Any, ...]) -> Event:
    name = cmd[0]
    if name == b"PING":
        return Ping(cmd[1], cmd[2])
    if name == b"PONG":
        return Pong(cmd[1])
    if name == b"SUBSCRIBE":
        return Subscribe(cmd[1])
    if name == b"CANCEL":
        return Cancel(cmd[1])
    return UnknownCommand(name, cmd[1])


@st.composite
def conversations(draw: st.DrawFn, body_strategy: st.SearchStrategy[bytes] = bodies) -> list[Any]:
    """Tokens: ("frame", body, more) and ("command", cmd); commands may fall between
    the frames of a multipart message, and the stream ends on a message boundary."""
    tokens: list[Any] = []
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            tokens.append(("command", draw(commands)))
            continue
        parts = draw(st.lists(body_strategy, min_size=1, max_size=4))
        for i, body in enumerate(parts):
            if i and draw(st.integers(0, 3)) == 0:
                tokens.append(("command", draw(commands)))
            tokens.append(("frame", body, i < len(parts) - 1))
    return tokens


def render(tokens: list[Any]) -> tuple[bytes, list[Any], bytes]:
    """The peer's byte stream, the events it must produce, and the PONGs we must send."""
    raw = [peer_greeting(), ready((b"Socket-Type", b"ROUTER"), (b"Identity", b""))]
    events: list[Any] = []
    pongs = []
    partial: list[bytes] = []
    for token in tokens:
        if token[0] == "frame":
            _, body, more = token
            raw.append(grammar.build_frame(body, more=more))
            partial.append(body)
            if not more:
                events.append(("message", partial))
                partial = []
        else:
            cmd = token[1]
            raw.append(encode_cmd(cmd))
            events.append(expected_cmd_event(cmd))
            if cmd[0] == b"PING":
                pongs.append(pong(cmd[2]))
    return b"".join(raw), events, b"".join(pongs)


def run(chunks: Iterator[bytes] | list[bytes]) -> tuple[list[Any], bytes]:
    conn = Connection(SocketType.DEALER)
    conn.bytes_to_send()
    events: list[Event] = []
    for chunk in chunks:
        events += conn.receive_data(chunk)
    events += conn.receive_data(b"")
    return flatten(events), conn.bytes_to_send()


def check_conversation(
    raw: bytes, expected: list[Any], pongs: bytes, got: list[Any], out: bytes
) -> None:
    assert [type(e) for e in got[:2]] == [GreetingReceived, HandshakeComplete]
    assert got[2:] == [*expected, ConnectionClosed(clean=True)]
    ready_out = encode_ready([("Socket-Type", b"DEALER"), ("Identity", b"")])
    assert out == grammar.build_greeting()[10:] + ready_out + pongs


@settings(max_examples=60, deadline=None)
@given(conversations(), st.lists(st.integers(0, 1 << 20), max_size=20))
def test_conversation_in_any_split(tokens: list[Any], cuts: list[int]) -> None:
    raw, expected, pongs = render(tokens)
    whole = run([raw])
    check_conversation(raw, expected, pongs, *whole)
    assert run(split_at(raw, cuts)) == whole
    assert run(raw[i : i + 1] for i in range(len(raw))) == whole


big_bodies = st.one_of(bodies, st.integers(64 * 1024, 70 * 1024).map(lambda n: b"B" * n))


@settings(max_examples=15, deadline=None)
@given(conversations(big_bodies), st.lists(st.integers(0, 1 << 20), max_size=12))
def test_conversation_with_large_frames_in_any_split(tokens: list[Any], cuts: list[int]) -> None:
    raw, expected, pongs = render(tokens)
    whole = run([raw])
    check_conversation(raw, expected, pongs, *whole)
    assert run(split_at(raw, cuts)) == whole
    # The grammar reads the same stream as the same frames.
    parsed = grammar.STREAM.parse(raw)
    assert len(parsed.frames) == 1 + len(tokens)  # READY, then one frame per token


# --------------------------------------------------------------------------- garbage

garbage = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=40),
        # Frame-shaped garbage reaches deeper: random flags, a plausible size.
        st.tuples(st.integers(0, 255), st.binary(max_size=40)).map(
            lambda t: bytes((t[0] & ~2, len(t[1]))) + t[1]
        ),
        st.tuples(st.integers(0, 255), st.binary(max_size=40)).map(
            lambda t: bytes((t[0] | 4, len(t[1]) + 1, len(t[1]) // 2)) + t[1]
        ),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([G, H, T]), garbage)
def test_garbage_only_raises_protocol_errors(phase: Phase, chunks: list[bytes]) -> None:
    conn = PHASE_FACTORIES[phase]()
    conn.bytes_to_send()
    try:
        for chunk in chunks:
            for event in conn.receive_data(chunk):
                assert isinstance(
                    event,
                    GreetingReceived
                    | HandshakeComplete
                    | Messages
                    | Subscribe
                    | Cancel
                    | Ping
                    | Pong
                    | UnknownCommand
                    | ErrorReceived,
                )
            if conn.phase is Phase.CLOSED:
                break
    except ProtocolError as exc:
        assert isinstance(exc, RemoteProtocolError)
        assert conn.phase is Phase.CLOSED
        assert conn.error is exc


# ------------------------------------------------------- wire order, whatever the split


def run_to_end(chunks: list[bytes], max_message_size: int) -> tuple[list[Any], str, str]:
    """Feed chunks until the connection ends; return its events, the type of the error
    it ended with and that error's text."""
    conn = Connection(SocketType.DEALER, max_message_size=max_message_size)
    conn.bytes_to_send()
    events: list[Event] = []
    try:
        for chunk in chunks:
            events += conn.receive_data(chunk)
            if conn.phase is Phase.CLOSED:
                break
        else:
            events += conn.receive_data(b"")
    except ProtocolError as exc:
        events += exc.events
    error = conn.error
    return flatten(events), type(error).__name__, str(error)


endings = st.sampled_from(["error", "error+oversized", "oversized", "oversized+error", "eof"])


@settings(max_examples=80, deadline=None)
@given(conversations(), endings, st.lists(st.integers(0, 1 << 20), max_size=12))
def test_the_outcome_follows_wire_order_in_any_split(
    tokens: list[Any], ending: str, cuts: list[int]
) -> None:
    # An ERROR command and a frame header over maxmsgsize, in either order, after any
    # conversation: fed whole or split anywhere, the same events and the same final
    # error (the first in wire order), so whether we reconnect cannot depend on how
    # TCP segmented the bytes.
    raw, _, _ = render(tokens)
    error_cmd = grammar.build_frame(b"\x05ERROR\x04gone", command=True)
    oversized = bytes((0x02,)) + (1 << 40).to_bytes(8, "big")  # a LONG frame, 1 TiB
    tail = {
        "error": error_cmd,
        "error+oversized": error_cmd + oversized,
        "oversized": oversized,
        "oversized+error": oversized + error_cmd,
        "eof": b"",
    }[ending]
    stream = raw + tail
    limit = 65536  # far above every body the conversation carries (at most 300 bytes)
    whole = run_to_end([stream], limit)
    assert run_to_end(split_at(stream, cuts), limit) == whole
    assert run_to_end([stream[i : i + 1] for i in range(len(stream))], limit) == whole
    kind = whole[1]
    if ending.startswith("error"):
        assert kind == "PeerError"
    elif ending.startswith("oversized"):
        assert kind == "MessageTooLarge"
    else:
        assert kind == "NoneType"
