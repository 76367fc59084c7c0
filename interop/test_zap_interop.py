"""The ZAP codec (zmtp.protocol.zap) against libzmq 4.3.5 itself, through pyzmq.

A pyzmq ROUTER bound at ``inproc://zeromq.zap.01`` in a pyzmq context is the ZAP handler
of a libzmq server socket in the same context: libzmq's own requests must parse with
:func:`parse_request` into what specs/libzmq-behaviour.md §4.3 says libzmq sends, and
replies built with :func:`encode_reply` must be taken by libzmq as the status says (the
server's monitor reports the handshake's outcome).  Each reply our
:func:`parse_reply` refuses is refused by libzmq too, with the monitor code named by
:attr:`ZapError.code`.

Everything here is synchronous pyzmq: the sockets have bounded timeouts (the
``zmq_socket`` fixture) and are closed before the context terminates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from zmtp.protocol.metadata import encode_properties
from zmtp.protocol.zap import (
    ZAP_ENDPOINT,
    ZAP_ERROR_CODES,
    ZapError,
    ZapReply,
    ZapRequest,
    encode_reply,
    parse_reply,
    parse_request,
)

from ._helpers import SocketFactory

zmq = pytest.importorskip("zmq")
monitor = pytest.importorskip("zmq.utils.monitor")
z85 = pytest.importorskip("zmq.utils.z85")

pytestmark = pytest.mark.interop

SERVER_ID = b"SRV"
CLIENT_ID = b"CLI"


@dataclass
class Setup:
    """A libzmq server (bound, monitored), its client (connecting), and the ZAP ROUTER."""

    zap: Any
    server: Any
    client: Any
    events: Any  # the server's monitor socket

    def next_request(self) -> tuple[bytes, ZapRequest]:
        """The next ZAP request libzmq sends: (routing id, the parsed request)."""
        routing_id, delimiter, *frames = self.zap.recv_multipart()
        assert delimiter == b""
        return routing_id, parse_request(frames)

    def reply(self, routing_id: bytes, frames: list[bytes]) -> None:
        self.zap.send_multipart([routing_id, b"", *frames])

    def handshake_outcome(self) -> tuple[int, int]:
        """The server's first handshake event and its value."""
        wanted = (
            zmq.EVENT_HANDSHAKE_SUCCEEDED,
            zmq.EVENT_HANDSHAKE_FAILED_AUTH,
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
        )
        while True:
            event = monitor.recv_monitor_message(self.events)
            if event["event"] in wanted:
                return event["event"], event["value"]


def _setup(zmq_socket: SocketFactory, mechanism: str) -> tuple[Setup, bytes]:
    """Bind the ZAP ROUTER, then a server and a client using ``mechanism``; return them
    and the credential the client presents (the CURVE public key, raw)."""
    zap = zmq_socket(zmq.ROUTER)
    zap.bind(ZAP_ENDPOINT)
    server = zmq_socket(zmq.DEALER, ROUTING_ID=SERVER_ID)
    client = zmq_socket(zmq.DEALER, ROUTING_ID=CLIENT_ID)
    credential = b""
    if mechanism == "PLAIN":
        server.setsockopt(zmq.PLAIN_SERVER, 1)
        client.setsockopt(zmq.PLAIN_USERNAME, b"admin")
        client.setsockopt(zmq.PLAIN_PASSWORD, b"secret")
    elif mechanism == "CURVE":
        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        server.setsockopt(zmq.CURVE_SERVER, 1)
        server.setsockopt(zmq.CURVE_SECRETKEY, server_secret)
        client.setsockopt(zmq.CURVE_SERVERKEY, server_public)
        client.setsockopt(zmq.CURVE_PUBLICKEY, client_public)
        client.setsockopt(zmq.CURVE_SECRETKEY, client_secret)
        credential = z85.decode(client_public)
    else:  # NULL asks ZAP only when the server has a domain
        server.setsockopt(zmq.ZAP_DOMAIN, b"global")
    events = zmq_socket.track(server.get_monitor_socket())
    server.bind("tcp://127.0.0.1:*")
    client.connect(server.getsockopt_string(zmq.LAST_ENDPOINT))
    return Setup(zap, server, client, events), credential


@pytest.mark.parametrize("mechanism", ["NULL", "PLAIN", "CURVE"])
def test_libzmqs_request_parses(zmq_socket: SocketFactory, mechanism: str) -> None:
    setup, key = _setup(zmq_socket, mechanism)
    _, req = setup.next_request()
    expected_credentials = {"NULL": (), "PLAIN": (b"admin", b"secret"), "CURVE": (key,)}
    assert req == ZapRequest(
        domain=b"global" if mechanism == "NULL" else b"",
        address=b"127.0.0.1",
        identity=SERVER_ID,  # the server's own routing id, not the client's
        mechanism=mechanism.encode(),
        credentials=expected_credentials[mechanism],
        request_id=b"1",
    )


@pytest.mark.parametrize("mechanism", ["NULL", "PLAIN", "CURVE"])
def test_200_lets_the_client_in_with_user_id_and_metadata(
    zmq_socket: SocketFactory, mechanism: str
) -> None:
    setup, _ = _setup(zmq_socket, mechanism)
    routing_id, req = setup.next_request()
    meta = encode_properties([("X-Role", b"admin")])
    setup.reply(routing_id, encode_reply(ZapReply(req.request_id, b"200", b"OK", b"alice", meta)))
    assert setup.handshake_outcome() == (zmq.EVENT_HANDSHAKE_SUCCEEDED, 0)
    setup.client.send(b"hello")
    frame = setup.server.recv(copy=False)
    assert frame.bytes == b"hello"
    assert frame.get("User-Id") == "alice"
    assert frame.get("X-Role") == "admin"


@pytest.mark.parametrize("status", [b"300", b"400", b"500"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "CURVE"])
def test_refusals_fail_the_handshake(
    zmq_socket: SocketFactory, mechanism: str, status: bytes
) -> None:
    setup, _ = _setup(zmq_socket, mechanism)
    routing_id, req = setup.next_request()
    setup.reply(routing_id, encode_reply(ZapReply(req.request_id, status, b"No access")))
    assert setup.handshake_outcome() == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, int(status))


GOOD_REPLY = [b"1.0", b"1", b"200", b"OK", b"alice", b""]


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param(GOOD_REPLY[:5], id="five-frames"),
        pytest.param([*GOOD_REPLY, b""], id="seven-frames"),
        pytest.param([b"1.1", *GOOD_REPLY[1:]], id="version"),
        pytest.param([b"1.0", b"2", *GOOD_REPLY[2:]], id="request-id"),
        pytest.param([*GOOD_REPLY[:2], b"201", *GOOD_REPLY[3:]], id="status-201"),
        pytest.param([*GOOD_REPLY[:2], b"600", *GOOD_REPLY[3:]], id="status-600"),
        pytest.param([*GOOD_REPLY[:5], b"\x01"], id="metadata-trailing-octet"),
        pytest.param([*GOOD_REPLY[:5], b"\x06X-Role\x00\x00\x00\x09admin"], id="metadata-short"),
    ],
)
def test_replies_we_refuse_libzmq_refuses_with_the_same_code(
    zmq_socket: SocketFactory, frames: list[bytes]
) -> None:
    with pytest.raises(ZapError) as info:
        parse_reply(frames, request_id=b"1")  # libzmq always asks with id "1"
    setup, _ = _setup(zmq_socket, "PLAIN")
    routing_id, _ = setup.next_request()
    setup.reply(routing_id, frames)
    assert setup.handshake_outcome() == (
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
        ZAP_ERROR_CODES[info.value.code],
    )
