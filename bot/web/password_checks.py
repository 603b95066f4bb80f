"""At most a few password checks at once, and a short queue; the rest are refused at once.

A scrypt check costs about 0.3 s of one core and 32 MiB. Without a bound, a
flood of sign-ins would run one per thread and take every core of a small
machine from the chat the assistant must keep answering. Checks run in a pool
of ``concurrency`` threads; at most ``queue`` more wait for a place, and an
attempt beyond that is answered "busy" without hashing anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")


class PasswordChecksBusyError(Exception):
    """Every place for a password check is taken; try again shortly."""


class PasswordCheckPool:
    """Runs password checks in a bounded thread pool with a bounded queue (use from one event loop)."""

    def __init__(self, concurrency: int, queue: int) -> None:
        """Allow ``concurrency`` checks at once and ``queue`` more waiting."""
        if concurrency < 1 or queue < 0:
            raise ValueError("concurrency must be at least 1 and queue at least 0")
        self.capacity = concurrency + queue
        self.admitted = 0
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="password-check")

    def admit(self) -> None:
        """Take a place for one check, or raise PasswordChecksBusyError; pair with ``run`` or ``release``."""
        if self.admitted >= self.capacity:
            raise PasswordChecksBusyError
        self.admitted += 1

    def release(self) -> None:
        """Give back a place taken by ``admit`` without running a check."""
        self.admitted -= 1

    async def run(self, check: Callable[..., _T], *args: object) -> _T:
        """Run ``check(*args)`` in the pool, in the place taken by ``admit``.

        The place is given back when the check has finished in its thread, not
        when the caller stops waiting: a client that disconnects cannot make
        room for more checks than the pool runs.
        """
        loop = asyncio.get_running_loop()
        try:
            future = self._executor.submit(check, *args)
        except RuntimeError:  # the pool was closed: the server is stopping
            self.release()
            raise
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self.release))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop the threads once the checks under way have finished."""
        self._executor.shutdown(wait=True, cancel_futures=True)
