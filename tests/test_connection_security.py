"""PLAIN, CURVE and ZAP wired into the connection machine (sans-IO).

Two :class:`Connection` objects are pumped into each other: the handshakes, the sealed
CURVE traffic (one MESSAGE per part, commands sealed with libzmq's inner COMMAND flag),
the ERROR rules (RFC 24/26: a client never sends ERROR; a ZAP 300 closes silently) and
the ZAP hold (RFC 27: nothing moves while the authenticator decides).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_box_easy_afternm
from nacl.public import PrivateKey

import zmtp.protocol.mechanisms.curve as curve_mod
from zmtp._native.bodies import opened_part
from zmtp.protocol import z85
from zmtp.protocol.commands import encode_command
from zmtp.protocol.connection import Connection, Phase
from zmtp.protocol.errors import (
    AuthenticationFailed,
    AuthenticationUnavailable,
    CurveMessageError,
    DecryptionFailed,
    HandshakeError,
    LocalProtocolError,
    NonceError,
    ProtocolError,
)
from zmtp.protocol.events import (
    AuthenticationRequested,
    ConnectionClosed,
    ErrorReceived,
    Event,
    HandshakeComplete,
    Messages,
    Ping,
    Pong,
    Subscribe,
)
from zmtp.protocol.framing import FrameDecoder, encode_frame
from zmtp.protocol.keys import curve_keypair
from zmtp.protocol.mechanisms import Mechanism, NullMechanism, PlainClient, PlainServer
from zmtp.protocol.mechanisms import curve as curve_module
from zmtp.protocol.mechanisms.curve import CurveClient, CurveServer
from zmtp.protocol.metadata import Metadata
from zmtp.protocol.socket_types import SocketType

from ._helpers import split_at

SERVER_PUBLIC, SERVER_SECRET = curve_keypair()
CLIENT_PUBLIC, CLIENT_SECRET = curve_keypair()


def curve_pair(**server_options: object) -> tuple[Connection, Connection]:
    client = Connection(
        SocketType.DEALER,
        mechanism=CurveClient(SERVER_PUBLIC, CLIENT_PUBLIC, CLIENT_SECRET),
    )
    server = Connection(
        SocketType.ROUTER,
        mechanism=CurveServer(SERVER_SECRET, **server_options),  # type: ignore[arg-type]
    )
    return client, server


def pump(a: Connection, b: Connection) -> tuple[list[Event], list[Event]]:
    """Exchange bytes until neither side has any; return each side's events."""
    ea: list[Event] = []
    eb: list[Event] = []
    for _ in range(20):
        moved = False
        if a.has_data_to_send and b.phase is not Phase.CLOSED:
            eb += b.receive_data(a.bytes_to_send())
            moved = True
        if b.has_data_to_send and a.phase is not Phase.CLOSED:
            ea += a.receive_data(b.bytes_to_send())
            moved = True
        if not moved:
            break
    return ea, eb


def pump_until(a: Connection, b: Connection, done: object) -> None:
    """Exchange bytes one direction at a time until ``done()`` holds (checked before
    each delivery), leaving the rest queued."""
    check = done  # a callable
    for _ in range(20):
        for src, dst in ((a, b), (b, a)):
            if check():  # type: ignore[operator]
                return
            if src.has_data_to_send and dst.phase is not Phase.CLOSED:
                dst.receive_data(src.bytes_to_send())
    raise AssertionError("condition never reached")


def kinds(events: list[Event]) -> list[type]:
    return [type(ev) for ev in events]


def messages(events: list[Event]) -> list[list[bytes]]:
    return [m for ev in events if isinstance(ev, Messages) for m in ev.messages]


def frames(data: bytes) -> list[tuple[int, bytes]]:
    return FrameDecoder().decode(data)


class TestCurveTraffic:
    def test_handshake_then_messages_both_ways(self) -> None:
        client, server = curve_pair()
        ec, es = pump(client, server)
        assert HandshakeComplete in kinds(ec) and HandshakeComplete in kinds(es)
        hs = next(ev for ev in es if isinstance(ev, HandshakeComplete))
        assert hs.mechanism == b"CURVE"
        assert hs.socket_type is SocketType.DEALER
        client.send_message([b"a", b"", b"c" * 300])
        client.send_messages([[b"one"], [b"two", b"three"]])
        assert messages(server.receive_data(client.bytes_to_send())) == [
            [b"a", b"", b"c" * 300],
            [b"one"],
            [b"two", b"three"],
        ]
        assert server.send_message([memoryview(b"reply"), bytearray(b"x")]) == 6
        assert messages(client.receive_data(server.bytes_to_send())) == [[b"reply", b"x"]]

    def test_each_part_is_its_own_frame_without_outer_more(self) -> None:
        client, server = curve_pair()
        pump(client, server)
        client.send_message([b"12345", b"x" * 1000])
        raw = client.bytes_to_send()
        wire = frames(raw)
        # libzmq's layout: 07 MESSAGE, nonce, box of flags + data; outer flags never
        # MORE nor COMMAND (00, or 02 for a long frame).
        assert raw[0] == 0x00 and raw[1] == 38
        assert raw[40] == 0x02
        assert [len(body) for _, body in wire] == [38, 8 + 8 + 16 + 1 + 1000]
        assert all(body.startswith(b"\x07MESSAGE") for _, body in wire)
        # The client's nonces continue from HELLO (1) and INITIATE (2).
        assert [int.from_bytes(body[8:16], "big") for _, body in wire] == [3, 4]

    def test_commands_travel_sealed(self) -> None:
        client, server = curve_pair()
        pump(client, server)
        server.send_ping(ttl=30, context=b"ctx")
        wire = server.bytes_to_send()
        assert b"PING" not in wire  # sealed, not a clear command
        assert wire[0] == 0x00 and len(frames(wire)) == 1
        events = client.receive_data(wire)
        assert events == [Ping(30, b"ctx")]
        # The PONG went back sealed too.
        pong = client.bytes_to_send()
        assert b"PONG" not in pong
        assert server.receive_data(pong) == [Pong(b"ctx")]
        client.send_subscribe(b"topic")
        assert server.receive_data(client.bytes_to_send()) == [Subscribe(b"topic")]

    def test_tampered_box_delivers_what_came_before_and_nothing_after(self) -> None:
        client, server = curve_pair()
        pump(client, server)
        client.send_messages([[b"first"], [b"second", b"part"], [b"third"]])
        wire = bytearray(client.bytes_to_send())
        first_len = 2 + len(frames(bytes(wire))[0][1])
        wire[first_len + 30] ^= 0x01  # inside the box of "second"
        with pytest.raises(DecryptionFailed) as info:
            server.receive_data(bytes(wire))
        assert messages(info.value.events) == [[b"first"]]
        assert server.phase is Phase.CLOSED
        # A bad MESSAGE is never answered with ERROR (RFC 26 §"MESSAGE").
        assert not server.has_data_to_send

    def test_replayed_message_is_refused(self) -> None:
        client, server = curve_pair()
        pump(client, server)
        client.send_message([b"once"])
        wire = client.bytes_to_send()
        assert messages(server.receive_data(wire)) == [[b"once"]]
        with pytest.raises(NonceError):
            server.receive_data(wire)

    def test_split_inner_message_is_not_clean_at_eof(self) -> None:
        client, server = curve_pair()
        pump(client, server)
        client.send_message([b"head", b"tail"])
        wire = client.bytes_to_send()
        first = frames(wire)[0][1]
        assert server.receive_data(wire[: 2 + len(first)]) == []
        assert server.receive_data(b"") == [ConnectionClosed(clean=False)]

    def test_large_sealed_bodies_are_read_in_place_then_opened(self) -> None:
        client, server = curve_pair()
        pump(client, server)
        client.send_messages([[b"z" * 2_000_000], [b"after"]])
        wire = client.bytes_to_send()
        assert server.receive_data(wire[:1000]) == []
        view = server.body_buffer()
        assert view is not None
        n = view.nbytes
        view[:] = wire[1000 : 1000 + n]
        assert messages(server.body_received(n)) == [[b"z" * 2_000_000]]
        assert messages(server.receive_data(wire[1000 + n :])) == [[b"after"]]

    def test_bad_parts_leave_nothing_half_sent(self) -> None:
        client, server = curve_pair()
        pump(client, server)
        with pytest.raises(TypeError):
            client.send_messages([[b"ok"], ["text"]])  # type: ignore[list-item]
        with pytest.raises(ValueError):
            client.send_messages([[b"ok"], []])
        assert not client.has_data_to_send
        client.send_message([b"after"])
        assert messages(server.receive_data(client.bytes_to_send())) == [[b"after"]]

    def test_error_after_handshake_travels_in_clear(self) -> None:
        client, server = curve_pair()
        pump(client, server)
        server.send_error(b"bye")
        assert server.bytes_to_send() == encode_command(b"ERROR", b"\x03bye")


class TestErrorRules:
    def test_curve_client_never_sends_error(self) -> None:
        client, server = curve_pair()
        # Staged greetings (signature, major, rest), then HELLO: the server has WELCOME.
        for src, dst in [(client, server), (server, client)] * 2 + [(client, server)]:
            dst.receive_data(src.bytes_to_send())
        welcome = bytearray(server.bytes_to_send())
        assert welcome[2:10] == b"\x07WELCOME"
        welcome[-1] ^= 1
        with pytest.raises(DecryptionFailed):
            client.receive_data(bytes(welcome))
        assert not client.has_data_to_send

    def test_plain_client_never_sends_error(self) -> None:
        client = Connection(SocketType.DEALER, mechanism=PlainClient(b"u", b"p"))
        server = Connection(SocketType.ROUTER, mechanism=PlainServer(authorize=lambda creds: True))
        pump_until(
            client, server, lambda: client.phase is Phase.HANDSHAKE and not client.has_data_to_send
        )
        server.bytes_to_send()
        with pytest.raises(HandshakeError):
            client.receive_data(encode_command(b"WELCOME", b"extra"))
        assert not client.has_data_to_send

    def test_curve_server_sends_error_on_a_bad_hello(self) -> None:
        client, server = curve_pair()
        pump_until(
            client,
            server,
            lambda: client.phase is Phase.HANDSHAKE and server.phase is Phase.HANDSHAKE,
        )
        server.bytes_to_send()
        hello = bytearray(client.bytes_to_send())
        hello[-1] ^= 1
        with pytest.raises(DecryptionFailed):
            server.receive_data(bytes(hello))
        # A DecryptionFailed is no HandshakeError: libzmq closes without a word too.
        assert not server.has_data_to_send

    def test_libzmq_malformed_plain_error_is_an_error(self) -> None:
        client = Connection(SocketType.DEALER, mechanism=PlainClient(b"u", b"p"))
        server = Connection(SocketType.ROUTER, mechanism=PlainServer(authorize=lambda c: True))
        pump_until(
            client, server, lambda: client.phase is Phase.HANDSHAKE and not client.has_data_to_send
        )
        server.bytes_to_send()
        # specs/libzmq-behaviour.md §4.1: 04 09 5E 'RROR' 03 '400'.
        events = client.receive_data(bytes.fromhex("04095e52524f5203343030"))
        assert events == [ErrorReceived(b"400")]
        assert client.phase is Phase.CLOSED
        assert not client.has_data_to_send


def plain_pair(**server: object) -> tuple[Connection, Connection]:
    client = Connection(SocketType.DEALER, mechanism=PlainClient(b"admin", b"secret"))
    srv = Connection(SocketType.ROUTER, mechanism=PlainServer(**server))  # type: ignore[arg-type]
    return client, srv


def ask(conn: Connection, events: list[Event]) -> AuthenticationRequested:
    asked = [ev for ev in events if isinstance(ev, AuthenticationRequested)]
    assert len(asked) == 1
    assert conn.awaiting_authentication
    return asked[0]


class TestZap:
    def test_plain_request_and_200(self) -> None:
        client, server = plain_pair()
        _, es = pump(client, server)
        request = ask(server, es)
        assert request.mechanism == b"PLAIN"
        assert request.credentials == (b"admin", b"secret")
        assert "secret" not in repr(request)
        assert not server.has_data_to_send  # no WELCOME before the verdict
        meta = Metadata([("Hello", b"world")])
        events = server.zap_reply(b"200", b"admin-id", meta)
        assert events == []
        _, es = pump(client, server)
        hs = next(ev for ev in es if isinstance(ev, HandshakeComplete))
        assert hs.user_id == b"admin-id"
        assert hs.zap_metadata == meta
        assert hs.mechanism == b"PLAIN"
        client.send_message([b"hi"])
        assert messages(server.receive_data(client.bytes_to_send())) == [[b"hi"]]

    @pytest.mark.parametrize("status", [b"400", b"500"])
    def test_plain_refusal_sends_error_with_the_code(self, status: bytes) -> None:
        client, server = plain_pair()
        _, es = pump(client, server)
        ask(server, es)
        with pytest.raises(AuthenticationFailed) as info:
            server.zap_reply(status, b"", None)
        assert info.value.status == status
        assert server.phase is Phase.CLOSED
        assert server.bytes_to_send() == encode_command(b"ERROR", b"\x03" + status)

    def test_300_closes_without_a_word(self) -> None:
        client, server = plain_pair()
        _, es = pump(client, server)
        ask(server, es)
        with pytest.raises(AuthenticationFailed) as info:
            server.zap_reply(b"300")
        assert info.value.silent
        assert not server.has_data_to_send

    def test_plain_without_handler_refuses_silently(self) -> None:
        client, server = plain_pair()
        _, es = pump(client, server)
        ask(server, es)
        with pytest.raises(AuthenticationUnavailable):
            server.zap_unavailable()
        assert not server.has_data_to_send

    def test_frames_arriving_meanwhile_are_held(self) -> None:
        client, server = plain_pair()
        pump(client, server)
        assert server.awaiting_authentication
        # The client misbehaves and sends INITIATE before WELCOME: held, not read.
        early = encode_command(b"INITIATE", b"")
        assert server.receive_data(early) == []
        # Released after the verdict, it is read in order: an INITIATE in the
        # WELCOME-sent state is what the server expects next.
        events = server.zap_reply(b"200", b"u")
        assert kinds(events) == [HandshakeComplete]

    def test_no_request_outstanding(self) -> None:
        client, server = plain_pair(authorize=lambda creds: True)
        pump(client, server)
        with pytest.raises(LocalProtocolError):
            server.zap_reply(b"200")
        with pytest.raises(LocalProtocolError):
            server.zap_unavailable()

    def test_invalid_status_code(self) -> None:
        client, server = plain_pair()
        _, es = pump(client, server)
        ask(server, es)
        with pytest.raises(LocalProtocolError):
            server.zap_reply(b"201")
        assert server.awaiting_authentication

    def test_curve_request_carries_the_client_key(self) -> None:
        client, server = curve_pair(zap=True)
        _, es = pump(client, server)
        request = ask(server, es)
        assert request.mechanism == b"CURVE"
        assert request.credentials == (z85.decode(CLIENT_PUBLIC),)
        # The server is done once READY is sent.
        (hs,) = server.zap_reply(b"200", b"curve-user")
        assert isinstance(hs, HandshakeComplete)
        ec, es = pump(client, server)
        assert HandshakeComplete in kinds(ec)
        assert hs.user_id == b"curve-user"
        client.send_message([b"sealed"])
        assert messages(server.receive_data(client.bytes_to_send())) == [[b"sealed"]]

    def test_traffic_held_behind_the_verdict_is_delivered(self) -> None:
        # A replayed or pipelined stream: INITIATE and the client's messages in one
        # read while ZAP decides.  The verdict completes the server's handshake (its
        # READY), so what was held is traffic (found by the fuzz seed libzmq-secure-2).
        stream, _ = record_client_stream(zap=True)
        with deterministic_curve():
            _, server = curve_pair(zap=True)
            events = server.receive_data(stream)
            assert kinds(events)[-1] is AuthenticationRequested
            events = server.zap_reply(b"200", b"u")
        assert kinds(events)[0] is HandshakeComplete
        assert messages(events) == [[b"a", b"b"], [b"c" * 700], [b"last"]]

    @pytest.mark.parametrize("enforce", [False, True])
    def test_curve_without_handler(self, enforce: bool) -> None:
        client, server = curve_pair(zap=True, zap_enforce=enforce)
        _, es = pump(client, server)
        ask(server, es)
        if enforce:
            with pytest.raises(AuthenticationUnavailable):
                server.zap_unavailable()
            assert not server.has_data_to_send
        else:
            server.zap_unavailable()  # Stonehouse: any key
            ec, _ = pump(client, server)
            assert HandshakeComplete in kinds(ec)

    def test_curve_refusal_reaches_the_client_as_error(self) -> None:
        client, server = curve_pair(zap=True)
        _, es = pump(client, server)
        ask(server, es)
        with pytest.raises(AuthenticationFailed):
            server.zap_reply(b"400")
        events = client.receive_data(server.bytes_to_send())
        assert events == [ErrorReceived(b"400")]

    def test_null_with_a_domain_asks_before_ready(self) -> None:
        a = Connection(SocketType.DEALER, mechanism=NullMechanism(zap=True))
        b = Connection(SocketType.ROUTER, mechanism=NullMechanism())
        ea, eb = pump(a, b)
        request = ask(a, ea)
        assert request == AuthenticationRequested(b"NULL", ())
        # b's READY arrived and is held; ours is not sent yet.
        assert HandshakeComplete not in kinds(eb)
        events = a.zap_reply(b"200", b"null-user")
        assert kinds(events) == [HandshakeComplete]
        ea, eb = pump(a, b)
        assert HandshakeComplete in kinds(eb)

    @pytest.mark.parametrize("enforce", [False, True])
    def test_null_without_handler(self, enforce: bool) -> None:
        a = Connection(SocketType.DEALER, mechanism=NullMechanism(zap=True, zap_enforce=enforce))
        b = Connection(SocketType.ROUTER)
        ea, _ = pump(a, b)
        ask(a, ea)
        if enforce:
            with pytest.raises(AuthenticationUnavailable):
                a.zap_unavailable()
            assert not a.has_data_to_send
        else:
            assert kinds(a.zap_unavailable()) == [HandshakeComplete]

    def test_null_refusal_sends_error(self) -> None:
        a = Connection(SocketType.DEALER, mechanism=NullMechanism(zap=True))
        b = Connection(SocketType.ROUTER)
        ea, _ = pump(a, b)
        ask(a, ea)
        with pytest.raises(AuthenticationFailed):
            a.zap_reply(b"500")
        assert b.receive_data(a.bytes_to_send()) == [ErrorReceived(b"500")]

    @pytest.mark.parametrize("split", [False, True])
    def test_error_before_bad_bytes_while_waiting(self, split: bool) -> None:
        # Found by the fuzzer: the peer's ERROR then a frame header announcing 2^64
        # bytes, while ZAP decides.  The ERROR is held (nothing moves before the
        # verdict); the header's error must wait behind it, or the outcome would
        # depend on whether both came in one read.
        a = Connection(SocketType.DEALER, mechanism=NullMechanism(zap=True))
        b = Connection(SocketType.ROUTER)
        ea, _ = pump(a, b)
        ask(a, ea)
        wire = encode_command(b"ERROR", b"\x03bye") + b"\x02" + b"\xff" * 8
        if split:
            a.receive_data(wire[:7])
            a.receive_data(wire[7:])
        else:
            assert a.receive_data(wire) == []
        # b's READY came first (held too), then its ERROR.
        events = a.zap_reply(b"200")
        assert kinds(events) == [HandshakeComplete, ErrorReceived]
        assert events[-1] == ErrorReceived(b"bye")
        assert a.phase is Phase.CLOSED

    def test_bad_bytes_while_waiting_fail_after_the_verdict(self) -> None:
        a = Connection(SocketType.DEALER, mechanism=NullMechanism(zap=True))
        b = Connection(SocketType.ROUTER)
        ea, _ = pump(a, b)
        ask(a, ea)
        assert a.receive_data(b"\x02" + b"\xff" * 8) == []
        assert a.receive_data(b"ignored") == []
        with pytest.raises(ProtocolError, match="exceeds"):
            a.zap_reply(b"200")
        assert a.phase is Phase.CLOSED

    def test_eof_while_waiting(self) -> None:
        client, server = plain_pair()
        _, es = pump(client, server)
        ask(server, es)
        assert server.receive_data(b"") == [ConnectionClosed(clean=False)]
        with pytest.raises(LocalProtocolError):
            server.zap_reply(b"200")


# ---------------------------------------------------------------- segmentation


@contextlib.contextmanager
def deterministic_curve() -> Iterator[None]:
    """Fixed transient keys and random octets, so that a conversation replays."""
    seeds = itertools.count(1)
    saved = curve_module._new_transient, curve_module._random
    curve_module._new_transient = lambda: PrivateKey(bytes([next(seeds)]) * 32)
    curve_module._random = bytes
    try:
        yield
    finally:
        curve_module._new_transient, curve_module._random = saved


def record_client_stream(**server_options: object) -> tuple[bytes, list[Event]]:
    """The client's whole byte stream of a CURVE conversation, and the events of a
    fresh server (same seeds) that gets it in one piece."""
    sent: list[bytes] = []
    with deterministic_curve():
        client, server = curve_pair(**server_options)
        for _ in range(10):
            if client.has_data_to_send:
                data = client.bytes_to_send()
                sent.append(data)
                server.receive_data(data)
                if server.awaiting_authentication:
                    server.zap_reply(b"200")
            if server.has_data_to_send:
                client.receive_data(server.bytes_to_send())
            if client.phase is Phase.TRAFFIC and not client.has_data_to_send:
                break
        client.send_messages([[b"a", b"b"], [b"c" * 700]])
        client.send_subscribe(b"t")
        client.send_ping(5, b"p")
        client.send_message([b"last"])
        sent.append(client.bytes_to_send())
    stream = b"".join(sent)
    if server_options:
        return stream, []
    with deterministic_curve():
        _, fresh = curve_pair()
        events = fresh.receive_data(stream) + fresh.receive_data(b"")
    return stream, events


def test_sealed_traffic_is_split_invariant() -> None:
    stream, whole = record_client_stream()
    assert messages(whole) == [[b"a", b"b"], [b"c" * 700], [b"last"]]
    assert Subscribe(b"t") in whole and Ping(5, b"p") in whole

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(min_value=1, max_value=len(stream) - 1), max_size=12))
    def check(cuts: list[int]) -> None:
        points = sorted(set(cuts))
        pieces = [stream[i:j] for i, j in zip([0, *points], [*points, len(stream)], strict=True)]
        with deterministic_curve():
            _, server = curve_pair()
            events: list[Event] = []
            for piece in pieces:
                events += server.receive_data(piece)
                server.bytes_to_send()
            events += server.receive_data(b"")
        assert flatten(events) == flatten(whole)

    check()


def flatten(events: list[Event]) -> list[object]:
    out: list[object] = []
    for ev in events:
        if isinstance(ev, Messages):
            out.extend(("msg", tuple(m)) for m in ev.messages)
        else:
            out.append(ev)
    return out


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=300), st.sampled_from(["handshake", "traffic"]))
def test_garbage_raises_only_protocol_errors(garbage: bytes, when: str) -> None:
    client, server = curve_pair()
    if when == "traffic":
        pump(client, server)
    else:
        client.receive_data(server.bytes_to_send())
        server.receive_data(client.bytes_to_send())
    try:
        events = server.receive_data(garbage)
    except ProtocolError:
        assert server.phase is Phase.CLOSED
        return
    # Nothing unauthenticated is ever delivered.
    assert not messages(events)


def test_mechanism_base_does_not_seal() -> None:
    mech: Mechanism = NullMechanism()
    with pytest.raises(LocalProtocolError):
        mech.encode_messages_sized([[b"x"]])
    with pytest.raises(LocalProtocolError):
        mech.decode_frame(b"x")
    with pytest.raises(LocalProtocolError):
        mech.encode_command(b"\x04PING")


def test_parts_sealed_into_unzeroed_memory_write_every_octet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Frames are sealed into memory that is not zeroed first (fresh or reused from
    the pool): every octet must be written.  Sealed into memory prefilled with
    garbage, the frames are those sealed into zeroed memory, and they open to the
    same messages."""
    ffi = curve_mod._ffi

    def filled(octet: bytes) -> Callable[[str, int], object]:
        def alloc(ctype: str, size: int) -> object:
            mem = ffi.new(ctype, size)
            ffi.memmove(mem, octet * size, size)
            return mem

        return alloc

    client, server = curve_pair()
    pump(client, server)
    mech = client._crypt
    assert mech is not None
    batch = [
        [b"head", os.urandom(200_000)],
        [os.urandom(70_000)],
        [b"tail", bytearray(os.urandom(1 << 20)), memoryview(b"x" * 300)],
        [b"a" * 300, b"b" * 40_000],
    ]
    start = mech._sent_nonce  # type: ignore[attr-defined]
    wires = []
    for octet in (b"\xaa", b"\x00"):
        monkeypatch.setattr(curve_mod, "_raw_alloc", filled(octet))
        curve_mod._SEAL_MEMORY.clear()  # allocate anew
        mech._sent_nonce = start  # type: ignore[attr-defined]
        chunks, total = mech.encode_messages_sized(batch)
        assert total == sum(len(part) for msg in batch for part in msg)
        wires.append(b"".join(bytes(chunk) for chunk in chunks))
    assert wires[0] == wires[1]
    assert messages(server.receive_data(wires[0])) == [[bytes(p) for p in msg] for msg in batch]


def test_seal_memory_is_reused_only_once_nothing_holds_it() -> None:
    """The pool hands a buffer out again only when every chunk sealed into it is
    gone: a chunk still held (unwritten) is never overwritten by the next batch."""
    pool = curve_mod._SEAL_MEMORY
    pool.clear()
    client, server = curve_pair()
    pump(client, server)
    mech = client._crypt
    assert mech is not None
    first, _ = mech.encode_messages_sized([[b"1" * 100_000]])
    kept = bytes(first[0])
    second, _ = mech.encode_messages_sized([[b"2" * 100_000]])
    assert bytes(first[0]) == kept  # still held: not reused
    assert len(pool._local.pool) == 2
    del first
    third, _ = mech.encode_messages_sized([[b"3" * 100_000]])
    assert len(pool._local.pool) == 2  # the first buffer, idle again
    assert messages(server.receive_data(kept + bytes(second[0]) + bytes(third[0]))) == [
        [b"1" * 100_000],
        [b"2" * 100_000],
        [b"3" * 100_000],
    ]


def _short_nonces(wire: bytes) -> list[int]:
    """The short nonce of each MESSAGE frame in ``wire``."""
    return [int.from_bytes(body[8:16], "big") for _flags, body in frames(wire)]


def _filled(low: int, high: int) -> st.SearchStrategy[bytes]:
    """Parts of ``low`` to ``high`` octets of one value: their size is what matters
    (frame lengths, nonces), and random octets by the thousand make hypothesis give
    up on large batches (its health check: too much data drawn, a flaky failure)."""
    return st.builds(
        lambda n, octet: bytes([octet]) * n, st.integers(low, high), st.integers(0, 255)
    )


_parts = st.one_of(
    st.binary(max_size=40),  # empty and small parts: the common case
    _filled(200, 300),  # around the short/long frame boundary
    _filled(1000, 2000),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.lists(_parts, min_size=1, max_size=4), min_size=1, max_size=6),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_sealed_batches_round_trip_with_consecutive_nonces(
    batches: list[list[list[bytes]]], to_server: bool
) -> None:
    """The box nonce buffers are reused across parts and calls: every frame of
    consecutive batches must carry the next short nonce, open on the other side, and
    give the messages back in order (empty parts, multipart, short and long frames),
    whether the frames arrive batch by batch or all at once."""
    client, server = curve_pair()
    pump(client, server)
    sender, receiver = (client, server) if to_server else (server, client)
    mech = sender._crypt
    assert mech is not None
    first = mech._sent_nonce  # type: ignore[attr-defined]
    wires = []
    for batch in batches:
        total = sender.send_messages(batch)
        assert total == sum(len(p) for msg in batch for p in msg)
        wires.append(sender.bytes_to_send())
    count = sum(len(msg) for batch in batches for msg in batch)
    assert _short_nonces(b"".join(wires)) == list(range(first + 1, first + 1 + count))
    got = [m for wire in wires[:-1] for m in messages(receiver.receive_data(wire))]
    got += messages(receiver.receive_data(wires[-1]))
    assert got == [msg for batch in batches for msg in batch]
    assert receiver.phase is Phase.TRAFFIC


def test_sealed_replay_after_batches_still_fails() -> None:
    """With the reused nonce buffers, a frame replayed from an earlier batch is still
    refused (its short nonce is checked against the last accepted one)."""
    client, server = curve_pair()
    pump(client, server)
    client.send_messages([[b"one"], [b"two"]])
    old = client.bytes_to_send()
    assert messages(server.receive_data(old)) == [[b"one"], [b"two"]]
    client.send_messages([[b"three"]])
    assert messages(server.receive_data(client.bytes_to_send())) == [[b"three"]]
    with pytest.raises(NonceError):
        server.receive_data(old[len(old) // 2 :])  # the frame of "two" again
    assert server.phase is Phase.CLOSED


@pytest.mark.parametrize("size", [0, 1, 16, 221, 222, 223, 300])
def test_lone_small_part_fast_path_seals_as_the_general_path(size: int) -> None:
    """A batch of one message of one small bytes part is sealed without the general
    path's plan: its frame must be the general path's, octet for octet (the general
    path is taken for a generator of messages), and open on the other side."""
    client, server = curve_pair()
    pump(client, server)
    mech = client._crypt
    assert mech is not None
    part = os.urandom(size)
    start = mech._sent_nonce  # type: ignore[attr-defined]
    fast, total = mech.encode_messages_sized([[part]])
    assert mech._sent_nonce == start + 1  # type: ignore[attr-defined]
    mech._sent_nonce = start  # type: ignore[attr-defined]
    general, total_again = mech.encode_messages_sized(msg for msg in [[part]])
    assert b"".join(fast) == b"".join(general)
    assert total == total_again == size
    (body,) = [b for _f, b in frames(b"".join(fast))]
    assert len(body) == 33 + size
    assert messages(server.receive_data(b"".join(fast))) == [[part]]


def _seal_with_flags(mech: Mechanism, data: bytes, flags: int) -> bytes:
    """A MESSAGE frame body whose box starts with any inner flags octet (encode_part
    only sets MORE and COMMAND)."""
    short = mech._next_nonce()  # type: ignore[attr-defined]
    key = mech._traffic_key()  # type: ignore[attr-defined]
    nonce = mech._send_prefix + short  # type: ignore[attr-defined]
    box = crypto_box_easy_afternm(bytes((flags,)) + data, nonce, key)
    return b"\x07MESSAGE" + short + box


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=30), st.integers(0, 255)), max_size=12),
    st.lists(st.binary(max_size=5), max_size=2),
    st.none() | st.integers(0, 11),
)
def test_open_spans_rebuilds_messages_from_inner_flags(
    parts: list[tuple[bytes, int]], partial: list[bytes], bad: int | None
) -> None:
    """open_spans against a model of the inner flags (COMMAND wins over MORE, bits
    libzmq does not set are ignored), with the message in progress carried in, and a
    tampered frame cutting the batch where it stands: nothing from it on is opened and
    the last accepted nonce is that of the frame before it."""
    client, server = curve_pair()
    pump(client, server)
    sender, receiver = client._crypt, server._crypt
    assert sender is not None and receiver is not None
    bodies = [_seal_with_flags(sender, data, flags) for data, flags in parts]
    cut = len(parts)
    if bad is not None and bad < len(bodies):
        cut = bad
        body = bytearray(bodies[bad])
        body[-1] ^= 1
        bodies[bad] = bytes(body)
    before = receiver._peer_nonce  # type: ignore[attr-defined]
    # The bodies where they lie in a received buffer, with bytes between them (frame
    # headers, in real traffic) that must not be read.
    data = b""
    spans: list[int] = []
    for body in bodies:
        data += b"\xee\x21"
        spans += [len(data), len(data) + len(body)]
        data += body
    data += b"\xee"
    items, rest, commands, error = receiver.open_spans(data, spans, list(partial))
    want: list[list[bytes] | bytes] = []
    cur = list(partial)
    for data, flags in parts[:cut]:
        if flags & 2:
            want.append(data)
        elif flags & 1:
            cur.append(data)
        else:
            want.append([*cur, data])
            cur = []
    assert items == want
    assert commands == any(flags & 2 for _d, flags in parts[:cut])
    if cut < len(parts):
        assert isinstance(error, DecryptionFailed)
    else:
        assert error is None
        assert rest == cur
    assert receiver._peer_nonce == before + cut  # type: ignore[attr-defined]


# Parts for the one-pass sealing of small parts: mostly small bytes (the fast path),
# sometimes one it does not take (a long frame, a bytearray, a memoryview), which
# sends the whole batch down the general path.
_small_parts = st.one_of(
    st.binary(max_size=221),
    st.sampled_from([b"", b"x" * 16, b"y" * 221]),
)
_odd_parts = st.one_of(
    st.binary(min_size=222, max_size=300),
    st.binary(max_size=20).map(bytearray),
    st.binary(max_size=20).map(memoryview),
)


def _old_wire(mech: Mechanism, batch: list[list[bytes]]) -> bytes:
    """The batch as the reference path seals it, one encode_part per part."""
    out = b""
    for msg in batch:
        for i, part in enumerate(msg):
            out += mech.encode_frame(bytes(part), more=i < len(msg) - 1)
    return out


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(_small_parts, _small_parts, _small_parts, _odd_parts), min_size=1, max_size=4
        ),
        min_size=2,
        max_size=12,
    ),
    st.sampled_from([None, 257, 300, 1000]),  # at least a short frame (257), as in use
    st.booleans(),
)
def test_small_batches_seal_as_the_reference_paths(
    batch: list[list[bytes]], chunk: int | None, to_server: bool
) -> None:
    """The one-pass sealing of small parts (_seal_small) against the general path (a
    generator of messages takes it) and the per-part reference (encode_part): the same
    octets, cut into the same buffers (at a small seal chunk, cuts happen inside the
    batch), the same nonces used; and the frames open, one by one through
    decode_frame and all at once through the connection, to the messages sent."""
    _check_sealed_batch(batch, chunk, to_server)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(2, 300),
    st.sampled_from([0, 1, 16, 100, 221, 222, 223, 1024, 5000, 16383, 16384]),
    st.sampled_from([None, 257, 300, 1000]),
    st.booleans(),
    st.none() | st.tuples(st.integers(0, 299), st.sampled_from(["size", "bytearray", "view"])),
)
def test_runs_of_one_size_seal_as_the_reference_paths(
    count: int, size: int, chunk: int | None, to_server: bool, odd: tuple[int, str] | None
) -> None:
    """One-part messages of one size (_seal_run: the frames laid out by C-level
    passes, the box nonces in one buffer; short frames and long ones up to 16 KiB)
    against the general path and encode_part,
    as above; with one message that breaks the run (another size: the one-pass path;
    a bytearray: still the run; a view of 4-octet items, whose len() is not its
    size: the general path), anywhere in the batch."""
    batch: list[list[bytes]] = [[os.urandom(size)] for _ in range(count)]
    if odd is not None and odd[0] < count:
        at, how = odd
        part = batch[at][0]
        if how == "size":
            batch[at] = [part + b"+" if size < 222 else part[:-1]]
        elif how == "bytearray":
            batch[at] = [bytearray(part)]  # type: ignore[list-item]
        else:
            batch[at] = [memoryview(bytes(4 * size)).cast("I")]  # type: ignore[list-item]
    _check_sealed_batch(batch, chunk, to_server)


def _check_sealed_batch(batch: list[list[bytes]], chunk: int | None, to_server: bool) -> None:
    client, server = curve_pair()
    pump(client, server)
    sender, receiver = (client, server) if to_server else (server, client)
    mech = sender._crypt
    assert mech is not None
    with pytest.MonkeyPatch.context() as mp:
        if chunk is not None:
            mp.setattr(curve_mod, "_SEAL_CHUNK", chunk)
        start = mech._sent_nonce  # type: ignore[attr-defined]
        fast, total = mech.encode_messages_sized(batch)
        after = mech._sent_nonce  # type: ignore[attr-defined]
        mech._sent_nonce = start  # type: ignore[attr-defined]
        general, total_again = mech.encode_messages_sized(msg for msg in batch)
        assert mech._sent_nonce == after  # type: ignore[attr-defined]
    mech._sent_nonce = start  # type: ignore[attr-defined]
    reference = _old_wire(mech, batch)
    assert mech._sent_nonce == after == start + sum(map(len, batch))  # type: ignore[attr-defined]
    assert [bytes(c) for c in fast] == [bytes(c) for c in general]
    wire = b"".join(bytes(c) for c in fast)
    assert wire == reference
    assert total == total_again == sum(len(bytes(p)) for msg in batch for p in msg)
    # Opened frame by frame by the reference, then all at once by the batch path.
    crypt = receiver._crypt
    assert crypt is not None
    peer = crypt._peer_nonce  # type: ignore[attr-defined]
    opened = [crypt.decode_frame(body) for _f, body in frames(wire)]
    want = [(bytes(p), i < len(m) - 1) for m in batch for i, p in enumerate(m)]
    assert [(f.data, f.more) for f in opened] == want
    assert not any(f.command for f in opened)
    crypt._peer_nonce = peer  # type: ignore[attr-defined]
    assert messages(receiver.receive_data(wire)) == [[bytes(p) for p in m] for m in batch]


def test_small_batch_with_an_empty_message_is_refused_whole() -> None:
    """An empty message in a batch of small parts: ValueError, no nonce used, nothing
    queued (the one-pass path leaves it to the general path, which says so)."""
    client, server = curve_pair()
    pump(client, server)
    mech = client._crypt
    assert mech is not None
    start = mech._sent_nonce  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="at least one frame"):
        mech.encode_messages_sized([[b"a"], [], [b"b"]])
    with pytest.raises(TypeError):
        mech.encode_messages_sized([[b"a"], [5]])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        mech.encode_messages_sized([[b"a"], ["text"]])  # type: ignore[list-item]
    assert mech._sent_nonce == start  # type: ignore[attr-defined]
    assert mech.encode_messages_sized([]) == ([], 0)
    assert mech._sent_nonce == start  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body",
    [
        b"\x07MESSAGf" + bytes(8 + 17),  # the name's last octet
        b"\x08MESSAGE" + bytes(8 + 17),  # its size octet
        b"\x07message" + bytes(8 + 17),
    ],
)
def test_open_spans_refuses_a_wrong_name_after_good_frames(body: bytes) -> None:
    """A body whose first 8 octets are not ``07 'MESSAGE'`` (compared as one number)
    is a CurveMessageError; the messages before it are delivered."""
    client, server = curve_pair()
    pump(client, server)
    client.send_messages([[b"one"], [b"two"]])
    wire = client.bytes_to_send() + bytes((0, len(body))) + body
    crypt = server._crypt
    assert crypt is not None
    first, data, spans = FrameDecoder().decode_spans(wire)
    assert not first
    items, _rest, _cmds, error = crypt.open_spans(data, spans, [])
    assert items == [[b"one"], [b"two"]]
    assert isinstance(error, CurveMessageError)


@settings(max_examples=120, deadline=None)
@given(
    st.integers(8, 24),  # bodies in the batch: at least a run
    st.sampled_from([0, 1, 16, 200, 1024, 16383, 16384]),  # part size (16384: not a run)
    st.just([0] * 24)  # one-part messages only: the run's C-level cut
    | st.lists(st.sampled_from([0, 0, 0, 1, 2, 3, 4]), min_size=24, max_size=24),
    st.lists(st.binary(max_size=5), max_size=2),
    st.tuples(
        st.none()
        | st.tuples(st.just(0) | st.integers(0, 23), st.sampled_from(["box", "replay", "name"])),
        st.booleans(),  # the run's stride given, as the connection passes it
    ),
)
def test_open_run_matches_the_frame_by_frame_loop(
    count: int,
    size: int,
    flags: list[int],
    partial: list[bytes],
    case: tuple[tuple[int, str] | None, bool],
) -> None:
    """Bodies of one size at a constant stride are opened as a run (_open_run); the
    same bodies at uneven offsets go through open_spans' frame-by-frame loop.  Both
    give the same items, message in progress, commands flag, error (type and text)
    and last accepted nonce, with inner flags of every kind, a message carried in,
    and a tampered box, a replayed frame or a wrong name anywhere in the batch."""
    bad, given_stride = case
    client, server = curve_pair()
    pump(client, server)
    sender, receiver = client._crypt, server._crypt
    assert sender is not None and receiver is not None
    # A frame accepted before the batch: replayed as its first frame (its nonce is
    # the last accepted one).
    previous = _seal_with_flags(sender, os.urandom(size), 0)
    assert receiver.open_spans(previous, [0, len(previous)], [])[3] is None
    bodies = [_seal_with_flags(sender, os.urandom(size), flags[i]) for i in range(count)]
    if bad is not None and bad[0] < count:
        at, how = bad
        body = bytearray(bodies[at])
        if how == "box":
            body[-1] ^= 1
        elif how == "replay":  # the frame before, whole
            body = bytearray(bodies[at - 1] if at else previous)
        else:
            body[3] ^= 0x20
        bodies[at] = bytes(body)
    start = receiver._peer_nonce  # type: ignore[attr-defined]
    results = []
    runs: list[int] = []
    real_run = receiver._open_run  # type: ignore[attr-defined]

    def counted(*args: object) -> tuple[int, list[bytes], bool]:
        result: tuple[int, list[bytes], bool] = real_run(*args)
        runs.append(result[0])  # how many it opened
        return result

    receiver._open_run = counted  # type: ignore[attr-defined]
    for even in (True, False):
        receiver._peer_nonce = start  # type: ignore[attr-defined]
        data = b""
        spans: list[int] = []
        for i, body in enumerate(bodies):
            data += b"\xee" * (2 if even else 2 + i % 3)
            spans += [len(data), len(data) + len(body)]
            data += body
        # The run's stride given (as the connection passes FrameDecoder.spans_stride)
        # or found by open_spans itself: the same results.
        stride = 2 + len(bodies[0]) if even and given_stride else 0
        items, rest, commands, error = receiver.open_spans(data, spans, list(partial), stride)
        described = None if error is None else (type(error), str(error), error.reason)
        results.append((items, rest, commands, described, receiver._peer_nonce))  # type: ignore[attr-defined]
        if even:
            # A clean run is opened by the run path, all of it.
            assert len(runs) == (size < 16384)
            if runs and (bad is None or bad[0] >= count):
                assert runs == [count]
            runs.clear()
        else:
            assert runs == []
    assert results[0] == results[1]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 70_000), min_size=1, max_size=6), st.integers(0, 3))
def test_sealed_traffic_from_a_reused_buffer(cuts: list[int], run: int) -> None:
    """The socket layer reads a stream of large sealed messages into one reused buffer
    and hands the connection a view of it: every part opened from it is a copy, and
    nothing left over (a frame cut at the end) still points into it when the buffer is
    scribbled over before the next read."""
    client, server = curve_pair()
    pump(client, server)
    batch: list[list[bytes]] = [[b"s" * 20] for _ in range(9 * run)]  # a run of equals
    batch += [[b"big", os.urandom(40_000)], [os.urandom(300)], [b"t" * 5]]
    client.send_messages(batch)
    wire = client.bytes_to_send()
    if run % 2:  # reads that end one octet into a frame (a lone header octet left)
        at = 0
        for _flags, body in frames(wire):
            at += (2 if len(body) < 256 else 9) + len(body)
            cuts.append(at + 1)
    reused = bytearray(len(wire))
    got: list[Event] = []
    for chunk in split_at(wire, cuts):
        reused[: len(chunk)] = chunk
        got += server.receive_data(memoryview(reused)[: len(chunk)])
        reused[:] = b"\xee" * len(reused)
    assert messages(got) == batch


@pytest.mark.skipif(opened_part is None, reason="CPython's bytes layout")
@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from([10, 16 * 1024 - 1, 16 * 1024, 40_000, 200_000]), max_size=5),
    st.lists(st.integers(0, 1 << 19), max_size=5),
    st.none() | st.integers(0, 4),
)
def test_large_parts_open_straight_into_the_delivered_bytes(
    sizes: list[int], cuts: list[int], tamper: int | None
) -> None:
    """With the native part allocator, parts of 16 KiB and more are opened straight
    into the bytes delivered: the same messages as the scratch path, in any split,
    each part plain bytes (its cached hash put back); a box that does not open stops
    delivery there, as always."""
    client = Connection(
        SocketType.DEALER, mechanism=CurveClient(SERVER_PUBLIC, CLIENT_PUBLIC, CLIENT_SECRET)
    )
    server = Connection(
        SocketType.ROUTER, mechanism=CurveServer(SERVER_SECRET), part_allocator=opened_part
    )
    pump(client, server)
    batch = [
        [b"h", os.urandom(size)] if i % 2 else [os.urandom(size)] for i, size in enumerate(sizes)
    ]
    batch.append([b"last"])
    client.send_messages(batch)
    wire = bytearray(client.bytes_to_send())
    bodies = frames(bytes(wire))
    bad = None
    if tamper is not None and tamper < len(bodies):
        at = sum(len(encode_frame(body, 0)) for _f, body in bodies[: tamper + 1])
        wire[at - 1] ^= 1  # the last octet of that frame's box
        bad = tamper
    got: list[Event] = []
    try:
        for chunk in split_at(bytes(wire), cuts):
            got += server.receive_data(chunk)
    except DecryptionFailed as exc:
        assert bad is not None
        got += exc.events  # what was whole before the bad box
    received = messages(got)
    if bad is None:
        assert received == batch
    else:  # the messages whose frames all came before the bad one
        whole, seen = [], 0
        for msg in batch:
            seen += len(msg)
            if seen > bad:
                break
            whole.append(msg)
        assert received == whole
    for msg in received:
        for part in msg:
            assert type(part) is bytes
            assert hash(part) == hash(bytes(bytearray(part)))
