"""The console's list: pages, filters, queue counts, vocabulary and bulk resolve; times in ISO 8601 UTC."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.escalation.console_queries import ConsoleQueries, EscalationFilter, InvalidCursorError, encode_cursor
from bot.escalation.store import (
    CONTACT_METHODS,
    HUMAN_REQUEST_CATEGORY,
    KINDS,
    LEVELS,
    RISK_CATEGORIES,
    SENDERS,
    STATUSES,
    EscalationStore,
)
from bot.web.api import MAX_BULK_RESOLVE
from bot.web.database import open_console_engine
from bot.web.times import transcript_time
from bot.web.vocabulary import LABELS

from .conftest import CSRF, make_escalation
from .harness import AsgiClient

# 2024-11-28 09:00:00 UTC, as Rasa stamps events (epoch seconds, a float).
RASA_TIMESTAMP = 1732784400.25


def _ids(response) -> list[str]:
    assert response.status == 200, response.text
    return [item["id"] for item in response.json()["escalations"]]


def _all_pages(client: AsgiClient, query: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        url = f"/api/escalations?{query}" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url).json()
        ids += [item["id"] for item in body["escalations"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


# Times ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "sent"),
    [
        (RASA_TIMESTAMP, "2024-11-28T09:00:00+00:00"),
        (1732784400, "2024-11-28T09:00:00+00:00"),
        ("1732784400.25", "2024-11-28T09:00:00+00:00"),
        ("2024-11-28T09:00:00Z", "2024-11-28T09:00:00+00:00"),
        ("2024-11-28T10:00:00+01:00", "2024-11-28T09:00:00+00:00"),
        ("2024-11-28T09:00:00", "2024-11-28T09:00:00+00:00"),
        (None, None),
        ("yesterday", None),
        (True, None),
        (float("nan"), None),
        (1e300, None),
        ([1], None),
    ],
)
def test_transcript_times_are_sent_as_iso_utc(stored: object, sent: str | None) -> None:
    assert transcript_time(stored) == sent


def test_the_transcript_of_a_rasa_conversation_has_iso_times(signed_in: AsgiClient, store: EscalationStore) -> None:
    escalation = make_escalation(
        store,
        transcript=[
            {"sender": "user", "text": "hello", "timestamp": RASA_TIMESTAMP},
            {"sender": "bot", "text": "hi", "timestamp": RASA_TIMESTAMP + 2},
        ],
    )
    body = signed_in.get(f"/api/escalations/{escalation.id}").json()
    assert [turn["timestamp"] for turn in body["transcript"]] == [
        "2024-11-28T09:00:00+00:00",
        "2024-11-28T09:00:02+00:00",
    ]
    for moment in (body["created_at"], body["events"][0]["at"]):
        assert datetime.fromisoformat(moment).utcoffset() == timedelta(0)


# Paging and filters -----------------------------------------------------------


def test_pages_cover_every_escalation_once_in_triage_order(signed_in: AsgiClient, store: EscalationStore) -> None:
    made = [
        make_escalation(store, level, age=timedelta(minutes=minutes))
        for minutes, level in enumerate(["low", "urgent", "priority"] * 9)
    ]
    first = signed_in.get("/api/escalations?limit=10").json()
    assert first["count"] == 10 and first["total"] == 27 and first["limit"] == 10
    assert first["next_cursor"]
    assert all("transcript" not in item and "contact" not in item for item in first["escalations"])

    paged = _all_pages(signed_in, "limit=10")
    rank = {level: position for position, level in enumerate(LEVELS)}
    expected = sorted(made, key=lambda item: (rank[item.level], item.created_at))
    assert paged == [item.id for item in expected]


def test_an_escalation_resolved_while_paging_does_not_shift_the_next_page(
    signed_in: AsgiClient, store: EscalationStore
) -> None:
    made = [make_escalation(store, "urgent", age=timedelta(minutes=20 - minute)) for minute in range(6)]
    first = signed_in.get("/api/escalations?limit=3").json()
    store.resolve(first["escalations"][0]["id"], "ben", "test traffic")
    second = signed_in.get(f"/api/escalations?limit=3&cursor={first['next_cursor']}").json()
    assert [item["id"] for item in second["escalations"]] == [item.id for item in made[3:]]
    assert second["total"] == 5


def test_filters_by_level_category_channel_and_status(signed_in: AsgiClient, store: EscalationStore) -> None:
    urgent = make_escalation(store, "urgent", category="suicide")
    priority = make_escalation(store, "priority", category="self_harm")
    human = make_escalation(store, "low", kind="human_request", category=None)
    rest = store.create_escalation("conv-rest", "rest", "risk", "urgent", "suicide", [])
    resolved = make_escalation(store, "urgent", category="suicide")
    store.resolve(resolved.id, "ben", "done")

    assert _ids(signed_in.get("/api/escalations?level=urgent")) == [urgent.id, rest.id]
    assert _ids(signed_in.get("/api/escalations?level=urgent&channel=rest")) == [rest.id]
    assert _ids(signed_in.get("/api/escalations?category=self_harm")) == [priority.id]
    assert _ids(signed_in.get(f"/api/escalations?category={HUMAN_REQUEST_CATEGORY}")) == [human.id]
    assert _ids(signed_in.get("/api/escalations?status=resolved&category=suicide")) == [resolved.id]
    assert set(_ids(signed_in.get("/api/escalations?status=all&level=urgent"))) == {urgent.id, rest.id, resolved.id}
    assert _ids(signed_in.get("/api/escalations?channel=twilio")) == []
    body = signed_in.get("/api/escalations?level=urgent&channel=rest").json()
    assert body["filters"] == {"level": "urgent", "category": None, "channel": "rest"}
    assert body["total"] == 1


def test_resolved_ones_are_listed_most_recently_resolved_first(signed_in: AsgiClient, store: EscalationStore) -> None:
    made = [make_escalation(store, level) for level in ("low", "urgent", "priority")]
    for item in made:
        store.resolve(item.id, "ben", "done")
    assert _all_pages(signed_in, "status=resolved&limit=2") == [item.id for item in reversed(made)]


@pytest.mark.parametrize(
    "query",
    [
        "status=closed",
        "level=critical",
        "category=anything",
        "limit=0",
        "limit=201",
        "limit=ten",
        "limit=-1",
        "limit=%C2%B2",
        "limit=" + "9" * 5000,
        "channel=" + "x" * 65,
        "cursor=not-a-cursor",
        "cursor=" + encode_cursor("recently_resolved", ["2024-01-01T00:00:00+00:00", "x"]),
        "cursor=" + encode_cursor("triage", ["0", "2024-01-01T00:00:00+00:00", "x"]),
        "cursor=" + encode_cursor("triage", [0, "2024-01-01T00:00:00", "x"]),
        "cursor=" + "A" * 600,
    ],
    ids=lambda query: query[:40],
)
def test_bad_list_queries_are_400(signed_in: AsgiClient, query: str) -> None:
    response = signed_in.get(f"/api/escalations?{query}")
    assert response.status == 400
    assert response.json()["error"]["status"] == 400


def test_the_queue_counts_open_escalations_and_the_oldest_wait(signed_in: AsgiClient, store: EscalationStore) -> None:
    make_escalation(store, "urgent", age=timedelta(minutes=5))
    oldest = make_escalation(store, "low", kind="human_request", category=None, age=timedelta(hours=2))
    make_escalation(store, "low", kind="human_request", category=None, age=timedelta(minutes=1))
    acknowledged = make_escalation(store, "priority", category="acute_crisis", age=timedelta(hours=5))
    store.acknowledge(acknowledged.id, "ben")

    # The counts describe the whole queue, whatever the list shows.
    queue = signed_in.get("/api/escalations?status=resolved&level=urgent").json()["queue"]

    assert queue["open"] == 3
    assert queue["open_by_level"] == {"urgent": 1, "priority": 0, "low": 2}
    assert queue["acknowledged"] == 1
    assert datetime.fromisoformat(queue["oldest_open_at"]) == oldest.created_at.replace(microsecond=0)
    assert 2 * 3600 <= queue["oldest_open_wait_seconds"] < 2 * 3600 + 60


def test_an_empty_queue_has_no_oldest_wait(signed_in: AsgiClient) -> None:
    queue = signed_in.get("/api/escalations").json()["queue"]
    assert queue == {
        "open": 0,
        "open_by_level": {"urgent": 0, "priority": 0, "low": 0},
        "acknowledged": 0,
        "oldest_open_at": None,
        "oldest_open_wait_seconds": None,
    }


def test_the_list_query_never_reads_transcripts_or_contacts(db_url: str, store: EscalationStore) -> None:
    escalation = make_escalation(store)
    store.record_contact(escalation.conversation_id, "phone", "+44 20 7946 0000")
    engine = open_console_engine(db_url)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        page = ConsoleQueries(engine).page(EscalationFilter(status=None), limit=10)
    finally:
        engine.dispose()
    assert [item.id for item in page.items] == [escalation.id]
    assert page.items[0].has_contact
    assert statements and not any("transcript" in sql or "contact_value" in sql for sql in statements)


def test_a_cursor_for_another_order_is_refused(db_url: str, store: EscalationStore) -> None:
    for _ in range(3):
        make_escalation(store)
    engine = open_console_engine(db_url)
    try:
        queries = ConsoleQueries(engine)
        cursor = queries.page(EscalationFilter(status="open"), limit=1).next_cursor
        assert cursor is not None
        assert len(queries.page(EscalationFilter(status="open"), limit=5, cursor=cursor).items) == 2
        with pytest.raises(InvalidCursorError):
            queries.page(EscalationFilter(status="resolved"), limit=5, cursor=cursor)
    finally:
        engine.dispose()


# Vocabulary ------------------------------------------------------------------


def test_the_vocabulary_comes_from_the_store(signed_in: AsgiClient, store: EscalationStore) -> None:
    make_escalation(store)
    store.create_escalation("conv-rest", "rest", "risk", "urgent", "suicide", [])

    body = signed_in.get("/api/vocabulary").json()

    def values(name: str) -> list[str]:
        return [term["value"] for term in body[name]]

    assert values("levels") == list(LEVELS)
    assert values("statuses") == [*STATUSES, "all"]
    assert values("categories") == [*RISK_CATEGORIES, HUMAN_REQUEST_CATEGORY]
    assert values("kinds") == list(KINDS)
    assert values("senders") == list(SENDERS)
    assert values("contact_methods") == list(CONTACT_METHODS)
    assert values("channels") == ["rest", "socketio"]
    assert body["limits"] == {"note": 2000, "page_size": 50, "bulk_resolve": MAX_BULK_RESOLVE}
    assert {term["value"]: term["label"] for term in body["categories"]}["suicide"] == "Suicide risk"


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("levels", LEVELS),
        ("statuses", STATUSES),
        ("categories", (*RISK_CATEGORIES, HUMAN_REQUEST_CATEGORY)),
        ("kinds", KINDS),
        ("senders", SENDERS),
        ("contact_methods", CONTACT_METHODS),
    ],
)
def test_every_store_value_has_a_label(name: str, values: tuple[str, ...]) -> None:
    assert set(values) <= set(LABELS[name])


def test_the_vocabulary_needs_a_session(client: AsgiClient) -> None:
    assert client.get("/api/vocabulary").status == 401


# Bulk resolve ----------------------------------------------------------------


def test_bulk_resolve_records_the_note_on_each_escalation(signed_in: AsgiClient, store: EscalationStore) -> None:
    tests = [store.create_escalation(f"load-test-{n}", "rest", "risk", "urgent", "suicide", []) for n in range(3)]
    real = make_escalation(store)
    already = make_escalation(store)
    store.resolve(already.id, "ben", "called back")
    missing = str(uuid.uuid4())

    response = signed_in.post(
        "/api/escalations/resolve",
        json_body={"ids": [item.id for item in tests] + [already.id, missing, tests[0].id], "note": " Load test "},
        headers=CSRF,
    )

    assert response.status == 200
    assert response.json() == {
        "resolved": [item.id for item in tests],
        "not_resolved": [{"id": already.id, "reason": "already_resolved"}, {"id": missing, "reason": "not_found"}],
    }
    for item in tests:
        stored = store.get(item.id)
        assert (stored.status, stored.resolved_by, stored.resolution_note) == ("resolved", "ana", "Load test")
        assert [(e.actor, e.action, e.note) for e in store.events(item.id)][-1] == ("ana", "resolved", "Load test")
    assert store.get(real.id).status == "open"
    assert store.get(already.id).resolution_note == "called back"


@pytest.mark.parametrize(
    "body",
    [
        {"ids": [], "note": "test"},
        {"ids": "all", "note": "test"},
        {"ids": ["not-a-uuid"], "note": "test"},
        {"ids": [1], "note": "test"},
        {"ids": [str(uuid.uuid4()) for _ in range(MAX_BULK_RESOLVE + 1)], "note": "test"},
        {"ids": None, "note": "test"},
        {"note": "test"},
    ],
    ids=["empty", "text", "bad-uuid", "number", "too-many", "null", "missing"],
)
def test_bulk_resolve_refuses_bad_id_lists(signed_in: AsgiClient, store: EscalationStore, body: dict) -> None:
    escalation = make_escalation(store)
    response = signed_in.post("/api/escalations/resolve", json_body=body, headers=CSRF)
    assert response.status == 400
    assert store.get(escalation.id).status == "open"


@pytest.mark.parametrize("note", [None, "", "   ", 7, "x" * 2001])
def test_bulk_resolve_needs_a_note(signed_in: AsgiClient, store: EscalationStore, note: object) -> None:
    escalation = make_escalation(store)
    body = {"ids": [escalation.id]} if note is None else {"ids": [escalation.id], "note": note}
    response = signed_in.post("/api/escalations/resolve", json_body=body, headers=CSRF)
    assert response.status == 400
    assert store.get(escalation.id).status == "open"


def test_bulk_resolve_needs_a_session_and_the_console_header(
    client: AsgiClient, signed_in_ben: AsgiClient, store: EscalationStore
) -> None:
    escalation = make_escalation(store)
    body = {"ids": [escalation.id], "note": "test"}
    assert client.post("/api/escalations/resolve", json_body=body, headers=CSRF).status == 401
    assert signed_in_ben.post("/api/escalations/resolve", json_body=body).status == 403
    assert store.get(escalation.id).status == "open"
