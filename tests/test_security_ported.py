"""libzmq 4.3.5's raw-socket security tests, ported to our sockets.

The cases of ``tests/test_security_curve.cpp``, ``test_security_plain.cpp`` and
``test_security_zap.cpp`` (and ``test_security_null.cpp``'s vanilla socket), against a
zmtp DEALER bound over tcp (some over ipc) with libzmq's server configuration
(``routing_id`` ``IDENT``, a ZAP domain; CURVE with ``zap_enforce_domain``) and a ZAP
handler written by hand, as libzmq's ``zap_handler_generic``: a ROUTER of ours bound at
``inproc://zeromq.zap.01`` that answers as each case asks.

The client is a raw stream: the greeting and the handshake are written by hand, with
our sans-IO mechanisms (``CurveClient``, ``PlainClient``) making valid commands that a
case then tampers with.  Each case checks what libzmq's checks, and more:

* the bytes the peer reads until EOF, exactly (a CURVE WELCOME is random: its size and
  name), i.e. whether an ERROR was sent and with which reason, or silence;
* the HANDSHAKE_FAILED event on our socket, with the exception's name and, for a ZAP
  refusal, the status code;
* that nothing of the peer reaches the application;
* that the socket carries on: a well-configured client of ours gets through afterwards.

No sleeps: the raw stream's EOF and the monitor are the synchronisation, each wait
bounded by :data:`WAIT` (a few cases set ``handshake_ivl`` to 200 ms: the server's
own timer is what ends them).  Where we differ from libzmq the case's comment says so:
we send ERROR for a malformed CURVE HELLO or INITIATE (libzmq closes without a word, as
it does for a socket-type mismatch, D-13); our PLAIN ERROR is well formed (D-9); a ZAP
handler that takes a request and never answers, or goes away, costs the handshake its
``handshake_ivl`` (libzmq fails it at once when the handler's pipe closes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from nacl.public import PrivateKey

import zmtp
from zmtp import SocketType
from zmtp.protocol import z85
from zmtp.protocol.commands import (
    Command,
    encode_command,
    encode_error,
    encode_ready,
    parse_command,
)
from zmtp.protocol.connection import Connection, Phase
from zmtp.protocol.greeting import greeting_tail, signature
from zmtp.protocol.mechanisms import Mechanism, NullMechanism, PlainClient
from zmtp.protocol.mechanisms.curve import CurveClient
from zmtp.protocol.zap import ZAP_ENDPOINT, ZapRequest, parse_request
from zmtp.sockets import Socket
from zmtp.tools.grammar import build_v1_frame, build_v2_frame

from ._helpers import bind_address, libzmq_greeting, open_stream

#: Bound on every single wait (the whole file runs in a few seconds).
WAIT = 5

SERVER_PUBLIC, SERVER_SECRET = zmtp.curve_keypair()
CLIENT_PUBLIC, CLIENT_SECRET = zmtp.curve_keypair()
USERNAME, PASSWORD = b"admin", b"password"  # test_security_plain.cpp's
ROUTING_ID = b"IDENT"  # the server's, as in libzmq's tests
DOMAIN = b"ZAPTEST"  # testutil_security.cpp's test_zap_domain

#: The server socket's options per mechanism: libzmq's socket_config_*_server.
SERVERS: dict[str, dict[str, Any]] = {
    "null": {"zap_domain": DOMAIN},
    "plain": {"plain_server": True, "zap_domain": DOMAIN},
    "curve": {
        "curve_server": True,
        "curve_secretkey": SERVER_SECRET,
        "zap_domain": DOMAIN,
        "zap_enforce_domain": True,
    },
}
#: A client socket of ours that the ZAP handler below lets in.
GOOD_CLIENTS: dict[str, dict[str, Any]] = {
    "null": {},
    "plain": {"plain_username": USERNAME, "plain_password": PASSWORD},
    "curve": {
        "curve_serverkey": SERVER_PUBLIC,
        "curve_publickey": CLIENT_PUBLIC,
        "curve_secretkey": CLIENT_SECRET,
    },
}
#: Our properties, as a DEALER's handshake carries them.
DEALER_PROPERTIES = [("Socket-Type", b"DEALER"), ("Identity", b"")]


def raw_mechanism(mech: str, *, good: bool = True) -> Mechanism:
    """The sans-IO client mechanism a raw peer speaks: good credentials or bogus ones."""
    if mech == "null":
        return NullMechanism()
    if mech == "plain":
        return PlainClient(USERNAME, PASSWORD) if good else PlainClient(b"wronguser", b"wrongpass")
    if good:
        return CurveClient(SERVER_PUBLIC, CLIENT_PUBLIC, CLIENT_SECRET)
    bogus_public, bogus_secret = zmtp.curve_keypair()
    return CurveClient(SERVER_PUBLIC, bogus_public, bogus_secret)


def server_greeting(mech: str) -> bytes:
    """The 64 bytes our server sends a ZMTP 3 peer (libzmq's form: routing-id length
    + 1 in the padding; as-server set by PLAIN and CURVE servers)."""
    return (
        signature(len(ROUTING_ID))
        + b"\x03"
        + greeting_tail(mech.upper().encode(), as_server=mech != "null")
    )


WELCOME_HEAD = b"\x04\xa8\x07WELCOME"  # a 168-octet command: short frame, then the name
WELCOME_FRAME = 2 + 168


# ----------------------------------------------------------------------- the ZAP handler


@dataclass
class ZapHandler:
    """libzmq's ``zap_handler_generic``: lets in the right CURVE key or PLAIN password
    (and any NULL peer); misbehaves as ``plan`` says for successive requests that it
    would let in (a refusal is always a well-formed 400), then behaves (``"ok"``).

    Plans: ``ok``, ``300``, ``500`` (the status), ``wrong_version``,
    ``wrong_request_id``, ``invalid_status``, ``too_many_parts``, ``too_few_parts``,
    ``bad_metadata``, ``do_not_send`` (read, never answer), ``disconnect`` (read the
    request, then close the handler's socket).
    """

    plan: list[str] = field(default_factory=list)
    requests: list[ZapRequest] = field(default_factory=list)
    #: Set at each request (then replaced).
    arrived: trio.Event = field(default_factory=trio.Event)

    def authenticated(self, req: ZapRequest) -> bool:
        if req.mechanism == b"CURVE":
            return req.credentials == (z85.decode(CLIENT_PUBLIC),)
        if req.mechanism == b"PLAIN":
            return req.credentials == (USERNAME, PASSWORD)
        return req.mechanism == b"NULL"

    def reply(self, req: ZapRequest) -> list[bytes] | str:
        if not self.authenticated(req):
            return [b"1.0", req.request_id, b"400", b"Invalid client public key", b"", b""]
        how = self.plan.pop(0) if self.plan else "ok"
        if how in ("do_not_send", "disconnect"):
            return how
        version = b"invalid_version" if how == "wrong_version" else b"1.0"
        request_id = b"invalid_request_id" if how == "wrong_request_id" else req.request_id
        status = {"300": b"300", "500": b"500", "invalid_status": b"invalid_status"}
        metadata = b"\x05bad" if how == "bad_metadata" else b""
        frames = [version, request_id, status.get(how, b"200"), b"OK", b"anonymous", metadata]
        if how == "too_many_parts":
            frames.append(b"")
        if how == "too_few_parts":
            frames.pop()
        return frames

    async def serve(self, zap: Socket) -> None:
        while True:
            msg = await zap.recv_multipart()
            request = parse_request(msg[2:])
            self.requests.append(request)
            self.arrived.set()
            self.arrived = trio.Event()
            answer = self.reply(request)
            if answer == "disconnect":
                await zap.aclose()
                return
            if isinstance(answer, list):
                await zap.send_multipart([msg[0], b"", *answer])


@asynccontextmanager
async def zap_handler(ctx: zmtp.Context, *plan: str) -> AsyncIterator[ZapHandler]:
    """A :class:`ZapHandler` bound at the ZAP endpoint for the duration."""
    handler = ZapHandler(list(plan))
    zap = ctx.socket("ROUTER", linger=0)
    await zap.bind(ZAP_ENDPOINT)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handler.serve, zap)
        try:
            yield handler
        finally:
            nursery.cancel_scope.cancel()
            await zap.aclose()


# ----------------------------------------------------------------------- the server


@dataclass
class Server:
    ctx: zmtp.Context
    sock: Socket
    endpoint: str
    mon: zmtp.Monitor
    mech: str

    async def failure(self) -> zmtp.SocketEvent:
        """The next HANDSHAKE_FAILED; none may succeed before it."""
        with trio.fail_after(WAIT):
            async for ev in self.mon:
                assert ev.type is not zmtp.EventType.HANDSHAKE_SUCCEEDED, ev
                if ev.type is zmtp.EventType.HANDSHAKE_FAILED:
                    return ev
        raise AssertionError("monitor closed")

    async def success(self) -> zmtp.SocketEvent:
        """The next HANDSHAKE_SUCCEEDED; none may fail before it."""
        with trio.fail_after(WAIT):
            async for ev in self.mon:
                assert ev.type is not zmtp.EventType.HANDSHAKE_FAILED, ev
                if ev.type is zmtp.EventType.HANDSHAKE_SUCCEEDED:
                    return ev
        raise AssertionError("monitor closed")

    def nothing_delivered(self) -> None:
        with pytest.raises(trio.WouldBlock):
            self.sock.recv_multipart_nowait()

    async def carries_on(self, client: dict[str, Any] | None = None) -> None:
        """A well-configured client of ours gets through, both ways, and nothing
        else was delivered before or after its message."""
        options = GOOD_CLIENTS[self.mech] if client is None else client
        good = self.ctx.socket("DEALER", linger=0, **options)
        try:
            with trio.fail_after(WAIT):
                await good.connect(self.endpoint)
                await good.send(b"good")
                assert await self.sock.recv_multipart() == [b"good"]
                await self.sock.send(b"back")
                assert await good.recv_multipart() == [b"back"]
            self.nothing_delivered()
        finally:
            await good.aclose()


@asynccontextmanager
async def serving(
    mech: str, transport: str = "tcp", *, overrides: dict[str, Any] | None = None
) -> AsyncIterator[Server]:
    """A DEALER configured as libzmq's test server for ``mech``, bound, monitored."""
    options = {"routing_id": ROUTING_ID, "linger": 0, **SERVERS[mech], **(overrides or {})}
    async with zmtp.Context() as ctx:
        sock = ctx.socket("DEALER", **options)
        endpoint = await sock.bind(bind_address(transport))
        mon = sock.monitor()
        try:
            yield Server(ctx, sock, endpoint, mon, mech)
        finally:
            mon.close()
            await sock.aclose()


# ----------------------------------------------------------------------- raw peers


class Raw:
    """A raw stream to the server.  What is sent is written by hand, or comes from a
    sans-IO client :class:`Connection` (``conn``) that the stream is pumped into;
    everything received is kept, so that a test can compare it all at EOF."""

    def __init__(self, stream: trio.abc.Stream, conn: Connection | None) -> None:
        self.stream = stream
        self.conn = conn
        self.received = bytearray()
        self._taken = 0  # what recv_exactly has handed out
        self._fed = 0  # what conn has been given

    async def send(self, data: bytes) -> None:
        """Send; the server may already have closed (it refused what came before)."""
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.stream.send_all(data)

    async def flush(self) -> None:
        if self.conn is not None and self.conn.phase is not Phase.CLOSED:
            await self.send(self.conn.bytes_to_send())

    async def _more(self) -> bool:
        try:
            chunk = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:  # a reset is as good as EOF here
            return False
        self.received += chunk
        return bool(chunk)

    def _feed(self) -> None:
        conn = self.conn
        if conn is None or conn.phase is Phase.CLOSED:
            return
        data, self._fed = bytes(self.received[self._fed :]), len(self.received)
        with suppress(zmtp.ProtocolError):  # the server's ERROR, or its EOF
            conn.receive_data(data)

    async def handshake(self) -> None:
        """Complete ``conn``'s handshake."""
        conn = self.conn
        assert conn is not None
        with trio.fail_after(WAIT):
            await self.flush()
            while conn.handshake is None:
                assert await self._more(), f"closed during the handshake: {self.received!r}"
                self._feed()
                await self.flush()

    async def recv_exactly(self, n: int) -> bytes:
        with trio.fail_after(WAIT):
            while len(self.received) - self._taken < n:
                assert await self._more(), f"EOF after {bytes(self.received)!r}"
        data = bytes(self.received[self._taken : self._taken + n])
        self._taken += n
        return data

    async def recv_command(self) -> bytes:
        """One whole command frame, header included."""
        head = await self.recv_exactly(2)
        if head[0] & 0x02:  # a long frame: 8-octet size
            head += await self.recv_exactly(7)
            size = int.from_bytes(head[1:], "big")
        else:
            size = head[1]
        return head + await self.recv_exactly(size)

    async def until_eof(self) -> bytes:
        """Everything the server sent, from its first byte, once it has closed
        (``conn``, if any, answering all along)."""
        with trio.fail_after(WAIT):
            await self.flush()
            while await self._more():
                self._feed()
                await self.flush()
        return bytes(self.received)


@asynccontextmanager
async def raw_peer(endpoint: str, mechanism: Mechanism | None = None) -> AsyncIterator[Raw]:
    """A raw stream to ``endpoint``; with ``mechanism``, a DEALER's sans-IO connection
    speaks through it."""
    with trio.fail_after(WAIT):
        stream = await open_stream(endpoint)
    conn = Connection(SocketType.DEALER, mechanism=mechanism) if mechanism else None
    try:
        yield Raw(stream, conn)
    finally:
        await stream.aclose()


def assert_sent(data: bytes, mech: str, *, welcome: bool = False, then: bytes = b"") -> None:
    """``data`` is our server's greeting, a CURVE WELCOME if ``welcome`` (random: only
    its size and name are known), then exactly ``then``."""
    assert data[:64] == server_greeting(mech)
    rest = data[64:]
    if welcome:
        assert rest[: len(WELCOME_HEAD)] == WELCOME_HEAD
        rest = rest[WELCOME_FRAME:]
    assert rest == then


def body_offset(frame: bytes) -> int:
    """Where a command frame's body starts: after a 2- or 9-octet header."""
    return 9 if frame[0] & 0x02 else 2


def command_of(frame: bytes) -> Command:
    return parse_command(frame[body_offset(frame) :])


def poke(frame: bytes, index: int, change: Callable[[int], int]) -> bytes:
    """``frame`` with octet ``index`` of its body changed (libzmq's tests index the
    command body: ``hello[5]`` is the last letter of the name)."""
    out = bytearray(frame)
    at = body_offset(frame) + index
    out[at] = change(out[at])
    return bytes(out)


def curve_greeting() -> bytes:
    """libzmq's ``zmtp_greeting_curve``: 3.0, CURVE, as-server 0, zero padding."""
    return b"\xff" + bytes(8) + b"\x7f\x03\x00" + b"CURVE".ljust(20, b"\x00") + bytes(32)


# ================================================================ test_security_curve.cpp

#: test_security_curve.cpp's misbehaving clients: (case, our error, ERROR reason or
#: None for silence).
CURVE_MISBEHAVIOUR: list[tuple[str, str, bytes | None]] = [
    # test_curve_security_invalid_hello_wrong_length: 04 06 05 'HELLO'
    ("hello_wrong_length", "HandshakeError", b"Malformed HELLO"),
    # ..._invalid_hello_command_name: hello[5] = 'X' ("HELLX")
    ("hello_command_name", "HandshakeError", b"Unexpected command"),
    # ..._invalid_hello_version: hello[6] = 2 (version 2.0)
    ("hello_version", "HandshakeError", b"Unsupported version"),
    # test_null_server_key: the client's HELLO box is not for our key (libzmq's
    # client seals it for the all-zero key; ours refuses to, so: another key)
    ("hello_for_another_server", "DecryptionFailed", None),
    # ..._invalid_initiate_wrong_length: 04 09 08 'INITIATE'
    ("initiate_wrong_length", "HandshakeError", b"Malformed INITIATE"),
    # ..._invalid_initiate_command_name: initiate[5] = 'X' ("INITIXTE")
    ("initiate_command_name", "HandshakeError", b"Unexpected command"),
    # ..._invalid_initiate_command_encrypted_cookie: initiate[30] changed
    ("initiate_encrypted_cookie", "DecryptionFailed", None),
    # ..._invalid_initiate_command_encrypted_content: initiate[150] changed
    ("initiate_encrypted_content", "DecryptionFailed", None),
    # test_null_client_public_key: INITIATE names C = 0 (a degenerate key)
    ("initiate_null_client_public_key", "DecryptionFailed", None),
    # test_null_client_secret_key: the vouch is sealed with c = 0, not with
    # the secret half of the C it names
    ("initiate_null_client_secret_key", "DecryptionFailed", None),
]


class TestCurve:
    """A CURVE server (domain, zap_enforce_domain, the handler); clients that go wrong
    at each step."""

    @pytest.mark.parametrize("transport", ["tcp", "ipc"])
    async def test_valid_credentials(self, transport: str) -> None:
        # test_curve_security_with_valid_credentials
        async with serving("curve", transport) as srv, zap_handler(srv.ctx) as handler:
            async with raw_peer(srv.endpoint, raw_mechanism("curve")) as raw:
                await raw.handshake()
                ev = await srv.success()
                assert ev.detail["socket_type"] == "DEALER"
                assert raw.conn is not None
                raw.conn.send_message([b"sealed"])
                await raw.flush()
                with trio.fail_after(WAIT):
                    msg = await srv.sock.recv_message()
                assert msg.parts == [b"sealed"]
                assert (msg.peer.mechanism, msg.peer.user_id) == ("CURVE", b"anonymous")
            [request] = handler.requests
            assert (request.version, request.request_id, request.domain) == (b"1.0", b"1", DOMAIN)
            assert (request.identity, request.mechanism) == (ROUTING_ID, b"CURVE")
            assert request.credentials == (z85.decode(CLIENT_PUBLIC),)
            await srv.carries_on()

    async def test_valid_credentials_large_routing_id(self) -> None:
        # main(): test_curve_security_with_valid_credentials with a 255-octet routing
        # id, which the handler expects as the request's identity.
        large = (b"0123456789" * 26)[:255]
        async with (
            serving("curve", overrides={"routing_id": large}) as srv,
            zap_handler(srv.ctx) as handler,
        ):
            async with raw_peer(srv.endpoint, raw_mechanism("curve")) as raw:
                await raw.handshake()
                await srv.success()
                assert raw.received[:10] == signature(255)
            assert handler.requests[0].identity == large
            await srv.carries_on()

    @pytest.mark.parametrize(
        ("case", "error", "reason"), CURVE_MISBEHAVIOUR, ids=[c[0] for c in CURVE_MISBEHAVIOUR]
    )
    async def test_misbehaving_client(self, case: str, error: str, reason: bytes | None) -> None:
        async with serving("curve") as srv, zap_handler(srv.ctx) as handler:
            async with raw_peer(srv.endpoint) as raw:
                await raw.send(curve_greeting())
                client = (
                    CurveClient(zmtp.curve_keypair()[0], CLIENT_PUBLIC, CLIENT_SECRET)
                    if case == "hello_for_another_server"
                    else CurveClient(SERVER_PUBLIC, CLIENT_PUBLIC, CLIENT_SECRET)
                )
                if case == "initiate_null_client_secret_key":
                    zero = PrivateKey(bytes(32))
                    client = CurveClient(SERVER_PUBLIC, bytes(zero.public_key), bytes(zero))
                    client.public_key = z85.decode(CLIENT_PUBLIC)  # names the real C
                [hello] = client.start(DEALER_PROPERTIES)
                assert len(hello) == 2 + 200
                if case == "hello_wrong_length":
                    hello = b"\x04\x06\x05HELLO"
                elif case == "hello_command_name":
                    hello = poke(hello, 5, lambda _: ord("X"))
                elif case == "hello_version":
                    hello = poke(hello, 6, lambda _: 2)
                await raw.send(hello)
                at_initiate = case.startswith("initiate")
                if at_initiate:
                    assert await raw.recv_exactly(64) == server_greeting("curve")
                    welcome = await raw.recv_command()
                    assert welcome.startswith(WELCOME_HEAD)
                    if case == "initiate_null_client_public_key":
                        client.public_key = bytes(32)
                    [initiate] = client.receive_command(command_of(welcome))
                    assert len(initiate) - body_offset(initiate) >= 257
                    if case == "initiate_wrong_length":
                        initiate = b"\x04\x09\x08INITIATE"
                    elif case == "initiate_command_name":
                        initiate = poke(initiate, 5, lambda _: ord("X"))
                    elif case == "initiate_encrypted_cookie":
                        initiate = poke(initiate, 30, lambda b: b ^ 1)
                    elif case == "initiate_encrypted_content":
                        initiate = poke(initiate, 150, lambda b: b ^ 1)
                    await raw.send(initiate)
                data = await raw.until_eof()
            # ERROR for a malformed command (libzmq closes without one); silence when
            # a box does not open (as libzmq).
            then = encode_error(reason) if reason is not None else b""
            assert_sent(data, "curve", welcome=at_initiate, then=then)
            ev = await srv.failure()
            assert ev.detail["error"] == error
            assert "status" not in ev.detail
            assert not handler.requests  # caught by the mechanism, never asked to ZAP
            srv.nothing_delivered()
            await srv.carries_on()

    async def test_bogus_client_credentials(self) -> None:
        # test_curve_security_with_bogus_client_credentials: ZAP says 400, the client
        # gets ERROR "400".
        async with serving("curve") as srv, zap_handler(srv.ctx) as handler:
            async with raw_peer(srv.endpoint, raw_mechanism("curve", good=False)) as raw:
                data = await raw.until_eof()
                assert raw.conn is not None and isinstance(raw.conn.error, zmtp.PeerError)
            assert_sent(data, "curve", welcome=True, then=encode_error(b"400"))
            ev = await srv.failure()
            assert (ev.detail["error"], ev.detail["status"]) == ("AuthenticationFailed", 400)
            assert len(handler.requests) == 1
            srv.nothing_delivered()
            await srv.carries_on()

    @pytest.mark.parametrize("transport", ["tcp", "ipc"])
    @pytest.mark.parametrize("client", ["NULL", "PLAIN"])
    async def test_mechanism_mismatch(self, client: str, transport: str) -> None:
        # test_curve_security_with_null_client_credentials, ..._plain_client_credentials:
        # caught by the greeting, not passed to ZAP; no ERROR (libzmq neither).
        async with serving("curve", transport) as srv, zap_handler(srv.ctx) as handler:
            async with raw_peer(srv.endpoint) as raw:
                await raw.send(libzmq_greeting(mechanism=client.encode()))
                hello = encode_command(b"HELLO", b"\x05admin\x08password")
                await raw.send(encode_ready(DEALER_PROPERTIES) if client == "NULL" else hello)
                data = await raw.until_eof()
            assert_sent(data, "curve")
            ev = await srv.failure()
            assert ev.detail["error"] == "MechanismMismatch"
            assert not handler.requests
            srv.nothing_delivered()
            await srv.carries_on()


# ================================================================ test_security_plain.cpp


class TestPlain:
    """A PLAIN server (domain ``ZAPTEST``; libzmq's uses ``test``) and the handler."""

    @pytest.mark.parametrize("transport", ["tcp", "ipc"])
    async def test_success(self, transport: str) -> None:
        # test_plain_success; the handler's checks: version 1.0, PLAIN, identity IDENT.
        async with serving("plain", transport) as srv, zap_handler(srv.ctx) as handler:
            async with raw_peer(srv.endpoint, raw_mechanism("plain")) as raw:
                await raw.handshake()
                await srv.success()
                assert raw.conn is not None
                raw.conn.send_message([b"in clear"])
                await raw.flush()
                with trio.fail_after(WAIT):
                    msg = await srv.sock.recv_message()
                assert msg.parts == [b"in clear"]
                assert (msg.peer.mechanism, msg.peer.user_id) == ("PLAIN", b"anonymous")
            [request] = handler.requests
            assert (request.version, request.mechanism, request.identity) == (
                b"1.0",
                b"PLAIN",
                ROUTING_ID,
            )
            assert request.credentials == (USERNAME, PASSWORD)
            await srv.carries_on()

    async def test_client_as_server_fails(self) -> None:
        # test_plain_client_as_server_fails: the peer is a PLAIN server too, so both
        # wait for a HELLO; libzmq's bounce just fails.  Ours gives up after
        # handshake_ivl, silently.
        async with (
            serving("plain", overrides={"handshake_ivl": 200}) as srv,
            zap_handler(srv.ctx) as handler,
        ):
            async with raw_peer(srv.endpoint) as raw:
                g = bytearray(libzmq_greeting(mechanism=b"PLAIN"))
                g[32] = 1  # as-server
                await raw.send(bytes(g))
                data = await raw.until_eof()
            assert_sent(data, "plain")
            ev = await srv.failure()
            assert ev.detail["error"] == "HandshakeTimeout"
            assert not handler.requests
            srv.nothing_delivered()
            await srv.carries_on()

    async def test_wrong_credentials_fails(self) -> None:
        # test_plain_wrong_credentials_fails: ZAP says 400; we send a well-formed ERROR
        # "400" (libzmq sends its malformed 5E 'RROR', D-9).
        async with serving("plain") as srv, zap_handler(srv.ctx) as handler:
            async with raw_peer(srv.endpoint, raw_mechanism("plain", good=False)) as raw:
                data = await raw.until_eof()
            assert_sent(data, "plain", then=encode_error(b"400"))
            ev = await srv.failure()
            assert (ev.detail["error"], ev.detail["status"]) == ("AuthenticationFailed", 400)
            assert handler.requests[0].credentials == (b"wronguser", b"wrongpass")
            srv.nothing_delivered()
            await srv.carries_on()


# ================================================================== test_security_zap.cpp

MECHANISMS = ["null", "plain", "curve"]
#: What the HANDSHAKE_FAILED reason says for each bad reply (ZapError's message).
ZAP_FAULTS = {
    "wrong_version": "reply version b'invalid_version'",
    "wrong_request_id": "reply to request b'invalid_request_'",  # quoted up to 16 octets
    "invalid_status": "status code b'invalid_status'",
    "too_many_parts": "reply of 7 frames",
    "too_few_parts": "reply of 5 frames",
    "bad_metadata": "reply metadata",
}


class TestZap:
    """RUN_ZAP_ERROR_TESTS for null, plain and curve: a handler that answers a good
    client badly, once; then it behaves and a good client gets through."""

    @pytest.mark.parametrize("mech", MECHANISMS)
    @pytest.mark.parametrize(
        "plan",
        [
            "wrong_version",  # ZAP_BAD_VERSION
            "wrong_request_id",  # ZAP_BAD_REQUEST_ID
            "invalid_status",  # ZAP_INVALID_STATUS_CODE
            "too_many_parts",  # ZAP_MALFORMED_REPLY
            "too_few_parts",  # ours; ZAP_MALFORMED_REPLY too
            "bad_metadata",  # ours; ZAP_INVALID_METADATA
        ],
    )
    async def test_protocol_error(self, mech: str, plan: str) -> None:
        # test_zap_protocol_error_*: a handshake failure with the fault named, and no
        # ERROR to the client (libzmq: EVENT_HANDSHAKE_FAILED_PROTOCOL with the code).
        async with serving(mech) as srv, zap_handler(srv.ctx, plan) as handler:
            async with raw_peer(srv.endpoint, raw_mechanism(mech)) as raw:
                data = await raw.until_eof()
            assert_sent(data, mech, welcome=mech == "curve")
            ev = await srv.failure()
            assert ev.detail["error"] == "ZapError"
            assert ZAP_FAULTS[plan] in ev.reason
            assert len(handler.requests) == 1
            srv.nothing_delivered()
            await srv.carries_on()

    @pytest.mark.parametrize("mech", MECHANISMS)
    @pytest.mark.parametrize("status", [300, 500])
    async def test_refusal_status(self, mech: str, status: int) -> None:
        # test_zap_wrong_status_temporary_failure (300: closed without a word) and
        # test_zap_wrong_status_internal_error (500: ERROR "500").
        async with serving(mech) as srv, zap_handler(srv.ctx, str(status)):
            async with raw_peer(srv.endpoint, raw_mechanism(mech)) as raw:
                data = await raw.until_eof()
                assert raw.conn is not None
                got_error = isinstance(raw.conn.error, zmtp.PeerError)
            then = encode_error(b"500") if status == 500 else b""
            assert_sent(data, mech, welcome=mech == "curve", then=then)
            assert got_error == (status == 500)
            ev = await srv.failure()
            assert (ev.detail["error"], ev.detail["status"]) == ("AuthenticationFailed", status)
            srv.nothing_delivered()
            await srv.carries_on()

    @pytest.mark.parametrize("mech", MECHANISMS)
    async def test_no_handler_started(self, mech: str) -> None:
        # test_zap_unsuccessful_no_handler_started: zap_enforce_domain and no handler
        # (libzmq: HANDSHAKE_FAILED_NO_DETAIL, EFAULT): refused without a word.  A
        # handler bound afterwards is used at once.
        async with serving(mech, overrides={"zap_enforce_domain": True}) as srv:
            async with raw_peer(srv.endpoint, raw_mechanism(mech)) as raw:
                data = await raw.until_eof()
            assert_sent(data, mech, welcome=mech == "curve")
            ev = await srv.failure()
            assert ev.detail["error"] == "AuthenticationUnavailable"
            srv.nothing_delivered()
            async with zap_handler(srv.ctx):
                await srv.carries_on()

    @pytest.mark.parametrize("mech", MECHANISMS)
    async def test_a_pending_request_holds_up_no_one(self, mech: str) -> None:
        # Concurrently: while the handler sits on one client's request, another
        # client connects, is asked about and answered, and gets through.
        async with (
            serving(mech) as srv,
            zap_handler(srv.ctx, "do_not_send") as handler,
            raw_peer(srv.endpoint, raw_mechanism(mech)) as raw,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(raw.until_eof)  # the raw client's side, pumped
            with trio.fail_after(WAIT):
                while not handler.requests:  # the handler has it, and keeps it
                    await handler.arrived.wait()
            await srv.carries_on()
            assert len(handler.requests) == 2
            assert raw.conn is not None and raw.conn.handshake is None
            nursery.cancel_scope.cancel()

    @pytest.mark.parametrize("mech", MECHANISMS)
    @pytest.mark.parametrize("plan", ["disconnect", "do_not_recv", "do_not_send"])
    async def test_handler_goes_quiet(self, mech: str, plan: str) -> None:
        # test_zap_unsuccessful_disconnect, _do_not_recv, _do_not_send: libzmq fails
        # the handshake when the handler's pipe goes (EPIPE); ours waits for the reply
        # until handshake_ivl, then fails silently.
        async with serving(mech, overrides={"handshake_ivl": 200}) as srv:
            zap: Socket | None = None
            if plan == "do_not_recv":
                zap = srv.ctx.socket("ROUTER", linger=0)
                await zap.bind(ZAP_ENDPOINT)
                cm: Any = nullcontext()
            else:
                cm = zap_handler(srv.ctx, plan)
            async with cm:
                async with raw_peer(srv.endpoint, raw_mechanism(mech)) as raw:
                    data = await raw.until_eof()
                assert_sent(data, mech, welcome=mech == "curve")
                ev = await srv.failure()
                assert ev.detail["error"] == "HandshakeTimeout"
                srv.nothing_delivered()
            if zap is not None:
                await zap.aclose()
            async with zap_handler(srv.ctx):
                await srv.carries_on()


# ============================================================ without a handler (README)


@pytest.mark.parametrize(
    ("mech", "overrides", "accepted"),
    [
        # A CURVE server lets any key in without a handler ("Stonehouse"), domain or
        # not, unless zap_enforce_domain.
        ("curve", {"zap_domain": b"", "zap_enforce_domain": False}, True),
        ("curve", {"zap_enforce_domain": False}, True),
        ("curve", {}, False),  # libzmq's test server: domain and zap_enforce_domain
        # A PLAIN server refuses everyone without a handler, enforced or not.
        ("plain", {}, False),
        # NULL with a domain goes ahead without a handler, unless enforced.
        ("null", {}, True),
        ("null", {"zap_enforce_domain": True}, False),
    ],
    ids=[
        "curve-no-domain",
        "curve-domain",
        "curve-enforced",
        "plain",
        "null-domain",
        "null-enforced",
    ],
)
async def test_without_a_handler(mech: str, overrides: dict[str, Any], accepted: bool) -> None:
    async with serving(mech, overrides=overrides) as srv:
        # Credentials no handler would accept: a stranger's key, a wrong password.
        async with raw_peer(srv.endpoint, raw_mechanism(mech, good=False)) as raw:
            assert raw.conn is not None
            if accepted:
                await raw.handshake()
                await srv.success()
                raw.conn.send_message([b"let in"])
                await raw.flush()
                with trio.fail_after(WAIT):
                    msg = await srv.sock.recv_message()
                assert msg.parts == [b"let in"] and msg.peer.user_id == b""
                return
            data = await raw.until_eof()
        assert_sent(data, mech, welcome=mech == "curve")  # refused without a word
        ev = await srv.failure()
        assert ev.detail["error"] == "AuthenticationUnavailable"
        srv.nothing_delivered()
        async with zap_handler(srv.ctx):
            await srv.carries_on()


# ======================================= unauthenticated messages: ZMTP 1.0 / 2.0 peers

#: test_curve_security_unauthenticated_message, test_plain_vanilla_socket and
#: test_security_null's test_vanilla_socket: an anonymous ZMTP 1.0 greeting (an empty
#: identity frame), then a sneaky message.
VANILLA = b"\x01\x00" + b"\x08\x00sneaky\x00"
LEGACY_PEERS = {
    "zmtp10": (VANILLA, b""),
    # Versioned: signature, revision, socket type (DEALER), then the identity and a
    # message in the framing of the revision.  Our server has sent its major version.
    "zmtp10-versioned": (
        signature(0) + b"\x00\x05" + build_v1_frame(b"") + build_v1_frame(b"sneaky\x00"),
        b"\x03",
    ),
    "zmtp20": (
        signature(0) + b"\x01\x05" + build_v2_frame(b"") + build_v2_frame(b"sneaky\x00"),
        b"\x03",
    ),
}


@pytest.mark.parametrize(
    ("peer", "transport"),
    [
        ("zmtp10", "tcp"),
        ("zmtp10", "ipc"),
        ("zmtp10-versioned", "tcp"),
        ("zmtp20", "tcp"),
        ("zmtp20", "ipc"),
    ],
)
@pytest.mark.parametrize(
    ("mech", "handler"),
    [("curve", True), ("plain", True), ("null", True), ("null", False)],
    ids=["curve", "plain", "null-domain", "null-domain-no-handler"],
)
async def test_legacy_peer_is_refused(mech: str, handler: bool, peer: str, transport: str) -> None:
    # No downgrade: nothing of the peer is read past its greeting, no ZAP request,
    # no ERROR (the old protocols have none).  NULL with a domain: fixed in this
    # issue (it served the peer, and delivered "sneaky" unauthenticated).
    sent, after_signature = LEGACY_PEERS[peer]
    async with (
        serving(mech, transport) as srv,
        zap_handler(srv.ctx) if handler else nullcontext() as zap,
    ):
        async with raw_peer(srv.endpoint) as raw:
            await raw.send(sent)
            data = await raw.until_eof()
        assert data == signature(len(ROUTING_ID)) + after_signature
        ev = await srv.failure()
        assert ev.detail["error"] == "VersionError"
        assert "needs ZMTP 3.0" in ev.reason
        assert zap is None or not zap.requests
        srv.nothing_delivered()
        await srv.carries_on()


@pytest.mark.parametrize("peer", list(LEGACY_PEERS))
async def test_legacy_peer_is_served_by_null_without_a_domain(peer: str) -> None:
    # The control: without authentication there is nothing to bypass, and libzmq
    # serves old peers too.
    sent, _ = LEGACY_PEERS[peer]
    async with (
        serving("null", overrides={"zap_domain": b""}) as srv,
        raw_peer(srv.endpoint) as raw,
    ):
        await raw.send(sent)
        with trio.fail_after(WAIT):
            assert await srv.sock.recv_multipart() == [b"sneaky\x00"]
        ev = await srv.success()
        assert ev.detail["version"] == ((1, 0) if peer.startswith("zmtp10") else (2, 0))
