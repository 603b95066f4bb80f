"""Plain-text listings for `python -m bot escalations`: what is open, and what needs a person.

Nothing here prints the person's words or contact details: a terminal,
its scrollback and a cron mail are all places those must not reach.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from bot.escalation import spool
from bot.escalation.config import EscalationConfig, destinations_configured
from bot.escalation.store import DeadLetter, EscalationStore, utc_now


def print_escalations(config: EscalationConfig, status: str | None, limit: int, out: TextIO) -> int:
    """Print escalations (unresolved ones by default), urgent first; return the exit code."""
    try:
        store = EscalationStore.from_config(config)
    except Exception as error:  # noqa: BLE001  # a clear message instead of a traceback
        print(f"error: the escalation database is unreachable ({type(error).__name__})", file=out)
        return 2
    try:
        if status:
            escalations = store.list_escalations(status=status, limit=limit)
        else:
            escalations = store.list_escalations(status="open") + store.list_escalations(status="acknowledged")
        escalations = sorted(escalations, key=lambda e: ({"urgent": 0, "priority": 1}.get(e.level, 2), e.created_at))
        now = utc_now()
        if not destinations_configured(config):
            print("warning: no alert destination is configured; nobody is alerted", file=out)
        if not escalations:
            print("No escalations.", file=out)
        for escalation in escalations[:limit]:
            minutes = int((now - escalation.created_at).total_seconds() // 60)
            print(
                f"{escalation.id}  {escalation.level:<8} {escalation.status:<12} "
                f"{escalation.kind}/{escalation.category}  {minutes} min ago  "
                f"reminders: {escalation.reminders_sent}",
                file=out,
            )
    finally:
        store.close()
    return 0


def print_dead_letters(config: EscalationConfig, spool_dir: Path, out: TextIO) -> int:
    """Print alerts never delivered and quarantined spool entries; exit 1 if there are any."""
    quarantine_dir = Path(spool_dir) / spool.QUARANTINE_FOLDER
    files = {entry.name: entry for entry in spool.quarantined_files(quarantine_dir)}
    count = 0
    code = 0
    try:
        store = EscalationStore.from_config(config)
    except Exception as error:  # noqa: BLE001
        print(
            f"error: the escalation database is unreachable ({type(error).__name__}); "
            "showing quarantined spool files only",
            file=out,
        )
        code = 2
        letters: list[DeadLetter] = []
    else:
        try:
            letters = store.list_dead_letters()
        finally:
            store.close()
    for letter in letters:
        if letter.source == "spool":
            files.pop(letter.reference, None)
        where = f"escalation {letter.escalation_id}" if letter.escalation_id else f"file {letter.reference}"
        print(
            f"{letter.at.isoformat(timespec='seconds')}  {letter.source:<6} {letter.level or 'unknown':<8} "
            f"{where}  {letter.detail}: {letter.reason}",
            file=out,
        )
        count += 1
    for entry in files.values():
        print(
            f"{entry.at.isoformat(timespec='seconds')}  spool  unknown  file {entry.name}: {entry.reason}",
            file=out,
        )
        count += 1
    if count:
        print(
            f"{count} item(s) need a person. Dead alerts: reach the on-call clinician another way. "
            f"Quarantined entries are kept in {quarantine_dir}.",
            file=out,
        )
        return code or 1
    print("Nothing dead or quarantined.", file=out)
    return code
