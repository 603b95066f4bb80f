"""Crisis resources per region, read from crisis_resources.yml.

A crisis reply names different lines for different risks (a poison line for an
overdose, a domestic-abuse line for someone in danger at home), so every region
lists the same set of lines, `LINE_KEYS`, and each becomes a response variable
of the same name. A reply written once then reads right in every region, and a
region that lacks a line fails at start-up rather than leaving `{poison_line}`
unfilled in front of a person in crisis. Each line carries the official page
it was checked against and the date, so a reviewer can check it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple

import yaml

# The lines every region lists, each a response variable (`{crisis_line}`, ...).
EMERGENCY_NUMBER = "emergency_number"
CRISIS_LINE = "crisis_line"
CRISIS_TEXT = "crisis_text"
VETERANS_LINE = "veterans_line"
POISON_LINE = "poison_line"
ABUSE_LINE = "abuse_line"
LINE_KEYS: Tuple[str, ...] = (EMERGENCY_NUMBER, CRISIS_LINE, CRISIS_TEXT, VETERANS_LINE, POISON_LINE, ABUSE_LINE)
# Every variable a response may use: the lines plus the region itself.
TEMPLATE_VARIABLES: Tuple[str, ...] = ("region", "region_name", *LINE_KEYS)


class CrisisResourcesError(ValueError):
    """The crisis resources file is missing, malformed or lacks the region."""


@dataclass(frozen=True)
class CrisisLine:
    """One number or service: what the person reads, and where and when it was checked."""

    text: str
    source: str
    verified: date


@dataclass(frozen=True)
class CrisisResources:
    """What to do now in one region: the emergency number and the lines each kind of risk needs."""

    region: str
    region_name: str
    lines: Mapping[str, CrisisLine] = field(hash=False)

    @property
    def emergency_number(self) -> str:
        """The number to call in an emergency, e.g. `911`."""
        return self.lines[EMERGENCY_NUMBER].text

    @property
    def crisis_line(self) -> str:
        """How to reach the general crisis line, e.g. `call or text 988 (...)`."""
        return self.lines[CRISIS_LINE].text

    def as_template_variables(self) -> Dict[str, str]:
        """Variables available to every response, e.g. `{emergency_number}`, `{poison_line}`."""
        return {
            "region": self.region,
            "region_name": self.region_name,
            **{key: line.text for key, line in self.lines.items()},
        }


def load_crisis_resources(path: Path, region: Optional[str] = None) -> CrisisResources:
    """Loads the resources of `region` (or the file's default region) from `path`."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise CrisisResourcesError(f"Cannot read crisis resources from {path}: {error}") from error
    if not isinstance(document, dict):
        raise CrisisResourcesError(f"{path} must be a mapping with `region` and `regions`.")
    regions = document.get("regions") or {}
    if not isinstance(regions, dict):
        raise CrisisResourcesError(f"`regions` in {path} must map region codes (US, UK, ...) to resources.")
    default_region = document.get("region") or "US"
    if not isinstance(default_region, str):
        raise CrisisResourcesError(f"`region` in {path} must be a region code such as US, UK or AU.")
    chosen = (region or default_region).upper()
    entry = regions.get(chosen)
    if not isinstance(entry, dict):
        known = ", ".join(sorted(str(name) for name in regions)) or "none"
        raise CrisisResourcesError(f"Region {chosen!r} is not in {path} (known: {known}).")
    missing = [key for key in LINE_KEYS if not entry.get(key)]
    if missing:
        raise CrisisResourcesError(f"Region {chosen!r} in {path} lacks {', '.join(missing)}.")
    lines = MappingProxyType({key: _line(entry[key], f"Region {chosen!r} in {path}: {key}") for key in LINE_KEYS})
    return CrisisResources(region=chosen, region_name=str(entry.get("name") or chosen), lines=lines)


def _line(raw: Any, where: str) -> CrisisLine:
    """One line from its mapping; a line without its text, source or check date is refused."""
    if not isinstance(raw, dict):
        raise CrisisResourcesError(f"{where} must be a mapping with text, source and verified.")
    text, source, verified = raw.get("text"), raw.get("source"), raw.get("verified")
    if not isinstance(text, (str, int)) or not str(text).strip():
        raise CrisisResourcesError(f"{where} lacks its text.")
    if not isinstance(source, str) or not source.startswith("https://"):
        raise CrisisResourcesError(f"{where} needs the https:// address of the page it was checked against.")
    if isinstance(verified, str):
        try:
            verified = date.fromisoformat(verified)
        except ValueError:
            verified = None
    if not isinstance(verified, date):
        raise CrisisResourcesError(f"{where} needs the date it was verified (YYYY-MM-DD).")
    if "{" in str(text) or "}" in str(text):
        raise CrisisResourcesError(f"{where} must not contain braces: it is placed inside responses.")
    return CrisisLine(text=str(text), source=source, verified=verified)
