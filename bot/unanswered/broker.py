"""A Rasa event broker that keeps unanswered questions, scrubbed, for editors.

Configured in endpoints.yml:

    event_broker:
      type: bot.unanswered.broker.UnansweredQuestionsBroker

Rasa publishes every new tracker event to it from inside the Rasa server. The
decision and scrubbing happen in `publish` (pure Python, no I/O); the database
write happens on a background thread, so a slow or unreachable database never
delays a reply. At most MAX_PENDING questions wait for the writer: when the
database is slower than the questions arrive, new ones are dropped (they are
the least useful: an editor learns little from the thousandth question of a
flood) and counted, and the count is logged at most once a minute. If the
database is down the questions are logged as dropped (count only, never their
text) and the conversation goes on.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from asyncio import AbstractEventLoop
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Protocol, Sequence, Text, Union

from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import EndpointConfig
from sqlalchemy.exc import DBAPIError

from bot.unanswered.config import UnansweredConfig
from bot.unanswered.decision import UnansweredQuestion, question_from_event

logger = logging.getLogger(__name__)

MAX_PENDING = 1000
MAX_BATCH = 100
# Questions arriving within this time of each other are written in one
# transaction: under load a write per question cost the server's event loop
# time (the writer thread needs Python's lock to build each transaction).
BATCH_WINDOW_SECONDS = 0.5
CLOSE_TIMEOUT_SECONDS = 5.0
DROPPED_LOG_INTERVAL_SECONDS = 60.0


class QuestionSink(Protocol):
    """Where questions are written (the store; a stand-in in tests)."""

    def add(self, questions: Sequence[UnansweredQuestion]) -> None:
        """Stores the questions."""


@dataclass
class _Flush:
    """Queue marker: set once everything queued before it is written or dropped."""

    done: threading.Event = field(default_factory=threading.Event)


_STOP = object()
_Item = Union[UnansweredQuestion, _Flush, object]


def _describe(error: Exception) -> str:
    """The error without SQL parameters (which would hold the scrubbed text)."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        return f"{type(error.orig).__name__}: {error.orig}".strip()
    return type(error).__name__


class UnansweredQuestionsBroker(EventBroker):
    """Keeps the user messages the assistant could not answer well, without personal data."""

    def __init__(self, config: UnansweredConfig, sink: Optional[QuestionSink] = None) -> None:
        """Prepares the broker; the writer thread starts with the first question."""
        self.config = config
        self._sink = sink
        self._pending: "queue.Queue[_Item]" = queue.Queue(maxsize=MAX_PENDING)
        self._writer: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._closed = False
        self.dropped = 0
        self._drops_logged_at: Optional[float] = None

    @classmethod
    async def from_endpoint_config(
        cls,
        broker_config: EndpointConfig,
        event_loop: Optional[AbstractEventLoop] = None,
    ) -> Optional[UnansweredQuestionsBroker]:
        """Creates the broker with the settings from the environment (UNANSWERED_*)."""
        if broker_config is None:
            return None
        ignored = sorted(broker_config.kwargs) + (["url"] if broker_config.url else [])
        if ignored:
            logger.warning(
                f"Ignoring {', '.join(ignored)} under event_broker: the unanswered-questions log "
                f"is configured with UNANSWERED_DB_URL and UNANSWERED_MIN_ANSWER_CONFIDENCE."
            )
        from bot.settings import Settings

        config = Settings.from_env().unanswered
        logger.info(f"Keeping unanswered questions in {_safe_url(config.db_url)}.")
        return cls(config)

    def publish(self, event: Dict[Text, Any]) -> None:
        """Queues the event's message if it is an unanswered question; never raises."""
        if self._closed:
            return
        try:
            question = question_from_event(event, self.config.min_answer_confidence)
        except Exception as error:  # a bad event must never break the conversation
            logger.warning(f"Could not check a message for the unanswered-questions log ({type(error).__name__}).")
            return
        if question is None:
            return
        self._ensure_writer()
        try:
            self._pending.put_nowait(question)
        except queue.Full:
            self._count_drop()

    def _count_drop(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if self._drops_logged_at is None or now - self._drops_logged_at >= DROPPED_LOG_INTERVAL_SECONDS:
            self._drops_logged_at = now
            logger.warning(
                f"Dropped an unanswered question ({self.dropped} so far): more than "
                f"{self._pending.maxsize} were waiting for the database."
            )

    def is_ready(self) -> bool:
        """Always ready: the database is only needed by the background writer."""
        return True

    async def close(self) -> None:
        """Writes what is queued (for a few seconds at most) and stops the writer."""
        await asyncio.get_running_loop().run_in_executor(None, self.stop, CLOSE_TIMEOUT_SECONDS)

    def flush(self, timeout: float) -> bool:
        """Waits until everything queued so far is written or dropped; False on timeout."""
        if self._writer is None:
            return True
        marker = _Flush()
        try:
            self._pending.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def stop(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Stops accepting questions and ends the writer after the queued ones."""
        self._closed = True
        writer = self._writer
        if writer is None:
            return
        try:
            self._pending.put(_STOP, timeout=timeout)
        except queue.Full:
            logger.warning("The unanswered-questions writer did not stop: the database is too slow.")
            return
        writer.join(timeout)

    def _ensure_writer(self) -> None:
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_pending, name="unanswered-questions-writer", daemon=True
                )
                self._writer.start()

    def _write_pending(self) -> None:
        sink = self._sink
        while True:
            items = self._next_batch()
            questions = [item for item in items if isinstance(item, UnansweredQuestion)]
            if questions:
                if sink is None:
                    sink = self._open_store()
                self._write(sink, questions)
            for item in items:
                if isinstance(item, _Flush):
                    item.done.set()
            if any(item is _STOP for item in items):
                return

    def _next_batch(self) -> List[_Item]:
        """The next question and those queued within BATCH_WINDOW_SECONDS; a flush or stop ends it early."""
        items: List[_Item] = [self._pending.get()]
        deadline = time.monotonic() + BATCH_WINDOW_SECONDS
        while len(items) < MAX_BATCH and isinstance(items[-1], UnansweredQuestion):
            remaining = deadline - time.monotonic()
            try:
                items.append(self._pending.get(timeout=remaining) if remaining > 0 else self._pending.get_nowait())
            except queue.Empty:
                break
        return items

    def _open_store(self) -> Optional[QuestionSink]:
        from bot.unanswered.store import UnansweredStore

        try:
            return UnansweredStore(self.config.db_url)
        except Exception as error:  # a bad URL must not stop the conversation
            logger.error(f"The unanswered-questions database URL is not usable ({_describe(error)}).")
            return None

    @staticmethod
    def _write(sink: Optional[QuestionSink], questions: List[UnansweredQuestion]) -> None:
        if sink is None:
            logger.warning(f"Dropped {len(questions)} unanswered question(s): no usable database.")
            return
        try:
            sink.add(questions)
        except Exception as error:  # log and drop, the conversation goes on
            logger.warning(
                f"Dropped {len(questions)} unanswered question(s): the database is unavailable "
                f"({_describe(error)})."
            )


def _safe_url(db_url: str) -> str:
    """The URL with any password hidden, for the log."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except Exception:  # only used for a log line
        return "the configured database"
