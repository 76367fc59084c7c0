"""ROUTER's bulk send (``Router._try_send_many``, behind ``send_many`` and
``send_batch_nowait``) against its one-message-at-a-time send.

The bulk send inlines ``Router._try_send`` for speed (a proxy routes every reply
through it); whatever a batch holds (unknown routing ids, bare routing ids, ids that
are not ``bytes``, full pipes, inproc pipes, ``router_mandatory`` on or off), it must
return, raise, queue, count and wake exactly what the base class's loop over
``_try_send`` does.  Real :class:`Pipe` and :class:`Peer` objects are put straight into
two fresh ROUTERs' routing tables, one driven each way.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import zmtp
from zmtp.sockets._inproc import InprocPipe
from zmtp.sockets._peer import Peer
from zmtp.sockets._pipe import Message, Pipe
from zmtp.sockets._reqrep import Router
from zmtp.sockets._socket import Socket

from ._helpers import context


class _Owner:
    """The socket a Peer belongs to; sending never calls it."""

    def on_subscribe(self, peer: Any, topic: bytes) -> None:
        raise AssertionError("unexpected on_subscribe")

    def on_cancel(self, peer: Any, topic: bytes) -> None:
        raise AssertionError("unexpected on_cancel")

    def on_peer_gone(self, peer: Any) -> None:
        raise AssertionError("unexpected on_peer_gone")


class _Reader:
    """An outbound pipe's reader (an engine, or the other inproc socket): counts wakes."""

    def __init__(self) -> None:
        self.readable: Counter[bytes] = Counter()

    def pipe_readable(self, pipe: Pipe) -> None:
        peer = pipe.peer
        assert isinstance(peer, Peer)
        self.readable[peer.routing_id] += 1


RIDS = (b"a", b"b", b"c")

# A routing id: one of the peers' (c is inproc), an unknown one, or a peer's id in
# another bytes-like type (routed by its bytes).
rids = st.sampled_from([b"a", b"b", b"c", b"nobody", b"", bytearray(b"a"), memoryview(b"b")])
bodies = st.lists(st.sampled_from([b"", b"x", b"yz", bytearray(b"m")]), max_size=2)
messages = st.builds(lambda rid, rest: [rid, *rest], rids, bodies)
setups = st.fixed_dictionaries(
    {
        "hwms": st.tuples(*(st.integers(0, 3) for _ in RIDS)),
        "queued": st.tuples(*(st.integers(0, 3) for _ in RIDS)),
        "mandatory": st.booleans(),
        "batch": st.lists(messages, max_size=12),
        "start": st.integers(0, 3),
    }
)


def _router(ctx: zmtp.Context, setup: dict[str, Any]) -> tuple[Router, dict[bytes, Peer], _Reader]:
    router = ctx.socket(zmtp.ROUTER, router_mandatory=setup["mandatory"])
    assert isinstance(router, Router)
    reader = _Reader()
    peers: dict[bytes, Peer] = {}
    for rid, hwm, queued in zip(RIDS, setup["hwms"], setup["queued"], strict=True):
        pipe_type = InprocPipe if rid == b"c" else Pipe
        peer = Peer(_Owner(), pipe_type(hwm, reader, None), pipe_type(0), f"test://{rid!r}")
        peer.out.peer = peer
        peer.routing_id = rid
        for i in range(queued):
            peer.out.queue.append([b"old%d" % i])
        router._table.add(peer)
        peers[rid] = peer
    return router, peers, reader


def _send(router: Router, send_many: Any, batch: list[Message], start: int) -> object:
    try:
        return send_many(router, batch, start)
    except zmtp.UnroutableError:
        return "UnroutableError"


def _state(router: Router, peers: dict[bytes, Peer], reader: _Reader) -> object:
    counters = router._counters
    return (
        {rid: list(peer.out.queue) for rid, peer in peers.items()},
        dict(reader.readable),
        counters.dropped_hwm,
        counters.dropped_unroutable,
    )


@settings(max_examples=300, deadline=None)
@given(setups)
def test_bulk_send_does_what_sending_one_at_a_time_does(setup: dict[str, Any]) -> None:
    batch: list[Message] = setup["batch"]
    start = min(setup["start"], len(batch))

    async def both() -> tuple[object, object]:
        async with context() as ctx:
            results = []
            for send_many in (Router._try_send_many, Socket._try_send_many):
                router, peers, reader = _router(ctx, setup)
                outcome = _send(router, send_many, [list(m) for m in batch], start)
                results.append((outcome, _state(router, peers, reader)))
                await router.aclose(linger=0)
            return results[0], results[1]

    bulk, one_by_one = trio.run(both)
    assert bulk == one_by_one


async def test_bulk_send_routes_a_batch_over_tcp_to_each_peer_in_order() -> None:
    """The same, end to end: replies for two DEALERs interleaved in one batch (as a
    proxy's backend->frontend direction hands them over) each reach their DEALER,
    whole and in order, and unknown ids are dropped and counted."""
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        ep = await router.bind("tcp://127.0.0.1:0")
        dealers = {}
        for rid in (b"a", b"b"):
            dealer = ctx.socket(zmtp.DEALER, routing_id=rid)
            await dealer.connect(ep)
            dealers[rid] = dealer
        await router.wait_for_peers(2)
        batch = [[b"ab"[i % 2 : i % 2 + 1], b"%d" % i, b"more"] for i in range(20)]
        batch.insert(5, [b"nobody", b"lost"])
        batch.insert(9, [b"a"])  # a bare routing id: no message
        assert router.send_batch_nowait(batch) == len(batch)
        for rid, dealer in dealers.items():
            expected = [m[1:] for m in batch if m[0] == rid and len(m) > 1]
            got = [await dealer.recv_multipart() for _ in expected]
            assert got == expected
        assert router.statistics().dropped_unroutable == 1
