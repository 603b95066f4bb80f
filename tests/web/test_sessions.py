"""Signed session tokens, sign-outs and the failed sign-in limit, with controlled clocks.

Sign-outs and the limit are in the database, so they are tested on SQLite and
on the real PostgreSQL, across engines as across console restarts.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.escalation.store import UTC
from bot.web.database import open_console_engine, sign_in_attempts
from bot.web.sessions import RevokedSessions, SessionSigner
from bot.web.throttle import LoginThrottle, SignInThrottledError

from .conftest import SECRET, ConsoleDatabase


class Clock:
    """A settable clock."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        """Start at ``now``."""
        self.now = now

    def __call__(self) -> float:
        """Return the current fake time."""
        return self.now

    def utc(self) -> datetime:
        """Return the current fake time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now, UTC)


@pytest.fixture
def clock() -> Clock:
    """Return a fresh fake clock."""
    return Clock()


def test_token_is_valid_until_it_expires(password_hashes: dict[str, str], clock: Clock) -> None:
    signer = SessionSigner(SECRET, password_hashes, 3600, clock=clock)
    token, session = signer.issue("ana")

    assert signer.verify(token) == session
    clock.now += 3599
    assert signer.verify(token) == session
    clock.now += 1
    assert signer.verify(token) is None


def test_changing_the_password_ends_existing_sessions(password_hashes: dict[str, str], clock: Clock) -> None:
    token, _ = SessionSigner(SECRET, password_hashes, 3600, clock=clock).issue("ana")
    changed = {**password_hashes, "ana": password_hashes["ben"]}
    assert SessionSigner(SECRET, changed, 3600, clock=clock).verify(token) is None
    assert SessionSigner(SECRET, password_hashes, 3600, clock=clock).verify(token)


def test_a_revoked_session_stays_refused_after_a_restart(
    password_hashes: dict[str, str], clock: Clock, console_database: ConsoleDatabase
) -> None:
    signer = SessionSigner(SECRET, password_hashes, 3600, clock=clock)
    first, first_session = signer.issue("ana")
    second, second_session = signer.issue("ana")
    engine = open_console_engine(console_database.url, console_database.schema)
    RevokedSessions(engine, clock=clock).revoke(first_session)
    engine.dispose()

    # A new engine, as a restarted console process has.
    restarted = open_console_engine(console_database.url, console_database.schema)
    try:
        revoked = RevokedSessions(restarted, clock=clock)
        assert revoked.is_revoked(first_session)
        assert not revoked.is_revoked(second_session)
        assert signer.verify(first) == first_session  # the signature alone is still good
        revoked.revoke(first_session)  # signing out twice is harmless
        assert revoked.is_revoked(first_session)
    finally:
        restarted.dispose()


def test_expired_sign_outs_are_forgotten(
    password_hashes: dict[str, str], clock: Clock, console_engine: sa.engine.Engine
) -> None:
    signer = SessionSigner(SECRET, password_hashes, 60, clock=clock)
    _, old = signer.issue("ana")
    revoked = RevokedSessions(console_engine, clock=clock)
    revoked.revoke(old)
    clock.now += 61
    _, new = signer.issue("ben")
    revoked.revoke(new)
    assert not revoked.is_revoked(old)
    assert revoked.is_revoked(new)


def test_a_token_from_the_future_is_refused(password_hashes: dict[str, str], clock: Clock) -> None:
    future = Clock(clock.now + 3600)
    token, _ = SessionSigner(SECRET, password_hashes, 7200, clock=future).issue("ana")
    assert SessionSigner(SECRET, password_hashes, 7200, clock=clock).verify(token) is None


@pytest.mark.parametrize("token", [None, "", "x" * 5000, "a.b", "....", "%%.%%"])
def test_junk_tokens_are_refused(password_hashes: dict[str, str], token: str | None) -> None:
    assert SessionSigner(SECRET, password_hashes, 3600).verify(token) is None


# The failed sign-in limit ------------------------------------------------------


def _throttle(engine: sa.engine.Engine, clock: Clock, per_pair: int, per_address: int) -> LoginThrottle:
    return LoginThrottle(engine, SECRET, per_pair, per_address, window_seconds=60, clock=clock.utc)


def _fail(throttle: LoginThrottle, username: str, address: str) -> None:
    throttle.begin(username, address)  # counted; left as it is, it is a failure


def test_throttle_window_slides(console_engine: sa.engine.Engine, clock: Clock) -> None:
    throttle = _throttle(console_engine, clock, 2, 10)
    _fail(throttle, "Ana", "10.0.0.1")
    clock.now += 30
    _fail(throttle, "ana", "10.0.0.1")
    assert throttle.retry_after("ana", "10.0.0.1") == pytest.approx(30)
    with pytest.raises(SignInThrottledError) as refused:
        throttle.begin("ana", "10.0.0.1")
    assert refused.value.retry_after_seconds == pytest.approx(30)
    assert throttle.retry_after("ana", "10.0.0.2") == 0
    clock.now += 30
    assert throttle.retry_after("ana", "10.0.0.1") == 0
    throttle.begin("ana", "10.0.0.1")


def test_throttle_limits_one_address_across_usernames(console_engine: sa.engine.Engine, clock: Clock) -> None:
    throttle = _throttle(console_engine, clock, 5, 3)
    for username in ("ana", "ben", "cara"):
        _fail(throttle, username, "10.0.0.1")
    assert throttle.retry_after("dev", "10.0.0.1") > 0
    assert throttle.retry_after("dev", "10.0.0.2") == 0


def test_success_clears_only_that_username_and_address(console_engine: sa.engine.Engine, clock: Clock) -> None:
    throttle = _throttle(console_engine, clock, 3, 10)
    for username in ("ana", "ana", "ben", "ben"):
        _fail(throttle, username, "10.0.0.1")
    throttle.succeeded(throttle.begin("ana", "10.0.0.1"))
    assert throttle.retry_after("ana", "10.0.0.1") == 0
    _fail(throttle, "ben", "10.0.0.1")
    assert throttle.retry_after("ben", "10.0.0.1") > 0


def test_throttle_survives_a_restart(console_database: ConsoleDatabase, clock: Clock) -> None:
    engine = open_console_engine(console_database.url, console_database.schema)
    throttle = _throttle(engine, clock, 2, 10)
    _fail(throttle, "ana", "10.0.0.1")
    _fail(throttle, "ana", "10.0.0.1")
    engine.dispose()

    restarted = open_console_engine(console_database.url, console_database.schema)
    try:
        with pytest.raises(SignInThrottledError):
            _throttle(restarted, clock, 2, 10).begin("ana", "10.0.0.1")
    finally:
        restarted.dispose()


def test_usernames_are_not_stored_readably(console_engine: sa.engine.Engine, clock: Clock) -> None:
    _fail(_throttle(console_engine, clock, 5, 10), "my-password-typed-as-username", "10.0.0.1")
    with console_engine.connect() as conn:
        keys = conn.execute(sa.select(sign_in_attempts.c.key)).scalars().all()
    assert len(keys) == 2
    assert all("password" not in key and "10.0.0.1" not in key for key in keys)


@pytest.mark.parametrize("threads", [12])
def test_concurrent_attempts_never_exceed_the_limit(
    console_database: ConsoleDatabase, clock: Clock, threads: int
) -> None:
    """Attempts racing from many connections at once: exactly `limit` of them are let through."""
    limit = 3
    engines = [open_console_engine(console_database.url, console_database.schema) for _ in range(threads)]
    start = threading.Barrier(threads)
    outcomes: list[str] = []

    def attempt(engine: sa.engine.Engine) -> None:
        throttle = _throttle(engine, clock, limit, 100)
        start.wait()
        try:
            throttle.begin("ana", "10.0.0.1")
            outcomes.append("counted")
        except SignInThrottledError:
            outcomes.append("refused")

    workers = [threading.Thread(target=attempt, args=(engine,)) for engine in engines]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for engine in engines:
        engine.dispose()
    assert sorted(outcomes) == ["counted"] * limit + ["refused"] * (threads - limit)


def test_old_attempts_are_pruned(console_engine: sa.engine.Engine, clock: Clock) -> None:
    throttle = _throttle(console_engine, clock, 5, 10)
    _fail(throttle, "ana", "10.0.0.1")
    clock.now += 61
    _fail(throttle, "ben", "10.0.0.2")
    with console_engine.connect() as conn:
        times = conn.execute(sa.select(sign_in_attempts.c.at)).scalars().all()
    assert times and all(at > clock.utc() - timedelta(seconds=60) for at in times)


