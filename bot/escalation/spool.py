"""A folder of escalation entries on local disk: written before the database, claimed atomically.

Every decision is written here first, so it survives the database being down
and any process dying right after the crisis reply. A file is complete or
absent (written under a temporary name, fsynced, renamed, directory fsynced)
and readable only by its owner: it holds the person's words.

Importers claim a file by renaming it, which exactly one process can do, so
two workers never import the same entry at once; a claim whose importer died
is released again after a lease. Entries that keep failing are moved to a
quarantine folder with the reason beside them, never deleted.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.escalation.records import UTC

ESCALATION_ENTRY = "escalation"
CONTACT_ENTRY = "contact"
ENTRY_TYPES = (ESCALATION_ENTRY, CONTACT_ENTRY)
QUARANTINE_FOLDER = "quarantine"
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
_CLAIMED_SUFFIX = ".claimed"
_ATTEMPTS = re.compile(r"\.a(\d+)$")


class SpoolFormatError(ValueError):
    """A spool file is not a readable entry."""


@dataclass(frozen=True)
class QuarantinedFile:
    """A spooled entry moved aside because it could not be stored."""

    name: str
    reason: str
    at: datetime


def ensure_directory(directory: Path) -> Path:
    """Create ``directory`` (owner-only) if needed and return it."""
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    os.chmod(directory, DIRECTORY_MODE)
    return directory


def write_entry(directory: Path, entry_type: str, payload: Mapping[str, Any]) -> Path:
    """Write one entry durably and atomically; return its path.

    Names start with the time in nanoseconds, so sorting them replays entries in
    the order they were made.
    """
    ensure_directory(directory)
    stem = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
    final = directory / f"{stem}.json"
    temporary = directory / f".{stem}.tmp"
    # ASCII escapes keep odd text (lone surrogates) writable; str() keeps odd values.
    body = json.dumps({"type": entry_type, "entry": dict(payload)}, default=str).encode("ascii")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(directory)
    return final


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` survive a power cut."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_entry(path: Path) -> tuple[str, dict[str, Any]]:
    """Return (entry type, payload) of a spool file; raise SpoolFormatError if unreadable."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpoolFormatError(f"not a JSON entry ({type(error).__name__})") from error
    if not isinstance(data, dict) or data.get("type") not in ENTRY_TYPES or not isinstance(data.get("entry"), dict):
        raise SpoolFormatError("not an escalation or contact entry")
    return data["type"], data["entry"]


def pending_files(directory: Path) -> list[Path]:
    """Return the unclaimed entries, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.json"))


def attempts_of(path: Path) -> int:
    """Return how many failed imports a spool file's name records."""
    match = _ATTEMPTS.search(path.name.removesuffix(".json"))
    return int(match.group(1)) if match else 0


def claim(path: Path) -> Path | None:
    """Take ``path`` for this process by renaming it; None if another process took it."""
    claimed = path.with_name(f"{path.name}.{uuid.uuid4().hex}{_CLAIMED_SUFFIX}")
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None
    # The lease of a claim runs from now, not from when the entry was written.
    os.utime(claimed)
    return claimed


def original_name(claimed: Path) -> str:
    """Return the name a claimed file had before it was claimed."""
    return claimed.name.removesuffix(_CLAIMED_SUFFIX).rsplit(".", 1)[0]


def release(claimed: Path, attempts: int) -> Path:
    """Give a claimed file back, recording ``attempts`` failed imports in its name."""
    name = original_name(claimed).removesuffix(".json")
    name = _ATTEMPTS.sub("", name)
    if attempts:
        name += f".a{attempts}"
    released = claimed.with_name(f"{name}.json")
    os.rename(claimed, released)
    return released


def release_stale_claims(directory: Path, lease_seconds: float) -> int:
    """Give back claims whose importer died (older than the lease); return how many."""
    if not directory.is_dir():
        return 0
    released = 0
    deadline = time.time() - lease_seconds
    for claimed in directory.glob(f"*{_CLAIMED_SUFFIX}"):
        try:
            if claimed.stat().st_mtime < deadline:
                os.rename(claimed, claimed.with_name(original_name(claimed)))
                released += 1
        except FileNotFoundError:
            continue  # another importer finished or released it meanwhile
    return released


def quarantine(claimed: Path, quarantine_dir: Path, reason: str) -> Path:
    """Move a claimed file to ``quarantine_dir`` with its reason beside it; return the new path."""
    ensure_directory(quarantine_dir)
    target = quarantine_dir / original_name(claimed)
    reason_file = target.with_name(target.name + ".reason")
    descriptor = os.open(reason_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(reason + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(claimed, target)
    fsync_directory(quarantine_dir)
    fsync_directory(claimed.parent)
    return target


def quarantined_files(quarantine_dir: Path) -> Iterator[QuarantinedFile]:
    """Yield the quarantined entries with their reasons, oldest first."""
    if not quarantine_dir.is_dir():
        return
    for path in sorted(quarantine_dir.glob("*.json")):
        reason_file = path.with_name(path.name + ".reason")
        try:
            reason = reason_file.read_text(encoding="utf-8").strip()
        except OSError:
            reason = "reason not recorded"
        yield QuarantinedFile(
            name=path.name,
            reason=reason,
            at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
        )
