"""Large frame bodies from libzmq 4.3.5 (through pyzmq), received in place by our sockets.

Our engine reads a body missing 128 KiB or more straight into the bytes the
application gets (``os.readv``, with a 256-byte scratch buffer catching what follows),
waits for it with ``SO_RCVLOWAT`` over tcp, and collects bodies over
``PREALLOCATE_MAX`` as chunks.  libzmq writes large messages its own way (zero-copy
writes of the message buffers, 8 KiB batches for the rest), so the frame boundaries
land wherever its writes and the kernel put them.  Over tcp and ipc, with either side
bound:

* a libzmq PUSH sends multipart messages mixing every size around those thresholds
  (empty, 10 B, 32 KiB +- 1, 127/128/129 KiB, 1 MiB, 8 MiB + 1) to our PULL;
* a libzmq DEALER sends 1 MiB requests with envelopes back to back to our ROUTER, which
  answers each with 1 MiB.

The same traffic between our own sockets is in ``tests/test_large_bodies.py``.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
import trio

import zmtp
from zmtp.protocol.framing import BIG_BODY, PREALLOCATE_MAX

from ._helpers import DIRECTIONS, TEST_TIMEOUT, TRANSPORTS, BindZmq, SocketFactory
from ._sock_helpers import Theirs, link, options

zmq = pytest.importorskip("zmq")

pytestmark = pytest.mark.interop

_S = zmtp.SocketType
KiB = 1024
MiB = 1024 * KiB

SIZES = [
    0,
    10,
    BIG_BODY - 1,
    BIG_BODY,
    127 * KiB,
    128 * KiB,
    129 * KiB,
    MiB,
    PREALLOCATE_MAX + 1,
]


def mixed_messages(seed: int) -> list[list[bytes]]:
    """Multipart messages mixing every size in SIZES, in several orders; every frame
    distinct random bytes."""
    rng = random.Random(seed)

    def frames(sizes: list[int]) -> list[bytes]:
        return [rng.randbytes(s) for s in sizes]

    return [
        frames(SIZES),
        frames(SIZES[::-1]),
        frames([10, MiB, 10]),
        frames([MiB, MiB]),
        frames([0, 128 * KiB, 0, 129 * KiB, 0]),
        *([s] for s in frames(SIZES)),
        frames([BIG_BODY - 1, BIG_BODY, 10]),
    ]


def digest(frames: list[bytes]) -> list[tuple[int, str]]:
    """Sizes and short hashes: a readable summary when messages differ."""
    return [(len(f), hashlib.blake2b(f, digest_size=8).hexdigest()) for f in frames]


def check_messages(got: list[list[bytes]], sent: list[list[bytes]]) -> None:
    assert [digest(m) for m in got] == [digest(m) for m in sent]
    assert got == sent


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_libzmq_push_mixed_sizes_to_our_pull(
    direction: str,
    transport: str,
    zmq_socket: SocketFactory,
    bind_zmq: BindZmq,
    ipc_dir: Path,
) -> None:
    messages = mixed_messages(len(direction) + len(transport))
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            pull = ctx.socket(zmtp.PULL)
            push = zmq_socket(zmq.PUSH)
            await link(pull, push, transport, direction, ipc_dir=ipc_dir, bind_zmq=bind_zmq)
            await pull.wait_for_peers(1)

            def send_all() -> None:
                for msg in messages:
                    push.send_multipart(msg)

            got: list[list[bytes]] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, send_all)
                for _ in messages:
                    got.append(await pull.recv_multipart())
            check_messages(got, messages)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_libzmq_dealer_1mib_requests_to_our_router(
    direction: str,
    transport: str,
    zmq_socket: SocketFactory,
    bind_zmq: BindZmq,
    ipc_dir: Path,
) -> None:
    rounds = 6
    rng = random.Random(len(direction) * 10 + len(transport))
    requests = [[b"req-%d" % i, rng.randbytes(MiB), b"trailer"] for i in range(rounds)]
    replies = [[b"rep-%d" % i, rng.randbytes(MiB)] for i in range(rounds)]
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            router = ctx.socket(zmtp.ROUTER)
            dealer_sock = zmq_socket(zmq.DEALER, **options(_S.DEALER, ROUTING_ID=b"theirs"))
            await link(
                router, dealer_sock, transport, direction, ipc_dir=ipc_dir, bind_zmq=bind_zmq
            )
            await router.wait_for_peers(1)
            dealer = Theirs(dealer_sock, _S.DEALER)

            def send_all() -> None:
                # Back to back: after each 1 MiB body, our scratch buffer gets the
                # trailer, the next request's envelope and the next body's header.
                for msg in requests:
                    dealer_sock.send_multipart(msg)

            got: list[list[bytes]] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, send_all)
                for _ in requests:
                    rid, *msg = await router.recv_multipart()
                    assert rid == b"theirs"
                    got.append(msg)
            check_messages(got, requests)

            answers: list[list[bytes]] = []
            async with trio.open_nursery() as nursery:

                async def receive() -> None:
                    answers.extend(await dealer.recv_n(rounds))

                nursery.start_soon(receive)
                for reply in replies:
                    await router.send_multipart([b"theirs", *reply])
            check_messages(answers, replies)
