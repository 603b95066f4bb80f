"""The console against the real PostgreSQL the bot and the delivery worker share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from bot.escalation.store import EscalationStore
from bot.web.config import ConsoleConfig

from .conftest import CSRF, TRANSCRIPT, make_escalation, sign_in
from .harness import AsgiClient


@pytest.fixture
def postgres_store(postgres_config: ConsoleConfig) -> Iterator[EscalationStore]:
    """Return the bot's store on the fresh PostgreSQL schema."""
    store = EscalationStore(postgres_config.db_url, schema=postgres_config.db_schema)
    yield store
    store.close()


def test_console_workflow_on_postgresql(
    postgres_config: ConsoleConfig,
    postgres_store: EscalationStore,
    start_client: Callable[..., AsgiClient],
) -> None:
    low = make_escalation(postgres_store, "low", kind="human_request", category=None, age=timedelta(hours=2))
    urgent = make_escalation(postgres_store, "urgent", age=timedelta(minutes=5))
    client = start_client(postgres_config)
    sign_in(client, "ben")

    listed = client.get("/api/escalations").json()
    assert [item["id"] for item in listed["escalations"]] == [urgent.id, low.id]
    assert 5 * 60 <= listed["escalations"][0]["age_seconds"] < 6 * 60

    detail = client.get(f"/api/escalations/{urgent.id}").json()
    assert detail["transcript"] == TRANSCRIPT

    assert client.post(f"/api/escalations/{urgent.id}/acknowledge", headers=CSRF).status == 200
    conflict = client.post(f"/api/escalations/{urgent.id}/acknowledge", headers=CSRF)
    assert conflict.status == 409
    resolved = client.post(
        f"/api/escalations/{urgent.id}/resolve",
        json_body={"note": "Crisis team visited; person safe."},
        headers=CSRF,
    )
    assert resolved.status == 200

    stored = postgres_store.get(urgent.id)
    assert (stored.status, stored.acknowledged_by, stored.resolved_by) == (
        "resolved",
        "ben",
        "ben",
    )
    assert [(event.actor, event.action) for event in postgres_store.events(urgent.id)] == [
        ("system", "created"),
        ("ben", "acknowledged"),
        ("ben", "resolved"),
    ]
    assert [item["id"] for item in client.get("/api/escalations").json()["escalations"]] == [low.id]


def test_paging_filters_counts_and_bulk_resolve_on_postgresql(
    postgres_config: ConsoleConfig,
    postgres_store: EscalationStore,
    start_client: Callable[..., AsgiClient],
) -> None:
    made = [
        make_escalation(postgres_store, level, age=timedelta(minutes=minutes))
        for minutes, level in enumerate(["low", "urgent", "priority"] * 5)
    ]
    tests = [postgres_store.create_escalation(f"load-{n}", "rest", "risk", "urgent", "suicide", []) for n in range(3)]
    client = start_client(postgres_config)
    sign_in(client)

    rank = {"urgent": 0, "priority": 1, "low": 2}
    everything = sorted(
        made + [postgres_store.get(item.id) for item in tests], key=lambda e: (rank[e.level], e.created_at)
    )
    paged: list[str] = []
    cursor = ""
    while True:
        body = client.get(f"/api/escalations?limit=4{cursor}").json()
        assert body["total"] == len(everything)
        paged += [item["id"] for item in body["escalations"]]
        if not body["next_cursor"]:
            break
        cursor = f"&cursor={body['next_cursor']}"
    assert paged == [item.id for item in everything]
    assert body["queue"]["open_by_level"] == {"urgent": 8, "priority": 5, "low": 5}
    assert 14 * 60 <= body["queue"]["oldest_open_wait_seconds"] < 15 * 60

    rest = client.get("/api/escalations?channel=rest&level=urgent").json()
    assert [item["id"] for item in rest["escalations"]] == [item.id for item in tests]
    assert [term["value"] for term in client.get("/api/vocabulary").json()["channels"]] == ["rest", "socketio"]

    resolved = client.post(
        "/api/escalations/resolve", json_body={"ids": [item.id for item in tests], "note": "load test"}, headers=CSRF
    )
    assert resolved.json() == {"resolved": [item.id for item in tests], "not_resolved": []}
    assert client.get("/api/escalations?channel=rest").json()["total"] == 0
    listed = client.get("/api/escalations?status=resolved&limit=2").json()
    assert [item["id"] for item in listed["escalations"]] == [tests[2].id, tests[1].id]
    for item in tests:
        last = postgres_store.events(item.id)[-1]
        assert (last.actor, last.action, last.note) == ("ana", "resolved", "load test")
