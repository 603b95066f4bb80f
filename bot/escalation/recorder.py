"""Records escalations from the action server; never loses one when the database is down."""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from bot.escalation.store import EscalationStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EscalationRequest:
    """What the assistant knows when it decides a clinician must be told."""

    conversation_id: str
    channel: str
    kind: str
    level: str
    category: Optional[str]
    transcript: Sequence[Mapping[str, Any]]

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready form for the spool."""
        return {
            "conversation_id": self.conversation_id,
            "channel": self.channel,
            "kind": self.kind,
            "level": self.level,
            "category": self.category,
            "transcript": [dict(turn) for turn in self.transcript],
        }


class EscalationRecorder:
    """Writes escalations to the store, or to a local spool when the store fails.

    The spool is a folder of JSON files written atomically (write, fsync,
    rename); the delivery worker moves them into the store once it is back
    (`import_spooled`), so an escalation survives a database outage.
    """

    def __init__(self, store_factory: Any, spool_dir: Path) -> None:
        """`store_factory()` returns an EscalationStore; it is called lazily."""
        self._store_factory = store_factory
        self._store: Optional[EscalationStore] = None
        self.spool_dir = Path(spool_dir)

    @property
    def store(self) -> EscalationStore:
        """The store, created on first use."""
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def record(self, request: EscalationRequest) -> Optional[str]:
        """Stores the escalation; returns its id, or None if it was spooled instead."""
        try:
            escalation = self.store.create_escalation(
                request.conversation_id,
                request.channel,
                request.kind,
                request.level,
                request.category,
                request.transcript,
            )
        except Exception:  # noqa: BLE001  # any store failure must fall back to the spool
            self._store = None
            path = self._spool(request)
            logger.critical(
                "ESCALATION SPOOLED: the escalation store failed; %s %s escalation kept in %s "
                "until the delivery worker can store it.",
                request.level,
                request.kind,
                path,
                exc_info=True,
            )
            return None
        logger.info("Escalation %s recorded (%s, %s).", escalation.id, escalation.level, escalation.category)
        return escalation.id

    def record_contact(self, escalation_id: str, method: str, value: str) -> bool:
        """Stores how the person agreed to be contacted; False if it could not be stored."""
        try:
            self.store.record_contact(escalation_id, method, value)
        except Exception:  # noqa: BLE001
            logger.exception("Could not store the contact details of escalation %s.", escalation_id)
            return False
        return True

    def _spool(self, request: EscalationRequest) -> Path:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        final = self.spool_dir / f"{stamp}-{uuid.uuid4().hex}.json"
        temporary = final.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(request.as_dict(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        return final


def import_spooled(store: EscalationStore, spool_dir: Path) -> List[str]:
    """Moves spooled escalations into the store, oldest first; returns the new ids."""
    directory = Path(spool_dir)
    if not directory.is_dir():
        return []
    created: List[str] = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            logger.critical("Unreadable spooled escalation %s; left in place for a person to check.", path)
            continue
        escalation = store.create_escalation(
            data["conversation_id"],
            data["channel"],
            data["kind"],
            data["level"],
            data.get("category"),
            data.get("transcript") or [],
        )
        path.unlink()
        created.append(escalation.id)
        logger.warning("Spooled escalation stored as %s.", escalation.id)
    return created
