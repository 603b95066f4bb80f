"""End to end: a real Rasa server logs a fallback, scrubbed, and never a risk message."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from bot.unanswered.decision import FALLBACK, LOW_CONFIDENCE, unanswered_reason
from bot.unanswered.store import UnansweredStore
from tests.unanswered.conftest import RunningAssistant, new_sender

pytestmark = pytest.mark.e2e

# An unclear question with a name in it. (A message with a phone number or email is taken as contact
# details, never listed; scrubbing those is covered by test_scrub.py.)
FALLBACK_MESSAGE = "Dr Sarah Jones said something about sessions and the law, which is it?"
RISK_MESSAGE = "I want to end my life. What about psilocybin? Mail me at risky.person@example.org"
STORE_WAIT_SECONDS = 60


def _unanswered(assistant: RunningAssistant, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "unanswered", *args],
        env=assistant.env,
        cwd=assistant.settings.project_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _wait_for_stored(assistant: RunningAssistant, count: int) -> None:
    """The broker writes in the background: wait (bounded) until `count` rows are there."""
    store = UnansweredStore(assistant.settings.unanswered.db_url)
    deadline = time.monotonic() + STORE_WAIT_SECONDS
    try:
        while len(store.questions()) < count and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        store.dispose()


def test_a_fallback_is_listed_scrubbed_and_a_risk_message_never(assistant_with_log: RunningAssistant) -> None:
    assistant = assistant_with_log
    risk_sender = new_sender()
    replies = assistant.say(RISK_MESSAGE, risk_sender)
    assert "988" in " ".join(r.get("text", "") for r in replies), "the risk message got the crisis reply"

    answered_sender = new_sender()
    assistant.say("what is ptsd", answered_sender)

    sender = new_sender()
    assistant.say(FALLBACK_MESSAGE, sender)
    assert unanswered_reason(assistant.latest_parse_data(sender), 0.6) in (FALLBACK, LOW_CONFIDENCE), (
        "precondition: the model no longer falls back on this message; pick another unclear question"
    )

    # One writer thread keeps the order: once the fallback is stored, the earlier messages were decided.
    _wait_for_stored(assistant, 1)
    today = datetime.now(timezone.utc).date()
    out = _unanswered(assistant, "--since", today.isoformat())

    assert out.startswith(f"Unanswered questions since {today.isoformat()}: 1 message in 1 group\n")
    assert (
        '1 × "Dr [NAME] said something about sessions and the law, which is it?"' in out
    )
    for private in ("Sarah", "Jones", sender, risk_sender, answered_sender):
        assert private not in out
    for never in ("end my life", "risky.person", "what is ptsd"):
        assert never not in out

    tomorrow = (today + timedelta(days=1)).isoformat()
    assert _unanswered(assistant, "--since", tomorrow) == f"No unanswered questions since {tomorrow}.\n"
