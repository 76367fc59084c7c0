"""Subscription bookkeeping for pub/sub, sans-IO: which subscribers want a message.

Theory of operation
-------------------
A ZeroMQ subscription is a byte string; a message matches it when the subscription is
a prefix of the message's first frame (RFC 29: "a binary comparison of the subscription
against the start of the first frame").  The empty subscription matches everything.

A publisher asks, for every message it sends, *which subscribers match this frame*.
Scanning every subscription per message would make publishing cost grow with the
number of topics and subscribers, so :class:`SubscriptionTrie` stores subscriptions in
a **radix tree** (a prefix trie whose single-child chains are merged into one edge):
matching walks one path from the root along the frame's bytes and collects the
subscribers of every node it passes.  The cost is bounded by the length of the longest
subscription that is a prefix of the frame, whatever the number of topics or
subscribers; only the result grows with the number of matching subscribers.

Each node keeps the *set* of subscribers whose subscription ends there; the
per-subscriber counts live beside the tree in one dict per subscriber, which also
makes "remove everything of this subscriber" (a peer leaving) cost only that
subscriber's topics.

Counting
~~~~~~~~
Subscriptions are counted (RFC 37: subscribing to ``A`` twice needs two cancels), but
*where* they are counted matters for interop, so both policies are offered:

* :meth:`SubscriptionTrie.remove` takes one reference away;
  ``remove(..., everything=True)`` drops the subscriber's subscription to that topic
  whatever its count.
* libzmq's SUB counts its own subscriptions, sends SUBSCRIBE on *every* subscribe but
  CANCEL only when the last reference goes, and its XPUB keeps one flag per (topic,
  peer) (``src/mtrie.cpp``).  The socket layer follows both halves, so publishers use
  ``everything=True`` and subscribers use a counted :class:`TopicSet`.

Nothing here knows about sockets, peers or I/O: subscriber keys are any hashable value.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterator, Set
from typing import Generic, TypeVar

from ._buffers import BytesLike

__all__ = ["Removal", "SubscriptionTrie", "TopicSet"]

K = TypeVar("K", bound=Hashable)

_EMPTY: frozenset[object] = frozenset()


class Removal(enum.Enum):
    """What a removal did (libzmq's ``mtrie_t::rm_result``)."""

    #: The subscriber had no such subscription; nothing changed.
    NOT_FOUND = "not_found"
    #: It was removed and the topic now has no subscriber at all.
    LAST = "last"
    #: It was removed (or its count decreased) and the topic still has subscribers.
    REMAINING = "remaining"


class _Node:
    """A radix-tree node.  ``label`` is the edge from the parent (empty at the root);
    ``children`` are keyed by the first byte of their label."""

    __slots__ = ("children", "keys", "label")

    def __init__(self, label: bytes) -> None:
        self.label = label
        self.children: dict[int, _Node] | None = None
        self.keys: set[object] | None = None


def _as_bytes(data: BytesLike) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, str):
        raise TypeError("topics are bytes, not str (encode it first)")
    return bytes(data)


class SubscriptionTrie(Generic[K]):
    """Counted subscriptions of many subscribers, matched by prefix.

    ``add(topic, key)`` subscribes ``key`` to ``topic``; ``match(frame)`` returns every
    key with a subscription that is a prefix of ``frame``.
    """

    def __init__(self) -> None:
        self._root = _Node(b"")
        #: key -> {topic: count}; the counts, and each key's topics for remove_key().
        self._by_key: dict[K, dict[bytes, int]] = {}
        #: Number of distinct topics with at least one subscriber.
        self._topics = 0
        #: Upper bound on the length of any stored topic (reset when the trie empties):
        #: a zero-copy memoryview frame is copied only this far for matching.
        self._depth = 0

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        """Number of distinct topics that have at least one subscriber."""
        return self._topics

    def __bool__(self) -> bool:
        return self._topics > 0

    def __contains__(self, topic: object) -> bool:
        """True if some subscriber is subscribed to exactly ``topic``."""
        if not isinstance(topic, bytes | bytearray | memoryview):
            return False
        node = self._find(bytes(topic))
        return node is not None and bool(node.keys)

    def count(self, topic: BytesLike, key: K) -> int:
        """How many times ``key`` subscribed to ``topic`` (0 if not subscribed)."""
        topics = self._by_key.get(key)
        return topics.get(_as_bytes(topic), 0) if topics else 0

    def subscribers(self, topic: BytesLike) -> Set[K]:
        """The keys subscribed to exactly ``topic`` (a read-only view; do not keep it)."""
        node = self._find(_as_bytes(topic))
        if node is None or not node.keys:
            return _EMPTY  # type: ignore[return-value]
        return node.keys  # type: ignore[return-value]

    def topics(self) -> list[bytes]:
        """Every distinct topic with at least one subscriber, sorted."""
        out: list[bytes] = []
        stack: list[tuple[_Node, bytes]] = [(self._root, b"")]
        while stack:
            node, prefix = stack.pop()
            prefix += node.label
            if node.keys:
                out.append(prefix)
            if node.children:
                stack.extend((child, prefix) for child in node.children.values())
        out.sort()
        return out

    def keys(self) -> list[K]:
        """Every subscriber with at least one subscription."""
        return list(self._by_key)

    def _frame(self, data: BytesLike) -> bytes:
        # A zero-copy memoryview frame is copied only as far as any topic reaches.
        if type(data) is bytes:
            return data
        return bytes(memoryview(data)[: self._depth])

    def match(self, data: BytesLike) -> Set[K]:
        """Every key with a subscription that is a prefix of ``data``.

        The result may be an internal set: iterate it, do not keep or modify it, and
        do not change the trie while iterating.
        """
        buf = self._frame(data)
        found = self._root.keys
        extra: list[set[object]] | None = None
        children = self._root.children
        i = 0
        n = len(buf)
        # The hot path of publishing: one dict lookup per edge, one startswith per
        # multi-byte edge, no per-subscription work.
        while children and i < n:
            child = children.get(buf[i])
            if child is None:
                break
            label = child.label
            if len(label) > 1 and not buf.startswith(label, i):
                break
            i += len(label)
            if child.keys:
                if not found:
                    found = child.keys
                elif extra is None:
                    extra = [child.keys]
                else:
                    extra.append(child.keys)
            children = child.children
        if extra is None:
            return found if found else _EMPTY  # type: ignore[return-value]
        assert found is not None
        result = set(found)
        for keys in extra:
            result |= keys
        return result  # type: ignore[return-value]

    def matches(self, data: BytesLike) -> bool:
        """True if any subscription is a prefix of ``data`` (stops at the first)."""
        if self._root.keys:
            return True
        buf = self._frame(data)
        children = self._root.children
        i = 0
        n = len(buf)
        while children and i < n:
            child = children.get(buf[i])
            if child is None:
                return False
            label = child.label
            if len(label) > 1 and not buf.startswith(label, i):
                return False
            if child.keys:
                return True
            i += len(label)
            children = child.children
        return False

    # ------------------------------------------------------------------ updates

    def add(self, topic: BytesLike, key: K) -> bool:
        """Subscribe ``key`` to ``topic`` once more.

        Returns:
            True if ``topic`` had no subscriber at all before (libzmq's "first added").
        """
        topic = _as_bytes(topic)
        topics = self._by_key.get(key)
        if topics is None:
            topics = self._by_key[key] = {}
        count = topics.get(topic, 0)
        topics[topic] = count + 1
        if count:
            return False
        node = self._insert(topic)
        if node.keys is None:
            node.keys = set()
        first = not node.keys
        node.keys.add(key)
        if first:
            self._topics += 1
        return first

    def remove(self, topic: BytesLike, key: K, *, everything: bool = False) -> Removal:
        """Take one of ``key``'s subscriptions to ``topic`` away (all with ``everything``).

        Returns:
            What happened; :attr:`Removal.REMAINING` also when ``key`` itself still
            holds references to ``topic``.
        """
        topic = _as_bytes(topic)
        topics = self._by_key.get(key)
        count = topics.get(topic, 0) if topics else 0
        if not count:
            return Removal.NOT_FOUND
        assert topics is not None
        if count > 1 and not everything:
            topics[topic] = count - 1
            return Removal.REMAINING
        del topics[topic]
        if not topics:
            del self._by_key[key]
        return Removal.LAST if self._unlink(topic, key) else Removal.REMAINING

    def remove_key(self, key: K) -> list[tuple[bytes, bool]]:
        """Remove every subscription of ``key`` (a subscriber left).

        Returns:
            ``(topic, now_empty)`` for each topic ``key`` was subscribed to, sorted;
            ``now_empty`` is True if nobody else is subscribed to it.
        """
        topics = self._by_key.pop(key, None)
        if not topics:
            return []
        return [(topic, self._unlink(topic, key)) for topic in sorted(topics)]

    def clear(self) -> None:
        """Forget everything."""
        self._root = _Node(b"")
        self._by_key.clear()
        self._topics = 0
        self._depth = 0

    # ------------------------------------------------------------------ tree

    def _find(self, topic: bytes) -> _Node | None:
        node = self._root
        i = 0
        n = len(topic)
        while i < n:
            if not node.children:
                return None
            child = node.children.get(topic[i])
            if child is None or not topic.startswith(child.label, i):
                return None
            i += len(child.label)
            node = child
        return node if i == n else None

    def _insert(self, topic: bytes) -> _Node:
        """The node for ``topic``, created (splitting an edge if needed)."""
        self._depth = max(self._depth, len(topic))
        node = self._root
        i = 0
        n = len(topic)
        while i < n:
            children = node.children
            if children is None:
                children = node.children = {}
            child = children.get(topic[i])
            if child is None:
                leaf = _Node(topic[i:])
                children[topic[i]] = leaf
                return leaf
            label = child.label
            # Length of the common prefix of the edge and the rest of the topic.
            j = 1
            m = min(len(label), n - i)
            while j < m and label[j] == topic[i + j]:
                j += 1
            if j == len(label):
                node = child
                i += j
                continue
            # Split the edge: node -> mid (label[:j]) -> child (label[j:]).
            mid = _Node(label[:j])
            child.label = label[j:]
            mid.children = {child.label[0]: child}
            children[topic[i]] = mid
            node = mid
            i += j
        return node

    def _unlink(self, topic: bytes, key: K) -> bool:
        """Remove ``key`` from ``topic``'s node; prune; return True if the topic emptied."""
        path: list[_Node] = [self._root]
        node = self._root
        i = 0
        n = len(topic)
        while i < n:
            assert node.children is not None
            node = node.children[topic[i]]
            i += len(node.label)
            path.append(node)
        assert node.keys is not None
        node.keys.discard(key)
        if node.keys:
            return False
        node.keys = None
        self._topics -= 1
        if not self._topics:
            self._depth = 0
        # Restore the radix invariant along the path: a non-root node without keys
        # has at least two children; a childless one without keys is removed.
        for depth in range(len(path) - 1, 0, -1):
            node = path[depth]
            if node.keys:
                break
            parent = path[depth - 1]
            assert parent.children is not None
            if not node.children:
                del parent.children[node.label[0]]
                if not parent.children:
                    parent.children = None
                continue
            if len(node.children) == 1:
                (only,) = node.children.values()
                only.label = node.label + only.label
                parent.children[only.label[0]] = only
            break
        return True

    def _check(self) -> None:
        """Assert the structural invariants (for tests)."""
        total = 0
        stack = [(self._root, True)]
        while stack:
            node, is_root = stack.pop()
            if node.keys is not None:
                assert node.keys, "empty key set left behind"
                total += 1
            if not is_root:
                assert node.label, "empty edge label"
                assert node.keys or (node.children and len(node.children) >= 2), (
                    "a node without subscribers must branch"
                )
            if node.children is not None:
                assert node.children, "empty children dict left behind"
                for first, child in node.children.items():
                    assert child.label[0] == first
                    stack.append((child, False))
        assert total == self._topics
        for topics in self._by_key.values():
            assert topics and all(c > 0 for c in topics.values())


class TopicSet:
    """One subscriber's own counted subscriptions (what a SUB or XSUB keeps).

    ``add`` reports whether the topic is new and ``remove`` whether its last reference
    went, which is when libzmq sends SUBSCRIBE (each time) and CANCEL (last time).
    """

    __slots__ = ("_trie",)

    def __init__(self) -> None:
        self._trie: SubscriptionTrie[None] = SubscriptionTrie()

    def add(self, topic: BytesLike) -> bool:
        """Count one more subscription to ``topic``; True if it was not subscribed."""
        return self._trie.add(topic, None)

    def remove(self, topic: BytesLike) -> Removal:
        """Count one subscription less; :attr:`Removal.LAST` when it reaches zero."""
        return self._trie.remove(topic, None)

    def count(self, topic: BytesLike) -> int:
        """How many references ``topic`` holds."""
        return self._trie.count(topic, None)

    def matches(self, data: BytesLike) -> bool:
        """True if some subscription is a prefix of ``data``."""
        return self._trie.matches(data)

    def __contains__(self, topic: object) -> bool:
        return topic in self._trie

    def __iter__(self) -> Iterator[bytes]:
        """The distinct topics, sorted."""
        return iter(self._trie.topics())

    def __len__(self) -> int:
        return len(self._trie)

    def __bool__(self) -> bool:
        return bool(self._trie)
