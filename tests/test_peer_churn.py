"""Peers that come and go leave nothing behind in a socket.

The soak (``python -m bench.soak``) found a PULL->PUSH proxy growing by 0.3 MiB a
minute: the PUSH recorded every engine it woke for output, for an eager flush before
its task next parked in a receive, and a PUSH never receives, so the record grew by
one entry per wake-up for the life of the socket (and kept dead engines alive).  These
tests count the socket's tables and the live engines after churn; they wait on
monitor events and message counts, never on time.
"""

from __future__ import annotations

import gc

import pytest

import zmtp
from zmtp.sockets import Socket
from zmtp.sockets._engine import Engine
from zmtp.sockets._monitor import EventType, Monitor

from ._helpers import STREAM_TRANSPORTS, bind_address, context

#: Connections opened and closed per test: enough that a per-connection or per-wake
#: leftover shows as a count far from zero.
ROUNDS = 30
PER_ROUND = 20


def live_engines(owner: Socket) -> int:
    """Engines of ``owner`` still reachable from anywhere (after a full collection)."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Engine) and o.owner is owner)


async def disconnected(mon: Monitor) -> None:
    """Wait for the next DISCONNECTED: the engine has ended and the socket dropped it."""
    async for event in mon:
        if event.type is EventType.DISCONNECTED:
            return
    raise AssertionError("monitor ended before a DISCONNECTED event")


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_a_send_only_socket_holds_each_engine_once(transport: str) -> None:
    # One message per round trip: the PUSH's writer parks between messages, so
    # every send wakes it (before the fix, one more list entry each time).
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind(bind_address(transport))
        push = ctx.socket(zmtp.PUSH)
        await push.connect(ep)
        for i in range(ROUNDS * PER_ROUND):
            await push.send(b"%d" % i)
            assert await pull.recv() == b"%d" % i
        assert len(push._dirty) <= 1


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_a_bound_push_forgets_pulls_that_left(transport: str) -> None:
    # The soak's pipeline backend: a bound PUSH, consumers connecting and leaving.
    async with context() as ctx:
        push = ctx.socket(zmtp.PUSH)
        mon = push.monitor()
        ep = await push.bind(bind_address(transport))
        for r in range(ROUNDS):
            pull = ctx.socket(zmtp.PULL)
            await pull.connect(ep)
            for i in range(PER_ROUND):
                await push.send(b"%d-%d" % (r, i))
                assert await pull.recv() == b"%d-%d" % (r, i)
            await pull.aclose(linger=0)
            await disconnected(mon)
        assert push.peers == []
        assert push._lb.peers == []
        assert live_engines(push) == 0
        assert not push._dirty


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_a_bound_pull_forgets_pushes_that_left(transport: str) -> None:
    # The soak's pipeline frontend: a bound PULL, producers connecting and leaving.
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        mon = pull.monitor()
        ep = await pull.bind(bind_address(transport))
        for r in range(ROUNDS):
            push = ctx.socket(zmtp.PUSH)
            await push.connect(ep)
            await push.send_many([[b"%d-%d" % (r, i)] for i in range(PER_ROUND)])
            await push.aclose(linger=-1)
            for i in range(PER_ROUND):
                assert await pull.recv() == b"%d-%d" % (r, i)
            await disconnected(mon)
        assert pull.peers == []
        assert not pull._fq.active
        assert not pull._dirty
        assert live_engines(pull) == 0
