"""Background delivery of escalation alerts from the outbox, with retries.

Each pass stores what waits in the spool, queues reminders that are due, then
claims due alerts, urgent first, and sends them one level at a time, so an
urgent alert never queues behind a flood of low-level ones. All state lives in
the store: any number of workers may run, and a restart resumes. A receiver
answering 429 is left alone for as long as it asks; that is not a failed
attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from bot.escalation.config import EscalationConfig
from bot.escalation.notifiers import (
    Alert,
    Notifier,
    RetryLater,
    build_notifiers,
    build_reminder_notifiers,
)
from bot.escalation.recorder import import_spooled
from bot.escalation.store import SECOND, EscalationStore, OutboxRow, utc_now

logger = logging.getLogger(__name__)


def retry_delay(
    attempts: int, base_seconds: float, cap_seconds: float, rng: random.Random
) -> float:
    """Return the wait before the next try: exponential backoff with full jitter.

    Args:
        attempts: Attempts made so far (1 after the first failure).
        base_seconds: Ceiling of the first delay; doubles with each attempt.
        cap_seconds: Upper bound of any delay.
        rng: Random source, injectable so tests are deterministic.

    Returns:
        A delay in seconds, uniform between 0 and min(cap, base * 2 ** (attempts - 1)).
    """
    ceiling = min(cap_seconds, base_seconds * 2 ** max(attempts - 1, 0))
    return rng.uniform(0, ceiling)


class DeliveryWorker:
    """Sends queued alerts; all state is in the store, so a restart resumes."""

    def __init__(
        self,
        store: EscalationStore,
        notifiers: Mapping[str, Notifier],
        config: EscalationConfig,
        *,
        reminder_notifiers: Mapping[str, Notifier] | None = None,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        spool_dir: Path | None = None,
        quarantine_dir: Path | None = None,
    ) -> None:
        """Wire the worker to its store and notifiers.

        Args:
            store: Where escalations and the outbox live.
            notifiers: Primary notifiers keyed by delivery channel ('webhook', 'email').
            config: Retry, lease, reminder and console settings.
            reminder_notifiers: Second-contact notifiers, paged (besides the
                primary) from the first reminder of an escalation on.
            clock: Source of the current UTC time, injectable for tests.
            rng: Random source for retry jitter, injectable for tests.
            spool_dir: The escalation spool; its entries are stored at the start
                of each pass.
            quarantine_dir: Where spooled entries that cannot be stored are moved
                (default: `quarantine` inside the spool).
        """
        self.store = store
        self.notifiers = dict(notifiers)
        self.reminder_notifiers = dict(reminder_notifiers or {})
        self.config = config
        self._clock = clock
        # Jitter needs spread, not unpredictability: a seedable PRNG is right here.
        self._rng = rng or random.Random()
        self.spool_dir = spool_dir
        self.quarantine_dir = quarantine_dir
        # Destinations that answered 429 during the current pass, until when.
        self._paused: dict[tuple[str, str], datetime] = {}

    async def deliver_pending_alerts(self) -> int:
        """Run one delivery pass: store spooled entries, queue reminders, send due alerts.

        Claimed alerts are sent one level at a time (urgent, then priority, then
        low), so an urgent alert never waits behind a slow low-level one.

        Returns:
            Number of alerts delivered in this pass.
        """
        if self.spool_dir is not None:
            try:
                await asyncio.to_thread(
                    import_spooled,
                    self.store,
                    self.spool_dir,
                    quarantine_dir=self.quarantine_dir,
                    attempts=self.config.import_attempts,
                    claim_lease_seconds=self.config.lease_seconds,
                )
            except Exception:  # noqa: BLE001  # the spool keeps the entries: deliver what we can
                logger.exception("Could not store spooled escalations yet; will retry.")
        now = self._clock()
        queued = await asyncio.to_thread(
            self.store.queue_overdue_reminders,
            now,
            self.config.reminder_minutes,
            tuple(self.notifiers),
            tuple(self.reminder_notifiers),
        )
        if queued:
            logger.warning(
                "%d reminder(s) queued: escalation(s) not acknowledged in time "
                "(urgent every %g, priority every %g minutes)",
                queued,
                self.config.ack_minutes,
                self.config.priority_ack_minutes,
            )
        rows = await asyncio.to_thread(
            self.store.claim_due, now, self.config.batch_size, self.config.lease_seconds
        )
        delivered = 0
        self._paused = {}
        for rank in sorted({row.level_rank for row in rows}):
            # Concurrent sends within a level: one slow receiver must not hold back the others.
            results = await asyncio.gather(
                *(self._deliver(row) for row in rows if row.level_rank == rank),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    logger.error(
                        "Recording a delivery result failed (%s); the alert's lease "
                        "expires and it is sent again",
                        type(result).__name__,
                    )
                elif result:
                    delivered += 1
        return delivered

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver alerts each poll interval until ``stop``; a pass in flight ends."""
        logger.info(
            "Escalation delivery worker started (alerts: %s; second contact: %s)",
            ", ".join(self.notifiers) or "none",
            ", ".join(self.reminder_notifiers) or "none",
        )
        if not self.notifiers:
            logger.critical(
                "NO ALERT DESTINATION is configured (ESCALATION_WEBHOOK_URL or SMTP_*): "
                "escalations are recorded for the clinician console, but nobody is "
                "alerted. Configure a destination."
            )
        while not stop.is_set():
            try:
                await self.deliver_pending_alerts()
            except Exception:
                # A database outage must not end the worker: alerts wait in the outbox.
                logger.exception("Escalation delivery pass failed; retrying next pass")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), timeout=self.config.poll_interval_seconds
                )
        logger.info("Escalation delivery worker stopped")

    def _notifier_for(self, row: OutboxRow) -> Notifier | None:
        if row.recipient == SECOND:
            return self.reminder_notifiers.get(row.channel)
        return self.notifiers.get(row.channel)

    async def _deliver(self, row: OutboxRow) -> bool:
        notifier = self._notifier_for(row)
        if notifier is None:
            return await self._fail(
                row, f"no notifier configured for channel {row.channel!r}"
            )
        if row.attempts > self.config.max_attempts:
            # Claimed again only because a worker died during its final attempt.
            return await self._fail(row, "worker stopped during the final attempt")
        paused_until = self._paused.get((row.recipient, row.channel))
        if paused_until is not None:
            # Claimed in the same pass as a row that got 429: it waits as well.
            await asyncio.to_thread(
                self.store.mark_failed,
                row,
                "destination asked to slow down",
                paused_until,
                max_attempts=self.config.max_attempts,
                count_attempt=False,
            )
            return False
        try:
            escalation = await asyncio.to_thread(self.store.get, row.escalation_id)
            alert = Alert.build(escalation, row, self.config.console_base_url)
            await notifier.send(alert)
        except RetryLater as error:
            return await self._wait_as_asked(row, error)
        except Exception as error:  # noqa: BLE001
            # Any failure (network, HTTP status, SMTP, a bug) must end in a retry or a
            # loud dead-letter, never in a silently lost alert.
            return await self._fail(row, f"{type(error).__name__}: {error}")
        delivered = await asyncio.to_thread(
            self.store.mark_delivered, row, self._clock()
        )
        if not delivered:
            logger.warning(
                "Outbox row %s was delivered after its lease expired", row.id
            )
        return delivered

    async def _wait_as_asked(self, row: OutboxRow, error: RetryLater) -> bool:
        """Honour a 429: this row and every other for the destination wait as long as asked."""
        now = self._clock()
        until = now + timedelta(seconds=error.retry_after_seconds)
        self._paused[(row.recipient, row.channel)] = until
        reason = f"receiver asked to wait {error.retry_after_seconds:g} s ({error})"
        await asyncio.to_thread(
            self.store.pause_destination, row.recipient, row.channel, until, reason
        )
        await asyncio.to_thread(
            self.store.mark_failed,
            row,
            reason,
            until,
            max_attempts=self.config.max_attempts,
            now=now,
            count_attempt=False,
        )
        logger.warning(
            "The %s destination asked to slow down: alerts for it wait %g s",
            row.channel,
            error.retry_after_seconds,
        )
        return False

    async def _fail(self, row: OutboxRow, error: str) -> bool:
        now = self._clock()
        delay = retry_delay(
            row.attempts,
            self.config.backoff_base_seconds,
            self.config.backoff_cap_seconds,
            self._rng,
        )
        status = await asyncio.to_thread(
            self.store.mark_failed,
            row,
            error,
            now + timedelta(seconds=delay),
            max_attempts=self.config.max_attempts,
            now=now,
        )
        if status == "dead":
            logger.critical(
                "DEAD-LETTER escalation %s: %s via %s failed %d time(s), giving up. "
                "Last error: %s. Reach the on-call clinician another way now.",
                row.escalation_id,
                row.purpose,
                row.channel,
                row.attempts,
                error,
            )
        elif status == "pending":
            logger.warning(
                "Escalation %s %s via %s failed (attempt %d/%d), "
                "retrying in %.1f s: %s",
                row.escalation_id,
                row.purpose,
                row.channel,
                row.attempts,
                self.config.max_attempts,
                delay,
                error,
            )
        return False


def run_worker(config: EscalationConfig, spool_dir: Path | None = None) -> None:
    """Run the delivery worker until SIGINT or SIGTERM, finishing the pass in flight."""
    asyncio.run(_run_until_signalled(config, spool_dir))


async def _run_until_signalled(config: EscalationConfig, spool_dir: Path | None = None) -> None:
    store = EscalationStore.from_config(config)
    notifiers = build_notifiers(config)
    worker = DeliveryWorker(
        store,
        notifiers,
        config,
        reminder_notifiers=build_reminder_notifiers(config),
        spool_dir=spool_dir,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await worker.run(stop)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        store.close()
