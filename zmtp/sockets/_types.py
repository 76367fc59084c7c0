"""Socket types built from routing strategies (libzmq src/lb.cpp, fq.cpp, router.cpp...).

* load-balance (``_LoadBalancing._try_send``): round-robin over peers whose outbound pipe has room;
  when none has, the sender waits (PUSH, DEALER, REQ);
* fair-queue (``Socket._fq_recv``): one message from each peer with input in turn
  (PULL, DEALER, ROUTER, REP, REQ);
* ROUTER routes by the first frame and drops what it cannot route, unless
  ``router_mandatory``;
* PAIR has exactly one peer; later ones complete the handshake but are then ignored,
  as in libzmq (specs/libzmq-behaviour.md §5.6).
"""

from __future__ import annotations

import random
from typing import Any

from ..protocol.socket_types import SocketType
from ._pipe import Message
from ._socket import InvalidStateError, Peer, Socket, UnroutableError

__all__ = ["SOCKET_CLASSES", "Dealer", "Pair", "Pull", "Push", "Rep", "Req", "Router"]


class _LoadBalancing(Socket):
    """Round-robin sending over peers with room."""

    __slots__ = (
        "_lb",
        "_lb_next",
        "_lb_peer",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lb: list[Peer] = []
        self._lb_next = 0
        self._lb_peer: Peer | None = None

    def _attach(self, peer: Peer) -> None:
        self._lb.append(peer)

    def _detach(self, peer: Peer) -> None:
        i = self._lb.index(peer)
        del self._lb[i]
        if self._lb_next > i:
            self._lb_next -= 1

    def _try_send(self, msg: Message) -> bool:
        """Load-balance: queue ``msg`` on the next peer with room (False: all full).

        The peer chosen is left in ``_lb_peer`` (REQ needs it).
        """
        peers = self._lb
        n = len(peers)
        i = self._lb_next
        for _ in range(n):
            if i >= n:
                i = 0
            peer = peers[i]
            i += 1
            out = peer.out
            q = out.queue
            if not 0 < out.hwm <= len(q):
                if out.inproc:
                    out.put(msg)
                else:
                    # Pipe.put, inlined: this is the per-message hot path.
                    q.append(msg)
                    if len(q) == 1 and out.reader is not None:
                        out.reader.pipe_readable(out)
                self._lb_next = i
                self._lb_peer = peer
                return True
        return False

    def _try_send_many(self, batch: list[Message], start: int) -> int:
        if len(self._lb) != 1:
            return super()._try_send_many(batch, start)
        # One peer: queue as much as its pipe has room for in one extend.
        out = self._lb[0].out
        room = len(batch) - start
        if out.hwm > 0:
            room = min(room, out.hwm - len(out.queue))
        if room <= 0:
            return 0
        out.put_many(batch[start : start + room])
        return room

    def _connected(self, peer: Peer) -> None:
        if self._options.get("probe_router") and self.socket_type is not SocketType.PUSH:
            peer.out.put([b""])


class Push(_LoadBalancing):
    """PUSH: load-balances messages to PULL peers; blocks at the high-water mark."""

    __slots__ = ()

    socket_type = SocketType.PUSH
    _can_recv = False


class _FairQueueing(Socket):
    """Fair-queued receiving of whole messages, one at a time or in bulk."""

    __slots__ = ()

    # Fair-queueing is the whole receive strategy: no wrapper call per message.
    _try_recv = Socket._fq_recv_msg

    def _try_recv_many(self, max_messages: int) -> list[Message]:
        runs = self._fq_take(max_messages)
        if len(runs) == 1:
            return runs[0][1]
        out: list[Message] = []
        for _, msgs in runs:
            out.extend(msgs)
        return out


class Pull(_FairQueueing):
    """PULL: fair-queues messages from PUSH peers."""

    __slots__ = ()

    socket_type = SocketType.PULL
    _can_send = False


class Dealer(_LoadBalancing, _FairQueueing):
    """DEALER: load-balances outgoing and fair-queues incoming messages."""

    __slots__ = ()

    socket_type = SocketType.DEALER


class Pair(_FairQueueing):
    """PAIR: exactly one peer at a time."""

    __slots__ = ("_pair",)

    socket_type = SocketType.PAIR

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pair: Peer | None = None

    def _accept_peer(self, peer: Peer) -> bool:
        return self._pair is None

    def _attach(self, peer: Peer) -> None:
        if self._pair is None:
            self._pair = peer

    def _detach(self, peer: Peer) -> None:
        if self._pair is peer:
            self._pair = None

    def _try_send(self, msg: Message) -> bool:
        peer = self._pair
        if peer is None or peer.out.full:
            return False
        peer.out.put(msg)
        return True


class Router(Socket):
    """ROUTER: prefixes each received message with its peer's routing id and routes
    each sent message by its first frame."""

    __slots__ = (
        "_by_id",
        "_next_id",
    )

    socket_type = SocketType.ROUTER
    _queue_before_connect = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_id: dict[bytes, Peer] = {}
        # libzmq: generated ids are 0x00 + a 32-bit counter starting at a random value.
        self._next_id = random.getrandbits(32)

    def _generate_id(self) -> bytes:
        while True:
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF
            rid = b"\x00" + self._next_id.to_bytes(4, "big")
            if rid not in self._by_id:
                return rid

    def _accept_peer(self, peer: Peer) -> bool:
        rid = peer.identity
        if not rid:
            peer.routing_id = self._generate_id()
            return True
        old = self._by_id.get(rid)
        if old is not None:
            if not self._options["router_handover"]:
                # libzmq 4.3.5 keeps the newcomer's connection but never delivers its
                # messages (libzmq#4503); we do the same rather than invent a policy.
                return False
            # Handover: the old peer loses the id and is disconnected.
            del self._by_id[rid]
            old.routing_id = self._generate_id()
            self._by_id[old.routing_id] = old
            if old.engine is not None:
                old.engine.stop()
            elif old.link is not None:
                self._remove_peer(old)
        peer.routing_id = rid
        return True

    def _attach(self, peer: Peer) -> None:
        if not peer.routing_id:
            # An inproc peer made by connect(): the bound socket's identity is not known
            # until the link, so it is identified in _connected (libzmq likewise
            # identifies such a pipe when its routing-id message arrives).
            return
        self._by_id[peer.routing_id] = peer

    def _detach(self, peer: Peer) -> None:
        if self._by_id.get(peer.routing_id) is peer:
            del self._by_id[peer.routing_id]

    def _try_send(self, msg: Message) -> bool:
        rid = msg[0]
        if type(rid) is not bytes:
            rid = bytes(rid)
        peer = self._by_id.get(rid)
        if peer is None:
            if self._options["router_mandatory"]:
                raise UnroutableError(f"no peer with routing id {rid!r}")
            return True  # dropped silently, as libzmq does
        if len(msg) < 2:
            return True  # a bare routing id is not a message
        out = peer.out
        if 0 < out.hwm <= len(out.queue):
            return not self._options["router_mandatory"]
        out.put(msg[1:])
        return True

    def _try_recv(self) -> Message | None:
        r = self._fq_recv()
        if r is None:
            return None
        peer, msg = r
        return [peer.routing_id, *msg]

    def _try_recv_many(self, max_messages: int) -> list[Message]:
        out: list[Message] = []
        for peer, msgs in self._fq_take(max_messages):
            rid = peer.routing_id
            out.extend([rid, *m] for m in msgs)
        return out

    def _connected(self, peer: Peer) -> None:
        if not peer.routing_id:
            if not self._accept_peer(peer):
                # A duplicate id without handover: parked, as libzmq does; its
                # messages are never delivered.
                peer.inp.reader = None
                return
            self._by_id[peer.routing_id] = peer
        if self._options["probe_router"]:
            peer.out.put([b""])


class Req(_LoadBalancing):
    """REQ: strict request/reply; each request gets an empty delimiter frame."""

    __slots__ = ("_waiting",)

    socket_type = SocketType.REQ
    _eager_send = True
    # One request at a time: the bulk load-balancing path would skip the state machine.
    _try_send_many = Socket._try_send_many

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: Peer | None = None

    def _try_send(self, msg: Message) -> bool:
        if self._waiting is not None:
            raise InvalidStateError("REQ socket: receive the reply before sending again")
        if not _LoadBalancing._try_send(self, [b"", *msg]):
            return False
        self._waiting = self._lb_peer
        return True

    def _try_recv(self) -> Message | None:
        if self._waiting is None:
            raise InvalidStateError("REQ socket: send a request before receiving")
        while True:
            r = self._fq_recv()
            if r is None:
                return None
            peer, msg = r
            # Only the peer we asked may answer, and only with the delimiter first
            # (libzmq src/req.cpp drops anything else).
            if peer is not self._waiting or len(msg) < 2 or msg[0] != b"":
                continue
            self._waiting = None
            return msg[1:]


class Rep(Socket):
    """REP: receives a request, then must send exactly one reply to its sender."""

    __slots__ = (
        "_envelope",
        "_reply_to",
    )

    socket_type = SocketType.REP
    _eager_send = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._envelope: Message | None = None
        self._reply_to: Peer | None = None

    def _try_recv(self) -> Message | None:
        if self._envelope is not None:
            raise InvalidStateError("REP socket: send the reply before receiving again")
        while True:
            r = self._fq_recv()
            if r is None:
                return None
            peer, msg = r
            try:
                i = msg.index(b"")
            except ValueError:
                continue  # no delimiter: not a request (libzmq discards it)
            self._envelope = msg[: i + 1]
            self._reply_to = peer
            return msg[i + 1 :]

    def _try_send(self, msg: Message) -> bool:
        if self._envelope is None:
            raise InvalidStateError("REP socket: receive a request before replying")
        peer = self._reply_to
        envelope = self._envelope
        self._envelope = None
        self._reply_to = None
        # Replies never block: like a ROUTER, a REP drops what it cannot deliver.
        if peer is not None and peer in self._peers and not peer.out.full:
            peer.out.put(envelope + msg)
        return True


#: Socket classes by type; the pub/sub family registers itself here too.
SOCKET_CLASSES: dict[SocketType, type[Socket]] = {
    SocketType.PAIR: Pair,
    SocketType.PUSH: Push,
    SocketType.PULL: Pull,
    SocketType.DEALER: Dealer,
    SocketType.ROUTER: Router,
    SocketType.REQ: Req,
    SocketType.REP: Rep,
}
