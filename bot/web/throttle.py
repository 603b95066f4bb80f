"""In-memory limit on failed console sign-ins, per username+address and per address."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# Bounds memory when many addresses or usernames are tried; oldest keys go first.
MAX_TRACKED_KEYS = 10_000


class LoginThrottle:
    """Counts failed sign-ins in a sliding window and says when to refuse more.

    Failures are counted per (username, address) pair rather than per username
    alone, so someone guessing from elsewhere cannot lock a clinician out of the
    console during an emergency; a second, higher limit per address slows down
    guessing across many usernames.
    """

    def __init__(
        self,
        max_per_user_and_address: int,
        max_per_address: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Set the limits; ``clock`` is replaceable in tests."""
        self.max_per_user_and_address = max_per_user_and_address
        self.max_per_address = max_per_address
        self.window_seconds = window_seconds
        self._clock = clock
        self._failures: dict[tuple[str, ...], deque[float]] = {}

    def _recent(self, key: tuple[str, ...], now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window_seconds:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    @staticmethod
    def _keys(username: str, address: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return ("user", username.casefold(), address), ("address", address)

    def retry_after(self, username: str, address: str) -> float:
        """Return seconds until another try is allowed; 0 when it is allowed now."""
        now = self._clock()
        waits = []
        pair_key, address_key = self._keys(username, address)
        for key, limit in (
            (pair_key, self.max_per_user_and_address),
            (address_key, self.max_per_address),
        ):
            failures = self._recent(key, now)
            if len(failures) >= limit:
                waits.append(failures[-limit] + self.window_seconds - now)
        return max(waits, default=0.0)

    def record_failure(self, username: str, address: str) -> None:
        """Count one failed sign-in."""
        now = self._clock()
        for key in self._keys(username, address):
            if key not in self._failures and len(self._failures) >= MAX_TRACKED_KEYS:
                del self._failures[next(iter(self._failures))]
            self._failures.setdefault(key, deque()).append(now)

    def record_success(self, username: str, address: str) -> None:
        """Forget the failures of this username from this address."""
        pair_key, _ = self._keys(username, address)
        self._failures.pop(pair_key, None)
