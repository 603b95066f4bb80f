"""The one record of an escalation decision, from the Rasa server through the spool to the database.

The Rasa server builds an `EscalationRequest` when it acts on a crisis
decision; the recorder writes it to the local spool and then to the store, and
the delivery worker imports spooled ones later. The same object (or its JSON
form) travels the whole way, so nothing is re-typed between layers.

Values are normalised here rather than rejected: a real escalation must never
be refused because a category was misspelt or a sender id is unusually long.
What was changed is reported in `Normalised.notes` for the audit trail.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

# The timezone.utc singleton, spelled so it runs on Python 3.10 (datetime.UTC is 3.11+).
UTC = timezone(timedelta(0))

KINDS = ("risk", "human_request")
LEVELS = ("urgent", "priority", "low")
# Lower rank is more urgent: the outbox is claimed in this order.
LEVEL_RANK = {"urgent": 0, "priority": 1, "low": 2}
RISK_CATEGORIES = (
    "suicide",
    "self_harm",
    "harm_to_others",
    "medical_emergency",
    "acute_crisis",
    "abuse_danger",
    "unspecified",  # risk recognised by the classifier without a screen rule
)
HUMAN_REQUEST_CATEGORY = "human_request"
UNSPECIFIED_CATEGORY = "unspecified"
SENDERS = ("user", "bot")
CONTACT_METHODS = ("phone", "email")
UNKNOWN_CONVERSATION = "unknown-conversation"
UNKNOWN_CHANNEL = "unknown"
# Raw values quoted in audit notes are cut short: they are labels, not content.
MAX_QUOTED_VALUE = 64


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def stable_key(*parts: str) -> str:
    """Return a fixed-length key for arbitrary-length ids (indexes have size limits)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True)
class EscalationRequest:
    """What the assistant knows when it decides a clinician must be told.

    Attributes:
        conversation_id: Rasa sender id of the conversation.
        channel: Input channel the person uses (e.g. 'socketio', 'rest').
        kind: 'risk' or 'human_request'.
        level: 'urgent', 'priority' or 'low'.
        category: A risk category, or 'human_request'.
        turn: Id of the user turn that triggered the decision (the UserUttered
            message_id, else the event index); with conversation_id it makes
            recording idempotent.
        transcript: The conversation so far: {"sender", "text", "timestamp"} turns,
            timestamps in epoch seconds.
        decided_at: When the decision was taken (aware UTC).
    """

    conversation_id: str
    channel: str
    kind: str
    level: str
    category: str | None
    turn: str
    transcript: Sequence[Mapping[str, Any]] = ()
    decided_at: datetime = field(default_factory=utc_now)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready form for the spool."""
        return {
            "conversation_id": self.conversation_id,
            "channel": self.channel,
            "kind": self.kind,
            "level": self.level,
            "category": self.category,
            "turn": self.turn,
            "transcript": [dict(turn) for turn in self.transcript],
            "decided_at": _aware(self.decided_at).isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EscalationRequest:
        """Rebuild a request from its spool form; missing fields get safe values."""
        return cls(
            conversation_id=_text(data.get("conversation_id")),
            channel=_text(data.get("channel")),
            kind=_text(data.get("kind")),
            level=_text(data.get("level")),
            category=None if data.get("category") is None else _text(data.get("category")),
            turn=_text(data.get("turn")),
            transcript=[turn for turn in data.get("transcript") or [] if isinstance(turn, Mapping)],
            decided_at=_parse_time(data.get("decided_at")),
        )


@dataclass(frozen=True)
class ContactRequest:
    """How a person agreed to be contacted, or (method None) that they withdrew it.

    Attributes:
        conversation_id: Rasa sender id; the contact goes with its open escalation.
        method: 'phone' or 'email'; None withdraws the contact.
        value: The number or address; None when withdrawing.
        entry_id: Unique id of this entry, so a replay from the spool is a no-op.
        decided_at: When the person gave or withdrew it (aware UTC).
    """

    conversation_id: str
    method: str | None
    value: str | None
    entry_id: str
    decided_at: datetime = field(default_factory=utc_now)

    @property
    def withdraws(self) -> bool:
        """Whether this entry withdraws the contact instead of giving one."""
        return self.method is None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready form for the spool."""
        return {
            "conversation_id": self.conversation_id,
            "method": self.method,
            "value": self.value,
            "entry_id": self.entry_id,
            "decided_at": _aware(self.decided_at).isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContactRequest:
        """Rebuild a contact entry from its spool form."""
        method = data.get("method")
        value = data.get("value")
        return cls(
            conversation_id=_text(data.get("conversation_id")),
            method=None if method is None else _text(method),
            value=None if value is None else _text(value),
            entry_id=_text(data.get("entry_id")),
            decided_at=_parse_time(data.get("decided_at")),
        )


@dataclass(frozen=True)
class RecordOutcome:
    """What recording achieved, for honest wording to the person.

    Attributes:
        durable: True once the decision is on disk (spool file) or in the database.
        escalation_id: The stored escalation's id; None while it waits in the spool.
    """

    durable: bool
    escalation_id: str | None = None


@dataclass(frozen=True)
class Normalised:
    """A request with every value made storable, and what had to change."""

    conversation_id: str
    channel: str
    kind: str
    level: str
    category: str
    turn: str
    transcript: list[dict[str, Any]]
    decided_at: datetime
    notes: tuple[str, ...]

    @property
    def conversation_key(self) -> str:
        """Return the fixed-length key of the conversation."""
        return stable_key(self.conversation_id)

    @property
    def decision_key(self) -> str:
        """Return the idempotency key of this decision: (conversation_id, turn)."""
        return stable_key(self.conversation_id, self.turn)


def normalise(request: EscalationRequest) -> Normalised:
    """Return the request with storable values; never raises for a real escalation.

    Unknown kinds count as risk and unknown levels as urgent (a person is better
    looked at once too often than missed); an unknown category becomes
    'unspecified'. Each change is noted with the raw value, shortened.
    """
    notes: list[str] = []
    conversation_id = _text(request.conversation_id)
    if not conversation_id:
        conversation_id = UNKNOWN_CONVERSATION
        notes.append("conversation id was empty")
    channel = _text(request.channel) or UNKNOWN_CHANNEL
    kind = _text(request.kind)
    if kind not in KINDS:
        notes.append(f"kind {_quote(kind)} recorded as risk")
        kind = "risk"
    level = _text(request.level)
    if level not in LEVELS:
        fallback = "low" if kind == "human_request" else "urgent"
        notes.append(f"level {_quote(level)} recorded as {fallback}")
        level = fallback
    raw_category = None if request.category is None else _text(request.category)
    allowed = (*RISK_CATEGORIES, HUMAN_REQUEST_CATEGORY) if kind == "human_request" else RISK_CATEGORIES
    if kind == "human_request" and not raw_category:
        category = HUMAN_REQUEST_CATEGORY
    elif raw_category is not None and raw_category in allowed:
        category = raw_category
    else:
        category = UNSPECIFIED_CATEGORY
        notes.append(f"category {_quote(raw_category)} recorded as {UNSPECIFIED_CATEGORY}")
    decided_at = _aware(request.decided_at) if isinstance(request.decided_at, datetime) else utc_now()
    turn = _text(request.turn) or decided_at.isoformat()
    return Normalised(
        conversation_id=conversation_id,
        channel=channel,
        kind=kind,
        level=level,
        category=category,
        turn=turn,
        transcript=normalise_transcript(request.transcript),
        decided_at=decided_at,
        notes=tuple(notes),
    )


def normalise_transcript(transcript: Any) -> list[dict[str, Any]]:
    """Return the turns as {sender, text, timestamp}; odd values are coerced, never dropped."""
    turns: list[dict[str, Any]] = []
    for turn in transcript or ():
        if not isinstance(turn, Mapping):
            continue
        sender = turn.get("sender")
        text = turn.get("text")
        timestamp = turn.get("timestamp")
        if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or not math.isfinite(timestamp):
            timestamp = None
        turns.append(
            {
                "sender": sender if sender in SENDERS else "bot",
                "text": storable(text if isinstance(text, str) else ("" if text is None else str(text))),
                "timestamp": None if timestamp is None else float(timestamp),
            }
        )
    return turns


def higher_level(first: str, second: str) -> str:
    """Return the more urgent of two levels."""
    return first if LEVEL_RANK[first] <= LEVEL_RANK[second] else second


def _text(value: Any) -> str:
    if value is None:
        return ""
    return storable(value if isinstance(value, str) else str(value)).strip()


def normalise_id(value: Any) -> str:
    """Return an id (conversation, turn) as every layer stores and looks it up."""
    return _text(value)


def storable(text: str) -> str:
    """Return ``text`` without what databases refuse: NUL characters and lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _quote(value: str | None) -> str:
    if value is None:
        return "none"
    shown = value[:MAX_QUOTED_VALUE] + ("..." if len(value) > MAX_QUOTED_VALUE else "")
    return repr(shown)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _parse_time(raw: Any) -> datetime:
    if isinstance(raw, str):
        try:
            return _aware(datetime.fromisoformat(raw))
        except ValueError:
            pass
    return utc_now()
