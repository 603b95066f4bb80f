"""Background delivery of escalation alerts from the outbox, with retries."""

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
    build_notifiers,
    build_reminder_notifiers,
)
from bot.escalation.recorder import import_spooled
from bot.escalation.store import EscalationStore, OutboxRow, utc_now

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
    ) -> None:
        """Wire the worker to its store and notifiers.

        Args:
            store: Where escalations and the outbox live.
            notifiers: Primary notifiers keyed by delivery channel ('webhook', 'email').
            config: Retry, lease, reminder and console settings.
            reminder_notifiers: Second-contact notifiers for reminders; if empty,
                reminders go to the primary notifiers.
            clock: Source of the current UTC time, injectable for tests.
            rng: Random source for retry jitter, injectable for tests.
            spool_dir: Folder where the action server spools escalations while
                the store is down; they are stored at the start of each pass.
        """
        self.store = store
        self.notifiers = dict(notifiers)
        self.reminder_notifiers = dict(reminder_notifiers or {})
        self.config = config
        self._clock = clock
        # Jitter needs spread, not unpredictability: a seedable PRNG is right here.
        self._rng = rng or random.Random()
        self.spool_dir = spool_dir

    @property
    def reminder_channels(self) -> tuple[str, ...]:
        """Channels of overdue reminders: the second contact's, else the primary's."""
        return tuple(self.reminder_notifiers or self.notifiers)

    async def deliver_pending_alerts(self) -> int:
        """Run one delivery pass: queue overdue reminders, then send each due alert.

        Returns:
            Number of alerts delivered in this pass.
        """
        if self.spool_dir is not None:
            try:
                await asyncio.to_thread(import_spooled, self.store, self.spool_dir)
            except Exception:  # noqa: BLE001  # store still down: keep delivering what we can
                logger.exception("Could not store spooled escalations yet; will retry.")
        now = self._clock()
        queued = await asyncio.to_thread(
            self.store.queue_overdue_reminders,
            now,
            self.config.ack_minutes,
            self.reminder_channels,
        )
        if queued:
            logger.warning(
                "%d reminder(s) queued: urgent escalation(s) not acknowledged "
                "within %g minutes",
                queued,
                self.config.ack_minutes,
            )
        rows = await asyncio.to_thread(
            self.store.claim_due, now, self.config.batch_size, self.config.lease_seconds
        )
        # Concurrent sends: one slow receiver must not hold back alerts to the others.
        results = await asyncio.gather(*(self._deliver(row) for row in rows))
        return sum(results)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver alerts each poll interval until ``stop``; a pass in flight ends."""
        logger.info(
            "Escalation delivery worker started (alerts: %s; reminders: %s)",
            ", ".join(self.notifiers) or "none",
            ", ".join(self.reminder_channels) or "none",
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
        if row.purpose == "reminder" and row.channel in self.reminder_notifiers:
            return self.reminder_notifiers[row.channel]
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
        try:
            escalation = await asyncio.to_thread(self.store.get, row.escalation_id)
            alert = Alert.build(escalation, row, self.config.console_base_url)
            await notifier.send(alert)
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
    if not notifiers:
        logger.error(
            "No alert destination configured (ESCALATION_WEBHOOK_URL or SMTP_*): "
            "escalations are recorded but nobody is notified."
        )
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
