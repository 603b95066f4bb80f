"""Escalation decisions recorded inside the Rasa server while the crisis reply is rendered, and honest words.

The recorder, store and spool are real (SQLite and PostgreSQL); the last tests
render through the response generator Rasa builds from endpoints.yml.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest
from rasa.core.actions.action import action_for_name_or_text
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg import NaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot.escalation.decision import InServerEscalations, is_clear_yes
from bot.escalation.recorder import EscalationRecorder
from bot.escalation.store import EscalationStore
from tests.actions.events import listen, risk_turn, said, slot, user
from tests.escalation.harness import Database
from tests.escalation.receivers import free_port

ROOT = Path(__file__).resolve().parents[2]
SENDER = "conversation-1"


@pytest.mark.parametrize(
    "text", ["/affirm", "yes", "Yes, I'm safe right now", "yeah i'm safe", "I am safe.", "ok", "yep, safe", "of course"]
)
def test_a_clear_yes(text: str) -> None:
    assert is_clear_yes(text)


@pytest.mark.parametrize(
    "text",
    ["kind of", "not sure", "idk", "i think so", "yes for now", "yes but I'm scared", "maybe", "no", "", "yes?", "🙂"],
)
def test_anything_else_is_not_a_clear_yes(text: str) -> None:
    assert not is_clear_yes(text)


class Rendered:
    """Stands in for Rasa's template rendering: the response name as its text."""

    def __init__(self) -> None:
        self.names: List[str] = []

    async def __call__(self, name: str) -> Optional[Dict[str, Any]]:
        self.names.append(name)
        return {"text": f"[{name}]"}


def render(escalations: InServerEscalations, response: str, events: Sequence[Dict[str, Any]]) -> str:
    rendered = Rendered()
    message = asyncio.run(escalations.render(response, SENDER, "rest", events, rendered))
    assert message is not None
    return str(message["text"])


@pytest.fixture
def recorder(database: Database, tmp_path: Path) -> EscalationRecorder:
    built = EscalationRecorder(database.store, tmp_path / "spool", timeout_seconds=5)
    yield built
    built.close()


def crisis_turn(text: str, level: str, category: str, before: Sequence[Dict[str, Any]] = ()) -> List[Dict[str, Any]]:
    """The events as the crisis reply is rendered: the message is the latest event."""
    return [*before, listen(), user(text, f"risk_{level}", level=level, category=category)]


def test_the_crisis_reply_is_rendered_after_its_escalation_is_stored(
    recorder: EscalationRecorder, database: Database
) -> None:
    escalations = InServerEscalations(recorder, destinations_configured=True)
    events = crisis_turn("I have the pills ready tonight", "urgent", "suicide")

    assert render(escalations, "utter_crisis", events) == "[utter_crisis]"

    [escalation] = database.store().list_escalations(status=None)
    assert (escalation.kind, escalation.level, escalation.category) == ("risk", "urgent", "suicide")
    assert [turn["text"] for turn in escalation.transcript] == ["I have the pills ready tonight"]
    after = [*events, *said("utter_crisis")]
    assert render(escalations, "utter_escalation_status", after) == "[utter_escalation_alerted]"


def test_without_alert_destinations_the_words_say_the_console(recorder: EscalationRecorder, database: Database) -> None:
    escalations = InServerEscalations(recorder, destinations_configured=False)
    events = crisis_turn("I want to die", "priority", "suicide")

    render(escalations, "utter_crisis_priority", events)

    assert render(escalations, "utter_escalation_status", events) == "[utter_escalation_saved]"
    assert len(database.store().list_escalations(status=None)) == 1, "the console lists it"


def test_with_the_database_down_the_decision_is_spooled_and_still_counts(tmp_path: Path, database: Database) -> None:
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/test"
    down = EscalationRecorder(lambda: EscalationStore(url), tmp_path / "spool", timeout_seconds=2)
    escalations = InServerEscalations(down, destinations_configured=True)
    events = crisis_turn("I'm going to jump tonight", "urgent", "suicide")

    render(escalations, "utter_crisis", events)

    assert render(escalations, "utter_escalation_status", events) == "[utter_escalation_alerted]"
    from bot.escalation.recorder import import_spooled

    store = database.store()
    assert len(import_spooled(store, down.spool_dir).stored) == 1
    [escalation] = store.list_escalations(status=None)
    assert (escalation.level, escalation.conversation_id) == ("urgent", SENDER)
    down.close()


def test_when_not_even_the_spool_can_be_written_nothing_is_claimed(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("where the spool folder should be")
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/test"
    broken = EscalationRecorder(lambda: EscalationStore(url), blocked / "spool", timeout_seconds=1)
    escalations = InServerEscalations(broken, destinations_configured=True)
    events = crisis_turn("I'm going to jump tonight", "urgent", "suicide")

    assert render(escalations, "utter_crisis", events) == "[utter_crisis]", "the crisis resources still go out"
    assert render(escalations, "utter_escalation_status", events) == "[utter_escalation_not_recorded]"
    broken.close()


def test_the_same_decision_rendered_twice_is_recorded_once(recorder: EscalationRecorder, database: Database) -> None:
    escalations = InServerEscalations(recorder, destinations_configured=True)
    events = crisis_turn("I want to kill myself", "urgent", "suicide")

    render(escalations, "utter_crisis", events)
    render(escalations, "utter_crisis", events)
    render(InServerEscalations(recorder, destinations_configured=True), "utter_crisis", events)  # another process

    assert len(database.store().list_escalations(status=None)) == 1


@pytest.mark.parametrize(
    "answer, intent",
    [("/deny", "deny"), ("not sure", "deny"), ("idk", "nlu_fallback"), ("kind of", "faq"), ("what is ptsd", "faq")],
)
def test_anything_but_a_clear_yes_makes_the_open_escalation_urgent(
    recorder: EscalationRecorder, database: Database, answer: str, intent: str
) -> None:
    escalations = InServerEscalations(recorder, destinations_configured=True)
    first = risk_turn("I keep thinking about ending it", "priority", "suicide")
    render(escalations, "utter_crisis_priority", first[:2])
    events = [*first, listen(), user(answer, intent)]

    assert render(escalations, "utter_crisis_not_safe", events) == "[utter_crisis_not_safe]"
    assert render(escalations, "utter_escalation_status", events) == "[utter_escalation_alerted]"

    store = database.store()
    [escalation] = store.list_escalations(status=None)
    assert (escalation.level, escalation.category) == ("urgent", "suicide"), "updated, not duplicated"
    assert answer in [turn["text"] for turn in escalation.transcript]


@pytest.mark.parametrize("answer", ["yes for now", "yes but I'm scared", "ok I guess"])
def test_a_hedged_yes_gets_the_not_safe_reply_and_an_urgent_escalation(
    recorder: EscalationRecorder, database: Database, answer: str
) -> None:
    escalations = InServerEscalations(recorder, destinations_configured=True)
    events = [*risk_turn("I want to die", "priority", "suicide"), listen(), user(answer, "affirm")]

    text = render(escalations, "utter_glad_safe", events)

    assert text == "[utter_crisis_not_safe]\n\n[utter_escalation_alerted]"
    [escalation] = database.store().list_escalations(status=None)
    assert escalation.level == "urgent"


def test_a_clear_yes_is_glad_and_records_nothing(recorder: EscalationRecorder, database: Database) -> None:
    escalations = InServerEscalations(recorder, destinations_configured=True)
    events = [*risk_turn("I want to die", "priority", "suicide"), listen(), user("yes, I'm safe", "affirm")]

    assert render(escalations, "utter_glad_safe", events) == "[utter_glad_safe]"
    assert database.store().list_escalations(status=None) == []


def test_a_later_risk_message_updates_the_open_escalation(recorder: EscalationRecorder, database: Database) -> None:
    escalations = InServerEscalations(recorder, destinations_configured=True)
    first = crisis_turn("I've been cutting again", "priority", "self_harm")
    render(escalations, "utter_crisis_priority", first)
    later = crisis_turn(
        "I have the pills in my hand now", "urgent", "suicide", before=[*first, *said("utter_crisis_priority")]
    )

    render(escalations, "utter_crisis", later)

    store = database.store()
    [escalation] = store.list_escalations(status=None)
    assert (escalation.level, escalation.category) == ("urgent", "suicide")
    assert [t["text"] for t in escalation.transcript if t["sender"] == "user"] == [
        "I've been cutting again",
        "I have the pills in my hand now",
    ]


def test_a_request_for_a_person_is_recorded_and_worded_from_the_outcome(
    recorder: EscalationRecorder, database: Database
) -> None:
    events = [listen(), user("can someone from the clinic call me", "request_human")]

    alerted = render(InServerEscalations(recorder, destinations_configured=True), "utter_request_human", events)

    assert alerted == "[utter_request_human_alerted]"
    [escalation] = database.store().list_escalations(status=None)
    assert (escalation.kind, escalation.level) == ("human_request", "low")


@pytest.mark.parametrize(
    "outcome, wording",
    [
        ("saved", "utter_contact_saved"),
        ("failed", "utter_contact_not_saved"),
        ("not_asked", "utter_contact_not_requested"),
        ("unreadable", "utter_ask_contact_detail_again"),
        (None, "utter_contact_not_saved"),
    ],
)
def test_contact_words_follow_what_the_action_recorded_this_turn(
    recorder: EscalationRecorder, outcome: Optional[str], wording: str
) -> None:
    escalations = InServerEscalations(recorder, destinations_configured=True)
    earlier = [listen(), user("+1 555 201 8899", "provide_contact"), slot("contact_outcome", "saved")]
    this_turn = [listen(), user("sam@example.org", "provide_contact")]
    if outcome is not None:
        this_turn.append(slot("contact_outcome", outcome))

    assert render(escalations, "utter_contact_status", [*earlier, *this_turn]) == f"[{wording}]"


# --- Through the response generator Rasa builds -----------------------------------------------


@pytest.fixture
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain.yml"))


def generator(domain: Domain, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **options: Any) -> Any:
    monkeypatch.setenv("CRISIS_RESOURCES_FILE", str(ROOT / "crisis_resources.yml"))
    monkeypatch.setenv("CRISIS_REGION", "US")
    monkeypatch.setenv("ESCALATION_DB_URL", f"sqlite:///{tmp_path / 'escalations.db'}")
    monkeypatch.setenv("ESCALATION_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.delenv("ESCALATION_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("SMTP_HOST", raising=False)
    return NaturalLanguageGenerator.create(EndpointConfig(type="bot.nlg.RegionalResponseGenerator", **options), domain)


def utter(name: str, nlg: Any, tracker: DialogueStateTracker, domain: Domain) -> BotUttered:
    response = action_for_name_or_text(name, domain, None)
    events = asyncio.run(response.run(CollectingOutputChannel(), nlg, tracker, domain))
    [event] = events
    tracker.update(event)
    return event


def test_the_server_records_while_rendering_and_says_only_what_is_true(
    domain: Domain, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nlg = generator(domain, monkeypatch, tmp_path, record_escalations=True)
    tracker = DialogueStateTracker.from_dict(
        SENDER, crisis_turn("I'm going to hang myself tonight", "urgent", "suicide"), domain.slots
    )

    crisis = utter("utter_crisis", nlg, tracker, domain)
    status = utter("utter_escalation_status", nlg, tracker, domain)

    assert "911" in crisis.text and "988" in crisis.text
    assert "alert" not in crisis.text.lower(), "the crisis reply itself claims nothing"
    saved = domain.responses["utter_escalation_saved"][0]["text"].replace("{emergency_number}", "911")
    assert status.text == saved, "no destination: the console"
    store = EscalationStore(f"sqlite:///{tmp_path / 'escalations.db'}")
    try:
        [escalation] = store.list_escalations(status=None)
    finally:
        store.close()
    assert (escalation.level, escalation.category, escalation.conversation_id) == ("urgent", "suicide", SENDER)


def test_without_the_option_nothing_is_recorded(
    domain: Domain, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nlg = generator(domain, monkeypatch, tmp_path)
    tracker = DialogueStateTracker.from_dict(SENDER, crisis_turn("I want to die", "priority", "suicide"), domain.slots)

    utter("utter_crisis_priority", nlg, tracker, domain)
    status = utter("utter_escalation_status", nlg, tracker, domain)

    assert status.text == domain.responses["utter_escalation_not_recorded"][0]["text"]
    assert not (tmp_path / "spool").exists() and not (tmp_path / "escalations.db").exists()
