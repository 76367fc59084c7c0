"""Endpoints: parsing, what bind() returns, ipc files, unbind/disconnect bookkeeping."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

import zmtp
from zmtp import Endpoint, parse_endpoint
from zmtp.sockets import Socket
from zmtp.tools.tap import parse_endpoint as tap_parse_endpoint

from ._helpers import TIMEOUT, context


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path (unix socket paths are limited to ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="zmtp-ep-"))
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


async def exchange(ctx: zmtp.Context, bound: Socket, endpoint: str) -> None:
    """Connect a PUSH to ``endpoint`` and check a message reaches the bound PULL."""
    push = ctx.socket(zmtp.PUSH)
    await push.connect(endpoint)
    await push.send_multipart([b"ping", endpoint.encode()])
    assert await bound.recv_multipart() == [b"ping", endpoint.encode()]
    await push.aclose()


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


# ----------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "bind", "expected"),
    [
        ("tcp://127.0.0.1:5555", False, Endpoint("tcp", "127.0.0.1", 5555)),
        ("tcp://localhost:1", False, Endpoint("tcp", "localhost", 1)),
        ("tcp://[::1]:5555", False, Endpoint("tcp", "::1", 5555)),
        ("tcp://*:5555", True, Endpoint("tcp", "", 5555)),
        ("tcp://*:*", True, Endpoint("tcp", "", 0)),
        ("tcp://127.0.0.1:0", True, Endpoint("tcp", "127.0.0.1", 0)),
        ("tcp://[::]:*", True, Endpoint("tcp", "::", 0)),
        ("ipc:///tmp/x.sock", False, Endpoint("ipc", path="/tmp/x.sock")),
        ("ipc://relative.sock", False, Endpoint("ipc", path="relative.sock")),
        ("ipc://*", True, Endpoint("ipc", path="*")),
        ("ipc://@abstract", False, Endpoint("ipc", path="@abstract")),
        ("inproc://name", False, Endpoint("inproc", path="name")),
        ("inproc://a/b:c", True, Endpoint("inproc", path="a/b:c")),
    ],
)
def test_parse_valid(text: str, bind: bool, expected: Endpoint) -> None:
    assert parse_endpoint(text, bind=bind) == expected


@pytest.mark.parametrize(
    ("text", "bind"),
    [
        ("127.0.0.1:5555", False),  # no transport
        ("udp://127.0.0.1:5555", False),
        ("tcp://", False),
        ("tcp://127.0.0.1", False),  # no port
        ("tcp://:5555", False),  # no host
        ("tcp://127.0.0.1:http", False),
        ("tcp://127.0.0.1:65536", True),
        ("tcp://127.0.0.1:-1", True),
        ("tcp://::1:5555", False),  # IPv6 without brackets
        ("tcp://*:5555", False),  # wildcards only bind
        ("tcp://127.0.0.1:*", False),
        ("tcp://127.0.0.1:0", False),
        ("ipc://*", False),
        ("ipc://", True),
        ("inproc://", True),
    ],
)
def test_parse_invalid(text: str, bind: bool) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text, bind=bind)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        parse_endpoint(b"tcp://127.0.0.1:1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["tcp://127.0.0.1:5555", "tcp://[::1]:5555", "ipc:///tmp/x", "inproc://n"]
)
def test_str_round_trips(text: str) -> None:
    assert str(parse_endpoint(text)) == text


@pytest.mark.parametrize("listen", [False, True])
def test_tap_endpoint_rejects_inproc(listen: bool) -> None:
    """The tap relays bytes; inproc has none, and the error says what would do."""
    with pytest.raises(
        ValueError, match=r"'inproc://x'.*tcp://HOST:PORT or ipc://PATH, not inproc"
    ):
        tap_parse_endpoint("inproc://x", listen=listen)


# ----------------------------------------------------------------------- bind results


async def test_bind_tcp_wildcard_host_and_port() -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind("tcp://*:0")
        host_port = ep.removeprefix("tcp://")
        host, _, port = host_port.rpartition(":")
        assert host == "0.0.0.0"
        assert int(port) > 0
        assert pull.last_endpoint == ep
        await exchange(ctx, pull, f"tcp://127.0.0.1:{port}")
        await exchange(ctx, pull, ep)  # connecting to 0.0.0.0 reaches this host too


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:0", "tcp://127.0.0.1:*", "tcp://*:*"])
async def test_bind_tcp_ephemeral_port(address: str) -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind(address)
        assert ep.startswith("tcp://")
        assert not ep.endswith((":0", ":*"))
        port = int(ep.rpartition(":")[2])
        await exchange(ctx, pull, f"tcp://127.0.0.1:{port}")


async def test_bind_tcp_host_name() -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind("tcp://localhost:0")
        # Resolved to an address (libzmq prefers IPv4 unless ZMQ_IPV6 is set).
        assert ep.startswith("tcp://127.0.0.1:")
        port = ep.rpartition(":")[2]
        await exchange(ctx, pull, f"tcp://localhost:{port}")


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
async def test_bind_tcp_ipv6() -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind("tcp://[::1]:0")
        assert ep.startswith("tcp://[::1]:")
        assert int(ep.rpartition(":")[2]) > 0
        await exchange(ctx, pull, ep)


async def test_bind_tcp_port_in_use() -> None:
    async with context() as ctx:
        first = ctx.socket(zmtp.PULL)
        ep = await first.bind("tcp://127.0.0.1:0")
        second = ctx.socket(zmtp.PULL)
        mon = second.monitor()
        with pytest.raises(OSError):
            await second.bind(ep)
        event = await mon.receive()
        assert event.type is zmtp.EventType.BIND_FAILED
        assert event.endpoint == ep
        # The failed bind left nothing behind: the socket still works.
        ep2 = await second.bind("tcp://127.0.0.1:0")
        await exchange(ctx, second, ep2)


async def test_bind_ipc_wildcard() -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind("ipc://*")
        path = ep.removeprefix("ipc://")
        assert path != "*"
        assert os.path.isabs(path)
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        await exchange(ctx, pull, ep)
        await pull.unbind(ep)
        assert not os.path.exists(path)
        assert not os.path.exists(os.path.dirname(path))  # its private directory too


async def test_ipc_file_removed_after_unbind_and_after_close(short_dir: Path) -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        a = short_dir / "a.sock"
        b = short_dir / "b.sock"
        ep_a = await pull.bind(f"ipc://{a}")
        ep_b = await pull.bind(f"ipc://{b}")
        assert (ep_a, ep_b) == (f"ipc://{a}", f"ipc://{b}")
        assert a.exists() and b.exists()
        await exchange(ctx, pull, ep_a)
        await pull.unbind(ep_a)
        assert not a.exists()
        assert b.exists()
        await exchange(ctx, pull, ep_b)
        await pull.aclose()
        assert not b.exists()


async def test_ipc_file_removed_when_context_exits(short_dir: Path) -> None:
    path = short_dir / "ctx.sock"
    async with context() as ctx:
        await ctx.socket(zmtp.PULL).bind(f"ipc://{path}")
        assert path.exists()
    assert not path.exists()


async def test_ipc_relative_path(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(short_dir)
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind("ipc://rel.sock")
        assert ep == "ipc://rel.sock"
        assert (short_dir / "rel.sock").exists()
        await exchange(ctx, pull, ep)
        await pull.unbind(ep)
        assert not (short_dir / "rel.sock").exists()


async def test_ipc_stale_socket_file_is_replaced(short_dir: Path) -> None:
    path = short_dir / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # leaves the file, like a crashed process
    assert path.exists()
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind(f"ipc://{path}")
        await exchange(ctx, pull, ep)


async def test_ipc_regular_file_is_not_removed(short_dir: Path) -> None:
    path = short_dir / "data.txt"
    path.write_bytes(b"precious")
    async with context() as ctx:
        with pytest.raises(OSError):
            await ctx.socket(zmtp.PULL).bind(f"ipc://{path}")
    assert path.read_bytes() == b"precious"


@pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX") or os.uname().sysname != "Linux",
    reason="abstract unix sockets are Linux-only",
)
async def test_ipc_abstract_namespace() -> None:
    name = f"@zmtp-test-{os.getpid()}"
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind(f"ipc://{name}")
        assert ep == f"ipc://{name}"
        assert not os.path.exists(name)
        await exchange(ctx, pull, ep)


async def test_ipc_path_too_long(short_dir: Path) -> None:
    async with context() as ctx:
        with pytest.raises((OSError, ValueError)):
            await ctx.socket(zmtp.PULL).bind(f"ipc://{short_dir}/{'x' * 120}")


async def test_inproc_bind_returns_its_name() -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        assert await pull.bind("inproc://same") == "inproc://same"
        with pytest.raises(ValueError):
            await ctx.socket(zmtp.PULL).bind("inproc://same")
        await exchange(ctx, pull, "inproc://same")
        await pull.unbind("inproc://same")
        # The name is free again.
        other = ctx.socket(zmtp.PULL)
        await other.bind("inproc://same")
        await exchange(ctx, other, "inproc://same")


async def test_inproc_names_are_per_context() -> None:
    with trio.fail_after(TIMEOUT):
        async with zmtp.Context() as a, zmtp.Context() as b:
            await a.socket(zmtp.PULL).bind("inproc://shared-name")
            await b.socket(zmtp.PULL).bind("inproc://shared-name")


# ----------------------------------------------------------------------- unbind / disconnect


async def test_unbind_and_disconnect_need_a_known_endpoint() -> None:
    async with context() as ctx:
        sock = ctx.socket(zmtp.PULL)
        ep = await sock.bind("tcp://127.0.0.1:0")
        with pytest.raises(ValueError):
            await sock.unbind("tcp://127.0.0.1:1")
        with pytest.raises(ValueError):
            await sock.disconnect(ep)  # bound, not connected
        await sock.connect("inproc://elsewhere")
        with pytest.raises(ValueError):
            await sock.unbind("inproc://elsewhere")  # connected, not bound
        await sock.disconnect("inproc://elsewhere")
        await sock.unbind(ep)
        with pytest.raises(ValueError):
            await sock.unbind(ep)


async def test_unbind_frees_the_port() -> None:
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind("tcp://127.0.0.1:0")
        await pull.unbind(ep)
        again = ctx.socket(zmtp.PULL)
        assert await again.bind(ep) == ep
        await exchange(ctx, again, ep)


async def test_connect_rejects_wildcards_and_duplicates() -> None:
    async with context() as ctx:
        push = ctx.socket(zmtp.PUSH)
        for bad in ("tcp://*:5555", "tcp://127.0.0.1:*", "tcp://127.0.0.1:0", "ipc://*"):
            with pytest.raises(ValueError):
                await push.connect(bad)
        await push.connect("tcp://127.0.0.1:1")
        with pytest.raises(ValueError):
            await push.connect("tcp://127.0.0.1:1")
        with pytest.raises(ValueError):
            await push.bind("bogus://x")
        await push.aclose(linger=0)
