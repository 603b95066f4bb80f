"""Limit on failed console sign-ins, per username+address and per address, kept in the database.

An attempt is counted before its password is checked, in the same transaction
that reads the count: concurrent wrong passwords queue on a row lock of their
key (PostgreSQL) or on the database write lock (SQLite), so they can never get
more tries than the limit between them. A correct password then removes the
attempt again, with the earlier failures of that username from that address.

Keys are stored as HMACs: a username typed into the sign-in form is sometimes
a password, and it should not be readable in the database.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from bot.escalation.store import utc_now
from bot.web.database import sign_in_attempts, sign_in_keys

# Separates this key's use from any other HMAC made with the same secret.
_KEY_CONTEXT = b"clinician-console-sign-in-throttle-v1"


class SignInThrottledError(Exception):
    """Too many recent failed sign-ins for this username and address, or this address."""

    def __init__(self, retry_after_seconds: float) -> None:
        """Keep how long until another try is allowed."""
        super().__init__(f"retry after {retry_after_seconds:.0f} s")
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class SignInAttempt:
    """A counted sign-in attempt whose password is about to be checked."""

    attempt_ids: tuple[int, ...]
    pair_key: str


class LoginThrottle:
    """Counts sign-in attempts in a sliding window and refuses those over the limit.

    Failures are counted per (username, address) pair rather than per username
    alone, so someone guessing from elsewhere cannot lock a clinician out of the
    console during an emergency; a second, higher limit per address slows down
    guessing across many usernames.
    """

    def __init__(
        self,
        engine: Engine,
        secret: str,
        max_per_user_and_address: int,
        max_per_address: int,
        window_seconds: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """Set the limits; ``clock`` returns aware UTC datetimes (replaceable in tests)."""
        self._engine = engine
        self._key = hmac.new(secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
        self.max_per_user_and_address = max_per_user_and_address
        self.max_per_address = max_per_address
        self.window = timedelta(seconds=window_seconds)
        self._clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def _hashed(self, *parts: str) -> str:
        return hmac.new(self._key, "\0".join(parts).encode(), hashlib.sha256).hexdigest()

    def _keys(self, username: str, address: str) -> tuple[str, str]:
        return self._hashed("user", username.casefold(), address), self._hashed("address", address)

    def begin(self, username: str, address: str) -> SignInAttempt:
        """Count one attempt, or raise SignInThrottledError if it is over a limit.

        Call ``succeeded`` after a correct password; an attempt left as it is
        counts as a failure until it leaves the window.
        """
        now = self._clock()
        pair_key, address_key = self._keys(username, address)
        limits = ((pair_key, self.max_per_user_and_address), (address_key, self.max_per_address))
        with self._engine.begin() as conn:
            self._lock_keys(conn, sorted({pair_key, address_key}), now)
            waits = [self._wait(conn, key, limit, now) for key, limit in limits]
            if max(waits) > 0:
                raise SignInThrottledError(max(waits))
            ids = tuple(
                conn.execute(sign_in_attempts.insert().values(key=key, at=now)).inserted_primary_key[0]
                for key, _ in limits
            )
        self._forget_old(now)
        return SignInAttempt(attempt_ids=ids, pair_key=pair_key)

    def retry_after(self, username: str, address: str) -> float:
        """Return seconds until another try is allowed; 0 when it is allowed now."""
        now = self._clock()
        pair_key, address_key = self._keys(username, address)
        with self._engine.connect() as conn:
            return max(
                self._wait(conn, pair_key, self.max_per_user_and_address, now),
                self._wait(conn, address_key, self.max_per_address, now),
            )

    def succeeded(self, attempt: SignInAttempt) -> None:
        """Remove a correct attempt and the earlier failures of its username from its address."""
        with self._engine.begin() as conn:
            conn.execute(sign_in_attempts.delete().where(sign_in_attempts.c.id.in_(attempt.attempt_ids)))
            conn.execute(sign_in_attempts.delete().where(sign_in_attempts.c.key == attempt.pair_key))

    def _lock_keys(self, conn: Connection, keys: Sequence[str], now: datetime) -> None:
        # Sorted, so two attempts never take the same two row locks in opposite orders.
        for key in keys:
            statement = self._insert(sign_in_keys).values(key=key, last_attempt_at=now)
            conn.execute(
                statement.on_conflict_do_update(index_elements=["key"], set_={"last_attempt_at": now})
            )

    def _wait(self, conn: Connection, key: str, limit: int, now: datetime) -> float:
        recent = conn.execute(
            sa.select(sign_in_attempts.c.at)
            .where(sign_in_attempts.c.key == key, sign_in_attempts.c.at > now - self.window)
            .order_by(sign_in_attempts.c.at.desc())
            .limit(limit)
        ).scalars().all()
        if len(recent) < limit:
            return 0.0
        # The try that frees a place is the oldest of the last `limit` leaving the window.
        return max((recent[-1] + self.window - now).total_seconds(), 0.001)

    def _forget_old(self, now: datetime) -> None:
        cutoff = now - self.window
        stale_keys = sa.select(sign_in_keys.c.key).where(sign_in_keys.c.last_attempt_at <= cutoff)
        if self._engine.dialect.name == "postgresql":
            # A key another sign-in holds is skipped, not waited for: no lock cycles.
            stale_keys = stale_keys.with_for_update(skip_locked=True)
        with self._engine.begin() as conn:
            conn.execute(sign_in_attempts.delete().where(sign_in_attempts.c.at <= cutoff))
            conn.execute(sign_in_keys.delete().where(sign_in_keys.c.key.in_(stale_keys.scalar_subquery())))
