"""``send_batch_nowait`` writes the batch from the caller's task.

A device (the proxy) moves batches with ``send_batch_nowait``; over tcp and ipc each
call hands what it queued to the kernel before it returns (``SocketBase.on_output`` /
``_flush_held``) instead of waking every destination connection's writer task, a
scheduling round per batch.  What the kernel does not take is left to the writer, in
order; the pipes' high-water marks still bound what is queued.
"""

from __future__ import annotations

import pytest
import trio

import zmtp

from ._helpers import bind_address, connected, context


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
async def test_the_batch_is_with_the_kernel_when_the_call_returns(transport: str) -> None:
    async with context() as ctx:
        pull, push = await connected(ctx, zmtp.PULL, zmtp.PUSH, transport)
        # One message through first: the writer has then written it and parked.
        await push.send_multipart([b"first"])
        assert await pull.recv_multipart() == [b"first"]
        batch = [[b"m%d" % i, b"part"] for i in range(50)]
        (peer,) = push.peers
        engine = peer.engine
        assert engine is not None and engine.writer_idle
        assert push.send_batch_nowait(batch) == 50
        # No await since: only this call can have written it.
        assert not peer.out.queue
        assert not engine.conn.has_data_to_send
        got: list[list[bytes]] = []
        while len(got) < 50:
            got.extend(await pull.recv_many())
        assert got == [[b"m%d" % i, b"part"] for i in range(50)]


async def test_a_router_batch_to_several_peers_is_written_to_each() -> None:
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        ep = await router.bind(bind_address("tcp"))
        dealers = {}
        for rid in (b"a", b"b", b"c"):
            dealer = ctx.socket(zmtp.DEALER, routing_id=rid)
            await dealer.connect(ep)
            dealers[rid] = dealer
        await router.wait_for_peers(3)
        # One message through each first: its writer has then written it and parked.
        for rid, dealer in dealers.items():
            await router.send_multipart([rid, b"first"])
            assert await dealer.recv_multipart() == [b"first"]
        batch = [[b"abc"[i % 3 : i % 3 + 1], b"%d" % i] for i in range(30)]
        assert router.send_batch_nowait(batch) == 30
        assert all(not p.out.queue for p in router.peers)
        assert all(
            p.engine is not None and not p.engine.conn.has_data_to_send for p in router.peers
        )
        for rid, dealer in dealers.items():
            expected = [m[1:] for m in batch if m[0] == rid]
            assert [await dealer.recv_multipart() for _ in expected] == expected


async def test_what_the_kernel_does_not_take_follows_in_order() -> None:
    # More than the socket buffers hold: the call writes what the kernel takes and
    # the writer task the rest, while the caller keeps queueing behind it.
    body = b"x" * (1 << 20)
    total = 24
    async with context() as ctx:
        pull, push = await connected(
            ctx, zmtp.PULL, zmtp.PUSH, "tcp", connect_opts={"sndhwm": 4}, bind_opts={"rcvhwm": 4}
        )
        batch = [[b"%d" % i, body] for i in range(total)]
        received: list[list[bytes]] = []

        async def drain() -> None:
            while len(received) < total:
                received.extend(await pull.recv_many())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            done = 0
            while done < total:
                n = push.send_batch_nowait(batch, done)
                if n == 0:
                    await push.send_multipart(batch[done])  # waits for room
                    n = 1
                done += n
        assert [m[0] for m in received] == [b"%d" % i for i in range(total)]
        assert all(m[1] == body for m in received)
