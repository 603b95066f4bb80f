"""Tests of the escalation store on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.escalation.config import EscalationConfig
from bot.escalation.store import (
    Escalation,
    EscalationNotFoundError,
    EscalationStore,
    InvalidTransitionError,
    escalation_events,
    outbox,
    utc_now,
)

from .harness import Database

TRANSCRIPT = [
    {"sender": "bot", "text": "Hello, how can I help?", "timestamp": 1764300000.0},
    {"sender": "user", "text": "I am not safe tonight", "timestamp": 1764300005.5},
]


def create(store: EscalationStore, **overrides: object) -> Escalation:
    """Create an urgent suicide-risk escalation, with fields overridable per test."""
    values: dict[str, Any] = {
        "conversation_id": "conversation-1",
        "channel": "socketio",
        "kind": "risk",
        "level": "urgent",
        "category": "suicide",
        "transcript": TRANSCRIPT,
    }
    values.update(overrides)
    return store.create_escalation(**values)


def test_create_escalation_writes_escalation_outbox_and_audit_event(
    database: Database,
) -> None:
    """One call records the escalation, one alert per destination and an event."""
    store = database.store(alert_channels=("webhook", "email"))

    escalation = create(store)

    assert escalation.status == "open"
    assert escalation.created_at.tzinfo is not None
    assert abs(escalation.created_at - utc_now()) < timedelta(minutes=1)
    assert escalation.transcript == TRANSCRIPT
    assert store.get(escalation.id) == escalation
    rows = store.list_outbox(escalation.id)
    assert [(row.channel, row.purpose, row.status, row.attempts) for row in rows] == [
        ("webhook", "alert", "pending", 0),
        ("email", "alert", "pending", 0),
    ]
    assert [row.idempotency_key for row in rows] == [
        f"{escalation.id}:alert:webhook",
        f"{escalation.id}:alert:email",
    ]
    assert [(event.action, event.actor) for event in store.events(escalation.id)] == [
        ("created", "system")
    ]


def test_create_escalation_without_destination_still_records_quietly(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """With no destination the escalation is kept for the console; the worker warns once."""
    store = database.store(alert_channels=())

    with caplog.at_level(logging.WARNING, logger="bot.escalation.store"):
        escalation = create(store)

    assert store.get(escalation.id).status == "open"
    assert store.list_outbox() == []
    assert caplog.records == []


@pytest.mark.parametrize("failing_step", ["_insert_outbox_rows", "_insert_event"])
def test_create_escalation_is_atomic(
    database: Database, monkeypatch: pytest.MonkeyPatch, failing_step: str
) -> None:
    """A failure midway leaves no escalation, alert or event behind."""
    store = database.store(alert_channels=("webhook", "email"))

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, failing_step, fail)

    with pytest.raises(RuntimeError, match="disk full"):
        create(store)

    assert store.list_escalations() == []
    assert store.list_outbox() == []
    engine = database.engine()
    with engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count()).select_from(escalation_events)
            ).scalar()
            == 0
        )
    engine.dispose()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "chat"),
        ("level", "critical"),
        ("category", "loneliness"),
        ("category", None),
        ("conversation_id", ""),
        ("transcript", [{"sender": "system", "text": "hi", "timestamp": 1.0}]),
    ],
)
def test_create_escalation_rejects_invalid_values(
    store: EscalationStore, field: str, value: object
) -> None:
    """Unknown kinds, levels, categories and senders are refused."""
    with pytest.raises(ValueError, match=field.split("_", maxsplit=1)[0]):
        create(store, **{field: value})

    assert store.list_escalations() == []


def test_human_request_defaults_its_category(store: EscalationStore) -> None:
    """A request for a person needs no risk category."""
    escalation = create(store, kind="human_request", level="low", category=None)

    assert escalation.category == "human_request"


def test_acknowledge_and_resolve_write_audit_events(store: EscalationStore) -> None:
    """Acknowledging and resolving record who acted and when."""
    escalation = create(store)

    acknowledged = store.acknowledge(escalation.id, actor="dr.rivera")
    resolved = store.resolve(
        escalation.id, actor="dr.okafor", note="Called back, safety plan made"
    )

    assert acknowledged.status == "acknowledged"
    assert acknowledged.acknowledged_by == "dr.rivera"
    assert acknowledged.acknowledged_at is not None
    assert resolved.status == "resolved"
    assert resolved.resolved_by == "dr.okafor"
    assert resolved.resolution_note == "Called back, safety plan made"
    assert acknowledged.acknowledged_at is not None
    assert resolved.resolved_at is not None
    assert resolved.resolved_at >= acknowledged.acknowledged_at
    events = store.events(escalation.id)
    assert [(event.action, event.actor) for event in events] == [
        ("created", "system"),
        ("acknowledged", "dr.rivera"),
        ("resolved", "dr.okafor"),
    ]
    assert events[1].at == acknowledged.acknowledged_at
    assert events[2].note == "Called back, safety plan made"


def test_resolve_directly_from_open(store: EscalationStore) -> None:
    """A clinician may resolve without acknowledging first."""
    escalation = create(store)

    assert store.resolve(escalation.id, actor="dr.rivera").status == "resolved"


@pytest.mark.parametrize(
    ("steps", "invalid"),
    [
        (["acknowledge"], "acknowledge"),
        (["resolve"], "acknowledge"),
        (["resolve"], "resolve"),
        (["acknowledge", "resolve"], "resolve"),
        (["resolve"], "record_contact"),
    ],
)
def test_invalid_transitions_are_rejected(
    store: EscalationStore, steps: list[str], invalid: str
) -> None:
    """Repeated or backwards status changes raise and write no event."""
    escalation = create(store)
    actions = {
        "acknowledge": lambda: store.acknowledge(escalation.id, actor="dr.rivera"),
        "resolve": lambda: store.resolve(escalation.id, actor="dr.rivera"),
        "record_contact": lambda: store.record_contact(
            escalation.conversation_id, "phone", "+1 555 0100"
        ),
    }
    for step in steps:
        actions[step]()
    events_before = store.events(escalation.id)

    with pytest.raises(InvalidTransitionError, match="cannot record"):
        actions[invalid]()

    assert store.events(escalation.id) == events_before


def test_unknown_escalation_raises_not_found(store: EscalationStore) -> None:
    """Unknown ids raise EscalationNotFoundError."""
    with pytest.raises(EscalationNotFoundError):
        store.get("no-such-id")
    with pytest.raises(EscalationNotFoundError):
        store.acknowledge("no-such-id", actor="dr.rivera")


def test_transition_needs_an_actor(store: EscalationStore) -> None:
    """The audit trail always knows who acted."""
    escalation = create(store)

    with pytest.raises(ValueError, match="actor"):
        store.acknowledge(escalation.id, actor="")


def test_record_contact_stores_value_but_keeps_it_out_of_the_audit_note(
    store: EscalationStore,
) -> None:
    """Contact details go in the record, not in the audit note."""
    escalation = create(store)

    updated = store.record_contact(escalation.conversation_id, "phone", " +1 555 0100 ")

    assert (updated.contact_method, updated.contact_value) == ("phone", "+1 555 0100")
    event = store.events(escalation.id)[-1]
    assert (event.action, event.actor, event.note) == (
        "contact_recorded",
        "user",
        "method=phone",
    )
    with pytest.raises(ValueError, match="contact method"):
        store.record_contact(escalation.conversation_id, "carrier pigeon", "roof")


def test_list_escalations_filters_by_status_newest_first(
    store: EscalationStore,
) -> None:
    """Listing filters by status and shows the newest first."""
    first = create(store, conversation_id="a")
    second = create(
        store, conversation_id="b", kind="human_request", level="low", category=None
    )
    store.acknowledge(first.id, actor="dr.rivera")

    assert [e.id for e in store.list_escalations()] == [second.id, first.id]
    assert [e.id for e in store.list_escalations(status="acknowledged")] == [first.id]
    assert [e.id for e in store.list_escalations(status="open")] == [second.id]
    with pytest.raises(ValueError, match="status"):
        store.list_escalations(status="closed")


def test_schema_creation_is_idempotent_and_data_survives(database: Database) -> None:
    """Opening the store again keeps existing data."""
    escalation = create(database.store())

    reopened = database.store()

    assert reopened.get(escalation.id) == escalation


def test_sqlite_parent_directory_is_created(tmp_path: Path) -> None:
    """The default SQLite path works on a fresh checkout."""
    db_file = tmp_path / "nested" / "var" / "escalations.db"

    store = EscalationStore(f"sqlite:///{db_file}")
    try:
        create(store)
    finally:
        store.close()

    assert db_file.is_file()


def test_from_config_queues_alerts_on_configured_destinations(tmp_path: Path) -> None:
    """A store built from config alerts every configured destination."""
    config = EscalationConfig(
        db_url=f"sqlite:///{tmp_path / 'e.db'}",
        webhook_url="https://hooks.example.org/x",
        smtp_host="smtp.example.org",
        smtp_from="bot@example.org",
        smtp_to=("oncall@example.org",),
    )
    store = EscalationStore.from_config(config)
    try:
        escalation = create(store)
        assert [row.channel for row in store.list_outbox(escalation.id)] == [
            "webhook",
            "email",
        ]
    finally:
        store.close()


def test_claim_due_leases_rows_once(store: EscalationStore) -> None:
    """A claimed row is leased and not handed out twice."""
    escalation = create(store)
    now = utc_now()

    claimed = store.claim_due(now, limit=10, lease_seconds=30)

    assert [row.escalation_id for row in claimed] == [escalation.id]
    row = claimed[0]
    assert (row.status, row.attempts) == ("sending", 1)
    assert row.lease_until == now + timedelta(seconds=30)
    assert row.lease_token
    assert (
        store.claim_due(now + timedelta(seconds=29), limit=10, lease_seconds=30) == []
    )


def test_claim_due_skips_rows_not_yet_due(store: EscalationStore) -> None:
    """Rows wait for their next attempt time."""
    create(store)

    assert (
        store.claim_due(utc_now() - timedelta(minutes=1), limit=10, lease_seconds=30)
        == []
    )


def test_expired_lease_is_claimable_again_and_old_lease_loses(
    store: EscalationStore,
) -> None:
    """A crashed worker's row is retried and its stale report ignored."""
    create(store)
    now = utc_now()
    [first] = store.claim_due(now, limit=10, lease_seconds=30)

    [second] = store.claim_due(now + timedelta(seconds=31), limit=10, lease_seconds=30)

    assert second.id == first.id
    assert second.attempts == 2
    assert second.lease_token != first.lease_token
    assert store.mark_delivered(first) is False
    assert store.mark_failed(first, "late", now, max_attempts=5) is None
    assert store.mark_delivered(second) is True
    assert store.list_outbox()[0].status == "delivered"


def test_claim_due_respects_limit(store: EscalationStore) -> None:
    """Claims stop at the batch limit."""
    for number in range(3):
        create(store, conversation_id=f"c{number}")

    first = store.claim_due(utc_now(), limit=2, lease_seconds=30)
    rest = store.claim_due(utc_now(), limit=2, lease_seconds=30)

    assert (len(first), len(rest)) == (2, 1)
    assert {row.id for row in first}.isdisjoint(row.id for row in rest)


def test_concurrent_workers_claim_disjoint_rows(database: Database) -> None:
    """Two workers claiming at once never get the same row."""
    producer = database.store()
    for number in range(24):
        create(producer, conversation_id=f"c{number}")
    workers = [database.store(), database.store()]

    def drain(store: EscalationStore) -> list[int]:
        claimed: list[int] = []
        while batch := store.claim_due(utc_now(), limit=3, lease_seconds=30):
            claimed.extend(row.id for row in batch)
        return claimed

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(drain, workers))

    all_claimed = results[0] + results[1]
    assert len(all_claimed) == len(set(all_claimed)) == 24


def test_postgres_claim_skips_rows_locked_by_another_worker(
    postgres_database: Database,
) -> None:
    """On PostgreSQL a claim skips rows another transaction holds."""
    store = postgres_database.store()
    locked, free = (
        create(store, conversation_id="a"),
        create(store, conversation_id="b"),
    )
    other_worker = postgres_database.engine()

    with other_worker.begin() as conn:
        conn.execute(
            sa.select(outbox.c.id)
            .where(outbox.c.escalation_id == locked.id)
            .with_for_update()
        )
        claimed = store.claim_due(utc_now(), limit=10, lease_seconds=30)
    other_worker.dispose()

    assert [row.escalation_id for row in claimed] == [free.id]


def test_mark_failed_retries_then_dead_letters(store: EscalationStore) -> None:
    """Failures are retried later, then dead-lettered at the maximum."""
    escalation = create(store)
    now = utc_now()
    retry_at = now + timedelta(seconds=5)

    [row] = store.claim_due(now, limit=1, lease_seconds=30)
    assert store.mark_failed(row, "HTTP 500", retry_at, max_attempts=2) == "pending"
    [pending] = store.list_outbox()
    assert (pending.status, pending.attempts, pending.last_error) == (
        "pending",
        1,
        "HTTP 500",
    )
    assert pending.next_attempt_at == retry_at
    assert pending.lease_until is None

    assert store.claim_due(now, limit=1, lease_seconds=30) == []
    [row] = store.claim_due(retry_at, limit=1, lease_seconds=30)
    assert store.mark_failed(row, "HTTP 500", retry_at, max_attempts=2) == "dead"

    [dead] = store.list_outbox()
    assert (dead.status, dead.attempts) == ("dead", 2)
    assert (
        store.claim_due(retry_at + timedelta(days=1), limit=1, lease_seconds=30) == []
    )
    assert store.events(escalation.id)[-1].action == "dead_lettered"


def test_mark_delivered_records_time_and_event(store: EscalationStore) -> None:
    """Delivery is timestamped and audited."""
    escalation = create(store)
    [row] = store.claim_due(utc_now(), limit=1, lease_seconds=30)

    assert store.mark_delivered(row) is True

    [delivered] = store.list_outbox()
    assert delivered.status == "delivered"
    assert delivered.delivered_at is not None
    assert store.events(escalation.id)[-1].action == "delivered"


def test_overdue_escalations_are_reminded_on_their_level_schedule(
    database: Database,
) -> None:
    """Open urgent and priority escalations are reminded each interval; low never."""
    store = database.store(alert_channels=("webhook",))
    urgent = create(store, conversation_id="urgent-open")
    acknowledged = create(store, conversation_id="urgent-acknowledged")
    priority = create(
        store, conversation_id="priority", level="priority", category="self_harm"
    )
    human = create(
        store, conversation_id="human", kind="human_request", level="low", category=None
    )
    store.acknowledge(acknowledged.id, actor="dr.rivera")
    schedule = {"urgent": 10, "priority": 60}
    start = utc_now()

    def remind(minutes: float) -> int:
        return store.queue_overdue_reminders(
            start + timedelta(minutes=minutes), schedule, ("webhook",), ("email",)
        )

    assert remind(0) == 0
    assert remind(11) == 2  # urgent: primary webhook + second contact's e-mail
    assert remind(11) == 0
    assert remind(19) == 0
    assert remind(22) == 2  # urgent again, ten minutes after the first reminder
    assert remind(61) == 4  # urgent a third time, and priority for the first time

    reminders = [row for row in store.list_outbox() if row.purpose == "reminder"]
    assert sorted(
        (row.escalation_id == urgent.id, row.idempotency_key, row.recipient)
        for row in reminders
    ) == sorted(
        [
            (True, f"{urgent.id}:reminder-{n}:webhook", "primary")
            for n in (1, 2, 3)
        ]
        + [
            (True, f"{urgent.id}:reminder-{n}:email:second", "second")
            for n in (1, 2, 3)
        ]
        + [
            (False, f"{priority.id}:reminder-1:webhook", "primary"),
            (False, f"{priority.id}:reminder-1:email:second", "second"),
        ]
    )
    assert store.get(urgent.id).reminders_sent == 3
    assert [e.action for e in store.events(urgent.id)].count("reminder_queued") == 3
    for other in (acknowledged, human):
        assert "reminder_queued" not in [
            event.action for event in store.events(other.id)
        ]


def test_reminders_stop_once_acknowledged(store: EscalationStore) -> None:
    """Acknowledging ends the reminders."""
    escalation = create(store)
    start = utc_now()
    schedule = {"urgent": 10}

    assert store.queue_overdue_reminders(start + timedelta(minutes=11), schedule, ("webhook",)) == 1
    store.acknowledge(escalation.id, actor="dr.rivera")

    assert store.queue_overdue_reminders(start + timedelta(minutes=30), schedule, ("webhook",)) == 0


def test_concurrent_reminder_queueing_creates_one_row(database: Database) -> None:
    """Two workers queueing reminders at once create one reminder."""
    escalation = create(database.store())
    stores = [database.store(), database.store()]
    later = utc_now() + timedelta(minutes=11)

    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(
            pool.map(
                lambda s: s.queue_overdue_reminders(later, {"urgent": 10}, ("webhook",)),
                stores,
            )
        )

    assert sum(counts) == 1
    reminders = [
        row for row in stores[0].list_outbox(escalation.id) if row.purpose == "reminder"
    ]
    assert len(reminders) == 1
