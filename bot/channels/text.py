"""Cleaning of user text shared by every input channel."""

from __future__ import annotations

import unicodedata

MAX_MESSAGE_CHARS = 20_000

_KEEP = {"\n", "\t"}


def clean_user_text(text: str) -> str:
    """NFC-normalises text and replaces control characters with spaces.

    Nothing else is removed: the risk screen must see everything the person
    wrote, so long messages are not truncated here.
    """
    normalised = unicodedata.normalize("NFC", text)
    return "".join(
        " " if (unicodedata.category(ch) in ("Cc", "Cf", "Cs") and ch not in _KEEP) else ch
        for ch in normalised
    )
