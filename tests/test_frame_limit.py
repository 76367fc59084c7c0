"""The frame-size ceiling: a peer cannot make us hold more than this process could.

With ``maxmsgsize`` unset a frame header announcing more than the process could ever
hold (physical memory, RLIMIT_AS, RLIMIT_DATA: the lowest) is refused at once, as
libzmq's failed allocation refuses it; the peer is dropped with a log line saying why,
and the socket and its other peers carry on (zmtp/sockets/_limits.py).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

import pytest
import trio

from zmtp.sockets._limits import frame_limit, memory_ceiling

from ._helpers import STREAM_TRANSPORTS, RawPeer, logged, served_pull

MiB = 1024 * 1024


@pytest.fixture
def fresh_ceiling() -> Iterator[None]:
    memory_ceiling.cache_clear()
    yield
    memory_ceiling.cache_clear()


def test_the_users_maxmsgsize_is_the_limit() -> None:
    assert frame_limit(0) == (0, "")
    assert frame_limit(1234) == (1234, "")


def test_without_maxmsgsize_the_limit_is_what_the_process_could_hold(fresh_ceiling: None) -> None:
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit, note = frame_limit(-1)
    assert 0 < limit <= physical
    assert "maxmsgsize" in note


def test_a_lower_rlimit_wins(monkeypatch: pytest.MonkeyPatch, fresh_ceiling: None) -> None:
    real = resource.getrlimit

    def getrlimit(which: int) -> tuple[int, int]:
        if which == resource.RLIMIT_AS:
            return 512 * MiB, resource.RLIM_INFINITY
        return real(which)

    monkeypatch.setattr(resource, "getrlimit", getrlimit)
    assert memory_ceiling() == (512 * MiB, "RLIMIT_AS")


def test_nothing_known_still_gives_a_finite_limit(
    monkeypatch: pytest.MonkeyPatch, fresh_ceiling: None
) -> None:
    def no_sysconf(name: str) -> int:
        raise ValueError(name)

    monkeypatch.setattr(os, "sysconf", no_sysconf)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY,) * 2)
    limit, source = memory_ceiling()
    assert limit == 1 << 48 and source == "no known memory limit"


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_a_peer_announcing_2_to_the_62_is_dropped_at_the_header(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The attack: a LONG frame header announcing 2^62 bytes, then a trickle of body.
    # Before the ceiling we preallocated 8 MiB and then kept whatever arrived; now the
    # header alone ends the connection and the trickle goes nowhere.
    caplog.set_level("INFO", logger="zmtp")
    async with served_pull(transport) as (_, pull, _good, ep):
        mon = pull.monitor()
        bad = await RawPeer.push(ep)
        before = rss()
        header = bytes((0x02,)) + (1 << 62).to_bytes(8, "big")
        sent = 0
        with pytest.raises((trio.BrokenResourceError, trio.ClosedResourceError)):
            await bad.send_raw(header)
            chunk = b"\0" * MiB
            while sent < 64 * MiB:  # far more than the socket may hold for it
                await bad.send_raw(chunk)
                sent += len(chunk)
            raise AssertionError("64 MiB went through: the peer was never dropped")
        grown = rss() - before
        assert grown < 16 * MiB, f"memory grew by {grown} bytes for a refused frame"
        async for event in mon:
            if event.type.name == "DISCONNECTED" and "exceeds the limit" in event.reason:
                break
        assert logged(caplog, "dropping", "exceeds the limit", "maxmsgsize unset")
        await bad.aclose()


@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_the_users_maxmsgsize_still_applies(transport: str) -> None:
    async with served_pull(transport, maxmsgsize=1000) as (_, _pull, _good, ep):
        bad = await RawPeer.push(ep)
        await bad.send_offending(bytes((0x02,)) + (1001).to_bytes(8, "big"))
        await bad.pump_until_closed()
        await bad.aclose()
