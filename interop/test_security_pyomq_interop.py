"""Our sockets under CURVE and PLAIN against omq.rs (pyomq 0.21), a second, independent
ZeroMQ implementation (Rust), with a pyzmq-shaped blocking API.

DEALER/ROUTER and PUSH/PULL, each side of each pair ours, CURVE and PLAIN, either side
bound (the bound side is the mechanism's server), over tcp and ipc: a message each way
where the pattern allows, and who sent it as our socket reports it.  Then refusals both
ways: our Authenticator refusing a pyomq client (which does not give up: it reconnects
at once, over and over, where libzmq stops after an ERROR), and a pyomq server refusing
ours (ERROR 400, our client stops).

pyomq's own quirks, worked around here: a CURVE server runs NULL unless its public key
is set too (``CurveKeys.theirs`` sets it); a PLAIN server needs ``set_plain_auth``
(it has no ZAP); ``recv(DONTWAIT)`` on an empty socket raises an internal error instead
of ``Again``, so "nothing arrives" is checked with ``poll``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import zmtp
from zmtp.auth import Authenticator
from zmtp.sockets import Socket

from ._helpers import DIRECTIONS, TEST_TIMEOUT, TIMEOUT, TIMEOUT_MS, TRANSPORTS, ipc_path
from ._security_helpers import PASSWORD, USERNAME, CurveKeys, KeyPair, events_until
from ._sock_helpers import QUIET, Ours, bind_ours

pyomq = pytest.importorskip("pyomq")
pytest.importorskip("nacl")

pytestmark = pytest.mark.interop

_S = zmtp.SocketType
E = zmtp.EventType

if not (pyomq.has("curve") and pyomq.has("plain")):  # pragma: no cover
    pytest.skip("pyomq built without CURVE or PLAIN", allow_module_level=True)


class OmqFactory:
    """Makes pyomq sockets (LINGER 0, bounded RCVTIMEO/SNDTIMEO) and closes them all."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.sockets: list[Any] = []

    def __call__(self, socket_type: zmtp.SocketType, **options: Any) -> Any:
        sock = self.context.socket(getattr(pyomq, socket_type.name))
        self.sockets.append(sock)
        sock.setsockopt(pyomq.LINGER, 0)
        sock.setsockopt(pyomq.RCVTIMEO, TIMEOUT_MS)
        sock.setsockopt(pyomq.SNDTIMEO, TIMEOUT_MS)
        for name, value in options.items():
            sock.setsockopt(getattr(pyomq, name), value)
        return sock

    def close_all(self) -> None:
        while self.sockets:
            self.sockets.pop().close(linger=0)


@pytest.fixture
def omq() -> Iterator[OmqFactory]:
    """A pyomq context per test; sockets closed, then the context terminated (in a
    thread with a bounded join: a leak fails the test rather than hang it)."""
    context = pyomq.Context()
    factory = OmqFactory(context)
    try:
        yield factory
    finally:
        factory.close_all()
        thread = threading.Thread(target=context.term, name="pyomq-term", daemon=True)
        thread.start()
        thread.join(TIMEOUT)
        if thread.is_alive():
            pytest.fail("pyomq context did not terminate")


def omq_bind(sock: Any, transport: str, ipc_dir: Path) -> str:
    if transport == "tcp":
        endpoint = sock.bind("tcp://127.0.0.1:0")
    else:
        endpoint = sock.bind(f"ipc://{ipc_path(ipc_dir, 'm')}")
    return endpoint.decode() if isinstance(endpoint, bytes) else endpoint


class Omq:
    """A pyomq socket behind the small async interface of ``Theirs``."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    async def send(self, frames: list[bytes]) -> None:
        await trio.to_thread.run_sync(self.sock.send_multipart, frames)

    async def recv(self) -> list[bytes]:
        return list(await trio.to_thread.run_sync(self.sock.recv_multipart))

    async def nothing_arrives(self) -> None:
        # Not recv(DONTWAIT): pyomq raises an internal error there instead of Again.
        if await trio.to_thread.run_sync(self.sock.poll, int(QUIET * 1000)):
            pytest.fail(f"unexpected message {self.sock.recv_multipart()!r}")


def security(
    mechanism: str, server: bool, keys: CurveKeys
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(our options, pyomq's) with our socket the server or the client."""
    if mechanism == "CURVE":
        return keys.ours(server), keys.theirs(not server)
    if server:
        return {"plain_server": True}, {
            "PLAIN_USERNAME": USERNAME.encode(),
            "PLAIN_PASSWORD": PASSWORD.encode(),
        }
    return {"plain_username": USERNAME, "plain_password": PASSWORD}, {"PLAIN_SERVER": 1}


#: (ours, pyomq's)
PAIRS = [
    (_S.DEALER, _S.ROUTER),
    (_S.ROUTER, _S.DEALER),
    (_S.PUSH, _S.PULL),
    (_S.PULL, _S.PUSH),
]


async def exchange(ours: Socket, theirs: Omq, our_type: zmtp.SocketType) -> zmtp.PeerInfo | None:
    """A message each way where the pattern allows; who sent ours, if we received."""
    peer = None
    if our_type is _S.DEALER:
        await ours.send_multipart([b"request", b"", b"x" * 300])
        routing_id, *body = await theirs.recv()
        assert body == [b"request", b"", b"x" * 300]
        await theirs.send([routing_id, b"reply", b""])
        assert await ours.recv_multipart() == [b"reply", b""]
    elif our_type is _S.ROUTER:
        await theirs.send([b"request", b"", b"y" * 70000])
        received = await ours.recv_message()
        assert received.parts == [b"omq", b"request", b"", b"y" * 70000]
        peer = received.peer
        await ours.send_multipart([b"omq", b"reply"])
        assert await theirs.recv() == [b"reply"]
    elif our_type is _S.PUSH:
        await ours.send_multipart([b"pushed", b""])
        assert await theirs.recv() == [b"pushed", b""]
    else:
        await theirs.send([b"pushed", b"z" * 1000])
        received = await ours.recv_message()
        assert received.parts == [b"pushed", b"z" * 1000]
        peer = received.peer
    return peer


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0].name}-{p[1].name}")
@pytest.mark.parametrize("mechanism", ["CURVE", "PLAIN"])
async def test_secure_exchange_with_pyomq(
    *,
    mechanism: str,
    pair: tuple[zmtp.SocketType, zmtp.SocketType],
    direction: str,
    transport: str,
    omq: OmqFactory,
    ipc_dir: Path,
) -> None:
    our_type, their_type = pair
    keys = CurveKeys()
    ours_server = direction == "we_bind"
    our_opts, their_opts = security(mechanism, ours_server, keys)
    if their_type in (_S.DEALER, _S.ROUTER):
        their_opts["ROUTING_ID"] = b"omq"
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx, Authenticator(ctx) as auth:
            auth.configure_plain(passwords={USERNAME: PASSWORD})
            auth.configure_curve(location=[keys.client.public])
            ours = ctx.socket(our_type, **our_opts)
            sock = omq(their_type, **their_opts)
            if ours_server:
                sock.connect(await bind_ours(ours, transport, ipc_dir))
            else:
                if mechanism == "PLAIN":
                    sock.set_plain_auth([(USERNAME, PASSWORD)])
                else:
                    sock.set_curve_auth([keys.client.public])
                await ours.connect(omq_bind(sock, transport, ipc_dir))
            await ours.wait_for_peers(1)
            peer = await exchange(ours, Omq(sock), our_type)
            if peer is not None:
                assert peer.mechanism == mechanism
                assert peer.socket_type is their_type
                if ours_server:
                    # Our Authenticator let the client in and named it.
                    user = USERNAME.encode() if mechanism == "PLAIN" else keys.client.public
                    assert peer.user_id == user
                else:
                    assert peer.user_id == b""


@pytest.mark.parametrize("mechanism", ["CURVE", "PLAIN"])
async def test_our_authenticator_refuses_a_pyomq_client(
    mechanism: str, omq: OmqFactory, ipc_dir: Path
) -> None:
    """A refused pyomq client gets ERROR 400 on each attempt and delivers nothing.

    (It reconnects at once after each ERROR: RFC 26 says a client SHALL NOT reconnect
    with the same credentials after one, and libzmq does not; that is pyomq's choice,
    our server refuses each attempt alike.)
    """
    keys = CurveKeys()
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx, Authenticator(ctx) as auth:
            auth.configure_plain(passwords={USERNAME: PASSWORD})
            auth.configure_curve(location=[keys.client.public])
            our_opts, their_opts = security(mechanism, True, keys)
            if mechanism == "PLAIN":
                their_opts["PLAIN_PASSWORD"] = b"wrong"
            else:
                intruder = KeyPair.new()
                their_opts.update(CURVE_PUBLICKEY=intruder.public, CURVE_SECRETKEY=intruder.secret)
            pull = ctx.socket(_S.PULL, **our_opts)
            mon = pull.monitor()
            push = omq(_S.PUSH, **their_opts)
            push.connect(await bind_ours(pull, "tcp", ipc_dir))
            await trio.to_thread.run_sync(lambda: push.send(b"never", pyomq.DONTWAIT))
            refused = (await events_until(mon, E.HANDSHAKE_FAILED))[-1]
            assert refused.detail == {"error": "AuthenticationFailed", "status": 400}
            push.close(linger=0)
            await Ours(pull).nothing_arrives()


@pytest.mark.parametrize("mechanism", ["CURVE", "PLAIN"])
async def test_a_pyomq_server_refuses_our_client(
    mechanism: str, omq: OmqFactory, ipc_dir: Path
) -> None:
    keys = CurveKeys()
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            our_opts, their_opts = security(mechanism, False, keys)
            pull = omq(_S.PULL, **their_opts)
            if mechanism == "PLAIN":
                pull.set_plain_auth([(USERNAME, "other-password")])
            else:
                pull.set_curve_auth([KeyPair.new().public])
            push = ctx.socket(_S.PUSH, linger=0, **our_opts)
            mon = push.monitor()
            await push.connect(omq_bind(pull, "ipc", ipc_dir))
            failed = (await events_until(mon, E.HANDSHAKE_FAILED))[-1]
            assert failed.detail == {"error": "PeerError", "status": 400}
            await events_until(mon, E.RECONNECT_STOPPED)  # an ERROR is final
            await push.send_multipart([b"never"])
            await Omq(pull).nothing_arrives()
