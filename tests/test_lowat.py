"""SO_RCVLOWAT while a large body arrives over TCP: asked for in clear traffic, never
on a sealed (CURVE) connection, where the sender writes a part only once it is sealed
and a receiver waiting for a large low-water mark would idle through the sealing."""

from __future__ import annotations

from typing import Any

import pytest

import zmtp
from zmtp.sockets._fdio import Descriptor

from ._helpers import bind_address, context

SERVER_PUBLIC, SERVER_SECRET = zmtp.curve_keypair()
CLIENT_PUBLIC, CLIENT_SECRET = zmtp.curve_keypair()
BODY = b"x" * (3 << 20)


@pytest.mark.parametrize("curve", [False, True])
async def test_the_low_water_mark_of_a_large_body(
    curve: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    real = Descriptor.set_lowat

    def record(self: Descriptor, lowat: int) -> None:
        asked.append(lowat)
        real(self, lowat)

    monkeypatch.setattr(Descriptor, "set_lowat", record)
    server: dict[str, Any] = {}
    client: dict[str, Any] = {}
    if curve:
        server = {"curve_server": True, "curve_secretkey": SERVER_SECRET}
        client = {
            "curve_serverkey": SERVER_PUBLIC,
            "curve_secretkey": CLIENT_SECRET,
            "curve_publickey": CLIENT_PUBLIC,
        }
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL, **server)
        ep = await pull.bind(bind_address("tcp"))
        push = ctx.socket(zmtp.PUSH, **client)
        await push.connect(ep)
        for _ in range(3):
            await push.send_multipart([BODY])
        for _ in range(3):
            assert await pull.recv_multipart() == [BODY]
    if curve:
        assert all(lowat <= 1 for lowat in asked)
    else:
        assert any(lowat > 1 for lowat in asked)
