"""An ipc listener owns the socket file it created, and only that file.

Closing (or unbinding) removes the file only if it is still the one the bind created
(same device and inode): a restarted instance that has bound the same path since keeps
its file and its clients.  A stale socket file left by a dead process is replaced on
bind; anything that is not a socket is never removed.  (``zmtp/sockets/_transports.py``:
``open_listener``, ``Listening.aclose``.)

These use real ipc sockets but no libzmq.  Paths are in ``tmp_path``.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import zmtp
from zmtp.sockets import Socket

from ._helpers import TIMEOUT, context


def identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    return st.st_dev, st.st_ino


async def let_go(sock: Socket, endpoint: str, how: str) -> None:
    if how == "unbind":
        await sock.unbind(endpoint)
    else:
        await sock.aclose()


async def reaches(ctx: zmtp.Context, bound: Socket, path: Path) -> None:
    """A PUSH connecting to ``path`` gets a message through to the bound PULL."""
    push = ctx.socket(zmtp.PUSH)
    await push.connect(f"ipc://{path}")
    await push.send_multipart([b"hello", str(path).encode()])
    assert await bound.recv_multipart() == [b"hello", str(path).encode()]
    await push.aclose()


@contextmanager
def raw_listener(path: Path) -> Iterator[socket.socket]:
    """A plain AF_UNIX listener at ``path`` (another program, as far as we know)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        sock.bind(str(path))
        sock.listen(1)
        yield sock
    finally:
        sock.close()


def raw_reaches(listener: socket.socket, path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(TIMEOUT)
        client.connect(str(path))
        conn, _ = listener.accept()
        with conn:
            client.sendall(b"ping")
            assert conn.recv(4) == b"ping"


# ----------------------------------------------------------------------- (a) our own file


@pytest.mark.parametrize("how", ["unbind", "close"])
async def test_our_file_goes_when_we_let_go(tmp_path: Path, how: str) -> None:
    path = tmp_path / "s.sock"
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind(f"ipc://{path}")
        identity(path)
        await reaches(ctx, pull, path)
        await let_go(pull, ep, how)
        assert not os.path.lexists(path)


# ----------------------------------------------------------------------- (b) a successor's file


@pytest.mark.parametrize("how", ["unbind", "close"])
async def test_a_successors_file_survives_us(tmp_path: Path, how: str) -> None:
    """A restarted instance unlinks the path and binds it again while we still run;
    when we let go, its file stays and its clients still reach it."""
    path = tmp_path / "s.sock"
    async with context() as ctx:
        old = ctx.socket(zmtp.PULL)
        ep = await old.bind(f"ipc://{path}")
        ours = identity(path)
        async with context() as ctx2:
            os.unlink(path)
            new = ctx2.socket(zmtp.PULL)
            await new.bind(f"ipc://{path}")
            theirs = identity(path)
            assert theirs != ours
            await let_go(old, ep, how)
            assert identity(path) == theirs
            await reaches(ctx2, new, path)
            await new.aclose()
            assert not os.path.lexists(path)  # and the successor removes its own


async def test_a_successor_binding_over_our_live_file_keeps_it(tmp_path: Path) -> None:
    """A successor that takes our live file for a stale one (as libzmq also does)
    replaces it; our close leaves the successor's file alone."""
    path = tmp_path / "s.sock"
    async with context() as ctx:
        old = ctx.socket(zmtp.PULL)
        await old.bind(f"ipc://{path}")
        ours = identity(path)
        new = ctx.socket(zmtp.PULL)
        await new.bind(f"ipc://{path}")
        theirs = identity(path)
        assert theirs != ours
        await old.aclose()
        assert identity(path) == theirs
        await reaches(ctx, new, path)


@pytest.mark.parametrize("how", ["unbind", "close"])
async def test_another_programs_file_survives_us(tmp_path: Path, how: str) -> None:
    path = tmp_path / "s.sock"
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind(f"ipc://{path}")
        os.unlink(path)
        with raw_listener(path) as listener:
            theirs = identity(path)
            await let_go(pull, ep, how)
            assert identity(path) == theirs
            raw_reaches(listener, path)


# ----------------------------------------------------------------------- (c) a stale file


async def test_a_stale_socket_file_is_replaced_and_then_ours(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # a process that died without cleaning up
    identity(path)
    with (
        pytest.raises(ConnectionRefusedError),
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe,
    ):
        probe.connect(str(path))  # nobody listens there
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        await pull.bind(f"ipc://{path}")
        # (The new file may well get the freed inode number: only reaching it tells.)
        identity(path)
        await reaches(ctx, pull, path)
        await pull.aclose()
        assert not os.path.lexists(path)  # the replacement was ours to remove


# ----------------------------------------------------------------------- (d) not a socket


async def test_a_regular_file_at_the_path_is_never_removed(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b"precious")
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        with pytest.raises(OSError):
            await pull.bind(f"ipc://{path}")
        assert path.read_bytes() == b"precious"
        # The failed bind left nothing behind: the socket still binds elsewhere.
        other = tmp_path / "s.sock"
        await pull.bind(f"ipc://{other}")
        await reaches(ctx, pull, other)
        await pull.aclose()
    assert path.read_bytes() == b"precious"


@pytest.mark.parametrize("how", ["unbind", "close"])
async def test_a_regular_file_put_in_our_place_survives_us(tmp_path: Path, how: str) -> None:
    path = tmp_path / "s.sock"
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL)
        ep = await pull.bind(f"ipc://{path}")
        os.unlink(path)
        path.write_bytes(b"someone else's")
        await let_go(pull, ep, how)
        assert path.read_bytes() == b"someone else's"
