"""PLAIN, CURVE and ZAP through our own sockets (tcp and ipc), the options that choose
them, and who-sent-it (:meth:`Socket.recv_message`).

The same cases against libzmq are in ``interop/test_security_*.py``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

import zmtp
from zmtp.auth import Authenticator
from zmtp.protocol import z85
from zmtp.protocol.zap import ZAP_ENDPOINT, ZapReply, encode_reply, parse_request

from ._helpers import bind_address, context

SERVER_PUBLIC, SERVER_SECRET = zmtp.curve_keypair()
CLIENT_PUBLIC, CLIENT_SECRET = zmtp.curve_keypair()

TRANSPORTS = ["tcp", "ipc"]


async def failure(mon: zmtp.Monitor) -> zmtp.SocketEvent:
    async for ev in mon:
        if ev.type is zmtp.EventType.HANDSHAKE_FAILED:
            return ev
    raise AssertionError("monitor closed")


async def success(mon: zmtp.Monitor) -> zmtp.SocketEvent:
    async for ev in mon:
        if ev.type is zmtp.EventType.HANDSHAKE_SUCCEEDED:
            return ev
        assert ev.type is not zmtp.EventType.HANDSHAKE_FAILED, ev
    raise AssertionError("monitor closed")


class TestOptions:
    async def test_keys_in_every_form_read_back_as_z85(self) -> None:
        async with context() as ctx:
            raw = z85.decode(SERVER_SECRET)
            for form in (SERVER_SECRET, SERVER_SECRET.decode(), raw, SERVER_SECRET + b"\0"):
                sock = ctx.socket("ROUTER", curve_server=True, curve_secretkey=form)
                assert sock.curve_secretkey == SERVER_SECRET
                await sock.aclose()

    @pytest.mark.parametrize(
        ("value", "error"),
        [(b"short", ValueError), ('"' * 40, ValueError), (12, TypeError), (b"\0" * 31, ValueError)],
    )
    async def test_a_bad_key_raises_at_once(self, value: object, error: type) -> None:
        async with context() as ctx:
            with pytest.raises(error, match="curve_serverkey"):
                ctx.socket("DEALER", curve_serverkey=value)

    async def test_contradictions_are_refused_when_set(self) -> None:
        async with context() as ctx:
            sock = ctx.socket("DEALER", curve_serverkey=SERVER_PUBLIC)
            with pytest.raises(ValueError, match="one security mechanism"):
                sock.plain_username = "admin"
            assert sock.plain_username is None  # the bad setting was not kept
            with pytest.raises(ValueError, match="contradict"):
                sock.curve_server = True
            with pytest.raises(ValueError, match="contradict"):
                ctx.socket("ROUTER", plain_server=True, plain_username="u")

    async def test_incomplete_configurations_fail_at_bind_and_connect(self) -> None:
        async with context() as ctx:
            srv = ctx.socket("ROUTER", curve_server=True)
            with pytest.raises(ValueError, match="curve_secretkey"):
                await srv.bind("tcp://127.0.0.1:0")
            cli = ctx.socket(
                "DEALER",
                curve_serverkey=SERVER_PUBLIC,
                curve_secretkey=CLIENT_SECRET,
                curve_publickey=SERVER_PUBLIC,
            )
            with pytest.raises(ValueError, match="does not belong"):
                await cli.connect("tcp://127.0.0.1:1")
            # inproc has no handshake, hence no mechanism: allowed.
            await srv.bind("inproc://no-mechanism")

    async def test_mechanism_and_role(self) -> None:
        async with context() as ctx:
            cases = {
                ctx.socket("DEALER"): (b"NULL", False),
                ctx.socket("ROUTER", curve_server=True, curve_secretkey=SERVER_SECRET): (
                    b"CURVE",
                    True,
                ),
                ctx.socket("DEALER", plain_username="u", plain_password="p"): (b"PLAIN", False),
                ctx.socket("ROUTER", plain_server=True): (b"PLAIN", True),
            }
            for sock, (mechanism, server) in cases.items():
                sec = sock.security()
                assert (sec.mechanism, sec.server) == (mechanism, server)


@asynccontextmanager
async def pair(
    ctx: zmtp.Context, transport: str, server: dict[str, object], client: dict[str, object]
) -> AsyncIterator[tuple[zmtp.Socket, zmtp.Socket, zmtp.Monitor, zmtp.Monitor]]:
    """A ROUTER server and a DEALER client connecting to it, and their monitors (made
    before the connection starts, so that no event is missed)."""
    srv = ctx.socket("ROUTER", **server)
    smon = srv.monitor()
    endpoint = await srv.bind(bind_address(transport))
    cli = ctx.socket("DEALER", routing_id=b"client-1", **client)
    mon = cli.monitor()
    await cli.connect(endpoint)
    try:
        yield srv, cli, mon, smon
    finally:
        mon.close()
        await cli.aclose()
        await srv.aclose()


CURVE_SERVER = {"curve_server": True, "curve_secretkey": SERVER_SECRET}
CURVE_CLIENT = {
    "curve_serverkey": SERVER_PUBLIC,
    "curve_publickey": CLIENT_PUBLIC,
    "curve_secretkey": CLIENT_SECRET,
}


@pytest.mark.parametrize("transport", TRANSPORTS)
class TestCurve:
    async def test_round_trip_and_who_sent_it(self, transport: str) -> None:
        async with (
            context() as ctx,
            pair(ctx, transport, CURVE_SERVER, CURVE_CLIENT) as (srv, cli, _, _),
        ):
            big = os.urandom(4 << 20)
            await cli.send_multipart([b"hello", big])
            msg = await srv.recv_message()
            assert msg.parts == [b"client-1", b"hello", big]
            peer = msg.peer
            assert peer.mechanism == "CURVE"
            assert peer.get("Socket-Type") == "DEALER"
            assert peer.get("Identity") == "client-1"
            assert peer.user_id == b""  # no ZAP handler: no User-Id
            assert peer.get("User-Id") is None
            if transport == "tcp":
                assert peer.address == "127.0.0.1"
            else:
                assert peer.address == f"localhost:{os.getuid()}:{os.getgid()}:{os.getpid()}"
            assert peer.get("Peer-Address") == peer.address
            await srv.send_multipart([b"client-1", b"back"])
            assert await cli.recv_multipart() == [b"back"]

    async def test_a_stream_of_large_messages_arrives_whole(self, transport: str) -> None:
        """Sealed bodies below and above the in-place threshold, read in place and
        through the reused stream buffer, with small frames between them (so reads
        end anywhere in a frame): every message arrives whole, in order."""
        sizes = [70_000, 100, 140_000, 65_536, 5, 20_000, 1 << 20]
        sent = [
            [os.urandom(size)] if i % 3 else [b"head", os.urandom(size)]
            for i, size in enumerate(sizes * 6)
        ]
        async with (
            context() as ctx,
            pair(ctx, transport, CURVE_SERVER, CURVE_CLIENT) as (srv, cli, _, _),
        ):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(cli.send_many, sent)
                got = [(await srv.recv_multipart())[1:] for _ in sent]
            assert got == sent

    async def test_wrong_server_key_never_connects(self, transport: str) -> None:
        other_public, _ = zmtp.curve_keypair()
        client = {**CURVE_CLIENT, "curve_serverkey": other_public}
        async with (
            context() as ctx,
            pair(ctx, transport, CURVE_SERVER, client) as (srv, _, _, smon),
        ):
            ev = await failure(smon)
            assert ev.detail["error"] == "DecryptionFailed"
            with pytest.raises(trio.WouldBlock):
                srv.recv_multipart_nowait()

    async def test_authenticator_allows_and_refuses_keys(self, transport: str) -> None:
        async with context() as ctx, Authenticator(ctx) as auth:
            auth.configure_curve(location=[CLIENT_PUBLIC])
            async with pair(ctx, transport, CURVE_SERVER, CURVE_CLIENT) as (srv, cli, mon, _):
                await success(mon)
                await cli.send(b"allowed")
                msg = await srv.recv_message()
                assert msg.parts[1:] == [b"allowed"]
                assert msg.peer.user_id == CLIENT_PUBLIC  # pyzmq's: the Z85 key
            stranger_public, stranger_secret = zmtp.curve_keypair()
            stranger = {
                **CURVE_CLIENT,
                "curve_publickey": stranger_public,
                "curve_secretkey": stranger_secret,
            }
            async with pair(ctx, transport, CURVE_SERVER, stranger) as (srv, _, mon, _):
                ev = await failure(mon)
                assert ev.detail["error"] == "PeerError"
                assert "400" in ev.reason

    async def test_enforce_domain_without_handler_refuses(self, transport: str) -> None:
        server = {**CURVE_SERVER, "zap_domain": "global", "zap_enforce_domain": True}
        async with (
            context() as ctx,
            pair(ctx, transport, server, CURVE_CLIENT) as (_, _, _, smon),
        ):
            ev = await failure(smon)
            assert ev.detail["error"] == "AuthenticationUnavailable"


@pytest.mark.parametrize("transport", TRANSPORTS)
class TestPlain:
    async def test_right_and_wrong_passwords(self, transport: str) -> None:
        async with context() as ctx, Authenticator(ctx) as auth:
            auth.configure_plain(passwords={"admin": "secret"})
            server = {"plain_server": True}
            good = {"plain_username": "admin", "plain_password": "secret"}
            async with pair(ctx, transport, server, good) as (srv, cli, mon, _):
                await success(mon)
                await cli.send(b"in")
                msg = await srv.recv_message()
                assert msg.peer.mechanism == "PLAIN"
                assert msg.peer.user_id == b"admin"
                assert msg.peer.get("User-Id") == "admin"
            bad = {"plain_username": "admin", "plain_password": "wrong"}
            async with pair(ctx, transport, server, bad) as (srv, _, mon, _):
                ev = await failure(mon)
                assert "400" in ev.reason

    async def test_no_handler_refuses_everyone(self, transport: str) -> None:
        good = {"plain_username": "admin", "plain_password": "secret"}
        async with (
            context() as ctx,
            pair(ctx, transport, {"plain_server": True}, good) as (_, _, _, smon),
        ):
            ev = await failure(smon)
            assert ev.detail["error"] == "AuthenticationUnavailable"


@asynccontextmanager
async def hand_written_handler(
    ctx: zmtp.Context, status: bytes, seen: list[list[bytes]]
) -> AsyncIterator[None]:
    """A ZAP handler as a user would write it: a ROUTER at the ZAP endpoint."""
    zap = ctx.socket("ROUTER")
    await zap.bind(ZAP_ENDPOINT)

    async def serve() -> None:
        while True:
            msg = await zap.recv_multipart()
            seen.append(msg)
            request = parse_request(msg[2:])
            reply = ZapReply(
                request.request_id,
                status,
                b"text",
                b"hand-made" if status == b"200" else b"",
                b"\x08X-Tenant\x00\x00\x00\x04acme" if status == b"200" else b"",
            )
            await zap.send_multipart([msg[0], b"", *encode_reply(reply)])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        try:
            yield
        finally:
            nursery.cancel_scope.cancel()
            await zap.aclose()


class TestHandWrittenZap:
    async def test_null_with_a_domain_asks_and_gets_properties(self) -> None:
        seen: list[list[bytes]] = []
        async with context() as ctx, hand_written_handler(ctx, b"200", seen):
            server = {"zap_domain": "global", "routing_id": b"SRV"}
            async with pair(ctx, "tcp", server, {}) as (srv, cli, _, _):
                await cli.send(b"x")
                msg = await srv.recv_message()
                assert msg.peer.user_id == b"hand-made"
                assert msg.peer.get("X-Tenant") == "acme"
            # libzmq's request layout (specs/libzmq-behaviour.md §4.3): the server
            # socket's own routing id as identity, the peer's IP as address.
            request = seen[0][1:]
            assert request == [b"", b"1.0", b"1", b"global", b"127.0.0.1", b"SRV", b"NULL"]

    @pytest.mark.parametrize("status", [b"300", b"400", b"500"])
    async def test_refusals(self, status: bytes) -> None:
        seen: list[list[bytes]] = []
        async with context() as ctx, hand_written_handler(ctx, status, seen):
            server = {**CURVE_SERVER, "zap_domain": "d"}
            async with pair(ctx, "tcp", server, CURVE_CLIENT) as (_, _, mon, smon):
                ev = await failure(smon)
                assert ev.detail["status"] == int(status)
                if status == b"300":
                    # No ERROR: the client just sees the connection go.
                    async for cev in mon:
                        assert cev.type is not zmtp.EventType.HANDSHAKE_FAILED
                        if cev.type is zmtp.EventType.DISCONNECTED:
                            break
                else:
                    cev = await failure(mon)
                    assert status.decode() in cev.reason
            assert seen[0][7] == b"CURVE" and seen[0][8] == z85.decode(CLIENT_PUBLIC)


async def test_inproc_messages_have_empty_peer_info() -> None:
    async with context() as ctx:
        a = ctx.socket("PAIR")
        b = ctx.socket("PAIR")
        await a.bind("inproc://who")
        await b.connect("inproc://who")
        await b.send(b"x")
        msg = await a.recv_message()
        assert msg == zmtp.Received([b"x"], zmtp.PeerInfo())
        await b.send(b"y")
        await a.wait_for_peers()
        assert a.recv_message_nowait().parts == [b"y"]
