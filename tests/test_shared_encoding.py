"""SharedEncoding (zmtp.protocol.framing): a publisher's connections reuse each other's
encoding of a batch, and what each of them sends is byte for byte what it would have
encoded itself, whatever mix of framings (3.x/2.0 and 1.0) and batches they take.
"""

from __future__ import annotations

import array
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.protocol.connection import Connection
from zmtp.protocol.errors import LocalProtocolError
from zmtp.protocol.events import Event, Messages
from zmtp.protocol.framing import LARGE_PAYLOAD, OutputBuffer, SharedEncoding
from zmtp.protocol.keys import curve_keypair
from zmtp.protocol.legacy import V1OutputBuffer
from zmtp.protocol.mechanisms.curve import CurveClient, CurveServer
from zmtp.protocol.socket_types import SocketType

SERVER_PUBLIC, SERVER_SECRET = curve_keypair()
CLIENT_PUBLIC, CLIENT_SECRET = curve_keypair()


def pump(a: Connection, b: Connection) -> None:
    """Exchange bytes until neither side has any."""
    while a.has_data_to_send or b.has_data_to_send:
        if a.has_data_to_send:
            b.receive_data(a.bytes_to_send())
        if b.has_data_to_send:
            a.receive_data(b.bytes_to_send())


def curve_pair() -> tuple[Connection, Connection]:
    client = Connection(
        SocketType.DEALER, mechanism=CurveClient(SERVER_PUBLIC, CLIENT_PUBLIC, CLIENT_SECRET)
    )
    return client, Connection(SocketType.ROUTER, mechanism=CurveServer(SERVER_SECRET))


def messages(events: list[Event]) -> list[list[bytes]]:
    return [m for ev in events if isinstance(ev, Messages) for m in ev.messages]


def wire(buf: OutputBuffer) -> bytes:
    return b"".join(bytes(c) for c in buf.chunks())


# A frame: bytes (short, at the 1.0 and 2.0 size boundaries, or large), or a read-only
# memoryview of bytes, as the sockets queue them.
sizes = st.one_of(st.integers(0, 3), st.sampled_from([253, 254, 255, 256]), st.just(LARGE_PAYLOAD))
frames = st.builds(
    lambda n, b, view: memoryview(bytes([b]) * n) if view else bytes([b]) * n,
    sizes,
    st.integers(0, 255),
    st.booleans(),
)
pool_messages = st.lists(st.lists(frames, min_size=1, max_size=3), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    pool=pool_messages,
    kinds=st.lists(st.booleans(), min_size=1, max_size=4),  # True: a 1.0 connection
    # A few batches (indices into the pool), which the connections take in turn.
    batches=st.lists(st.lists(st.integers(0, 7), max_size=6), min_size=1, max_size=3),
    takes=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 2), st.booleans()),
        max_size=12,
    ),
    max_bytes=st.sampled_from([0, 40, 1 << 20]),
)
def test_shared_output_is_what_each_connection_would_encode(
    pool: list[list[bytes | memoryview]],
    kinds: list[bool],
    batches: list[list[int]],
    takes: list[tuple[int, int, bool]],
    max_bytes: int,
) -> None:
    """Connections of both framings take batches of the same message objects (the
    same batch as another's, or not), some with output already pending; sharing
    changes no byte of any connection's output."""
    shared = SharedEncoding(max_bytes=max_bytes)
    alone = [V1OutputBuffer() if v1 else OutputBuffer() for v1 in kinds]
    sharing = [V1OutputBuffer() if v1 else OutputBuffer() for v1 in kinds]
    for who, which, pending in takes:
        i = who % len(kinds)
        # A fresh deque each time, of the same message objects (as each pipe's is).
        batch = deque(pool[p % len(pool)] for p in batches[which % len(batches)])
        if pending:  # a PONG or a subscription queued before the batch
            alone[i].write(b"\x04\x05PONG")
            sharing[i].write(b"\x04\x05PONG")
        total = alone[i].write_messages(batch)
        assert shared.encode(sharing[i], batch) == total
        if who % 3 == 0:  # sometimes the writer sends at once
            assert wire(sharing[i]) == wire(alone[i])
    for a, b in zip(alone, sharing, strict=True):
        assert wire(b) == wire(a)


def test_a_batch_is_encoded_once_for_connections_of_one_framing() -> None:
    shared = SharedEncoding()
    batch = deque([[b"topic", b"body"], [b"x" * 300]])
    first, second, old = OutputBuffer(), OutputBuffer(), V1OutputBuffer()
    shared.encode(first, batch)
    blob = first.chunks()
    assert len(blob) == 1
    # A second connection's identical batch (another deque of the same objects).
    shared.encode(second, deque(batch))
    (again,) = second.chunks()
    assert again is blob[0]  # the very same bytes object, not a copy
    shared.encode(old, deque(batch))  # 1.0 framing differs: its own encoding
    (v1,) = old.chunks()
    assert v1 != again
    assert v1 == b"\x06\x01topic\x05\x00body\xff" + (301).to_bytes(8, "big") + b"\x00" + b"x" * 300


def test_equal_but_different_objects_are_encoded_anew() -> None:
    """Identity, not equality, keys an encoding: a memoryview of another format is
    equal to bytes yet encodes differently."""
    shared = SharedEncoding()
    ints = memoryview(array.array("i", [1]))
    assert ints == memoryview(b"\x01")  # equal by value, 4 bytes against 1
    one, other = OutputBuffer(), OutputBuffer()
    shared.encode(one, deque([[b"\x01"]]))
    shared.encode(other, deque([[ints]]))
    assert one.chunks() == [b"\x00\x01\x01"]
    assert b"".join(bytes(c) for c in other.chunks()) == b"\x00\x04" + ints.tobytes()


def test_large_payloads_are_never_copied_or_kept() -> None:
    shared = SharedEncoding()
    big = b"z" * LARGE_PAYLOAD
    out = OutputBuffer()
    shared.encode(out, deque([[b"head", big]]))
    assert any(c is big for c in out.chunks())
    assert shared._entries == []  # nothing held for a batch with a large payload


def test_a_bad_frame_leaves_the_messages_before_it_as_write_messages_does() -> None:
    shared = SharedEncoding()
    alone, sharing = OutputBuffer(), OutputBuffer()
    batch = deque([[b"ok"], ["text"]])
    with pytest.raises(TypeError):
        alone.write_messages(batch)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        shared.encode(sharing, batch)  # type: ignore[arg-type]
    assert wire(sharing) == wire(alone) == b"\x00\x02ok"
    assert shared._entries == []


def test_kept_batches_are_bounded() -> None:
    shared = SharedEncoding(slots=2)
    for i in range(5):
        shared.encode(OutputBuffer(), deque([[b"%d" % i]]))
    assert len(shared._entries) == 2
    shared.clear()
    assert shared._entries == []


def test_a_sealed_connection_never_shares() -> None:
    """CURVE seals per connection: send_messages leaves the shared encodings alone."""
    shared = SharedEncoding()
    client, server = curve_pair()
    pump(client, server)
    assert client.send_messages(deque([[b"hello"]]), shared) == 5
    assert shared._entries == []
    assert b"hello" not in client.bytes_to_send()


def test_open_connections_share_through_send_messages() -> None:
    """Two NULL connections of a publisher: the second reuses the first's bytes, and
    its subscriber decodes the same messages."""
    shared = SharedEncoding()
    batch = deque([[b"topic", b"body"], [b"more"]])
    outputs = []
    for _ in range(2):
        pub, sub = Connection(SocketType.PUB), Connection(SocketType.SUB)
        pump(pub, sub)
        assert pub.send_messages(deque(batch), shared) == 13
        (chunk,) = pub.data_to_send()
        outputs.append(chunk)
        assert messages(sub.receive_data(chunk)) == list(batch)
    assert outputs[1] is outputs[0]
    fresh = Connection(SocketType.PUB)
    with pytest.raises(LocalProtocolError):  # not in traffic: refused, nothing kept
        fresh.send_messages(deque([[b"x"]]), SharedEncoding())


def test_disabled_sharing_encodes_alone_and_keeps_nothing() -> None:
    shared = SharedEncoding()
    batch = deque([[b"a"], [b"b", b"c"]])
    shared.encode(OutputBuffer(), batch)
    assert len(shared._entries) == 1
    shared.share(False)
    assert shared._entries == []
    alone, sharing = OutputBuffer(), OutputBuffer()
    alone.write_messages(batch)
    assert shared.encode(sharing, batch) == 3
    assert wire(sharing) == wire(alone)
    assert shared._entries == []
    shared.share(True)
    shared.encode(OutputBuffer(), batch)
    assert len(shared._entries) == 1
