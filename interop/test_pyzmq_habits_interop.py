"""pyzmq habits against libzmq: ``send(x, more=True)`` then ``send_multipart([...])``
continues the message on the wire, as pyzmq's does, so a ROUTER reply reaches its
libzmq peer; bind errors name the endpoint a libzmq socket holds.

Both directions (we bind / they connect, and the reverse), over tcp and ipc.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
import trio

import zmtp

from ._helpers import DIRECTIONS, TEST_TIMEOUT, TRANSPORTS

zmq = pytest.importorskip("zmq")

from ._sock_helpers import Lab  # noqa: E402 - it skips without pyzmq, like the line above

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
