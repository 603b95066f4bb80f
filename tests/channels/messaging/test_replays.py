"""SeenIds: ids are remembered for their time to live, and never more of them than the bound."""

from __future__ import annotations

from bot.channels.messaging.replays import SeenIds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_id_is_new_once_within_its_time_to_live() -> None:
    clock = Clock()
    seen = SeenIds(ttl=60, clock=clock)
    assert seen.first_time("Ev1")
    assert not seen.first_time("Ev1")
    clock.now += 59
    assert not seen.first_time("Ev1")
    clock.now += 2
    assert seen.first_time("Ev1")


def test_requests_without_an_id_are_always_new() -> None:
    seen = SeenIds()
    assert seen.first_time(None) and seen.first_time(None) and seen.first_time("")
    assert len(seen) == 0


def test_the_oldest_ids_are_forgotten_beyond_the_bound() -> None:
    seen = SeenIds(ttl=3600, max_ids=3)
    for event_id in ("a", "b", "c", "d"):
        assert seen.first_time(event_id)
    assert len(seen) == 3
    assert seen.first_time("a"), "forgotten: the bound keeps memory flat"
    assert not seen.first_time("d")


def test_expired_ids_are_dropped_from_memory() -> None:
    clock = Clock()
    seen = SeenIds(ttl=10, clock=clock)
    for n in range(100):
        seen.first_time(f"id-{n}")
    clock.now += 11
    seen.first_time("new")
    assert len(seen) == 1
