"""The trio socket layer between our own sockets: patterns, queues, cancellation, close.

Most behaviours run over all three transports: ``inproc`` (socket to socket, no bytes
encoded), ``tcp`` and ``ipc`` (a real connection and engine on each side).  The
interop suite (``interop/test_sockets_interop.py``) checks the same behaviours against
libzmq.

No test sleeps to synchronise.  A test waits for a condition (``wait_for_peers``, a
monitor event, a message) or for quiescence (``trio.testing.wait_all_tasks_blocked``:
every task parked and no I/O ready, so nothing can change until the test acts).
Negative checks ("nothing else arrives") use a short window: they can only pass
wrongly, never fail wrongly.
"""

from __future__ import annotations

import itertools
import tempfile
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

import zmtp
from zmtp.sockets import Socket

from ._helpers import (
    QUIET,
    STREAM_TRANSPORTS,
    TIMEOUT,
    TRANSPORTS,
    bind_address,
    context,
    nothing_arrives,
)


def fresh_ipc() -> str:
    """An ipc endpoint nobody listens on, in a new private directory."""
    return f"ipc://{tempfile.mkdtemp(prefix='zmtp-test-')}/s"


async def connected(
    ctx: zmtp.Context,
    bind_type: zmtp.SocketType,
    connect_type: zmtp.SocketType,
    transport: str,
    *,
    bind_opts: dict[str, Any] | None = None,
    connect_opts: dict[str, Any] | None = None,
) -> tuple[Socket, Socket, str]:
    """Bind one socket, connect another, wait for the handshake on both sides."""
    b = ctx.socket(bind_type, **(bind_opts or {}))
    ep = await b.bind(bind_address(transport))
    c = ctx.socket(connect_type, **(connect_opts or {}))
    await c.connect(ep)
    await c.wait_for_peers(1)
    await b.wait_for_peers(1)
    return b, c, ep


async def saturate(sock: Socket, make: Callable[[int], list[bytes]], limit: int = 10_000) -> int:
    """Send ``make(0), make(1), ...`` without waiting until nothing more can move.

    The socket is saturated when a send would block even after every task has parked
    with no I/O ready (so no engine can drain anything more).  Returns how many
    messages were sent; fails if ``limit`` is reached first (no back-pressure).
    """
    n = 0
    while n < limit:
        try:
            sock.send_multipart_nowait(make(n))
            n += 1
            continue
        except trio.WouldBlock:
            pass
        await trio.testing.wait_all_tasks_blocked()
        try:
            sock.send_multipart_nowait(make(n))
            n += 1
        except trio.WouldBlock:
            return n
    pytest.fail(f"{limit} messages sent without ever blocking")


def all_tasks() -> set[trio.lowlevel.Task]:
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


#: A 3 MiB frame, with a pattern so that a shifted or truncated copy is noticed.
BIG = bytes(range(256)) * (3 * 4096)


# ----------------------------------------------------------------------- PUSH / PULL


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_multipart_integrity(transport: str) -> None:
    async with context() as ctx:
        pull, push, _ = await connected(ctx, zmtp.PULL, zmtp.PUSH, transport)
        messages: list[list[Any]] = [
            [b"single"],
            [b""],
            [b"", b"", b""],
            [b"a", b"", b"c"],
            [bytearray(b"mutable"), memoryview(b"view"), memoryview(bytearray(b"rw"))],
            [b"head", BIG, b"tail"],
            [bytes([i]) for i in range(100)],
        ]
        for msg in messages:
            await push.send_multipart(msg)
        for msg in messages:
            got = await pull.recv_multipart()
            assert got == [bytes(f) for f in msg]
            assert all(type(f) is bytes for f in got)


async def test_mutable_frame_is_copied_at_send() -> None:
    async with context() as ctx:
        pull, push, _ = await connected(ctx, zmtp.PULL, zmtp.PUSH, "inproc")
        buf = bytearray(b"before")
        await push.send_multipart([buf])
        buf[:] = b"after!"
        assert await pull.recv_multipart() == [b"before"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_frames_over_mutable_memory_are_copied_at_send(transport: str) -> None:
    async with context() as ctx:
        # Queued before the peer exists, so the message waits in our queue while the
        # caller reuses its buffers.
        ep = fresh_ipc() if transport == "ipc" else bind_address(transport)
        if transport == "tcp":
            probe = ctx.socket(zmtp.PULL)
            ep = await probe.bind(ep)
            await probe.aclose()
        push = ctx.socket(zmtp.PUSH, reconnect_ivl=10)
        await push.connect(ep)
        buf = bytearray(b"original")
        readonly_view = memoryview(buf).toreadonly()  # read-only, yet over mutable memory
        await push.send_multipart([buf, memoryview(buf), readonly_view, readonly_view[2:5]])
        buf[:] = b"CHANGED!"
        pull = ctx.socket(zmtp.PULL)
        await pull.bind(ep)
        assert await pull.recv_multipart() == [b"original", b"original", b"original", b"igi"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_push_load_balances(transport: str) -> None:
    async with context() as ctx:
        push = ctx.socket(zmtp.PUSH)
        pulls = []
        for _ in range(3):
            pull = ctx.socket(zmtp.PULL)
            await push.connect(await pull.bind(bind_address(transport)))
            pulls.append(pull)
        await push.wait_for_peers(3)
        total = 60
        for i in range(total):
            await push.send_multipart([b"%d" % i])
        got: list[list[int]] = [[] for _ in pulls]
        done = trio.Event()

        async def drain(k: int) -> None:
            while True:
                [frame] = await pulls[k].recv_multipart()
                got[k].append(int(frame))
                if sum(map(len, got)) == total:
                    done.set()

        async with trio.open_nursery() as nursery:
            for k in range(3):
                nursery.start_soon(drain, k)
            await done.wait()
            nursery.cancel_scope.cancel()
        counts = [len(g) for g in got]
        # Round-robin over peers that all have room: an even spread.
        assert max(counts) - min(counts) <= 1, counts
        assert sorted(itertools.chain(*got)) == list(range(total))
        for g in got:
            assert g == sorted(g)  # each peer sees its share in order


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pull_fair_queues(transport: str) -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind(bind_address(transport))
        pushes = []
        for _ in range(3):
            push = ctx.socket(zmtp.PUSH)
            await push.connect(ep)
            pushes.append(push)
        per_peer = 10
        for k, push in enumerate(pushes):
            for i in range(per_peer):
                await push.send_multipart([b"%d" % k, b"%d" % i])
        # Wait until everything sits in the PULL's queues, so fair-queueing is visible.
        while sum(len(p.inp) for p in pull.peers) < 3 * per_peer:
            await trio.sleep(0.005)
        got = [await pull.recv_multipart() for _ in range(3 * per_peer)]
        senders = [int(m[0]) for m in got]
        # Strict turns: each window of three holds every peer once.
        for start in range(0, len(senders), 3):
            assert sorted(senders[start : start + 3]) == [0, 1, 2], senders
        for k in range(3):
            assert [int(m[1]) for m in got if int(m[0]) == k] == list(range(per_peer))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_hwm_blocks_and_never_splits(transport: str) -> None:
    async with context() as ctx:
        pull, push, _ = await connected(
            ctx,
            zmtp.PULL,
            zmtp.PUSH,
            transport,
            bind_opts={"rcvhwm": 3},
            connect_opts={"sndhwm": 3},
        )
        payload = b"x" * 65536 if transport != "inproc" else b"x"

        def make(n: int) -> list[bytes]:
            return [b"%d" % n, payload, b"end"]

        sent = await saturate(push, make)
        assert sent >= 3  # at least the send queue

        # A blocking send now waits: nothing can drain.
        async with trio.open_nursery() as nursery:
            finished = trio.Event()

            async def blocked_send() -> None:
                await push.send_multipart(make(sent))
                finished.set()

            nursery.start_soon(blocked_send)
            await trio.testing.wait_all_tasks_blocked()
            assert not finished.is_set()
            # The reader takes everything: the blocked send completes, nothing is lost,
            # duplicated, reordered or split.
            for i in range(sent + 1):
                assert await pull.recv_multipart() == make(i)
            await finished.wait()
        await nothing_arrives(pull)


async def test_inproc_hwm_is_sum_of_both_sides() -> None:
    # libzmq sizes an inproc pipe as sndhwm + rcvhwm (src/socket_base.cpp).
    async with context() as ctx:
        _pull, push, _ = await connected(
            ctx, zmtp.PULL, zmtp.PUSH, "inproc", bind_opts={"rcvhwm": 3}, connect_opts={"sndhwm": 2}
        )
        assert await saturate(push, lambda n: [b"%d" % n]) == 5


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_messages_queue_before_the_peer_exists(transport: str) -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        if transport == "inproc":
            ep = bind_address("inproc")
        elif transport == "ipc":
            ep = fresh_ipc()
        else:
            # A port that nobody listens on yet (freed again at once).
            probe = ctx.socket(zmtp.PULL)
            ep = await probe.bind("tcp://127.0.0.1:0")
            await probe.aclose()
        push = ctx.socket(zmtp.PUSH, reconnect_ivl=10)
        await push.connect(ep)
        for i in range(5):
            push.send_multipart_nowait([b"%d" % i])
        assert await pull.bind(ep) == ep
        for i in range(5):
            assert await pull.recv_multipart() == [b"%d" % i]


async def test_send_with_no_peer_would_block() -> None:
    async with context() as ctx:
        push = ctx.socket(zmtp.PUSH)
        await push.bind("tcp://127.0.0.1:0")
        with pytest.raises(trio.WouldBlock):
            push.send_multipart_nowait([b"x"])
        with trio.move_on_after(QUIET) as scope:
            await push.send_multipart([b"x"])
        assert scope.cancelled_caught


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_immediate_queues_only_to_live_connections(transport: str) -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind(bind_address(transport))
        push = ctx.socket(zmtp.PUSH, immediate=True)
        if transport != "inproc":
            # A dead endpoint: with immediate, it gets no queue and no messages.
            await push.connect(fresh_ipc())
        await push.connect(ep)
        await push.wait_for_peers(1)
        for i in range(10):
            await push.send_multipart([b"%d" % i])
        for i in range(10):
            assert await pull.recv_multipart() == [b"%d" % i]


# ----------------------------------------------------------------------- frame API


async def test_send_more_and_recv_rcvmore() -> None:
    async with context() as ctx:
        pull, push, _ = await connected(ctx, zmtp.PULL, zmtp.PUSH, "tcp")
        await push.send(b"a", more=True)
        await push.send(bytearray(b"b"), more=True)
        await push.send(b"c")
        await push.send(b"single")
        assert await pull.recv() == b"a"
        assert pull.rcvmore
        assert await pull.recv() == b"b"
        assert pull.rcvmore
        assert await pull.recv() == b"c"
        assert not pull.rcvmore
        assert await pull.recv() == b"single"
        assert not pull.rcvmore


async def test_cancelled_frame_send_holds_nothing_and_loses_nothing() -> None:
    async with context() as ctx:
        pull, push, _ = await connected(
            ctx,
            zmtp.PULL,
            zmtp.PUSH,
            "inproc",
            bind_opts={"rcvhwm": 1},
            connect_opts={"sndhwm": 1},
        )
        # A cancelled send(more=True) holds nothing back.
        with trio.CancelScope() as cs:
            cs.cancel()
            await push.send(b"cancelled", more=True)
        # A final frame that blocks and is cancelled sends nothing, and keeps the held
        # frames for the retry: the cancelled call had no effect.  (Saturate first: any
        # send after send(more=True) continues the held message, as in pyzmq.)
        sent = await saturate(push, lambda n: [b"%d" % n])
        await push.send(b"a", more=True)
        with trio.move_on_after(QUIET) as scope:
            await push.send(b"b")
        assert scope.cancelled_caught
        for i in range(sent):
            assert await pull.recv_multipart() == [b"%d" % i]
        await push.send(b"b")
        assert await pull.recv_multipart() == [b"a", b"b"]


async def test_recv_multipart_after_recv_returns_the_rest() -> None:
    async with context() as ctx:
        pull, push, _ = await connected(ctx, zmtp.PULL, zmtp.PUSH, "inproc")
        await push.send_multipart([b"1", b"2", b"3"])
        await push.send_multipart([b"next"])
        assert await pull.recv() == b"1"
        assert await pull.recv_multipart() == [b"2", b"3"]
        assert await pull.recv_multipart() == [b"next"]


async def test_frame_type_errors() -> None:
    async with context() as ctx:
        _pull, push, _ = await connected(ctx, zmtp.PULL, zmtp.PUSH, "inproc")
        with pytest.raises(TypeError):
            await push.send_multipart(b"not a list")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await push.send_multipart(["text"])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            await push.send_multipart([42])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            await push.send("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await push.send_multipart([])
        with pytest.raises(TypeError):
            push.send_multipart_nowait(["text"])  # type: ignore[list-item]


# ----------------------------------------------------------------------- non-blocking, batches


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_nowait_variants(transport: str) -> None:
    async with context() as ctx:
        pull, push, _ = await connected(ctx, zmtp.PULL, zmtp.PUSH, transport)
        with pytest.raises(trio.WouldBlock):
            pull.recv_multipart_nowait()
        push.send_multipart_nowait([b"a", b"b"])
        while True:
            try:
                msg = pull.recv_multipart_nowait()
                break
            except trio.WouldBlock:
                await trio.sleep(0.001)  # polling is what nowait is for
        assert msg == [b"a", b"b"]
        with pytest.raises(trio.WouldBlock):
            pull.recv_multipart_nowait()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_send_many_recv_many(transport: str) -> None:
    async with context() as ctx:
        pull, push, _ = await connected(
            ctx,
            zmtp.PULL,
            zmtp.PUSH,
            transport,
            bind_opts={"rcvhwm": 50},
            connect_opts={"sndhwm": 50},
        )
        total = 2000
        batch = [[b"%d" % i, b"x" * (i % 7)] for i in range(total)]
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:
            sent: list[int] = []

            async def sender() -> None:
                sent.append(await push.send_many(iter(batch)))

            nursery.start_soon(sender)
            while len(got) < total:
                chunk = await pull.recv_many(300)
                assert 1 <= len(chunk) <= 300
                got.extend(chunk)
        assert sent == [total]
        assert got == batch
        with pytest.raises(ValueError):
            await pull.recv_many(0)


# ----------------------------------------------------------------------- cancellation


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancelled_recv_loses_nothing(transport: str) -> None:
    async with context() as ctx:
        pull, push, _ = await connected(ctx, zmtp.PULL, zmtp.PUSH, transport)
        # A parked receive, cancelled, then a message: the next receive gets it.
        with trio.move_on_after(QUIET) as scope:
            await pull.recv_multipart()
        assert scope.cancelled_caught
        await push.send_multipart([b"first"])
        assert await pull.recv_multipart() == [b"first"]

        # Receives cancelled at many different points while messages stream in.
        total = 500
        got: list[list[bytes]] = []
        async with trio.open_nursery() as nursery:

            async def sender() -> None:
                for i in range(total):
                    await push.send_multipart([b"%d" % i, b"x"])
                    if i % 3 == 0:
                        await trio.sleep(0)

            nursery.start_soon(sender)
            n = 0
            while len(got) < total:
                n += 1
                with trio.CancelScope() as cs:
                    if n % 2:
                        cs.cancel()  # cancelled before it starts: takes nothing
                    else:
                        cs.deadline = trio.current_time() + 0.0002 * (n % 5)
                    got.append(await pull.recv_multipart())
        assert got == [[b"%d" % i, b"x"] for i in range(total)]


async def test_cancelled_frame_recv_loses_nothing() -> None:
    async with context() as ctx:
        pull, push, _ = await connected(ctx, zmtp.PULL, zmtp.PUSH, "inproc")
        with trio.move_on_after(QUIET):
            await pull.recv()
        await push.send_multipart([b"a", b"b"])
        assert await pull.recv() == b"a"
        with trio.CancelScope() as cs:
            cs.cancel()
            await pull.recv()
        assert await pull.recv() == b"b"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancelled_blocked_send_sends_nothing(transport: str) -> None:
    async with context() as ctx:
        pull, push, _ = await connected(
            ctx,
            zmtp.PULL,
            zmtp.PUSH,
            transport,
            bind_opts={"rcvhwm": 1},
            connect_opts={"sndhwm": 1},
        )

        def make(n: int) -> list[bytes]:
            return [b"%d" % n, b"y" * 10000]

        sent = await saturate(push, make)
        with trio.move_on_after(QUIET) as scope:
            await push.send_multipart([b"cancelled", b"!"])
        assert scope.cancelled_caught
        with trio.CancelScope() as cs:
            cs.cancel()
            await push.send_multipart([b"cancelled-early"])
        for i in range(sent):
            assert await pull.recv_multipart() == make(i)
        await push.send_multipart([b"after"])
        assert await pull.recv_multipart() == [b"after"]


async def test_cancelled_send_many_sends_whole_messages() -> None:
    async with context() as ctx:
        pull, push, _ = await connected(
            ctx, zmtp.PULL, zmtp.PUSH, "inproc", bind_opts={"rcvhwm": 2}, connect_opts={"sndhwm": 2}
        )
        with trio.move_on_after(QUIET) as scope:
            await push.send_many([[b"%d" % i] for i in range(10)])
        assert scope.cancelled_caught
        # Exactly the messages that fitted went out, whole and in order.
        got = []
        while True:
            try:
                got.append(pull.recv_multipart_nowait())
            except trio.WouldBlock:
                break
        assert got == [[b"%d" % i] for i in range(4)]


# ----------------------------------------------------------------------- DEALER / ROUTER


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_router_routing_ids(transport: str) -> None:
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        ep = await router.bind(bind_address(transport))
        named = ctx.socket(zmtp.DEALER, routing_id=b"alice")
        anon = ctx.socket(zmtp.DEALER)
        await named.connect(ep)
        await anon.connect(ep)
        await router.wait_for_peers(2)
        await named.send_multipart([b"from", b"alice"])
        await anon.send_multipart([b"from", b"anon"])
        ids = {}
        for _ in range(2):
            rid, *body = await router.recv_multipart()
            ids[body[1]] = rid
        assert ids[b"alice"] == b"alice"
        generated = ids[b"anon"]
        assert len(generated) == 5
        assert generated[0] == 0
        # Replies are routed by the first frame, which is stripped.
        await router.send_multipart([generated, b"to", b"anon"])
        await router.send_multipart([b"alice", b"to", b"alice"])
        assert await anon.recv_multipart() == [b"to", b"anon"]
        assert await named.recv_multipart() == [b"to", b"alice"]


async def test_router_generated_ids_are_distinct() -> None:
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        ep = await router.bind("tcp://127.0.0.1:0")
        dealers = [ctx.socket(zmtp.DEALER) for _ in range(5)]
        for d in dealers:
            await d.connect(ep)
        await router.wait_for_peers(5)
        for d in dealers:
            await d.send_multipart([b"hi"])
        ids = {(await router.recv_multipart())[0] for _ in dealers}
        assert len(ids) == 5


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_router_drops_unroutable_silently(transport: str) -> None:
    async with context() as ctx:
        router, dealer, _ = await connected(
            ctx, zmtp.ROUTER, zmtp.DEALER, transport, connect_opts={"routing_id": b"d"}
        )
        await router.send_multipart([b"nobody", b"lost"])
        router.send_multipart_nowait([b"nobody", b"lost"])
        await router.send_multipart([b"d", b"kept"])
        assert await dealer.recv_multipart() == [b"kept"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_router_mandatory(transport: str) -> None:
    async with context() as ctx:
        router, dealer, _ = await connected(
            ctx,
            zmtp.ROUTER,
            zmtp.DEALER,
            transport,
            bind_opts={"router_mandatory": True, "sndhwm": 1},
            connect_opts={"routing_id": b"d", "rcvhwm": 1},
        )
        with pytest.raises(zmtp.UnroutableError):
            await router.send_multipart([b"nobody", b"x"])
        with pytest.raises(zmtp.UnroutableError):
            router.send_multipart_nowait([b"nobody", b"x"])
        # A full peer: EAGAIN in libzmq, here WouldBlock / a waiting send.
        sent = await saturate(router, lambda n: [b"d", b"%d" % n, b"z" * 10000])
        with trio.move_on_after(QUIET) as scope:
            await router.send_multipart([b"d", b"blocked"])
        assert scope.cancelled_caught
        for i in range(sent):
            assert await dealer.recv_multipart() == [b"%d" % i, b"z" * 10000]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_router_without_mandatory_drops_when_full(transport: str) -> None:
    async with context() as ctx:
        router, dealer, _ = await connected(
            ctx,
            zmtp.ROUTER,
            zmtp.DEALER,
            transport,
            bind_opts={"sndhwm": 1},
            connect_opts={"routing_id": b"d", "rcvhwm": 1},
        )
        # Never blocks: what does not fit is dropped, whole messages only.
        for i in range(2000):
            await router.send_multipart([b"d", b"%d" % i, b"z" * 1000])
        got = []
        with trio.move_on_after(QUIET):
            while True:
                got.append(await dealer.recv_multipart())
        assert 1 <= len(got) < 2000
        seqs = [int(m[0]) for m in got]
        assert seqs == sorted(seqs)
        assert all(m[1:] == [b"z" * 1000] for m in got)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_dealer_load_balances_and_fair_queues(transport: str) -> None:
    async with context() as ctx:
        dealer = ctx.socket(zmtp.DEALER)
        reps = []
        for _ in range(3):
            rep = ctx.socket(zmtp.REP)
            await dealer.connect(await rep.bind(bind_address(transport)))
            reps.append(rep)
        await dealer.wait_for_peers(3)
        for i in range(6):
            await dealer.send_multipart([b"", b"%d" % i])
        served: Counter[int] = Counter()
        for k, rep in enumerate(reps):
            for _ in range(2):
                [req] = await rep.recv_multipart()
                await rep.send_multipart([b"%d" % k, req])
                served[k] += 1
        replies = [await dealer.recv_multipart() for _ in range(6)]
        assert all(r[0] == b"" for r in replies)
        assert sorted(int(r[2]) for r in replies) == list(range(6))
        assert served == {0: 2, 1: 2, 2: 2}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_dealer_to_dealer(transport: str) -> None:
    async with context() as ctx:
        a, b, _ = await connected(ctx, zmtp.DEALER, zmtp.DEALER, transport)
        await b.send_multipart([b"", b"x", b""])
        assert await a.recv_multipart() == [b"", b"x", b""]
        await a.send_multipart([b"back"])
        assert await b.recv_multipart() == [b"back"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_router_to_router(transport: str) -> None:
    async with context() as ctx:
        server, client, _ = await connected(
            ctx,
            zmtp.ROUTER,
            zmtp.ROUTER,
            transport,
            bind_opts={"routing_id": b"server", "router_mandatory": True},
            connect_opts={"routing_id": b"client", "router_mandatory": True},
        )
        await client.send_multipart([b"server", b"hello"])
        assert await server.recv_multipart() == [b"client", b"hello"]
        await server.send_multipart([b"client", b"world"])
        assert await client.recv_multipart() == [b"server", b"world"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_router_handover(transport: str) -> None:
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER, router_handover=True)
        ep = await router.bind(bind_address(transport))
        # reconnect_ivl=-1: once taken over, the old peer must not come back and take
        # the id over again (as it would, with libzmq too).
        old = ctx.socket(zmtp.DEALER, routing_id=b"same", reconnect_ivl=-1)
        await old.connect(ep)
        await router.wait_for_peers(1)
        await old.send_multipart([b"old"])
        assert await router.recv_multipart() == [b"same", b"old"]
        new = ctx.socket(zmtp.DEALER, routing_id=b"same")
        await new.connect(ep)
        await new.send_multipart([b"new"])
        assert await router.recv_multipart() == [b"same", b"new"]
        await router.send_multipart([b"same", b"to-new"])
        assert await new.recv_multipart() == [b"to-new"]
        await nothing_arrives(old)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_router_duplicate_id_without_handover(transport: str) -> None:
    # libzmq 4.3.5 keeps the first peer and never delivers the newcomer's messages.
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        ep = await router.bind(bind_address(transport))
        first = ctx.socket(zmtp.DEALER, routing_id=b"same")
        await first.connect(ep)
        await router.wait_for_peers(1)
        second = ctx.socket(zmtp.DEALER, routing_id=b"same")
        await second.connect(ep)
        await second.send_multipart([b"from-second"])
        if transport != "inproc":
            await second.wait_for_peers(1)
        await first.send_multipart([b"from-first"])
        assert await router.recv_multipart() == [b"same", b"from-first"]
        await router.send_multipart([b"same", b"reply"])
        assert await first.recv_multipart() == [b"reply"]
        await nothing_arrives(router)
        await nothing_arrives(second)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_probe_router(transport: str) -> None:
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        ep = await router.bind(bind_address(transport))
        dealer = ctx.socket(zmtp.DEALER, routing_id=b"probe", probe_router=True)
        await dealer.connect(ep)
        assert await router.recv_multipart() == [b"probe", b""]
        # A connecting ROUTER probes too, so the bound ROUTER learns its id first.
        crouter = ctx.socket(zmtp.ROUTER, routing_id=b"crouter", probe_router=True)
        await crouter.connect(ep)
        assert await router.recv_multipart() == [b"crouter", b""]


# ----------------------------------------------------------------------- REQ / REP


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_req_rep(transport: str) -> None:
    async with context() as ctx:
        rep, req, _ = await connected(ctx, zmtp.REP, zmtp.REQ, transport)
        for i in range(3):
            await req.send_multipart([b"q%d" % i, b""])
            assert await rep.recv_multipart() == [b"q%d" % i, b""]
            await rep.send_multipart([b"a%d" % i])
            assert await req.recv_multipart() == [b"a%d" % i]


async def test_req_rep_state_errors() -> None:
    async with context() as ctx:
        rep, req, _ = await connected(ctx, zmtp.REP, zmtp.REQ, "inproc")
        with pytest.raises(zmtp.InvalidStateError):
            await req.recv_multipart()
        with pytest.raises(zmtp.InvalidStateError):
            await rep.send_multipart([b"reply before request"])
        await req.send_multipart([b"q"])
        with pytest.raises(zmtp.InvalidStateError):
            await req.send_multipart([b"again"])
        with pytest.raises(zmtp.InvalidStateError):
            req.send_multipart_nowait([b"again"])
        assert await rep.recv_multipart() == [b"q"]
        with pytest.raises(zmtp.InvalidStateError):
            await rep.recv_multipart()
        with pytest.raises(zmtp.InvalidStateError):
            rep.recv_multipart_nowait()
        await rep.send_multipart([b"a"])
        with pytest.raises(zmtp.InvalidStateError):
            await rep.send_multipart([b"a"])
        assert await req.recv_multipart() == [b"a"]
        # The failed calls changed nothing: the cycle goes on.
        await req.send_multipart([b"q2"])
        assert await rep.recv_multipart() == [b"q2"]
        await rep.send_multipart([b"a2"])
        assert await req.recv_multipart() == [b"a2"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_req_with_router(transport: str) -> None:
    async with context() as ctx:
        router, req, _ = await connected(
            ctx, zmtp.ROUTER, zmtp.REQ, transport, connect_opts={"routing_id": b"req"}
        )
        await req.send_multipart([b"question"])
        assert await router.recv_multipart() == [b"req", b"", b"question"]
        await router.send_multipart([b"req", b"", b"answer", b"2"])
        assert await req.recv_multipart() == [b"answer", b"2"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_dealer_with_rep(transport: str) -> None:
    async with context() as ctx:
        rep, dealer, _ = await connected(ctx, zmtp.REP, zmtp.DEALER, transport)
        # Whatever precedes the delimiter is the envelope, returned with the reply.
        await dealer.send_multipart([b"hop1", b"hop2", b"", b"body"])
        assert await rep.recv_multipart() == [b"body"]
        await rep.send_multipart([b"reply"])
        assert await dealer.recv_multipart() == [b"hop1", b"hop2", b"", b"reply"]
        # A message without a delimiter is not a request: REP discards it.
        await dealer.send_multipart([b"no delimiter"])
        await dealer.send_multipart([b"", b"ok"])
        assert await rep.recv_multipart() == [b"ok"]


async def test_req_ignores_replies_without_delimiter() -> None:
    async with context() as ctx:
        router, req, _ = await connected(
            ctx, zmtp.ROUTER, zmtp.REQ, "inproc", connect_opts={"routing_id": b"r"}
        )
        await req.send_multipart([b"q"])
        assert await router.recv_multipart() == [b"r", b"", b"q"]
        await router.send_multipart([b"r", b"bogus"])
        await router.send_multipart([b"r", b"", b"good"])
        assert await req.recv_multipart() == [b"good"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_req_rep_through_a_broker(transport: str) -> None:
    """REQ -> ROUTER | DEALER -> REP: two clients, two workers, envelopes preserved."""
    async with context() as ctx:
        frontend = ctx.socket(zmtp.ROUTER)
        backend = ctx.socket(zmtp.DEALER)
        fep = await frontend.bind(bind_address(transport))
        bep = await backend.bind(bind_address(transport))
        clients = [ctx.socket(zmtp.REQ) for _ in range(2)]
        workers = [ctx.socket(zmtp.REP) for _ in range(2)]
        for c in clients:
            await c.connect(fep)
        for w in workers:
            await w.connect(bep)
        await backend.wait_for_peers(2)
        await frontend.wait_for_peers(2)

        async def forward(src: Socket, dst: Socket) -> None:
            while True:
                await dst.send_multipart(await src.recv_multipart())

        async def work(k: int) -> None:
            while True:
                [body] = await workers[k].recv_multipart()
                await workers[k].send_multipart([body + b" by %d" % k])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward, frontend, backend)
            nursery.start_soon(forward, backend, frontend)
            for k in range(2):
                nursery.start_soon(work, k)
            workers_seen = set()
            for c, client in enumerate(clients):
                for i in range(4):
                    await client.send_multipart([b"c%d-%d" % (c, i)])
                    [reply] = await client.recv_multipart()
                    body, _, worker = reply.partition(b" by ")
                    assert body == b"c%d-%d" % (c, i)
                    workers_seen.add(worker)
            assert workers_seen == {b"0", b"1"}
            nursery.cancel_scope.cancel()


# ----------------------------------------------------------------------- PAIR


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pair(transport: str) -> None:
    async with context() as ctx:
        a, b, _ = await connected(ctx, zmtp.PAIR, zmtp.PAIR, transport)
        await a.send_multipart([b"to", b"b"])
        assert await b.recv_multipart() == [b"to", b"b"]
        await b.send_multipart([b"to", b"a"])
        assert await a.recv_multipart() == [b"to", b"a"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pair_is_exclusive(transport: str) -> None:
    async with context() as ctx:
        bound, first, ep = await connected(ctx, zmtp.PAIR, zmtp.PAIR, transport)
        intruder = ctx.socket(zmtp.PAIR)
        await intruder.connect(ep)
        await intruder.send_multipart([b"from intruder"])
        if transport != "inproc":
            await intruder.wait_for_peers(1)  # it completes the handshake, as with libzmq
        await first.send_multipart([b"from first"])
        assert await bound.recv_multipart() == [b"from first"]
        await bound.send_multipart([b"to first"])
        assert await first.recv_multipart() == [b"to first"]
        await nothing_arrives(bound)
        await nothing_arrives(intruder)
        assert len([p for p in bound.peers if p.connected]) == 1


async def test_pair_accepts_a_new_peer_after_the_first_leaves() -> None:
    async with context() as ctx:
        bound, first, ep = await connected(ctx, zmtp.PAIR, zmtp.PAIR, "tcp")
        await first.aclose()
        while bound.peers:
            await trio.sleep(0.005)
        second = ctx.socket(zmtp.PAIR)
        await second.connect(ep)
        await second.send_multipart([b"second"])
        assert await bound.recv_multipart() == [b"second"]


# ----------------------------------------------------------------------- unsupported


async def test_unsupported_directions() -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        push = ctx.socket(zmtp.PUSH)
        with pytest.raises(zmtp.NotSupportedError):
            await pull.send_multipart([b"x"])
        with pytest.raises(zmtp.NotSupportedError):
            pull.send_multipart_nowait([b"x"])
        with pytest.raises(zmtp.NotSupportedError):
            await pull.send(b"x")
        with pytest.raises(zmtp.NotSupportedError):
            await pull.send(b"x", more=True)  # at once, as libzmq does
        with pytest.raises(zmtp.NotSupportedError):
            await push.recv_multipart()
        with pytest.raises(zmtp.NotSupportedError):
            push.recv_multipart_nowait()
        with pytest.raises(zmtp.NotSupportedError):
            await push.recv()


async def test_unknown_socket_type() -> None:
    async with context() as ctx:
        with pytest.raises(ValueError):
            ctx.socket(99)  # type: ignore[arg-type]
        assert ctx.socket(8).socket_type is zmtp.PUSH  # libzmq's numbers work


async def test_context_must_be_entered() -> None:
    with pytest.raises(RuntimeError):
        zmtp.Context().socket(zmtp.PUSH)


# ----------------------------------------------------------------------- endpoints, reconnect


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_disconnect_stops_sending_there(transport: str) -> None:
    async with context() as ctx:
        push = ctx.socket(zmtp.PUSH)
        p1, p2 = ctx.socket(zmtp.PULL), ctx.socket(zmtp.PULL)
        ep1 = await p1.bind(bind_address(transport))
        ep2 = await p2.bind(bind_address(transport))
        await push.connect(ep1)
        await push.connect(ep2)
        await push.wait_for_peers(2)
        await push.disconnect(ep1)
        for i in range(6):
            await push.send_multipart([b"%d" % i])
        for i in range(6):
            assert await p2.recv_multipart() == [b"%d" % i]
        await nothing_arrives(p1)
        with pytest.raises(ValueError):
            await push.disconnect(ep1)


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_unbind_drops_accepted_connections(transport: str) -> None:
    async with context() as ctx:
        pull, push, ep = await connected(ctx, zmtp.PULL, zmtp.PUSH, transport)
        mon = push.monitor()
        await pull.unbind(ep)
        async for event in mon:
            if event.type is zmtp.EventType.DISCONNECTED:
                break
        assert not pull.peers
        with pytest.raises(ValueError):
            await pull.unbind(ep)


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_reconnect_after_peer_restart(transport: str) -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        # ipc://* would not do: its private directory goes when the socket closes.
        address = bind_address("tcp") if transport == "tcp" else fresh_ipc()
        ep = await pull.bind(address)
        push = ctx.socket(zmtp.PUSH, reconnect_ivl=10, reconnect_ivl_max=50)
        mon = push.monitor()
        await push.connect(ep)
        await push.send_multipart([b"before"])
        assert await pull.recv_multipart() == [b"before"]
        await pull.aclose()
        async for event in mon:
            if event.type is zmtp.EventType.DISCONNECTED:
                break
        # While the peer is away, messages queue for it.
        for i in range(3):
            await push.send_multipart([b"queued-%d" % i])
        pull = ctx.socket(zmtp.PULL)
        assert await pull.bind(ep) == ep
        for i in range(3):
            assert await pull.recv_multipart() == [b"queued-%d" % i]
        await push.send_multipart([b"after"])
        assert await pull.recv_multipart() == [b"after"]


async def test_monitor_reports_the_connection_life_cycle() -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        bmon = pull.monitor()
        ep = await pull.bind("tcp://127.0.0.1:0")
        push = ctx.socket(zmtp.PUSH)
        cmon = push.monitor()
        await push.connect(ep)
        seen = []
        async for event in cmon:
            seen.append(event.type)
            if event.type is zmtp.EventType.HANDSHAKE_SUCCEEDED:
                assert event.endpoint == ep
                assert event.detail["socket_type"] == "PULL"
                break
        assert zmtp.EventType.CONNECTED in seen
        bseen = []
        async for event in bmon:
            bseen.append(event.type)
            if event.type is zmtp.EventType.HANDSHAKE_SUCCEEDED:
                break
        assert bseen[:2] == [zmtp.EventType.LISTENING, zmtp.EventType.ACCEPTED]
        await push.aclose()
        async for event in bmon:
            if event.type is zmtp.EventType.DISCONNECTED:
                break
        types = [e.type async for e in cmon]  # the monitor ends when its socket closes
        assert types[-1] is zmtp.EventType.CLOSED


# ----------------------------------------------------------------------- close, linger, tasks


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_linger_flushes_queued_messages_on_close(transport: str) -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL, rcvhwm=2)
        ep = await pull.bind(bind_address(transport))
        push = ctx.socket(zmtp.PUSH, sndhwm=0, linger=-1)
        await push.connect(ep)
        await push.wait_for_peers(1)
        total = 200
        for i in range(total):
            await push.send_multipart([b"%d" % i, b"p" * 20000])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push.aclose)
            await trio.testing.wait_all_tasks_blocked()
            assert push.closed
            with pytest.raises(trio.ClosedResourceError):
                await push.send_multipart([b"late"])
            for i in range(total):
                assert await pull.recv_multipart() == [b"%d" % i, b"p" * 20000]


async def test_linger_delivers_to_a_peer_that_comes_up_while_closing() -> None:
    async with context() as ctx:
        ep = fresh_ipc()
        push = ctx.socket(zmtp.PUSH, reconnect_ivl=10)
        await push.connect(ep)
        for i in range(5):
            await push.send_multipart([b"%d" % i])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push.aclose, 10_000)
            await trio.testing.wait_all_tasks_blocked()
            pull = ctx.socket(zmtp.PULL)
            await pull.bind(ep)
            for i in range(5):
                assert await pull.recv_multipart() == [b"%d" % i]


async def test_linger_zero_and_finite_do_not_wait_forever() -> None:
    async with context() as ctx:
        dead = fresh_ipc()
        a = ctx.socket(zmtp.PUSH)  # default linger -1 would wait forever
        await a.connect(dead)
        await a.send_multipart([b"stuck"])
        await a.aclose(linger=0)
        b = ctx.socket(zmtp.PUSH, linger=50)
        await b.connect(dead)
        await b.send_multipart([b"stuck"])
        await b.aclose()
        assert a.closed and b.closed


async def test_closed_socket_raises_and_wakes_waiters() -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        await pull.bind("tcp://127.0.0.1:0")
        push = ctx.socket(zmtp.PUSH)
        await push.bind("tcp://127.0.0.1:0")

        async def waits_recv() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await pull.recv_multipart()

        async def waits_send() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await push.send_multipart([b"x"])  # no peer: blocks

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waits_recv)
            nursery.start_soon(waits_send)
            await trio.testing.wait_all_tasks_blocked()
            await pull.aclose()
            await push.aclose(linger=0)
        for call in (
            pull.recv_multipart(),
            pull.bind("tcp://127.0.0.1:0"),
            push.connect("tcp://127.0.0.1:1"),
        ):
            with pytest.raises(trio.ClosedResourceError):
                await call
        with pytest.raises(trio.ClosedResourceError):
            push.send_multipart_nowait([b"x"])
        await pull.aclose()  # closing twice is harmless


async def test_async_with_socket_closes_it() -> None:
    async with context() as ctx:
        async with ctx.socket(zmtp.PULL) as pull:
            await pull.bind("ipc://*")
        assert pull.closed


async def test_no_task_outlives_its_socket_or_context() -> None:
    with trio.fail_after(TIMEOUT):
        before = all_tasks()
        async with zmtp.Context() as ctx:
            inside = all_tasks()
            socks = []
            for transport in TRANSPORTS:
                pull, push, _ = await connected(ctx, zmtp.PULL, zmtp.PUSH, transport)
                await push.send_multipart([b"x"])
                assert await pull.recv_multipart() == [b"x"]
                socks += [pull, push]
            # A socket that keeps trying to reconnect, and one with heartbeats.
            retry = ctx.socket(zmtp.PUSH, reconnect_ivl=5)
            await retry.connect(fresh_ipc())
            hb_r, hb_d, _ = await connected(
                ctx,
                zmtp.ROUTER,
                zmtp.DEALER,
                "tcp",
                bind_opts={"heartbeat_ivl": 50},
                connect_opts={"heartbeat_ivl": 50},
            )
            retry.monitor()
            assert len(all_tasks()) > len(inside)
            for sock in [*socks, retry]:
                await sock.aclose(linger=0)
            # hb_r and hb_d are still open: their tasks remain; the others' are gone.
            await hb_r.aclose()
            await hb_d.aclose()
            assert all_tasks() == inside
            # And the context closes whatever is left when the block ends.
            left = ctx.socket(zmtp.PULL)
            await left.bind("tcp://127.0.0.1:0")
            other = ctx.socket(zmtp.PUSH)
            await other.connect(left.last_endpoint)
            await other.wait_for_peers(1)
        assert all_tasks() == before
        assert left.closed and other.closed


async def test_context_exit_on_error_does_not_linger() -> None:
    class Boom(Exception):
        pass

    raised = False
    with trio.fail_after(TIMEOUT):
        try:
            async with zmtp.Context() as ctx:
                push = ctx.socket(zmtp.PUSH)  # linger -1, and a message it can never send
                await push.connect(fresh_ipc())
                await push.send_multipart([b"x"])
                raise Boom
        except Boom:  # the body's own exception, not wrapped in an ExceptionGroup
            raised = True
    assert raised


async def test_context_background_failure_is_not_unwrapped() -> None:
    # Only a lone exception from the body is unwrapped; a group that also holds a
    # failure of the Context's own tasks stays a group, so nothing is hidden.
    async def crash() -> None:
        raise KeyError("background")

    with trio.fail_after(TIMEOUT), pytest.raises(BaseExceptionGroup) as info:
        async with zmtp.Context() as ctx:
            ctx.nursery.start_soon(crash)
            await trio.sleep_forever()
    assert info.group_contains(KeyError)
