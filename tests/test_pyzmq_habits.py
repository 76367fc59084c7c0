"""What users coming from pyzmq run into: closing that never ends, ``send(more=True)``
then ``send_multipart``, socket type names, exception names, error messages.

Closing (``Socket.aclose``): with the default ``linger=-1`` a socket whose peer is gone
waits for ever, as libzmq's does, but a cancelled close, and Ctrl-C, must still return
promptly (trio's rule for ``aclose``): the queued messages are dropped and logged, and
the cancellation or KeyboardInterrupt goes on.  The Ctrl-C case runs a real process and
sends it a real SIGINT.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import pytest
import trio
import trio.testing

import zmtp

from ._helpers import TIMEOUT, context, logged

REPO = Path(__file__).resolve().parent.parent


def nowhere() -> str:
    """An ipc endpoint nobody listens on (a fresh private directory)."""
    return f"ipc://{tempfile.mkdtemp(prefix='zmtp-test-')}/gone"


def running_tasks() -> set[trio.lowlevel.Task]:
    """Every task of this trio run."""
    out: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        out.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return out


# ----------------------------------------------------------------------- cancelled close


async def test_cancelled_aclose_drops_logs_and_returns(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with context() as ctx:
        inside = running_tasks()
        dead = nowhere()
        dealer = ctx.socket(zmtp.DEALER)  # linger -1: would wait for ever
        await dealer.connect(dead)
        for _ in range(3):
            await dealer.send_multipart([b"undeliverable"])
        with trio.move_on_after(1) as scope:
            await dealer.aclose()
        assert scope.cancelled_caught  # the Cancelled went on, out of aclose
        assert dealer.closed
        assert running_tasks() == inside  # its connector is gone too
        assert logged(caplog, "close cancelled, dropped 3 messages for", dead)
        assert [r.levelno for r in caplog.records if "dropped" in r.getMessage()] == [
            logging.WARNING
        ]
        await dealer.aclose()  # and closing again is harmless


async def test_cancelled_context_exit_closes_every_socket(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    dead = nowhere()
    with trio.fail_after(TIMEOUT):
        before = running_tasks()
        with trio.move_on_after(1) as scope:
            async with zmtp.Context() as ctx:
                socks = [ctx.socket(zmtp.DEALER), ctx.socket(zmtp.PUSH)]
                for sock in socks:
                    await sock.connect(dead)
                    await sock.send_multipart([b"x", b"y"])
        assert scope.cancelled_caught
        assert all(sock.closed for sock in socks)
        assert running_tasks() == before
    assert logged(caplog, "DEALER", "dropped 1 message for", dead)
    assert logged(caplog, "PUSH", "dropped 1 message for", dead)


async def test_linger_expiry_is_quiet_and_a_flushed_close_logs_nothing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with context() as ctx:
        dealer = ctx.socket(zmtp.DEALER, linger=200)
        await dealer.connect(nowhere())
        await dealer.send_multipart([b"x"])
        await dealer.aclose()  # the linger runs out: no exception, no warning
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind("inproc://flushed")
        push = ctx.socket(zmtp.PUSH)
        await push.connect(ep)
        await push.send_multipart([b"delivered"])
        await push.aclose()
        assert await pull.recv_multipart() == [b"delivered"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# A program that blocks in aclose (linger -1, a DEALER whose peer is gone), and says so
# once every task is blocked with the close under way.
BLOCKED_IN_ACLOSE = """
import sys, trio, trio.testing, zmtp

@trio.lowlevel.enable_ki_protection  # the Ctrl-C must land in the close, not here
async def announce(socks):
    await trio.testing.wait_all_tasks_blocked()
    assert all(s.closed for s in socks), "not closing yet"
    print("blocked in aclose", flush=True)

async def main(endpoint, count):
    async with zmtp.Context() as ctx:
        socks = [ctx.socket(zmtp.DEALER) for _ in range(count)]
        for sock in socks:
            await sock.connect(endpoint)
            await sock.send_multipart([b"a"])
            await sock.send_multipart([b"b"])
        ctx.nursery.start_soon(announce, socks)
    # leaving the block closes the sockets with linger -1

trio.run(main, sys.argv[1], int(sys.argv[2]))
"""


@pytest.mark.parametrize("count", [1, 2])
def test_ctrl_c_cuts_linger_short(count: int) -> None:
    dead = nowhere()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_IN_ACLOSE, dead, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "blocked in aclose\n", proc.communicate(timeout=TIMEOUT)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # A plain KeyboardInterrupt (not one wrapped in an ExceptionGroup), so Python
    # ends the way a Ctrl-C'ed program does: killed by SIGINT.
    assert proc.returncode == -signal.SIGINT, err
    assert "ExceptionGroup" not in err, err
    dropped = [line for line in err.splitlines() if "dropped" in line]
    assert len(dropped) == count, err
    for line in dropped:
        assert line.endswith(f"close cancelled, dropped 2 messages for {dead}"), err


# ----------------------------------------------------------------------- send(more=True)


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
async def test_send_more_then_send_multipart_continues_the_message(transport: str) -> None:
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER, router_mandatory=True)
        ep = await router.bind(
            "inproc://continue" if transport == "inproc" else "tcp://127.0.0.1:0"
        )
        dealer = ctx.socket(zmtp.DEALER, routing_id=b"client")
        await dealer.connect(ep)
        # The DEALER side: frames held by send(more=True) lead whatever comes next.
        await dealer.send(b"a", more=True)
        await dealer.send_multipart([b"b", b"c"])
        assert await router.recv_multipart() == [b"client", b"a", b"b", b"c"]
        # pyzmq's ROUTER reply idiom, and each of the other sends.
        await router.send(b"client", more=True)
        await router.send_multipart([b"reply"])
        await router.send(b"client", more=True)
        router.send_multipart_nowait([b"nowait"])
        await router.send(b"client", more=True)
        assert await router.send_many([[b"many"], [b"client", b"second"]]) == 2
        await router.send(b"client", more=True)
        assert router.send_batch_nowait([[b"ignored"], [b"batch"]], start=1) == 1
        await router.send_multipart([b"client", b"plain"])  # nothing held any more
        for expected in ([b"reply"], [b"nowait"], [b"many"], [b"second"], [b"batch"], [b"plain"]):
            assert await dealer.recv_multipart() == expected


async def test_a_cancelled_or_refused_send_keeps_the_held_frames(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with context() as ctx:
        dealer = ctx.socket(zmtp.DEALER, linger=0)  # no peer: every send would block
        await dealer.send(b"head", more=True)
        with trio.move_on_after(1):
            await dealer.send_multipart([b"body"])
        with trio.move_on_after(1):
            await dealer.send_many([[b"body"]])
        with pytest.raises(trio.WouldBlock):
            dealer.send_multipart_nowait([b"body"])
        assert dealer.send_batch_nowait([[b"body"]]) == 0
        router = ctx.socket(zmtp.ROUTER)
        await router.bind("inproc://held")
        await dealer.connect("inproc://held")
        await dealer.send_multipart([b"body"])
        _rid, *msg = await router.recv_multipart()
        assert msg == [b"head", b"body"]


# ----------------------------------------------------------------------- socket types by name


@pytest.mark.parametrize("name", ["DEALER", "dealer", "Dealer"])
async def test_socket_types_by_name_in_any_case(name: str) -> None:
    async with context() as ctx:
        sock = ctx.socket(name, routing_id=b"x")
        assert sock.socket_type is zmtp.DEALER
        assert isinstance(sock, type(ctx.socket(zmtp.DEALER)))
        assert ctx.socket(5).socket_type is zmtp.DEALER  # libzmq's number


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        ("STREAM", ValueError, "unknown socket type 'STREAM' (one of PAIR, PUB"),
        ("", ValueError, "unknown socket type ''"),
        (" dealer", ValueError, "unknown socket type ' dealer'"),
        (99, ValueError, "unknown socket type 99"),
        (True, TypeError, "not bool"),
        (b"DEALER", TypeError, "not bytes"),
        (5.0, TypeError, "not float"),
    ],
)
async def test_bad_socket_types_are_refused_precisely(
    bad: object, error: type[Exception], words: str
) -> None:
    async with context() as ctx:
        with pytest.raises(error) as info:
            ctx.socket(bad)  # type: ignore[call-overload]
        assert words in str(info.value)


# ----------------------------------------------------------------------- exception names

PUBLIC_EXCEPTIONS = sorted(
    (obj for obj in vars(zmtp).values() if isinstance(obj, type) and issubclass(obj, Exception)),
    key=lambda cls: cls.__name__,
)

#: One instance of each public exception, built as the library builds it.
SAMPLES: dict[str, Exception] = {
    "VersionError": zmtp.VersionError("ZMTP 2.0", major=2, minor=0),
    "MechanismMismatch": zmtp.MechanismMismatch("NULL/PLAIN", ours=b"NULL", theirs=b"PLAIN"),
    "IncompatibleSocketType": zmtp.IncompatibleSocketType("PUB/PUSH", ours="PUB", theirs="PUSH"),
    "PeerError": zmtp.PeerError(b"go away"),
    "MessageTooLarge": zmtp.MessageTooLarge(10, 5),
    "ZapError": zmtp.ZapError("bad reply", code="ZAP_BAD_VERSION"),
    "AuthenticationFailed": zmtp.AuthenticationFailed("refused", reason=b"400", status=b"400"),
}


def test_every_public_exception_is_listed() -> None:
    assert len(PUBLIC_EXCEPTIONS) == 23
    assert {cls.__name__ for cls in PUBLIC_EXCEPTIONS} <= set(zmtp.__all__)


@pytest.mark.parametrize("cls", PUBLIC_EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_exceptions_show_as_zmtp_names_and_pickle(cls: type[Exception]) -> None:
    assert f"{cls.__module__}.{cls.__qualname__}" == f"zmtp.{cls.__name__}"
    if cls in (zmtp.ProtocolError, zmtp.CurveError):
        return  # abstract: never raised as itself
    exc = SAMPLES.get(cls.__name__) or cls("what happened")
    shown = "".join(traceback.format_exception_only(exc))
    assert shown.startswith(f"zmtp.{cls.__name__}: ")
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is cls
    assert (again.args, str(again), vars(again)) == (exc.args, str(exc), vars(exc))


def test_a_protocol_error_keeps_its_attributes_through_pickle() -> None:
    exc = zmtp.MessageTooLarge(1 << 40, 1 << 20)
    again = pickle.loads(pickle.dumps(exc))
    assert (again.size, again.limit, again.fatal) == (1 << 40, 1 << 20, False)
    assert again.reason == exc.reason == b"Message too large"


# ----------------------------------------------------------------------- closed Context


async def test_a_closed_context_says_so() -> None:
    async with zmtp.Context() as ctx:
        pass
    assert ctx.closed
    for use in (lambda: ctx.socket(zmtp.PUSH), lambda: ctx.nursery):
        with pytest.raises(trio.ClosedResourceError, match=r"^this Context is closed$"):
            use()
    with pytest.raises(trio.ClosedResourceError, match=r"^this Context is closed$"):
        async with ctx:
            pass
    fresh = zmtp.Context()  # never entered: a different mistake, a different message
    assert not fresh.closed
    with pytest.raises(RuntimeError, match=r"async with zmtp\.Context"):
        fresh.socket(zmtp.PUSH)


# ----------------------------------------------------------------------- errors name endpoints


async def test_bind_errors_name_the_endpoint() -> None:
    async with context() as ctx:
        first = ctx.socket(zmtp.PULL)
        ep = await first.bind("tcp://127.0.0.1:0")
        with pytest.raises(OSError) as info:
            await ctx.socket(zmtp.PULL).bind(ep)
        assert info.value.errno == errno.EADDRINUSE
        assert str(info.value) == f"[Errno {errno.EADDRINUSE}] Address already in use: {ep}"
        missing = f"ipc://{tempfile.mkdtemp(prefix='zmtp-test-')}/no/such/dir"
        with pytest.raises(FileNotFoundError) as info2:
            await ctx.socket(zmtp.PULL).bind(missing)
        assert str(info2.value).endswith(f"No such file or directory: {missing}")


async def test_connect_failures_name_the_endpoint() -> None:
    dead = nowhere()
    async with context() as ctx:
        push = ctx.socket(zmtp.PUSH, linger=0)
        events = push.monitor()
        await push.connect(dead)
        async for event in events:
            if event.type is zmtp.EventType.CONNECT_DELAYED:
                assert event.reason == f"[Errno {errno.ENOENT}] No such file or directory: {dead}"
                break


def test_the_tap_names_the_endpoint_it_cannot_bind() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        ep = f"tcp://127.0.0.1:{held.getsockname()[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "zmtp", "tap", ep, "tcp://127.0.0.1:1"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 3,
            check=False,
            cwd=REPO,
        )
    assert result.returncode == 1
    assert result.stderr.endswith(f"Address already in use: {ep}\n"), result.stderr


# ----------------------------------------------------------------------- strings and JSON


async def test_send_and_recv_string_and_json() -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind("inproc://text")
        push = ctx.socket(zmtp.PUSH)
        await push.connect(ep)
        await push.send_string("héllo")
        await push.send_string("topic", more=True)
        await push.send_json({"n": [1, 2]})
        await push.send_string("é", encoding="latin-1")
        assert await pull.recv_multipart() == ["héllo".encode()]
        assert await pull.recv_string() == "topic" and pull.rcvmore
        assert await pull.recv_json() == {"n": [1, 2]} and not pull.rcvmore
        assert await pull.recv_string(encoding="latin-1") == "é"
        with pytest.raises(TypeError, match="takes a str, not bytes"):
            await push.send_string(b"bytes")  # type: ignore[arg-type]
        await push.send_multipart([b"not json"])
        with pytest.raises(ValueError):
            await pull.recv_json()
