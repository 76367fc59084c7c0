"""The request-reply family (RFC 28): DEALER, ROUTER, REQ and REP.

* DEALER load-balances what it sends and fair-queues what it receives.
* ROUTER prefixes each received message with its peer's routing id and routes each sent
  message by its first frame; what it cannot route is dropped, unless
  ``router_mandatory``.
* REQ sends one request at a time, behind an empty delimiter frame, and takes the reply
  only from the peer it asked (libzmq src/req.cpp drops anything else).
* REP takes one request, remembers its envelope (everything up to the delimiter), and
  sends exactly one reply back along it.
"""

from __future__ import annotations

from typing import Any, cast

from ..protocol.socket_types import SocketType
from ._balanced import FairQueued, LoadBalanced
from ._errors import InvalidStateError, UnroutableError
from ._peer import Peer
from ._pipe import Message
from ._routing import RoutingTable
from ._socket import Socket

__all__ = ["Dealer", "Rep", "Req", "Router"]


class Dealer(LoadBalanced, FairQueued):
    """DEALER: load-balances outgoing and fair-queues incoming messages."""

    __slots__ = ()

    socket_type = SocketType.DEALER


class Req(LoadBalanced):
    """REQ: strict request/reply; each request gets an empty delimiter frame."""

    __slots__ = ("_waiting",)

    socket_type = SocketType.REQ
    _eager_send = True
    _direct = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._send_one = self._try_send  # the envelope and the turn, not the bare lb
        #: The peer whose reply we await (None: it is our turn to send).
        self._waiting: Peer | None = None

    def _try_send_many(self, batch: list[Message], start: int) -> int:
        # One request at a time, each through the state machine (the base's loop
        # returns after the first and raises on the next call).
        return Socket._try_send_many(self, batch, start)

    def _try_send(self, msg: Message) -> bool:
        if self._waiting is not None:
            raise InvalidStateError("REQ socket: receive the reply before sending again")
        request = [b"", *msg]
        lb = self._lb
        peers = lb.peers
        if len(peers) == 1:
            # One peer with nothing queued for it (the load balancer would choose it,
            # and its pipe has room): straight to its connection, when that can write
            # at once (Engine.send_now).
            peer = peers[0]
            engine = peer.engine
            if engine is not None and not peer.out.queue and engine.send_now(request):
                lb.last = peer
                self._waiting = peer
                return True
        if not lb.send(request):
            return False
        self._waiting = lb.last
        return True

    def _take_direct(self, peer: Peer, msg: Message) -> Message | None:
        # _try_recv's rules for one message.
        if peer is not self._waiting or len(msg) < 2 or msg[0] != b"":
            return None
        self._fq.last = peer
        self._waiting = None
        return msg[1:]

    def _try_recv(self) -> Message | None:
        if self._waiting is None:
            raise InvalidStateError("REQ socket: send a request before receiving")
        fq = self._fq
        if not fq.active:
            return None  # nothing queued (a round trip's every look): no call
        while True:
            msg = fq.recv()
            if msg is None:
                return None
            # Only the peer we asked may answer, and only with the delimiter first.
            if fq.last is not self._waiting or len(msg) < 2 or msg[0] != b"":
                continue
            self._waiting = None
            return msg[1:]


class Rep(Socket):
    """REP: receives a request, then must send exactly one reply to its sender."""

    __slots__ = ("_envelope", "_reply_to")

    socket_type = SocketType.REP
    _eager_send = True
    _direct = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._envelope: Message | None = None
        self._reply_to: Peer | None = None

    def _try_recv(self) -> Message | None:
        if self._envelope is not None:
            raise InvalidStateError("REP socket: send the reply before receiving again")
        fq = self._fq
        if not fq.active:
            return None  # nothing queued (a round trip's every look): no call
        while True:
            msg = fq.recv()
            if msg is None:
                return None
            try:
                i = msg.index(b"")
            except ValueError:
                continue  # no delimiter: not a request (libzmq discards it)
            self._envelope = msg[: i + 1]
            self._reply_to = fq.last
            return msg[i + 1 :]

    def _take_direct(self, peer: Peer, msg: Message) -> Message | None:
        # _try_recv's rules for one message.
        try:
            i = msg.index(b"")
        except ValueError:
            return None
        self._fq.last = peer
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
        if peer is not None and peer in self._peers:
            out = peer.out
            if not out.queue:
                # Nothing queued ahead: straight to the connection, when it can write
                # at once (Engine.send_now).
                engine = peer.engine
                if engine is not None and engine.send_now(envelope + msg):
                    return True
                out.put(envelope + msg)
            elif not out.full:
                out.put(envelope + msg)
        return True


class Router(Socket):
    """ROUTER: prefixes each received message with its peer's routing id and routes
    each sent message by its first frame."""

    __slots__ = ("_table",)

    socket_type = SocketType.ROUTER
    _queue_before_connect = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._table = RoutingTable()
        self._recv_one = self._fq.recv_routed  # all _try_recv does

    def _accept_peer(self, peer: Peer) -> bool:
        result = self._table.claim(peer, handover=self._options["router_handover"])
        if isinstance(result, Peer):
            # Handover: the previous holder of the id is disconnected.
            if result.engine is not None:
                result.engine.stop()
            elif result.link is not None:
                self.remove_peer(result)
            return True
        return result

    def _attach(self, peer: Peer) -> None:
        if not peer.routing_id:
            # An inproc peer made by connect(): the bound socket's identity is not known
            # until the link, so it is identified in _connected (libzmq likewise
            # identifies such a pipe when its routing-id message arrives).
            return
        self._table.add(peer)

    def _detach(self, peer: Peer) -> None:
        self._table.remove(peer)

    def _connected(self, peer: Peer) -> None:
        if not peer.routing_id:
            if not self._accept_peer(peer):
                # A duplicate id without handover: parked, as libzmq does; its
                # messages are never delivered.
                peer.inp.reader = None
                return
            self._table.add(peer)
        if self._options["probe_router"]:
            peer.out.put([b""])

    def _try_send_many(self, batch: list[Message], start: int) -> int:
        # _try_send for each message, inlined: a proxy's backend->frontend direction
        # routes every reply through here, and the call per message (with the base
        # loop's try block) cost as much as the routing itself.  The rules are
        # _try_send's, message for message, and so is the result: an unroutable
        # message under router_mandatory raises only if it is the first (otherwise
        # the messages before it are counted and the next call raises), a full pipe
        # under router_mandatory stops the batch there.
        get = self._table.get
        mandatory = self._options["router_mandatory"]
        counters = self._counters
        end = len(batch)
        i = start
        while i < end:
            msg = batch[i]
            rid = msg[0]
            if type(rid) is not bytes:
                rid = bytes(rid)
            peer = get(rid)
            if peer is None:
                if mandatory:
                    if i > start:
                        break
                    raise UnroutableError(f"no peer with routing id {rid!r}")
                counters.dropped_unroutable += 1
            elif len(msg) >= 2:  # a bare routing id is not a message: dropped
                out = peer.out
                q = out.queue
                if 0 < out.hwm <= len(q):  # Pipe.full, inlined
                    if mandatory:
                        break
                    counters.dropped_hwm += 1
                elif out.inproc:
                    out.put(msg[1:])
                else:
                    # Pipe.put, inlined (a tcp/ipc pipe: its reader is an engine).
                    q.append(msg[1:])
                    if len(q) == 1 and out.reader is not None:
                        out.reader.pipe_readable(out)
            i += 1
        return i - start

    def _try_send(self, msg: Message) -> bool:
        rid = msg[0]
        if type(rid) is not bytes:
            rid = bytes(rid)
        peer = self._table.get(rid)
        if peer is None:
            if self._options["router_mandatory"]:
                raise UnroutableError(f"no peer with routing id {rid!r}")
            self._counters.dropped_unroutable += 1
            return True  # dropped silently, as libzmq does
        if len(msg) < 2:
            return True  # a bare routing id is not a message
        out = peer.out
        if 0 < out.hwm <= len(out.queue):  # Pipe.full, inlined: per message
            if self._options["router_mandatory"]:
                return False
            self._counters.dropped_hwm += 1
            return True
        out.put(msg[1:])
        return True

    def _peer_messages(self, peer: Peer, messages: list[Message]) -> None:
        # With several peers, a one-frame message waits in the queue as its frame
        # alone (the receive builds [routing id, frame] anyway).  Not for tidiness:
        # with many peers, messages wait longer (a sender far ahead, spread over 1,000
        # queues), and a list that waits outlives Python's young collections into the
        # oldest generation, whose full collections then walk every object of every
        # connection: with 1,000 peers that was a third of the CPU per message.
        # bytes are not tracked by the collector; the one-frame lists die here.  With
        # one peer (its queue bounded by one HWM, drained as it fills by a lent
        # receive) the pass measured a little more than it saved.
        if len(self._peers) > 1:
            messages = cast(list[Message], [m[0] if len(m) == 1 else m for m in messages])
        peer.inp.put_many(messages)

    def _try_recv(self) -> Message | None:
        return self._fq.recv_routed()

    def _try_recv_many(self, max_messages: int) -> list[Message]:
        return self._fq.take_routed(max_messages)
