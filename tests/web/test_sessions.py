"""Signed session tokens and the failed sign-in limit, with controlled clocks."""

from __future__ import annotations

import pytest

from bot.web.sessions import SessionSigner
from bot.web.throttle import LoginThrottle

from .conftest import SECRET


class Clock:
    """A settable clock."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        """Start at ``now``."""
        self.now = now

    def __call__(self) -> float:
        """Return the current fake time."""
        return self.now


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


def test_a_revoked_session_stays_refused(password_hashes: dict[str, str], clock: Clock) -> None:
    signer = SessionSigner(SECRET, password_hashes, 3600, clock=clock)
    first, first_session = signer.issue("ana")
    second, _ = signer.issue("ana")

    signer.revoke(first_session)

    assert signer.verify(first) is None
    assert signer.verify(second) is not None


def test_a_token_from_the_future_is_refused(password_hashes: dict[str, str], clock: Clock) -> None:
    future = Clock(clock.now + 3600)
    token, _ = SessionSigner(SECRET, password_hashes, 7200, clock=future).issue("ana")
    assert SessionSigner(SECRET, password_hashes, 7200, clock=clock).verify(token) is None


@pytest.mark.parametrize("token", [None, "", "x" * 5000, "a.b", "....", "%%.%%"])
def test_junk_tokens_are_refused(password_hashes: dict[str, str], token: str | None) -> None:
    assert SessionSigner(SECRET, password_hashes, 3600).verify(token) is None


def test_throttle_window_slides(clock: Clock) -> None:
    throttle = LoginThrottle(2, 10, window_seconds=60, clock=clock)
    throttle.record_failure("Ana", "10.0.0.1")
    clock.now += 30
    throttle.record_failure("ana", "10.0.0.1")
    assert throttle.retry_after("ana", "10.0.0.1") == pytest.approx(30)
    assert throttle.retry_after("ana", "10.0.0.2") == 0
    clock.now += 30
    assert throttle.retry_after("ana", "10.0.0.1") == 0


def test_throttle_limits_one_address_across_usernames(clock: Clock) -> None:
    throttle = LoginThrottle(5, 3, window_seconds=60, clock=clock)
    for username in ("ana", "ben", "cara"):
        throttle.record_failure(username, "10.0.0.1")
    assert throttle.retry_after("dev", "10.0.0.1") > 0
    assert throttle.retry_after("dev", "10.0.0.2") == 0


def test_success_clears_only_that_username_and_address(clock: Clock) -> None:
    throttle = LoginThrottle(2, 10, window_seconds=60, clock=clock)
    for username in ("ana", "ana", "ben", "ben"):
        throttle.record_failure(username, "10.0.0.1")
    assert throttle.retry_after("ana", "10.0.0.1") > 0
    throttle.record_success("ana", "10.0.0.1")
    assert throttle.retry_after("ana", "10.0.0.1") == 0
    assert throttle.retry_after("ben", "10.0.0.1") > 0
