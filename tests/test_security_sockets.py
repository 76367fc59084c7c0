"""Secure connections between our own sockets, at the socket level: what the monitor
reports when a handshake is refused, and what a refused peer gets.

The sans-IO machine's side is ``tests/test_connection_security.py``; the same against
libzmq and omq.rs peers is ``interop/test_security_*.py``.
"""

from __future__ import annotations

import pytest
import trio

import zmtp
from zmtp.auth import Authenticator
from zmtp.sockets import Monitor, SocketEvent
from zmtp.sockets._engine import zap_status

from ._helpers import STREAM_TRANSPORTS, bind_address, context, nothing_arrives

pytest.importorskip("nacl")

E = zmtp.EventType


async def events_until(mon: Monitor, last: zmtp.EventType) -> list[SocketEvent]:
    """Every event up to and including the first of type ``last``."""
    seen = []
    async for event in mon:
        seen.append(event)
        if event.type is last:
            return seen
    raise AssertionError(f"monitor ended before {last}: {[e.type for e in seen]}")


# ----------------------------------------------------------------------- HANDSHAKE_FAILED


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        (b"300", 300),
        (b"400", 400),
        (b"500", 500),
        (b"200", None),
        (b"600", None),
        (b"401", None),
        (b"40", None),
        (b"4000", None),
        (b"", None),
        (b"Invalid box", None),
    ],
)
def test_zap_status_of_an_error_reason(reason: bytes, status: int | None) -> None:
    """libzmq's rule (``handle_error_reason``): three octets, 3-5 then two zeros."""
    assert zap_status(reason) == status


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
@pytest.mark.parametrize("mechanism", ["CURVE", "PLAIN"])
async def test_a_refused_client_reports_the_zap_status(mechanism: str, transport: str) -> None:
    """The refusing server reports ``AuthenticationFailed`` with the ZAP status, and the
    client the ``PeerError`` of the ERROR it got, with the status that ERROR carries
    (as libzmq's client reports ``HANDSHAKE_FAILED_AUTH`` with it)."""
    server_public, server_secret = zmtp.curve_keypair()
    _, client_secret = zmtp.curve_keypair()
    async with context() as ctx, Authenticator(ctx) as auth:
        if mechanism == "CURVE":
            auth.configure_curve(location=[])  # no key is let in
            server_opts: dict[str, object] = {
                "curve_server": True,
                "curve_secretkey": server_secret,
            }
            client_opts: dict[str, object] = {
                "curve_serverkey": server_public,
                "curve_secretkey": client_secret,
            }
        else:
            auth.configure_plain(passwords={"admin": "secret"})
            server_opts = {"plain_server": True}
            client_opts = {"plain_username": "admin", "plain_password": "wrong"}
        server = ctx.socket(zmtp.ROUTER, **server_opts)
        smon = server.monitor()
        client = ctx.socket(zmtp.DEALER, linger=0, **client_opts)
        cmon = client.monitor()
        await client.connect(await server.bind(bind_address(transport)))
        refused = (await events_until(smon, E.HANDSHAKE_FAILED))[-1]
        assert refused.detail == {"error": "AuthenticationFailed", "status": 400}
        failed = (await events_until(cmon, E.HANDSHAKE_FAILED))[-1]
        assert failed.detail == {"error": "PeerError", "status": 400}
        assert "400" in failed.reason
        # An ERROR is final: the client does not try again (RFC 26).
        await events_until(cmon, E.RECONNECT_STOPPED)
        await client.send_multipart([b"never"])
        await nothing_arrives(server)


async def test_other_handshake_failures_have_no_status() -> None:
    """A ``status`` only where a ZAP status is involved."""
    _, server_secret = zmtp.curve_keypair()
    async with context() as ctx:
        server = ctx.socket(zmtp.ROUTER, curve_server=True, curve_secretkey=server_secret)
        smon = server.monitor()
        client = ctx.socket(zmtp.DEALER, linger=0)  # NULL: a mechanism mismatch
        cmon = client.monitor()
        await client.connect(await server.bind(bind_address("tcp")))
        for mon in (smon, cmon):
            failed = (await events_until(mon, E.HANDSHAKE_FAILED))[-1]
            assert failed.detail == {"error": "MechanismMismatch"}


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ([b"2.0", b"1", b"200", b"", b"", b""], "ZAP_BAD_VERSION"),
        ([b"1.0", b"2", b"200", b"", b"", b""], "ZAP_BAD_REQUEST_ID"),
        ([b"1.0", b"1", b"299", b"", b"", b""], "ZAP_INVALID_STATUS_CODE"),
        ([b"1.0", b"1", b"200"], "ZAP_MALFORMED_REPLY"),
    ],
    ids=["version", "request-id", "status", "frames"],
)
async def test_a_bad_zap_reply_is_reported_with_libzmqs_code(reply: list[bytes], code: str) -> None:
    """The handler's reply breaks RFC 27: the handshake fails, and the event names the
    fault as libzmq's monitor does (``ZMQ_PROTOCOL_ERROR_ZAP_*``)."""
    async with context() as ctx, trio.open_nursery() as nursery:
        handler = ctx.socket(zmtp.ROUTER)
        await handler.bind("inproc://zeromq.zap.01")

        async def answer() -> None:
            frames = await handler.recv_multipart()
            await handler.send_multipart([*frames[: frames.index(b"") + 1], *reply])

        nursery.start_soon(answer)
        server = ctx.socket(zmtp.ROUTER, zap_domain="global")  # NULL asks ZAP with a domain
        smon = server.monitor()
        client = ctx.socket(zmtp.DEALER, linger=0)
        await client.connect(await server.bind(bind_address("tcp")))
        failed = (await events_until(smon, E.HANDSHAKE_FAILED))[-1]
        assert failed.detail == {"error": "ZapError", "code": code}
        await client.send_multipart([b"never"])
        await nothing_arrives(server)
