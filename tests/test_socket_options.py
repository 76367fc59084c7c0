"""Socket options: names, defaults, validation, keyword and attribute access, effects."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import zmtp

from ._helpers import context

#: libzmq 4.3.5's defaults (zmq_setsockopt(3)) for the options the issue names.
DEFAULTS: dict[str, Any] = {
    "routing_id": b"",
    "sndhwm": 1000,
    "rcvhwm": 1000,
    "linger": -1,
    "reconnect_ivl": 100,
    "reconnect_ivl_max": 0,
    "handshake_ivl": 30000,
    "maxmsgsize": -1,
    "immediate": False,
    "heartbeat_ivl": 0,
}

#: A valid non-default value for each option, with a socket type it applies to.
SAMPLES: list[tuple[str, Any, zmtp.SocketType]] = [
    ("routing_id", b"me", zmtp.DEALER),
    ("sndhwm", 5, zmtp.PUSH),
    ("rcvhwm", 0, zmtp.PULL),
    ("linger", 250, zmtp.PUSH),
    ("reconnect_ivl", -1, zmtp.DEALER),
    ("reconnect_ivl_max", 5000, zmtp.DEALER),
    ("handshake_ivl", 0, zmtp.PAIR),
    ("maxmsgsize", 1024, zmtp.PULL),
    ("immediate", True, zmtp.PUSH),
    ("router_mandatory", True, zmtp.ROUTER),
    ("router_handover", True, zmtp.ROUTER),
    ("probe_router", True, zmtp.DEALER),
    ("heartbeat_ivl", 1000, zmtp.DEALER),
    ("heartbeat_ttl", 3000, zmtp.DEALER),
    ("heartbeat_timeout", 500, zmtp.DEALER),
]


@pytest.mark.parametrize("stype", [zmtp.PUSH, zmtp.PULL, zmtp.DEALER, zmtp.ROUTER, zmtp.PAIR])
async def test_defaults(stype: zmtp.SocketType) -> None:
    async with context() as ctx:
        sock = ctx.socket(stype)
        for name, value in DEFAULTS.items():
            assert sock.get_option(name) == value, name
            assert getattr(sock, name) == value, name


@pytest.mark.parametrize(("name", "value", "stype"), SAMPLES, ids=[s[0] for s in SAMPLES])
async def test_keyword_attribute_and_method_agree(
    name: str, value: Any, stype: zmtp.SocketType
) -> None:
    async with context() as ctx:
        by_kw = ctx.socket(stype, **{name: value})
        assert by_kw.get_option(name) == value
        assert getattr(by_kw, name) == value
        by_attr = ctx.socket(stype)
        setattr(by_attr, name, value)
        assert by_attr.get_option(name) == value
        by_method = ctx.socket(stype)
        by_method.set_option(name, value)
        assert getattr(by_method, name) == value


async def test_values_are_normalised() -> None:
    async with context() as ctx:
        sock = ctx.socket(zmtp.DEALER, routing_id=bytearray(b"id"), immediate=1)
        assert sock.routing_id == b"id"
        assert type(sock.routing_id) is bytes
        assert sock.immediate is True
        sock.routing_id = memoryview(b"other")
        assert sock.routing_id == b"other"


async def test_unknown_option_names() -> None:
    async with context() as ctx:
        with pytest.raises(ValueError, match="sndhmw"):
            ctx.socket(zmtp.PUSH, sndhmw=5)
        sock = ctx.socket(zmtp.PUSH)
        with pytest.raises(ValueError):
            sock.set_option("sndhmw", 5)
        with pytest.raises(ValueError):
            sock.get_option("sndhmw")
        with pytest.raises(ValueError):
            sock.set_option("SNDHWM", 5)  # names are lower-case, without ZMQ_


@pytest.mark.parametrize("socket_type", list(zmtp.SocketType), ids=lambda t: t.name)
async def test_misspelt_option_attribute_raises(socket_type: zmtp.SocketType) -> None:
    # Sockets have __slots__, so a typo cannot silently create a new attribute
    # (pyzmq raises AttributeError too).
    async with context() as ctx:
        sock = ctx.socket(socket_type)
        with pytest.raises(AttributeError):
            sock.sndhmw = 5  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("sndhwm", "5", TypeError),
        ("sndhwm", 1.5, TypeError),
        ("sndhwm", True, TypeError),
        ("sndhwm", None, TypeError),
        ("sndhwm", -1, ValueError),
        ("rcvhwm", -5, ValueError),
        ("linger", -2, ValueError),
        ("linger", "forever", TypeError),
        ("reconnect_ivl", -2, ValueError),
        ("reconnect_ivl_max", -1, ValueError),
        ("handshake_ivl", -1, ValueError),
        ("maxmsgsize", -2, ValueError),
        ("immediate", "yes", TypeError),
        ("immediate", 2, TypeError),
        ("routing_id", "text", TypeError),
        ("routing_id", 5, TypeError),
        ("routing_id", b"\x00reserved", ValueError),
        ("routing_id", b"x" * 256, ValueError),
        ("heartbeat_ttl", 6553600, ValueError),
        ("metadata", {"Foo": b"x"}, ValueError),
        ("metadata", {"X-Foo": "text"}, TypeError),
        ("metadata", [("X-Foo", b"x")], TypeError),
    ],
)
async def test_invalid_values(name: str, value: Any, error: type[Exception]) -> None:
    async with context() as ctx:
        with pytest.raises(error):
            ctx.socket(zmtp.DEALER, **{name: value})
        sock = ctx.socket(zmtp.DEALER)
        before = sock.get_option(name)
        with pytest.raises(error):
            sock.set_option(name, value)
        with pytest.raises(error):
            setattr(sock, name, value)
        assert sock.get_option(name) == before  # a failed set changes nothing


@pytest.mark.parametrize(
    ("name", "stype"),
    [
        ("router_mandatory", zmtp.DEALER),
        ("router_mandatory", zmtp.PUSH),
        ("router_handover", zmtp.REQ),
        ("router_handover", zmtp.PAIR),
        ("probe_router", zmtp.PUSH),
        ("probe_router", zmtp.PULL),
        ("probe_router", zmtp.REP),
        ("probe_router", zmtp.PAIR),
    ],
)
async def test_option_for_the_wrong_socket_type(name: str, stype: zmtp.SocketType) -> None:
    async with context() as ctx:
        with pytest.raises(ValueError, match=stype.name):
            ctx.socket(stype, **{name: True})
        sock = ctx.socket(stype)
        with pytest.raises(ValueError):
            setattr(sock, name, True)


@pytest.mark.parametrize("stype", [zmtp.ROUTER, zmtp.DEALER, zmtp.REQ])
async def test_probe_router_applies_to(stype: zmtp.SocketType) -> None:
    async with context() as ctx:
        assert ctx.socket(stype, probe_router=True).probe_router is True


async def test_unsupported_option_says_so() -> None:
    async with context() as ctx:
        with pytest.raises(ValueError, match="not supported"):
            ctx.socket(zmtp.PULL, conflate=True)


async def test_sndhwm_applies_to_existing_queues() -> None:
    async with context() as ctx:
        push = ctx.socket(zmtp.PUSH, sndhwm=2)
        # A peer that never comes up: messages queue for it up to the HWM.
        await push.connect("tcp://127.0.0.1:1")
        push.send_multipart_nowait([b"1"])
        push.send_multipart_nowait([b"2"])
        with pytest.raises(trio.WouldBlock):
            push.send_multipart_nowait([b"3"])
        push.sndhwm = 4
        push.send_multipart_nowait([b"3"])
        push.send_multipart_nowait([b"4"])
        with pytest.raises(trio.WouldBlock):
            push.send_multipart_nowait([b"5"])
        push.sndhwm = 0  # no limit
        for i in range(2000):
            push.send_multipart_nowait([b"%d" % i])
        await push.aclose(linger=0)


async def test_routing_id_attribute_is_announced() -> None:
    async with context() as ctx:
        router = ctx.socket(zmtp.ROUTER)
        ep = await router.bind("tcp://127.0.0.1:0")
        dealer = ctx.socket(zmtp.DEALER)
        dealer.routing_id = b"late-but-before-connect"
        await dealer.connect(ep)
        await dealer.send_multipart([b"hi"])
        assert await router.recv_multipart() == [b"late-but-before-connect", b"hi"]


async def test_metadata_option() -> None:
    async with context() as ctx:
        sock = ctx.socket(zmtp.DEALER, metadata={"X-App": b"demo"})
        assert sock.metadata == {"X-App": b"demo"}
        # Each socket has its own mapping.
        assert ctx.socket(zmtp.DEALER).metadata == {}
