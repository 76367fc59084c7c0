"""pyzmq habits against libzmq: ``send(x, more=True)`` then ``send_multipart([...])``
continues the message on the wire, as pyzmq's does, so a ROUTER reply reaches its
libzmq peer; a close that cannot flush to a libzmq peer that does not read (linger -1)
still returns when cancelled; bind errors name the endpoint a libzmq socket holds.

Both directions (we bind / they connect, and the reverse), over tcp and ipc.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

import pytest
import trio
import trio.testing

import zmtp

from ._helpers import DIRECTIONS, TEST_TIMEOUT, TRANSPORTS

zmq = pytest.importorskip("zmq")

from ._sock_helpers import BIG, Lab  # noqa: E402 - it skips without pyzmq, like the line above

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_router_reply_with_send_more_then_send_multipart(
    direction: str, transport: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            router = ctx.socket(zmtp.ROUTER, router_mandatory=True)
            dealer = lab.theirs(zmtp.DEALER, ROUTING_ID=b"client")
            await lab.link(router, dealer, transport, direction)
            await dealer.send([b"hello"])
            ident, body = await router.recv_multipart()
            assert (ident, body) == (b"client", b"hello")
            await router.send(ident, more=True)
            await router.send_multipart([b"reply", b"in two"])
            assert await dealer.recv() == [b"reply", b"in two"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_dealer_request_with_send_more_then_send_multipart(
    direction: str, transport: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            dealer = ctx.socket(zmtp.DEALER)
            router = lab.theirs(zmtp.ROUTER)
            await lab.link(dealer, router, transport, direction)
            await dealer.send(b"", more=True)
            await dealer.send(b"a", more=True)
            await dealer.send_multipart([b"b"])
            _ident, *frames = await router.recv()
            assert frames == [b"", b"a", b"b"]


async def test_bind_error_names_the_endpoint_libzmq_holds(
    zmq_socket: Callable[..., zmq.Socket[bytes]],
) -> None:
    theirs = zmq_socket(zmq.PULL)
    theirs.bind("tcp://127.0.0.1:*")
    held = theirs.getsockopt_string(zmq.LAST_ENDPOINT)
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            sock = ctx.socket(zmtp.PUSH)
            with pytest.raises(OSError) as info:
                await sock.bind(held)
    assert info.value.errno == errno.EADDRINUSE
    assert str(info.value).endswith(f"Address already in use: {held}")


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_cancelled_close_to_a_libzmq_peer_that_does_not_read(
    direction: str,
    transport: str,
    lab_factory: Callable[[zmtp.Context], Lab],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx:
            lab = lab_factory(ctx)
            push = ctx.socket(zmtp.PUSH, sndhwm=1)  # linger -1
            pull = lab.theirs(zmtp.PULL, RCVHWM=1)  # never read
            ep = await lab.link(push, pull, transport, direction)
            await push.wait_for_peers(1)
            # Fill libzmq's queue, both kernel buffers and ours: send until a send
            # would block even once every task is blocked (nothing more can move).
            while True:
                try:
                    push.send_multipart_nowait([BIG])
                    continue
                except trio.WouldBlock:
                    await trio.testing.wait_all_tasks_blocked(0.05)
                try:
                    push.send_multipart_nowait([BIG])
                except trio.WouldBlock:
                    break
            with trio.move_on_after(0.2) as scope:
                await push.aclose()
            assert scope.cancelled_caught and push.closed
    dropped = [r for r in caplog.records if "close cancelled" in r.getMessage()]
    assert [r.levelno for r in dropped] == [logging.WARNING]
    assert dropped[0].getMessage().endswith(f"close cancelled, dropped 1 message for {ep}")
