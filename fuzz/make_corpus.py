"""Record the seed corpus: what libzmq 4.3.5 (pyzmq) really sends.

    python -m fuzz.make_corpus

For several socket-type pairs a pyzmq socket connects to a raw listener of ours that
answers with the sans-IO Connection; everything libzmq sends (its staged greeting,
READY, messages of every shape, subscriptions, PINGs) is written as a seed of the
``connection`` target, its traffic part as a seed of ``framing``, and its greeting as a
seed of ``greeting``.  The files are data, checked in; rerun this to refresh them.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import zmq

from fuzz import targets
from zmtp import Connection, SocketType
from zmtp.protocol import z85

HERE = Path(__file__).resolve().parent

#: (libzmq's type, ours, what libzmq's application does after the handshake)
PAIRS = [
    ("DEALER", "ROUTER", "messages"),
    ("ROUTER", "DEALER", "probe"),
    ("SUB", "PUB", "subscribe"),
    ("XSUB", "XPUB", "subscribe"),
    ("PUSH", "PULL", "messages"),
    ("REQ", "REP", "request"),
    ("PAIR", "PAIR", "messages"),
    ("XPUB", "XSUB", "idle"),
]


def record(theirs: str, ours: str, action: str) -> tuple[bytes, int]:
    """libzmq's bytes, and where its traffic starts (after its READY)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(getattr(zmq, theirs))
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.HEARTBEAT_IVL, 100)
    if theirs in ("DEALER", "REQ", "ROUTER"):
        sock.setsockopt(zmq.ROUTING_ID, b"seed-" + theirs.encode())
    if theirs == "ROUTER":
        sock.setsockopt(zmq.PROBE_ROUTER, 1)
    sock.connect(f"tcp://127.0.0.1:{port}")
    raw, _ = listener.accept()
    raw.settimeout(0.05)
    conn = Connection(SocketType[ours])
    raw.sendall(conn.bytes_to_send())
    got = bytearray()
    traffic_at = -1
    acted = False
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        try:
            data = raw.recv(65536)
        except TimeoutError:
            data = None
        if data == b"":
            break
        if data:
            got += data
            conn.receive_data(data)
            raw.sendall(conn.bytes_to_send())
        if conn.handshake is not None and traffic_at < 0:
            traffic_at = len(got)
        if conn.handshake is not None and not acted:
            acted = True
            if action == "messages":
                sock.send_multipart([b"hello"])
                sock.send_multipart([b"", b"multi", b"part", b"L" * 300])
                sock.send_multipart([b"x" * 255, b"y" * 256])
            elif action == "subscribe":
                if theirs == "SUB":
                    sock.setsockopt(zmq.SUBSCRIBE, b"topic")
                    sock.setsockopt(zmq.SUBSCRIBE, b"")
                    sock.setsockopt(zmq.UNSUBSCRIBE, b"topic")
                else:
                    sock.send(b"\x01topic")
                    sock.send(b"\x00topic")
                    sock.send_multipart([b"upstream", b"data"])
            elif action == "request":
                sock.send_multipart([b"request", b"R" * 300])
    sock.close()
    raw.close()
    listener.close()
    return bytes(got), max(traffic_at, 0)


def record_secure(choice: int) -> bytes:
    """libzmq's bytes to the ``secure`` target's connection for ``choice`` (see
    fuzz.targets._mechanism): a libzmq PLAIN/CURVE/NULL-with-domain peer in the other
    role, answered live by that very connection under the target's pinned CURVE seeds,
    so that the recording replays as a whole valid conversation."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    kind = choice % 6
    auth = None
    sock = ctx.socket(zmq.ROUTER if kind in (1, 3) else zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.HEARTBEAT_IVL, 100)
    if kind == 0:
        sock.plain_username, sock.plain_password = b"user", b"password"
    elif kind == 1:
        from zmq.auth.thread import ThreadAuthenticator  # noqa: PLC0415

        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_plain(domain="*", passwords={"user": "password"})
        sock.plain_server = True
    elif kind in (2, 5):
        sock.curve_serverkey = z85.encode(targets._SERVER_PUBLIC)
        public, secret = zmq.curve_keypair()
        sock.curve_publickey, sock.curve_secretkey = public, secret
    elif kind == 3:
        sock.curve_server = True
        sock.curve_secretkey = z85.encode(targets._SERVER_SECRET)
    elif kind == 4:
        sock.routing_id = b"seed"
    got = bytearray()
    with targets._pinned_curve():
        conn = Connection(
            SocketType.DEALER, mechanism=targets._mechanism(choice), check_socket_type=False
        )
        if kind in (1, 3):
            # libzmq listens as the server; our raw side connects to it.
            port = sock.bind_to_random_port("tcp://127.0.0.1")
            raw = socket.create_connection(("127.0.0.1", port))
        else:
            sock.connect(f"tcp://127.0.0.1:{port}")
            raw, _ = listener.accept()
        raw.settimeout(0.05)
        raw.sendall(conn.bytes_to_send())
        acted = False
        deadline = time.monotonic() + 0.8
        while time.monotonic() < deadline:
            try:
                data = raw.recv(65536)
            except TimeoutError:
                data = None
            if data == b"":
                break
            if data:
                got += data
                conn.receive_data(data)
                while conn.awaiting_authentication:
                    conn.zap_reply(b"200", b"user")
                raw.sendall(conn.bytes_to_send())
            if conn.handshake is not None and not acted:
                acted = True
                if kind in (1, 3):
                    conn.send_message([b"hello"])
                    raw.sendall(conn.bytes_to_send())
                    ident = sock.recv_multipart()[0]
                    sock.send_multipart([ident, b"reply", b"L" * 300])
                else:
                    sock.send_multipart([b"hello"])
                    sock.send_multipart([b"", b"multi", b"part", b"L" * 300])
    sock.close()
    raw.close()
    listener.close()
    if auth is not None:
        auth.stop()
    return bytes(got)


def main() -> None:
    for choice in range(6):
        stream = record_secure(choice)
        name = f"libzmq-secure-{choice}"
        # secure: mechanism choice, verdict 200 (index 0), no split; then the stream.
        (HERE / "corpus" / "secure" / name).write_bytes(bytes((choice, 0)) + bytes(8) + stream)
        print(f"{name}: {len(stream)} bytes")
        if choice in (0, 2):
            # The same conversations under the other verdicts: 300, 400, 500, no handler.
            for verdict in (1, 2, 3, 4):
                (HERE / "corpus" / "secure" / f"{name}-verdict-{verdict}").write_bytes(
                    bytes((choice, verdict)) + bytes(8) + stream
                )
    for theirs, ours, action in PAIRS:
        stream, traffic_at = record(theirs, ours, action)
        name = f"libzmq-{theirs.lower()}-to-{ours.lower()}"
        type_index = list(SocketType).index(SocketType[ours])
        # connection: socket type, no size limit (-1 is index 0), no split; then the stream.
        (HERE / "corpus" / "connection" / name).write_bytes(
            bytes((type_index, 0)) + bytes(8) + stream
        )
        (HERE / "corpus" / "framing" / name).write_bytes(bytes(9) + stream[traffic_at:])
        (HERE / "corpus" / "greeting" / name).write_bytes(bytes(8) + stream[:64])
        print(f"{name}: {len(stream)} bytes ({len(stream) - traffic_at} of traffic)")


if __name__ == "__main__":
    main()
