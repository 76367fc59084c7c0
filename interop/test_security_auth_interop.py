"""Authentication (ZAP, RFC 27) between our sockets and libzmq 4.3.5's, both ways.

* **CURVE keys allowed and refused by our Authenticator** (``configure_curve`` with a
  certificate directory made by ``zmtp.auth.create_certificates``, and with a key
  list), serving our CURVE server: an allowed libzmq client is served, a refused one
  gets ERROR 400 (its monitor: ``HANDSHAKE_FAILED_AUTH`` 400) and delivers nothing,
  both on the same socket.  And the reverse: pyzmq's ``ThreadAuthenticator``, reading
  the same kind of directory, serving a libzmq CURVE server, with our clients.
* **PLAIN credentials right and wrong**, the same two ways round.  libzmq's PLAIN
  client knows only its own malformed ERROR (``^RROR``, specs/discrepancies.md D-9), so
  refused by our well-formed ERROR 400 it reports ``HANDSHAKE_FAILED_PROTOCOL``
  ``ZMTP_UNEXPECTED_COMMAND``, not ``_AUTH``: D-27.  Our client reads libzmq's
  malformed one and reports ``HANDSHAKE_FAILED`` ``PeerError`` with status 400.
* **A hand-written ZAP handler**: our ROUTER bound at ``inproc://zeromq.zap.01`` in the
  same Context.  The request frames it gets from our CURVE, PLAIN and NULL-with-domain
  servers are libzmq's, octet for octet (a libzmq server with the same options asks a
  pyzmq ROUTER: the two requests are compared): version ``1.0``, request id ``1``, the
  domain, ``127.0.0.1`` for tcp and ``localhost:uid:gid:pid`` for ipc, the *server's*
  own routing id, the mechanism, the credentials.  Replies 200 (with a User-Id and
  metadata), 300 (we close without ERROR: the libzmq client sees no AUTH failure),
  400 and 500 (the libzmq client reports ``HANDSHAKE_FAILED_AUTH`` with that status;
  PLAIN's protocol failure instead, as above).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

import zmtp
from zmtp.auth import Authenticator, create_certificates, load_certificate
from zmtp.protocol import z85
from zmtp.protocol.metadata import encode_properties
from zmtp.protocol.zap import ZAP_ERROR_CODES
from zmtp.sockets import Socket

from ._helpers import DIRECTIONS, TEST_TIMEOUT, TRANSPORTS
from ._security_helpers import (
    PASSWORD,
    USERNAME,
    CurveKeys,
    KeyPair,
    ZmqMonitor,
    events_until,
    our_security,
    their_security,
    thread_authenticator,
)
from ._sock_helpers import Lab, Ours, Theirs, bind_ours

zmq = pytest.importorskip("zmq")
pytest.importorskip("nacl")

pytestmark = pytest.mark.interop

_S = zmtp.SocketType
E = zmtp.EventType

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


async def link_both(
    lab: Lab, ours: Socket, clients: list[Theirs], transport: str, direction: str
) -> None:
    """Our server and several libzmq clients: ours binds and they connect, or each of
    them binds and ours connects to every one."""
    if direction == "we_bind":
        ep = await bind_ours(ours, transport, lab.ipc_dir)
        for client in clients:
            client.sock.connect(ep)
    else:
        for client in clients:
            await ours.connect(lab.bind_zmq(client.sock, transport).zmq)


async def served(ours: Socket, client: Theirs, routing_id: bytes) -> zmtp.PeerInfo:
    """A round trip between our ROUTER and a libzmq DEALER client; who sent the
    request, as our socket saw it."""
    await client.send([b"hello"])
    received = await ours.recv_message()
    assert received.parts == [routing_id, b"hello"]
    await ours.send_multipart([routing_id, b"welcome"])
    assert await client.recv() == [b"welcome"]
    return received.peer


def check_peer(peer: zmtp.PeerInfo, mechanism: str, user_id: bytes, transport: str) -> None:
    """What our socket tells of a libzmq DEALER client let in by ZAP."""
    assert peer.mechanism == mechanism
    assert peer.user_id == user_id
    assert peer.get("User-Id") == user_id.decode()
    assert peer.address == _address(transport).decode()
    assert peer.get("Peer-Address") == peer.address
    assert peer.socket_type is _S.DEALER
    assert peer.get("Socket-Type") == "DEALER"


# ----------------------------------------------------------------------- CURVE keys


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("location", ["directory", "keys"])
async def test_our_authenticator_allows_and_refuses_curve_keys(
    location: str,
    direction: str,
    transport: str,
    tmp_path: Path,
    lab_factory: Callable[[zmtp.Context], Lab],
) -> None:
    keys = CurveKeys()
    allowed_dir, other_dir = tmp_path / "allowed", tmp_path / "other"
    allowed_dir.mkdir()
    other_dir.mkdir()
    _, allowed_secret_file = create_certificates(allowed_dir, "client")
    _, refused_secret_file = create_certificates(other_dir, "intruder")
    allowed_public, allowed_secret = load_certificate(allowed_secret_file)
    refused_public, refused_secret = load_certificate(refused_secret_file)
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx, Authenticator(ctx) as auth:
            if location == "directory":
                auth.configure_curve(location=allowed_dir)
            else:
                auth.configure_curve(location=[allowed_public, keys.client.public])
            lab = lab_factory(ctx)
            server = ctx.socket(_S.ROUTER, **keys.ours(server=True))
            mon = server.monitor()
            base = keys.theirs(server=False)
            good = lab.theirs(
                _S.DEALER,
                **{**base, "CURVE_PUBLICKEY": allowed_public, "CURVE_SECRETKEY": allowed_secret},
                ROUTING_ID=b"good",
            )
            bad = lab.theirs(
                _S.DEALER,
                **{**base, "CURVE_PUBLICKEY": refused_public, "CURVE_SECRETKEY": refused_secret},
                ROUTING_ID=b"bad",
            )
            bad_mon = ZmqMonitor(lab.zmq_socket, bad.sock)
            await link_both(lab, server, [bad, good], transport, direction)

            seen = await bad_mon.until(
                zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_SUCCEEDED
            )
            assert (seen[-1]["event"], seen[-1]["value"]) == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)
            refused = (await events_until(mon, E.HANDSHAKE_FAILED))[-1]
            assert refused.detail == {"error": "AuthenticationFailed", "status": 400}
            peer = await served(server, good, b"good")
            check_peer(peer, "CURVE", allowed_public, transport)  # the key in Z85 (pyzmq's)
            assert peer.identity == b"good"
            await bad.nothing_arrives()
            await Ours(server).nothing_arrives()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_pyzmq_thread_authenticator_with_our_curve_clients(
    direction: str,
    transport: str,
    tmp_path: Path,
    lab_factory: Callable[[zmtp.Context], Lab],
    zmq_context: Any,
) -> None:
    """pyzmq's handler reads a directory of our certificates: our client whose key is
    there is served; the other one gets ERROR 400 and reports it."""
    keys = CurveKeys()
    public_file, secret_file = create_certificates(tmp_path, "ours")
    public, secret = load_certificate(secret_file)
    assert load_certificate(public_file) == (public, None)
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            with thread_authenticator(zmq_context, certificates=tmp_path):
                server = lab.theirs(_S.ROUTER, ROUTER_MANDATORY=1, **keys.theirs(server=True))
                zmon = ZmqMonitor(lab.zmq_socket, server.sock)
                good = ctx.socket(
                    _S.DEALER,
                    routing_id=b"good",
                    curve_serverkey=keys.server.public,
                    curve_secretkey=secret,
                )
                bad = ctx.socket(
                    _S.DEALER,
                    linger=0,
                    curve_serverkey=keys.server.public,
                    curve_secretkey=KeyPair.new().secret,
                )
                bad_mon = bad.monitor()
                if direction == "we_bind":
                    # Our clients bind; the libzmq server connects to both.
                    for ours in (bad, good):
                        server.sock.connect(await bind_ours(ours, transport, lab.ipc_dir))
                else:
                    ep = lab.bind_zmq(server.sock, transport).zmq
                    await bad.connect(ep)
                    await good.connect(ep)

                failed = (await events_until(bad_mon, E.HANDSHAKE_FAILED))[-1]
                assert failed.detail == {"error": "PeerError", "status": 400}
                seen = await zmon.until(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
                assert seen[-1]["value"] == 400
                await good.wait_for_peers(1)
                await good.send_multipart([b"hello"])
                frames = await trio.to_thread.run_sync(
                    lambda: server.sock.recv_multipart(copy=False)
                )
                assert [f.bytes for f in frames] == [b"good", b"hello"]
                assert frames[1].get("User-Id") == public.decode()  # pyzmq's: Z85
                await server.send_routed([b"good", b"welcome"])
                assert await good.recv_multipart() == [b"welcome"]
                await server.nothing_arrives()


# ----------------------------------------------------------------------- PLAIN


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_our_plain_server_with_our_authenticator(
    direction: str, transport: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx, Authenticator(ctx) as auth:
            auth.configure_plain(passwords={USERNAME: PASSWORD})
            lab = lab_factory(ctx)
            server = ctx.socket(_S.ROUTER, plain_server=True)
            mon = server.monitor()
            good = lab.theirs(
                _S.DEALER,
                PLAIN_USERNAME=USERNAME.encode(),
                PLAIN_PASSWORD=PASSWORD.encode(),
                ROUTING_ID=b"good",
            )
            bad = lab.theirs(_S.DEALER, PLAIN_USERNAME=USERNAME.encode(), PLAIN_PASSWORD=b"wrong")
            bad_mon = ZmqMonitor(lab.zmq_socket, bad.sock)
            await link_both(lab, server, [bad, good], transport, direction)

            # Our ERROR 400 is well formed; libzmq's PLAIN client expects its own
            # "^RROR" (D-9), so it fails the handshake as an unexpected command.
            seen = await bad_mon.until(
                zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                zmq.EVENT_HANDSHAKE_FAILED_AUTH,
                zmq.EVENT_HANDSHAKE_SUCCEEDED,
            )
            assert seen[-1]["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            assert seen[-1]["value"] == zmq.PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND
            refused = (await events_until(mon, E.HANDSHAKE_FAILED))[-1]
            assert refused.detail == {"error": "AuthenticationFailed", "status": 400}
            peer = await served(server, good, b"good")
            check_peer(peer, "PLAIN", USERNAME.encode(), transport)
            await Ours(server).nothing_arrives()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_libzmq_plain_server_with_our_clients(
    direction: str,
    transport: str,
    lab_factory: Callable[[zmtp.Context], Lab],
    zmq_context: Any,
) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            with thread_authenticator(zmq_context, passwords={USERNAME: PASSWORD}):
                server = lab.theirs(_S.ROUTER, ROUTER_MANDATORY=1, PLAIN_SERVER=1)
                zmon = ZmqMonitor(lab.zmq_socket, server.sock)
                good = ctx.socket(
                    _S.DEALER,
                    routing_id=b"good",
                    plain_username=USERNAME,
                    plain_password=PASSWORD,
                )
                bad = ctx.socket(
                    _S.DEALER, linger=0, plain_username=USERNAME, plain_password="wrong"
                )
                bad_mon = bad.monitor()
                if direction == "we_bind":
                    for ours in (bad, good):
                        server.sock.connect(await bind_ours(ours, transport, lab.ipc_dir))
                else:
                    ep = lab.bind_zmq(server.sock, transport).zmq
                    await bad.connect(ep)
                    await good.connect(ep)

                # libzmq's malformed ERROR (5E 'RROR' 03 '400') is read as the ERROR
                # it means.
                failed = (await events_until(bad_mon, E.HANDSHAKE_FAILED))[-1]
                assert failed.detail == {"error": "PeerError", "status": 400}
                seen = await zmon.until(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
                assert seen[-1]["value"] == 400
                await good.wait_for_peers(1)
                await good.send_multipart([b"hello"])
                frames = await trio.to_thread.run_sync(
                    lambda: server.sock.recv_multipart(copy=False)
                )
                assert [f.bytes for f in frames] == [b"good", b"hello"]
                assert frames[1].get("User-Id") == USERNAME
                await server.send_routed([b"good", b"welcome"])
                assert await good.recv_multipart() == [b"welcome"]
                await server.nothing_arrives()


# ----------------------------------------------------------------------- a ZAP handler


MECHANISMS = ["CURVE", "PLAIN", "NULL"]


def _server_options(mechanism: str, keys: CurveKeys, domain: bytes = b"global") -> dict[str, Any]:
    """Our server's options: routing id SRV, a ZAP domain."""
    return {
        "routing_id": b"SRV",
        "zap_domain": domain,
        **our_security(mechanism, True, keys),
    }


def _their_server_options(mechanism: str, keys: CurveKeys, domain: bytes) -> dict[str, Any]:
    options = {"ROUTING_ID": b"SRV", "ROUTER_MANDATORY": 1, **their_security(mechanism, True, keys)}
    if domain:  # libzmq refuses an empty one (EINVAL): unset is how it has none
        options["ZAP_DOMAIN"] = domain
    return options


def _client_options(mechanism: str, keys: CurveKeys) -> dict[str, Any]:
    return {"ROUTING_ID": b"CLI", **their_security(mechanism, False, keys)}


def _credentials(mechanism: str, keys: CurveKeys) -> list[bytes]:
    if mechanism == "CURVE":
        return [z85.decode(keys.client.public)]
    if mechanism == "PLAIN":
        return [USERNAME.encode(), PASSWORD.encode()]
    return []


def _address(transport: str) -> bytes:
    if transport == "tcp":
        return b"127.0.0.1"
    # The client is this process: libzmq's form for an ipc peer (SO_PEERCRED).
    return f"localhost:{os.getuid()}:{os.getgid()}:{os.getpid()}".encode()


class HandWrittenHandler:
    """A ZAP handler written by hand: our ROUTER at ``inproc://zeromq.zap.01``, which
    records each request and answers ``status`` (RFC 27's seven frames after the
    envelope)."""

    def __init__(self, ctx: zmtp.Context, status: bytes) -> None:
        self.sock = ctx.socket(_S.ROUTER)
        self.status = status
        self.requests: list[list[bytes]] = []

    async def serve(self) -> None:
        await self.sock.bind(ZAP_ENDPOINT)
        while True:
            frames = await self.sock.recv_multipart()
            self.requests.append(frames)
            delimiter = frames.index(b"")
            envelope, request = frames[: delimiter + 1], frames[delimiter + 1 :]
            user_id = b"user-42" if self.status == b"200" else b""
            metadata = encode_properties([("X-Zap", b"hello")]) if self.status == b"200" else b""
            await self.sock.send_multipart(
                [*envelope, b"1.0", request[1], self.status, b"text", user_id, metadata]
            )


#: (mechanism, ZAP domain): NULL asks only with a domain; libzmq sends "" for none.
REQUESTS = [
    ("CURVE", b"global"),
    ("CURVE", b""),
    ("PLAIN", b"global"),
    ("PLAIN", b""),
    ("NULL", b"global"),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("mechanism", "domain"), REQUESTS, ids=[f"{m}-{d.decode() or 'none'}" for m, d in REQUESTS]
)
async def test_zap_request_is_libzmqs(
    mechanism: str,
    domain: bytes,
    transport: str,
    lab_factory: Callable[[zmtp.Context], Lab],
    zmq_socket: Any,
) -> None:
    """Our server and a libzmq server with the same options, a libzmq client each: the
    two ZAP requests are the same frames (after the handlers' routing ids), and are
    RFC 27's fields in libzmq's form."""
    keys = CurveKeys()
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx, trio.open_nursery() as nursery:
            lab = lab_factory(ctx)
            handler = HandWrittenHandler(ctx, b"200")
            nursery.start_soon(handler.serve)
            theirs_handler = zmq_socket(zmq.ROUTER)
            theirs_handler.bind(ZAP_ENDPOINT)

            ours = ctx.socket(_S.ROUTER, **_server_options(mechanism, keys, domain))
            client = lab.theirs(_S.DEALER, **_client_options(mechanism, keys))
            client.sock.connect(await bind_ours(ours, transport, lab.ipc_dir))
            await client.send([b"to ours"])
            assert await ours.recv_multipart() == [b"CLI", b"to ours"]

            theirs = lab.theirs(_S.ROUTER, **_their_server_options(mechanism, keys, domain))
            client2 = lab.theirs(_S.DEALER, **_client_options(mechanism, keys))
            client2.sock.connect(lab.bind_zmq(theirs.sock, transport).zmq)
            libzmqs = await trio.to_thread.run_sync(theirs_handler.recv_multipart)

            (ours_request,) = handler.requests
            assert ours_request[1:] == libzmqs[1:]
            assert ours_request[1:] == [
                b"",
                b"1.0",
                b"1",
                domain,
                _address(transport),
                b"SRV",
                mechanism.encode(),
                *_credentials(mechanism, keys),
            ]
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", [b"200", b"300", b"400", b"500"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_hand_written_zap_handler_decides(
    mechanism: str,
    status: bytes,
    transport: str,
    lab_factory: Callable[[zmtp.Context], Lab],
) -> None:
    keys = CurveKeys()
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx, trio.open_nursery() as nursery:
            lab = lab_factory(ctx)
            handler = HandWrittenHandler(ctx, status)
            nursery.start_soon(handler.serve)
            server = ctx.socket(_S.ROUTER, **_server_options(mechanism, keys))
            mon = server.monitor()
            client = lab.theirs(_S.DEALER, **_client_options(mechanism, keys))
            zmon = ZmqMonitor(lab.zmq_socket, client.sock)
            client.sock.connect(await bind_ours(server, transport, lab.ipc_dir))

            if status == b"200":
                peer = await served(server, client, b"CLI")
                check_peer(peer, mechanism, b"user-42", transport)
                # The reply's metadata joins the handshake's properties (RFC 27).
                assert peer.get("X-Zap") == "hello"
                assert peer.get("Identity") == "CLI"
            else:
                failed = (await events_until(mon, E.HANDSHAKE_FAILED))[-1]
                assert failed.detail == {"error": "AuthenticationFailed", "status": int(status)}
                seen = await zmon.until(zmq.EVENT_DISCONNECTED)
                kinds = [ev["event"] for ev in seen]
                assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in kinds
                if status == b"300":
                    # Closed without ERROR: libzmq only sees the connection end.
                    assert zmq.EVENT_HANDSHAKE_FAILED_AUTH not in kinds
                    assert zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL not in kinds
                    assert zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL in kinds
                elif mechanism == "PLAIN":
                    # libzmq's PLAIN client and our well-formed ERROR (D-27).
                    failure = seen[kinds.index(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)]
                    assert failure["value"] == zmq.PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND
                else:
                    failure = seen[kinds.index(zmq.EVENT_HANDSHAKE_FAILED_AUTH)]
                    assert failure["value"] == int(status)
                await Ours(server).nothing_arrives()
            assert len(handler.requests) >= 1
            nursery.cancel_scope.cancel()


#: Replies a ZAP handler may get wrong (after the envelope), and libzmq's name for each.
BAD_REPLIES = {
    "bad-version": ([b"2.0", b"1", b"200", b"", b"", b""], "ZAP_BAD_VERSION"),
    "bad-request-id": ([b"1.0", b"7", b"200", b"", b"", b""], "ZAP_BAD_REQUEST_ID"),
    "bad-status": ([b"1.0", b"1", b"201", b"", b"", b""], "ZAP_INVALID_STATUS_CODE"),
    "too-few-frames": ([b"1.0", b"1", b"200", b"", b""], "ZAP_MALFORMED_REPLY"),
    "bad-metadata": ([b"1.0", b"1", b"200", b"", b"", b"\x05"], "ZAP_INVALID_METADATA"),
}


@pytest.mark.parametrize("bad", sorted(BAD_REPLIES))
async def test_a_bad_zap_reply_fails_the_handshake(
    bad: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    """A reply libzmq would refuse (each of its ZAP protocol errors) fails our server's
    handshake as a ``ZapError`` with libzmq's code, without ERROR: the libzmq client
    sees the connection end, no AUTH failure."""
    reply, code = BAD_REPLIES[bad]
    keys = CurveKeys()
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx, trio.open_nursery() as nursery:
            lab = lab_factory(ctx)
            handler = ctx.socket(_S.ROUTER)
            await handler.bind(ZAP_ENDPOINT)

            async def answer() -> None:
                frames = await handler.recv_multipart()
                delimiter = frames.index(b"")
                await handler.send_multipart([*frames[: delimiter + 1], *reply])

            nursery.start_soon(answer)
            server = ctx.socket(_S.ROUTER, **_server_options("CURVE", keys))
            mon = server.monitor()
            client = lab.theirs(_S.DEALER, **_client_options("CURVE", keys))
            zmon = ZmqMonitor(lab.zmq_socket, client.sock)
            client.sock.connect(await bind_ours(server, "tcp", lab.ipc_dir))
            failed = (await events_until(mon, E.HANDSHAKE_FAILED))[-1]
            assert failed.detail == {"error": "ZapError", "code": code}
            assert ZAP_ERROR_CODES[code] == getattr(zmq, f"PROTOCOL_ERROR_{code}")
            seen = await zmon.until(zmq.EVENT_DISCONNECTED)
            kinds = [ev["event"] for ev in seen]
            assert zmq.EVENT_HANDSHAKE_FAILED_AUTH not in kinds
            assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in kinds
            await Ours(server).nothing_arrives()
            nursery.cancel_scope.cancel()
