"""``python -m proxy`` for operators, against libzmq 4.3.5 peers (pyzmq).

* ``--metrics``: scraped over HTTP while pyzmq traffic flows, tcp and ipc, the proxy
  binding and the proxy connecting;
* an upstream that breaks the protocol for us (a libzmq PUB that requires CURVE, a
  mechanism we do not speak): by default the proxy gives up on it, as libzmq does, and
  says so; with ``--reconnect-on-protocol-error`` it reconnects once a plain PUB is
  there.  (A libzmq socket of an incompatible *type* would not do: libzmq hangs up
  before its READY, which is an ordinary disconnect, specs/libzmq-behaviour.md §2.5.)
* the README's two-proxy setup: two proxy processes, clients and workers connected to
  both, every request answered and both proxies carrying work.

Every wait is for an output line, a message or a scraped value.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from proxy._testing import ProxyProcess, parse_final_statistics, sample, scrape

from ._helpers import DIRECTIONS, TIMEOUT, TRANSPORTS, BindZmq, SocketFactory, ipc_path
from ._proxy_helpers import check_replies, in_threads, req_client, serve, workers_and_clients

zmq = pytest.importorskip("zmq")
pytest.importorskip("prometheus_client")

pytestmark = pytest.mark.interop


def _local(transport: str, ipc_dir: Path) -> str:
    return "tcp://127.0.0.1:0" if transport == "tcp" else f"ipc://{ipc_path(ipc_dir, 'p')}"


def _produce(sock: Any, messages: list[list[bytes]]) -> None:
    for msg in messages:
        sock.send_multipart(msg)


def _consume(sock: Any, n: int) -> list[list[bytes]]:
    return [sock.recv_multipart() for _ in range(n)]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_metrics_scraped_during_libzmq_traffic(
    transport: str,
    direction: str,
    zmq_socket: SocketFactory,
    bind_zmq: BindZmq,
    ipc_dir: Path,
) -> None:
    producer = zmq_socket(zmq.PUSH)
    consumer = zmq_socket(zmq.PULL)
    if direction == "we_bind":
        front = f"PULL@{_local(transport, ipc_dir)}"
        back = f"PUSH@{_local(transport, ipc_dir)}"
    else:
        front = f"PULL>{bind_zmq(producer, transport).zmq}"
        back = f"PUSH>{bind_zmq(consumer, transport).zmq}"
    half = [[b"m%d" % i, b"z" * 100] for i in range(200)]
    with trio.fail_after(4 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", front, "--backend", back, "--metrics", "127.0.0.1:0"
        ) as proc:
            eps = await proc.endpoints()
            if direction == "we_bind":
                producer.connect(eps["frontend"])
                consumer.connect(eps["backend"])
            f2b = {"direction": "frontend->backend"}
            total: list[list[bytes]] = []
            for round_ in (1, 2):
                _, got = await in_threads((_produce, (producer, half)), (_consume, (consumer, 200)))
                total.extend(got)
                # The connections are open and the stream is live: scrape now.
                samples = await scrape(eps["metrics"])
                assert sample(samples, "zmtp_proxy_messages_total", **f2b) == 200 * round_
                assert sample(samples, "zmtp_proxy_frames_total", **f2b) == 400 * round_
                assert sample(samples, "zmtp_proxy_bytes_total", **f2b) == round_ * sum(
                    len(m[0]) + 100 for m in half
                )
                for role, kind in (("frontend", "PULL"), ("backend", "PUSH")):
                    assert sample(samples, "zmtp_proxy_peers", socket=role, type=kind) == 1
                # No handshake failed: no sample at all (they are per reason).
                assert not [k for k in samples if k[0] == "zmtp_proxy_handshakes_failed_total"]
            assert total == half + half
            proc.send_signal(signal.SIGINT)
            status, rest, err = await proc.finish()
    assert status == 0, err
    final = next(line for line in rest if line.startswith("final statistics: "))
    assert parse_final_statistics(final)["frontend->backend"][0] == 400


def _rebind(sock: Any, endpoint: str) -> None:
    """Bind where another libzmq socket just closed (its close completes in the
    background, so the address may be busy for a moment)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            sock.bind(endpoint)
            return
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _publish_until_received(pub: Any, sub: Any, deadline: float) -> bool:
    """Publish probes until the SUB gets one (the subscription travels up the proxy
    first) or ``deadline`` passes; return whether one arrived."""
    while time.monotonic() < deadline:
        pub.send(b"probe")
        if sub.poll(20):
            return sub.recv() == b"probe"
    return False


@pytest.mark.parametrize("keep_trying", [False, True], ids=["libzmq-default", "keep-trying"])
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_upstream_with_the_wrong_mechanism_then_fixed(
    transport: str,
    keep_trying: bool,
    zmq_socket: SocketFactory,
    bind_zmq: BindZmq,
) -> None:
    """A forwarder connects out to a libzmq PUB that requires CURVE (a mistake).  By
    default it gives up on that endpoint for good and says so; with the flag it keeps
    trying and carries messages once a plain PUB listens there."""
    if not zmq.has("curve"):
        pytest.skip("this libzmq has no CURVE")
    wrong = zmq_socket(zmq.PUB)
    wrong.curve_server = True
    wrong.curve_secretkey = zmq.curve_keypair()[1]
    upstream = bind_zmq(wrong, transport).zmq
    flags = ["--reconnect-on-protocol-error", "--reconnect-ivl-max", "200"] if keep_trying else []
    with trio.fail_after(4 * TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", f"XSUB>{upstream}",
            "--backend", "XPUB@tcp://127.0.0.1:0",
            "--metrics", "127.0.0.1:0",
            "--stats-interval", "0.05",
            *flags,
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            who = {"socket": "frontend", "type": "XSUB"}
            while True:
                samples = await scrape(eps["metrics"])
                failed = samples.get(
                    (
                        "zmtp_proxy_handshakes_failed_total",
                        frozenset({**who, "reason": "MechanismMismatch"}.items()),
                    ),
                    0,
                )
                if failed:
                    break
                await trio.sleep(0.02)  # between polls of the endpoint; not a sync
            abandoned = sample(samples, "zmtp_proxy_endpoints_not_reconnecting", **who)
            if not keep_trying:
                # libzmq's behaviour, reported: on the stats line and in the metrics.
                line = await proc.wait_for("stats: ")
                while "NOT RECONNECTING" not in line:
                    line = await proc.wait_for("stats: ")
                assert f"frontend NOT RECONNECTING to {upstream}" in line
                samples = await scrape(eps["metrics"])
                assert sample(samples, "zmtp_proxy_endpoints_not_reconnecting", **who) == 1
            else:
                assert abandoned == 0
            # The operator fixes the upstream: a PUB at the same address.
            wrong.close(linger=0)
            pub = zmq_socket(zmq.PUB)
            await trio.to_thread.run_sync(_rebind, pub, upstream)
            sub = zmq_socket(zmq.SUB)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(eps["backend"])
            # With the flag, probes get through; without, a short window shows that
            # none does (a retry would come within --reconnect-ivl, 100 ms).
            window = TIMEOUT if keep_trying else 0.5
            arrived = await trio.to_thread.run_sync(
                _publish_until_received, pub, sub, time.monotonic() + window
            )
            assert arrived is keep_trying
            proc.send_signal(signal.SIGINT)
            status, _rest, err = await proc.finish()
    assert status == 0, err
    if keep_trying:
        assert "NOT RECONNECTING" not in err
    else:
        assert f"NOT RECONNECTING to {upstream}" in err
        assert "--reconnect-on-protocol-error" in err


async def test_two_proxies_share_the_work(zmq_socket: SocketFactory) -> None:
    """The README's scaling setup: two proxy processes; every client and every worker
    connects to both; REQ round-robins its requests over the two proxies."""
    n, clients_n = 40, 4
    with trio.fail_after(6 * TIMEOUT):
        async with (
            ProxyProcess.start(
                "--frontend", "ROUTER@tcp://127.0.0.1:0", "--backend", "DEALER@tcp://127.0.0.1:0"
            ) as one,
            ProxyProcess.start(
                "--frontend", "ROUTER@tcp://127.0.0.1:0", "--backend", "DEALER@tcp://127.0.0.1:0"
            ) as two,
        ):
            eps = [await one.endpoints(), await two.endpoints()]
            stop = threading.Event()
            workers = []
            for k in range(3):
                w = zmq_socket(zmq.REP)
                for ep in eps:
                    w.connect(ep["backend"])
                workers.append((serve, (w, stop, b"w%d" % k)))
            clients = []
            for k in range(clients_n):
                c = zmq_socket(zmq.REQ)
                for ep in eps:
                    c.connect(ep["frontend"])
                clients.append((req_client, (c, b"req%d" % k, n)))
            served, replies = await workers_and_clients(workers, clients, stop)
            finals = []
            for proc in (one, two):
                proc.send_signal(signal.SIGINT)
                status, rest, err = await proc.finish()
                assert status == 0, err
                final = next(line for line in rest if line.startswith("final statistics: "))
                finals.append(parse_final_statistics(final))
    for k, got in enumerate(replies):
        check_replies(b"req%d" % k, got, n, {b"w0", b"w1", b"w2"})
    assert sum(served) == n * clients_n
    carried = [f["frontend->backend"][0] for f in finals]
    assert sum(carried) == n * clients_n
    assert all(c > 0 for c in carried), carried  # both proxies did work
    assert [f["backend->frontend"][0] for f in finals] == carried
