"""Secure connections that must fail, between our sockets and libzmq 4.3.5's.

* **A wrong server key**: a libzmq CURVE client with a key that is not our server's
  (our server cannot open its HELLO: ``HANDSHAKE_FAILED`` / ``DecryptionFailed``; the
  libzmq client, hung up on mid-handshake, reports ``HANDSHAKE_FAILED_NO_DETAIL``), and
  ours against a libzmq server (``HANDSHAKE_FAILED_PROTOCOL`` /
  ``ZMTP_CRYPTOGRAPHIC`` there; our client sees the connection closed during the
  handshake).  Nobody ever completes a handshake, nothing is delivered.
* **A mechanism mismatch** (CURVE against NULL, PLAIN against CURVE, each both ways
  round): libzmq fails it (``HANDSHAKE_FAILED_PROTOCOL`` / ``ZMTP_MECHANISM_MISMATCH``)
  and closes, often before its greeting is complete, so our side sees the connection
  closed during the handshake; nothing is delivered, and another peer of the same
  socket, with the right mechanism, carries on.
* **A tampered MESSAGE**: a relay flips one octet inside a CURVE MESSAGE box on its way
  from a libzmq client to our server.  The messages before it arrive intact, the
  connection is dropped (the box does not open: ``DecryptionFailed``, no ERROR, RFC 26),
  no part of the tampered message is delivered, and the libzmq client's next connection
  carries on.

What our side reports when the peer closes during the handshake differs from libzmq
(``DISCONNECTED`` only, where libzmq adds ``HANDSHAKE_FAILED_NO_DETAIL``):
specs/discrepancies.md D-26.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import trio

import zmtp
from zmtp.auth import CURVE_ALLOW_ANY, Authenticator

from ._helpers import DIRECTIONS, TEST_TIMEOUT, TRANSPORTS, Endpoint
from ._security_helpers import (
    PASSWORD,
    USERNAME,
    CurveKeys,
    FrameRelay,
    KeyPair,
    ZmqMonitor,
    events_until,
    our_security,
    their_security,
    thread_authenticator,
)
from ._sock_helpers import Lab, Ours, bind_ours

zmq = pytest.importorskip("zmq")
pytest.importorskip("nacl")

pytestmark = pytest.mark.interop

_S = zmtp.SocketType
E = zmtp.EventType


def _kinds(events: list[zmtp.SocketEvent]) -> list[zmtp.EventType]:
    return [ev.type for ev in events]


# ----------------------------------------------------------------------- wrong server key


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_libzmq_client_with_a_wrong_server_key(
    direction: str, transport: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    keys = CurveKeys()
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            server = ctx.socket(_S.ROUTER, **keys.ours(server=True))
            mon = server.monitor()
            wrong = {**keys.theirs(server=False), "CURVE_SERVERKEY": KeyPair.new().public}
            client = lab.theirs(_S.DEALER, **wrong)
            zmon = ZmqMonitor(lab.zmq_socket, client.sock)
            await lab.link(server, client, transport, direction)
            if direction == "we_bind":
                # libzmq made the pipe at connect: this waits on it for a handshake.
                await client.send([b"never", b"delivered"])

            failed = (await events_until(mon, E.HANDSHAKE_FAILED, E.HANDSHAKE_SUCCEEDED))[-1]
            assert failed.type is E.HANDSHAKE_FAILED
            assert failed.detail["error"] == "DecryptionFailed"
            assert "HELLO box does not open" in failed.reason
            # We hang up without a word (a box that does not open is no HandshakeError):
            # libzmq's client only sees the connection end during its handshake.
            seen = await zmon.until(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in [ev["event"] for ev in seen]
            await Ours(server).nothing_arrives()
            assert not server.peers
            assert E.HANDSHAKE_SUCCEEDED not in _kinds(_drain(mon))


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_our_client_with_a_wrong_server_key(
    direction: str, transport: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    keys = CurveKeys()
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            wrong = {**keys.ours(server=False), "curve_serverkey": KeyPair.new().public}
            client = ctx.socket(_S.DEALER, linger=0, **wrong)
            mon = client.monitor()
            server = lab.theirs(_S.ROUTER, **keys.theirs(server=True))
            zmon = ZmqMonitor(lab.zmq_socket, server.sock)
            endpoint = await lab.link(client, server, transport, direction)
            if direction == "they_bind":
                # Our connect() made the peer: this waits on it for a handshake.
                await client.send_multipart([b"never", b"delivered"])

            seen = await zmon.until(
                zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_SUCCEEDED
            )
            assert seen[-1]["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            assert seen[-1]["value"] == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
            ours = await events_until(mon, E.DISCONNECTED)
            assert E.HANDSHAKE_SUCCEEDED not in _kinds(ours)
            assert ours[-1].reason == "closed during handshake"
            if direction == "they_bind":
                assert ours[-1].endpoint == endpoint
            await server.nothing_arrives()
            assert not any(peer.connected for peer in client.peers)


def _drain(mon: zmtp.Monitor) -> list[zmtp.SocketEvent]:
    got = []
    while True:
        try:
            got.append(mon.receive_nowait())
        except trio.WouldBlock:
            return got


# ----------------------------------------------------------------------- mechanism mismatch


#: (our mechanism, the odd libzmq peer's, whether our socket binds): CURVE against NULL
#: and PLAIN against CURVE, each both ways round and with either side bound.
MISMATCHES = [
    ("CURVE", "NULL", True),
    ("CURVE", "NULL", False),
    ("NULL", "CURVE", True),
    ("NULL", "CURVE", False),
    ("PLAIN", "CURVE", True),
    ("PLAIN", "CURVE", False),
    ("CURVE", "PLAIN", True),
    ("CURVE", "PLAIN", False),
]


def _mismatch_id(case: tuple[str, str, bool]) -> str:
    ours, theirs, we_bind = case
    return f"ours_{ours}-theirs_{theirs}-{'we_bind' if we_bind else 'they_bind'}"


@pytest.mark.parametrize(
    ("case", "transport"),
    [(case, TRANSPORTS[i % 2]) for i, case in enumerate(MISMATCHES)],
    ids=[_mismatch_id(case) for case in MISMATCHES],
)
async def test_mechanism_mismatch_fails_and_other_peers_carry_on(
    case: tuple[str, str, bool],
    transport: str,
    lab_factory: Callable[[zmtp.Context], Lab],
    zmq_context: object,
) -> None:
    """Our socket has two libzmq peers: one with its mechanism (and the matching role),
    one with another.  When our socket binds, it is the server and both peers connect
    to it; otherwise it is the client and connects to both."""
    our_mech, odd_mech, we_bind = case
    keys = CurveKeys()
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx, Authenticator(ctx) as auth:
            auth.configure_plain(passwords={USERNAME: PASSWORD})
            auth.configure_curve(location=CURVE_ALLOW_ANY)
            lab = lab_factory(ctx)
            with thread_authenticator(zmq_context, passwords={USERNAME: PASSWORD}):
                if we_bind:
                    ours = ctx.socket(
                        _S.ROUTER, router_mandatory=True, **our_security(our_mech, True, keys)
                    )
                    good = lab.theirs(
                        _S.DEALER, ROUTING_ID=b"good", **their_security(our_mech, False, keys)
                    )
                    odd = lab.theirs(
                        _S.DEALER, ROUTING_ID=b"odd", **their_security(odd_mech, False, keys)
                    )
                else:
                    ours = ctx.socket(
                        _S.DEALER, immediate=True, **our_security(our_mech, False, keys)
                    )
                    good = lab.theirs(_S.ROUTER, **their_security(our_mech, True, keys))
                    odd = lab.theirs(_S.ROUTER, **their_security(odd_mech, True, keys))
                mon = ours.monitor()
                zmon = ZmqMonitor(lab.zmq_socket, odd.sock)
                if we_bind:
                    ep = await bind_ours(ours, transport, lab.ipc_dir)
                    odd.sock.connect(ep)
                    await odd.send([b"never delivered"])  # queued on the pipe
                else:
                    odd_ep = lab.bind_zmq(odd.sock, transport).zmq
                    await ours.connect(odd_ep)

                # libzmq sees our greeting name another mechanism and hangs up.
                seen = await zmon.until(
                    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_SUCCEEDED
                )
                assert seen[-1]["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                assert seen[-1]["value"] == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                # Ours: the connection ended before the handshake did (libzmq closes
                # before, or right after, its own greeting's mechanism).
                events = await events_until(mon, E.DISCONNECTED)
                assert E.HANDSHAKE_SUCCEEDED not in _kinds(events)
                failed = [ev for ev in events if ev.type is E.HANDSHAKE_FAILED]
                assert all(ev.detail["error"] == "MechanismMismatch" for ev in failed)

                # The other peer, with the right mechanism, is served as usual.
                if we_bind:
                    good.sock.connect(ep)
                    await good.send([b"hello"])
                    assert await ours.recv_multipart() == [b"good", b"hello"]
                    await ours.send_multipart([b"good", b"reply"])
                    assert await good.recv() == [b"reply"]
                else:
                    await ours.connect(lab.bind_zmq(good.sock, transport).zmq)
                    await ours.wait_for_peers(1)
                    await ours.send_multipart([b"hello"])
                    routing_id, body = await good.recv()
                    assert body == b"hello"
                    await good.send_routed([routing_id, b"reply"])
                    assert await ours.recv_multipart() == [b"reply"]
                    await odd.nothing_arrives()
                await Ours(ours).nothing_arrives()
                assert len([peer for peer in ours.peers if peer.connected]) == 1


# ----------------------------------------------------------------------- tampering


def _flip_in_message(index: int) -> Callable[[str, int, int, bytes], bytes]:
    """A relay tamper: flip the last octet (inside the box) of the ``index``-th CURVE
    MESSAGE the relay carries up (counted over all its connections, from 1)."""
    seen = 0

    def tamper(direction: str, frame_index: int, flags: int, body: bytes) -> bytes:
        nonlocal seen
        if direction != "up" or not body.startswith(b"\x07MESSAGE"):
            return body
        seen += 1
        if seen == index:
            return body[:-1] + bytes([body[-1] ^ 0x01])
        return body

    return tamper


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tampered_message_from_libzmq_is_dropped_with_its_connection(
    transport: str,
    lab_factory: Callable[[zmtp.Context], Lab],
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys = CurveKeys()
    caplog.set_level(logging.INFO, logger="zmtp")
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx, trio.open_nursery() as nursery:
            lab = lab_factory(ctx)
            server = ctx.socket(_S.ROUTER, **keys.ours(server=True))
            mon = server.monitor()
            client = lab.theirs(_S.DEALER, ROUTING_ID=b"cli", **keys.theirs(server=False))
            target = Endpoint.from_zmq(await bind_ours(server, transport, lab.ipc_dir))
            # MESSAGEs up: "one"; "two", "2"; "three", "bad" <- the 5th, flipped.
            relay = FrameRelay(nursery, target, lab.ipc_dir, tamper=_flip_in_message(5))
            client.sock.connect(await relay.start(transport))
            for msg in ([b"one"], [b"two", b"2"], [b"three", b"bad"]):
                await client.send(msg)
            assert await server.recv_multipart() == [b"cli", b"one"]
            assert await server.recv_multipart() == [b"cli", b"two", b"2"]

            gone = (await events_until(mon, E.DISCONNECTED))[-1]
            assert "MESSAGE box does not open" in gone.reason
            assert any(
                "MESSAGE box does not open" in record.getMessage()
                and record.levelno == logging.WARNING
                for record in caplog.records
            )
            # Neither part of the tampered message, nor anything else, was delivered;
            # no ERROR went back (RFC 26: a bad MESSAGE is not answered).
            link = relay.links[0]
            await link.closed.wait()
            assert all(not body.startswith(b"\x05ERROR") for _, body in link.down)
            await Ours(server).nothing_arrives()

            # libzmq reconnects (through the relay, untouched now) and carries on.
            await client.send([b"four"])
            assert await server.recv_multipart() == [b"cli", b"four"]
            assert len(relay.links) == 2
            await ctx.aclose(linger=0)
            nursery.cancel_scope.cancel()
