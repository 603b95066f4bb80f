"""Recording decisions: idempotency, updates of the open escalation, contacts, the recorder and its spool."""

from __future__ import annotations

import json
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.escalation.recorder import EscalationRecorder, import_spooled
from bot.escalation.records import EscalationRequest, RecordOutcome, utc_now
from bot.escalation.store import (
    EscalationNotFoundError,
    EscalationStore,
    InvalidTransitionError,
    escalation_decisions,
    escalations,
)

from .harness import Database
from .receivers import free_port

MARKER = "thistlewood"
CONTACT = "+1 555 0199"


def turn(sender: str, text: str, timestamp: float) -> dict[str, Any]:
    """Return one transcript turn."""
    return {"sender": sender, "text": text, "timestamp": timestamp}


def request(
    conversation_id: str = "conversation-1",
    turn_id: str = "m1",
    level: str = "priority",
    kind: str = "risk",
    category: str | None = "self_harm",
    transcript: list[dict[str, Any]] | None = None,
    channel: str = "socketio",
) -> EscalationRequest:
    """Return a decision, fields overridable per test."""
    return EscalationRequest(
        conversation_id=conversation_id,
        channel=channel,
        kind=kind,
        level=level,
        category=category,
        turn=turn_id,
        transcript=transcript
        if transcript is not None
        else [turn("bot", "Hello", 1.0), turn("user", f"I feel {MARKER}", 2.0)],
    )


def count(database: Database, table: sa.Table) -> int:
    """Return the number of rows of ``table``."""
    engine = database.engine()
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def unreachable_store() -> EscalationStore:
    """Return a store whose PostgreSQL does not listen: the database is down."""
    return EscalationStore(
        f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/test",
        connect_timeout_seconds=1,
    )


# The store ----------------------------------------------------------------------


def test_record_is_idempotent_by_conversation_and_turn(database: Database) -> None:
    """The same decision stored twice (recorder and spool import) is one escalation."""
    store = database.store()

    first = store.record(request())
    again = store.record(request())
    from_other_process = database.store().record(request())

    assert first.id == again.id == from_other_process.id
    assert again == first
    assert len(store.list_escalations()) == 1
    assert [row.purpose for row in store.list_outbox()] == ["alert"]
    assert count(database, escalation_decisions) == 1
    assert store.find_by_decision("conversation-1", "m1") == first


def test_later_higher_decision_raises_the_open_escalation(database: Database) -> None:
    """A later, higher decision updates the open escalation and queues an upgrade alert."""
    store = database.store(alert_channels=("webhook", "email"))
    first = store.record(request(level="priority"))
    later = store.record(
        request(
            turn_id="m2",
            level="urgent",
            category="suicide",
            transcript=[
                turn("bot", "Hello", 1.0),
                turn("user", f"I feel {MARKER}", 2.0),
                turn("bot", "I'm here.", 3.0),
                turn("user", "it is worse now", 4.0),
            ],
        )
    )

    assert later.id == first.id
    assert (later.level, later.category, later.status) == ("urgent", "suicide", "open")
    assert [t["text"] for t in later.transcript] == [
        "Hello",
        f"I feel {MARKER}",
        "I'm here.",
        "it is worse now",
    ]
    rows = store.list_outbox(first.id)
    assert [(row.purpose, row.channel, row.level_rank) for row in rows] == [
        ("alert", "webhook", 0),
        ("alert", "email", 0),
        ("upgrade", "webhook", 0),
        ("upgrade", "email", 0),
    ]
    assert rows[2].idempotency_key == f"{first.id}:upgrade-urgent:webhook"
    merged = store.events(first.id)[-1]
    assert merged.action == "merged"
    assert "raised from priority to urgent" in (merged.note or "")
    assert MARKER not in (merged.note or "")
    assert len(store.list_escalations()) == 1


def test_later_lower_decision_extends_the_transcript_only(database: Database) -> None:
    """A later, lower decision adds its turns and an audit event, but no alert."""
    store = database.store()
    first = store.record(request(level="urgent", category="suicide"))
    later = store.record(
        request(
            turn_id="m2",
            kind="human_request",
            level="low",
            category=None,
            transcript=[turn("user", "can I talk to someone", 5.0)],
        )
    )

    assert later.id == first.id
    assert (later.level, later.kind, later.category) == ("urgent", "risk", "suicide")
    assert later.transcript[-1]["text"] == "can I talk to someone"
    assert [row.purpose for row in store.list_outbox()] == ["alert"]
    assert store.events(first.id)[-1].action == "merged"


def test_risk_after_a_human_request_becomes_a_risk_escalation(store: EscalationStore) -> None:
    """An open request for a person turns into a risk escalation when risk follows."""
    first = store.record(request(kind="human_request", level="low", category=None))
    later = store.record(request(turn_id="m2", level="urgent", category="suicide"))

    assert later.id == first.id
    assert (later.kind, later.level, later.category) == ("risk", "urgent", "suicide")
    assert [row.purpose for row in store.list_outbox()] == ["alert", "upgrade"]
    # The waiting first alert now goes out as urgent too.
    assert [row.level_rank for row in store.list_outbox()] == [0, 0]


def test_resolved_escalation_is_not_reopened(store: EscalationStore) -> None:
    """After resolution a new decision opens a new escalation."""
    first = store.record(request())
    store.resolve(first.id, actor="dr.rivera")

    second = store.record(request(turn_id="m2"))

    assert second.id != first.id
    assert store.get(first.id).status == "resolved"


def test_concurrent_decisions_of_one_conversation_open_one_escalation(
    database: Database,
) -> None:
    """Two processes recording turns of one conversation at once never open two escalations."""
    stores = [database.store(), database.store()]
    barrier = threading.Barrier(2)

    def record_turns(index: int) -> set[str]:
        barrier.wait()
        return {
            stores[index].record(request(turn_id=f"m{index}-{number}")).id
            for number in range(8)
        }

    with ThreadPoolExecutor(max_workers=2) as pool:
        ids = set().union(*pool.map(record_turns, range(2)))

    assert len(ids) == 1
    assert len(stores[0].list_escalations()) == 1
    assert count(database, escalation_decisions) == 16
    assert [row.purpose for row in stores[0].list_outbox()] == ["alert"]


def test_odd_values_are_normalised_never_rejected(database: Database) -> None:
    """Unknown category, kind and level, overlong ids and odd turns are stored, and audited."""
    store = database.store()
    long_conversation = "c" * 5000
    long_channel = "x" * 600

    escalation = store.record(
        EscalationRequest(
            conversation_id=long_conversation,
            channel=long_channel,
            kind="crisis",
            level="critical",
            category="x",
            turn="t" * 3000,
            transcript=[
                {"sender": "system", "text": 42, "timestamp": "yesterday"},
                {"sender": "user", "text": None},
                "not a turn",  # type: ignore[list-item]
            ],
        )
    )

    assert escalation.conversation_id == long_conversation
    assert escalation.channel == long_channel
    assert (escalation.kind, escalation.level, escalation.category) == (
        "risk",
        "urgent",
        "unspecified",
    )
    assert escalation.transcript == [
        {"sender": "bot", "text": "42", "timestamp": None},
        {"sender": "user", "text": "", "timestamp": None},
    ]
    [created] = store.events(escalation.id)
    assert "category 'x' recorded as unspecified" in (created.note or "")
    assert "level 'critical' recorded as urgent" in (created.note or "")
    assert store.record(
        request(conversation_id=long_conversation, turn_id="t" * 3000)
    ).id == escalation.id


def test_human_requests_per_conversation_are_rate_limited(database: Database) -> None:
    """Beyond the hourly quota a request for a person joins the latest one; risks never do."""
    store = database.store(human_requests_per_hour=2)
    human = {"kind": "human_request", "level": "low", "category": None}
    first = store.record(request(turn_id="m1", **human))
    store.resolve(first.id, actor="dr.rivera")
    second = store.record(request(turn_id="m2", **human))
    store.resolve(second.id, actor="dr.rivera")

    third = store.record(request(turn_id="m3", **human))
    priority_request = store.record(
        request(turn_id="m4", kind="human_request", level="priority", category=None)
    )
    store.resolve(priority_request.id, actor="dr.rivera")
    risk = store.record(request(turn_id="m5", level="urgent", category="suicide"))

    assert third.id == second.id
    assert store.events(second.id)[-1].action == "merged_rate_limited"
    assert priority_request.id not in (first.id, second.id)
    assert risk.id not in (first.id, second.id, priority_request.id)
    assert risk.status == "open"
    alerts = [row.escalation_id for row in store.list_outbox()]
    assert alerts == [first.id, second.id, priority_request.id, risk.id]


def test_old_schema_is_upgraded_in_place(database: Database) -> None:
    """Tables of the previous version gain the new columns, keep their rows and take long ids."""
    old = sa.MetaData()
    sa.Table(
        "escalations",
        old,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("acknowledged_by", sa.String(255)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_by", sa.String(255)),
        sa.Column("resolution_note", sa.Text()),
        sa.Column("contact_method", sa.String(16)),
        sa.Column("contact_value", sa.String(255)),
        sa.Column("transcript", sa.JSON(), nullable=False),
    )
    engine = database.engine()
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            old.tables["escalations"].insert().values(
                id="00000000-0000-4000-8000-000000000001",
                conversation_id="old-conversation",
                channel="rest",
                kind="risk",
                level="urgent",
                category="suicide",
                status="open",
                created_at=utc_now() - timedelta(minutes=30),
                transcript=[],
            )
        )
    engine.dispose()

    store = database.store()

    assert store.get("00000000-0000-4000-8000-000000000001").conversation_id == "old-conversation"
    merged = store.record(request(conversation_id="old-conversation", level="urgent"))
    assert merged.id == "00000000-0000-4000-8000-000000000001"
    assert store.record(request(conversation_id="z" * 4000)).conversation_id == "z" * 4000
    assert store.queue_overdue_reminders(utc_now(), {"urgent": 10}, ("webhook",)) == 1
    engine = database.engine()
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("escalations", schema=database.schema)}
    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("escalations", schema=database.schema)}
    engine.dispose()
    assert "ix_escalations_conversation_id" not in indexes
    assert "ix_escalations_conversation_key" in indexes
    assert isinstance(columns["conversation_id"], sa.Text) or database.dialect == "sqlite"


# Contact ------------------------------------------------------------------------


def test_contact_keeps_its_history_and_can_be_withdrawn(store: EscalationStore) -> None:
    """A corrected contact keeps the earlier one in the history; withdrawal clears it."""
    escalation = store.record(request())

    store.record_contact("conversation-1", "phone", CONTACT)
    corrected = store.record_contact("conversation-1", "email", "me@example.org")
    withdrawn = store.withdraw_contact("conversation-1")

    assert (corrected.contact_method, corrected.contact_value) == ("email", "me@example.org")
    assert (withdrawn.contact_method, withdrawn.contact_value) == (None, None)
    history = store.contact_history(escalation.id)
    assert [(entry.action, entry.method, entry.value) for entry in history] == [
        ("given", "phone", CONTACT),
        ("given", "email", "me@example.org"),
        ("withdrawn", None, None),
    ]
    actions = [(event.action, event.note) for event in store.events(escalation.id)]
    assert actions[-3:] == [
        ("contact_recorded", "method=phone"),
        ("contact_recorded", "method=email"),
        ("contact_withdrawn", None),
    ]
    assert all(CONTACT not in (note or "") for _, note in actions)


def test_contact_entry_replayed_from_the_spool_is_stored_once(store: EscalationStore) -> None:
    """The same contact entry stored twice adds one history row."""
    escalation = store.record(request())

    store.record_contact("conversation-1", "phone", CONTACT, entry_id="entry-1")
    store.record_contact("conversation-1", "phone", CONTACT, entry_id="entry-1")

    assert len(store.contact_history(escalation.id)) == 1


def test_contact_needs_an_escalation_of_the_conversation(store: EscalationStore) -> None:
    """A contact for a conversation without escalation is refused clearly."""
    with pytest.raises(EscalationNotFoundError):
        store.record_contact("nobody", "phone", CONTACT)
    escalation = store.record(request())
    store.resolve(escalation.id, actor="dr.rivera")
    with pytest.raises(InvalidTransitionError):
        store.withdraw_contact("conversation-1")


# The recorder -------------------------------------------------------------------


def test_recorder_writes_the_spool_before_the_database(
    database: Database, tmp_path: Path
) -> None:
    """The decision is on disk, owner-only, before the database is touched; then removed."""
    store = database.store()
    spool_dir = tmp_path / "spool"
    seen_on_disk: list[dict[str, Any]] = []
    original = store.record

    def record_after_checking_the_spool(decision: EscalationRequest) -> Any:
        [path] = spool_dir.glob("*.json")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(spool_dir.stat().st_mode) == 0o700
        seen_on_disk.append(json.loads(path.read_text(encoding="utf-8")))
        return original(decision)

    store.record = record_after_checking_the_spool  # type: ignore[method-assign]
    recorder = EscalationRecorder(lambda: store, spool_dir)

    outcome = recorder.record(request())
    recorder.close()

    assert outcome.durable and outcome.escalation_id
    assert [entry["type"] for entry in seen_on_disk] == ["escalation"]
    assert seen_on_disk[0]["entry"]["turn"] == "m1"
    assert list(spool_dir.glob("*.json")) == []
    assert store.get(outcome.escalation_id).level == "priority"


def test_recorder_spools_while_the_database_is_down_and_the_worker_stores_it_once(
    database: Database, tmp_path: Path
) -> None:
    """Database down: durable in the spool, no id; the import and a late retry make one escalation."""
    spool_dir = tmp_path / "spool"
    down = EscalationRecorder(unreachable_store, spool_dir, timeout_seconds=10)

    outcome = down.record(request())
    contact = down.record_contact("conversation-1", "phone", CONTACT)
    down.close()

    assert outcome == RecordOutcome(durable=True, escalation_id=None)
    assert contact == RecordOutcome(durable=True, escalation_id=None)
    assert len(list(spool_dir.glob("*.json"))) == 2
    store = database.store()
    report = import_spooled(store, spool_dir)
    [escalation] = store.list_escalations()
    assert report.stored == [escalation.id, escalation.id]
    assert escalation.contact_value == CONTACT
    assert list(spool_dir.glob("*.json")) == []
    back = EscalationRecorder(lambda: store, spool_dir)
    assert back.record(request()).escalation_id == escalation.id
    back.close()
    assert len(store.list_escalations()) == 1


def test_recorder_answers_from_the_spool_when_the_database_hangs(
    database: Database, tmp_path: Path
) -> None:
    """A database that does not answer cannot hold the reply: the spool makes it durable."""
    store = database.store()
    release = threading.Event()
    original = store.record

    def hanging(decision: EscalationRequest) -> Any:
        release.wait()
        return original(decision)

    store.record = hanging  # type: ignore[method-assign]
    recorder = EscalationRecorder(lambda: store, tmp_path / "spool", timeout_seconds=0.2)

    outcome = recorder.record(request())
    spooled = list((tmp_path / "spool").glob("*.json"))
    release.set()
    recorder.close(wait=True)  # the late write finishes before the schema is dropped

    assert outcome == RecordOutcome(durable=True, escalation_id=None)
    assert len(spooled) == 1


def test_recorder_reports_not_durable_only_when_disk_and_database_both_fail(
    tmp_path: Path,
) -> None:
    """With no writable spool and no database the outcome says so, without raising."""
    blocked = tmp_path / "spool"
    blocked.write_text("a file where the spool folder should be", encoding="utf-8")
    recorder = EscalationRecorder(unreachable_store, blocked, timeout_seconds=10)

    outcome = recorder.record(request())
    recorder.close()

    assert outcome == RecordOutcome(durable=False, escalation_id=None)


def test_recorder_contact_for_a_resolved_escalation_is_not_kept(
    database: Database, tmp_path: Path
) -> None:
    """A contact that reaches nobody is reported as not stored, and not left in the spool."""
    store = database.store()
    escalation = store.record(request())
    store.resolve(escalation.id, actor="dr.rivera")
    recorder = EscalationRecorder(lambda: store, tmp_path / "spool")

    outcome = recorder.record_contact("conversation-1", "phone", CONTACT)
    recorder.close()

    assert outcome.durable is False
    assert list((tmp_path / "spool").glob("*.json")) == []


def test_sqlite_and_postgres_store_decisions_in_one_row_each(database: Database) -> None:
    """Each escalation row knows its conversation key, so lookups never scan long ids."""
    store = database.store()
    store.record(request(conversation_id="a"))
    store.record(request(conversation_id="b"))
    engine = database.engine()
    with engine.connect() as conn:
        keys = conn.execute(sa.select(escalations.c.conversation_key)).scalars().all()
    engine.dispose()
    assert len(set(keys)) == 2 and all(len(key) == 64 for key in keys)


def test_two_recorders_storing_the_same_decision_keep_one(
    database: Database, tmp_path: Path
) -> None:
    """Two processes recording one decision at once (e.g. a retry) store it once."""
    barrier = threading.Barrier(2)
    stores = [database.store(), database.store()]
    recorders = [
        EscalationRecorder(lambda store=store: store, tmp_path / "spool")  # type: ignore[misc]
        for store in stores
    ]

    def record(recorder: EscalationRecorder) -> RecordOutcome:
        barrier.wait()
        return recorder.record(request())

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(record, recorders))
    for recorder in recorders:
        recorder.close()

    assert outcomes[0].escalation_id == outcomes[1].escalation_id is not None
    assert len(database.store().list_escalations()) == 1
    assert list((tmp_path / "spool").glob("*.json")) == []


def test_escalation_settings_are_read_from_the_environment(tmp_path: Path) -> None:
    """The new schedule and limit variables reach the configuration."""
    from bot.settings import escalation_config_from_env

    config = escalation_config_from_env(
        {
            "ESCALATION_ACK_MINUTES": "5",
            "ESCALATION_PRIORITY_ACK_MINUTES": "45",
            "ESCALATION_HUMAN_REQUESTS_PER_HOUR": "2",
            "ESCALATION_LOW_ALERTS_PER_MINUTE": "0",
            "ESCALATION_RECORD_TIMEOUT_SECONDS": "1.5",
        },
        tmp_path,
    )

    assert config.reminder_minutes == {"urgent": 5.0, "priority": 45.0}
    assert (config.human_requests_per_hour, config.low_alerts_per_minute) == (2, 0)
    assert config.record_timeout_seconds == 1.5
    defaults = escalation_config_from_env({}, tmp_path)
    assert (defaults.priority_ack_minutes, defaults.human_requests_per_hour) == (60, 3)
    assert (defaults.low_alerts_per_minute, defaults.record_timeout_seconds) == (30, 2)


def test_text_databases_refuse_is_stored_not_lost(database: Database, tmp_path: Path) -> None:
    """NUL characters and lone surrogates (PostgreSQL refuses both) never stop an escalation."""
    store = database.store()
    recorder = EscalationRecorder(lambda: store, tmp_path / "spool")
    odd = "conv\x00\ud800-1"

    outcome = recorder.record(
        request(
            conversation_id=odd,
            transcript=[turn("user", "I am\x00 not \udfffsafe", 1.0)],
        )
    )
    contact = recorder.record_contact(odd, "phone", "+1 555\x00 0100")
    recorder.close()

    assert outcome.durable and outcome.escalation_id
    assert contact.escalation_id == outcome.escalation_id
    stored = store.get(outcome.escalation_id)
    assert stored.transcript[0]["text"] == "I am not ?safe"
    assert stored.conversation_id == "conv?-1"
    assert stored.contact_value == "+1 555 0100"
    assert list((tmp_path / "spool").glob("*.json")) == []
