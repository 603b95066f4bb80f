"""Every time the console API sends is ISO 8601 in UTC; the page shows it in the reader's time zone.

Rasa stamps events with Unix epoch seconds (a float), and transcripts keep
them as they came. Passed on as a bare number they were read by the page as
milliseconds and every message appeared to be sent in January 1970.
"""

from __future__ import annotations

import math
from datetime import datetime

from bot.escalation.store import UTC


def iso_utc(moment: datetime | None) -> str | None:
    """Return an aware datetime as ISO 8601 UTC to the second, e.g. ``2026-11-28T09:00:00+00:00``."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous: pass an aware datetime")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def transcript_time(value: object) -> str | None:
    """Return a transcript timestamp as ISO 8601 UTC; None if it is missing or not a time.

    Accepts Rasa's epoch seconds (number or numeric text) and ISO 8601 text
    (``Z`` or an offset; without one it is taken as UTC).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            return _parse_iso(text)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    try:
        return iso_utc(datetime.fromtimestamp(value, UTC))
    except (OverflowError, OSError, ValueError):
        return None


def _parse_iso(text: str) -> str | None:
    if text.endswith(("Z", "z")):  # Python 3.10's fromisoformat does not read the Z suffix
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso_utc(moment)
