"""Helpers for the ZMTP 2.0/1.0 interop tests: a scripted raw-socket peer, the byte
sequences old peers send, and the JeroMQ 0.3.6 peer (a real ZMTP 2.0 implementation).

The raw peer is how each golden byte sequence is checked against libzmq 4.3.5 first
(pyzmq as the oracle) and then against our sockets, with the very same script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from ._helpers import TIMEOUT

__all__ = [
    "JEROMQ_JAR",
    "JeroPeer",
    "RawPeer",
    "compile_jeromq_peer",
    "sig",
    "v1_frame",
    "v2_frame",
]

#: Where Debian's libjeromq-java puts JeroMQ 0.3.6 (``apt-get install libjeromq-java``).
JEROMQ_JAR = Path(os.environ.get("ZMTP_JEROMQ_JAR", "/usr/share/java/jeromq.jar"))
_PEER_SOURCE = Path(__file__).parent / "jeromq" / "LegacyPeer.java"


def sig(routing_id: bytes = b"") -> bytes:
    """The 10-byte signature libzmq (and JeroMQ) send first: padding = id length + 1."""
    return b"\xff" + (len(routing_id) + 1).to_bytes(8, "big") + b"\x7f"


def v2_frame(body: bytes, more: bool = False) -> bytes:
    """A ZMTP 2.0 frame, spelled out from RFC 15 (independently of zmtp.protocol)."""
    if len(body) <= 255:
        return bytes((int(more), len(body))) + body
    return bytes((2 | int(more),)) + len(body).to_bytes(8, "big") + body


def v1_frame(body: bytes, more: bool = False) -> bytes:
    """A ZMTP 1.0 frame, spelled out from RFC 13: the length counts the flags octet."""
    length = len(body) + 1
    if length < 255:
        return bytes((length, int(more))) + body
    return b"\xff" + length.to_bytes(8, "big") + bytes((int(more),)) + body


class RawPeer:
    """A scripted peer on a raw stream: sends bytes, expects exact bytes back."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buf = bytearray()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes (fails the test on EOF or after TIMEOUT)."""
        with trio.fail_after(TIMEOUT):
            while len(self._buf) < n:
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    raise AssertionError(f"peer closed after {bytes(self._buf)!r}, wanted {n}")
                self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def expect(self, data: bytes) -> None:
        got = await self.read(len(data))
        assert got == data, f"expected {data.hex(' ')}\n     got {got.hex(' ')}"

    async def expect_closed(self) -> bytes:
        """Read until EOF (or a reset); return what came before it."""
        with trio.fail_after(TIMEOUT):
            while True:
                try:
                    chunk = await self.stream.receive_some(65536)
                except trio.BrokenResourceError:
                    chunk = b""
                if not chunk:
                    out = bytes(self._buf)
                    self._buf.clear()
                    return out
                self._buf += chunk


def compile_jeromq_peer(out_dir: Path) -> Path:
    """Compile the JeroMQ peer into ``out_dir``; skip loudly when Java or JeroMQ is absent."""
    javac, java = shutil.which("javac"), shutil.which("java")
    if javac is None or java is None or not JEROMQ_JAR.exists():
        pytest.skip(
            "NO ZMTP 2.0 PEER: the JeroMQ tests need javac and java and "
            f"{JEROMQ_JAR} (apt-get install -y libjeromq-java default-jdk-headless; "
            ".ci/run installs them)"
        )
    subprocess.run(
        [javac, "-nowarn", "-d", str(out_dir), "-cp", str(JEROMQ_JAR), str(_PEER_SOURCE)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out_dir


class JeroPeer:
    """A JeroMQ socket in a child JVM, driven by :file:`jeromq/LegacyPeer.java`'s commands."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self._buf = b""

    async def _line(self) -> str:
        assert self.proc.stdout is not None
        with trio.fail_after(TIMEOUT + 5):  # the peer's own recv gives up after 10 s
            while b"\n" not in self._buf:
                chunk = await self.proc.stdout.receive_some(65536)
                if not chunk:
                    raise AssertionError("the JeroMQ peer exited")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    async def _do(self, command: str) -> str:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(command.encode() + b"\n")
        return await self._line()

    async def send(self, frames: list[bytes]) -> None:
        arg = ",".join(f.hex() or "-" for f in frames)
        assert await self._do(f"send {arg}") == "sent"

    async def recv(self) -> list[bytes]:
        reply = await self._do("recv")
        assert reply.startswith("msg "), reply
        return [b"" if f == "-" else bytes.fromhex(f) for f in reply[4:].split(",")]

    async def subscribe(self, topic: bytes) -> None:
        assert await self._do(f"sub {topic.hex() or '-'}") == "ok"

    @classmethod
    @asynccontextmanager
    async def open(
        cls, classes: Path, stype: str, mode: str, endpoint: str, identity: bytes = b""
    ) -> AsyncIterator[JeroPeer]:
        java = shutil.which("java")
        assert java is not None
        args = [java, "-cp", f"{JEROMQ_JAR}{os.pathsep}{classes}", "LegacyPeer"]
        args += [stype, mode, endpoint] + ([identity.hex()] if identity else [])
        proc = await trio.lowlevel.open_process(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        peer = cls(proc)
        try:
            assert await peer._line() == "ready"
            yield peer
        finally:
            with trio.CancelScope(shield=True):
                if proc.returncode is None:
                    try:
                        assert proc.stdin is not None
                        await proc.stdin.send_all(b"quit\n")
                        with trio.move_on_after(TIMEOUT):
                            await proc.wait()
                    except trio.BrokenResourceError:
                        pass
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                for pipe in (proc.stdin, proc.stdout):
                    if pipe is not None:
                        await pipe.aclose()
