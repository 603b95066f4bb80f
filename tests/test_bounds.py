"""Everything the server holds for a message is bounded: request bodies, waiting work, dropped work counted."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, List, Sequence

import pytest

from bot import rasa_server
from bot.rasa_server import MAX_WAITING_PREPARATIONS, _TextPreparation
from bot.unanswered import broker as broker_module
from bot.unanswered.broker import UnansweredQuestionsBroker
from bot.unanswered.config import UnansweredConfig
from bot.unanswered.decision import UnansweredQuestion
from tests.unanswered.test_decision import parse_data, user_event

WAIT = 30.0


class _BlockingComponent:
    """A component whose preparation hangs until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.prepared: List[str] = []

    def prepare_text(self, text: str) -> None:
        self.release.wait(WAIT)
        self.prepared.append(text)


class _Node:
    def __init__(self, component: Any) -> None:
        self._component = component


class _Runner:
    def __init__(self, component: Any) -> None:
        self._instantiated_nodes = {"classifier": _Node(component)}


class _Processor:
    def __init__(self, component: Any) -> None:
        self.graph_runner = _Runner(component)


def test_text_preparation_never_queues_more_than_its_bound(caplog: pytest.LogCaptureFixture) -> None:
    component = _BlockingComponent()
    processor = _Processor(component)
    preparation = _TextPreparation()
    flood = MAX_WAITING_PREPARATIONS + 30

    async def main() -> List[bool]:
        tasks = [asyncio.create_task(preparation.prepare(processor, f"message {n}")) for n in range(flood)]
        await asyncio.sleep(0.2)
        done_before_release = [task.done() for task in tasks]
        assert preparation.waiting == MAX_WAITING_PREPARATIONS
        component.release.set()
        await asyncio.gather(*tasks)
        return done_before_release

    with caplog.at_level(logging.WARNING, logger=rasa_server.__name__):
        done_before_release = asyncio.run(main())

    # The messages beyond the bound went on at once, unprepared (their turn computes it).
    assert done_before_release.count(True) == 30
    assert preparation.skipped == 30
    assert preparation.waiting == 0
    assert len(component.prepared) == MAX_WAITING_PREPARATIONS
    assert "30 message(s) so far were not prepared" not in caplog.text  # logged once, with the count then
    assert "1 message(s) so far were not prepared ahead" in caplog.text
    assert all("message 4" not in record.getMessage() for record in caplog.records)


class _BlockingSink:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.written: List[UnansweredQuestion] = []

    def add(self, questions: Sequence[UnansweredQuestion]) -> None:
        self.entered.set()
        self.release.wait(WAIT)
        self.written.extend(questions)


def test_unanswered_questions_beyond_the_queue_are_counted_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(broker_module, "MAX_PENDING", 5)
    sink = _BlockingSink()
    broker = UnansweredQuestionsBroker(UnansweredConfig("sqlite://", 0.6), sink=sink)
    fallback = parse_data("nlu_fallback", 0.7, "faq/what_is_mdma", 0.2, ["nlu_fallback", "faq"])
    broker.publish(user_event("being written", fallback, "s"))
    assert sink.entered.wait(WAIT)
    with caplog.at_level(logging.WARNING, logger=broker_module.__name__):
        for number in range(500):
            broker.publish(user_event(f"flood {number} jane@example.org", fallback, "s"))

    assert broker._pending.qsize() == 5
    assert broker.dropped == 495
    drops = [r.getMessage() for r in caplog.records if "Dropped" in r.getMessage()]
    assert drops == ["Dropped an unanswered question (1 so far): more than 5 were waiting for the database."]
    sink.release.set()
    assert broker.flush(WAIT)
    broker.stop()
