"""The unanswered-questions table on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from bot.unanswered.decision import FALLBACK, LOW_CONFIDENCE, UnansweredQuestion
from bot.unanswered.store import UnansweredStore, unanswered_questions


def _question(day: int, text: str, reason: str = FALLBACK) -> UnansweredQuestion:
    return UnansweredQuestion(date(2026, 11, day), reason, text, "faq/availability", 0.42)


def test_stores_and_lists_questions_oldest_first(db_url: str) -> None:
    store = UnansweredStore(db_url)
    store.add([_question(20, "later one"), _question(3, "early one", LOW_CONFIDENCE)])
    store.add([_question(20, "same day, added after")])
    try:
        assert store.questions() == [
            _question(3, "early one", LOW_CONFIDENCE),
            _question(20, "later one"),
            _question(20, "same day, added after"),
        ]
    finally:
        store.dispose()


def test_since_includes_that_day(db_url: str) -> None:
    store = UnansweredStore(db_url)
    store.add([_question(day, f"asked on the {day}th") for day in (1, 10, 11, 28)])
    try:
        assert [q.text for q in store.questions(date(2026, 11, 10))] == [
            "asked on the 10th",
            "asked on the 11th",
            "asked on the 28th",
        ]
        assert store.questions(date(2026, 11, 29)) == []
    finally:
        store.dispose()


def test_an_empty_database_lists_nothing(db_url: str) -> None:
    store = UnansweredStore(db_url)
    try:
        assert store.questions() == []
    finally:
        store.dispose()


def test_the_table_has_no_column_that_could_identify_a_conversation(db_url: str) -> None:
    store = UnansweredStore(db_url)
    store.create_schema()
    engine = sa.create_engine(db_url, future=True)
    try:
        columns = {column["name"] for column in sa.inspect(engine).get_columns(unanswered_questions.name)}
    finally:
        engine.dispose()
        store.dispose()
    assert columns == {"id", "received_on", "reason", "text", "guessed_topic", "topic_confidence"}
