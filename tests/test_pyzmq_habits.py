"""What users coming from pyzmq run into: closing that never ends, ``send(more=True)``
then ``send_multipart``, socket type names, exception names, error messages.

Closing (``Socket.aclose``): with the default ``linger=-1`` a socket whose peer is gone
waits for ever, as libzmq's does, but a cancelled close, and Ctrl-C, must still return
promptly (trio's rule for ``aclose``): the queued messages are dropped and logged, and
the cancellation or KeyboardInterrupt goes on.  The Ctrl-C case runs a real process and
sends it a real SIGINT.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
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
