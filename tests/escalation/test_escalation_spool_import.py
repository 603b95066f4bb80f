"""Spool import by the worker: poison entries are quarantined, never blocking; concurrent importers never duplicate."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.escalation import spool
from bot.escalation.recorder import import_spooled
from bot.escalation.records import ContactRequest, EscalationRequest

from .harness import Database
from .receivers import TcpProxy
from .test_escalation_recording import CONTACT, MARKER, request


def spool_request(spool_dir: Path, decision: EscalationRequest) -> Path:
    """Write a decision to the spool as the recorder does."""
    return spool.write_entry(spool_dir, spool.ESCALATION_ENTRY, decision.as_dict())


def test_poison_entries_are_quarantined_and_never_block_the_others(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Unreadable, unknown and unstorable entries go to quarantine; every other entry flows."""
    spool_dir = tmp_path / "spool"
    store = database.store()
    spool_request(spool_dir, request(conversation_id="first"))
    garbage = spool_dir / f"{time.time_ns():020d}-garbage.json"
    garbage.write_bytes(b'{"type": "escalation", "entry": {"level": "urgent", "text": "' + MARKER.encode())
    spool.write_entry(spool_dir, "telegram", {"level": "urgent"})
    spool_request(
        spool_dir,
        request(conversation_id="s" * 3000, category="x", level="urgent"),
    )
    spool.write_entry(
        spool_dir,
        spool.CONTACT_ENTRY,
        ContactRequest("nobody-escalated", "phone", CONTACT, entry_id="e1").as_dict(),
    )
    spool_request(spool_dir, request(conversation_id="last"))

    with caplog.at_level(logging.WARNING):
        first_pass = import_spooled(store, spool_dir, attempts=3)
        later_passes = [import_spooled(store, spool_dir, attempts=3) for _ in range(2)]

    stored = {e.conversation_id: e for e in store.list_escalations()}
    assert set(stored) == {"first", "s" * 3000, "last"}
    assert stored["s" * 3000].category == "unspecified"
    assert len(first_pass.stored) == 3
    assert len(first_pass.quarantined) == 2
    assert first_pass.retried == 1
    assert [len(p.quarantined) for p in later_passes] == [0, 1]
    assert list(spool_dir.glob("*.json")) == []
    quarantine_dir = spool_dir / spool.QUARANTINE_FOLDER
    kept = sorted(path.name for path in quarantine_dir.glob("*.json"))
    assert len(kept) == 3
    assert all((quarantine_dir / f"{name}.reason").is_file() for name in kept)
    letters = store.list_dead_letters()
    assert sorted(letter.reference for letter in letters) == kept
    assert {letter.source for letter in letters} == {"spool"}
    assert any("no escalation" in letter.reason for letter in letters)
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 3
    assert all("QUARANTINED" in r.getMessage() for r in critical)
    assert MARKER not in caplog.text
    assert CONTACT not in caplog.text
    assert "s" * 100 not in caplog.text


def test_no_attempt_is_counted_while_the_database_is_down(
    vanishing_postgres: tuple[Database, TcpProxy], tmp_path: Path
) -> None:
    """An outage never pushes a good entry into quarantine; it is stored once the database is back."""
    database, proxy = vanishing_postgres
    spool_dir = tmp_path / "spool"
    path = spool_request(spool_dir, request())
    store = database.store(connect_timeout_seconds=1)
    proxy.stop()

    reports = [import_spooled(store, spool_dir, attempts=1) for _ in range(3)]

    assert all(report.database_down for report in reports)
    assert [p.name for p in spool_dir.glob("*.json")] == [path.name]
    assert not (spool_dir / spool.QUARANTINE_FOLDER).exists()
    proxy.start()
    assert len(import_spooled(store, spool_dir, attempts=1).stored) == 1


def test_two_importers_never_duplicate_or_lose_an_entry(
    database: Database, tmp_path: Path
) -> None:
    """Two workers importing one spool at once store every entry exactly once."""
    spool_dir = tmp_path / "spool"
    for number in range(30):
        spool_request(spool_dir, request(conversation_id=f"c{number}"))
    for number in range(5):
        # The recorder and a retry may both have spooled the same decision.
        spool_request(spool_dir, request(conversation_id=f"c{number}"))
    stores = [database.store(), database.store()]
    barrier = threading.Barrier(2)

    def run(index: int) -> list[str]:
        barrier.wait()
        return import_spooled(stores[index], spool_dir).stored

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, range(2)))

    assert len(results[0]) + len(results[1]) == 35
    escalations = stores[0].list_escalations()
    assert len(escalations) == 30
    assert {e.conversation_id for e in escalations} == {f"c{n}" for n in range(30)}
    assert set(results[0]) | set(results[1]) == {e.id for e in escalations}
    assert len(stores[0].list_outbox()) == 30
    assert list(spool_dir.iterdir()) == []


def test_a_claim_whose_importer_died_is_imported_after_the_lease(
    database: Database, tmp_path: Path
) -> None:
    """A file claimed by a worker that then died is released and stored."""
    spool_dir = tmp_path / "spool"
    claimed = spool.claim(spool_request(spool_dir, request()))
    assert claimed is not None
    store = database.store()

    assert import_spooled(store, spool_dir, claim_lease_seconds=60).stored == []
    an_hour_ago = time.time() - 3600
    os.utime(claimed, (an_hour_ago, an_hour_ago))
    report = import_spooled(store, spool_dir, claim_lease_seconds=60)

    assert len(report.stored) == 1
    assert list(spool_dir.iterdir()) == []
