"""Delivered-once: a platform that sends the same event again gets a success answer, and it is processed once.

Slack retries an event it thinks failed (no 200 within 3 s, a 5xx) up to
three times with the same `event_id`; Twilio sends a message again with the
same `MessageSid` when a webhook times out, and its signature has no
timestamp, so a captured request stays valid forever. Processing a repeat
would answer the person twice and, for a risk message, raise a second
escalation.

`SeenIds` remembers the ids of signed requests it has let through for `ttl`
seconds, at most `max_ids` of them (the oldest are forgotten first), in this
process's memory. With several replicas of the Rasa server, each replica has
its own memory: a repeat that reaches a replica other than the first is
processed again. Route a platform's webhooks to one replica, or replace this
with a shared store (Redis `SET key 1 NX EX ttl`) before running several.
A restart forgets every id as well.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Optional

# Slack's last retry comes about 5 minutes after the event, Twilio's within
# seconds; an hour leaves room for a slow platform and a replayed capture.
DEFAULT_TTL_SECONDS = 3600.0
# About 100 bytes an id: a few megabytes at most.
DEFAULT_MAX_IDS = 50_000


class SeenIds:
    """A bounded set of recently seen event ids that expire (see the module docstring)."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_ids: int = DEFAULT_MAX_IDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_ids = max_ids
        self._clock = clock
        self._seen: "OrderedDict[str, float]" = OrderedDict()

    def first_time(self, event_id: Optional[str]) -> bool:
        """True the first time `event_id` is seen within `ttl` (and records it); always True for no id."""
        if not event_id:
            return True
        now = self._clock()
        self._forget_expired(now)
        if event_id in self._seen:
            return False
        self._seen[event_id] = now + self.ttl
        while len(self._seen) > self.max_ids:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)

    def _forget_expired(self, now: float) -> None:
        # Ids are kept in the order they were seen, so the expired ones come first.
        while self._seen:
            oldest, expires = next(iter(self._seen.items()))
            if expires > now:
                return
            del self._seen[oldest]
