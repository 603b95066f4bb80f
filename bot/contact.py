"""Recognising a phone number or email address that a person gives to be contacted.

Both run on every message, on the server's event loop, so both take time linear
in the message: the email pattern is compiled with RE2 (no backtracking), the
number pattern cannot backtrack, and each number-like run is checked once, in
windows of a few groups.

A run of digits is a phone number only if it looks like one: 7 to 15 digits,
single-digit groups only at the start ("1 800 ...", "+61 2 ..."), not a date
("2024-08-09", "08.09.2024"), not years ("2019-2024"), not a decimal
("3.14159265"), not a price ("$1 500 000") and not part of a word or code
("NCT03537014").
"""

from __future__ import annotations

import re
from typing import List, NamedTuple, Optional, Sequence, Tuple

import re2

_EMAIL = re2.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Digit groups joined by at most one separator, optionally bracketed: "(555) 123-4567".
# Python's engine (RE2 costs microseconds per match, and a text of 20,000
# characters can hold thousands of numbers): nothing follows the repetition,
# so its first, greedy attempt always succeeds and it never backtracks.
_NUMBER_RUN = re.compile(r"\+?\(?[0-9]+\)?(?:[ \u00a0.\-]?\(?[0-9]+\)?)*")
_SPACES = frozenset(" \u00a0")
MIN_PHONE_DIGITS = 7
MAX_PHONE_DIGITS = 15
# "+33 1 23 45 67 89" is six space-separated parts.
_MAX_PARTS = 6
_CURRENCY = "$£€¥₹"
_DATE_SEPARATORS = frozenset("-./")


class ContactDetail(NamedTuple):
    """An email address or phone number found in a text, with where it is."""

    method: str
    value: str
    start: int
    end: int


def contact_detail(text: Optional[str]) -> Optional[Tuple[str, str]]:
    """The first email address in the text, else its first phone number, as (method, value)."""
    if not text:
        return None
    email = _EMAIL.search(text)
    if email:
        return "email", email.group(0)
    phones = _phone_numbers(text)
    return ("phone", phones[0].value) if phones else None


def contact_details(text: Optional[str]) -> List[ContactDetail]:
    """Every email address and phone number in the text, in order, none overlapping."""
    if not text:
        return []
    emails = [ContactDetail("email", m.group(0), m.start(), m.end()) for m in _EMAIL.finditer(text)]
    if emails:
        # Digits inside an address ("jo5551234567@example.org") are not a phone number.
        chars = list(text)
        for email in emails:
            chars[email.start : email.end] = " " * (email.end - email.start)
        masked = "".join(chars)
    else:
        masked = text
    found = emails + [phone._replace(value=text[phone.start : phone.end]) for phone in _phone_numbers(masked)]
    return sorted(found, key=lambda detail: detail.start)


def _phone_numbers(text: str) -> List[ContactDetail]:
    phones: List[ContactDetail] = []
    for run in _NUMBER_RUN.finditer(text):
        phones.extend(_phones_in_run(text, run.start(), run.end()))
    return phones


def _phones_in_run(text: str, start: int, end: int) -> List[ContactDetail]:
    """The phone numbers in one number run: the longest valid window of parts, left to right."""
    # Split on the (single) spaces of the run itself: an RE2 call on the whole
    # text would copy all of it, once per run.
    parts: List[Tuple[int, int]] = []
    position = start
    for offset, ch in enumerate(text[start:end], start=start):
        if ch in _SPACES:
            parts.append((position, offset))
            position = offset + 1
    parts.append((position, end))
    # Digits before each part, so that a window's digit count costs nothing.
    digits_before = [0]
    for first, last in parts:
        digits_before.append(digits_before[-1] + sum(ch.isdigit() for ch in text[first:last]))
    phones: List[ContactDetail] = []
    i = 0
    while i < len(parts):
        for j in range(min(len(parts), i + _MAX_PARTS), i, -1):
            if not MIN_PHONE_DIGITS <= digits_before[j] - digits_before[i] <= MAX_PHONE_DIGITS:
                continue
            first, last = _trim_brackets(text, parts[i][0], parts[j - 1][1])
            if _is_phone(text, first, last):
                phones.append(ContactDetail("phone", text[first:last], first, last))
                i = j
                break
        else:
            i += 1
    return phones


def _trim_brackets(text: str, start: int, end: int) -> Tuple[int, int]:
    """Drops a bracket that is not closed (or opened) inside the span."""
    span = text[start:end]
    if span.endswith(")") and span.count(")") > span.count("("):
        end -= 1
    if span.startswith("(") and span.count("(") > span.count(")"):
        start += 1
    return start, end


def _is_phone(text: str, start: int, end: int) -> bool:
    span = text[start:end]
    if not span or not (span[-1].isdigit() or span[-1] == ")"):
        return False
    groups, separators = _groups_and_separators(span)
    digits = sum(len(group) for group in groups)
    if not MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS:
        return False
    if len(groups[-1]) < 2 or any(len(group) == 1 for group in groups[2:]):
        return False
    if _is_date(groups, separators) or _are_years(groups) or _is_ip_address(groups, separators):
        return False
    if len(groups) == 2 and separators[0] == ".":
        return False  # a decimal number
    return not _glued_to_other_text(text, start, end)


def _groups_and_separators(span: str) -> Tuple[List[str], List[str]]:
    """The digit groups of a short span, and what stands between them (brackets left out)."""
    groups: List[str] = []
    separators: List[str] = []
    current: List[str] = []
    between: List[str] = []
    for ch in span:
        if "0" <= ch <= "9":
            if not current and groups:
                separators.append("".join(between).strip("()"))
            between = []
            current.append(ch)
        else:
            if current:
                groups.append("".join(current))
                current = []
            between.append(ch)
    if current:
        groups.append("".join(current))
    return groups, separators


def _is_date(groups: Sequence[str], separators: Sequence[str]) -> bool:
    """Starts with a day, month and a four-digit year in either order, joined by "-", "." or "/"."""
    if len(groups) < 3 or separators[0] != separators[1] or separators[0] not in _DATE_SEPARATORS:
        return False
    a, b, c = groups[:3]
    if len(a) == 4 and len(b) <= 2 and len(c) <= 2:
        return _is_year(a) and int(b) <= 31 and int(c) <= 31
    if len(a) <= 2 and len(b) <= 2 and len(c) == 4:
        return int(a) <= 31 and int(b) <= 31 and _is_year(c)
    return False


def _is_year(group: str) -> bool:
    return len(group) == 4 and group[:2] in ("19", "20")


def _are_years(groups: Sequence[str]) -> bool:
    return all(_is_year(group) for group in groups)


def _is_ip_address(groups: Sequence[str], separators: Sequence[str]) -> bool:
    return len(groups) == 4 and all(sep == "." for sep in separators) and all(int(g) <= 255 for g in groups)


def _glued_to_other_text(text: str, start: int, end: int) -> bool:
    """A code ("NCT03537014"), a price ("$ 1 500 000", "45%") or a fraction ("1/2345678")."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    if before.isalnum() or before in "_/" or after.isalnum() or after in "_/%":
        return True
    preceding = text[max(0, start - 2) : start].rstrip()
    return bool(preceding) and preceding[-1] in _CURRENCY
