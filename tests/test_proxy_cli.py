"""``python -m proxy``: socket specs, arguments, output, and the real subprocess.

Subprocess tests bind ``tcp://127.0.0.1:0`` and read the resolved ports from the
proxy's output, and synchronise on its output lines (never on sleeps).
"""

from __future__ import annotations

import gc
import signal
import socket
import subprocess
import sys

import pytest
import trio

import proxy._cli
import zmtp
from proxy import ProxyStatistics, SocketSpec, Traffic, parse_socket_spec
from proxy._cli import Config, main
from proxy._console import human_bytes, live_line
from proxy._proxy import DirectionStatistics
from proxy._testing import ProxyProcess, parse_final_statistics
from zmtp import SocketType

#: An upper bound for a hang; subprocess start-up is slow on a loaded machine.
SUBPROCESS_TIMEOUT = 60


# ---------------------------------------------------------------------- socket specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ROUTER@tcp://*:5559", (SocketType.ROUTER, ((True, "tcp://*:5559"),))),
        ("dealer>tcp://127.0.0.1:5560", (SocketType.DEALER, ((False, "tcp://127.0.0.1:5560"),))),
        (
            "XSUB>tcp://10.0.0.1:5556,>tcp://10.0.0.2:5556",
            (SocketType.XSUB, ((False, "tcp://10.0.0.1:5556"), (False, "tcp://10.0.0.2:5556"))),
        ),
        (
            "PULL@tcp://*:1, @ipc:///tmp/x.sock,>tcp://h:2",
            (
                SocketType.PULL,
                ((True, "tcp://*:1"), (True, "ipc:///tmp/x.sock"), (False, "tcp://h:2")),
            ),
        ),
        # CZMQ: without a prefix, serverish types bind and the others connect.
        (
            "ROUTER@tcp://*:1,tcp://*:2",
            (SocketType.ROUTER, ((True, "tcp://*:1"), (True, "tcp://*:2"))),
        ),
        (
            "PUSH>tcp://a:1,tcp://b:2",
            (SocketType.PUSH, ((False, "tcp://a:1"), (False, "tcp://b:2"))),
        ),
        ("PAIR@inproc://x", (SocketType.PAIR, ((True, "inproc://x"),))),
    ],
)
def test_socket_specs(text: str, expected: tuple[SocketType, tuple[tuple[bool, str], ...]]) -> None:
    spec = parse_socket_spec(text)
    assert (spec.socket_type, spec.endpoints) == expected
    assert parse_socket_spec(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ROUTER", "expected TYPE@ENDPOINT"),
        ("tcp://127.0.0.1:5", "expected TYPE@ENDPOINT"),
        ("FOO@tcp://*:1", "unknown socket type 'FOO'"),
        ("@tcp://*:1", "unknown socket type ''"),
        ("ROUTER@", "empty endpoint"),
        ("ROUTER@tcp://*:1,", "empty endpoint"),
        ("ROUTER>tcp://*:1", "cannot connect to host"),
        ("ROUTER@udp://x:1", "unknown transport"),
        ("ROUTER@tcp://x:99999", "out of range"),
    ],
)
def test_bad_socket_specs(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_socket_spec(text)


def test_socket_spec_str() -> None:
    spec = SocketSpec(SocketType.XSUB, ((False, "tcp://a:1"), (True, "ipc://b")))
    assert str(spec) == "XSUB>tcp://a:1,@ipc://b"


# ---------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--frontend", "FOO@tcp://*:1", "--backend", "DEALER@tcp://*:2"], "unknown socket type"),
        (["--frontend", "ROUTER@tcp://*:1"], "give both --frontend and --backend"),
        (["--backend", "DEALER@tcp://*:1"], "give both --frontend and --backend"),
        (["--capture", "REP@tcp://*:1"], "capture socket must be one of"),
        (["--control", "PUSH@tcp://*:1"], "control socket must be one of"),
        (["--sndhwm", "-1"], "--sndhwm: option sndhwm must be >= 0"),
        (["--linger", "x"], "--linger: invalid int value"),
        (["--stats-interval", "-1"], "--stats-interval: must be >= 0"),
        (["--stats-interval", "nan"], "--stats-interval: must be >= 0"),
        (["--log-level", "LOUD"], "--log-level: invalid choice"),
        (["--demo", "--frontend", "PULL@tcp://*:1", "--backend", "PUSH@tcp://*:2"], "--demo"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--front", "ROUTER@tcp://*:1"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("zmtp-proxy: error: ")
    assert message in err


def test_help_documents_the_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in ("--frontend", "--capture", "--control", "--stats-interval", "--demo", "PAUSE"):
        assert text in out


@pytest.mark.parametrize(
    ("argv", "env", "tuned"),
    [([], None, True), (["--no-tune-allocator"], None, False), ([], "0", False)],
    ids=["default", "no-tune-allocator", "ZMTP_NATIVE=0"],
)
def test_allocator_tuned_at_start_unless_told_not_to(
    argv: list[str], env: str | None, tuned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The proxy is a program of its own: it tunes malloc at start by default, and its
    # sockets' Context follows the same choice (no tuning behind --no-tune-allocator).
    if env is None:
        monkeypatch.delenv("ZMTP_NATIVE", raising=False)
    else:
        monkeypatch.setenv("ZMTP_NATIVE", env)
    calls: list[int] = []
    seen: list[Config] = []

    async def run(cfg: Config, out: object) -> int:
        seen.append(cfg)
        return 0

    monkeypatch.setattr(proxy._cli, "tune_allocator", lambda: calls.append(1) or True)
    monkeypatch.setattr(proxy._cli, "tune_gc", lambda: None)  # not this test process's
    monkeypatch.setattr(proxy._cli, "_amain", run)
    monkeypatch.setattr(proxy._cli.logging, "basicConfig", lambda **kwargs: None)
    assert main([*argv, "--quiet"]) == 0
    assert calls == ([1] if tuned else [])
    assert seen[0].tune_allocator is tuned


@pytest.mark.parametrize(("argv", "tuned"), [([], True), (["--no-tune-gc"], False)])
def test_gc_tuned_at_start_unless_told_not_to(
    argv: list[str], tuned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    async def run(cfg: Config, out: object) -> int:
        assert cfg.tune_gc is tuned
        return 0

    monkeypatch.setattr(proxy._cli, "tune_gc", lambda: calls.append(1))
    monkeypatch.setattr(proxy._cli, "_amain", run)
    monkeypatch.setattr(proxy._cli.logging, "basicConfig", lambda **kwargs: None)
    assert main([*argv, "--quiet", "--no-tune-allocator"]) == 0
    assert calls == ([1] if tuned else [])


def test_tune_gc_freezes_the_start_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        proxy._cli.tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (proxy._cli.GC_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


# ---------------------------------------------------------------------- output


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(999) == "999 B"
    assert human_bytes(1500) == "1.5 kB"
    assert human_bytes(2_500_000) == "2.5 MB"
    assert human_bytes(7e15) == "7000.0 TB"


def test_live_line_shows_totals_and_rates() -> None:
    before = ProxyStatistics()
    after = ProxyStatistics(
        DirectionStatistics(Traffic(10, 20, 1000), Traffic(10, 20, 1000)),
        DirectionStatistics(Traffic(4, 4, 40), Traffic(4, 4, 40)),
        capture_dropped=3,
    )
    line = live_line(["frontend->backend", "backend->frontend"], before, after, 2.0)
    assert line == (
        "frontend->backend 10 msgs 1.0 kB (5 msg/s, 500 B/s) | "
        "backend->frontend 4 msgs 40 B (2 msg/s, 20 B/s) | capture dropped 3"
    )


# ---------------------------------------------------------------------- subprocess


async def test_streamer_subprocess_sigint_prints_final_statistics() -> None:
    with trio.fail_after(SUBPROCESS_TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", "PULL@tcp://127.0.0.1:0",
            "--backend", "PUSH@tcp://127.0.0.1:0",
            "--stats-interval", "0",
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            async with zmtp.Context() as ctx:
                producer = ctx.socket(zmtp.PUSH, linger=0)
                consumer = ctx.socket(zmtp.PULL, linger=0)
                await producer.connect(eps["frontend"])
                await consumer.connect(eps["backend"])
                messages = [[b"%d" % i, b"payload"] for i in range(2000)]
                await producer.send_many(messages)
                got: list[list[bytes]] = []
                while len(got) < len(messages):
                    got.extend(await consumer.recv_many())
                assert got == messages
            proc.send_signal(signal.SIGINT)
            status, rest, err = await proc.finish()
    assert status == 0, err
    assert "zmtp-proxy: stopped by signal SIGINT" in rest
    stats = parse_final_statistics(rest[-1])
    total = sum(len(b"%d" % i) + 7 for i in range(2000))
    assert stats == {"frontend->backend": (2000, 4000, total), "capture_dropped": (0, 0, 0)}


async def test_queue_subprocess_sigterm_and_live_statistics() -> None:
    with trio.fail_after(SUBPROCESS_TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", "ROUTER@tcp://127.0.0.1:0",
            "--backend", "DEALER@tcp://127.0.0.1:0",
            "--stats-interval", "0.05",
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            async with zmtp.Context() as ctx:
                client = ctx.socket(zmtp.REQ, linger=0)
                worker = ctx.socket(zmtp.REP, linger=0)
                await client.connect(eps["frontend"])
                await worker.connect(eps["backend"])
                for i in range(5):
                    await client.send_multipart([b"req %d" % i])
                    assert await worker.recv_multipart() == [b"req %d" % i]
                    await worker.send_multipart([b"rep %d" % i])
                    assert await client.recv_multipart() == [b"rep %d" % i]
            # The live line reaches the totals (messages only ever go up).
            while True:
                line = await proc.wait_for("stats: ")
                if line.startswith("stats: frontend->backend 5 msgs") and (
                    "backend->frontend 5 msgs" in line
                ):
                    break
            proc.send_signal(signal.SIGTERM)
            status, rest, err = await proc.finish()
    assert status == 0, err
    assert "zmtp-proxy: stopped by signal SIGTERM" in rest
    stats = parse_final_statistics(rest[-1])
    # REQ adds an empty delimiter, the ROUTER a 5-byte routing id: 3 frames each way.
    assert stats["frontend->backend"] == (5, 15, 5 * (5 + 5))
    assert stats["backend->frontend"] == (5, 15, 5 * (5 + 5))


async def test_terminate_over_the_control_socket_exits_0() -> None:
    with trio.fail_after(SUBPROCESS_TIMEOUT):
        async with ProxyProcess.start(
            "--frontend", "PULL@tcp://127.0.0.1:0",
            "--backend", "PUSH@tcp://127.0.0.1:0",
            "--control", "REP@tcp://127.0.0.1:0",
            "--capture", "PUSH@tcp://127.0.0.1:0",
        ) as proc:  # fmt: skip
            eps = await proc.endpoints()
            assert set(eps) == {"frontend", "backend", "control", "capture"}
            async with zmtp.Context() as ctx:
                steer = ctx.socket(zmtp.REQ, linger=0)
                await steer.connect(eps["control"])
                producer = ctx.socket(zmtp.PUSH, linger=0)
                await producer.connect(eps["frontend"])
                consumer = ctx.socket(zmtp.PULL, linger=0)
                await consumer.connect(eps["backend"])
                await producer.send_multipart([b"hello"])
                assert await consumer.recv_multipart() == [b"hello"]
                await steer.send_multipart([b"STATISTICS"])
                reply = await steer.recv_multipart()
                # Nobody pulls from the capture socket: its copy was dropped, not waited for.
                stats = ProxyStatistics.from_libzmq_frames(reply)
                assert stats.frontend_to_backend.sent.frames == 1
                await steer.send_multipart([b"TERMINATE"])
                assert await steer.recv_multipart() == [b""]
            status, rest, err = await proc.finish()
    assert status == 0, err
    assert "zmtp-proxy: stopped by TERMINATE" in rest
    assert parse_final_statistics(rest[-1])["capture_dropped"] == (1, 0, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_quiet_prints_nothing() -> None:
    port = _free_port()
    with trio.fail_after(SUBPROCESS_TIMEOUT):
        async with ProxyProcess.start(
            "--quiet",
            "--frontend", "PULL@tcp://127.0.0.1:0",
            "--backend", "PUSH@tcp://127.0.0.1:0",
            "--control", f"PAIR@tcp://127.0.0.1:{port}",
        ) as proc:  # fmt: skip
            async with zmtp.Context() as ctx:
                steer = ctx.socket(zmtp.PAIR, linger=0)
                await steer.connect(f"tcp://127.0.0.1:{port}")
                await steer.send_multipart([b"TERMINATE"])
                assert await steer.recv_multipart() == [b""]
            status, rest, err = await proc.finish()
    assert (status, rest, err) == (0, [], "")


async def test_default_queue_on_5559_and_5560() -> None:
    for port in (5559, 5560):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                pytest.skip(f"port {port} is in use on this machine")
    with trio.fail_after(SUBPROCESS_TIMEOUT):
        async with ProxyProcess.start() as proc:
            first = await proc.readline()
            assert first.startswith("no --frontend/--backend given: running a ROUTER<->DEALER")
            eps = await proc.endpoints()
            assert eps == {"frontend": "tcp://127.0.0.1:5559", "backend": "tcp://127.0.0.1:5560"}
            async with zmtp.Context() as ctx:
                client = ctx.socket(zmtp.DEALER, linger=0)
                worker = ctx.socket(zmtp.DEALER, linger=0)
                await client.connect(eps["frontend"])
                await worker.connect(eps["backend"])
                await client.send_multipart([b"ping"])
                rid, _body = await worker.recv_multipart()
                await worker.send_multipart([rid, b"pong"])
                assert await client.recv_multipart() == [b"pong"]
            proc.send_signal(signal.SIGINT)
            status, _rest, err = await proc.finish()
    assert status == 0, err


async def test_address_in_use_is_a_one_line_error_status_1() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with trio.fail_after(SUBPROCESS_TIMEOUT):
            async with ProxyProcess.start(
                "--frontend", f"ROUTER@tcp://127.0.0.1:{port}",
                "--backend", "DEALER@tcp://127.0.0.1:0",
            ) as proc:  # fmt: skip
                status, rest, err = await proc.finish()
    assert status == 1
    assert rest == []
    assert err.count("\n") == 1
    assert err.startswith(
        f"zmtp-proxy: error: cannot bind frontend ROUTER to tcp://127.0.0.1:{port}"
    )


async def test_linger_bounds_shutdown_and_a_second_signal_exits_at_once() -> None:
    """A message queued for a peer that never comes: ``--linger 100`` gives up after
    100 ms and exits 0; ``--linger -1`` would wait for ever, so a second signal exits 1."""
    dead = f"tcp://127.0.0.1:{_free_port()}"
    for linger, second in (("100", False), ("-1", True)):
        with trio.fail_after(SUBPROCESS_TIMEOUT):
            async with ProxyProcess.start(
                "--frontend", "PULL@tcp://127.0.0.1:0",
                "--backend", f"PUSH>{dead}",
                "--linger", linger,
                "--stats-interval", "0.02",
            ) as proc:  # fmt: skip
                eps = await proc.endpoints()
                async with zmtp.Context() as ctx:
                    producer = ctx.socket(zmtp.PUSH, linger=0)
                    await producer.connect(eps["frontend"])
                    await producer.send_multipart([b"stuck"])
                    # Once the proxy has handed it to the backend, it waits there.
                    await proc.wait_for("stats: frontend->backend 1 msgs")
                proc.send_signal(signal.SIGINT)
                final = await proc.wait_for("final statistics: ")
                if second:
                    proc.send_signal(signal.SIGINT)
                status, _rest, err = await proc.finish()
        if second:
            assert status == 1
            assert "second signal" in err
        else:
            assert status == 0, err
        assert parse_final_statistics(final)["frontend->backend"] == (1, 1, 5)


async def test_demo_runs_and_exits_0() -> None:
    with trio.fail_after(SUBPROCESS_TIMEOUT):
        async with ProxyProcess.start("--demo") as proc:
            status, rest, err = await proc.finish()
    assert status == 0, (rest, err)
    assert any(line.startswith("stats: frontend->backend") for line in rest)
    assert rest[-1].startswith("zmtp-proxy demo: OK")
    assert any("replies came back to the client that asked" in line for line in rest)


async def test_demo_interrupted_exits_0_promptly() -> None:
    """SIGINT during the demo stops its clients and workers too (pyzmq threads
    included, which cannot be cancelled and must be told)."""
    with trio.fail_after(SUBPROCESS_TIMEOUT):
        async with ProxyProcess.start("--demo") as proc:
            await proc.wait_for("stats: ")
            proc.send_signal(signal.SIGINT)
            status, rest, err = await proc.finish()
    assert status == 0, err
    assert rest[-1] == "zmtp-proxy demo: interrupted by SIGINT"


def test_bad_arguments_from_the_real_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "--frontend", "ROUTER"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "expected TYPE@ENDPOINT" in done.stderr
