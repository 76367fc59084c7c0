"""The proxy for operators: health of its sockets, metrics, JSON logs, shutdown messages.

Subprocess tests read the proxy's output lines and scrape its metrics endpoint over
HTTP; they never sleep to synchronise.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys

import pytest
import trio

import zmtp
from proxy._cli import ABANDONED_ADVICE, flushing_line, main
from proxy._console import JsonFormatter
from proxy._health import SocketHealth, SocketWatch, health_line
from proxy._testing import ProxyProcess, parse_final_statistics, sample, scrape
from zmtp.protocol.greeting import build_greeting

from ._helpers import context

SUBPROCESS_TIMEOUT = 60
#: A ZMTP 3.1 peer that only speaks CURVE, to our NULL: a protocol error (mechanism
#: mismatch).  Not an HTTP answer: anything that does not start with 0xFF is taken for
#: a ZMTP 1.0 peer, as libzmq takes it, and only times out.
BAD_GREETING = build_greeting(b"CURVE")

pytest.importorskip("prometheus_client")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _bad_greeter(listener: trio.SocketListener) -> None:
    async with listener:  # closed when the test cancels us
        while True:
            stream = await listener.accept()
            async with stream:
                try:
                    await stream.send_all(BAD_GREETING)
                    while await stream.receive_some(65536):
                        pass
                except trio.BrokenResourceError:
                    pass


# ---------------------------------------------------------------------- pieces


def test_health_line_is_empty_when_all_is_well_and_loud_when_not() -> None:
    fine = SocketHealth("frontend", "ROUTER", peers=3)
    assert health_line([fine]) == ""
    bad = SocketHealth(
        "backend",
        "DEALER",
        handshakes_failed={"GreetingError": 1},
        abandoned=(("tcp://10.0.0.1:5560", "not a ZMTP 3.x peer"),),
    )
    assert health_line([fine, bad]) == (
        "backend NOT RECONNECTING to tcp://10.0.0.1:5560 (protocol error, see log) | "
        "backend handshakes failed 1"
    )


def test_flushing_line() -> None:
    assert flushing_line(0, -1) is None
    assert flushing_line(5, 0) is None
    assert flushing_line(3, -1) == (
        "zmtp-proxy: flushing 3 queued messages until they are delivered (--linger -1); "
        "Ctrl-C again to drop them"
    )
    assert flushing_line(1, 250) == (
        "zmtp-proxy: flushing 1 queued messages for up to 250 ms; Ctrl-C again to drop them"
    )


def test_json_log_format_is_one_object_per_line() -> None:
    record = logging.LogRecord("zmtp.proxy", logging.WARNING, __file__, 1, "a %s\nb", ("x",), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "zmtp.proxy"
    assert entry["message"] == "a x\nb"
    assert entry["time"].endswith("+00:00")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "9100"], "--metrics: '9100': expected HOST:PORT"),
        (["--metrics", "127.0.0.1:99999"], "--metrics: '127.0.0.1:99999': expected HOST:PORT"),
        (["--metrics", ":9100"], "--metrics: ':9100': expected HOST:PORT"),
        (["--log-format", "xml"], "--log-format: invalid choice"),
    ],
)
def test_bad_operator_arguments(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


async def test_watch_reports_an_abandoned_upstream_at_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{listener.socket.getsockname()[1]}"
    async with context() as ctx, trio.open_nursery() as nursery:
        nursery.start_soon(_bad_greeter, listener)
        sock = ctx.socket(zmtp.XSUB, reconnect_ivl=1)
        watch = SocketWatch("frontend", sock, advice=ABANDONED_ADVICE)
        nursery.start_soon(watch.run)
        await sock.connect(endpoint)
        while not watch.snapshot().abandoned:
            await trio.sleep(0.005)  # polls a condition; no timing is assumed
        health = watch.snapshot()
        assert health.abandoned[0][0] == endpoint
        assert "CURVE" in health.abandoned[0][1]  # the reason: the peer's mechanism
        assert health.handshakes_failed == {"MechanismMismatch": 1}
        assert health.reconnects == 0
        assert health.peers == 0
        (record,) = [r for r in caplog.records if r.name == "zmtp.proxy"]
        assert record.levelno == logging.WARNING
        message = record.getMessage()
        assert f"NOT RECONNECTING to {endpoint}" in message
        assert "--reconnect-on-protocol-error" in message
        await sock.aclose(linger=0)
        nursery.cancel_scope.cancel()
    await listener.aclose()


async def test_watch_counts_reconnects_when_told_to_keep_trying() -> None:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{listener.socket.getsockname()[1]}"
    async with context() as ctx, trio.open_nursery() as nursery:
        nursery.start_soon(_bad_greeter, listener)
        sock = ctx.socket(zmtp.XSUB, reconnect_ivl=1, reconnect_on_protocol_error=True)
        watch = SocketWatch("frontend", sock)
        nursery.start_soon(watch.run)
        await sock.connect(endpoint)
        while watch.snapshot().reconnects < 3:
            await trio.sleep(0.005)
        health = watch.snapshot()
        assert health.abandoned == ()
        assert health.handshakes_failed["MechanismMismatch"] >= 3
        await sock.aclose(linger=0)
        nursery.cancel_scope.cancel()
    await listener.aclose()


# ---------------------------------------------------------------------- subprocess


async def test_metrics_scraped_during_traffic_and_json_logs() -> None:
    """A streamer with a capture nobody reads and an upstream that breaks the protocol:
    the scrape shows traffic as it moves, connected peers, the copies the capture could
    not take, the abandoned upstream and the failed handshake; the stats line shows the
    upstream; the log lines are JSON."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    bad = f"tcp://127.0.0.1:{listener.socket.getsockname()[1]}"
    with trio.fail_after(SUBPROCESS_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_bad_greeter, listener)
            async with ProxyProcess.start(
                "--frontend", f"PULL@tcp://127.0.0.1:0,>{bad}",
                "--backend", "PUSH@tcp://127.0.0.1:0",
                "--capture", "PUSH@tcp://127.0.0.1:0",
                "--metrics", "127.0.0.1:0",
                "--log-format", "json",
                "--stats-interval", "0.05",
                "--sndhwm", "10",
            ) as proc:  # fmt: skip
                eps = await proc.endpoints()
                assert eps["metrics"].startswith("http://127.0.0.1:")
                async with zmtp.Context() as ctx:
                    producer = ctx.socket(zmtp.PUSH, linger=0)
                    consumer = ctx.socket(zmtp.PULL, linger=0)
                    await producer.connect(eps["frontend"])
                    await consumer.connect(eps["backend"])
                    # The first half, then a scrape while the stream is open.
                    first = [[b"%d" % i, b"x" * 10] for i in range(500)]
                    await producer.send_many(first)
                    got: list[list[bytes]] = []
                    while len(got) < len(first):
                        got.extend(await consumer.recv_many())
                    url = eps["metrics"]
                    while True:
                        samples = await scrape(url)
                        if sample(samples, "zmtp_proxy_endpoints_not_reconnecting",
                                  socket="frontend", type="PULL"):  # fmt: skip
                            break
                        await trio.sleep(0.02)  # between polls of the endpoint; not a sync
                    f2b = {"direction": "frontend->backend"}
                    assert sample(samples, "zmtp_proxy_messages_total", **f2b) == 500
                    assert sample(samples, "zmtp_proxy_frames_total", **f2b) == 1000
                    size = sum(len(m[0]) + 10 for m in first)
                    assert sample(samples, "zmtp_proxy_bytes_total", **f2b) == size
                    for role, kind in (("frontend", "PULL"), ("backend", "PUSH")):
                        assert sample(samples, "zmtp_proxy_peers", socket=role, type=kind) == 1
                    assert (
                        sample(
                            samples,
                            "zmtp_proxy_handshakes_failed_total",
                            socket="frontend",
                            type="PULL",
                            reason="MechanismMismatch",
                        )
                        == 1
                    )
                    # Nobody takes the capture's copies: each one is dropped, counted.
                    busy = {"socket": "capture", "type": "PUSH", "reason": "capture_busy"}
                    assert sample(samples, "zmtp_proxy_messages_dropped_total", **busy) == 500
                    hwm = {"socket": "capture", "type": "PUSH", "reason": "hwm"}
                    assert sample(samples, "zmtp_proxy_messages_dropped_total", **hwm) == 0
                    depth = {"socket": "backend", "type": "PUSH", "queue": "out"}
                    assert sample(samples, "zmtp_proxy_queue_depth", **depth) >= 0
                    # More traffic; the counters move on.
                    second = [[b"y"] for _ in range(300)]
                    await producer.send_many(second)
                    while len(got) < 800:
                        got.extend(await consumer.recv_many())
                    assert got == first + second
                    samples = await scrape(url)
                    assert sample(samples, "zmtp_proxy_messages_total", **f2b) == 800
                    assert sample(samples, "zmtp_proxy_messages_dropped_total", **busy) == 800
                    assert sample(samples, "zmtp_proxy_paused") == 0
                line = await proc.wait_for("stats: ")
                while "NOT RECONNECTING" not in line:
                    line = await proc.wait_for("stats: ")
                assert f"frontend NOT RECONNECTING to {bad}" in line
                proc.send_signal(signal.SIGINT)
                status, rest, err = await proc.finish()
            nursery.cancel_scope.cancel()
    await listener.aclose()
    assert status == 0, err
    assert (
        parse_final_statistics(next(r for r in rest if r.startswith("final")))["frontend->backend"][
            0
        ]
        == 800
    )
    entries = [json.loads(line) for line in err.splitlines()]
    warning = next(e for e in entries if e["logger"] == "zmtp.proxy")
    assert warning["level"] == "WARNING"
    assert f"NOT RECONNECTING to {bad}" in warning["message"]
    assert "--reconnect-on-protocol-error" in warning["message"]


async def test_metrics_address_in_use_is_a_one_line_error_status_1() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with trio.fail_after(SUBPROCESS_TIMEOUT):
            async with ProxyProcess.start(
                "--frontend", "PULL@tcp://127.0.0.1:0",
                "--backend", "PUSH@tcp://127.0.0.1:0",
                "--metrics", f"127.0.0.1:{port}",
            ) as proc:  # fmt: skip
                status, _rest, err = await proc.finish()
    assert status == 1
    assert err.count("\n") == 1
    assert err.startswith(f"zmtp-proxy: error: cannot serve metrics on 127.0.0.1:{port}")


async def test_first_signal_with_linger_forever_says_how_many_are_flushing() -> None:
    dead = f"tcp://127.0.0.1:{_free_port()}"
    with trio.fail_after(SUBPROCESS_TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", "PULL@tcp://127.0.0.1:0",
            "--backend", f"PUSH>{dead}",
            "--linger", "-1",
            "--stats-interval", "0.02",
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            async with zmtp.Context() as ctx:
                producer = ctx.socket(zmtp.PUSH, linger=0)
                await producer.connect(eps["frontend"])
                await producer.send_many([[b"stuck"]] * 3)
                await proc.wait_for("stats: frontend->backend 3 msgs")
            proc.send_signal(signal.SIGINT)
            flushing = await proc.wait_for("zmtp-proxy: flushing")
            proc.send_signal(signal.SIGINT)
            status, _rest, err = await proc.finish()
    assert flushing == (
        "zmtp-proxy: flushing 3 queued messages until they are delivered (--linger -1); "
        "Ctrl-C again to drop them"
    )
    assert status == 1
    assert "second signal" in err


def test_help_lists_the_operator_flags() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "--help"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=True,
    )
    for flag in ("--metrics", "--log-format", "--reconnect-on-protocol-error"):
        assert flag in done.stdout
