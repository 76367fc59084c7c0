"""Heartbeats (ZMTP 3.1 PING/PONG) between our sockets and libzmq 4.3.5's.

The connection runs through a :class:`Relay` of our own, which forwards bytes both
ways and records them, so a test can see the PINGs and PONGs on the wire, and can
*freeze* a connection: from then on it swallows everything in both directions
without closing anything, which is a peer gone silent (a crashed host, a dead
network) as neither side can tell apart.

* libzmq with heartbeats on pings us; we answer, and the connection stays up;
* our heartbeats are answered by libzmq;
* a silent libzmq peer is dropped by our heartbeat timeout, or by the TTL its own
  PINGs announced, and the connecting side reconnects (a SUB resubscribing at once);
* REQ/REP state survives heartbeats in both directions.

The exact instants (intervals, timeouts, TTLs) are checked in virtual time by
``tests/test_heartbeat.py``; here the clock is real, so the tests only wait for
events and for heartbeats to show on the wire.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import zmtp
from zmtp.sockets import Socket

from ._helpers import TEST_TIMEOUT, TRANSPORTS, Endpoint, ipc_path
from ._sock_helpers import Lab, Theirs, bind_ours, wait_event
from ._wire_helpers import open_stream

zmq = pytest.importorskip("zmq")
parse_monitor_message = pytest.importorskip("zmq.utils.monitor").parse_monitor_message

pytestmark = pytest.mark.interop

_S = zmtp.SocketType
E = zmtp.EventType

#: Heartbeat interval of the tests, in ms.
IVL = 50

_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class Link:
    """One relayed connection: the bytes each way, and whether it is frozen."""

    def __init__(self) -> None:
        self.down = bytearray()  # from the listening side's peer... to the connector
        self.up = bytearray()  # from the connector to the listening side
        self.frozen = False

    def count(self, direction: str, command: bytes) -> int:
        """How many ``command`` frames went one way (``"up"`` or ``"down"``)."""
        data = self.up if direction == "up" else self.down
        return bytes(data).count(bytes([len(command)]) + command)


class Relay:
    """Accepts connections and relays each to ``target``; see the module docstring.

    ``up`` is the direction from whoever connects to the relay towards ``target``.
    """

    def __init__(self, nursery: trio.Nursery, target: Endpoint, ipc_dir: Path) -> None:
        self._nursery = nursery
        self._target = target
        self._ipc_dir = ipc_dir
        self.links: list[Link] = []
        self.endpoint = ""

    async def start(self, transport: str) -> str:
        if transport == "tcp":
            (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listener.socket.getsockname()[1]
            self.endpoint = f"tcp://127.0.0.1:{port}"
        else:
            path = ipc_path(self._ipc_dir, "relay")
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            await sock.bind(path)
            sock.listen()
            listener = trio.SocketListener(sock)
            self.endpoint = f"ipc://{path}"
        self._nursery.start_soon(self._serve, listener)
        return self.endpoint

    async def _serve(self, listener: trio.SocketListener) -> None:
        async with listener:
            while True:
                client = await listener.accept()
                try:
                    server = await open_stream(self._target)
                except OSError:
                    await client.aclose()
                    continue
                link = Link()
                self.links.append(link)
                self._nursery.start_soon(self._pump, client, server, link, "up")
                self._nursery.start_soon(self._pump, server, client, link, "down")

    async def _pump(
        self, src: trio.SocketStream, dst: trio.SocketStream, link: Link, direction: str
    ) -> None:
        record = link.up if direction == "up" else link.down
        try:
            while True:
                data = await src.receive_some(65536)
                if not data:
                    break
                if link.frozen:
                    continue  # swallowed: the other side hears nothing
                record += data
                await dst.send_all(data)
        except _ERRORS:
            pass
        finally:
            # One side closed: close the other too, as a real network path would.
            await trio.aclose_forcefully(src)
            await trio.aclose_forcefully(dst)


class RelayLab(Lab):
    """A :class:`Lab` whose links go through a :class:`Relay` run in ``nursery``."""

    def __init__(self, lab: Lab, nursery: trio.Nursery) -> None:
        super().__init__(lab.ctx, lab.zmq_socket, lab.bind_zmq, lab.ipc_dir)
        self.nursery = nursery

    async def relay(self, ours: Socket, theirs: Theirs, transport: str, we_bind: bool) -> Relay:
        """Bind one side; connect the other through a relay; wait for the handshake."""
        if we_bind:
            target = Endpoint.from_zmq(await bind_ours(ours, transport, self.ipc_dir))
            relay = Relay(self.nursery, target, self.ipc_dir)
            theirs.sock.connect(await relay.start(transport))
        else:
            target = self.bind_zmq(theirs.sock, transport)
            relay = Relay(self.nursery, target, self.ipc_dir)
            await ours.connect(await relay.start(transport))
        await ours.wait_for_peers(1)
        return relay


@asynccontextmanager
async def running(
    lab_factory: Callable[[zmtp.Context], Lab],
) -> AsyncIterator[RelayLab]:
    with trio.fail_after(TEST_TIMEOUT):
        async with zmtp.Context() as ctx, trio.open_nursery() as nursery:
            yield RelayLab(lab_factory(ctx), nursery)
            await ctx.aclose(linger=0)
            nursery.cancel_scope.cancel()


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (checked every few ms; the test's deadline bounds it)."""
    while not condition():
        await trio.sleep(0.01)


def drain_events(mon: zmtp.Monitor) -> list[zmtp.EventType]:
    """The event types queued in a monitor right now."""
    kinds = []
    with contextlib.suppress(trio.WouldBlock):
        while True:
            kinds.append(mon.receive_nowait().type)
    return kinds


def zmq_disconnects(monitor: Any) -> int:
    """How many DISCONNECTED events libzmq's monitor socket holds."""
    count = 0
    while monitor.poll(0):
        event = parse_monitor_message(monitor.recv_multipart())
        count += event["event"] == zmq.EVENT_DISCONNECTED
    return count


# ----------------------------------------------------------------------- both answer


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("we_bind", [True, False], ids=["we_bind", "they_bind"])
async def test_libzmq_heartbeats_answered_by_us(
    transport: str, we_bind: bool, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    async with running(lab_factory) as lab:
        ours = lab.ctx.socket(zmtp.ROUTER)
        mon = ours.monitor()
        theirs = lab.theirs(
            _S.DEALER,
            HEARTBEAT_IVL=IVL,
            HEARTBEAT_TIMEOUT=3 * IVL,
            HEARTBEAT_TTL=1000,
            IDENTITY=b"them",
        )
        zmon = lab.zmq_socket.track(theirs.sock.get_monitor_socket())
        relay = await lab.relay(ours, theirs, transport, we_bind)
        (link,) = relay.links
        theirs_way, ours_way = ("up", "down") if we_bind else ("down", "up")
        # Ten rounds with no other traffic: each PING answered with a PONG.
        await until(lambda: link.count(ours_way, b"PONG") >= 10)
        assert link.count(theirs_way, b"PING") >= 10
        # The PINGs carry libzmq's TTL of 1 s: 00 0a.
        assert b"\x04PING\x00\x0a" in bytes(link.up if theirs_way == "up" else link.down)
        # The connection is the same one, and traffic flows on it both ways.
        await theirs.send([b"hello"])
        assert await ours.recv_multipart() == [b"them", b"hello"]
        await ours.send_multipart([b"them", b"back"])
        assert await theirs.recv() == [b"back"]
        assert E.DISCONNECTED not in drain_events(mon)
        assert zmq_disconnects(zmon) == 0
        assert len(relay.links) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("we_bind", [True, False], ids=["we_bind", "they_bind"])
async def test_our_heartbeats_answered_by_libzmq(
    transport: str, we_bind: bool, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    async with running(lab_factory) as lab:
        ours = lab.ctx.socket(
            zmtp.DEALER, heartbeat_ivl=IVL, heartbeat_timeout=3 * IVL, heartbeat_ttl=2000
        )
        mon = ours.monitor()
        theirs = lab.theirs(_S.ROUTER)  # no heartbeat options: it only answers
        relay = await lab.relay(ours, theirs, transport, we_bind)
        (link,) = relay.links
        ours_way, theirs_way = ("down", "up") if we_bind else ("up", "down")
        await until(lambda: link.count(theirs_way, b"PONG") >= 10)
        assert link.count(ours_way, b"PING") >= 10
        # Always with the TTL field (specs/libzmq-behaviour.md §3.2): 2 s = 20 deciseconds.
        assert b"\x04PING\x00\x14" in bytes(link.up if ours_way == "up" else link.down)
        await ours.send_multipart([b"hi"])
        _, body = await theirs.recv()
        assert body == b"hi"
        assert E.DISCONNECTED not in drain_events(mon)
        assert len(relay.links) == 1


# ----------------------------------------------------------------------- silence


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_silent_libzmq_publisher_dropped_then_resubscribed(
    transport: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    """Our SUB's heartbeat timeout drops a publisher that went silent; it reconnects
    at once and resubscribes, and nothing is lost once the subscription is in."""
    async with running(lab_factory) as lab:
        sub = lab.ctx.socket(
            zmtp.SUB, heartbeat_ivl=IVL, heartbeat_timeout=3 * IVL, reconnect_ivl=20
        )
        mon = sub.monitor()
        sub.subscribe(b"t")  # type: ignore[attr-defined]
        xpub = lab.theirs(_S.XPUB, XPUB_VERBOSE=1)  # no heartbeats of its own
        relay = await lab.relay(sub, xpub, transport, we_bind=False)
        assert await xpub.recv() == [b"\x01t"]
        await xpub.send([b"t-before"])
        assert await sub.recv_multipart() == [b"t-before"]

        relay.links[0].frozen = True
        dropped = await wait_event(mon, E.DISCONNECTED)
        assert "heartbeat" in dropped.reason.lower()
        await wait_event(mon, E.CONNECT_RETRIED)
        await wait_event(mon, E.HANDSHAKE_SUCCEEDED)
        assert len(relay.links) == 2
        # The new connection's subscription (the old connection's cancel may come
        # before or after it, as the relay closes it).
        while await xpub.recv() != [b"\x01t"]:
            pass

        def publish() -> None:
            for i in range(100):
                xpub.sock.send_multipart([b"t%d" % i])

        await trio.to_thread.run_sync(publish)
        for i in range(100):
            assert await sub.recv_multipart() == [b"t%d" % i]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_libzmq_ttl_honoured(
    transport: str, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    """We have no heartbeats of our own, but libzmq's PINGs announce a TTL: when they
    stop, we drop the connection after it.  libzmq's own timeout is long, so the drop
    is ours, not the relay passing on libzmq's."""
    async with running(lab_factory) as lab:
        pull = lab.ctx.socket(zmtp.PULL)
        mon = pull.monitor()
        push = lab.theirs(_S.PUSH, HEARTBEAT_IVL=IVL, HEARTBEAT_TTL=300, HEARTBEAT_TIMEOUT=60000)
        relay = await lab.relay(pull, push, transport, we_bind=True)
        await push.send([b"alive"])
        assert await pull.recv_multipart() == [b"alive"]
        (link,) = relay.links
        await until(lambda: link.count("up", b"PING") >= 1)  # a TTL has been announced
        link.frozen = True
        dropped = await wait_event(mon, E.DISCONNECTED)
        assert "heartbeat" in dropped.reason.lower()
        assert not pull.peers  # a bound socket forgets the peer with its connection


# ----------------------------------------------------------------------- REQ/REP


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("ours_is_req", [True, False], ids=["our_req", "their_req"])
async def test_heartbeats_never_break_req_rep(
    transport: str, ours_is_req: bool, lab_factory: Callable[[zmtp.Context], Lab]
) -> None:
    async with running(lab_factory) as lab:
        # PINGs every 50 ms, but a generous timeout: this test is about heartbeats
        # interleaving with requests, and on a loaded machine (CI shares its cores) a
        # 150 ms stall of either process is not a broken peer.
        opts = {"heartbeat_ivl": IVL, "heartbeat_timeout": 20 * IVL, "heartbeat_ttl": 2000}
        zopts = {"HEARTBEAT_IVL": IVL, "HEARTBEAT_TIMEOUT": 20 * IVL, "HEARTBEAT_TTL": 2000}
        if ours_is_req:
            ours = lab.ctx.socket(zmtp.REQ, **opts)
            theirs = lab.theirs(_S.REP, **zopts)
        else:
            ours = lab.ctx.socket(zmtp.REP, **opts)
            theirs = lab.theirs(_S.REQ, **zopts)
        mon = ours.monitor()
        relay = await lab.relay(ours, theirs, transport, we_bind=not ours_is_req)
        (link,) = relay.links

        async def heartbeats_both_ways() -> None:
            """Let a few PINGs go each way in the middle of a request."""
            up, down = link.count("up", b"PING"), link.count("down", b"PING")
            await until(
                lambda: (
                    link.count("up", b"PING") >= up + 3 and link.count("down", b"PING") >= down + 3
                )
            )

        for i in range(3):
            request, reply = [b"request %d" % i], [b"reply %d" % i]
            if ours_is_req:
                await ours.send_multipart(request)
                assert await theirs.recv() == request
                await heartbeats_both_ways()
                await theirs.send(reply)
                assert await ours.recv_multipart() == reply
            else:
                await theirs.send(request)
                assert await ours.recv_multipart() == request
                await heartbeats_both_ways()
                await ours.send_multipart(reply)
                assert await theirs.recv() == reply
        assert E.DISCONNECTED not in drain_events(mon)
        assert len(relay.links) == 1
