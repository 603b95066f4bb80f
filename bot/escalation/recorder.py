"""Records escalation decisions durably: the local spool first, then the database.

The Rasa server calls `EscalationRecorder.record` when it acts on a crisis
decision. The decision is on disk (the spool) before the database is even
tried, so it survives the database being down or slow and any process being
killed right after the reply; the database is then tried with a short
timeout, and on success the spool file is removed. Whatever is left in the
spool, the delivery worker stores later with `import_spooled`; storing is
idempotent by (conversation id, turn), so a decision stored by both is kept once.

Logs here never carry a conversation id (on some channels it is a phone
number), the person's words or contact details.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import sqlalchemy as sa

from bot.escalation import spool
from bot.escalation.config import EscalationConfig
from bot.escalation.records import (
    CONTACT_METHODS,
    LEVELS,
    ContactRequest,
    EscalationRequest,
    RecordOutcome,
)
from bot.escalation.store import (
    Escalation,
    EscalationNotFoundError,
    EscalationStore,
    InvalidTransitionError,
)

__all__ = [
    "EscalationRecorder",
    "EscalationRequest",
    "RecordOutcome",
    "SpoolImport",
    "import_spooled",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 2.0
DEFAULT_IMPORT_ATTEMPTS = 3
DEFAULT_CLAIM_LEASE_SECONDS = 60.0


class EscalationRecorder:
    """Writes decisions to the spool, then to the store; safe to call from threads.

    Args:
        store_factory: Returns an EscalationStore; called lazily, again after a failure.
        spool_dir: Folder of the spool (created owner-only).
        timeout_seconds: How long `record` waits for the database before answering
            from the spool alone.
    """

    def __init__(
        self,
        store_factory: Callable[[], EscalationStore],
        spool_dir: Path,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """Remember where to write; nothing is opened until the first decision."""
        self._store_factory = store_factory
        self._store: Optional[EscalationStore] = None
        self._lock = threading.Lock()
        self.spool_dir = Path(spool_dir)
        self.timeout_seconds = timeout_seconds
        # Database calls run here so a hanging database cannot hold the reply.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="escalation-recorder")

    @classmethod
    def from_config(cls, config: EscalationConfig, spool_dir: Path) -> EscalationRecorder:
        """Build the recorder of a process from its settings (the store opens on first use)."""
        return cls(
            lambda: EscalationStore.from_config(config),
            spool_dir,
            timeout_seconds=config.record_timeout_seconds,
        )

    @property
    def store(self) -> EscalationStore:
        """The store, created on first use."""
        with self._lock:
            if self._store is None:
                self._store = self._store_factory()
            return self._store

    def record(self, request: EscalationRequest) -> RecordOutcome:
        """Make the decision durable: spool file first, then the database.

        Returns:
            durable=True once the spool file or the database row exists, with the
            escalation id if the database answered in time. durable=False only if
            neither could be written; this never raises for store or disk failures.
        """
        path = self._spool(spool.ESCALATION_ENTRY, request.as_dict(), request.level)
        escalation = self._store_now(lambda store: store.record(request), path)
        if escalation is not None:
            logger.info("Escalation %s recorded (%s, %s).", escalation.id, escalation.level, escalation.category)
            return RecordOutcome(durable=True, escalation_id=escalation.id)
        if path is None:
            logger.critical(
                "ESCALATION NOT RECORDED: neither the spool nor the database could store a %s %s "
                "escalation. Check the disk at %s and the database now.",
                request.level if request.level in LEVELS else "risk",
                request.kind,
                self.spool_dir,
            )
            return RecordOutcome(durable=False)
        logger.warning("A %s escalation waits in the spool until the worker can store it.", request.level)
        return RecordOutcome(durable=True)

    def record_contact(self, conversation_id: str, method: str, value: str) -> RecordOutcome:
        """Attach a contact to the conversation's open escalation (spool first, then database)."""
        return self._contact(ContactRequest(conversation_id, method, value, entry_id=uuid.uuid4().hex))

    def withdraw_contact(self, conversation_id: str) -> RecordOutcome:
        """Withdraw the contact of the conversation's open escalation (spool first, then database)."""
        return self._contact(ContactRequest(conversation_id, None, None, entry_id=uuid.uuid4().hex))

    def close(self, wait: bool = False) -> None:
        """Stop the database thread pool (with `wait`, after its last write) and release the store's connections."""
        self._executor.shutdown(wait=wait)
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def _contact(self, request: ContactRequest) -> RecordOutcome:
        if request.method is not None and (request.method not in CONTACT_METHODS or not (request.value or "").strip()):
            return RecordOutcome(durable=False)
        path = self._spool(spool.CONTACT_ENTRY, request.as_dict(), None)
        try:
            escalation = self._store_now(lambda store: store.apply_contact(request), path, refusals=True)
        except InvalidTransitionError:
            # The escalation was resolved: the contact reaches nobody, so it is not kept.
            self._discard(path)
            return RecordOutcome(durable=False)
        if escalation is not None:
            return RecordOutcome(durable=True, escalation_id=escalation.id)
        return RecordOutcome(durable=path is not None)

    def _spool(self, entry_type: str, payload: dict[str, Any], level: Optional[str]) -> Optional[Path]:
        try:
            return spool.write_entry(self.spool_dir, entry_type, payload)
        except (OSError, ValueError, TypeError) as error:
            logger.critical(
                "Could not write a %s entry to the escalation spool at %s (%s); trying the database alone.",
                entry_type,
                self.spool_dir,
                type(error).__name__,
            )
            return None

    def _store_now(
        self,
        action: Callable[[EscalationStore], Escalation],
        path: Optional[Path],
        *,
        refusals: bool = False,
    ) -> Optional[Escalation]:
        """Run ``action`` on the store within the timeout; remove the spool file if it worked."""
        future = self._executor.submit(self._store_then_unlink, action, path)
        try:
            return future.result(timeout=self.timeout_seconds)
        except FutureTimeout:
            logger.warning(
                "The escalation database did not answer within %g s; the spool keeps the entry.",
                self.timeout_seconds,
            )
        except EscalationNotFoundError:
            pass  # its escalation is still in the spool: the worker stores both, in order
        except InvalidTransitionError:
            if refusals:
                raise
            logger.exception("The escalation store refused an entry; the spool keeps it.")
        except Exception as error:  # noqa: BLE001  # any store failure must fall back to the spool
            with self._lock:
                self._store = None
            logger.warning(
                "The escalation database failed (%s); the spool keeps the entry.",
                _describe(error),
            )
        return None

    def _store_then_unlink(self, action: Callable[[EscalationStore], Escalation], path: Optional[Path]) -> Escalation:
        escalation = action(self.store)
        self._discard(path)
        return escalation

    def _discard(self, path: Optional[Path]) -> None:
        if path is None:
            return
        try:
            path.unlink()
        except FileNotFoundError:
            pass  # a worker claimed it meanwhile; storing it again changes nothing


@dataclass
class SpoolImport:
    """What one import pass did."""

    stored: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    retried: int = 0
    database_down: bool = False


def import_spooled(
    store: EscalationStore,
    spool_dir: Path,
    *,
    quarantine_dir: Optional[Path] = None,
    attempts: int = DEFAULT_IMPORT_ATTEMPTS,
    claim_lease_seconds: float = DEFAULT_CLAIM_LEASE_SECONDS,
) -> SpoolImport:
    """Store spooled entries, oldest first; a bad entry never holds back the others.

    Each file is claimed by an atomic rename, so concurrent importers never take
    the same one. While the database is down nothing is tried (and no attempt is
    counted). An entry that fails `attempts` times with the database up, or that
    cannot be read at all, is moved to the quarantine folder with its reason,
    noted in the store for the console, and logged at CRITICAL.

    Args:
        store: Where entries go.
        spool_dir: The spool folder.
        quarantine_dir: Where poison entries go (default: `quarantine` inside the spool).
        attempts: Failed imports (database up) before an entry is quarantined.
        claim_lease_seconds: After this long a claim whose importer died is released.

    Returns:
        The escalation ids stored, the quarantined file names and the retry count.
    """
    directory = Path(spool_dir)
    quarantine_dir = quarantine_dir or directory / spool.QUARANTINE_FOLDER
    report = SpoolImport()
    spool.release_stale_claims(directory, claim_lease_seconds)
    files = spool.pending_files(directory)
    if not files:
        return report
    if not _reachable(store):
        report.database_down = True
        logger.warning("%d spooled escalation entries wait: the database is unreachable.", len(files))
        return report
    for path in files:
        claimed = spool.claim(path)
        if claimed is None:
            continue  # another importer has it
        try:
            entry_type, payload = spool.read_entry(claimed)
        except (OSError, spool.SpoolFormatError) as error:
            _quarantine(store, claimed, quarantine_dir, _describe(error), None, None, report)
            continue
        try:
            if entry_type == spool.ESCALATION_ENTRY:
                escalation = store.record(EscalationRequest.from_dict(payload))
            else:
                escalation = store.apply_contact(ContactRequest.from_dict(payload))
        except Exception as error:  # noqa: BLE001  # one bad entry must not stop the others
            if not _reachable(store):
                spool.release(claimed, spool.attempts_of(path))
                report.database_down = True
                logger.warning("The database went away during a spool import; the entries wait.")
                return report
            tried = spool.attempts_of(path) + 1
            if tried >= attempts:
                level = payload.get("level") if isinstance(payload.get("level"), str) else None
                _quarantine(store, claimed, quarantine_dir, _describe(error), entry_type, level, report)
            else:
                spool.release(claimed, tried)
                report.retried += 1
                logger.warning(
                    "A spooled %s entry could not be stored (attempt %d of %d): %s",
                    entry_type,
                    tried,
                    attempts,
                    _describe(error),
                )
            continue
        claimed.unlink()
        report.stored.append(escalation.id)
        logger.warning("Spooled %s entry stored with escalation %s.", entry_type, escalation.id)
    spool.fsync_directory(directory)
    return report


def _reachable(store: EscalationStore) -> bool:
    try:
        store.ping()
    except Exception:  # noqa: BLE001  # any failure means: not now
        return False
    return True


def _quarantine(
    store: EscalationStore,
    claimed: Path,
    quarantine_dir: Path,
    reason: str,
    entry_type: Optional[str],
    level: Optional[str],
    report: SpoolImport,
) -> None:
    target = spool.quarantine(claimed, quarantine_dir, reason)
    report.quarantined.append(target.name)
    logger.critical(
        "QUARANTINED spooled %s entry %s (%s level): %s. It is kept in %s; "
        "reach the on-call clinician another way and see `python -m bot escalations --dead`.",
        entry_type or "unreadable",
        target.name,
        level or "unknown",
        reason,
        quarantine_dir,
    )
    try:
        store.record_quarantine(target.name, reason, entry_type, level)
    except Exception:  # noqa: BLE001  # the file and the log line already tell
        logger.warning("Could not note the quarantined entry %s in the database.", target.name)


def _describe(error: BaseException) -> str:
    """Return what failed without echoing data: DB errors carry the statement's values."""
    if isinstance(error, sa.exc.DBAPIError):
        original = error.orig
        code = getattr(original, "pgcode", None)
        return f"{type(original).__name__}" + (f" (SQLSTATE {code})" if code else "")
    if isinstance(error, sa.exc.SQLAlchemyError):
        return type(error).__name__
    ours = type(error).__module__.startswith("bot.")
    if ours and isinstance(error, (spool.SpoolFormatError, ValueError, LookupError)):
        return f"{type(error).__name__}: {str(error)[:200]}"
    return type(error).__name__
