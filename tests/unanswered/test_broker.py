"""The event broker inside Rasa: decides, scrubs and writes in the background, never in the way."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import date
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest
import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.core.utils import AvailableEndpoints
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot.settings import PROJECT_ROOT
from bot.unanswered import broker as broker_module
from bot.unanswered.broker import UnansweredQuestionsBroker
from bot.unanswered.config import UnansweredConfig
from bot.unanswered.decision import FALLBACK, LOW_CONFIDENCE, UnansweredQuestion
from bot.unanswered.store import UnansweredStore
from tests.unanswered.test_decision import RISK_URGENT, parse_data, user_event

BROKER_TYPE = "bot.unanswered.broker.UnansweredQuestionsBroker"
SENDER = "conversation-7f3a9c"
WAIT = 30.0


class BlockingSink:
    """A database that hangs until released, to show nobody waits for it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.written: List[UnansweredQuestion] = []

    def add(self, questions: Sequence[UnansweredQuestion]) -> None:
        self.entered.set()
        self.release.wait(WAIT)
        self.written.extend(questions)


def _fallback(text: str) -> Dict[str, Any]:
    return user_event(text, parse_data("nlu_fallback", 0.7, "faq/what_is_mdma", 0.2, ["nlu_fallback", "faq"]), SENDER)


def test_rasa_loads_the_broker_from_the_project_endpoints(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never-opened.db'}"
    monkeypatch.setenv("UNANSWERED_DB_URL", url)
    monkeypatch.setenv("UNANSWERED_MIN_ANSWER_CONFIDENCE", "0.45")
    endpoints = AvailableEndpoints.read_endpoints(str(PROJECT_ROOT / "endpoints.yml"))
    assert endpoints.event_broker is not None and endpoints.event_broker.type == BROKER_TYPE
    broker = asyncio.run(EventBroker.create(endpoints.event_broker))
    assert isinstance(broker, UnansweredQuestionsBroker)
    assert broker.config == UnansweredConfig(url, 0.45)
    assert broker.is_ready()
    asyncio.run(broker.close())
    assert not (tmp_path / "never-opened.db").exists()  # no question, no database work


def test_keeps_only_unanswered_questions_published_by_a_rasa_tracker_store(db_url: str) -> None:
    broker = UnansweredQuestionsBroker(UnansweredConfig(db_url, 0.6))
    asyncio.run(_converse(broker))
    assert broker.flush(WAIT)
    asyncio.run(broker.close())

    store = UnansweredStore(db_url)
    try:
        stored = store.questions()
    finally:
        store.dispose()
    today = date.today()
    assert [(q.reason, q.text) for q in stored] == [
        (FALLBACK, "What about psilocybin? Ask Dr [NAME] at [EMAIL]"),
        (LOW_CONFIDENCE, "does medicare pay"),
    ]
    assert all(abs((q.received_on - today).days) <= 1 for q in stored)
    engine = sa.create_engine(db_url, future=True)
    try:
        with engine.connect() as connection:
            everything = repr(connection.execute(sa.text("SELECT * FROM unanswered_questions")).all())
    finally:
        engine.dispose()
    for private in (SENDER, "sarah@", "Sarah", "end my life"):
        assert private not in everything


async def _converse(broker: UnansweredQuestionsBroker) -> None:
    """Saves a conversation the way the Rasa server does, which publishes its new events."""
    tracker_store = InMemoryTrackerStore(Domain.empty(), event_broker=broker)
    messages = [
        ("What about psilocybin? Ask Dr Sarah Jones at sarah@example.org", _fallback("x")["parse_data"]),
        ("does medicare pay", parse_data("faq", 0.97, "faq/availability", 0.40)),
        ("what is ptsd", parse_data("faq", 0.99, "faq/what_is_ptsd", 0.99)),
        ("I want to end my life, what about psilocybin", RISK_URGENT),
        ("/faq/legal_status", parse_data("faq", 1.0, "faq/legal_status", 1.0)),
    ]
    tracker = DialogueStateTracker.from_events(SENDER, [])
    for text, data in messages:
        tracker.update(UserUttered(text, intent=data["intent"], parse_data={"text": text, **data}))
        tracker.update(ActionExecuted("utter_did_you_mean"))
        tracker.update(BotUttered("Did you mean...?"))
        await tracker_store.save(tracker)


def test_publish_returns_while_the_database_hangs() -> None:
    sink = BlockingSink()
    broker = UnansweredQuestionsBroker(UnansweredConfig("sqlite://", 0.6), sink=sink)
    broker.publish(_fallback("first question"))
    assert sink.entered.wait(WAIT)
    broker.publish(_fallback("second question"))
    broker.publish(_fallback("third question"))
    assert sink.written == []  # all three publish calls returned before anything was written
    sink.release.set()
    assert broker.flush(WAIT)
    assert [q.text for q in sink.written] == ["first question", "second question", "third question"]
    broker.stop()


def test_questions_beyond_the_queue_are_dropped_not_waited_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(broker_module, "MAX_PENDING", 2)
    sink = BlockingSink()
    broker = UnansweredQuestionsBroker(UnansweredConfig("sqlite://", 0.6), sink=sink)
    broker.publish(_fallback("being written"))
    assert sink.entered.wait(WAIT)
    with caplog.at_level(logging.WARNING, logger=broker_module.__name__):
        for number in range(3):
            broker.publish(_fallback(f"waiting {number}"))
    assert "Dropped an unanswered question" in caplog.text
    sink.release.set()
    assert broker.flush(WAIT)
    assert [q.text for q in sink.written] == ["being written", "waiting 0", "waiting 1"]
    broker.stop()


def test_an_unreachable_database_is_logged_and_the_question_dropped(caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on port 9 of loopback: connections are refused at once.
    down = "postgresql+psycopg2://nobody:secret@127.0.0.1:9/unanswered?connect_timeout=2"
    broker = UnansweredQuestionsBroker(UnansweredConfig(down, 0.6))
    with caplog.at_level(logging.WARNING, logger=broker_module.__name__):
        broker.publish(_fallback("What about psilocybin? mail me at kim@example.org"))
        assert broker.flush(WAIT)
    assert "Dropped 1 unanswered question(s): the database is unavailable" in caplog.text
    for private in ("psilocybin", "[EMAIL]", "kim@", "secret", SENDER):
        assert private not in caplog.text
    broker.stop()


def test_a_malformed_event_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    sink = BlockingSink()
    sink.release.set()
    broker = UnansweredQuestionsBroker(UnansweredConfig("sqlite://", 0.6), sink=sink)
    event = user_event("what about it", {"intent": {"name": "provide_contact"}, "intent_ranking": 5})
    with caplog.at_level(logging.WARNING, logger=broker_module.__name__):
        broker.publish(event)
    assert "Could not check a message" in caplog.text
    assert "what about it" not in caplog.text
    broker.publish(_fallback("still works"))
    assert broker.flush(WAIT)
    assert [q.text for q in sink.written] == ["still works"]
    broker.stop()


def test_close_writes_what_is_queued_then_ignores_new_events(db_url: str) -> None:
    broker = UnansweredQuestionsBroker(UnansweredConfig(db_url, 0.6))
    broker.publish(_fallback("queued before close"))
    asyncio.run(broker.close())
    broker.publish(_fallback("after close"))
    store = UnansweredStore(db_url)
    try:
        assert [q.text for q in store.questions()] == ["queued before close"]
    finally:
        store.dispose()


def test_messages_that_are_not_kept_start_no_writer() -> None:
    def writers() -> int:
        return sum(t.name == "unanswered-questions-writer" for t in threading.enumerate())

    before = writers()
    broker = UnansweredQuestionsBroker(UnansweredConfig("sqlite:////nonexistent/dir/x.db", 0.6))
    broker.publish(user_event("what is ptsd", parse_data("faq", 0.99, "faq/what_is_ptsd", 0.99)))
    broker.publish(user_event("I want to end my life", RISK_URGENT))
    assert writers() == before
    assert broker.flush(WAIT)
    broker.stop()


def test_settings_in_endpoints_are_ignored_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("UNANSWERED_DB_URL", f"sqlite:///{tmp_path / 'from-env.db'}")
    monkeypatch.delenv("UNANSWERED_MIN_ANSWER_CONFIDENCE", raising=False)
    config = EndpointConfig(url="sqlite:///elsewhere.db", type=BROKER_TYPE, min_answer_confidence=0.1)
    with caplog.at_level(logging.WARNING, logger=broker_module.__name__):
        broker = asyncio.run(UnansweredQuestionsBroker.from_endpoint_config(config))
    assert broker is not None
    assert broker.config == UnansweredConfig(f"sqlite:///{tmp_path / 'from-env.db'}", 0.6)
    assert "Ignoring min_answer_confidence, url under event_broker" in caplog.text
    asyncio.run(broker.close())


class CountingSink:
    """Records each transaction the writer makes."""

    def __init__(self) -> None:
        self.batches: List[int] = []

    def add(self, questions: Sequence[UnansweredQuestion]) -> None:
        self.batches.append(len(questions))


def test_questions_arriving_together_are_written_in_one_transaction() -> None:
    sink = CountingSink()
    broker = UnansweredQuestionsBroker(UnansweredConfig("sqlite://", 0.6), sink=sink)
    for number in range(20):
        broker.publish(_fallback(f"what is question number {number} about"))
    assert broker.flush(WAIT)
    assert sum(sink.batches) == 20
    # The first question may be taken before the others are queued; the rest wait for one another.
    assert len(sink.batches) <= 2, sink.batches
    broker.stop()
