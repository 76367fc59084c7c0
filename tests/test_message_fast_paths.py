"""The per-message fast paths of ``send_multipart`` (a lone peer's pipe, queued on
directly: ``LoadBalancer.lone``) and ``recv_multipart`` (the fair queue's take, inlined)
behave as the general paths do: the high-water mark blocks, a cancelled send sends
nothing, held ``send(more=True)`` frames go with the next message, and receives keep
the fair queue's turns and its record of the sender."""

from __future__ import annotations

import tempfile

import trio
import trio.testing

import zmtp

from ._helpers import connected, context


def nowhere() -> str:
    """An ipc endpoint nobody listens on yet (a fresh private directory)."""
    return f"ipc://{tempfile.mkdtemp(prefix='zmtp-test-')}/later"


async def test_a_lone_peer_blocks_at_the_hwm_and_a_cancelled_send_sends_nothing() -> None:
    async with context() as ctx:
        endpoint = nowhere()
        push = ctx.socket(zmtp.PUSH, sndhwm=3)
        await push.connect(endpoint)  # the peer's pipe queues until it connects
        await push.send(b"a", more=True)
        await push.send_multipart([b"1"])  # the load balancer's send: names the pipe
        await push.send_multipart([b"2"])  # the fast path from here on
        await push.send_multipart([b"3"])
        await push.send(b"b", more=True)
        blocked = trio.CancelScope()
        sent = []

        async def fourth() -> None:
            with blocked:
                await push.send_multipart([b"4"])
                sent.append(4)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fourth)
            await trio.testing.wait_all_tasks_blocked()
            assert sent == []  # at the HWM: it waits
            blocked.cancel()
        pull = ctx.socket(zmtp.PULL)
        await pull.bind(endpoint)
        await push.send(b"5")  # the held frame was kept: it goes with this one (once
        # the connection drained the pipe)
        got = [await pull.recv_multipart() for _ in range(4)]
        assert got == [[b"a", b"1"], [b"2"], [b"3"], [b"b", b"5"]]
        assert sent == []


async def test_receives_take_turns_and_know_their_sender() -> None:
    async with context() as ctx:
        pull, first = await connected(ctx, zmtp.PULL, zmtp.PUSH, "tcp")
        second = ctx.socket(zmtp.PUSH)
        await second.connect(pull.last_endpoint)
        await pull.wait_for_peers(2)
        await first.send_multipart([b"warm"])
        assert await pull.recv_multipart() == [b"warm"]  # now the lone peer's pipe
        await first.send_many([[b"f%d" % i] for i in range(3)])
        await second.send_many([[b"s%d" % i] for i in range(3)])
        # Both peers' messages queued before the first receive (polled: they cross
        # the kernel), so the turns decide the order alone.
        while sum(len(peer.inp) for peer in pull._peers) < 6:
            await trio.sleep(0.001)
        received = [await pull.recv_message() for _ in range(6)]
        heads = [msg.parts[0][:1] for msg in received]
        assert heads in ([b"f", b"s"] * 3, [b"s", b"f"] * 3)  # one from each in turn
        assert [msg.parts[0][1:] for msg in received] == [b"0", b"0", b"1", b"1", b"2", b"2"]
        senders = {head: msg.peer for head, msg in zip(heads, received, strict=True)}
        assert senders[b"f"] is not senders[b"s"]
        assert all(msg.peer is senders[head] for head, msg in zip(heads, received, strict=True))
