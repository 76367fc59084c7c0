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

Storage
~~~~~~~
A publisher may hold hundreds of thousands of subscriptions for as long as it runs, so
the tree is kept where Python's cyclic garbage collector does not look: a collection
walks every container object it tracks, and a tree of node objects, children dicts and
subscriber sets made each full collection walk a quarter of a million objects for
100,000 subscriptions.  Instead:

* a node is a row of four parallel lists (its edge label, a ``{first byte: child}``
  dict, its parent, its subscriber group), so the children dicts hold only ints, which
  CPython does not track; freed rows are reused, the lists start again from the
  root alone whenever the last subscription goes, and the tree is made again (short
  lists) when a leaving subscriber takes most of it along;
* subscribers get small ids (the lowest free one), and a node refers to a *group*, one
  per distinct set of subscribers in use: its keys (the set ``match`` returns) and its
  ids as a bitmask.  Nodes with the same subscribers share a group, so 100,000 topics
  of one subscriber are one set, not 100,000;
* per subscriber, ``{topic: node}`` (and the references beyond the first, for counted
  subscriptions) says what to remove when it leaves without walking the tree: a
  topic's node keeps its row while the topic has subscribers.

The tracked objects are then a fixed few plus one set per group and one dict per
subscriber, whatever the number of topics.

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
import heapq
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

    __slots__ = (
        "_depth",
        "_extra_of",
        "_free_groups",
        "_free_nodes",
        "_free_sids",
        "_gid_of",
        "_gkeys",
        "_gmask",
        "_grefs",
        "_group",
        "_key_of",
        "_kids",
        "_label",
        "_parent",
        "_sid_of",
        "_topics",
        "_topics_of",
    )

    def __init__(self) -> None:
        # Nodes: one row of these lists each, node 0 the root (see "Storage").
        #: The edge from the parent (empty at the root and in a free slot).
        self._label: list[bytes] = [b""]
        #: First byte of a child's label -> the child (None: no children).
        self._kids: list[dict[int, int] | None] = [None]
        #: The parent (-1 at the root and in a free slot).
        self._parent: list[int] = [-1]
        #: The group of the node's subscribers (None: nobody subscribes to exactly it).
        self._group: list[int | None] = [None]
        #: Free node slots, reused before the lists grow.
        self._free_nodes: list[int] = []
        # Groups: distinct sets of subscribers, shared by the nodes that have them.
        #: The group's keys: what match() returns (None: a free slot).
        self._gkeys: list[set[K] | None] = []
        #: The group's subscriber ids as a bitmask (bit ``sid``), its identity.
        self._gmask: list[int] = []
        #: How many nodes have the group.
        self._grefs: list[int] = []
        #: Bitmask -> group, to share a group instead of making an equal one.
        self._gid_of: dict[int, int] = {}
        self._free_groups: list[int] = []
        # Subscribers: small ids, reused lowest first (they are the groups' bits).
        self._sid_of: dict[K, int] = {}
        self._key_of: list[K | None] = []
        #: Per subscriber id: topic -> its node (None: a free id).
        self._topics_of: list[dict[bytes, int] | None] = []
        #: Per subscriber id: topic -> references beyond the first (None or empty: none).
        self._extra_of: list[dict[bytes, int] | None] = []
        self._free_sids: list[int] = []
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
        return node >= 0 and self._group[node] is not None

    def count(self, topic: BytesLike, key: K) -> int:
        """How many times ``key`` subscribed to ``topic`` (0 if not subscribed)."""
        sid = self._sid_of.get(key)
        if sid is None:
            return 0
        topic = _as_bytes(topic)
        mine = self._topics_of[sid]
        if mine is None or topic not in mine:
            return 0
        extra = self._extra_of[sid]
        return 1 + extra.get(topic, 0) if extra else 1

    def subscribers(self, topic: BytesLike) -> Set[K]:
        """The keys subscribed to exactly ``topic`` (a read-only view; do not keep it)."""
        node = self._find(_as_bytes(topic))
        g = self._group[node] if node >= 0 else None
        if g is None:
            return _EMPTY  # type: ignore[return-value]
        keys = self._gkeys[g]
        assert keys is not None
        return keys

    def topics(self) -> list[bytes]:
        """Every distinct topic with at least one subscriber, sorted."""
        out: list[bytes] = []
        labels, kids_of, group = self._label, self._kids, self._group
        stack: list[tuple[int, bytes]] = [(0, b"")]
        while stack:
            node, prefix = stack.pop()
            prefix += labels[node]
            if group[node] is not None:
                out.append(prefix)
            kids = kids_of[node]
            if kids:
                stack.extend((child, prefix) for child in kids.values())
        out.sort()
        return out

    def keys(self) -> list[K]:
        """Every subscriber with at least one subscription."""
        return list(self._sid_of)

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
        buf = data if type(data) is bytes else self._frame(data)
        group = self._group
        labels = self._label
        kids_of = self._kids
        found = group[0]
        extra: list[int] | None = None
        kids = kids_of[0]
        i = 0
        n = len(buf)
        # The hot path of publishing: one dict lookup per edge, one startswith per
        # multi-byte edge, no per-subscription work.
        while kids and i < n:
            child = kids.get(buf[i])
            if child is None:
                break
            label = labels[child]
            k = len(label)
            if k > 1 and not buf.startswith(label, i):
                break
            i += k
            g = group[child]
            if g is not None:
                if found is None:
                    found = g
                elif extra is None:
                    extra = [g]
                else:
                    extra.append(g)
            kids = kids_of[child]
        if found is None:
            return _EMPTY  # type: ignore[return-value]
        gkeys = self._gkeys
        keys = gkeys[found]
        assert keys is not None
        if extra is None:
            return keys
        result = set(keys)
        for g in extra:
            more = gkeys[g]
            assert more is not None
            result |= more
        return result

    def matches(self, data: BytesLike) -> bool:
        """True if any subscription is a prefix of ``data`` (stops at the first)."""
        group = self._group
        if group[0] is not None:
            return True
        buf = data if type(data) is bytes else self._frame(data)
        labels = self._label
        kids_of = self._kids
        kids = kids_of[0]
        i = 0
        n = len(buf)
        while kids and i < n:
            child = kids.get(buf[i])
            if child is None:
                return False
            label = labels[child]
            k = len(label)
            if k > 1 and not buf.startswith(label, i):
                return False
            if group[child] is not None:
                return True
            i += k
            kids = kids_of[child]
        return False

    # ------------------------------------------------------------------ updates

    def add(self, topic: BytesLike, key: K) -> bool:
        """Subscribe ``key`` to ``topic`` once more.

        Returns:
            True if ``topic`` had no subscriber at all before (libzmq's "first added").
        """
        topic = _as_bytes(topic)
        sid = self._sid_of.get(key)
        if sid is None:
            sid = self._new_sid(key)
        mine = self._topics_of[sid]
        assert mine is not None
        if topic in mine:
            extra = self._extra_of[sid]
            if extra is None:
                extra = self._extra_of[sid] = {}
            extra[topic] = extra.get(topic, 0) + 1
            return False
        node = self._insert(topic)
        mine[topic] = node
        old = self._group[node]
        if old is None:
            self._topics += 1
            self._regroup(node, None, 1 << sid, key, add=True)
            return True
        self._regroup(node, old, self._gmask[old] | 1 << sid, key, add=True)
        return False

    def remove(self, topic: BytesLike, key: K, *, everything: bool = False) -> Removal:
        """Take one of ``key``'s subscriptions to ``topic`` away (all with ``everything``).

        Returns:
            What happened; :attr:`Removal.REMAINING` also when ``key`` itself still
            holds references to ``topic``.
        """
        topic = _as_bytes(topic)
        sid = self._sid_of.get(key)
        if sid is None:
            return Removal.NOT_FOUND
        mine = self._topics_of[sid]
        assert mine is not None
        node = mine.get(topic)
        if node is None:
            return Removal.NOT_FOUND
        extra = self._extra_of[sid]
        if extra:
            more = extra.pop(topic, 0)
            if more and not everything:
                if more > 1:
                    extra[topic] = more - 1
                return Removal.REMAINING
        del mine[topic]
        emptied = self._leave(node, sid)
        if not mine:
            self._free_sid(sid)
        return Removal.LAST if emptied else Removal.REMAINING

    def remove_key(self, key: K) -> list[tuple[bytes, bool]]:
        """Remove every subscription of ``key`` (a subscriber left).

        Returns:
            ``(topic, now_empty)`` for each topic ``key`` was subscribed to, sorted;
            ``now_empty`` is True if nobody else is subscribed to it.
        """
        sid = self._sid_of.get(key)
        if sid is None:
            return []
        mine = self._topics_of[sid]
        assert mine is not None
        if len(self._sid_of) == 1:
            # The only subscriber (a publisher's one peer leaving): everything goes.
            gone = [(topic, True) for topic in sorted(mine)]
            self.clear()
            return gone
        # The nodes are found without walking the tree (a topic's node keeps its row
        # while the topic has subscribers), and pruning waits until every group is
        # updated (the others keep subscriptions, so the tree does not empty).
        group, gmask, grefs = self._group, self._gmask, self._grefs
        key_of_sid = self._key_of[sid]
        bit = 1 << sid
        out: list[tuple[bytes, bool]] = []
        emptied: list[int] = []
        for topic in sorted(mine):
            node = mine[topic]
            old = group[node]
            assert old is not None
            mask = gmask[old] ^ bit
            if mask:
                self._regroup(node, old, mask, key_of_sid, add=False)  # type: ignore[arg-type]
                out.append((topic, False))
                continue
            group[node] = None
            if grefs[old] > 1:
                grefs[old] -= 1
            else:
                self._release(old)
            emptied.append(node)
            out.append((topic, True))
        self._topics -= len(emptied)
        self._free_sid(sid)
        if len(emptied) > 2 * self._topics:
            self._rebuild()  # most of the tree went: cheaper than pruning it
            return out
        parent_of = self._parent
        for node in emptied:
            if parent_of[node] >= 0:  # not freed by pruning an earlier one
                self._prune(node)
        return out

    def clear(self) -> None:
        """Forget everything."""
        self._reset_nodes()
        self._sid_of.clear()
        self._key_of.clear()
        self._topics_of.clear()
        self._extra_of.clear()
        self._free_sids.clear()

    # ------------------------------------------------------------------ subscribers

    def _new_sid(self, key: K) -> int:
        """A subscriber id for ``key``: the lowest free one, so group masks stay short."""
        if self._free_sids:
            sid = heapq.heappop(self._free_sids)
            self._key_of[sid] = key
            self._topics_of[sid] = {}
        else:
            sid = len(self._key_of)
            self._key_of.append(key)
            self._topics_of.append({})
            self._extra_of.append(None)
        self._sid_of[key] = sid
        return sid

    def _free_sid(self, sid: int) -> None:
        """Forget a subscriber that has no subscription left."""
        key = self._key_of[sid]
        del self._sid_of[key]  # type: ignore[arg-type]
        if not self._sid_of:
            # Nobody left: start again from id 0 rather than keep a free list.
            self._key_of.clear()
            self._topics_of.clear()
            self._extra_of.clear()
            self._free_sids.clear()
            return
        self._key_of[sid] = None
        self._topics_of[sid] = None
        self._extra_of[sid] = None
        heapq.heappush(self._free_sids, sid)

    # ------------------------------------------------------------------ groups

    def _regroup(self, node: int, old: int | None, mask: int, key: K, *, add: bool) -> None:
        """Give ``node`` the group of subscribers ``mask`` (non-zero), which is group
        ``old`` with ``key`` added or removed."""
        gid_of = self._gid_of
        new = gid_of.get(mask)
        if new is None:
            if old is not None and self._grefs[old] == 1:
                # The node alone has the old group: change it in place (no copy, so
                # subscribing many peers to one topic costs each only its own).
                keys = self._gkeys[old]
                assert keys is not None
                del gid_of[self._gmask[old]]
                gid_of[mask] = old
                self._gmask[old] = mask
                if add:
                    keys.add(key)
                else:
                    keys.discard(key)
                return
            if old is None:
                keys = {key}
            else:
                old_keys = self._gkeys[old]
                assert old_keys is not None
                keys = set(old_keys)
                if add:
                    keys.add(key)
                else:
                    keys.discard(key)
            new = self._new_group(mask, keys)
        self._grefs[new] += 1
        self._group[node] = new
        if old is not None:
            self._release(old)

    def _new_group(self, mask: int, keys: set[K]) -> int:
        if self._free_groups:
            g = self._free_groups.pop()
            self._gkeys[g] = keys
            self._gmask[g] = mask
        else:
            g = len(self._gkeys)
            self._gkeys.append(keys)
            self._gmask.append(mask)
            self._grefs.append(0)
        self._gid_of[mask] = g
        return g

    def _release(self, g: int) -> None:
        """One node fewer has group ``g``; free it when none has."""
        refs = self._grefs[g] - 1
        self._grefs[g] = refs
        if not refs:
            del self._gid_of[self._gmask[g]]
            self._gkeys[g] = None
            self._gmask[g] = 0
            self._free_groups.append(g)

    def _leave(self, node: int, sid: int) -> bool:
        """Take subscriber ``sid`` off ``node``; prune; True if the topic emptied."""
        old = self._group[node]
        assert old is not None
        mask = self._gmask[old] ^ (1 << sid)
        if mask:
            self._regroup(node, old, mask, self._key_of[sid], add=False)  # type: ignore[arg-type]
            return False
        self._group[node] = None
        self._release(old)
        self._topics -= 1
        if not self._topics:
            self._reset_nodes()  # no subscriber anywhere: the tree is the root alone
            return True
        self._prune(node)
        return True

    # ------------------------------------------------------------------ tree

    def _reset_nodes(self) -> None:
        """An empty tree: the root alone, no groups (the storage shrinks back)."""
        self._label = [b""]
        self._kids = [None]
        self._parent = [-1]
        self._group = [None]
        self._free_nodes = []
        self._gkeys = []
        self._gmask = []
        self._grefs = []
        self._gid_of = {}
        self._free_groups = []
        self._topics = 0
        self._depth = 0

    def _rebuild(self) -> None:
        """Make the tree again from the topics that have subscribers (their groups
        unchanged): the node lists end no longer than the tree needs."""
        old_group = self._group
        self._label = [b""]
        self._kids = [None]
        self._parent = [-1]
        group: list[int | None] = [None]
        self._group = group
        self._free_nodes = []
        self._depth = 0
        moved: dict[int, int] = {}
        for mine in self._topics_of:
            if not mine:
                continue
            for topic, old in mine.items():
                node = moved.get(old)
                if node is None:
                    node = moved[old] = self._insert(topic)
                    group[node] = old_group[old]
                mine[topic] = node  # an existing key: the dict does not change size

    def _alloc(self, label: bytes, parent: int) -> int:
        """A new node (a free slot if there is one) without children or subscribers."""
        if self._free_nodes:
            node = self._free_nodes.pop()
            self._label[node] = label
            self._parent[node] = parent
            return node
        node = len(self._label)
        self._label.append(label)
        self._kids.append(None)
        self._parent.append(parent)
        self._group.append(None)
        return node

    def _free(self, node: int) -> None:
        self._label[node] = b""
        self._kids[node] = None
        self._parent[node] = -1
        self._free_nodes.append(node)

    def _find(self, topic: bytes) -> int:
        """The node spelling exactly ``topic``, or -1."""
        labels, kids_of = self._label, self._kids
        node = 0
        i = 0
        n = len(topic)
        while i < n:
            kids = kids_of[node]
            if not kids:
                return -1
            child = kids.get(topic[i])
            if child is None or not topic.startswith(labels[child], i):
                return -1
            i += len(labels[child])
            node = child
        return node

    def _insert(self, topic: bytes) -> int:
        """The node for ``topic``, created (splitting an edge if needed)."""
        self._depth = max(self._depth, len(topic))
        labels, kids_of = self._label, self._kids
        node = 0
        i = 0
        n = len(topic)
        while i < n:
            kids = kids_of[node]
            if kids is None:
                kids = kids_of[node] = {}
            child = kids.get(topic[i])
            if child is None:
                leaf = self._alloc(topic[i:], node)
                kids[topic[i]] = leaf
                return leaf
            label = labels[child]
            if topic.startswith(label, i):  # the whole edge: on down (the usual case)
                node = child
                i += len(label)
                continue
            # Length of the common prefix of the edge and the rest of the topic.
            j = 1
            m = min(len(label), n - i)
            while j < m and label[j] == topic[i + j]:
                j += 1
            # Split the edge: node -> mid (label[:j]) -> child (label[j:]).  The child
            # keeps its slot, so the subscribers' topic -> node entries stay right.
            mid = self._alloc(label[:j], node)
            rest = label[j:]
            labels[child] = rest
            self._parent[child] = mid
            kids_of[mid] = {rest[0]: child}
            kids[topic[i]] = mid
            node = mid
            i += j
        return node

    def _prune(self, node: int) -> None:
        """Restore the radix invariant above a node that lost its last subscriber: a
        non-root node without subscribers has at least two children; a childless one
        is removed, and one with a single child is merged into it."""
        labels, kids_of, parent_of, group = self._label, self._kids, self._parent, self._group
        while node and group[node] is None:
            parent = parent_of[node]
            siblings = kids_of[parent]
            assert siblings is not None
            kids = kids_of[node]
            if not kids:
                del siblings[labels[node][0]]
                if not siblings:
                    kids_of[parent] = None
                self._free(node)
                node = parent
                continue
            if len(kids) == 1:
                # The only child takes the node's place (and keeps its own slot).
                (only,) = kids.values()
                labels[only] = labels[node] + labels[only]
                parent_of[only] = parent
                siblings[labels[only][0]] = only
                self._free(node)
            return

    def _check(self) -> None:
        """Assert the structural invariants (for tests)."""
        labels, kids_of, parent_of, group = self._label, self._kids, self._parent, self._group
        size = len(labels)
        assert len(kids_of) == len(parent_of) == len(group) == size
        free = set(self._free_nodes)
        assert len(free) == len(self._free_nodes) and 0 not in free
        for node in free:
            assert not labels[node] and kids_of[node] is None and group[node] is None
            assert parent_of[node] == -1
        # Every live node is reached from the root exactly once.
        seen: set[int] = set()
        refs: dict[int, int] = {}
        depth = 0
        stack = [(0, 0)]
        while stack:
            node, length = stack.pop()
            assert node not in seen and node not in free
            seen.add(node)
            length += len(labels[node])
            depth = max(depth, length)
            g = group[node]
            kids = kids_of[node]
            if g is not None:
                refs[g] = refs.get(g, 0) + 1
            if node:
                assert labels[node], "empty edge label"
                assert g is not None or (kids and len(kids) >= 2), (
                    "a node without subscribers must branch"
                )
            if kids is not None:
                assert kids, "empty children dict left behind"
                for first, child in kids.items():
                    assert labels[child][0] == first and parent_of[child] == node
                    stack.append((child, length))
        assert len(seen) + len(free) == size, "a node slot neither live nor free"
        assert sum(refs.values()) == self._topics
        assert depth <= self._depth
        # Groups: counted right, shared (one per distinct set), their keys their bits.
        for g, keys in enumerate(self._gkeys):
            if keys is None:
                assert g in self._free_groups and g not in refs
                continue
            assert self._grefs[g] == refs.get(g, 0) > 0
            mask = self._gmask[g]
            assert self._gid_of[mask] == g
            assert keys == {self._key_of[s] for s in range(mask.bit_length()) if mask >> s & 1}
        assert len(self._gid_of) == len(refs)
        # Subscribers: each topic's node spells it and has the subscriber's bit.
        assert len(self._sid_of) + len(self._free_sids) == len(self._key_of)
        for key, sid in self._sid_of.items():
            assert self._key_of[sid] is key
            mine = self._topics_of[sid]
            assert mine, "a subscriber without subscriptions left behind"
            for topic, node in mine.items():
                assert self._find(topic) == node
                g = group[node]
                assert g is not None and self._gmask[g] >> sid & 1
            extra = self._extra_of[sid]
            assert not extra or all(c > 0 and t in mine for t, c in extra.items())
        for sid in self._free_sids:
            assert self._key_of[sid] is None and self._topics_of[sid] is None
        pairs = 0
        for g, n in refs.items():
            keys = self._gkeys[g]
            assert keys is not None
            pairs += n * len(keys)
        assert pairs == sum(len(m) for m in self._topics_of if m is not None)


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
