"""zmtp.sockets._wakeup.Wakeup: the one-task parking spot of a connection's loops."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from zmtp.sockets._wakeup import Wakeup


async def test_park_until_woken() -> None:
    spot = Wakeup()
    woken = []
    assert not spot
    async with trio.open_nursery() as nursery:

        async def waiter() -> None:
            await spot.park()
            woken.append(True)

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert spot  # parked
        spot.unpark_all()
        assert not spot
    assert woken == [True]
    spot.unpark_all()  # nobody parked: nothing happens


async def test_cancelled_park_leaves_the_spot_free() -> None:
    spot = Wakeup()
    with trio.move_on_after(0.01):
        await spot.park()
    assert not spot
    async with trio.open_nursery() as nursery:
        nursery.start_soon(spot.park)
        await trio.testing.wait_all_tasks_blocked()
        spot.unpark_all()


async def test_one_task_only() -> None:
    spot = Wakeup()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(spot.park)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError, match="one task"):
            await spot.park()
        spot.unpark_all()
