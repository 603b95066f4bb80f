"""Progress lines for a long run, stamped with the time since it started."""

from __future__ import annotations

import time

_STARTED = time.monotonic()


def clock(seconds: float) -> str:
    """`m:ss` (or `h:mm:ss`) for a duration."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def say(message: str) -> None:
    """Prints one progress line now."""
    print(f"[{clock(time.monotonic() - _STARTED):>7}] {message}", flush=True)
