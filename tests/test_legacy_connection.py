"""Connection with ZMTP 2.0 and 1.0 peers (RFC 15, RFC 13), served as libzmq 4.3.5
serves them (specs/libzmq-behaviour.md §8): the staged signature, detection, socket
type, identity exchange and frames, behind the same events as 3.x.

The byte sequences are those interop/test_legacy_wire_interop.py checks against libzmq.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.protocol.commands import Command
from zmtp.protocol.connection import Connection, Phase
from zmtp.protocol.errors import LocalProtocolError, RemoteProtocolError, VersionError
from zmtp.protocol.events import GreetingReceived, HandshakeComplete, Messages
from zmtp.protocol.greeting import LegacyGreeting
from zmtp.protocol.mechanisms import Mechanism, NullMechanism
from zmtp.protocol.socket_types import SocketType
from zmtp.tools import grammar


def sig(routing_id: bytes = b"") -> bytes:
    return b"\xff" + (len(routing_id) + 1).to_bytes(8, "big") + b"\x7f"


v1 = grammar.build_v1_frame
v2 = grammar.build_v2_frame


def messages(events: list[Any]) -> list[list[bytes]]:
    return [m for e in events if isinstance(e, Messages) for m in e.messages]


class StubPlain(Mechanism):
    """A non-NULL mechanism that never gets as far as a command."""

    name = b"PLAIN"

    def start(self, properties: list[tuple[str, bytes]]) -> list[bytes]:
        return []

    def receive_command(self, command: Command) -> list[bytes]:
        raise AssertionError("no command expected")


# --------------------------------------------------------------------------- ZMTP 2.0


def test_zmtp20_staging_golden() -> None:
    conn = Connection(SocketType.ROUTER, routing_id=b"SRV")
    # RFC 15: signature with padding = identity length + 1; nothing else yet.
    assert conn.bytes_to_send() == sig(b"SRV")
    assert conn.receive_data(sig(b"ID")) == []
    # The peer is versioned: our major version (libzmq's piece 2), nothing more.
    assert conn.bytes_to_send() == b"\x03"
    assert conn.receive_data(b"\x01") == []
    # Revision 1: our socket type and identity frame, never a 3.x greeting tail.
    assert conn.bytes_to_send() == b"\x06" + v2(b"SRV")
    [greeting] = conn.receive_data(b"\x05")
    assert greeting == GreetingReceived(
        LegacyGreeting(1, 5, (3).to_bytes(8, "big"), "byte 10 (revision) is 0x01")
    )
    assert conn.phase is Phase.HANDSHAKE
    events = conn.receive_data(v2(b"ID") + v2(b"a", more=True) + v2(b"b" * 256))
    assert events[0] == HandshakeComplete(
        version=(2, 0), metadata=events[0].metadata, socket_type=SocketType.DEALER, identity=b"ID"
    )
    assert events[0].metadata == {}
    assert messages(events) == [[b"a", b"b" * 256]]
    assert conn.peer_version == (2, 0) and conn.legacy_subscriptions
    assert not conn.supports_commands
    conn.send_message([b"x" * 255, b"y" * 256])
    assert conn.bytes_to_send() == v2(b"x" * 255, more=True) + v2(b"y" * 256)


def test_zmtp20_subscriptions_are_data_frames() -> None:
    conn = Connection(SocketType.SUB)
    conn.receive_data(sig() + b"\x01\x01" + v2(b""))
    conn.bytes_to_send()
    conn.send_subscribe(b"t")
    conn.send_cancel(b"t")
    assert conn.bytes_to_send() == v2(b"\x01t") + v2(b"\x00t")


def test_zmtp20_has_no_commands_either_way() -> None:
    conn = Connection(SocketType.DEALER)
    conn.receive_data(sig() + b"\x01\x05" + v2(b""))
    with pytest.raises(LocalProtocolError, match=r"ZMTP 2\.0"):
        conn.send_ping(1)
    with pytest.raises(LocalProtocolError, match=r"ZMTP 2\.0"):
        conn.send_command(b"HELLO")
    with pytest.raises(RemoteProtocolError, match="no commands") as info:
        conn.receive_data(v2(b"ok") + grammar.build_command(b"PING", {"ttl": 1, "context": b""}))
    assert messages(info.value.events) == [[b"ok"]]  # what came before is delivered
    assert conn.phase is Phase.CLOSED


def test_send_error_to_an_old_peer_only_closes() -> None:
    conn = Connection(SocketType.DEALER)
    conn.receive_data(sig() + b"\x01\x05" + v2(b""))
    conn.bytes_to_send()
    conn.send_error(b"bye")
    assert conn.bytes_to_send() == b""
    assert conn.phase is Phase.CLOSED


def test_unknown_socket_type_octet_is_not_checked() -> None:
    # libzmq never checks a 2.0 peer's socket type (specs/libzmq-behaviour.md §8).
    conn = Connection(SocketType.PUSH)
    events = conn.receive_data(sig() + b"\x01\x63" + v2(b""))
    assert events[-1].socket_type is None
    conn = Connection(SocketType.PUSH)
    events = conn.receive_data(sig() + b"\x01\x08" + v2(b""))  # PUSH to PUSH: not refused
    assert events[-1].socket_type is SocketType.PUSH


# --------------------------------------------------------------------------- ZMTP 1.0


def test_zmtp10_unversioned_golden() -> None:
    conn = Connection(SocketType.ROUTER, routing_id=b"SRV")
    conn.bytes_to_send()
    events = conn.receive_data(v1(b"ID"))
    greeting, hs = events
    assert greeting == GreetingReceived(LegacyGreeting(None, None, b"", "byte 0 is 0x03, not 0xff"))
    assert hs == HandshakeComplete((1, 0), hs.metadata, None, b"ID")
    # No 03: our signature was the identity frame's header; its body follows.
    assert conn.bytes_to_send() == b"SRV"
    assert messages(conn.receive_data(v1(b"m", more=True) + v1(b"n" * 254))) == [[b"m", b"n" * 254]]
    conn.send_message([b"a" * 253, b"b" * 254])
    assert conn.bytes_to_send() == v1(b"a" * 253, more=True) + v1(b"b" * 254)


def test_zmtp10_long_identity_is_detected_at_byte_9() -> None:
    # A 1.0 identity of 254+ bytes starts with FF too: its flags octet gives it away.
    identity = b"i" * 300
    raw = v1(identity)
    assert raw[0] == 0xFF and raw[9] == 0
    conn = Connection(SocketType.ROUTER)
    conn.bytes_to_send()
    events: list[Any] = []
    for i in range(len(raw)):
        events += conn.receive_data(raw[i : i + 1])
        if i < 9:
            assert conn.bytes_to_send() == b""  # no 03 while undecided
    assert events[0].greeting.detected_by == "bit 0 of byte 9 (0x00) is clear"
    assert events[-1].identity == identity
    assert conn.bytes_to_send() == b""  # our (empty) identity body


@pytest.mark.parametrize("ours", [SocketType.PUB, SocketType.XPUB])
def test_publisher_subscribes_an_unversioned_peer_to_everything(ours: SocketType) -> None:
    conn = Connection(ours)
    events = conn.receive_data(v1(b""))
    assert isinstance(events[-2], HandshakeComplete)
    assert events[-1] == Messages([[b"\x01"]])


def test_versioned_revision_0_gets_no_subscribe_all() -> None:
    # libzmq injects it for unversioned peers only (handshake_v1_0_unversioned).
    conn = Connection(SocketType.PUB)
    conn.bytes_to_send()
    events = conn.receive_data(sig() + b"\x00\x02" + v1(b""))
    assert events[-1] == HandshakeComplete((1, 0), events[-1].metadata, SocketType.SUB, b"")
    assert conn.bytes_to_send() == b"\x03\x01" + v1(b"")  # PUB = 1, 1.0 identity frame


def test_zmtp10_subscriber_still_sends_subscriptions() -> None:
    conn = Connection(SocketType.SUB)
    conn.receive_data(v1(b""))
    conn.bytes_to_send()
    conn.send_subscribe(b"abc")
    assert conn.bytes_to_send() == v1(b"\x01abc")


# --------------------------------------------------------------------------- security


@pytest.mark.parametrize(
    ("peer", "sent_before"),
    [(sig() + b"\x01\x05", b"\x03"), (sig() + b"\x00\x05", b"\x03"), (v1(b"x"), b"")],
    ids=["zmtp20", "zmtp10-versioned", "zmtp10"],
)
def test_no_downgrade_under_a_security_mechanism(peer: bytes, sent_before: bytes) -> None:
    conn = Connection(SocketType.DEALER, mechanism=StubPlain())
    assert conn.bytes_to_send() == sig()
    with pytest.raises(VersionError, match=r"PLAIN mechanism needs ZMTP 3\.0"):
        for i in range(len(peer)):  # byte by byte: refused as soon as it is known
            conn.receive_data(peer[i : i + 1])
    assert conn.phase is Phase.CLOSED
    assert conn.bytes_to_send() == sent_before  # neither socket type nor identity


@pytest.mark.parametrize(
    ("peer", "sent_before"),
    [(sig() + b"\x01\x05", b"\x03"), (sig() + b"\x00\x05", b"\x03"), (v1(b"x"), b"")],
    ids=["zmtp20", "zmtp10-versioned", "zmtp10"],
)
def test_no_downgrade_under_null_with_a_zap_domain(peer: bytes, sent_before: bytes) -> None:
    # Regression: NULL with a ZAP domain served a 2.0/1.0 peer, which skipped ZAP and
    # delivered its messages unauthenticated (libzmq refuses it: zap_enabled()).
    conn = Connection(SocketType.DEALER, mechanism=NullMechanism(zap=True))
    assert conn.bytes_to_send() == sig()
    with pytest.raises(VersionError, match=r"ZAP authentication .* needs ZMTP 3\.0"):
        for i in range(len(peer)):
            conn.receive_data(peer[i : i + 1])
    assert conn.phase is Phase.CLOSED
    assert conn.bytes_to_send() == sent_before


def test_null_without_a_zap_domain_still_serves_legacy_peers() -> None:
    for mech in (NullMechanism(), NullMechanism(zap=False, zap_enforce=True)):
        assert not mech.refuses_legacy_peers
        conn = Connection(SocketType.DEALER, mechanism=mech)
        conn.bytes_to_send()
        events = conn.receive_data(v1(b"") + v1(b"sneaky"))
        assert messages(events) == [[b"sneaky"]]


# --------------------------------------------------------------------------- any split


def zmtp20_conversation(identity: bytes, msgs: list[list[bytes]]) -> bytes:
    body = b"".join(v2(f, more=i < len(m) - 1) for m in msgs for i, f in enumerate(m))
    return sig(identity) + b"\x01\x05" + v2(identity) + body


@settings(max_examples=100, deadline=None)
@given(
    st.booleans(),
    st.binary(max_size=255),
    st.lists(st.lists(st.binary(max_size=300), min_size=1, max_size=3), max_size=5),
    st.lists(st.integers(0, 4000), max_size=10),
)
def test_legacy_conversation_in_any_split(
    zmtp10: bool, identity: bytes, msgs: list[list[bytes]], cuts: list[int]
) -> None:
    if zmtp10:
        raw = v1(identity) + b"".join(
            v1(f, more=i < len(m) - 1) for m in msgs for i, f in enumerate(m)
        )
    else:
        raw = zmtp20_conversation(identity, msgs)
    conn = Connection(SocketType.ROUTER, routing_id=b"me")
    events: list[Any] = []
    prev = 0
    for cut in [*sorted(c % (len(raw) + 1) for c in cuts), len(raw)]:
        if cut > prev:  # an empty read would mean EOF
            events += conn.receive_data(raw[prev:cut])
        prev = max(prev, cut)
    [hs] = [e for e in events if isinstance(e, HandshakeComplete)]
    assert hs.version == ((1, 0) if zmtp10 else (2, 0))
    assert hs.identity == identity
    assert messages(events) == msgs
    out = conn.bytes_to_send()
    # What we sent is exactly what libzmq sends such a peer.
    assert out == (sig(b"me") + b"me" if zmtp10 else sig(b"me") + b"\x03\x06" + v2(b"me"))
