"""The action server's escalation actions, with rasa-sdk's Tracker and CollectingDispatcher and a real store.

The escalation itself is recorded by the Rasa server (tests/escalation/test_escalation_decision.py);
here the decision is recorded the same way first, then the actions complete it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

import actions.escalation as escalation_actions
from actions.escalation import (
    ActionEscalateToClinician,
    ActionRecordContact,
    ActionRequestCareTeam,
    ActionWithdrawContact,
)
from bot.escalation import decision
from bot.escalation.recorder import EscalationRecorder, import_spooled
from bot.escalation.store import EscalationStore
from tests.actions.events import action, crisis, listen, risk_turn, said, sdk_tracker, user
from tests.escalation.harness import Database
from tests.escalation.receivers import free_port

SENDER = "conversation-1"
PHONE = "+1 555 201 8899"
EMAIL = "sam@example.org"


def run(action_class: type, events: Sequence[Dict[str, Any]], slots: Dict[str, Any] | None = None) -> List[Any]:
    dispatcher = CollectingDispatcher()
    result = asyncio.run(action_class().run(dispatcher, sdk_tracker(SENDER, events, slots), {}))
    assert dispatcher.messages == [], "the Rasa server words every outcome; actions never speak"
    return result


@pytest.fixture
def recorder(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EscalationRecorder:
    """The action server's recorder on a fresh database (SQLite and PostgreSQL) and spool."""
    built = EscalationRecorder(database.store, tmp_path / "spool", timeout_seconds=5)
    monkeypatch.setattr(escalation_actions, "escalation_recorder", lambda: built)
    yield built
    built.close()


@pytest.fixture
def database_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EscalationRecorder:
    """A recorder whose database is a port nothing listens on."""
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/test"
    built = EscalationRecorder(lambda: EscalationStore(url), tmp_path / "spool", timeout_seconds=2)
    monkeypatch.setattr(escalation_actions, "escalation_recorder", lambda: built)
    yield built
    built.close()


def recorded_risk(recorder: EscalationRecorder, events: Sequence[Dict[str, Any]]) -> None:
    """What the Rasa server recorded while it rendered the crisis reply to the first message."""
    first_message = next(i for i, e in enumerate(events) if e["event"] == "user")
    request = decision.decision_for("utter_crisis", SENDER, "rest", events[: first_message + 1])
    assert request is not None and request.level == "urgent"
    assert recorder.record(request).durable


def asked_for_contact(*before: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [
        *risk_turn("I'm going to take all my pills tonight", "urgent", "suicide"),
        *before,
        listen(),
        user("/affirm", "affirm"),
        *said("utter_glad_safe"),
        *said("utter_offer_contact"),
        listen(),
        user("/affirm", "affirm"),
        *said("utter_ask_contact_detail"),
    ]


# --- Escalation level ------------------------------------------------------------------


@pytest.mark.parametrize(
    "previous, events, expected",
    [
        pytest.param(None, crisis("I want to die", "priority", "suicide"), "priority", id="first risk"),
        pytest.param("priority", crisis("I have the rope ready", "urgent", "suicide"), "urgent", id="upgrade"),
        pytest.param("urgent", crisis("I still think about dying", "priority", "suicide"), "urgent", id="kept"),
        pytest.param("low", crisis("I cut myself again", "priority", "self_harm"), "priority", id="from a request"),
        pytest.param(
            "priority",
            [
                *risk_turn("I keep thinking about dying", "priority", "suicide"),
                *crisis("kind of, I cut myself again", "priority", "self_harm"),
            ],
            "urgent",
            id="risk instead of a clear yes to the safety question",
        ),
    ],
)
def test_escalation_level_only_ever_goes_up(previous: str | None, events: List[Dict[str, Any]], expected: str) -> None:
    assert run(ActionEscalateToClinician, events, {"escalation_level": previous}) == [
        SlotSet("escalation_level", expected)
    ]


def test_a_request_for_a_person_never_lowers_the_level() -> None:
    events = [listen(), user("can someone call me", "request_human"), *said("utter_request_human")]
    assert run(ActionRequestCareTeam, events, {"escalation_level": "urgent"}) == [SlotSet("escalation_level", "urgent")]
    assert run(ActionRequestCareTeam, events, {}) == [SlotSet("escalation_level", "low")]


# --- Contact with consent --------------------------------------------------------------------


def test_contact_given_after_consent_is_recorded(recorder: EscalationRecorder, database: Database) -> None:
    events = asked_for_contact()
    recorded_risk(recorder, events)

    result = run(ActionRecordContact, [*events, listen(), user(f"call me on {PHONE}", "provide_contact")])

    assert result == [SlotSet("contact_outcome", "saved")]
    store = database.store()
    [escalation] = store.list_escalations(status=None)
    assert (escalation.contact_method, escalation.contact_value) == ("phone", PHONE)


@pytest.mark.parametrize(
    "before",
    [
        pytest.param([*said("utter_faq/legal_status")], id="after an answer"),
        pytest.param([*said("utter_offer_contact")], id="offered but not yet agreed"),
        pytest.param([*said("utter_ask_safe_now")], id="asked whether safe"),
    ],
)
def test_contact_given_without_consent_is_not_recorded(
    recorder: EscalationRecorder, database: Database, before: List[Dict[str, Any]]
) -> None:
    events = risk_turn("I'm going to take all my pills tonight", "urgent", "suicide")
    recorded_risk(recorder, events)

    result = run(ActionRecordContact, [*events, *before, listen(), user(f"my number is {PHONE}", "provide_contact")])

    assert result == [SlotSet("contact_outcome", "not_asked")]
    store = database.store()
    [escalation] = store.list_escalations(status=None)
    assert escalation.contact_value is None
    assert store.contact_history(escalation.id) == []


def test_a_changed_contact_keeps_the_earlier_one(recorder: EscalationRecorder, database: Database) -> None:
    events = asked_for_contact()
    recorded_risk(recorder, events)
    first = [*events, listen(), user(PHONE, "provide_contact")]
    assert run(ActionRecordContact, first) == [SlotSet("contact_outcome", "saved")]
    saved = [action("action_record_contact"), *said("utter_contact_status")]
    second = [*first, *saved, listen(), user(EMAIL, "provide_contact")]

    assert run(ActionRecordContact, second) == [SlotSet("contact_outcome", "saved")]

    store = database.store()
    [escalation] = store.list_escalations(status=None)
    assert (escalation.contact_method, escalation.contact_value) == ("email", EMAIL)
    assert [(e.action, e.method, e.value) for e in store.contact_history(escalation.id)] == [
        ("given", "phone", PHONE),
        ("given", "email", EMAIL),
    ]


def test_an_answer_without_contact_details_is_asked_again(recorder: EscalationRecorder) -> None:
    events = [*asked_for_contact(), listen(), user("hmm what do you need", "provide_contact")]
    assert run(ActionRecordContact, events) == [SlotSet("contact_outcome", "unreadable")]


def test_withdrawing_clears_the_contact_and_keeps_the_history(recorder: EscalationRecorder, database: Database) -> None:
    events = asked_for_contact()
    recorded_risk(recorder, events)
    given = [*events, listen(), user(PHONE, "provide_contact")]
    run(ActionRecordContact, given)
    saved = [action("action_record_contact"), *said("utter_contact_status")]
    withdraw = [*given, *saved, listen(), user("delete my number", "withdraw_contact")]

    assert run(ActionWithdrawContact, withdraw) == [SlotSet("contact_outcome", "withdrawn")]

    store = database.store()
    [escalation] = store.list_escalations(status=None)
    assert escalation.contact_value is None
    assert [e.action for e in store.contact_history(escalation.id)] == ["given", "withdrawn"]


# --- The database down ---------------------------------------------------------------------


def test_with_the_database_down_the_contact_waits_in_the_spool_and_is_stored_later(
    database_down: EscalationRecorder, database: Database
) -> None:
    events = asked_for_contact()
    recorded_risk(database_down, events)  # spooled: the database is down

    result = run(ActionRecordContact, [*events, listen(), user(PHONE, "provide_contact")])

    assert result == [SlotSet("contact_outcome", "saved")], "on disk is durable: the person may be told"
    store = database.store()
    report = import_spooled(store, database_down.spool_dir)
    assert len(report.stored) == 2 and not report.quarantined
    [escalation] = store.list_escalations(status=None)
    assert (escalation.level, escalation.category, escalation.conversation_id) == ("urgent", "suicide", SENDER)
    assert (escalation.contact_method, escalation.contact_value) == ("phone", PHONE)


def test_when_nothing_can_be_written_the_person_is_told_it_was_not_passed_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the spool folder should be")
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/test"
    broken = EscalationRecorder(lambda: EscalationStore(url), blocked / "spool", timeout_seconds=1)
    monkeypatch.setattr(escalation_actions, "escalation_recorder", lambda: broken)
    try:
        events = [*asked_for_contact(), listen(), user(PHONE, "provide_contact")]
        assert run(ActionRecordContact, events) == [SlotSet("contact_outcome", "failed")]
        withdraw = [*events, listen(), user("delete my number", "withdraw_contact")]
        assert run(ActionWithdrawContact, withdraw) == [SlotSet("contact_outcome", "failed")]
    finally:
        broken.close()
