"""`python -m bot escalations`: what is open and, with --dead, what needs a person, on both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.escalation.recorder import import_spooled
from bot.escalation.store import utc_now

from .harness import Database
from .test_escalation_recording import CONTACT, MARKER, request
from .test_escalation_worker import PROJECT_ROOT


def run_cli(database: Database, spool_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command in its own process, configured by environment variables."""
    env = {
        **os.environ,
        "ESCALATION_DB_URL": database.standalone_url,
        "ESCALATION_SPOOL_DIR": str(spool_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "escalations", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_dead_lists_dead_alerts_and_quarantined_entries_without_words(
    database: Database, tmp_path: Path
) -> None:
    """--dead shows every undelivered alert and quarantined entry, exits 1, and leaks nothing."""
    store = database.store()
    spool_dir = tmp_path / "spool"
    escalation = store.record(request(conversation_id="+15550100777", level="urgent", category="suicide"))
    store.record_contact("+15550100777", "phone", CONTACT)
    [row] = store.claim_due(utc_now(), limit=1, lease_seconds=30)
    store.mark_failed(row, "HTTP 500", utc_now(), max_attempts=1)
    (spool_dir).mkdir(mode=0o700)
    (spool_dir / "00000000000000000001-bad.json").write_text(f'{{"{MARKER}', encoding="utf-8")
    import_spooled(store, spool_dir)

    result = run_cli(database, spool_dir, "--dead")

    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert any(f"escalation {escalation.id}" in line and "HTTP 500" in line and "urgent" in line for line in lines)
    assert any("file 00000000000000000001-bad.json" in line for line in lines)
    assert "2 item(s) need a person" in result.stdout
    for secret in (MARKER, CONTACT, "5550100777"):
        assert secret not in result.stdout + result.stderr


def test_dead_with_nothing_dead_exits_0(database: Database, tmp_path: Path) -> None:
    """A healthy system says so."""
    database.store().record(request())

    result = run_cli(database, tmp_path / "spool", "--dead")

    assert result.returncode == 0, result.stderr
    assert "Nothing dead or quarantined." in result.stdout


def test_list_shows_unresolved_escalations_urgent_first(database: Database, tmp_path: Path) -> None:
    """Without --dead, unresolved escalations are listed by level with no words."""
    store = database.store()
    low = store.record(request(conversation_id="a", kind="human_request", level="low", category=None))
    urgent = store.record(request(conversation_id="b", level="urgent", category="suicide"))
    resolved = store.record(request(conversation_id="c"))
    store.resolve(resolved.id, actor="dr.rivera")

    result = run_cli(database, tmp_path / "spool")

    assert result.returncode == 0, result.stderr
    ids = [line.split()[0] for line in result.stdout.splitlines() if line[8:9] == "-"]
    assert ids == [urgent.id, low.id]
    assert "no alert destination is configured" in result.stdout
    assert MARKER not in result.stdout
