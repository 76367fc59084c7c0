"""The subscription trie against a naive model, and its documented behaviour."""

from __future__ import annotations

import gc
import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from zmtp.protocol.subscriptions import Removal, SubscriptionTrie, TopicSet

# A tiny alphabet makes topics share prefixes, split edges and merge them again.
topics = st.binary(max_size=6).map(lambda b: bytes(x % 3 + 0x61 for x in b))
frames = st.binary(max_size=9).map(lambda b: bytes(x % 3 + 0x61 for x in b))
keys = st.sampled_from(["p1", "p2", "p3", "p4"])


class NaiveModel:
    """Counted (topic, key) pairs; matching scans every subscription."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[bytes, str]] = Counter()

    def subscribers(self, topic: bytes) -> set[str]:
        return {k for (t, k), c in self.counts.items() if t == topic and c}

    def match(self, data: bytes) -> set[str]:
        return {k for (t, k), c in self.counts.items() if c and data.startswith(t)}


class TrieMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.trie: SubscriptionTrie[str] = SubscriptionTrie()
        self.model = NaiveModel()

    @rule(topic=topics, key=keys)
    def add(self, topic: bytes, key: str) -> None:
        expect_first = not self.model.subscribers(topic)
        assert self.trie.add(topic, key) is expect_first
        self.model.counts[topic, key] += 1

    @rule(topic=topics, key=keys, everything=st.booleans())
    def remove(self, topic: bytes, key: str, everything: bool) -> None:
        count = self.model.counts[topic, key]
        result = self.trie.remove(topic, key, everything=everything)
        if not count:
            assert result is Removal.NOT_FOUND
            return
        self.model.counts[topic, key] = 0 if everything else count - 1
        expected = Removal.REMAINING if self.model.subscribers(topic) else Removal.LAST
        assert result is expected

    @rule(key=keys)
    def remove_key(self, key: str) -> None:
        mine = sorted(t for (t, k), c in self.model.counts.items() if k == key and c)
        for t in mine:
            self.model.counts[t, key] = 0
        result = self.trie.remove_key(key)
        assert result == [(t, not self.model.subscribers(t)) for t in mine]

    @rule(data=frames)
    def match(self, data: bytes) -> None:
        expected = self.model.match(data)
        assert set(self.trie.match(data)) == expected
        assert self.trie.matches(data) is bool(expected)
        # Zero-copy frames take the same path as bytes.
        assert set(self.trie.match(memoryview(data))) == expected
        assert set(self.trie.match(bytearray(data))) == expected

    @invariant()
    def consistent(self) -> None:
        self.trie._check()
        live = sorted({t for (t, _), c in self.model.counts.items() if c})
        assert self.trie.topics() == live
        assert len(self.trie) == len(live)
        for (t, k), c in self.model.counts.items():
            assert self.trie.count(t, k) == c
            assert (t in self.trie) is bool(self.model.subscribers(t))
            assert set(self.trie.subscribers(t)) == self.model.subscribers(t)


TestTrieMachine = TrieMachine.TestCase
TestTrieMachine.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@settings(max_examples=200, deadline=None)
@given(subs=st.lists(st.tuples(topics, keys), max_size=30), data=frames)
def test_match_equals_scan(subs: list[tuple[bytes, str]], data: bytes) -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    for topic, key in subs:
        trie.add(topic, key)
    assert set(trie.match(data)) == {k for t, k in subs if data.startswith(t)}


@settings(max_examples=100, deadline=None)
@given(subs=st.lists(st.tuples(topics, keys), max_size=30))
def test_removing_everything_leaves_an_empty_tree(subs: list[tuple[bytes, str]]) -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    for topic, key in subs:
        trie.add(topic, key)
    for _, key in subs:
        trie.remove_key(key)
    trie._check()
    assert not trie
    assert trie._kids[0] is None
    assert trie.match(b"aaa") == set()


def test_empty_subscription_matches_everything() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    trie.add(b"", "all")
    trie.add(b"news", "news")
    assert set(trie.match(b"")) == {"all"}
    assert set(trie.match(b"weather")) == {"all"}
    assert set(trie.match(b"news/today")) == {"all", "news"}
    assert trie.matches(b"anything")


def test_prefix_is_binary_and_anchored_at_the_start() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    trie.add(b"\x00\xff", "bin")
    trie.add(b"ab", "ab")
    assert set(trie.match(b"\x00\xff\x01")) == {"bin"}
    assert set(trie.match(b"xab")) == set()  # not a substring search
    assert set(trie.match(b"a")) == set()  # a frame shorter than the topic
    assert not trie.matches(b"a")


def test_counts_and_removal_results() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    assert trie.add(b"A", "p1") is True
    assert trie.add(b"A", "p1") is False  # counted, not new
    assert trie.add(b"A", "p2") is False
    assert trie.count(b"A", "p1") == 2
    assert trie.remove(b"A", "p1") is Removal.REMAINING  # one reference left
    assert trie.remove(b"A", "p1") is Removal.REMAINING  # p2 still subscribed
    assert trie.remove(b"A", "p1") is Removal.NOT_FOUND
    assert trie.add(b"A", "p1") is False
    assert trie.add(b"A", "p1") is False
    assert trie.remove(b"A", "p1", everything=True) is Removal.REMAINING
    assert trie.count(b"A", "p1") == 0
    assert trie.remove(b"A", "p2") is Removal.LAST
    assert not trie


def test_remove_key_reports_emptied_topics() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    trie.add(b"a", "p1")
    trie.add(b"b", "p1")
    trie.add(b"b", "p2")
    assert trie.remove_key("p1") == [(b"a", True), (b"b", False)]
    assert trie.remove_key("p1") == []
    assert trie.topics() == [b"b"]
    assert trie.keys() == ["p2"]


def test_edges_split_and_merge() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    trie.add(b"abcdef", "x")

    def edges() -> list[bytes]:
        kids = trie._kids[0]  # the root's children: first byte -> row
        assert kids is not None
        return [trie._label[row] for row in kids.values()]

    assert edges() == [b"abcdef"]  # one compressed edge
    trie.add(b"abcxyz", "y")
    trie._check()
    assert edges() == [b"abc"]
    trie.remove(b"abcxyz", "y")
    trie._check()
    assert edges() == [b"abcdef"]  # merged back


def test_topics_are_bytes_like_not_str() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    trie.add(bytearray(b"ab"), "k")
    trie.add(memoryview(b"cd"), "k")
    assert trie.topics() == [b"ab", b"cd"]
    with pytest.raises(TypeError):
        trie.add("ab", "k")  # type: ignore[arg-type]


def test_many_topics_and_subscribers_match_without_scanning() -> None:
    """Matching touches one path of the tree, not every subscription: the work for a
    frame stays the same as topics and subscribers are added elsewhere in the tree."""
    trie: SubscriptionTrie[int] = SubscriptionTrie()
    for i in range(5000):
        trie.add(b"topic/%d/" % i, i % 500)
    trie._check()
    calls = 0
    real_get = dict.get

    class CountingDict(dict[int, object]):
        def get(self, key: int, default: object = None) -> object:
            nonlocal calls
            calls += 1
            return real_get(self, key, default)

    # Wrap every children dict so the lookups made by one match() can be counted.
    for row, kids in enumerate(trie._kids):
        if kids:
            trie._kids[row] = CountingDict(kids)  # type: ignore[assignment]
    assert set(trie.match(b"topic/4321/payload")) == {4321 % 500}
    # One lookup per edge on the path "topic/" "4" "3" "21" "/": far fewer than 5000.
    assert calls <= len(b"topic/4321/")


def test_topic_set_counts_like_a_libzmq_sub() -> None:
    subs = TopicSet()
    assert subs.add(b"A") is True
    assert subs.add(b"A") is False
    assert subs.count(b"A") == 2
    assert subs.remove(b"A") is Removal.REMAINING  # libzmq sends no CANCEL yet
    assert subs.matches(b"Apple")
    assert subs.remove(b"A") is Removal.LAST  # now it does
    assert subs.remove(b"A") is Removal.NOT_FOUND
    assert not subs.matches(b"Apple")
    subs.add(b"x")
    subs.add(b"")
    assert list(subs) == [b"", b"x"]
    assert len(subs) == 2
    assert b"x" in subs
    assert subs.matches(b"anything")


# ---------------------------------------------------------------------- storage


class _Peer:
    """A subscriber key like a socket's peer: an object the collector tracks."""

    def __init__(self, name: str) -> None:
        self.name = name


def _tracked() -> int:
    gc.collect()
    return len(gc.get_objects())


def test_tracked_objects_do_not_grow_with_subscriptions() -> None:
    """The tree is invisible to the cyclic collector: adding 10,000 subscriptions
    (distinct, shared, counted, nested) adds a bounded few tracked objects."""
    peers = [_Peer(f"p{i}") for i in range(3)]
    trie: SubscriptionTrie[_Peer] = SubscriptionTrie()
    trie.add(b"warm", peers[0])  # the storage lists exist before the baseline
    topic_list = [b"t/%d/%d" % (i % 97, i) for i in range(10_000)]
    before = _tracked()
    for i, topic in enumerate(topic_list):
        trie.add(topic, peers[i % 3])
        if i % 5 == 0:
            trie.add(topic, peers[(i + 1) % 3])  # two subscribers on one topic
        if i % 7 == 0:
            trie.add(topic, peers[i % 3])  # a counted second reference
        if i % 11 == 0:
            trie.add(topic[:4], peers[2])  # a prefix of others: nodes with both
    grown = _tracked() - before
    # At most one set per distinct group of subscribers (7 for 3 peers) and a few
    # containers; a tree of node objects would add tens of thousands.
    assert grown <= 20, grown
    trie._check()
    assert set(trie.match(b"t/5/5")) == {peers[2], peers[0]}
    assert set(trie.match(b"t/5/500")) == {peers[500 % 3], peers[501 % 3]}


def test_node_slots_are_reused_under_churn() -> None:
    """A publisher whose subscribers come and go keeps its storage bounded: freed
    node, group and subscriber slots are reused."""
    rng = random.Random(29)
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    for i in range(200):  # long-lived subscriptions the churn splits and merges
        trie.add(b"base/%d" % i, "stay")
    sizes: list[tuple[int, int, int]] = []
    for cycle in range(60):
        churn = [f"c{cycle}-{n}" for n in range(4)]
        mine: list[tuple[bytes, str]] = []
        for _ in range(300):
            topic = b"base/%d%s" % (rng.randrange(300), rng.randbytes(rng.randrange(3)))
            key = rng.choice(churn)
            trie.add(topic, key)
            mine.append((topic, key))
        sizes.append((len(trie._label), len(trie._gkeys), len(trie._key_of)))
        # Cancel half one at a time; the subscribers then leave with the rest.
        for topic, key in mine[::2]:
            trie.remove(topic, key)
        for key in churn:
            trie.remove_key(key)
        trie._check()
        assert trie.keys() == ["stay"] and len(trie) == 200
    first, last = sizes[0], sizes[-1]
    # Each cycle needs about as much as the first; nothing accumulates across them.
    assert max(s[0] for s in sizes) <= 2 * first[0]
    # At most one group per subset of the five subscribers; five subscriber ids.
    assert last[1] <= 2**5 and last[2] <= 5
    # Without free-slot reuse the node lists would hold every node ever made.
    assert len(trie._label) < 60 * 300 // 4


def test_storage_starts_again_when_the_last_subscription_goes() -> None:
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    for i in range(1000):
        trie.add(b"x%d" % i, "a")
    trie.add(b"", "b")
    trie.remove(b"", "b")
    assert trie.remove_key("a")[0] == (b"x0", True)
    trie._check()
    assert (len(trie._label), len(trie._gkeys), len(trie._key_of)) == (1, 0, 0)
    assert trie._kids[0] is None


def test_remove_key_drops_a_whole_subscriber_without_walking_the_tree() -> None:
    """A subscriber leaving costs its own topics: found without a single lookup in
    the tree, pruned, its id freed; everyone else's subscriptions stay as they were."""
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    for i in range(2000):
        trie.add(b"topic/%d" % i, "leaving")
        if i % 3 == 0:
            trie.add(b"topic/%d" % i, "other")
    trie.add(b"topic/", "leaving")
    trie.add(b"topic/1", "leaving")  # counted twice: still removed whole
    trie.add(b"elsewhere", "third")
    lookups = 0

    class CountingDict(dict[int, int]):
        def get(self, key: int, default: object = None) -> object:  # type: ignore[override]
            nonlocal lookups
            lookups += 1
            return dict.get(self, key, default)

    trie._kids = [None if k is None else CountingDict(k) for k in trie._kids]
    result = trie.remove_key("leaving")
    assert lookups == 0
    expected = sorted([b"topic/"] + [b"topic/%d" % i for i in range(2000)])
    assert [t for t, _ in result] == expected
    assert all(emptied is (t == b"topic/" or int(t[6:]) % 3 != 0) for t, emptied in result)
    trie._check()
    assert trie.keys() == ["other", "third"]
    assert trie.count(b"topic/1", "leaving") == 0
    assert set(trie.match(b"topic/3")) == {"other"}
    assert set(trie.match(b"topic/4")) == set()
    assert len(trie) == len(range(0, 2000, 3)) + 1
    # Its id is the lowest free one again for the next subscriber.
    trie.add(b"new", "newcomer")
    assert trie._sid_of["newcomer"] == 0
    trie._check()


def test_the_tree_is_made_again_when_most_of_it_goes() -> None:
    """A subscriber holding most of the topics leaves while others stay: the tree is
    rebuilt from what is left, so the node lists shrink to what it needs."""
    trie: SubscriptionTrie[str] = SubscriptionTrie()
    for i in range(3000):
        trie.add(b"big/%d" % i, "big")
    for topic in (b"big/1", b"big/12", b"small", b""):
        trie.add(topic, "small")
    trie.add(b"small", "small")  # counted: the count survives the move
    grown = len(trie._label)
    result = trie.remove_key("big")
    assert len(result) == 3000
    assert [t for t, emptied in result if not emptied] == [b"big/1", b"big/12"]
    trie._check()
    assert len(trie._label) <= 6 < grown
    assert trie.topics() == [b"", b"big/1", b"big/12", b"small"]
    assert trie.count(b"small", "small") == 2
    assert set(trie.match(b"big/123")) == {"small"}
    assert trie.remove(b"big/12", "small") is Removal.LAST
    trie._check()
