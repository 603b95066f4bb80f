"""Delivery order, rate limits, 429 handling and concurrent workers, against real loopback receivers."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from bot.escalation import spool
from bot.escalation.config import EscalationConfig, destinations_configured
from bot.escalation.notifiers import WebhookNotifier, retry_after_seconds
from bot.escalation.store import EscalationStore, utc_now
from bot.escalation.worker import DeliveryWorker

from .harness import Database, FakeClock
from .receivers import WebhookReceiver
from .test_escalation_recording import request
from .test_escalation_worker import PROJECT_ROOT, wait_until


def low(number: int) -> object:
    """Return a request for a person from conversation ``number``."""
    return request(
        conversation_id=f"low-{number}", kind="human_request", level="low", category=None
    )


def worker_for(
    store: EscalationStore, config: EscalationConfig, clock: FakeClock, url: str
) -> DeliveryWorker:
    """Return a worker posting to ``url`` with deterministic jitter."""
    return DeliveryWorker(
        store, {"webhook": WebhookNotifier(url)}, config, clock=clock, rng=random.Random(3)
    )


def sent_ids(receiver: WebhookReceiver) -> list[str]:
    """Return the escalation ids the receiver got, in order."""
    return [json.loads(r.body)["escalation_id"] for r in receiver.requests]


def test_urgent_alert_goes_next_after_a_flood_of_low_requests(
    database: Database, config: EscalationConfig, clock: FakeClock
) -> None:
    """After 2,000 low-level requests, an urgent one is the next alert delivered."""
    store = database.store(low_alerts_per_minute=0)
    # Many conversations at once, as in a flood: four recorders share the database.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda number: store.record(low(number)), range(2000)))  # type: ignore[arg-type]

    async def scenario() -> tuple[WebhookReceiver, str, int]:
        async with WebhookReceiver() as receiver:
            worker = worker_for(store, config, clock, receiver.url)
            await worker.deliver_pending_alerts()
            before = len(receiver.requests)
            urgent = store.record(request(conversation_id="at-risk", level="urgent", category="suicide"))
            await worker.deliver_pending_alerts()
        return receiver, urgent.id, before

    receiver, urgent_id, before = asyncio.run(scenario())

    assert before == config.batch_size
    ids = sent_ids(receiver)
    assert ids[before] == urgent_id
    assert ids.count(urgent_id) == 1
    assert len(ids) == 2 * config.batch_size


def test_low_alerts_beyond_the_cap_are_deferred_never_urgent_or_priority(
    database: Database, config: EscalationConfig, clock: FakeClock
) -> None:
    """Over the per-minute cap low alerts wait for later minutes; none is dropped."""
    store = database.store(low_alerts_per_minute=5)
    lows = [store.record(low(number)).id for number in range(12)]  # type: ignore[arg-type]
    urgent = [
        store.record(request(conversation_id=f"u{n}", level="urgent", category="suicide")).id
        for n in range(2)
    ]
    priority = store.record(request(conversation_id="p", level="priority")).id
    config = EscalationConfig(**{**config.__dict__, "batch_size": 50})

    async def scenario() -> tuple[WebhookReceiver, list[int]]:
        counts = []
        async with WebhookReceiver() as receiver:
            worker = worker_for(store, config, clock, receiver.url)
            for _ in range(4):
                counts.append(await worker.deliver_pending_alerts())
                clock.advance(seconds=61)
        return receiver, counts

    receiver, counts = asyncio.run(scenario())

    assert counts == [8, 5, 2, 0]
    ids = sent_ids(receiver)
    assert set(ids[:2]) == set(urgent)
    assert ids[2] == priority
    assert sorted(ids[3:]) == sorted(lows)


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_retry_after_holds_the_destination_then_urgent_goes_first(
    database: Database, config: EscalationConfig, clock: FakeClock, form: str
) -> None:
    """A 429 makes every alert for the webhook wait as asked; then urgent goes first."""
    store = database.store()
    waiting_low = store.record(low(1)).id  # type: ignore[arg-type]
    urgent = store.record(request(conversation_id="u", level="urgent", category="suicide")).id
    retry_after = (
        "120"
        if form == "seconds"
        else format_datetime(utc_now() + timedelta(seconds=120), usegmt=True)
    )

    async def scenario() -> tuple[WebhookReceiver, list[int]]:
        counts = []
        async with WebhookReceiver(statuses=[(429, {"Retry-After": retry_after})]) as receiver:
            worker = worker_for(store, config, clock, receiver.url)
            counts.append(await worker.deliver_pending_alerts())
            clock.advance(seconds=60)
            counts.append(await worker.deliver_pending_alerts())
            clock.advance(seconds=62)
            counts.append(await worker.deliver_pending_alerts())
        return receiver, counts

    receiver, counts = asyncio.run(scenario())

    assert counts == [0, 0, 2]
    assert sent_ids(receiver) == [urgent, urgent, waiting_low]
    rows = {row.escalation_id: row for row in store.list_outbox()}
    assert rows[urgent].status == rows[waiting_low].status == "delivered"
    # Being asked to wait is not a failed attempt.
    assert (rows[urgent].attempts, rows[waiting_low].attempts) == (1, 1)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("30", 30.0), (None, 60.0), ("soon", 60.0), ("99999999", 3600.0)],
)
def test_retry_after_header_forms(header: str | None, expected: float) -> None:
    """Seconds are taken as given, garbage means a minute, and waits are capped at an hour."""
    assert retry_after_seconds(header) == expected


def test_retry_after_http_date_counts_from_now() -> None:
    """An HTTP date asks for the time until then."""
    header = "Wed, 21 Oct 2037 07:28:00 GMT"
    now = 2139722880.0 - 90  # 90 seconds before that date

    assert retry_after_seconds(header, now=now) == 90.0


def test_worker_without_destination_warns_once_and_escalations_still_land(
    database: Database,
    config: EscalationConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No destination: one loud warning at start, not one per escalation; the console still has them."""
    store = database.store(alert_channels=())
    worker = DeliveryWorker(store, {}, config)
    passes = 0
    original = worker.deliver_pending_alerts

    async def counted() -> int:
        nonlocal passes
        passes += 1
        store.record(request(conversation_id=f"c{passes}", level="urgent", category="suicide"))
        return await original()

    worker.deliver_pending_alerts = counted  # type: ignore[method-assign]

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await wait_until(lambda: passes >= 4)
        stop.set()
        await asyncio.wait_for(task, timeout=5)

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())

    warnings = [r for r in caplog.records if "NO ALERT DESTINATION" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.CRITICAL
    assert len(store.list_escalations()) >= 4
    assert store.list_outbox() == []


@pytest.mark.parametrize(
    ("settings", "configured"),
    [
        ({}, False),
        ({"second_webhook_url": "https://second.example.org/x"}, False),
        ({"smtp_host": "smtp.example.org", "smtp_from": "bot@example.org"}, False),
        ({"webhook_url": "https://hooks.example.org/x"}, True),
        (
            {
                "smtp_host": "smtp.example.org",
                "smtp_from": "bot@example.org",
                "smtp_to": ("oncall@example.org",),
            },
            True,
        ),
    ],
)
def test_destinations_configured(settings: dict[str, object], configured: bool) -> None:
    """Only a primary webhook or complete e-mail settings mean someone is alerted."""
    assert destinations_configured(EscalationConfig(**settings)) is configured  # type: ignore[arg-type]


def test_two_worker_processes_import_and_deliver_each_alert_exactly_once(
    postgres_database: Database, tmp_path: Path
) -> None:
    """Two worker processes on one PostgreSQL and one spool: every alert arrives exactly once."""
    store = postgres_database.store()
    stored = [store.record(request(conversation_id=f"db-{n}")).id for n in range(20)]
    spool_dir = tmp_path / "spool"
    for number in range(20):
        spool.write_entry(
            spool_dir,
            spool.ESCALATION_ENTRY,
            request(conversation_id=f"spooled-{number}", level="urgent", category="suicide").as_dict(),
        )
    (spool_dir / "00000000000000000001-poison.json").write_text("{not json", encoding="utf-8")
    script = (
        "import logging, sys\n"
        "from pathlib import Path\n"
        "from bot.escalation import EscalationConfig, run_worker\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "run_worker(EscalationConfig(db_url=sys.argv[1], webhook_url=sys.argv[2],"
        " poll_interval_seconds=0.05, batch_size=3), Path(sys.argv[3]))\n"
    )

    async def scenario() -> tuple[WebhookReceiver, list[int | None]]:
        async with WebhookReceiver(delay_seconds=0.01) as receiver:
            processes = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    script,
                    postgres_database.standalone_url,
                    receiver.url,
                    str(spool_dir),
                    cwd=PROJECT_ROOT,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                for _ in range(2)
            ]
            try:
                await wait_until(
                    lambda: len(store.list_outbox()) == 40
                    and all(row.status == "delivered" for row in store.list_outbox()),
                    within=120,
                )
            finally:
                for process in processes:
                    process.send_signal(signal.SIGTERM)
                codes = [await asyncio.wait_for(p.wait(), timeout=30) for p in processes]
        return receiver, codes

    receiver, codes = asyncio.run(scenario())

    assert codes == [0, 0]
    keys = [r.headers["Idempotency-Key"] for r in receiver.requests]
    assert len(keys) == len(set(keys)) == 40
    escalations = store.list_escalations()
    assert len(escalations) == 40
    assert set(stored) <= {e.id for e in escalations}
    assert list(spool_dir.glob("*.json")) == []
    [letter] = store.list_dead_letters()
    assert (letter.source, letter.reference) == ("spool", "00000000000000000001-poison.json")


def test_priority_escalation_is_reminded_hourly_and_low_never(
    database: Database, config: EscalationConfig, clock: FakeClock
) -> None:
    """Priority escalations follow their own, longer schedule; low-level ones are never reminded."""
    store = database.store()
    priority = store.record(request(conversation_id="p", level="priority")).id
    store.record(low(1))  # type: ignore[arg-type]

    async def scenario() -> tuple[WebhookReceiver, WebhookReceiver, list[int]]:
        counts = []
        async with WebhookReceiver() as primary, WebhookReceiver() as second:
            worker = DeliveryWorker(
                store,
                {"webhook": WebhookNotifier(primary.url)},
                config,
                reminder_notifiers={"webhook": WebhookNotifier(second.url)},
                clock=clock,
                rng=random.Random(1),
            )
            for minutes in (0, 59, 2, 59, 2):
                clock.advance(minutes=minutes)
                counts.append(await worker.deliver_pending_alerts())
        return primary, second, counts

    primary, second, counts = asyncio.run(scenario())

    assert counts == [2, 0, 2, 0, 2]
    assert sent_ids(second) == [priority, priority]
    assert [json.loads(r.body)["purpose"] for r in second.requests] == ["reminder"] * 2
    assert sent_ids(primary).count(priority) == 3


def test_deferred_low_alert_is_released_when_its_escalation_is_raised(
    database: Database,
) -> None:
    """A low alert held by the cap goes out at once if a later message makes it urgent."""
    store = database.store(low_alerts_per_minute=1)
    store.record(low(1))  # type: ignore[arg-type]
    held = store.record(low(2))  # type: ignore[arg-type]
    [row] = store.list_outbox(held.id)
    assert row.next_attempt_at > utc_now()

    store.record(request(conversation_id="low-2", turn_id="m2", level="urgent", category="suicide"))

    claimed = store.claim_due(utc_now(), limit=10, lease_seconds=30)
    assert [(r.escalation_id, r.purpose) for r in claimed[:2]] == [
        (held.id, "alert"),
        (held.id, "upgrade"),
    ]
