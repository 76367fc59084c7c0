"""A socket's endpoints: bind, connect, accept, reconnect, unbind, disconnect.

Peers come and go in two ways, as in libzmq:

* ``connect()`` creates the peer at once (unless ``immediate``, or for a ROUTER), so
  messages queue before the connection exists and across reconnects; a connector task
  opens the transport, runs an engine on it, and after it ends waits ``reconnect_ivl``
  (doubling up to ``reconnect_ivl_max``) and tries again, unless the peer broke the
  protocol (libzmq stops reconnecting then, specs/libzmq-behaviour.md §2.5; the
  ``reconnect_on_protocol_error`` option, a zmtp extension, keeps it trying, with the
  same backoff, since a handshake that failed does not reset it).
* ``bind()`` starts a listener; each accepted connection gets a peer when its handshake
  completes, and loses it when the connection ends.

Each endpoint's tasks form a :class:`~zmtp.sockets._tasks.TaskGroup` in the Context's
nursery, so ``unbind``/``disconnect`` stop just that endpoint's connections and no
task outlives its socket.  inproc endpoints have no tasks: they are linked by the
Context's :class:`~zmtp.sockets._inproc.InprocNamespace`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Protocol

import trio

from ..protocol.errors import ProtocolError
from ._inproc import InprocEnd, InprocNamespace
from ._monitor import EventType
from ._peer import Peer
from ._tasks import TaskGroup
from ._transports import (
    Endpoint,
    Listening,
    open_listener,
    open_stream,
    parse_endpoint,
    peer_address,
)

__all__ = ["EndpointOwner", "EndpointState", "Endpoints"]

log = logging.getLogger("zmtp")


class EndpointState:
    """What a socket keeps per bound or connected endpoint."""

    __slots__ = ("bind", "endpoint", "group", "inproc", "listening", "peer", "peers")

    def __init__(self, endpoint: str, group: TaskGroup, *, bind: bool) -> None:
        self.endpoint = endpoint
        self.group = group
        self.bind = bind
        self.listening: Listening | None = None
        self.peer: Peer | None = None  # connect(): the persistent peer
        self.peers: set[Peer] = set()  # bind(): peers accepted here
        self.inproc = False


class EndpointOwner(InprocEnd, Protocol):
    """What the endpoint machinery needs of its socket."""

    def on_event(
        self, kind: EventType, endpoint: str, peer: str = "", reason: str = "", **detail: Any
    ) -> None: ...

    def open_peer(self, endpoint: str) -> Peer | None:
        """The peer a connect() queues for at once, or None (ROUTER, ``immediate``)."""

    def remove_peer(self, peer: Peer) -> None: ...

    async def run_engine(
        self, stream: trio.abc.Stream, state: EndpointState, address: str, peer: Peer | None
    ) -> tuple[ProtocolError | None, bool]:
        """Run one connection over ``stream`` to its end; return the protocol error
        that ended it (if any) and whether its handshake completed."""


class Endpoints:
    """The endpoints of one socket (see the module docstring)."""

    def __init__(self, owner: EndpointOwner, nursery: trio.Nursery, inproc: InprocNamespace):
        self._owner = owner
        self._nursery = nursery
        self._inproc = inproc
        self.states: dict[str, EndpointState] = {}
        #: The endpoint of the last bind() or connect() (libzmq's ZMQ_LAST_ENDPOINT).
        self.last_endpoint = ""

    def _group(self, name: str) -> TaskGroup:
        return TaskGroup(self._nursery, name)

    async def bind(self, endpoint: str) -> str:
        owner = self._owner
        ep = parse_endpoint(endpoint, bind=True)
        if ep.transport == "inproc":
            await trio.lowlevel.checkpoint()
            resolved = str(ep)
            state = EndpointState(resolved, self._group(resolved), bind=True)
            state.inproc = True
            self._inproc.bind(ep.path, owner, state)
        else:
            try:
                listening = await open_listener(ep)
            except OSError as exc:
                owner.on_event(EventType.BIND_FAILED, endpoint, reason=str(exc))
                raise
            resolved = listening.endpoint
            state = EndpointState(resolved, self._group(resolved), bind=True)
            state.listening = listening
            state.group.spawn(self._accept_loop, listening.listener, state)
        self.states[resolved] = state
        self.last_endpoint = resolved
        owner.on_event(EventType.LISTENING, resolved)
        return resolved

    async def connect(self, endpoint: str) -> None:
        ep = parse_endpoint(endpoint)
        await trio.lowlevel.checkpoint()
        key = str(ep) if ep.transport != "tcp" else endpoint
        if key in self.states:
            raise ValueError(f"already connected to {endpoint}")
        state = EndpointState(key, self._group(key), bind=False)
        self.states[key] = state
        if ep.transport == "inproc":
            state.inproc = True
            self._inproc.connect(ep.path, self._owner, state)
            return
        state.peer = self._owner.open_peer(key)
        state.group.spawn(self._connect_loop, ep, state)

    def attach_stream(self, stream: trio.abc.Stream, name: str) -> None:
        """Run a connection over an open stream, as if accepted on a bind of ``name``."""
        state = self.states.get(name)
        if state is None:
            state = self.states[name] = EndpointState(name, self._group(name), bind=True)
        state.group.spawn(self._owner.run_engine, stream, state, peer_address(stream), None)

    async def remove(self, endpoint: str, *, bind: bool) -> None:
        key = endpoint
        state = self.states.get(key)
        if state is None:
            with contextlib.suppress(ValueError):
                key = str(parse_endpoint(endpoint, bind=bind))
            state = self.states.get(key)
        if state is None or state.bind != bind:
            raise ValueError(f"not {'bound' if bind else 'connected'} to {endpoint}")
        del self.states[key]
        await self._stop(state)

    async def close_all(self) -> None:
        """Stop every endpoint and its connections."""
        states = list(self.states.values())
        self.states.clear()
        for state in states:
            await self._stop(state)

    async def _stop(self, state: EndpointState) -> None:
        await state.group.aclose()
        if state.listening is not None:
            await state.listening.aclose()
        if state.inproc:
            self._inproc.forget(self._owner, state)
        owner = self._owner
        for peer in list(state.peers):
            owner.remove_peer(peer)
        if state.peer is not None:
            owner.remove_peer(state.peer)

    async def _accept_loop(self, listener: trio.SocketListener, state: EndpointState) -> None:
        owner = self._owner
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # e.g. EMFILE: back off rather than spin
                log.warning("%s: accept on %s failed: %s", owner, state.endpoint, exc)
                await trio.sleep(0.1)
                continue
            address = peer_address(stream)
            owner.on_event(EventType.ACCEPTED, state.endpoint, address)
            state.group.spawn(owner.run_engine, stream, state, address, None)

    async def _connect_loop(self, ep: Endpoint, state: EndpointState) -> None:
        owner = self._owner
        option = owner.get_option
        ivl = option("reconnect_ivl")
        while True:
            try:
                stream = await open_stream(ep)
            except OSError as exc:
                owner.on_event(EventType.CONNECT_DELAYED, state.endpoint, reason=str(exc))
                log.debug("%s: connect to %s failed: %s", owner, state.endpoint, exc)
            else:
                owner.on_event(EventType.CONNECTED, state.endpoint, peer_address(stream))
                error, handshaken = await owner.run_engine(
                    stream, state, state.endpoint, state.peer
                )
                if (
                    isinstance(error, ProtocolError)
                    and error.fatal
                    and not option("reconnect_on_protocol_error")
                ):
                    log.warning(
                        "%s: not reconnecting to %s after protocol error: %s",
                        owner,
                        state.endpoint,
                        error,
                    )
                    owner.on_event(
                        EventType.RECONNECT_STOPPED,
                        state.endpoint,
                        reason=str(error),
                        error=type(error).__name__,
                    )
                    return
                if handshaken:
                    ivl = option("reconnect_ivl")
            if ivl < 0 or option("reconnect_ivl") < 0:
                return
            owner.on_event(EventType.CONNECT_RETRIED, state.endpoint, reconnect_in=ivl / 1000)
            await trio.sleep(ivl / 1000)
            cap = option("reconnect_ivl_max")
            if cap > ivl:
                ivl = min(ivl * 2, cap)
