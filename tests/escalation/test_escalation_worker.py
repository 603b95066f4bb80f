"""Tests of the delivery worker against real loopback receivers and both databases."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import signal
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from bot.escalation.config import EscalationConfig
from bot.escalation.notifiers import EmailNotifier, Notifier, WebhookNotifier
from bot.escalation.store import Escalation, EscalationStore, utc_now
from bot.escalation.worker import DeliveryWorker, retry_delay

from .harness import Database, FakeClock
from .receivers import SmtpSink, WebhookReceiver, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TRANSCRIPT_MARKER = "marmalisk"


def create(
    store: EscalationStore, level: str = "urgent", category: str = "suicide"
) -> Escalation:
    """Create a risk escalation whose transcript holds a word no alert may contain."""
    return store.create_escalation(
        conversation_id="conversation-1",
        channel="socketio",
        kind="risk",
        level=level,
        category=category,
        transcript=[
            {"sender": "bot", "text": "I'm here with you.", "timestamp": 1.0},
            {
                "sender": "user",
                "text": f"I keep thinking about the {TRANSCRIPT_MARKER}",
                "timestamp": 2.0,
            },
        ],
    )


def make_worker(
    store: EscalationStore,
    config: EscalationConfig,
    clock: FakeClock,
    notifiers: dict[str, Notifier],
    reminder_notifiers: dict[str, Notifier] | None = None,
) -> DeliveryWorker:
    """Return a worker with a deterministic jitter source."""
    return DeliveryWorker(
        store,
        notifiers,
        config,
        reminder_notifiers=reminder_notifiers,
        clock=clock,
        rng=random.Random(7),
    )


async def wait_until(condition: Callable[[], object], within: float = 10.0) -> None:
    """Poll ``condition`` until truthy; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.01)


def test_alert_is_delivered_signed_and_without_transcript(
    store: EscalationStore, config: EscalationConfig, clock: FakeClock
) -> None:
    """The webhook gets a signed alert with the right fields and none of the chat."""
    escalation = create(store)

    async def scenario() -> tuple[int, WebhookReceiver]:
        async with WebhookReceiver() as receiver:
            notifier = WebhookNotifier(receiver.url, secret=config.webhook_secret)
            delivered = await make_worker(
                store, config, clock, {"webhook": notifier}
            ).deliver_pending_alerts()
        return delivered, receiver

    delivered, receiver = asyncio.run(scenario())

    assert delivered == 1
    [request] = receiver.requests
    assert TRANSCRIPT_MARKER.encode() not in request.body
    assert json.loads(request.body) == {
        "escalation_id": escalation.id,
        "kind": "risk",
        "level": "urgent",
        "category": "suicide",
        "channel": "socketio",
        "created_at": escalation.created_at.isoformat(timespec="seconds"),
        "purpose": "alert",
        "console_url": f"https://care.example.org/console/escalations/{escalation.id}",
    }
    timestamp = request.headers["X-Escalation-Timestamp"]
    signature = hmac.new(
        b"test-secret", f"{timestamp}.".encode() + request.body, hashlib.sha256
    )
    assert (
        request.headers["X-Escalation-Signature"] == f"sha256={signature.hexdigest()}"
    )
    assert abs(int(timestamp) - time.time()) < 60
    assert request.headers["Idempotency-Key"] == f"{escalation.id}:alert:webhook"
    [row] = store.list_outbox()
    assert (row.status, row.attempts) == ("delivered", 1)
    assert "delivered" in [event.action for event in store.events(escalation.id)]


def test_receiver_down_then_back_delivers_with_the_same_key(
    store: EscalationStore, config: EscalationConfig, clock: FakeClock
) -> None:
    """An outage delays the alert; it arrives when the receiver is back."""
    escalation = create(store)
    port = free_port()
    notifier = WebhookNotifier(
        f"http://127.0.0.1:{port}/alerts", secret=config.webhook_secret
    )
    worker = make_worker(store, config, clock, {"webhook": notifier})
    before = utc_now()

    assert asyncio.run(worker.deliver_pending_alerts()) == 0

    [row] = store.list_outbox()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at > before
    assert "ClientConnectorError" in (row.last_error or "")

    async def receiver_back() -> tuple[int, WebhookReceiver]:
        async with WebhookReceiver(port=port) as receiver:
            clock.advance(seconds=1)
            delivered = await worker.deliver_pending_alerts()
        return delivered, receiver

    delivered, receiver = asyncio.run(receiver_back())

    assert delivered == 1
    [request] = receiver.requests
    assert (
        request.headers["Idempotency-Key"]
        == row.idempotency_key
        == f"{escalation.id}:alert:webhook"
    )
    [row] = store.list_outbox()
    assert (row.status, row.attempts) == ("delivered", 2)


def test_idempotency_key_is_stable_across_retries(
    store: EscalationStore, config: EscalationConfig, clock: FakeClock
) -> None:
    """Every retry of an alert carries the same Idempotency-Key."""
    escalation = create(store)

    async def scenario() -> WebhookReceiver:
        async with WebhookReceiver(statuses=[500, 502]) as receiver:
            worker = make_worker(
                store, config, clock, {"webhook": WebhookNotifier(receiver.url)}
            )
            for _ in range(3):
                await worker.deliver_pending_alerts()
                clock.advance(seconds=1)
        return receiver

    receiver = asyncio.run(scenario())

    keys = [request.headers["Idempotency-Key"] for request in receiver.requests]
    assert keys == [f"{escalation.id}:alert:webhook"] * 3
    assert store.list_outbox()[0].status == "delivered"


def test_new_worker_resumes_rows_left_by_a_crashed_one(
    database: Database, config: EscalationConfig, clock: FakeClock
) -> None:
    """After a restart, pending and abandoned alerts are delivered."""
    old_store = database.store()
    in_flight = create(old_store)
    # The old worker claimed this row and died before reporting back.
    [abandoned] = old_store.claim_due(
        utc_now(), limit=10, lease_seconds=config.lease_seconds
    )
    queued = create(old_store)
    old_store.close()

    async def scenario() -> tuple[int, int, WebhookReceiver]:
        async with WebhookReceiver() as receiver:
            new_worker = make_worker(
                database.store(),
                config,
                clock,
                {"webhook": WebhookNotifier(receiver.url)},
            )
            during_lease = await new_worker.deliver_pending_alerts()
            clock.advance(seconds=config.lease_seconds + 1)
            after_lease = await new_worker.deliver_pending_alerts()
        return during_lease, after_lease, receiver

    during_lease, after_lease, receiver = asyncio.run(scenario())

    assert (during_lease, after_lease) == (1, 1)
    sent = [json.loads(request.body)["escalation_id"] for request in receiver.requests]
    assert sent == [queued.id, in_flight.id]
    rows = {row.escalation_id: row for row in database.store().list_outbox()}
    assert rows[in_flight.id].status == rows[queued.id].status == "delivered"
    assert rows[in_flight.id].attempts == abandoned.attempts + 1


def test_dead_letter_after_max_attempts_logs_loudly(
    store: EscalationStore,
    config: EscalationConfig,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An alert that keeps failing is dead-lettered with an ERROR log."""
    escalation = create(store)

    async def scenario() -> WebhookReceiver:
        async with WebhookReceiver(statuses=[500] * 10) as receiver:
            worker = make_worker(
                store, config, clock, {"webhook": WebhookNotifier(receiver.url)}
            )
            for _ in range(config.max_attempts + 2):
                await worker.deliver_pending_alerts()
                clock.advance(seconds=1)
        return receiver

    with caplog.at_level(logging.WARNING, logger="bot.escalation.worker"):
        receiver = asyncio.run(scenario())

    assert len(receiver.requests) == config.max_attempts
    [row] = store.list_outbox()
    assert (row.status, row.attempts) == ("dead", config.max_attempts)
    assert "HTTP 500" in (row.last_error or "")
    loud = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(loud) == 1
    assert f"DEAD-LETTER escalation {escalation.id}" in loud[0].getMessage()
    assert store.events(escalation.id)[-1].action == "dead_lettered"


def test_row_abandoned_after_final_attempt_is_dead_lettered_without_sending(
    store: EscalationStore,
    config: EscalationConfig,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A row whose workers kept dying is dead-lettered, not retried forever."""
    create(store)
    now = utc_now()
    for number in range(config.max_attempts):
        # Each claim is an attempt whose worker died before reporting back.
        store.claim_due(now + timedelta(seconds=31 * number), 1, 30)
    clock.advance(seconds=31 * config.max_attempts)

    async def scenario() -> WebhookReceiver:
        async with WebhookReceiver() as receiver:
            worker = make_worker(
                store, config, clock, {"webhook": WebhookNotifier(receiver.url)}
            )
            await worker.deliver_pending_alerts()
        return receiver

    with caplog.at_level(logging.ERROR, logger="bot.escalation.worker"):
        receiver = asyncio.run(scenario())

    assert receiver.requests == []
    assert store.list_outbox()[0].status == "dead"
    assert "DEAD-LETTER" in caplog.text


def test_unacknowledged_urgent_escalation_is_reminded_repeatedly_with_second_contact(
    store: EscalationStore, config: EscalationConfig, clock: FakeClock
) -> None:
    """Each interval an open urgent risk is reminded, to the primary and the second contact."""
    overdue = create(store)
    acknowledged = create(store)
    create(store, level="priority", category="self_harm")
    store.acknowledge(acknowledged.id, actor="dr.rivera")

    async def scenario() -> tuple[WebhookReceiver, WebhookReceiver]:
        async with WebhookReceiver() as primary, WebhookReceiver() as second:
            worker = make_worker(
                store,
                config,
                clock,
                {"webhook": WebhookNotifier(primary.url)},
                reminder_notifiers={"webhook": WebhookNotifier(second.url)},
            )
            assert await worker.deliver_pending_alerts() == 3
            assert second.requests == []
            clock.advance(minutes=config.ack_minutes / 2)
            assert await worker.deliver_pending_alerts() == 0
            for _ in range(3):
                clock.advance(minutes=config.ack_minutes + 1)
                assert await worker.deliver_pending_alerts() == 2
            store.acknowledge(overdue.id, actor="dr.okafor")
            clock.advance(minutes=config.ack_minutes + 1)
            assert await worker.deliver_pending_alerts() == 0
        return primary, second

    primary, second = asyncio.run(scenario())

    assert len(primary.requests) == 3 + 3
    assert len(second.requests) == 3
    bodies = [json.loads(request.body) for request in second.requests]
    assert {(body["escalation_id"], body["purpose"]) for body in bodies} == {
        (overdue.id, "reminder")
    }
    assert [request.headers["Idempotency-Key"] for request in second.requests] == [
        f"{overdue.id}:reminder-{n}:webhook:second" for n in (1, 2, 3)
    ]
    assert all(TRANSCRIPT_MARKER.encode() not in r.body for r in second.requests)


def test_reminder_falls_back_to_primary_without_second_contact(
    store: EscalationStore, config: EscalationConfig, clock: FakeClock
) -> None:
    """Without a second contact the reminder goes to the primary."""
    overdue = create(store)

    async def scenario() -> WebhookReceiver:
        async with WebhookReceiver() as primary:
            worker = make_worker(
                store, config, clock, {"webhook": WebhookNotifier(primary.url)}
            )
            await worker.deliver_pending_alerts()
            clock.advance(minutes=config.ack_minutes + 1)
            await worker.deliver_pending_alerts()
        return primary

    primary = asyncio.run(scenario())

    purposes = [
        (json.loads(r.body)["escalation_id"], json.loads(r.body)["purpose"])
        for r in primary.requests
    ]
    assert purposes == [(overdue.id, "alert"), (overdue.id, "reminder")]


def test_email_and_webhook_both_receive_the_alert(
    database: Database, config: EscalationConfig, clock: FakeClock
) -> None:
    """Each configured channel gets its own alert."""
    store = database.store(alert_channels=("webhook", "email"))
    escalation = create(store)

    async def scenario() -> tuple[int, WebhookReceiver, SmtpSink]:
        async with WebhookReceiver() as receiver, SmtpSink() as sink:
            email = EmailNotifier(
                "127.0.0.1",
                sink.port,
                None,
                None,
                "bot@example.org",
                ["oncall@example.org"],
                False,
            )
            worker = make_worker(
                store,
                config,
                clock,
                {"webhook": WebhookNotifier(receiver.url), "email": email},
            )
            delivered = await worker.deliver_pending_alerts()
        return delivered, receiver, sink

    delivered, receiver, sink = asyncio.run(scenario())

    assert delivered == 2
    assert len(receiver.requests) == 1
    [message] = sink.messages
    body = message.get_payload(decode=True).decode()
    assert f"https://care.example.org/console/escalations/{escalation.id}" in body
    assert TRANSCRIPT_MARKER not in message.as_string()
    assert {row.status for row in store.list_outbox()} == {"delivered"}


def test_run_loop_delivers_until_stopped(
    store: EscalationStore, config: EscalationConfig, clock: FakeClock
) -> None:
    """The run loop keeps delivering and stops when asked."""
    create(store)

    async def scenario() -> WebhookReceiver:
        async with WebhookReceiver() as receiver:
            worker = make_worker(
                store, config, clock, {"webhook": WebhookNotifier(receiver.url)}
            )
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            await wait_until(lambda: store.list_outbox()[0].status == "delivered")
            create(store)
            await wait_until(lambda: len(receiver.requests) == 2)
            stop.set()
            await asyncio.wait_for(task, timeout=5)
        return receiver

    asyncio.run(scenario())

    assert [row.status for row in store.list_outbox()] == ["delivered", "delivered"]


@pytest.mark.parametrize("attempts", [1, 2, 5, 12])
def test_retry_delay_is_full_jitter_under_an_exponential_cap(attempts: int) -> None:
    """Retry delays spread over [0, min(cap, base * 2**n)]."""
    rng = random.Random(attempts)
    ceiling = min(300.0, 2.0 * 2 ** (attempts - 1))

    delays = [retry_delay(attempts, 2.0, 300.0, rng) for _ in range(200)]

    assert all(0 <= delay <= ceiling for delay in delays)
    assert max(delays) > ceiling / 2


def test_run_worker_process_delivers_and_exits_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    """The worker process delivers, then exits 0 on SIGTERM."""
    db_url = f"sqlite:///{tmp_path / 'escalations.db'}"
    script = (
        "import logging, sys\n"
        "from bot.escalation import EscalationConfig, run_worker\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "run_worker(EscalationConfig(db_url=sys.argv[1], webhook_url=sys.argv[2],"
        " poll_interval_seconds=0.05))\n"
    )

    async def scenario() -> tuple[int | None, str, WebhookReceiver]:
        async with WebhookReceiver() as receiver:
            store = EscalationStore(db_url, alert_channels=("webhook",))
            escalation = create(store)
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                script,
                db_url,
                receiver.url,
                cwd=PROJECT_ROOT,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                await wait_until(lambda: receiver.requests, within=30)
            finally:
                process.send_signal(signal.SIGTERM)
                _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
            assert (
                json.loads(receiver.requests[0].body)["escalation_id"] == escalation.id
            )
            assert store.list_outbox()[0].status == "delivered"
            store.close()
        return process.returncode, stderr.decode(), receiver

    returncode, stderr, receiver = asyncio.run(scenario())

    assert returncode == 0, stderr
    assert "Escalation delivery worker stopped" in stderr
    assert len(receiver.requests) == 1
