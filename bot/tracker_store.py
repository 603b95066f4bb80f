"""An in-memory tracker store whose turns cost the same at message 1 and message 100.

Rasa's ``InMemoryTrackerStore`` keeps each conversation as JSON and rebuilds
the tracker from every stored event on each fetch (and once more on each save
when an event broker is configured), and the processor and RulePolicy then
walk the whole history several times per turn: in a 100-turn conversation the
last turns took 4.5 times as long as the first.

This store keeps each conversation's tracker as an object and, for handling a
message, hands out a detached copy with the conversation's full current state
(slots, latest message and action, active loop) but only the latest
``history_window`` events of the latest session: what the rules need to match
(our longest rule spans a handful of turns), and what Rasa's own
``max_event_history`` would keep. The full record stays in the store: saving
appends the new events to it, and ``retrieve_full_tracker`` (Rasa's
``GET /conversations/<id>/tracker``) returns all of it.

Only the ``live_conversations`` most recently active conversations are kept
as objects. Older ones are packed (their events pickled and compressed, in
this process only) and rebuilt by replaying their events, as Rasa's own
in-memory store does on every fetch, when their next message arrives: about
a third of a millisecond for a conversation of eight messages. Packed bytes
are invisible to Python's cyclic garbage collector: without packing, its
full collections walked every event of every conversation since the server
started, and their pauses (every conversation waits) grew with it.

The store is bounded, unlike Rasa's: a conversation with no message for
``idle_minutes`` is forgotten, and so is the least recently active one when
more than ``max_conversations`` are held. A person who writes again after
that starts a new conversation (a new session, as after Rasa's own session
expiry). Nothing that must outlive a conversation depends on this store:
escalations and contact details are written to the escalation database.

Like ``InMemoryTrackerStore``, new events go to the event broker on save, a
tracker changed after fetching is stored only when saved, and everything is
lost when the server stops. Configured in endpoints.yml::

    tracker_store:
      type: bot.tracker_store.LiveTrackerStore
      history_window: 100
      live_conversations: 100
      idle_minutes: 120
      max_conversations: 20000
"""

from __future__ import annotations

import copy
import itertools
import logging
import pickle
import time
import zlib
from collections import OrderedDict, deque
from typing import Any, Callable, Deque, Iterable, List, Optional, Text

from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import TrackerStore
from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event
from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

DEFAULT_HISTORY_WINDOW = 100
DEFAULT_LIVE_CONVERSATIONS = 100
# Longer than the domain's session expiry (60 minutes): a conversation is
# forgotten only after Rasa would have started a new session anyway.
DEFAULT_IDLE_MINUTES = 120
DEFAULT_MAX_CONVERSATIONS = 20_000
# Rules must still see that a conversation did not just start, and the
# escalation transcript wants the last few turns.
MIN_HISTORY_WINDOW = 20


def detached_copy(tracker: DialogueStateTracker, events: Optional[Iterable[Event]] = None) -> DialogueStateTracker:
    """A tracker with the same state whose changes never reach the original.

    Logged events are never modified, so copies share the event objects; the
    event list, the slots and the small mutable parts of the state are copied.
    ``events`` replaces the event list (the state is kept as it is).
    """
    duplicate = copy.copy(tracker)
    duplicate.events = deque(tracker.events if events is None else events, tracker.events.maxlen)
    slots = type(tracker.slots)()
    slots.update((name, copy.copy(slot)) for name, slot in tracker.slots.items())
    duplicate.slots = slots
    if tracker.latest_action is not None:
        duplicate.latest_action = dict(tracker.latest_action)
    if tracker.active_loop is not None:
        duplicate.active_loop = copy.copy(tracker.active_loop)
    return duplicate


def _is_session_start(event: Event) -> bool:
    return isinstance(event, ActionExecuted) and event.action_name == ACTION_SESSION_START_NAME


class _Conversation:
    """One conversation: live (its tracker, every event as an object) or packed (compressed bytes).

    A packed conversation keeps its last event object, so that a tracker
    handed out before packing is still recognised as continuing the record.
    """

    def __init__(self, tracker: DialogueStateTracker) -> None:
        self.sender_id = tracker.sender_id
        self.tracker: Optional[DialogueStateTracker] = tracker
        self.session_start = 0
        self.last_active = 0.0
        self._packed: Optional[bytes] = None
        self._last_event: Optional[Event] = None
        self._note_session_starts(0)

    @property
    def is_live(self) -> bool:
        """Whether the tracker is held as objects."""
        return self.tracker is not None

    def live(self, domain: Domain, max_event_history: Optional[int]) -> DialogueStateTracker:
        """The stored tracker, rebuilt from the packed events if needed."""
        if self.tracker is None:
            assert self._packed is not None
            # Bytes this store pickled itself, never anything received from outside.
            events = pickle.loads(zlib.decompress(self._packed))  # noqa: S301
            self.tracker = DialogueStateTracker.from_events(self.sender_id, events, domain.slots, max_event_history)
            self._packed = None
            self._last_event = None
        return self.tracker

    def pack(self) -> None:
        """Keep the events as compressed bytes only (no-op if packed already, or if they cannot be pickled)."""
        tracker = self.tracker
        if tracker is None:
            return
        try:
            packed = zlib.compress(pickle.dumps(list(tracker.events), protocol=pickle.HIGHEST_PROTOCOL), 1)
        except Exception as error:  # noqa: BLE001  # an unusual custom event: keep it live
            logger.debug("Conversation kept live, its events cannot be packed (%s).", type(error).__name__)
            return
        self._last_event = tracker.events[-1] if tracker.events else None
        self._packed = packed
        self.tracker = None

    def append(
        self,
        state: DialogueStateTracker,
        new_events: List[Event],
        domain: Domain,
        max_event_history: Optional[int],
    ) -> None:
        """Take the state of `state` and add `new_events` to the record."""
        stored = self.live(domain, max_event_history)
        events: Deque[Event] = stored.events
        first_new = len(events)
        events.extend(new_events)
        self.tracker = detached_copy(state, events=())
        self.tracker.events = events
        self._note_session_starts(first_new)

    def new_events(self, tracker: DialogueStateTracker) -> Optional[List[Event]]:
        """Events of `tracker` after the last stored one; None if `tracker` does not continue this record."""
        last = self.tracker.events[-1] if self.tracker is not None and self.tracker.events else self._last_event
        if last is None:
            return list(tracker.events)
        new: List[Event] = []
        for event in reversed(tracker.events):
            if event is last:
                new.reverse()
                return new
            new.append(event)
        return None

    def _note_session_starts(self, first: int) -> None:
        assert self.tracker is not None
        for index, event in enumerate(itertools.islice(self.tracker.events, first, None), start=first):
            if _is_session_start(event):
                self.session_start = index


class LiveTrackerStore(TrackerStore):
    """Keeps conversations in memory as objects and hands out a bounded recent history."""

    def __init__(
        self,
        domain: Domain,
        event_broker: Optional[EventBroker] = None,
        history_window: int = DEFAULT_HISTORY_WINDOW,
        live_conversations: int = DEFAULT_LIVE_CONVERSATIONS,
        idle_minutes: float = DEFAULT_IDLE_MINUTES,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        """Starts empty.

        Args:
            domain: The assistant's domain (slots of new trackers).
            event_broker: Receives every new event on save.
            history_window: How many of the latest session's most recent events a
                fetched tracker holds (at least 20).
            live_conversations: How many of the most recently active conversations
                are kept as objects (at least 1); the others are packed.
            idle_minutes: A conversation without a message for this long is
                forgotten (more than 0).
            max_conversations: At most this many conversations are held (at
                least 1); beyond it the least recently active is forgotten.
            clock: Seconds, monotonic (tests pass their own).
            kwargs: Further endpoint settings, ignored as by Rasa's stores.
        """
        super().__init__(domain, event_broker, **kwargs)
        history_window = int(history_window)
        if history_window < MIN_HISTORY_WINDOW:
            raise ValueError(f"history_window must be at least {MIN_HISTORY_WINDOW}, got {history_window}")
        live_conversations = int(live_conversations)
        if live_conversations < 1:
            raise ValueError(f"live_conversations must be at least 1, got {live_conversations}")
        idle_minutes = float(idle_minutes)
        if not idle_minutes > 0:
            raise ValueError(f"idle_minutes must be more than 0, got {idle_minutes}")
        max_conversations = int(max_conversations)
        if max_conversations < 1:
            raise ValueError(f"max_conversations must be at least 1, got {max_conversations}")
        self.history_window = history_window
        self.live_conversations = live_conversations
        self.idle_seconds = idle_minutes * 60
        self.max_conversations = max_conversations
        self._clock = clock
        self.forgotten_conversations = 0
        # Every conversation, least recently active first.
        self._conversations: "OrderedDict[Text, _Conversation]" = OrderedDict()
        # Live conversations, least recently active first.
        self._live: "OrderedDict[Text, None]" = OrderedDict()

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Adds the tracker's new events to the record and sends them to the event broker.

        A tracker that does not continue the stored record (one built from
        scratch for a known conversation) replaces it, as with Rasa's stores.
        """
        sender_id = tracker.sender_id
        conversation = self._conversations.get(sender_id)
        new_events = conversation.new_events(tracker) if conversation is not None else None
        if conversation is None or new_events is None:
            new_events = list(tracker.events)
            self._conversations[sender_id] = _Conversation(detached_copy(tracker))
        else:
            conversation.append(tracker, new_events, self.domain, self.max_event_history)
        self._touch(sender_id)
        if self.event_broker is not None and new_events:
            await self._stream_new_events(self.event_broker, new_events, sender_id)

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        """The conversation's current state with the latest session's most recent events; None if unknown."""
        self._forget_idle(self._clock())
        conversation = self._conversations.get(sender_id)
        if conversation is None:
            return None
        stored = conversation.live(self.domain, self.max_event_history)
        self._touch(sender_id)
        events = stored.events
        first = max(conversation.session_start, len(events) - self.history_window)
        return detached_copy(stored, events=itertools.islice(events, first, None))

    async def retrieve_full_tracker(self, conversation_id: Text) -> Optional[DialogueStateTracker]:
        """Every stored event of the conversation; None if unknown."""
        self._forget_idle(self._clock())
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            return None
        stored = conversation.live(self.domain, self.max_event_history)
        self._touch(conversation_id)
        return detached_copy(stored)

    def _touch(self, sender_id: Text) -> None:
        """Mark the conversation as the most recently active; pack or forget the least recent ones."""
        now = self._clock()
        self._conversations[sender_id].last_active = now
        self._conversations.move_to_end(sender_id)
        self._live[sender_id] = None
        self._live.move_to_end(sender_id)
        self._forget_idle(now, keep=sender_id)
        while len(self._live) > self.live_conversations:
            oldest, _ = self._live.popitem(last=False)
            self._conversations[oldest].pack()

    def _forget_idle(self, now: float, keep: Optional[Text] = None) -> None:
        """Drops conversations idle too long, and the least recently active beyond the limit."""
        forgotten = 0
        while self._conversations:
            oldest, conversation = next(iter(self._conversations.items()))
            if oldest == keep:
                break
            idle = now - conversation.last_active >= self.idle_seconds
            if not idle and len(self._conversations) <= self.max_conversations:
                break
            del self._conversations[oldest]
            self._live.pop(oldest, None)
            forgotten += 1
        if forgotten:
            self.forgotten_conversations += forgotten
            logger.debug("Forgot %d idle or least recently active conversation(s).", forgotten)

    async def stream_events(self, tracker: DialogueStateTracker) -> None:
        """Sends the tracker's events that are not stored yet to the event broker (save does this)."""
        if self.event_broker is None:
            return
        conversation = self._conversations.get(tracker.sender_id)
        new_events = conversation.new_events(tracker) if conversation is not None else None
        if new_events is None:
            new_events = list(tracker.events)
        await self._stream_new_events(self.event_broker, new_events, tracker.sender_id)

    async def keys(self) -> Iterable[Text]:
        """The conversation ids stored."""
        self._forget_idle(self._clock())
        return list(self._conversations)

    async def exists(self, conversation_id: Text) -> bool:
        """Whether the conversation is stored."""
        self._forget_idle(self._clock())
        return conversation_id in self._conversations
