"""LiveTrackerStore: same behaviour as Rasa's in-memory store, bounded history for each turn."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import InMemoryTrackerStore, TrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.evaluation.runner import latest_model
from bot.tracker_store import DEFAULT_HISTORY_WINDOW, LiveTrackerStore, detached_copy

ROOT = Path(__file__).resolve().parents[1]


class CollectingBroker(EventBroker):
    """An event broker that keeps what it is sent."""

    def __init__(self) -> None:
        self.published: List[Dict[str, Any]] = []

    def publish(self, event: Dict[str, Any]) -> None:
        self.published.append(event)


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain.yml"))


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def turn(tracker: DialogueStateTracker, text: str, number: int) -> None:
    """One exchange: the person writes, the assistant answers, then listens."""
    tracker.update(UserUttered(f"{text} {number}", {"name": "faq", "confidence": 0.9}))
    tracker.update(ActionExecuted("utter_faq"))
    tracker.update(BotUttered(f"answer {number}"))
    tracker.update(ActionExecuted(ACTION_LISTEN_NAME))


def start_session(tracker: DialogueStateTracker) -> None:
    """The events Rasa logs when a session starts."""
    tracker.update(ActionExecuted(ACTION_SESSION_START_NAME))
    tracker.update(SessionStarted())
    tracker.update(ActionExecuted(ACTION_LISTEN_NAME))


def new_conversation(store: TrackerStore, sender: str = "person") -> DialogueStateTracker:
    tracker = store.init_tracker(sender)
    start_session(tracker)
    return tracker


async def saved_turns(store: TrackerStore, turns: int, sender: str = "person") -> DialogueStateTracker:
    """A conversation of `turns` exchanges, fetched and saved once per turn as the processor does."""
    await store.save(new_conversation(store, sender))
    for number in range(turns):
        tracker = await store.retrieve(sender)
        assert tracker is not None
        turn(tracker, "question", number)
        await store.save(tracker)
    full = await store.retrieve_full_tracker(sender)
    assert full is not None
    return full


def test_unknown_conversations_are_none(domain: Domain) -> None:
    store = LiveTrackerStore(domain)

    assert run(store.retrieve("nobody")) is None
    assert run(store.retrieve_full_tracker("nobody")) is None
    assert run(store.exists("nobody")) is False


def test_a_saved_conversation_comes_back_with_its_state(domain: Domain) -> None:
    store = LiveTrackerStore(domain)
    tracker = new_conversation(store)
    tracker.update(SlotSet("risk_level", "urgent"))
    turn(tracker, "is it legal", 1)
    run(store.save(tracker))

    fetched = run(store.retrieve("person"))

    assert fetched is not tracker
    assert list(fetched.events) == list(tracker.events)
    assert fetched.get_slot("risk_level") == "urgent"
    assert fetched.latest_message.text == "is it legal 1"
    assert fetched.latest_action_name == ACTION_LISTEN_NAME
    assert run(store.keys()) == ["person"]
    assert run(store.exists("person")) is True


def test_changes_to_a_fetched_tracker_count_only_once_saved(domain: Domain) -> None:
    store = LiveTrackerStore(domain)
    run(store.save(new_conversation(store)))
    fetched = run(store.retrieve("person"))
    turn(fetched, "unsaved", 1)
    fetched.update(SlotSet("risk_level", "priority"))

    again = run(store.retrieve("person"))

    assert len(again.events) == 3
    assert again.get_slot("risk_level") is None
    assert again.latest_message.text != "unsaved 1"


def test_changes_after_saving_do_not_reach_the_store(domain: Domain) -> None:
    store = LiveTrackerStore(domain)
    tracker = new_conversation(store)
    run(store.save(tracker))
    tracker.update(SlotSet("risk_level", "urgent"))
    turn(tracker, "late", 1)

    stored = run(store.retrieve_full_tracker("person"))

    assert len(stored.events) == 3
    assert stored.get_slot("risk_level") is None


def test_each_turn_sees_a_bounded_window_but_the_record_keeps_everything(domain: Domain) -> None:
    store = LiveTrackerStore(domain, history_window=20)
    full = run(saved_turns(store, 60))

    window = run(store.retrieve("person"))

    assert len(full.events) == 3 + 60 * 4
    assert len(window.events) == 20
    assert list(window.events) == list(full.events)[-20:]
    assert window.latest_message.text == "question 59"


def test_state_set_before_the_window_is_kept(domain: Domain) -> None:
    store = LiveTrackerStore(domain, history_window=20)
    tracker = new_conversation(store)
    tracker.update(SlotSet("escalation_id", "esc-1"))
    run(store.save(tracker))
    for number in range(30):
        fetched = run(store.retrieve("person"))
        turn(fetched, "question", number)
        run(store.save(fetched))

    window = run(store.retrieve("person"))

    assert not any(isinstance(event, SlotSet) for event in window.events)
    assert window.get_slot("escalation_id") == "esc-1"


def test_the_latest_session_starts_the_window(domain: Domain) -> None:
    store = LiveTrackerStore(domain)
    run(saved_turns(store, 3))
    tracker = run(store.retrieve("person"))
    start_session(tracker)
    turn(tracker, "new session", 1)
    run(store.save(tracker))

    latest = run(store.retrieve("person"))
    full = run(store.retrieve_full_tracker("person"))

    assert [type(event) for event in latest.events][:2] == [ActionExecuted, SessionStarted]
    assert latest.events[0].action_name == ACTION_SESSION_START_NAME
    assert len(latest.events) == 3 + 4
    assert len(full.events) == 3 + 3 * 4 + 3 + 4


def test_latest_session_matches_rasas_in_memory_store(domain: Domain) -> None:
    """Same events as InMemoryTrackerStore hands out, across two sessions."""
    ours, rasas = LiveTrackerStore(domain), InMemoryTrackerStore(domain)
    for store in (ours, rasas):
        run(saved_turns(store, 4))
        tracker = run(store.retrieve("person"))
        start_session(tracker)
        turn(tracker, "again", 9)
        run(store.save(tracker))

    def described(store: TrackerStore) -> List[Dict[str, Any]]:
        events = [event.as_dict() for event in run(store.retrieve("person")).events]
        return [{key: value for key, value in event.items() if key != "timestamp"} for event in events]

    assert described(ours) == described(rasas)


def test_every_new_event_reaches_the_event_broker_once(domain: Domain) -> None:
    broker = CollectingBroker()
    store = LiveTrackerStore(domain, event_broker=broker, history_window=20)

    full = run(saved_turns(store, 30))

    assert [event["event"] for event in broker.published] == [event.as_dict()["event"] for event in full.events]
    assert all(event["sender_id"] == "person" for event in broker.published)
    assert len(broker.published) == len(full.events)


def test_a_tracker_built_from_scratch_replaces_the_record(domain: Domain) -> None:
    store = LiveTrackerStore(domain)
    run(saved_turns(store, 5))
    fresh = new_conversation(store)

    run(store.save(fresh))

    assert len(run(store.retrieve_full_tracker("person")).events) == 3


def test_conversations_are_kept_apart(domain: Domain) -> None:
    store = LiveTrackerStore(domain)
    run(saved_turns(store, 2, sender="first"))
    run(saved_turns(store, 5, sender="second"))

    assert len(run(store.retrieve_full_tracker("first")).events) == 3 + 2 * 4
    assert len(run(store.retrieve_full_tracker("second")).events) == 3 + 5 * 4
    assert sorted(run(store.keys())) == ["first", "second"]


@pytest.mark.parametrize("window", [0, 19, -5])
def test_a_too_small_window_is_refused(domain: Domain, window: int) -> None:
    with pytest.raises(ValueError, match="at least 20"):
        LiveTrackerStore(domain, history_window=window)


def test_detached_copy_shares_events_but_not_state(domain: Domain) -> None:
    store = LiveTrackerStore(domain)
    original = new_conversation(store)
    original.update(SlotSet("risk_level", "priority"))

    duplicate = detached_copy(original)
    duplicate.update(SlotSet("risk_level", "urgent"))
    turn(duplicate, "more", 1)

    assert original.get_slot("risk_level") == "priority"
    assert len(original.events) == 4
    assert duplicate.events[0] is original.events[0]
    assert set(vars(duplicate)) == set(vars(original))


def test_default_window() -> None:
    assert DEFAULT_HISTORY_WINDOW >= 40


def _described(tracker: DialogueStateTracker) -> List[Dict[str, Any]]:
    return [event.as_dict() for event in tracker.events]


def test_a_packed_conversation_comes_back_as_it_was(domain: Domain) -> None:
    store = LiveTrackerStore(domain, history_window=20, live_conversations=1)
    first = run(saved_turns(store, 8, sender="first"))
    tracker = run(store.retrieve("first"))
    tracker.update(SlotSet("risk_level", "priority"))
    run(store.save(tracker))
    before = run(store.retrieve_full_tracker("first"))
    window_before = run(store.retrieve("first"))

    run(saved_turns(store, 2, sender="second"))  # packs "first"

    assert store._conversations["first"].is_live is False
    after = run(store.retrieve_full_tracker("first"))
    assert _described(after) == _described(before)
    assert len(after.events) == len(first.events) + 1
    assert after.get_slot("risk_level") == "priority"
    assert after.latest_message.text == before.latest_message.text
    assert after.latest_action_name == ACTION_LISTEN_NAME
    run(saved_turns(store, 1, sender="second"))  # packs "first" again
    assert _described(run(store.retrieve("first"))) == _described(window_before)


def test_a_tracker_fetched_before_its_conversation_was_packed_continues_the_record(domain: Domain) -> None:
    """A turn that waited (for the action server) while others were served must not lose history."""
    store = LiveTrackerStore(domain, history_window=20, live_conversations=1)
    run(saved_turns(store, 10, sender="first"))
    fetched = run(store.retrieve("first"))

    run(saved_turns(store, 3, sender="second"))  # packs "first" while its turn is running
    assert store._conversations["first"].is_live is False
    turn(fetched, "after the wait", 11)
    run(store.save(fetched))

    full = run(store.retrieve_full_tracker("first"))
    assert len(full.events) == 3 + 11 * 4
    assert full.latest_message.text == "after the wait 11"


def test_only_the_most_recent_conversations_stay_live(domain: Domain) -> None:
    store = LiveTrackerStore(domain, live_conversations=2)
    for sender in ("a", "b", "c"):
        run(saved_turns(store, 1, sender=sender))
    run(store.retrieve("a"))

    live = {sender: conversation.is_live for sender, conversation in store._conversations.items()}
    assert live == {"a": True, "b": False, "c": True}
    assert sorted(run(store.keys())) == ["a", "b", "c"]


def test_a_conversation_that_cannot_be_packed_stays_live(domain: Domain) -> None:
    store = LiveTrackerStore(domain, live_conversations=1)
    tracker = new_conversation(store, "odd")
    tracker.update(SlotSet("risk_level", lambda: "no pickle for this"))
    run(store.save(tracker))

    run(saved_turns(store, 1, sender="other"))

    assert store._conversations["odd"].is_live is True
    assert callable(run(store.retrieve("odd")).get_slot("risk_level"))


@pytest.mark.parametrize("live", [0, -1])
def test_no_live_conversations_is_refused(domain: Domain, live: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LiveTrackerStore(domain, live_conversations=live)


# --- With the trained assistant: the window changes nothing it does.

MESSAGES = [
    "hello",
    "is mdma-assisted therapy legal in the us?",
    "thanks",
    "what is ptsd",
    "yes",
    "no",
    "what's the weather like on mars",
    "how long does a session last",
    "are you a robot?",
    "🙂",
    "blorp fnarg",
    "is it safe for someone with heart problems",
    "bye",
]


async def _actions_per_turn(agent: Any, messages: List[str]) -> List[List[str]]:
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    per_turn: List[List[str]] = []
    seen = 0
    for number, text in enumerate(messages):
        await agent.handle_message(UserMessage(text, CollectingOutputChannel(), "long-conversation"))
        # Someone else writes in between (with one live conversation, each
        # turn then starts from a packed record).
        await agent.handle_message(UserMessage(messages[-number], CollectingOutputChannel(), f"other-{number % 3}"))
        tracker = await agent.tracker_store.retrieve_full_tracker("long-conversation")
        events = list(tracker.events)
        per_turn.append(
            [
                str(event.action_name)
                for event in events[seen:]
                if isinstance(event, ActionExecuted) and event.action_name != ACTION_LISTEN_NAME
            ]
        )
        seen = len(events)
    return per_turn


async def _load(tracker_store: Optional[Dict[str, Any]]) -> Any:
    from rasa.core.agent import load_agent
    from rasa.core.utils import AvailableEndpoints
    from rasa.utils.endpoints import EndpointConfig

    endpoints = AvailableEndpoints(
        nlg=EndpointConfig(type="bot.nlg.RegionalResponseGenerator"),
        tracker_store=EndpointConfig(**tracker_store) if tracker_store else None,
    )
    return await load_agent(model_path=str(latest_model(ROOT / "models")), endpoints=endpoints)


def test_a_long_conversation_gets_the_same_actions_as_with_rasas_store() -> None:
    """80 turns through the real model and rules: every turn runs the same actions with either store.

    Also with a single live conversation, so that every turn starts from a packed record.
    """
    rng = random.Random(5)
    messages = [rng.choice(MESSAGES) for _ in range(80)]

    async def both() -> List[List[List[str]]]:
        results = []
        for store in (
            None,
            {"type": "bot.tracker_store.LiveTrackerStore", "history_window": 20},
            {"type": "bot.tracker_store.LiveTrackerStore", "history_window": 20, "live_conversations": 1},
        ):
            agent = await _load(store)
            expected_type = "InMemoryTrackerStore" if store is None else "LiveTrackerStore"
            inner = getattr(agent.tracker_store, "_tracker_store", agent.tracker_store)
            inner = getattr(inner, "_tracker_store", inner)
            assert type(inner).__name__ == expected_type
            results.append(await _actions_per_turn(agent, messages))
        return results

    rasas, ours, ours_packed = run(both())

    assert ours == rasas
    assert ours_packed == rasas
    assert ours[0][0] == "action_session_start"
    assert "utter_intro" in ours[0]
    assert all(actions for actions in ours[1:])


class FakeClock:
    """Monotonic seconds that a test moves on by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_conversation_idle_too_long_is_forgotten(domain: Domain) -> None:
    clock = FakeClock()
    store = LiveTrackerStore(domain, idle_minutes=30, clock=clock)
    run(store.save(new_conversation(store, "quiet")))
    clock.now += 20 * 60
    run(store.save(new_conversation(store, "busy")))
    clock.now += 11 * 60

    assert run(store.retrieve("quiet")) is None
    assert run(store.retrieve("busy")) is not None
    assert run(store.keys()) == ["busy"]
    assert store.forgotten_conversations == 1


def test_a_message_keeps_a_conversation_alive(domain: Domain) -> None:
    clock = FakeClock()
    store = LiveTrackerStore(domain, idle_minutes=30, clock=clock)
    run(store.save(new_conversation(store)))
    for number in range(5):
        clock.now += 20 * 60
        tracker = run(store.retrieve("person"))
        turn(tracker, "still here", number)
        run(store.save(tracker))

    assert run(store.retrieve_full_tracker("person")).latest_message.text == "still here 4"


def test_the_number_of_conversations_is_capped_least_recent_first(domain: Domain) -> None:
    store = LiveTrackerStore(domain, live_conversations=2, max_conversations=3)
    for sender in ("a", "b", "c"):
        run(store.save(new_conversation(store, sender)))
    run(store.retrieve("a"))  # "a" is now the most recently active
    run(store.save(new_conversation(store, "d")))

    assert sorted(run(store.keys())) == ["a", "c", "d"]
    assert run(store.retrieve("b")) is None
    assert run(store.retrieve("a")) is not None


def test_a_huge_message_does_not_stay_in_memory_for_ever(domain: Domain) -> None:
    clock = FakeClock()
    store = LiveTrackerStore(domain, idle_minutes=1, clock=clock)
    tracker = new_conversation(store, "big")
    tracker.update(UserUttered("hi", metadata={"blob": "x" * 5_000_000}))
    run(store.save(tracker))
    clock.now += 61
    run(store.save(new_conversation(store, "next")))

    assert run(store.exists("big")) is False


@pytest.mark.parametrize("settings", [{"idle_minutes": 0}, {"idle_minutes": -5}, {"max_conversations": 0}])
def test_bounds_must_be_positive(domain: Domain, settings: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LiveTrackerStore(domain, **settings)


def test_endpoints_set_the_bounds(domain: Domain) -> None:
    from rasa.core.tracker_store import TrackerStore as RasaTrackerStore
    from rasa.utils.endpoints import read_endpoint_config

    config = read_endpoint_config(str(ROOT / "endpoints.yml"), "tracker_store")
    store = RasaTrackerStore.create(config, domain)

    assert isinstance(store, LiveTrackerStore)
    assert store.idle_seconds == 120 * 60
    assert store.max_conversations == 20_000
