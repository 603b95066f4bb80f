"""First come, first served: each message's turn has the Rasa server's event loop to itself.

Rasa handles every message as a coroutine on one event loop. A turn is nearly
all Python work (NLU, policies, responses) with few real waits, so while ten
people write at once the loop already serves them roughly in order. A turn
that waits for the action server (a request for a person, an escalation) is
the exception: each time it waits, it goes to the back of the loop's queue
and then waits for every turn that arrived meanwhile, once per wait. Under
load such a turn took several times longer than an answer from the FAQ: the
slowest replies were the ones for people who asked for a human.

``TurnScheduler`` makes turns take the loop one at a time, oldest first:

- ``turn()`` wraps the handling of one message. A turn that finds the loop
  taken queues by arrival time and starts when every older turn is done.
- A turn keeps its place while it waits for a short call (the action
  server on the same machine, a few milliseconds): the others wait that long
  rather than overtake it.
- If a turn holds its place for ``park_after`` seconds (a slow or hanging
  action server, anything that waits for long), it is parked: the next turn
  goes, and the parked one finishes alongside the others, as Rasa would
  without this scheduler. A stuck service never stalls every conversation.
- ``outside()`` wraps a wait that is known to be long, such as sending a
  reply through a messaging platform's API: the place is given up at once and
  taken again, by age, afterwards.

Nothing here changes what a turn does or answers, only when its Python work
runs. Rasa's per-conversation lock is taken before a turn queues here, so the
two cannot wait for each other.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator, Dict, List, Optional

logger = logging.getLogger(__name__)

# Longer than the action server needs under load on the same machine (a few
# to a few tens of milliseconds), short enough that a hanging call delays the
# other conversations by at most this much.
DEFAULT_PARK_AFTER_SECONDS = 0.1


@dataclass(order=True)
class _Waiter:
    arrived: float
    sequence: int
    granted: "asyncio.Future[None]" = field(compare=False)
    task: "asyncio.Task" = field(compare=False)


class TurnScheduler:
    """Grants the event loop to one turn at a time, in order of arrival (see module docstring)."""

    def __init__(self, park_after: float = DEFAULT_PARK_AFTER_SECONDS) -> None:
        """`park_after`: seconds a turn may keep its place while it waits for something."""
        if park_after <= 0:
            raise ValueError("park_after must be positive")
        self.park_after = park_after
        self._holder: Optional[asyncio.Task] = None
        self._park_timer: Optional[asyncio.TimerHandle] = None
        self._waiting: List[_Waiter] = []
        self._arrived: Dict[asyncio.Task, float] = {}
        self._sequence = itertools.count()
        self.parked_turns = 0

    @property
    def waiting(self) -> int:
        """Turns queued for the loop now."""
        return sum(1 for waiter in self._waiting if not waiter.granted.done())

    def holds(self, task: Optional[asyncio.Task] = None) -> bool:
        """Whether `task` (default: the current task) has the loop."""
        task = task or asyncio.current_task()
        return task is not None and self._holder is task

    @asynccontextmanager
    async def turn(self, arrived: Optional[float] = None) -> AsyncIterator[None]:
        """Holds the loop for the body, after every turn that arrived earlier.

        `arrived` (the loop's clock, default now) orders the turn among the others.
        Re-entrant: a turn inside a turn of the same task runs at once.
        """
        task = asyncio.current_task()
        if task is None or task in self._arrived:
            yield
            return
        if arrived is None:
            arrived = asyncio.get_running_loop().time()
        self._arrived[task] = arrived
        try:
            await self._acquire(task, arrived)
            try:
                yield
            finally:
                self._release(task)
        finally:
            del self._arrived[task]

    @asynccontextmanager
    async def outside(self) -> AsyncIterator[None]:
        """Gives the loop up for the body (a long wait), then queues again by the turn's age."""
        task = asyncio.current_task()
        if task is None or task not in self._arrived or self._holder is not task:
            yield
            return
        self._release(task)
        try:
            yield
        finally:
            await self._acquire(task, self._arrived[task])

    async def _acquire(self, task: asyncio.Task, arrived: float) -> None:
        if self._holder is None and not self.waiting:
            self._grant(task)
            return
        waiter = _Waiter(arrived, next(self._sequence), asyncio.get_running_loop().create_future(), task)
        heapq.heappush(self._waiting, waiter)
        try:
            await waiter.granted
        except asyncio.CancelledError:
            if waiter.granted.done() and not waiter.granted.cancelled():
                # Granted just as it was cancelled: pass the loop on.
                self._release(task)
            else:
                waiter.granted.cancel()
            raise

    def _grant(self, task: asyncio.Task) -> None:
        self._holder = task
        self._park_timer = asyncio.get_running_loop().call_later(self.park_after, self._park, task)

    def _release(self, task: asyncio.Task) -> None:
        if self._holder is not task:
            return  # parked earlier: the loop has moved on already
        self._holder = None
        if self._park_timer is not None:
            self._park_timer.cancel()
            self._park_timer = None
        self._grant_next()

    def _grant_next(self) -> None:
        while self._waiting:
            waiter = heapq.heappop(self._waiting)
            if waiter.granted.done():
                continue  # cancelled while it waited
            self._grant(waiter.task)
            waiter.granted.set_result(None)
            return

    def _park(self, task: asyncio.Task) -> None:
        # The timer can only fire while the loop is free, so the holder is
        # waiting for something (it cannot be computing).
        if self._holder is not task:
            return
        self.parked_turns += 1
        logger.debug("A turn waited more than %.2f s; later turns go ahead of it.", self.park_after)
        self._holder = None
        self._park_timer = None
        self._grant_next()
