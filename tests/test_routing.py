"""The routing strategies (``zmtp.sockets._routing``) and pipe limits, against naive models.

Real :class:`Pipe` and :class:`Peer` objects throughout; the socket's part (being woken
when a pipe becomes readable or writable) is played by small recording stubs.  The
stateful machines drive random sequences of attach/detach/send/drain with random
high-water marks and compare every step with a model that does the obvious thing.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from zmtp.sockets import _routing
from zmtp.sockets._inproc import InprocPipe
from zmtp.sockets._peer import Peer
from zmtp.sockets._pipe import Message, Pipe
from zmtp.sockets._routing import Distributor, FairQueue, LoadBalancer, RoutingTable

# ----------------------------------------------------------------------- stubs


class Owner:
    """The socket a Peer belongs to; the strategies never call it."""

    def on_subscribe(self, peer: Any, topic: bytes) -> None:
        raise AssertionError("unexpected on_subscribe")

    def on_cancel(self, peer: Any, topic: bytes) -> None:
        raise AssertionError("unexpected on_cancel")

    def on_peer_gone(self, peer: Any) -> None:
        raise AssertionError("unexpected on_peer_gone")


class Wakes:
    """A pipe's reader and writer: counts the wake-ups each pipe gives."""

    def __init__(self, fq: FairQueue | None = None) -> None:
        self.readable: Counter[Pipe] = Counter()
        self.writable: Counter[Pipe] = Counter()
        self.fq = fq

    def pipe_readable(self, pipe: Pipe) -> None:
        self.readable[pipe] += 1
        if self.fq is not None:  # as SocketBase.pipe_readable does
            self.fq.activate(pipe.peer)  # type: ignore[arg-type]

    def pipe_writable(self, pipe: Pipe) -> None:
        self.writable[pipe] += 1


_names = itertools.count()


def make_peer(
    hwm: int = 0, *, inproc: bool = False, out_reader: Wakes | None = None, inp: Pipe | None = None
) -> Peer:
    """A peer whose outbound pipe has ``hwm``; ``inproc`` links it to another socket's
    record, as the inproc transport does (its pipes are then InprocPipes)."""
    pipe_type = InprocPipe if inproc else Pipe
    peer = Peer(
        Owner(),
        pipe_type(hwm, out_reader, None),
        inp if inp is not None else pipe_type(0),
        f"test://{next(_names)}",
    )
    if inproc:
        other = Peer(Owner(), peer.inp, peer.out, "test://other")
        peer.link, other.link = other, peer
    return peer


messages = st.lists(st.binary(max_size=3), min_size=1, max_size=3)
hwms = st.integers(0, 4)

# ----------------------------------------------------------------------- Pipe


@given(hwm=st.integers(0, 6), queued=st.integers(0, 10), wanted=st.integers(0, 10))
def test_pipe_room_and_full(hwm: int, queued: int, wanted: int) -> None:
    pipe = Pipe(hwm)
    pipe.queue.extend([[b"x"]] * queued)
    expected = wanted if hwm == 0 else max(0, min(wanted, hwm - queued))
    assert pipe.room(wanted) == expected
    assert pipe.full == (hwm > 0 and queued >= hwm)
    # Taking exactly the room never goes past the mark (nor further past it).
    pipe.put_many([[b"y"]] * pipe.room(wanted))
    assert hwm == 0 or len(pipe) <= max(hwm, queued)


@given(first=st.integers(0, 6), second=st.integers(0, 6), queued=st.integers(0, 8))
def test_pipe_set_hwm_applies_at_once(first: int, second: int, queued: int) -> None:
    pipe = Pipe(first)
    assert (pipe.hwm, pipe.lwm) == (first, (first + 1) // 2)
    pipe.queue.extend([[b"x"]] * queued)
    pipe.set_hwm(second)
    assert (pipe.hwm, pipe.lwm) == (second, (second + 1) // 2)
    assert pipe.full == (second > 0 and queued >= second)
    assert pipe.room(100) == (100 if second == 0 else max(0, second - queued))


@pytest.mark.parametrize(("hwm", "wake_at"), [(1, 0), (2, 1), (4, 2), (5, 3), (7, 4)])
def test_pipe_wakes_its_writer_once_at_the_low_water_mark(hwm: int, wake_at: int) -> None:
    writer = Wakes()
    pipe = Pipe(hwm, None, writer)
    pipe.put_many([[b"%d" % i] for i in range(hwm)])
    assert pipe.full
    pipe.writer_waiting = True
    while pipe.writer_waiting:
        assert writer.writable[pipe] == 0
        pipe.queue.popleft()
        pipe.drained()
    assert len(pipe) == wake_at
    assert writer.writable[pipe] == 1


def test_pipe_set_hwm_moves_the_low_water_mark_for_a_waiting_writer() -> None:
    writer = Wakes()
    pipe = Pipe(8, None, writer)
    pipe.put_many([[b"x"]] * 8)
    pipe.writer_waiting = True
    pipe.set_hwm(2)  # lwm 1: draining to 4 (the old lwm) is not enough now
    for _ in range(4):
        pipe.queue.popleft()
    pipe.drained()
    assert pipe.writer_waiting
    assert writer.writable[pipe] == 0
    for _ in range(3):
        pipe.queue.popleft()
    pipe.drained()
    assert not pipe.writer_waiting
    assert writer.writable[pipe] == 1


# ----------------------------------------------------------------------- LoadBalancer


class LoadBalancerMachine(RuleBasedStateMachine):
    """LoadBalancer against a model: an attach-ordered list and a scan position.

    The model's position is a set of candidates: after ``send_many`` to a lone peer the
    implementation may leave its position before or after that peer (see
    ``test_load_balancer_send_many_to_a_lone_peer_moves_on_like_send``); the next send
    that can tell them apart settles it.  Everything else is exact.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lb = LoadBalancer()
        self.readers = Wakes()
        self.peers: list[Peer] = []
        self.queues: dict[Peer, list[Message]] = {}
        self.wakes: Counter[Pipe] = Counter()
        self.cursors = {0}
        self.serial = itertools.count()

    # -- the model

    def choose(self, cursor: int, lengths: dict[Peer, int] | None = None) -> int | None:
        """Round robin: the first peer with room, scanning from ``cursor`` (with the
        pipes holding ``lengths`` messages, by default what they hold)."""
        n = len(self.peers)
        for k in range(n):
            j = (cursor + k) % n
            out = self.peers[j].out
            queued = len(out) if lengths is None else lengths[self.peers[j]]
            if out.hwm <= 0 or queued < out.hwm:
                return j
        return None

    def model_put(self, peer: Peer, msg: Message) -> None:
        if not self.queues[peer]:
            self.wakes[peer.out] += 1
        self.queues[peer].append(msg)

    def message(self, frames: list[bytes]) -> Message:
        return [b"%d" % next(self.serial), *frames]

    # -- rules

    @rule(hwm=hwms, inproc=st.booleans())
    def attach(self, hwm: int, inproc: bool) -> None:
        peer = make_peer(hwm, inproc=inproc, out_reader=self.readers)
        self.lb.attach(peer)
        self.peers.append(peer)
        self.queues[peer] = []

    @precondition(lambda self: self.peers)
    @rule(data=st.data())
    def detach(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.peers) - 1))
        peer = self.peers.pop(i)
        self.lb.detach(peer)
        del self.queues[peer]
        self.cursors = {c - 1 if c > i else c for c in self.cursors}

    @precondition(lambda self: self.peers)
    @rule(data=st.data(), everything=st.booleans())
    def drain(self, data: st.DataObject, everything: bool) -> None:
        """The peer's engine takes messages from the front of its pipe."""
        peer = data.draw(st.sampled_from(self.peers))
        out = peer.out
        if everything:
            assert list(out.take_all()) == self.queues[peer]
            self.queues[peer] = []
            return
        k = data.draw(st.integers(0, len(out)))
        for _ in range(k):
            assert out.queue.popleft() == self.queues[peer].pop(0)

    @precondition(lambda self: self.peers)
    @rule(data=st.data(), hwm=hwms)
    def set_hwm(self, data: st.DataObject, hwm: int) -> None:
        data.draw(st.sampled_from(self.peers)).out.set_hwm(hwm)

    @rule(frames=messages)
    def send(self, frames: list[bytes]) -> None:
        msg = self.message(frames)
        expected = {c: self.choose(c) for c in self.cursors}
        before = {p: len(p.out) for p in self.peers}
        if not self.lb.send(msg):
            assert set(expected.values()) == {None}
            assert all(len(p.out) == before[p] for p in self.peers)
            return
        chosen = self.lb.last
        assert chosen is not None
        j = self.peers.index(chosen)
        assert j in expected.values()
        self.cursors = {j + 1 for c, e in expected.items() if e == j}
        assert before[chosen] < chosen.out.hwm or chosen.out.hwm == 0  # never past it
        self.model_put(chosen, msg)

    @rule(size=st.integers(0, 10), data=st.data())
    def send_many(self, size: int, data: st.DataObject) -> None:
        batch = [self.message([b"many"]) for _ in range(size)]
        start = data.draw(st.integers(0, size))
        # One at a time, from every candidate position, on copies of the model.
        outcomes = []
        for cursor in self.cursors:
            lengths = {p: len(p.out) for p in self.peers}
            added: dict[Peer, list[Message]] = {p: [] for p in self.peers}
            for msg in batch[start:]:
                j = self.choose(cursor, lengths)
                if j is None:
                    break
                peer = self.peers[j]
                lengths[peer] += 1
                added[peer].append(msg)
                cursor = j + 1  # noqa: PLW2901 (the scan moves on)
            outcomes.append((cursor, added))
        before = {p: len(p.out) for p in self.peers}
        n = self.lb.send_many(batch, start)
        actual = {p: list(p.out.queue)[before[p] :] for p in self.peers}
        matching = [(c, added) for c, added in outcomes if added == actual]
        assert matching, "send_many queued what no sequence of single sends would"
        assert n == sum(len(m) for m in actual.values())
        new_cursors = {c for c, _ in matching}
        if len(self.peers) == 1:
            new_cursors |= self.cursors  # the lone-peer fast path (see the class doc)
        self.cursors = new_cursors
        for peer, msgs in actual.items():
            for msg in msgs:
                self.model_put(peer, msg)
            assert peer.out.hwm == 0 or not msgs or len(peer.out) <= peer.out.hwm

    # -- invariants

    @invariant()
    def lone_is_what_a_send_to_the_only_peer_left(self) -> None:
        # A socket queues on ``lone`` itself, skipping send(): only right after a
        # send() chose the only (tcp/ipc) peer, whose turn and ``last`` it keeps.
        lone = self.lb.lone
        if lone is not None:
            assert len(self.peers) == 1 and lone is self.peers[0].out
            assert not lone.inproc and self.lb.last is self.peers[0]

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert self.lb.peers == self.peers
        for peer in self.peers:
            assert list(peer.out.queue) == self.queues[peer]
            assert self.readers.readable[peer.out] == self.wakes[peer.out]


TestLoadBalancer = LoadBalancerMachine.TestCase
TestLoadBalancer.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_load_balancer_with_no_peer_or_all_full_would_block() -> None:
    lb = LoadBalancer()
    assert not lb.send([b"x"])
    assert lb.send_many([[b"x"]], 0) == 0
    a, b = make_peer(1), make_peer(2)
    lb.attach(a)
    lb.attach(b)
    assert lb.send_many([[b"1"], [b"2"], [b"3"], [b"4"]], 0) == 3
    assert not lb.send([b"5"])
    assert [list(a.out.queue), list(b.out.queue)] == [[[b"1"]], [[b"2"], [b"3"]]]


def test_load_balancer_round_robin_skips_full_peers() -> None:
    lb = LoadBalancer()
    a, b, c = make_peer(0), make_peer(1), make_peer(0)
    for p in (a, b, c):
        lb.attach(p)
    for i in range(7):
        assert lb.send([b"%d" % i])
    assert [len(p.out) for p in (a, b, c)] == [3, 1, 3]
    assert [m[0] for m in a.out.queue] == [b"0", b"3", b"5"]
    assert [m[0] for m in b.out.queue] == [b"1"]
    assert [m[0] for m in c.out.queue] == [b"2", b"4", b"6"]


def test_load_balancer_inproc_pipe_converts_views() -> None:
    """An inproc pipe's put must run (it turns views into bytes for the receiving
    application); a tcp pipe keeps views for the zero-copy encoder."""
    lb = LoadBalancer()
    inproc, tcp = make_peer(0, inproc=True), make_peer(0)
    lb.attach(inproc)
    lb.attach(tcp)
    body = b"payload"
    assert lb.send_many([[memoryview(body)], [memoryview(body)]], 0) == 2
    assert type(inproc.out.queue[0][0]) is bytes
    assert type(tcp.out.queue[0][0]) is memoryview
    lb.detach(tcp)
    assert lb.send_many([[memoryview(body)]], 0) == 1  # the lone-peer path
    assert [type(m[0]) for m in inproc.out.queue] == [bytes, bytes]


def load_balancer_world(
    spec: list[tuple[int, int, bool]], warmup: int
) -> tuple[LoadBalancer, list[Peer], Wakes]:
    """Peers with (hwm, messages already queued, inproc), after ``warmup`` sends."""
    lb = LoadBalancer()
    readers = Wakes()
    peers = []
    for hwm, prefill, inproc in spec:
        peer = make_peer(hwm, inproc=inproc, out_reader=readers)
        peer.out.queue.extend([[b"old"]] * prefill)
        lb.attach(peer)
        peers.append(peer)
    for i in range(warmup):
        lb.send([b"warm%d" % i])
    return lb, peers, readers


@settings(max_examples=300, deadline=None)
@given(
    spec=st.lists(st.tuples(hwms, st.integers(0, 5), st.booleans()), max_size=4),
    warmup=st.integers(0, 6),
    size=st.integers(0, 12),
    data=st.data(),
)
def test_load_balancer_send_many_queues_what_single_sends_would(
    spec: list[tuple[int, int, bool]], warmup: int, size: int, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, size))
    batch = [[b"m%d" % i] for i in range(size)]
    lb_a, peers_a, readers_a = load_balancer_world(spec, warmup)
    lb_b, peers_b, readers_b = load_balancer_world(spec, warmup)
    n = lb_a.send_many(batch, start)
    one_by_one = 0
    for msg in batch[start:]:
        if not lb_b.send(msg):
            break
        one_by_one += 1
    assert n == one_by_one
    for a, b in zip(peers_a, peers_b, strict=True):
        assert list(a.out.queue) == list(b.out.queue)
        # The very message objects of the batch (no copies on tcp pipes).
        pairs = zip(a.out.queue, b.out.queue, strict=True)
        assert all(x is y for x, y in pairs if x[0].startswith(b"m"))
        assert readers_a.readable[a.out] == readers_b.readable[b.out]


def test_load_balancer_send_many_to_a_lone_peer_moves_on_like_send() -> None:
    worlds = []
    for bulk in (True, False):
        lb = LoadBalancer()
        first, second = make_peer(0), make_peer(0)
        lb.attach(first)
        batch = [[b"1"], [b"2"]]
        if bulk:
            assert lb.send_many(batch, 0) == 2
        else:
            assert lb.send(batch[0]) and lb.send(batch[1])
        lb.attach(second)
        assert lb.send([b"3"])
        worlds.append((len(first.out), len(second.out), lb.last is second))
    assert worlds[0] == worlds[1]


def test_load_balancer_names_a_lone_peer_pipe_once_send_chose_it() -> None:
    lb = LoadBalancer()
    a, b = make_peer(0), make_peer(0)
    lb.attach(a)
    assert lb.lone is None  # until a send: the turn is not yet past the peer
    assert lb.send([b"1"])
    assert lb.lone is a.out
    lb.attach(b)
    assert lb.lone is None
    assert lb.send([b"2"]) and lb.last is b  # the turn moved on past a
    lb.detach(b)
    assert lb.lone is None
    link = make_peer(0, inproc=True)
    lb.detach(a)
    lb.attach(link)
    assert lb.send([b"3"]) and lb.lone is None  # inproc: its put must run


# ----------------------------------------------------------------------- FairQueue


class FairQueueMachine(RuleBasedStateMachine):
    """FairQueue against a model: per-peer FIFO queues and a turn order of the peers
    with input.  Each message carries its peer's number and a sequence number."""

    def __init__(self) -> None:
        super().__init__()
        self.fq = FairQueue()
        self.wakes = Wakes(self.fq)
        self.peers: list[Peer] = []
        self.queues: dict[Peer, deque[Message]] = {}
        self.turn: list[Peer] = []
        self.waiting: dict[Peer, bool] = {}
        self.writer_wakes: Counter[Pipe] = Counter()
        self.serial = itertools.count()

    # -- the model

    def available(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def took(self, peer: Peer, msgs: list[Message]) -> None:
        """``msgs`` came from ``peer``: they must be the front of its queue."""
        assert msgs
        q = self.queues[peer]
        for msg in msgs:
            assert q, f"{msg} taken but nothing was queued from that peer"
            assert msg == q.popleft()
        inp = peer.inp
        if self.waiting[peer] and len(q) <= inp.lwm:
            self.waiting[peer] = False
            self.writer_wakes[inp] += 1

    def resync_turn(self) -> None:
        """Adopt the implementation's turn order after a bulk take (it is documented
        state: ``FairQueue.active``); the invariant checks it is well formed."""
        self.turn = [p for p in self.fq.active if self.queues[p]]

    def owner_of(self, msg: Message) -> Peer:
        return self.peers[int(msg[0])]

    # -- rules

    @precondition(lambda self: len(self.peers) < 5)
    @rule(hwm=hwms)
    def add_peer(self, hwm: int) -> None:
        inp = Pipe(hwm, self.wakes, self.wakes)
        peer = make_peer(inp=inp)
        peer.routing_id = b"r%d" % len(self.peers)
        self.peers.append(peer)
        self.queues[peer] = deque()
        self.waiting[peer] = False

    @precondition(lambda self: self.peers)
    @rule(data=st.data(), count=st.integers(1, 6), bulk=st.booleans())
    def arrive(self, data: st.DataObject, count: int, bulk: bool) -> None:
        """Messages arrive from a peer (an engine puts them, singly or in bulk)."""
        i = data.draw(st.integers(0, len(self.peers) - 1))
        peer = self.peers[i]
        msgs = [[b"%d" % i, b"%d" % next(self.serial)] for _ in range(count)]
        if not self.queues[peer]:
            self.turn.append(peer)
        self.queues[peer].extend(msgs)
        if bulk:
            peer.inp.put_many(msgs)
        else:
            for msg in msgs:
                peer.inp.put(msg)

    @precondition(lambda self: any(p.inp.full for p in self.peers))
    @rule(data=st.data())
    def writer_waits(self, data: st.DataObject) -> None:
        """The engine of a peer whose inbound pipe is full stops reading."""
        peer = data.draw(st.sampled_from([p for p in self.peers if p.inp.full]))
        peer.inp.writer_waiting = True
        self.waiting[peer] = True

    @rule()
    def recv(self) -> None:
        msg = self.fq.recv()
        if not self.turn:
            assert msg is None
            return
        peer = self.turn.pop(0)
        assert msg is not None
        assert self.fq.last is peer
        self.took(peer, [msg])
        if self.queues[peer]:
            self.turn.append(peer)

    @rule()
    def recv_routed(self) -> None:
        """ROUTER's receive: recv()'s turn, the peer's routing id in front."""
        routed = self.fq.recv_routed()
        if not self.turn:
            assert routed is None
            return
        peer = self.turn.pop(0)
        assert routed is not None
        rid, *msg = routed
        assert rid == peer.routing_id
        assert self.fq.last is peer
        self.took(peer, [msg])
        if self.queues[peer]:
            self.turn.append(peer)

    @rule(max_messages=st.integers(1, 12))
    def take(self, max_messages: int) -> None:
        with_input = [p for p in self.peers if self.queues[p]]
        total = self.available()
        runs = self.fq.take(max_messages)
        got: Counter[Peer] = Counter()
        for peer, msgs in runs:
            assert all(self.owner_of(m) is peer for m in msgs)
            self.took(peer, msgs)
            got[peer] += len(msgs)
        assert sum(got.values()) == min(max_messages, total)
        if max_messages >= len(with_input):
            # Nobody with input is starved.
            assert set(got) == set(with_input)
        if len(with_input) == 1:
            assert len(runs) == 1  # a lone peer's messages in one run
        self.resync_turn()

    @rule(max_messages=st.integers(1, 12))
    def take_routed(self, max_messages: int) -> None:
        """ROUTER's bulk receive: take()'s shares and order, the id in front."""
        with_input = [p for p in self.peers if self.queues[p]]
        total = self.available()
        msgs = self.fq.take_routed(max_messages)
        assert len(msgs) == min(max_messages, total)
        by_peer: dict[Peer, list[Message]] = {}
        for rid, *msg in msgs:
            peer = self.owner_of(msg)
            assert rid == peer.routing_id
            by_peer.setdefault(peer, []).append(msg)
        for peer, mine in by_peer.items():
            self.took(peer, mine)
        if max_messages >= len(with_input):
            assert set(by_peer) == set(with_input)  # nobody with input is starved
        self.resync_turn()

    @rule(max_messages=st.integers(1, 12))
    def recv_many(self, max_messages: int) -> None:
        total = self.available()
        msgs = self.fq.recv_many(max_messages)
        assert len(msgs) == min(max_messages, total)
        # Regroup by peer (order within each peer is what must hold).
        by_peer: dict[Peer, list[Message]] = {}
        for msg in msgs:
            by_peer.setdefault(self.owner_of(msg), []).append(msg)
        for peer, mine in by_peer.items():
            self.took(peer, mine)
        self.resync_turn()

    # -- invariants

    @invariant()
    def agrees_with_the_model(self) -> None:
        for peer in self.peers:
            assert list(peer.inp.queue) == list(self.queues[peer])
            assert peer.inp.writer_waiting == self.waiting[peer]
            assert self.wakes.writable[peer.inp] == self.writer_wakes[peer.inp]
            if self.waiting[peer]:
                assert peer.inp  # an emptied pipe has woken its writer
        # Every peer with input has exactly one turn queued (stale empties aside).
        live = [p for p in self.fq.active if p.inp.queue]
        assert len(live) == len(set(live))
        assert set(live) == {p for p in self.peers if self.queues[p]}
        assert live == self.turn


TestFairQueue = FairQueueMachine.TestCase
TestFairQueue.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def fair_queue_with(counts: Iterable[int]) -> tuple[FairQueue, list[Peer]]:
    fq = FairQueue()
    wakes = Wakes(fq)
    peers = []
    for i, count in enumerate(counts):
        peer = make_peer(inp=Pipe(0, wakes, wakes))
        peer.inp.put_many([[b"%d" % i, b"%d" % j] for j in range(count)])
        peers.append(peer)
    return fq, peers


def test_fair_queue_recv_takes_one_from_each_in_turn() -> None:
    fq, _ = fair_queue_with([3, 1, 2])
    order = []
    while (msg := fq.recv()) is not None:
        order.append(msg)
    assert [m[0] for m in order] == [b"0", b"1", b"2", b"0", b"2", b"0"]
    assert [m[1] for m in order] == [b"0", b"0", b"0", b"1", b"1", b"2"]


def test_fair_queue_take_gives_a_lone_peer_one_run() -> None:
    fq, (a,) = fair_queue_with([5])
    runs = fq.take(3)
    assert [(p, len(m)) for p, m in runs] == [(a, 3)]
    runs = fq.take(10)
    assert [(p, len(m)) for p, m in runs] == [(a, 2)]
    assert fq.take(10) == []
    assert fq.recv() is None


@given(peers=st.integers(2, 5), max_messages=st.integers(2, 40))
def test_fair_queue_take_shares_equally_among_busy_peers(peers: int, max_messages: int) -> None:
    """Every peer has more input than it can get: each gets floor or ceil of an equal
    share."""
    fq, _ = fair_queue_with([max_messages] * peers)
    got: Counter[bytes] = Counter()
    for _, msgs in fq.take(max_messages):
        got[msgs[0][0]] += len(msgs)
    share = max_messages / peers
    assert all(math.floor(share) <= n <= math.ceil(share) for n in got.values()), got


@given(
    counts=st.lists(st.integers(0, 6), max_size=8),
    asks=st.lists(st.integers(1, 20), min_size=1, max_size=5),
    one_frame=st.booleans(),
)
def test_fair_queue_take_routed_is_take_with_the_id_in_front(
    counts: list[int], asks: list[int], one_frame: bool
) -> None:
    # Two fair queues with the same input: take_routed gives what take gives, in
    # the same order, each message with its peer's routing id in front, and leaves
    # the same turn order behind.  A ROUTER queues one-frame messages as their frame.
    def made() -> tuple[FairQueue, list[Peer]]:
        fq = FairQueue()
        wakes = Wakes(fq)
        peers = []
        for i, count in enumerate(counts):
            peer = make_peer(inp=Pipe(0, wakes, wakes))
            peer.routing_id = b"r%d" % i
            msgs: list[Any] = [
                b"%d.%d" % (i, j) if one_frame else [b"%d" % i, b"%d" % j] for j in range(count)
            ]
            peer.inp.put_many(msgs)
            peers.append(peer)
        return fq, peers

    plain, plain_peers = made()
    routed, routed_peers = made()
    for ask in asks:
        expected = [
            [peer.routing_id, m] if type(m) is bytes else [peer.routing_id, *m]
            for peer, msgs in plain.take(ask)
            for m in cast(list[Any], msgs)
        ]
        assert routed.take_routed(ask) == expected
        assert [plain_peers.index(p) for p in plain.active if p.inp] == [
            routed_peers.index(p) for p in routed.active if p.inp
        ]


def test_fair_queue_take_is_fair_for_one_share_each() -> None:
    """What does hold: the first round leaves nobody out, and with no more than one
    message per peer to give, each gets one."""
    fq, peers = fair_queue_with([10, 10, 10])
    runs = fq.take(3)
    assert [(p, len(m)) for p, m in runs] == [(peers[0], 1), (peers[1], 1), (peers[2], 1)]


# ----------------------------------------------------------------------- Distributor

#: Topics and subscriptions over a tiny alphabet, so that prefixes match often.
small_topics = st.binary(max_size=2).map(lambda b: bytes(x % 2 + 0x61 for x in b))
subscriber = st.tuples(
    hwms, st.integers(0, 4), st.booleans(), st.lists(small_topics, max_size=2)
)  # (hwm, queued already, inproc, subscriptions)


def distributor_world(
    spec: list[tuple[int, int, bool, list[bytes]]],
) -> tuple[list[Peer], dict[Peer, list[bytes]], Wakes]:
    readers = Wakes()
    peers = []
    subs = {}
    for hwm, prefill, inproc, topics in spec:
        peer = make_peer(hwm, inproc=inproc, out_reader=readers)
        peer.out.queue.extend([[b"old"]] * prefill)
        peers.append(peer)
        subs[peer] = topics
    return peers, subs, readers


def matcher(peers: list[Peer], subs: dict[Peer, list[bytes]]) -> Any:
    def match(topic: bytes) -> set[Peer]:
        return {p for p in peers if any(topic.startswith(s) for s in subs[p])}

    return match


@settings(max_examples=300, deadline=None)
@given(spec=st.lists(subscriber, max_size=4), nodrop=st.booleans(), data=st.data())
def test_distributor_send(
    spec: list[tuple[int, int, bool, list[bytes]]], nodrop: bool, data: st.DataObject
) -> None:
    peers, _, readers = distributor_world(spec)
    to = [p for p in peers if data.draw(st.booleans())]
    before = {p: list(p.out.queue) for p in peers}
    dist = Distributor()
    dist.nodrop = nodrop
    msg = [b"topic", b"body"]
    was_full = {p: p.out.full for p in peers}
    blocked = nodrop and any(was_full[p] for p in to)
    assert dist.send(iter(to), msg) is not blocked
    copies = set()
    for peer in peers:
        q = list(peer.out.queue)
        if blocked or peer not in to or was_full[peer]:
            assert q == before[peer]  # nothing queued
            assert readers.readable[peer.out] == 0
            continue
        assert q == [*before[peer], msg]
        if peer.link is None:
            assert q[-1] is msg
        else:
            assert q[-1] is not msg  # an inproc application gets its own list
            copies.add(id(q[-1]))
        assert readers.readable[peer.out] == (0 if before[peer] else 1)
    if not blocked:
        assert len(copies) == sum(1 for p in to if p.link is not None and not was_full[p])


@settings(max_examples=300, deadline=None)
@given(
    spec=st.lists(subscriber, max_size=4),
    topics=st.lists(small_topics, max_size=12),
    nodrop=st.booleans(),
    one_topic=st.booleans(),
    data=st.data(),
)
def test_distributor_send_many_is_send_one_at_a_time(
    spec: list[tuple[int, int, bool, list[bytes]]],
    topics: list[bytes],
    nodrop: bool,
    one_topic: bool,
    data: st.DataObject,
) -> None:
    if one_topic:  # a batch of one topic is found as one run (nodrop)
        topics = topics[:1] * len(topics)
    batch = [[t, b"%d" % i] for i, t in enumerate(topics)]
    start = data.draw(st.integers(0, len(batch)))
    peers_a, subs_a, readers_a = distributor_world(spec)
    peers_b, subs_b, readers_b = distributor_world(spec)
    dist_a, dist_b = Distributor(), Distributor()
    dist_a.nodrop = dist_b.nodrop = nodrop
    n = dist_a.send_many(matcher(peers_a, subs_a), batch, start)
    match_b = matcher(peers_b, subs_b)
    one_by_one = 0
    for msg in batch[start:]:
        if not dist_b.send(match_b(msg[0]), msg):
            break
        one_by_one += 1
    assert n == one_by_one
    if not nodrop:
        assert n == len(batch) - start  # dropping is sending
    seen: set[int] = set()
    for a, b in zip(peers_a, peers_b, strict=True):
        assert list(a.out.queue) == list(b.out.queue)
        assert readers_a.readable[a.out] == readers_b.readable[b.out]
        prefill = spec[peers_a.index(a)][1]
        assert a.out.hwm == 0 or len(a.out) <= max(a.out.hwm, prefill)  # never past the HWM
        new = [m for m in a.out.queue if m[0] != b"old"]
        if a.link is None:
            assert all(any(m is x for x in batch) for m in new)
        else:
            assert not any(m is x for m in new for x in batch)
            assert not any(id(m) in seen for m in new)
            seen.update(id(m) for m in new)


# Operations on a publisher's world: publish to one of the fixed collections, a writer
# draining a pipe (all of it, or a few messages), or a change that invalidates the plan
# (a collection gains or loses a peer, a pipe's HWM changes).
publish_ops = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(0, 2), st.integers(1, 6)),
        st.tuples(st.just("drain"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("toggle"), st.integers(0, 2), st.integers(0, 3)),
        st.tuples(st.just("hwm"), st.integers(0, 3), st.integers(0, 4)),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(spec=st.lists(subscriber, min_size=1, max_size=4), ops=publish_ops, nodrop=st.booleans())
def test_distributor_publish_is_send(
    spec: list[tuple[int, int, bool, list[bytes]]],
    ops: list[tuple[str, int, int]],
    nodrop: bool,
) -> None:
    """publish() (plans and budgets, given the same collection again and again)
    queues, wakes, drops and blocks exactly as send() does, through drains and
    invalidated changes."""
    worlds = []
    for _ in range(2):
        peers, _, readers = distributor_world(spec)
        dist = Distributor()
        dist.nodrop = nodrop
        # Three collections, reused as a publisher's trie returns the same set.
        sets: list[set[Peer]] = [set(peers), set(peers[:1]), set()]
        worlds.append((peers, readers, dist, sets))
    count = 0
    for op, a, b in ops:
        results = []
        for peers, _readers, dist, sets in worlds:
            planned = dist is worlds[0][2]
            if op == "publish":
                got = []
                for i in range(b):
                    msg = [b"m", b"%d" % (count + i)]
                    got.append(dist.publish(sets[a], msg) if planned else dist.send(sets[a], msg))
                results.append(got)
            elif op == "drain":
                out = peers[a % len(peers)].out
                if b:
                    for _ in range(min(b, len(out.queue))):
                        out.queue.popleft()
                else:
                    out.take_all()
            elif op == "toggle":
                sets[a] ^= {peers[b % len(peers)]}
                dist.invalidate()
            else:
                peers[a % len(peers)].out.set_hwm(b)
                dist.invalidate()
        if op == "publish":
            count += b
            assert results[0] == results[1]
        (peers_a, readers_a, dist_a, _), (peers_b, readers_b, dist_b, _) = worlds
        for x, y in zip(peers_a, peers_b, strict=True):
            assert list(x.out.queue) == list(y.out.queue)
            assert readers_a.readable[x.out] == readers_b.readable[y.out]
        assert dist_a.counters.dropped_hwm == dist_b.counters.dropped_hwm


def test_distributor_publish_plans_on_the_second_use_and_respects_the_hwm() -> None:
    a, b = make_peer(3), make_peer(0)
    peers = {a, b}
    dist = Distributor()
    dist.nodrop = True
    assert dist.publish(peers, [b"1"])  # first use: send()
    assert dist.publish(peers, [b"2"])  # second: planned, budget 3 - 2 = 1, now 0
    assert dist.publish(peers, [b"3"])  # the budget counted again: 1 left
    assert not dist.publish(peers, [b"4"])  # a is full: waits, as send() would
    assert [m[0] for m in a.out.queue] == [b"1", b"2", b"3"] == [m[0] for m in b.out.queue]
    a.out.take_all()
    assert dist.publish(peers, [b"4"])
    assert [m[0] for m in a.out.queue] == [b"4"]
    dist.nodrop = False
    a.out.put_many([[b"x"], [b"y"]])  # something else filled it: the caller says so
    dist.invalidate()
    assert dist.publish(peers, [b"5"])  # dropped for a only
    assert dist.counters.dropped_hwm == 1
    assert [m[0] for m in b.out.queue][-1] == b"5"


def test_distributor_drops_for_full_peers_only() -> None:
    full, roomy = make_peer(2), make_peer(2)
    full.out.put_many([[b"a"], [b"b"]])
    dist = Distributor()
    assert dist.send([full, roomy], [b"c"])
    assert [list(full.out.queue), list(roomy.out.queue)] == [[[b"a"], [b"b"]], [[b"c"]]]
    dist.nodrop = True
    assert not dist.send([full, roomy], [b"d"])
    assert [len(full.out), len(roomy.out)] == [2, 1]  # nothing queued anywhere
    assert dist.send_many(lambda topic: [full, roomy], [[b"d"], [b"e"]], 0) == 0
    assert [len(full.out), len(roomy.out)] == [2, 1]
    full.out.queue.popleft()
    assert dist.send_many(lambda topic: [full, roomy], [[b"d"], [b"e"]], 0) == 1
    assert [m[0] for m in full.out.queue] == [b"b", b"d"]
    assert [m[0] for m in roomy.out.queue] == [b"c", b"d"]


# ----------------------------------------------------------------------- RoutingTable


def is_generated(rid: bytes) -> bool:
    return len(rid) == 5 and rid[0] == 0


class RoutingTableMachine(RuleBasedStateMachine):
    """RoutingTable against a dict from routing id to peer."""

    def __init__(self) -> None:
        super().__init__()
        self.table = RoutingTable()
        self.model: dict[bytes, Peer] = {}
        self.peers: list[Peer] = []
        self.generated: set[bytes] = set()

    def fresh(self, rid: bytes) -> None:
        assert is_generated(rid), rid
        assert rid not in self.model
        assert rid not in self.generated, "a generated id was handed out twice"
        self.generated.add(rid)

    @rule(identity=st.sampled_from([b"", b"", b"A", b"B", b"C"]), handover=st.booleans())
    def claim(self, identity: bytes, handover: bool) -> None:
        peer = make_peer()
        peer.identity = identity
        self.peers.append(peer)
        old = self.model.get(identity) if identity else None
        result = self.table.claim(peer, handover=handover)
        if not identity:
            assert result is True
            self.fresh(peer.routing_id)
        elif old is None:
            assert result is True
            assert peer.routing_id == identity
        elif not handover:
            assert result is False
            assert peer.routing_id == b""
            return  # refused: never added
        else:
            assert result is old
            assert peer.routing_id == identity
            assert old.routing_id != identity
            self.fresh(old.routing_id)
            del self.model[identity]
            self.model[old.routing_id] = old
            assert self.table.get(identity) is None  # until the caller adds the new peer
        self.table.add(peer)
        self.model[peer.routing_id] = peer

    @precondition(lambda self: self.peers)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        peer = data.draw(st.sampled_from(self.peers))
        self.table.remove(peer)
        if self.model.get(peer.routing_id) is peer:
            del self.model[peer.routing_id]

    @invariant()
    def agrees_with_the_model(self) -> None:
        for rid, peer in self.model.items():
            assert self.table.get(rid) is peer
            assert peer.routing_id == rid
        for rid in [b"A", b"B", b"C", b"", *self.generated]:
            if rid not in self.model:
                assert self.table.get(rid) is None


TestRoutingTable = RoutingTableMachine.TestCase
TestRoutingTable.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_routing_table_generated_ids_wrap_and_skip_taken_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_routing.random, "getrandbits", lambda bits: 2**32 - 2)
    table = RoutingTable()
    squatter = make_peer()
    squatter.identity = b"\x00\x00\x00\x00\x00"  # what the counter gives after wrapping
    assert table.claim(squatter, handover=False) is True
    table.add(squatter)
    ids = []
    for _ in range(3):
        peer = make_peer()
        assert table.claim(peer, handover=False) is True
        table.add(peer)
        ids.append(peer.routing_id)
    assert ids == [b"\x00\xff\xff\xff\xff", b"\x00\x00\x00\x00\x01", b"\x00\x00\x00\x00\x02"]


def test_routing_table_handover_renames_the_previous_holder() -> None:
    table = RoutingTable()
    first, second = make_peer(), make_peer()
    first.identity = second.identity = b"worker"
    assert table.claim(first, handover=True) is True
    table.add(first)
    assert table.claim(second, handover=False) is False
    assert table.get(b"worker") is first
    assert table.claim(second, handover=True) is first
    assert is_generated(first.routing_id)
    assert table.get(first.routing_id) is first
    table.add(second)
    assert table.get(b"worker") is second
    table.remove(first)  # the caller disconnects it: only its new id goes
    assert table.get(b"worker") is second
    assert table.get(first.routing_id) is None
