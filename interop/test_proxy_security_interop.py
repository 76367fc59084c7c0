"""``python -m proxy`` with CURVE and PLAIN, and libzmq 4.3.5 peers (pyzmq) on both sides.

The proxy runs as a subprocess with certificates made by ``zmtp.auth`` (read by pyzmq
with ``zmq.auth.load_certificate``, the same files).  pyzmq clients and workers talk
CURVE or PLAIN through it over tcp (and ipc once); a client the proxy must refuse is
watched through its libzmq monitor until ``HANDSHAKE_FAILED_AUTH`` arrives, and the
proxy's final statistics show that nothing of it went through.  The proxy also connects
out (``DEALER>``) as a CURVE or PLAIN client to a pyzmq server whose ZAP handler lets in
only the proxy.  Every wait is for an output line, a message or a monitor event.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from proxy._testing import ProxyProcess, parse_final_statistics
from zmtp.auth import create_certificates

from ._helpers import TIMEOUT, SocketFactory, ipc_path
from ._proxy_helpers import check_replies, dealer_client, req_client, serve, workers_and_clients

zmq = pytest.importorskip("zmq")
zmq_auth = pytest.importorskip("zmq.auth")
thread_auth = pytest.importorskip("zmq.auth.thread")
monitor = pytest.importorskip("zmq.utils.monitor")
pytest.importorskip("nacl")
if not zmq.has("curve"):  # pragma: no cover - the wheels have it
    pytest.skip("pyzmq's libzmq has no CURVE", allow_module_level=True)

pytestmark = pytest.mark.interop

LOCAL = "tcp://127.0.0.1:0"
PASSWORD = "open-S3same"  # must appear in no output of the proxy


@dataclass
class Certs:
    """Certificates on disk, and the key pairs pyzmq sockets need."""

    proxy_secret: Path
    proxy_public: Path
    allowed: Path  # public certificates of the client and the worker
    keys: dict[str, tuple[bytes, bytes]]  # name -> (public, secret), Z85

    def curve_options(self, name: str, server: str = "proxy") -> dict[str, Any]:
        """pyzmq options of a CURVE client ``name`` of ``server``."""
        public, secret = self.keys[name]
        return {
            "CURVE_SERVERKEY": self.keys[server][0],
            "CURVE_PUBLICKEY": public,
            "CURVE_SECRETKEY": secret,
        }


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    made = {
        "proxy": create_certificates(tmp_path, "proxy"),
        "client": create_certificates(allowed, "client"),
        "worker": create_certificates(allowed, "worker"),
        "stranger": create_certificates(tmp_path, "stranger"),
        "upstream": create_certificates(tmp_path, "upstream"),
    }
    # pyzmq reads the certificates zmtp wrote.
    keys = {name: zmq_auth.load_certificate(str(secret)) for name, (_, secret) in made.items()}
    return Certs(made["proxy"][1], made["proxy"][0], allowed, keys)


@pytest.fixture
def zap(zmq_context: Any) -> Iterator[Any]:
    """pyzmq's ZAP handler for the test's libzmq context (an upstream server's)."""
    auth = thread_auth.ThreadAuthenticator(zmq_context)
    auth.start()
    try:
        yield auth
    finally:
        auth.stop()


def _refused(sock: Any, endpoint: str, request: bytes) -> tuple[int, int]:
    """Connect the libzmq REQ ``sock`` to ``endpoint``, send ``request``, and wait for
    its handshake to fail; return libzmq's monitor event and value.  Blocking: run it
    in a thread.

    A refused CURVE client reports ``HANDSHAKE_FAILED_AUTH`` with the ZAP status (400);
    libzmq 4.3.5's PLAIN client misreads a well-formed ERROR and reports
    ``HANDSHAKE_FAILED_PROTOCOL`` instead (specs/discrepancies.md, D-9).  Either way
    it hangs up.  The request is queued at once (the pipe exists from ``connect``);
    should the refusal have torn the pipe down first, there is nothing to send it to,
    which proves the same thing, so it is not waited for.
    """
    events = sock.get_monitor_socket()
    events.setsockopt(zmq.RCVTIMEO, int(TIMEOUT * 1000))
    failed = (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
    try:
        sock.connect(endpoint)
        with contextlib.suppress(zmq.Again):
            sock.send(request, zmq.NOBLOCK)
        while True:
            event = monitor.recv_monitor_message(events)
            assert event["event"] != zmq.EVENT_HANDSHAKE_SUCCEEDED, "let in"
            if event["event"] in failed:
                return int(event["event"]), int(event["value"])
    finally:
        sock.disable_monitor()
        events.close(linger=0)


def _check_no_password(proc: ProxyProcess, err: str) -> None:
    output = "\n".join([*proc.lines, err])
    assert PASSWORD not in output


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
async def test_curve_queue_with_libzmq_clients_and_workers(
    zmq_socket: SocketFactory, certs: Certs, transport: str, ipc_dir: Path
) -> None:
    """--curve-secret alone (any client key): pyzmq CURVE REQ and DEALER clients, REP
    and DEALER workers; every reply reaches the client that asked."""
    n = 20
    if transport == "tcp":
        fe, be = LOCAL, LOCAL
    else:
        fe, be = (f"ipc://{ipc_path(ipc_dir, p)}" for p in ("fe", "be"))
    with trio.fail_after(4 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"ROUTER@{fe}",
            "--backend", f"DEALER@{be}",
            "--curve-secret", str(certs.proxy_secret),
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            assert proc.lines[1].endswith(" (CURVE server, clients: any)")
            stop = threading.Event()
            workers = []
            for k, kind in enumerate([zmq.REP, zmq.DEALER]):
                w = zmq_socket(kind, **certs.curve_options("worker"))
                w.connect(eps["backend"])
                workers.append((serve, (w, stop, b"w%d" % k)))
            clients = []
            for k, (kind, fn) in enumerate([(zmq.REQ, req_client), (zmq.DEALER, dealer_client)]):
                # Any key will do: a fresh pair, not in any certificate.
                public, secret = zmq.curve_keypair()
                name = b"req%d" % k if kind == zmq.REQ else b"dealer%d" % k
                c = zmq_socket(
                    kind,
                    CURVE_SERVERKEY=certs.keys["proxy"][0],
                    CURVE_PUBLICKEY=public,
                    CURVE_SECRETKEY=secret,
                )
                c.connect(eps["frontend"])
                clients.append((name, fn, c))
            served, replies = await workers_and_clients(
                workers, [(fn, (c, name, n)) for name, fn, c in clients], stop
            )
            proc.send_signal(signal.SIGINT)
            status, rest, err = await proc.finish()
    assert status == 0, err
    for (name, _fn, _c), got in zip(clients, replies, strict=True):
        check_replies(name, got, n, {b"w0", b"w1"})
    assert sum(served) == n * len(clients)
    stats = parse_final_statistics(rest[-1])
    assert stats["frontend->backend"][0] == stats["backend->frontend"][0] == n * len(clients)


async def test_curve_allow_refuses_an_unknown_libzmq_client(
    zmq_socket: SocketFactory, certs: Certs
) -> None:
    """--curve-allow DIR: the client and worker whose certificates are there get
    through; a stranger's handshake fails with ZAP status 400 and its request never
    reaches a worker."""
    with trio.fail_after(4 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"ROUTER@{LOCAL}",
            "--backend", f"DEALER@{LOCAL}",
            "--curve-secret", str(certs.proxy_secret),
            "--curve-allow", str(certs.allowed),
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            assert proc.lines[1].endswith(f" (CURVE server, clients: 2 keys from {certs.allowed})")
            stranger = zmq_socket(zmq.REQ, **certs.curve_options("stranger"))
            client = zmq_socket(zmq.REQ, **certs.curve_options("client"))
            worker = zmq_socket(zmq.REP, **certs.curve_options("worker"))

            def script() -> tuple[tuple[int, int], list[bytes]]:
                worker.connect(eps["backend"])
                refusal = _refused(stranger, eps["frontend"], b"from a stranger")
                client.connect(eps["frontend"])
                client.send(b"from a friend")
                request = worker.recv_multipart()
                worker.send_multipart([*request, b"served"])
                reply = client.recv_multipart()
                assert stranger.poll(0) == 0  # nothing came back to the stranger
                return refusal, reply

            refusal, reply = await trio.to_thread.run_sync(script)
            proc.send_signal(signal.SIGINT)
            status, rest, err = await proc.finish()
    assert status == 0, err
    assert refusal == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)
    assert reply == [b"from a friend", b"served"]
    assert parse_final_statistics(rest[-1])["frontend->backend"][0] == 1  # the friend's only


async def test_plain_passwords_accept_right_and_refuse_wrong_credentials(
    zmq_socket: SocketFactory, tmp_path: Path
) -> None:
    """--plain-passwords: pyzmq PLAIN clients and a worker with the right credentials
    get through; a wrong password and an unknown user are refused; the password
    appears in no output, even at DEBUG."""
    passwords = tmp_path / "passwords"
    passwords.write_text(f"# proxy users\nclient={PASSWORD}\nworker = {PASSWORD}x\n")
    with trio.fail_after(4 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"ROUTER@{LOCAL}",
            "--backend", f"DEALER@{LOCAL}",
            "--plain-passwords", str(passwords),
            "--log-level", "DEBUG",
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            assert proc.lines[0].endswith(f" (PLAIN server, 2 users from {passwords})")
            client = zmq_socket(zmq.REQ, PLAIN_USERNAME=b"client", PLAIN_PASSWORD=PASSWORD.encode())
            worker = zmq_socket(
                zmq.REP, PLAIN_USERNAME=b"worker", PLAIN_PASSWORD=(PASSWORD + "x").encode()
            )
            wrong = zmq_socket(
                zmq.REQ, PLAIN_USERNAME=b"client", PLAIN_PASSWORD=(PASSWORD + "?").encode()
            )
            nobody = zmq_socket(zmq.REQ, PLAIN_USERNAME=b"nobody", PLAIN_PASSWORD=b"x")

            def script() -> tuple[list[tuple[int, int]], list[bytes]]:
                worker.connect(eps["backend"])
                refusals = []
                for sock in (wrong, nobody):
                    refusals.append(_refused(sock, eps["frontend"], b"let me in"))
                client.connect(eps["frontend"])
                client.send(b"hello")
                request = worker.recv_multipart()
                worker.send_multipart([*request, b"served"])
                return refusals, client.recv_multipart()

            refusals, reply = await trio.to_thread.run_sync(script)
            proc.send_signal(signal.SIGINT)
            status, rest, err = await proc.finish()
    assert status == 0, err
    # libzmq's PLAIN client takes the ERROR for a protocol error (D-9); the proxy's
    # log says what it was.
    assert [event for event, _value in refusals] == [zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL] * 2
    assert err.count("the ZAP handler refused the PLAIN peer with 400") >= 2
    assert reply == [b"hello", b"served"]
    assert parse_final_statistics(rest[-1])["frontend->backend"][0] == 1
    assert "Invalid password" in err and "Invalid username" in err  # ZAP decisions, DEBUG
    _check_no_password(proc, err)


@pytest.mark.parametrize("mechanism", ["CURVE", "PLAIN"])
async def test_proxy_connects_out_to_a_libzmq_server(
    zmq_socket: SocketFactory, certs: Certs, zap: Any, tmp_path: Path, mechanism: str
) -> None:
    """``--backend 'DEALER>...'``: the proxy is the client of a pyzmq REP server whose
    ZAP handler lets in only the proxy's key (CURVE) or user (PLAIN); a pyzmq CURVE
    client on the bound frontend gets the server's reply."""
    upstream = zmq_socket(zmq.REP)
    if mechanism == "CURVE":
        only = tmp_path / "only-the-proxy"
        only.mkdir()
        (only / "proxy.key").write_bytes(certs.proxy_public.read_bytes())
        zap.configure_curve(domain="*", location=str(only))
        upstream.setsockopt(zmq.CURVE_SERVER, 1)
        upstream.setsockopt(zmq.CURVE_SECRETKEY, certs.keys["upstream"][1])
        server_cert = tmp_path / "upstream.key"
        flags = ["--curve-secret", str(certs.proxy_secret), "--curve-server", str(server_cert)]
        client_options = certs.curve_options("client")
        expected = (
            f" (CURVE client, server key from {server_cert})",
            " (CURVE server, clients: any)",
        )
        env: dict[str, str] = {}
    else:
        zap.configure_plain(domain="*", passwords={"proxy": PASSWORD})
        upstream.setsockopt(zmq.PLAIN_SERVER, 1)
        flags = ["--plain-user", "proxy"]  # the password from the environment
        client_options = {}
        expected = (" (PLAIN client, user proxy)", " (NULL)")
        env = {"ZMTP_PROXY_PLAIN_PASSWORD": PASSWORD}
    upstream.bind("tcp://127.0.0.1:*")
    upstream_ep = upstream.getsockopt_string(zmq.LAST_ENDPOINT)
    with trio.fail_after(4 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"ROUTER@{LOCAL}",
            "--backend", f"DEALER>{upstream_ep}",
            *flags,
            env=env,
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            assert f"backend DEALER connecting to {upstream_ep}{expected[0]}" in proc.lines
            assert any(
                line.startswith("frontend ROUTER bound to") and line.endswith(expected[1])
                for line in proc.lines
            )
            client = zmq_socket(zmq.REQ, **client_options)
            client.connect(eps["frontend"])

            def script() -> list[bytes]:
                client.send(b"upstream?")
                request = upstream.recv_multipart()
                upstream.send_multipart([*request, b"from upstream"])
                return list(client.recv_multipart())

            reply = await trio.to_thread.run_sync(script)
            proc.send_signal(signal.SIGINT)
            status, rest, err = await proc.finish()
    assert status == 0, err
    assert reply == [b"upstream?", b"from upstream"]
    assert parse_final_statistics(rest[-1])["backend->frontend"][0] == 1
    _check_no_password(proc, err)
