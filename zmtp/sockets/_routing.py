"""Routing strategies: how a socket spreads what it sends and gathers what it receives.

libzmq builds its socket types from a few small strategies (src/lb.cpp, fq.cpp,
dist.cpp, and the routing table of router.cpp); so do we.  Each owns its state and its
high-water-mark logic, and socket types compose them:

=========  ================================  ==============================
type       sends with                        receives with
=========  ================================  ==============================
PUSH       :class:`LoadBalancer`             (nothing)
PULL       (nothing)                         :class:`FairQueue`
DEALER     :class:`LoadBalancer`             :class:`FairQueue`
REQ        :class:`LoadBalancer` + envelope  :class:`FairQueue` + envelope
REP        the requester's pipe + envelope   :class:`FairQueue` + envelope
ROUTER     :class:`RoutingTable`             :class:`FairQueue` + routing id
PAIR       its one peer                      :class:`FairQueue`
PUB/XPUB   :class:`Distributor` (matching)   XPUB: :class:`FairQueue`
SUB/XSUB   XSUB: :class:`Distributor` (all)  :class:`FairQueue`
=========  ================================  ==============================

The strategies never wait: a send returns False ("would block") or True ("queued, or
deliberately dropped"), a receive returns a message or None.  The socket does the
waiting.  The high-water mark counts messages (``Pipe.full``); the load balancer and
the fair queue inline the pipe operations on their per-message paths.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Collection, Iterable
from itertools import islice, repeat, starmap
from operator import itemgetter

from ._counters import Counters
from ._peer import Peer
from ._pipe import Message, Pipe

__all__ = ["Distributor", "FairQueue", "LoadBalancer", "RoutingTable"]

_first = itemgetter(0)


class LoadBalancer:
    """Round-robin over the peers whose outbound pipe has room (libzmq's lb).

    When every pipe is full (or there is no peer) a send would block.
    """

    __slots__ = ("_next", "last", "lone", "peers")

    def __init__(self) -> None:
        self.peers: list[Peer] = []
        self._next = 0
        #: The peer the last successful :meth:`send` chose (REQ awaits its reply).
        self.last: Peer | None = None
        #: The outbound pipe (tcp or ipc) of the only peer, once :meth:`send` has
        #: chosen it; None while there are several peers or none, or until then.  A
        #: socket may then queue on it itself, as :meth:`send` would (the HWM checked,
        #: the reader woken when the pipe was empty): ``last`` and the turn are what
        #: that send left, and stay so until a peer comes or goes, which resets it.
        self.lone: Pipe | None = None

    def attach(self, peer: Peer) -> None:
        self.peers.append(peer)
        self.lone = None

    def detach(self, peer: Peer) -> None:
        i = self.peers.index(peer)
        del self.peers[i]
        self.lone = None
        if self._next > i:
            self._next -= 1

    def send(self, msg: Message) -> bool:
        """Queue ``msg`` on the next peer with room; False if all are full."""
        peers = self.peers
        n = len(peers)
        if n == 1:
            # One peer, the commonest case: no turn to keep, no loop to set up.
            peer = peers[0]
            out = peer.out
            q = out.queue
            if 0 < out.hwm <= len(q):  # Pipe.full, inlined
                return False
            if out.inproc:
                out.put(msg)
            else:
                self.lone = out  # first: waking the reader might detach the peer
                q.append(msg)  # Pipe.put, inlined
                if len(q) == 1 and out.reader is not None:
                    out.reader.pipe_readable(out)
            self._next = 1
            self.last = peer
            return True
        i = self._next
        for _ in range(n):
            if i >= n:
                i = 0
            peer = peers[i]
            i += 1
            out = peer.out
            q = out.queue
            if not 0 < out.hwm <= len(q):  # Pipe.full, inlined: the per-message path
                if out.inproc:
                    out.put(msg)
                else:
                    # Pipe.put, inlined.
                    q.append(msg)
                    if len(q) == 1 and out.reader is not None:
                        out.reader.pipe_readable(out)
                self._next = i
                self.last = peer
                return True
        return False

    def send_many(self, batch: list[Message], start: int) -> int:
        """Queue messages from ``batch[start:]``; return how many were taken."""
        peers = self.peers
        if len(peers) == 1:
            # One peer: as much as its pipe has room for, in one extend.
            peer = peers[0]
            out = peer.out
            room = out.room(len(batch) - start)
            if room:
                out.put_many(batch[start : start + room])
                self._next = 1  # as send() leaves it: past the peer it chose
                self.last = peer
            return room
        send = self.send
        n = 0
        for i in range(start, len(batch)):
            if not send(batch[i]):
                break
            n += 1
        return n


class FairQueue:
    """One message from each peer with input in turn (libzmq's fq).

    A peer joins the queue when its inbound pipe goes from empty to non-empty
    (:meth:`activate`, from the socket's ``pipe_readable``) and leaves it when drained.
    """

    __slots__ = ("active", "last")

    def __init__(self) -> None:
        #: Peers with inbound messages, in turn order.
        self.active: deque[Peer] = deque()
        #: The peer the last :meth:`recv` took from (no tuple per message).
        self.last: Peer | None = None

    def activate(self, peer: Peer) -> None:
        self.active.append(peer)

    def recv(self) -> Message | None:
        """One message from the next peer in turn, or None."""
        active = self.active
        while active:
            peer = active[0]
            inp = peer.inp
            q = inp.queue
            if q:
                # The take, inlined: this is the per-message hot path.
                msg = q.popleft()
                if not q:
                    active.popleft()
                elif len(active) > 1:
                    active.rotate(-1)
                if inp.writer_waiting:
                    inp.drained()
                self.last = peer
                return msg
            active.popleft()
        return None

    def recv_routed(self) -> Message | None:
        """:meth:`recv` with the peer's routing id in front (ROUTER's receive, bound
        as the socket's per-message hook: a call less per message).  A queued item
        may be a one-frame message's frame alone (``Router``)."""
        active = self.active
        while active:
            peer = active[0]
            inp = peer.inp
            q: deque[Message | bytes] = inp.queue  # type: ignore[assignment]
            if q:
                msg = q.popleft()
                if not q:
                    active.popleft()
                elif len(active) > 1:
                    active.rotate(-1)
                if inp.writer_waiting:
                    inp.drained()
                self.last = peer
                if type(msg) is bytes:
                    return [peer.routing_id, msg]
                return [peer.routing_id, *msg]
            active.popleft()
        return None

    def take(self, max_messages: int) -> list[tuple[Peer, list[Message]]]:
        """Up to ``max_messages``, as (peer, messages) runs.

        Each round gives every peer with input an equal share of what is left (fixed
        at the start of the round), so a busy peer cannot starve the others, while a
        lone peer's queue is taken with a single C-level ``extend``.
        """
        runs: list[tuple[Peer, list[Message]]] = []
        active = self.active
        left = max_messages
        while active and left > 0:
            share = max(1, left // len(active))
            for _ in range(len(active)):
                if left <= 0:
                    break
                peer = active[0]
                inp = peer.inp
                q = inp.queue
                n = min(share, left)
                if len(q) <= n:
                    if q:
                        msgs = list(q)
                        q.clear()
                        runs.append((peer, msgs))
                        left -= len(msgs)
                    active.popleft()
                else:
                    msgs = list(starmap(q.popleft, repeat((), n)))  # n pops, C-level
                    runs.append((peer, msgs))
                    left -= n
                    active.rotate(-1)
                if inp.writer_waiting:
                    inp.drained()
        return runs

    def take_routed(self, max_messages: int) -> list[Message]:
        """Up to ``max_messages`` messages, each with its peer's routing id in front
        (ROUTER), in the same shares and order as :meth:`take`.

        With many peers the share is one or two messages each, and :meth:`take`'s
        ``(peer, messages)`` run per share (a tuple and a list, then a list per
        message to put the id in front) cost as much as the rest of a receive.  A
        queued item may be a one-frame message's frame alone (``Router``).
        """
        out: list[Message] = []
        append = out.append
        active = self.active
        left = max_messages
        while active and left > 0:
            share = max(1, left // len(active))
            for _ in range(len(active)):
                if left <= 0:
                    break
                peer = active[0]
                inp = peer.inp
                q: deque[Message | bytes] = inp.queue  # type: ignore[assignment]
                rid = peer.routing_id
                n = len(q)
                if n > share:
                    n = share if share < left else left
                elif n > left:
                    n = left
                for _ in range(n):
                    msg = q.popleft()
                    append([rid, msg] if type(msg) is bytes else [rid, *msg])
                left -= n
                if q:
                    active.rotate(-1)
                else:
                    active.popleft()
                if inp.writer_waiting:
                    inp.drained()
        return out

    def recv_many(self, max_messages: int) -> list[Message]:
        """Up to ``max_messages`` messages, fairly, without their peers."""
        runs = self.take(max_messages)
        if len(runs) == 1:
            return runs[0][1]
        out: list[Message] = []
        for _, msgs in runs:
            out.extend(msgs)
        return out


#: publish()'s budget when no pipe has a limit (counted again when it runs out).
_NO_LIMIT = 1 << 30

#: Collections ``Distributor.send`` may iterate twice (anything else is listed first).
_REITERABLE = frozenset({list, set, frozenset, tuple, dict})


class Distributor:
    """Copies of each message to many peers; a peer whose pipe is full misses its copy
    and holds up nobody (libzmq's dist), unless ``nodrop`` (then a send waits until
    every peer it goes to has room: XPUB_NODROP).

    Over inproc each receiving application gets its own list, so one cannot change
    what another received.
    """

    __slots__ = ("_budget", "_key", "_links", "_outs", "_seen", "counters", "nodrop")

    def __init__(self, counters: Counters | None = None) -> None:
        self.nodrop = False
        #: Where dropped copies are counted (the socket's, for Socket.statistics()).
        self.counters = counters if counters is not None else Counters()
        # publish()'s plan (see there): the peer collection it is for, its tcp/ipc
        # pipes and its inproc peers, and how many more messages fit in all of them.
        self._key: object = None
        self._outs: tuple[Pipe, ...] = ()
        self._links: tuple[Peer, ...] = ()
        self._budget = 0
        #: The collection publish() was given last (a plan is made on its second use).
        self._seen: object = None

    def invalidate(self) -> None:
        """Forget :meth:`publish`'s plan: call whenever a collection it was given may
        have changed, a pipe's HWM changed, or something else queued on a pipe."""
        self._key = self._seen = None
        self._outs = ()
        self._links = ()
        self._budget = 0

    def publish(self, peers: Collection[Peer], msg: Message) -> bool:
        """:meth:`send`, for a publisher that is given the same collection of peers
        again and again (its trie's result for a topic).

        The second time in a row that ``peers`` is the same object, a *plan* is made:
        its pipes, and how many messages all of them can still take (the room of the
        fullest).  While that budget lasts, a message is appended to each pipe with no
        high-water-mark check, which is exactly what :meth:`send` would do, since no
        pipe can be full; the budget is counted again when it runs out (pipes drain
        meanwhile).  The plan is only valid while nothing else changes the pipes or
        the collection: the caller must :meth:`invalidate` it when the collection
        may have changed (subscriptions, peers), an HWM changed, or anything else
        queued on these pipes (a batch send, a welcome message).
        """
        if peers is not self._key:
            if peers is not self._seen:
                self._seen = peers
                return self.send(peers, msg)
            self._plan(peers)
        budget = self._budget
        if budget <= 0:
            budget = self._room()
            if budget <= 0:
                # A pipe is full: the usual per-peer checks (drop, or wait with nodrop).
                return self.send(peers, msg)
        self._budget = budget - 1
        for out in self._outs:
            # Pipe.put, inlined (tcp/ipc pipes: their reader is an engine).
            q = out.queue
            q.append(msg)
            if len(q) == 1 and out.reader is not None:
                out.reader.pipe_readable(out)
        for peer in self._links:
            peer.out.put(list(msg))
        return True

    def _plan(self, peers: Collection[Peer]) -> None:
        self._key = peers
        self._outs = tuple(peer.out for peer in peers if peer.link is None)
        self._links = tuple(peer for peer in peers if peer.link is not None)
        self._budget = 0

    def _room(self) -> int:
        """How many messages every pipe of the plan can still take."""
        room = _NO_LIMIT
        for out in self._outs:
            if out.hwm > 0:
                room = min(room, out.hwm - len(out.queue))
        for peer in self._links:
            out = peer.out
            if out.hwm > 0:
                room = min(room, out.hwm - len(out.queue))
        return room

    def send(self, peers: Iterable[Peer], msg: Message) -> bool:
        """Queue ``msg`` on each of ``peers``; False only if ``nodrop`` and one is full."""
        if self.nodrop:
            if type(peers) not in _REITERABLE:
                peers = list(peers)
            for peer in peers:
                out = peer.out
                if 0 < out.hwm <= len(out.queue):  # Pipe.full, inlined
                    return False
        for peer in peers:
            out = peer.out
            if not 0 < out.hwm <= len(out.queue):  # Pipe.full, inlined: per copy
                if peer.link is None:
                    # Pipe.put, inlined (a tcp/ipc pipe: its reader is an engine).
                    q = out.queue
                    q.append(msg)
                    if len(q) == 1 and out.reader is not None:
                        out.reader.pipe_readable(out)
                else:
                    out.put(list(msg))
            else:
                self.counters.dropped_hwm += 1
        return True

    def send_many(
        self, match: Callable[[bytes], Collection[Peer]], batch: list[Message], start: int
    ) -> int:
        """Distribute ``batch[start:]`` to ``match(first frame)`` each; return how many.

        One match per change of topic, one ``put_many`` per peer.  Messages beyond a
        peer's room are dropped for that peer only, as one-at-a-time sending would
        drop them.  With ``nodrop``, each run of messages with the same first frame
        goes whole to its peers, up to the room of the fullest (one ``put_many`` per
        peer and run), stopping where one-at-a-time sending would block.
        """
        if self.nodrop:
            return self._send_many_nodrop(match, batch, start)
        runs: dict[Peer, list[Message]] = {}
        topic: object = None
        peers: Collection[Peer] = ()
        for i in range(start, len(batch)):
            msg = batch[i]
            if msg[0] != topic:
                topic = msg[0]
                peers = match(msg[0])
            for peer in peers:
                run = runs.get(peer)
                if run is None:
                    runs[peer] = [msg]
                else:
                    run.append(msg)
        for peer, msgs in runs.items():
            out = peer.out
            room = out.room(len(msgs))
            if room < len(msgs):
                self.counters.dropped_hwm += len(msgs) - room
            if not room:
                continue
            del msgs[room:]
            out.put_many(msgs if peer.link is None else [list(m) for m in msgs])
        return len(batch) - start

    @staticmethod
    def _send_many_nodrop(
        match: Callable[[bytes], Collection[Peer]], batch: list[Message], start: int
    ) -> int:
        """``send_many`` with ``nodrop``: what one-at-a-time sending would queue, a run
        of same-topic messages at a time (the fan-out's per-copy work in bulk)."""
        i, end = start, len(batch)
        # A batch of one topic (a forwarder's stream of one publisher's feed, say) is
        # one run: found with C-level passes, not a loop step per message.
        one_topic = False
        if end - start > 1 and batch[end - 1][0] == batch[start][0]:  # else: mixed
            firsts = list(map(_first, islice(batch, start, end)))
            one_topic = firsts.count(firsts[0]) == len(firsts)
        while i < end:
            topic = batch[i][0]
            if one_topic:
                j = end
            else:
                j = i + 1
                while j < end and batch[j][0] == topic:
                    j += 1
            peers = match(topic)
            k = j - i
            for peer in peers:
                out = peer.out
                if out.hwm > 0:
                    room = out.hwm - len(out.queue)
                    if room < k:
                        k = max(room, 0)
            if not k:
                break
            run = batch[i : i + k]
            for peer in peers:
                out = peer.out
                out.put_many(run if peer.link is None else [list(m) for m in run])
            i += k
            if i < j:
                break  # a peer is full: one-at-a-time sending would block here
        return i - start


class RoutingTable:
    """ROUTER's table from routing ids to peers (libzmq src/router.cpp).

    A peer that announced an Identity is routed by it; others get a generated id:
    ``0x00`` and a 32-bit counter from a random start, as libzmq generates them
    (specs/libzmq-behaviour.md §5).
    """

    __slots__ = ("_by_id", "_next_id", "get")

    def __init__(self) -> None:
        self._by_id: dict[bytes, Peer] = {}
        self._next_id = random.getrandbits(32)
        #: ``get(rid) -> Peer | None``: the dict's own method (no Python call per
        #: message routed).
        self.get = self._by_id.get

    def generate_id(self) -> bytes:
        while True:
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF
            rid = b"\x00" + self._next_id.to_bytes(4, "big")
            if rid not in self._by_id:
                return rid

    def claim(self, peer: Peer, *, handover: bool) -> Peer | bool:
        """Choose ``peer.routing_id`` from its identity.

        Returns:
            True if the peer may join; False if its identity is taken and
            ``handover`` is off (libzmq 4.3.5 keeps such a connection but never
            delivers its messages, libzmq#4503); with ``handover``, the previous
            holder of the id, which has been given a generated id and must be
            disconnected by the caller.
        """
        rid = peer.identity
        if not rid:
            peer.routing_id = self.generate_id()
            return True
        old = self._by_id.get(rid)
        if old is None:
            peer.routing_id = rid
            return True
        if not handover:
            return False
        del self._by_id[rid]
        old.routing_id = self.generate_id()
        self._by_id[old.routing_id] = old
        peer.routing_id = rid
        return old

    def add(self, peer: Peer) -> None:
        self._by_id[peer.routing_id] = peer

    def remove(self, peer: Peer) -> None:
        if self._by_id.get(peer.routing_id) is peer:
            del self._by_id[peer.routing_id]
