"""TurnScheduler: turns take the event loop one at a time, oldest first; a waiting turn never stalls the rest."""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, List

import pytest

from bot.turn_scheduler import TurnScheduler


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


async def settle() -> None:
    """Let every ready task run until it blocks."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_waiting_turns_start_in_order_of_arrival_not_of_queueing() -> None:
    async def scenario() -> List[str]:
        scheduler = TurnScheduler()
        order: List[str] = []
        release = asyncio.Event()

        async def holder() -> None:
            async with scheduler.turn(arrived=0.0):
                await release.wait()
                order.append("holder")

        async def turn(name: str, arrived: float) -> None:
            async with scheduler.turn(arrived=arrived):
                order.append(name)

        first = asyncio.create_task(holder())
        await settle()
        # Queued in this order, but they arrived in another.
        others = [asyncio.create_task(turn(name, arrived)) for name, arrived in [("c", 3.0), ("a", 1.0), ("b", 2.0)]]
        await settle()
        assert order == [] and scheduler.waiting == 3
        release.set()
        await asyncio.gather(first, *others)
        return order

    assert run(scenario()) == ["holder", "a", "b", "c"]


def test_a_turn_keeps_its_place_during_a_short_wait() -> None:
    """A turn waiting a few ms for the action server is not overtaken by later messages."""

    async def scenario() -> List[str]:
        scheduler = TurnScheduler(park_after=5.0)
        order: List[str] = []

        async def waits_for_action_server() -> None:
            async with scheduler.turn():
                order.append("escalation starts")
                await asyncio.sleep(0.05)
                order.append("escalation ends")

        async def faq(name: str) -> None:
            async with scheduler.turn():
                order.append(name)

        escalation = asyncio.create_task(waits_for_action_server())
        await settle()
        later = [asyncio.create_task(faq(f"faq {number}")) for number in range(3)]
        await asyncio.gather(escalation, *later)
        assert scheduler.parked_turns == 0
        return order

    assert run(scenario()) == ["escalation starts", "escalation ends", "faq 0", "faq 1", "faq 2"]


def test_a_turn_that_waits_too_long_is_parked_and_the_others_go_on() -> None:
    """A hanging action server delays the other conversations by `park_after`, not by its timeout."""

    async def scenario() -> List[str]:
        scheduler = TurnScheduler(park_after=0.05)
        order: List[str] = []
        others_done = asyncio.Event()

        async def hangs() -> None:
            async with scheduler.turn():
                # Without parking the others never run and this wait times out.
                await asyncio.wait_for(others_done.wait(), timeout=30)
                order.append("slow turn ends")

        async def faq(name: str) -> None:
            async with scheduler.turn():
                order.append(name)

        slow = asyncio.create_task(hangs())
        await settle()
        await asyncio.gather(*(faq(f"faq {number}") for number in range(3)))
        others_done.set()
        await slow
        assert scheduler.parked_turns == 1
        return order

    assert run(scenario()) == ["faq 0", "faq 1", "faq 2", "slow turn ends"]


def test_outside_gives_the_loop_up_then_queues_again_by_age() -> None:
    async def scenario() -> List[str]:
        scheduler = TurnScheduler(park_after=5.0)
        order: List[str] = []
        sent = asyncio.Event()
        later_queued = asyncio.Event()

        async def sends_through_a_platform() -> None:
            async with scheduler.turn(arrived=1.0):
                async with scheduler.outside():
                    order.append("sending")
                    await sent.wait()
                order.append("first turn ends")

        async def turn(name: str, arrived: float, hold: bool = False) -> None:
            async with scheduler.turn(arrived=arrived):
                order.append(name)
                if hold:
                    later_queued.set()
                    await asyncio.sleep(0.01)

        first = asyncio.create_task(sends_through_a_platform())
        await settle()
        # While the first turn sends, a later one gets the loop ...
        second = asyncio.create_task(turn("second", 2.0, hold=True))
        await later_queued.wait()
        # ... and one more queues behind it; the first, done sending, goes before that one.
        third = asyncio.create_task(turn("third", 3.0))
        await settle()
        sent.set()
        await asyncio.gather(first, second, third)
        return order

    assert run(scenario()) == ["sending", "second", "first turn ends", "third"]


def test_a_cancelled_waiter_does_not_block_the_queue() -> None:
    async def scenario() -> List[str]:
        scheduler = TurnScheduler()
        order: List[str] = []
        release = asyncio.Event()

        async def holder() -> None:
            async with scheduler.turn():
                await release.wait()

        async def turn(name: str) -> None:
            async with scheduler.turn():
                order.append(name)

        first = asyncio.create_task(holder())
        await settle()
        doomed = asyncio.create_task(turn("cancelled"))
        survivor = asyncio.create_task(turn("survivor"))
        await settle()
        doomed.cancel()
        release.set()
        await asyncio.gather(first, survivor)
        with pytest.raises(asyncio.CancelledError):
            await doomed
        return order

    assert run(scenario()) == ["survivor"]


def test_a_cancelled_holder_passes_the_loop_on() -> None:
    async def scenario() -> List[str]:
        scheduler = TurnScheduler(park_after=5.0)
        order: List[str] = []

        async def holder() -> None:
            async with scheduler.turn():
                await asyncio.sleep(30)

        async def turn(name: str) -> None:
            async with scheduler.turn():
                order.append(name)

        first = asyncio.create_task(holder())
        await settle()
        second = asyncio.create_task(turn("next"))
        await settle()
        first.cancel()
        await second
        assert not scheduler.holds(first)
        return order

    assert run(scenario()) == ["next"]


def test_a_turn_inside_a_turn_of_the_same_task_runs_at_once() -> None:
    async def scenario() -> bool:
        scheduler = TurnScheduler()
        async with scheduler.turn():
            async with scheduler.turn():
                inner_holds = scheduler.holds()
        return inner_holds and not scheduler.holds()

    assert run(asyncio.wait_for(scenario(), timeout=5))


@pytest.mark.parametrize("park_after", [0, -1.0])
def test_park_after_must_be_positive(park_after: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        TurnScheduler(park_after=park_after)
