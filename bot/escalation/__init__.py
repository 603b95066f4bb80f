"""Durable clinician escalations: records, spool, store, alert notifiers and the delivery worker."""

from bot.escalation.config import EscalationConfig, destinations_configured
from bot.escalation.notifiers import (
    Alert,
    DeliveryError,
    EmailNotifier,
    WebhookNotifier,
)
from bot.escalation.recorder import EscalationRecorder, import_spooled
from bot.escalation.records import (
    ContactRequest,
    EscalationRequest,
    RecordOutcome,
)
from bot.escalation.store import (
    ContactEntry,
    DeadLetter,
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
    "ContactEntry",
    "ContactRequest",
    "DeadLetter",
    "DeliveryError",
    "DeliveryWorker",
    "EmailNotifier",
    "Escalation",
    "EscalationConfig",
    "EscalationError",
    "EscalationEvent",
    "EscalationNotFoundError",
    "EscalationRecorder",
    "EscalationRequest",
    "EscalationStore",
    "InvalidTransitionError",
    "OutboxRow",
    "RecordOutcome",
    "WebhookNotifier",
    "destinations_configured",
    "import_spooled",
    "run_worker",
]
