"""Durable clinician escalations: the store, alert notifiers and the delivery worker."""

from bot.escalation.config import EscalationConfig
from bot.escalation.notifiers import (
    Alert,
    DeliveryError,
    EmailNotifier,
    WebhookNotifier,
)
from bot.escalation.store import (
    Escalation,
    EscalationError,
    EscalationEvent,
    EscalationNotFoundError,
    EscalationStore,
    InvalidTransitionError,
    OutboxRow,
)
from bot.escalation.worker import DeliveryWorker, run_worker

__all__ = [
    "Alert",
    "DeliveryError",
    "DeliveryWorker",
    "EmailNotifier",
    "Escalation",
    "EscalationConfig",
    "EscalationError",
    "EscalationEvent",
    "EscalationNotFoundError",
    "EscalationStore",
    "InvalidTransitionError",
    "OutboxRow",
    "WebhookNotifier",
    "run_worker",
]
