"""The inproc transport: sockets of one Context linked directly, without bytes.

A connecting socket's peer record exists at once (messages queue before the bind, as
libzmq allows since 4.0).  When both ends exist they are *linked*: each socket gets a
:class:`~zmtp.sockets._peer.Peer` whose ``out`` pipe is the other's ``inp``, and the
sockets exchange message lists directly (no engine, no encoding).  Subscriptions go
straight into the publisher's hooks (``Peer.link.owner``).

libzmq sums both sides' high-water marks for an inproc pipe (0 on either side: no
limit); so do we.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..protocol.socket_types import SocketType, compatible
from ._peer import Peer
from ._pipe import Message, Pipe

__all__ = ["InprocEnd", "InprocEndpoint", "InprocNamespace", "InprocPipe"]

log = logging.getLogger("zmtp")


class InprocPipe(Pipe):
    """A pipe between two sockets of one context.

    Read-only memoryviews are accepted by ``send`` without copying (the tcp encoder
    writes them directly); a receiving socket must get ``bytes``, so they are
    converted here, the one place inproc messages cross between sockets.
    """

    __slots__ = ()
    inproc = True

    def put(self, msg: Message) -> None:
        for f in msg:
            if type(f) is not bytes:
                msg = [bytes(x) for x in msg]
                break
        super().put(msg)

    def put_many(self, msgs: list[Message]) -> None:
        for msg in msgs:
            self.put(msg)


class InprocEnd(Protocol):
    """What linking needs of a socket."""

    @property
    def socket_type(self) -> SocketType: ...
    def get_option(self, name: str) -> Any: ...
    def on_subscribe(self, peer: Any, topic: bytes) -> None: ...
    def on_cancel(self, peer: Any, topic: bytes) -> None: ...
    def on_peer_gone(self, peer: Any) -> None: ...
    def pipe_readable(self, pipe: Pipe) -> None: ...
    def pipe_writable(self, pipe: Pipe) -> None: ...
    def accept_peer(self, peer: Peer) -> bool:
        """Decide whether a new peer may join (its identity and type are set)."""

    def add_peer(self, peer: Peer) -> None: ...
    def peer_ready(self, peer: Peer) -> None:
        """A peer's link (or handshake) is complete."""


class InprocEndpoint(Protocol):
    """What linking needs of a socket's record of one inproc endpoint."""

    @property
    def endpoint(self) -> str: ...
    @property
    def bind(self) -> bool: ...

    peer: Peer | None

    @property
    def peers(self) -> set[Peer]: ...


class InprocNamespace:
    """The inproc names of one Context: who is bound to each, who waits for it."""

    def __init__(self) -> None:
        self._binds: dict[str, tuple[InprocEnd, InprocEndpoint]] = {}
        self._waiting: dict[str, list[tuple[InprocEnd, InprocEndpoint]]] = {}

    def bind(self, name: str, sock: InprocEnd, state: InprocEndpoint) -> None:
        """Bind ``name``; link every socket that connected to it before.

        Raises:
            ValueError: ``name`` is already bound.
        """
        if name in self._binds:
            raise ValueError(f"inproc://{name} is already bound")
        self._binds[name] = (sock, state)
        for other, other_state in self._waiting.pop(name, []):
            self._link(other, other_state, sock, state, name)

    def bound(self, name: str) -> bool:
        """True if a socket is bound to ``inproc://name``."""
        return name in self._binds

    def connect(self, name: str, sock: InprocEnd, state: InprocEndpoint) -> None:
        """Connect to ``name``: a queueing peer at once, linked when bound."""
        peer = Peer(
            sock,
            InprocPipe(sock.get_option("sndhwm"), None, sock),
            InprocPipe(sock.get_option("rcvhwm"), sock, None),
            state.endpoint,
            persistent=True,
        )
        state.peer = peer
        sock.add_peer(peer)
        bound = self._binds.get(name)
        if bound is None:
            self._waiting.setdefault(name, []).append((sock, state))
        else:
            self._link(sock, state, bound[0], bound[1], name)

    def forget(self, sock: InprocEnd, state: InprocEndpoint) -> None:
        """The socket unbound, disconnected or closed ``state``'s endpoint."""
        name = state.endpoint.partition("://")[2]
        if state.bind:
            if self._binds.get(name, (None,))[0] is sock:
                del self._binds[name]
        else:
            waiting = self._waiting.get(name, [])
            waiting[:] = [(s, st) for s, st in waiting if st is not state]

    def _link(
        self,
        csock: InprocEnd,
        cstate: InprocEndpoint,
        bsock: InprocEnd,
        bstate: InprocEndpoint,
        name: str,
    ) -> None:
        cpeer = cstate.peer
        assert cpeer is not None
        if not compatible(bsock.socket_type, csock.socket_type):
            log.warning(
                "inproc://%s: a %s socket cannot talk to a %s socket",
                name,
                bsock.socket_type.name,
                csock.socket_type.name,
            )
            return
        c2b, b2c = cpeer.out, cpeer.inp
        for pipe, snd, rcv in ((c2b, csock, bsock), (b2c, bsock, csock)):
            s, r = snd.get_option("sndhwm"), rcv.get_option("rcvhwm")
            pipe.set_hwm(s + r if s and r else 0)
        c2b.reader, c2b.writer = bsock, csock
        b2c.reader, b2c.writer = csock, bsock
        bpeer = Peer(bsock, b2c, c2b, f"inproc://{name}")
        bpeer.identity = csock.get_option("routing_id")
        bpeer.socket_type = csock.socket_type
        cpeer.identity = bsock.get_option("routing_id")
        cpeer.socket_type = bsock.socket_type
        if not bsock.accept_peer(bpeer):
            # Refused (a duplicate ROUTER id, a second PAIR peer): the connecting side
            # keeps its queue, which is never read, like a pipe libzmq parks.  Linking
            # the records lets the connecting socket close without lingering on it.
            c2b.reader = None
            cpeer.link, bpeer.link = bpeer, cpeer
            return
        bpeer.link, cpeer.link = cpeer, bpeer
        bpeer.connected = cpeer.connected = True
        bsock.add_peer(bpeer)
        bstate.peers.add(bpeer)
        csock.peer_ready(cpeer)
        bsock.peer_ready(bpeer)
        if c2b.queue:
            bsock.pipe_readable(c2b)
