"""Recognising a phone number or email address that a person gives to be contacted."""

from __future__ import annotations

import re
from typing import Optional, Tuple

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?\d[\d\s().-]{5,}\d")
MIN_PHONE_DIGITS = 7


def contact_detail(text: Optional[str]) -> Optional[Tuple[str, str]]:
    """The first email address or phone number in the text, as (method, value)."""
    if not text:
        return None
    email = _EMAIL.search(text)
    if email:
        return "email", email.group(0)
    for phone in _PHONE.finditer(text):
        if sum(ch.isdigit() for ch in phone.group(0)) >= MIN_PHONE_DIGITS:
            return "phone", phone.group(0).strip()
    return None
