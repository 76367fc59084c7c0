"""Publish/subscribe: PUB, XPUB, SUB and XSUB (RFC 29, as libzmq 4.3.5 behaves).

Theory of operation
-------------------
**Publishers** (PUB, XPUB) keep a :class:`~zmtp.protocol.subscriptions.SubscriptionTrie` from
topic prefixes to the peers subscribed to them.  Sending a message looks up its first
frame once and queues the message on every matching peer's outbound pipe; a peer whose
pipe is at the high-water mark misses that message and nobody else is held up (RFC 29
"SHALL silently drop"), unless ``xpub_nodrop`` is set, in which case the send waits
until every matching peer has room (libzmq's XPUB_NODROP returns EAGAIN then).

Fan-out is the publisher's cost, so the per-message work is shared where it can be.
The match of the last first frame is remembered while it is the same object and the
subscriptions stay as they are; the distributor remembers the pipes of a peer set it
is given again and how many messages all of them can take before any HWM check is
needed (:meth:`Distributor.publish`); every change of subscriptions, peers or options
forgets both (``_changed``).  And the subscribers' connections, which are handed the
same message objects, encode a batch once between them
(:class:`~zmtp.protocol.framing.SharedEncoding`).

Subscriptions arrive in either format whatever the ZMTP version (specs/libzmq-behaviour.md §3.1):
SUBSCRIBE/CANCEL commands (the engine calls ``_peer_subscribe``/``_peer_cancel``) and
data messages whose first frame starts with ``01``/``00`` (what a 3.0 peer, or a libzmq
XSUB forwarding its application's subscriptions, sends).  Like libzmq's mtrie, a
publisher records *whether* each peer is subscribed to a topic, not how often: a libzmq
SUB sends SUBSCRIBE on every ``subscribe`` but CANCEL only when its own count reaches
zero, so counting again here would leave such a peer subscribed for ever.  The counting
happens on the subscriber side (:class:`~zmtp.protocol.subscriptions.TopicSet`).

An XPUB hands subscriptions to its application as ``01topic``/``00topic`` messages
(specs/libzmq-behaviour.md §5.4):

* by default only a topic's first subscriber and the cancel that leaves it without
  any (and, as in libzmq, a cancel of something that was not subscribed);
* every subscribe with ``xpub_verbose``; every subscribe and every cancel with
  ``xpub_verboser``;
* with ``xpub_manual``, every subscription message, and the trie is left alone: the
  application decides, calling :meth:`XPub.subscribe`/:meth:`XPub.unsubscribe`, which
  apply to the peer that sent the subscription message it received last.

Subscription notices are queued apart from upstream data: they are never subject to
the inbound high-water mark, so a peer's subscriptions always take effect at once even
when the application is not reading, and :meth:`recv` returns queued notices before
data.  When a subscriber's connection ends, its subscriptions are dropped and the XPUB
application gets ``00topic`` for each topic left without subscribers (every topic of
that peer with ``xpub_verboser``).  A connect()ed peer's subscriptions are dropped
with its connection too: the subscriber sends them again on the next one, and a
restarted subscriber may want different topics.

**Subscribers** (SUB, XSUB) count their own subscriptions and tell every publisher
peer: SUBSCRIBE on each subscribe, CANCEL when the last reference goes, as libzmq does.
To a ZMTP 3.1 peer these are commands, to a 3.0 peer ``01``/``00`` data frames
(``Connection.send_subscribe``); over inproc the publisher's hooks are called directly.
The whole set is sent again on every new or restored connection as soon as its
handshake completes.  libzmq only does this when its application next touches the
socket (specs/libzmq-behaviour.md §3.1, "Resend on reconnect needs the application
thread"); doing it at once means no message is lost to a reconnect that the application
did not notice.
Subscriptions are only ever sent to PUB and XPUB peers (libzmq PULL, DEALER and SUB
would show the command body to their application).

A SUB filters what it receives against its subscriptions when the application
receives (so nothing of a topic arrives after unsubscribing from it); an XSUB does not
filter (libzmq 4.3.5 sets ``filter`` only for SUB).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from typing import Any

from ..protocol.errors import LocalProtocolError
from ..protocol.framing import SharedEncoding
from ..protocol.socket_types import SocketType
from ..protocol.subscriptions import Removal, SubscriptionTrie, TopicSet
from ._counters import Counters
from ._errors import InvalidStateError
from ._peer import Peer
from ._pipe import Message, Pipe
from ._routing import Distributor
from ._socket import Socket

__all__ = ["Pub", "Sub", "XPub", "XSub"]

_PUBLISHERS = frozenset({SocketType.PUB, SocketType.XPUB, None})

#: First frames up to this size are remembered with their match (_Publisher._try_send).
_CACHED_TOPIC = 1024


def _topic(topic: bytes | bytearray | memoryview | str) -> bytes:
    """A subscription topic: bytes, or str encoded as UTF-8 (as pyzmq allows)."""
    if isinstance(topic, str):
        return topic.encode("utf-8")
    if not isinstance(topic, bytes | bytearray | memoryview):
        raise TypeError(f"a topic is bytes or str, not {type(topic).__name__}")
    return bytes(topic)


def _split_subscriptions(msg: Message) -> tuple[int, bytes, Message | None] | None:
    """If ``msg`` is a subscription message, return (1 or 0, topic, rest).

    A message is a subscription when its first frame starts with ``01`` (subscribe) or
    ``00`` (cancel).  libzmq's XPUB treats only that first frame as the subscription and
    passes any further frames on as a data message of their own; so do we.
    """
    first = msg[0]
    if not first or first[0] > 1:
        return None
    rest = msg[1:] if len(msg) > 1 else None
    return first[0], bytes(first[1:]), rest


# ---------------------------------------------------------------------- publishers


class _Publisher(Socket):
    """What PUB and XPUB share: the trie, distribution, subscription intake."""

    __slots__ = (
        "_dist",
        "_encodings",
        "_last_peer",
        "_matched",
        "_notices",
        "_requested",
        "_subscriptions",
        "_topic",
    )

    #: Whether subscription notices go to the application (XPUB) or nowhere (PUB).
    _notify_app = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The distributor first: setting the options (in the base class) reads it.
        self._dist = Distributor(Counters())
        super().__init__(*args, **kwargs)  # sets the options, xpub_nodrop among them
        self._dist.counters = self._counters  # count into the socket's own counters
        self._subscriptions: SubscriptionTrie[Peer] = SubscriptionTrie()
        #: Subscription notices for the application, with the peer that caused each
        #: (None for those generated when a peer left).
        self._notices: deque[tuple[Message, Peer | None]] = deque()
        #: ``xpub_manual``: what each peer asked for, to report cancels when it leaves.
        self._requested: SubscriptionTrie[Peer] = SubscriptionTrie()
        #: ``xpub_manual``: the peer whose subscription message was received last.
        self._last_peer: Peer | None = None
        #: Every subscriber's connection is sent the same message objects, usually in
        #: the same batches: the first to encode a batch leaves its bytes for the rest.
        self._encodings = SharedEncoding()
        self._encodings.share(False)  # until a second subscriber connects
        #: The first frame sent last (kept when short) and the trie's match for it:
        #: a publisher often sends one topic object again and again.
        self._topic: object = None
        self._matched: Collection[Peer] = ()

    def _shared_encoding(self) -> SharedEncoding | None:
        return self._encodings

    # --------------------------------------------------------------- sending

    def set_option(self, name: str, value: Any) -> None:
        super().set_option(name, value)
        if name == "xpub_nodrop":
            self._dist.nodrop = self._options[name]
        self._changed()  # the HWMs may have changed

    def _changed(self) -> None:
        """Subscriptions, peers or their pipes changed: forget the cached match and
        the distributor's plan (:meth:`Distributor.publish`)."""
        self._topic = None
        self._matched = ()
        self._dist.invalidate()

    def _count_sharers(self) -> None:
        # One subscriber has nobody to share its encodings with: keep nothing for it.
        self._encodings.share(len(self._peers) > 1)

    def _try_send(self, msg: Message) -> bool:
        # Nobody subscribed: dropped, as RFC 29 says.
        topic = msg[0]
        if topic is self._topic:
            # The same object as last time: the same match (the trie has not changed
            # since, or _changed would have forgotten it).
            return self._dist.publish(self._matched, msg)
        matched = self._subscriptions.match(topic)
        if type(topic) is bytes and len(topic) <= _CACHED_TOPIC:
            self._topic = topic
            self._matched = matched
        return self._dist.publish(matched, msg)

    def _try_send_many(self, batch: list[Message], start: int) -> int:
        """Distribute a batch: one trie match per topic change, one ``put_many`` per
        subscriber (see :meth:`Distributor.send_many`)."""
        self._dist.invalidate()  # the pipes fill apart from publish()'s budget
        return self._dist.send_many(self._subscriptions.match, batch, start)

    # --------------------------------------------------------------- subscriptions in

    def _peer_subscribe(self, peer: Peer, topic: bytes) -> None:
        if peer.out.closed:
            return  # the peer has left already
        self._changed()
        if self._options.get("xpub_manual"):
            if not self._requested.count(topic, peer):
                self._requested.add(topic, peer)
            self._notice(b"\x01", topic, peer)
            return
        subs = self._subscriptions
        # One flag per (topic, peer), as libzmq's mtrie (see the module docstring).
        first = not subs.count(topic, peer) and subs.add(topic, peer)
        if first or self._options.get("xpub_verbose") or self._options.get("xpub_verboser"):
            self._notice(b"\x01", topic, peer)

    def _peer_cancel(self, peer: Peer, topic: bytes) -> None:
        if peer.out.closed:
            return  # the peer has left already
        self._changed()
        if self._options.get("xpub_manual"):
            self._requested.remove(topic, peer, everything=True)
            self._notice(b"\x00", topic, peer)
            return
        result = self._subscriptions.remove(topic, peer, everything=True)
        # libzmq also reports a cancel of something that was not subscribed
        # (specs/libzmq-behaviour.md §5.4: "two cancels -> two 00topic").
        if result is not Removal.REMAINING or self._options.get("xpub_verboser"):
            self._notice(b"\x00", topic, peer)

    def _peer_messages(self, peer: Peer, messages: list[Message]) -> None:
        data: list[Message] | None = None
        for msg in messages:
            sub = _split_subscriptions(msg)
            if sub is None:
                if data is None:
                    data = []
                data.append(msg)
                continue
            flag, topic, rest = sub
            if flag:
                self._peer_subscribe(peer, topic)
            else:
                self._peer_cancel(peer, topic)
            if rest is not None:
                if data is None:
                    data = []
                data.append(rest)
        if data:
            self._upstream(peer, data)

    def _upstream(self, peer: Peer, messages: list[Message]) -> None:
        """Data messages from a subscriber (XPUB: to the application; PUB: dropped)."""

    def _notice(self, flag: bytes, topic: bytes, peer: Peer | None) -> None:
        if not self._notify_app:
            return
        self._notices.append(([flag + topic], peer))
        self._wake_receivers()

    def _forget_peer(self, peer: Peer) -> None:
        """Drop a subscriber's subscriptions and report the topics that lost out."""
        self._changed()
        self._count_sharers()
        if self._last_peer is peer:
            self._last_peer = None
        if self._options.get("xpub_manual"):
            self._subscriptions.remove_key(peer)
            for topic, emptied in self._requested.remove_key(peer):
                if emptied:
                    self._notice(b"\x00", topic, None)
            return
        if not self._notify_app:
            self._subscriptions.remove_key(peer)  # a PUB: nobody to tell
            return
        verboser = self._options.get("xpub_verboser")
        for topic, emptied in self._subscriptions.remove_key(peer):
            if emptied or verboser:
                self._notice(b"\x00", topic, None)

    # --------------------------------------------------------------- peer hooks

    def _detach(self, peer: Peer) -> None:
        self._forget_peer(peer)

    def _disconnected(self, peer: Peer) -> None:
        self._forget_peer(peer)

    def _connected(self, peer: Peer) -> None:
        self._changed()  # a new pipe (an inproc one's HWM is set as it links)
        self._count_sharers()
        welcome = self._options.get("xpub_welcome_msg")
        if welcome:
            # libzmq writes it whatever the HWM; a SUB only sees it if it subscribed
            # to a matching prefix.
            peer.out.put([welcome])


class Pub(_Publisher):
    """PUB: sends each message to the subscribers whose subscription matches it;
    drops a subscriber's copy when its queue is full; discards upstream data."""

    __slots__ = ()

    socket_type = SocketType.PUB
    can_recv = False

    def pipe_readable(self, pipe: Pipe) -> None:
        # Upstream data from an inproc XSUB lands in our inbound pipe directly; a PUB
        # "SHALL silently discard any messages that subscribers send it" (RFC 29).
        pipe.clear()


class XPub(_Publisher):
    """XPUB: a PUB whose application also receives subscriptions (``01topic`` /
    ``00topic``) and upstream data from subscribers."""

    __slots__ = ()

    socket_type = SocketType.XPUB
    _notify_app = True

    def _upstream(self, peer: Peer, messages: list[Message]) -> None:
        peer.inp.put_many(messages)

    def _try_recv(self) -> Message | None:
        if self._notices:
            msg, peer = self._notices.popleft()
            self._last_peer = peer
            return msg
        return self._fq.recv()

    def subscribe(self, topic: bytes | str) -> None:
        """With ``xpub_manual``: subscribe the peer whose subscription message was
        received last to ``topic``.

        Raises:
            InvalidStateError: ``xpub_manual`` is not set.
        """
        self._manual(topic, subscribe=True)

    def unsubscribe(self, topic: bytes | str) -> None:
        """With ``xpub_manual``: cancel that peer's subscription to ``topic``.

        Raises:
            InvalidStateError: ``xpub_manual`` is not set.
        """
        self._manual(topic, subscribe=False)

    def _manual(self, topic: bytes | str, *, subscribe: bool) -> None:
        self._check_open()
        data = _topic(topic)
        if not self._options["xpub_manual"]:
            raise InvalidStateError("XPUB subscribe()/unsubscribe() need xpub_manual")
        peer = self._last_peer
        if peer is None or peer.out.closed:
            return  # that subscriber has left (or the notice came from a leaving one)
        self._changed()
        if subscribe:
            if not self._subscriptions.count(data, peer):
                self._subscriptions.add(data, peer)
        else:
            self._subscriptions.remove(data, peer, everything=True)


# ---------------------------------------------------------------------- subscribers


class _Subscriber(Socket):
    """What SUB and XSUB share: the counted subscription set and telling publishers."""

    __slots__ = ("_dist", "_topics")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._topics = TopicSet()
        self._dist = Distributor(self._counters)  # XSUB: upstream data to every publisher

    def _add_subscription(self, topic: bytes) -> None:
        self._topics.add(topic)
        # libzmq forwards every subscribe (so an XPUB upstream can be verbose about
        # it) but only the cancel that removes the last reference.
        for peer in self._peers:
            self._tell(peer, topic, subscribe=True)

    def _remove_subscription(self, topic: bytes) -> None:
        if self._topics.remove(topic) is Removal.LAST:
            for peer in self._peers:
                self._tell(peer, topic, subscribe=False)

    def _tell(self, peer: Peer, topic: bytes, *, subscribe: bool) -> None:
        """Send one SUBSCRIBE or CANCEL to a publisher peer, if it is connected.

        A peer that is not connected yet gets every subscription when it is.
        """
        if not peer.connected or peer.socket_type not in _PUBLISHERS:
            return
        link = peer.link
        if link is not None:  # inproc: straight into the publisher
            if subscribe:
                link.owner.on_subscribe(link, topic)
            else:
                link.owner.on_cancel(link, topic)
            return
        engine = peer.engine
        if engine is None:
            return
        conn = engine.conn
        try:
            if subscribe:
                conn.send_subscribe(topic)
            else:
                conn.send_cancel(topic)
        except LocalProtocolError:
            return  # the connection is closing; the next one gets the full set
        engine.wake_writer()

    def _connected(self, peer: Peer) -> None:
        # Every new or restored connection gets the whole set at once (see the module
        # docstring: libzmq waits for its application thread).
        for topic in self._topics:
            self._tell(peer, topic, subscribe=True)


class Sub(_Subscriber):
    """SUB: receives the messages whose first frame starts with one of its
    subscriptions (:meth:`subscribe`); cannot send."""

    __slots__ = ()

    socket_type = SocketType.SUB
    can_send = False

    def subscribe(self, topic: bytes | str) -> None:
        """Receive messages whose first frame starts with ``topic`` (``b""``: all).

        Subscriptions are counted: each call needs its own :meth:`unsubscribe`.  A str
        is encoded as UTF-8.
        """
        self._check_open()
        self._add_subscription(_topic(topic))

    def unsubscribe(self, topic: bytes | str) -> None:
        """Undo one :meth:`subscribe` of ``topic`` (nothing if it was not subscribed)."""
        self._check_open()
        self._remove_subscription(_topic(topic))

    @property
    def subscriptions(self) -> list[bytes]:
        """The topics currently subscribed to, sorted."""
        return list(self._topics)

    def _try_recv(self) -> Message | None:
        topics = self._topics
        fq = self._fq
        while True:
            msg = fq.recv()
            if msg is None:
                return None
            if topics.matches(msg[0]):
                return msg

    def _try_recv_many(self, max_messages: int) -> list[Message]:
        out: list[Message] = []
        topics = self._topics
        everything = b"" in topics
        while len(out) < max_messages:
            runs = self._fq.take(max_messages - len(out))
            if not runs:
                break
            for _, msgs in runs:
                if everything:
                    out.extend(msgs)
                else:
                    out.extend([m for m in msgs if topics.matches(m[0])])
        return out


class XSub(_Subscriber):
    """XSUB: subscribes by sending ``01topic`` (and cancels with ``00topic``); every
    other message goes upstream to all publishers.  Receives without filtering."""

    __slots__ = ()

    socket_type = SocketType.XSUB

    def _try_send(self, msg: Message) -> bool:
        sub = _split_subscriptions(msg)
        if sub is not None:
            flag, topic, rest = sub
            if flag:
                self._add_subscription(topic)
            else:
                self._remove_subscription(topic)
            if rest is None:
                return True
            msg = rest
        # Upstream data to every publisher; a full queue misses it (RFC 29: XSUB
        # "SHALL NOT block on sending").
        return self._dist.send(self._peers, msg)

    def _try_recv(self) -> Message | None:
        return self._fq.recv()

    def _try_recv_many(self, max_messages: int) -> list[Message]:
        # Nothing to filter: whole runs from the fair queue (a forwarder's hot path),
        # not one _try_recv per message.
        return self._fq.recv_many(max_messages)
