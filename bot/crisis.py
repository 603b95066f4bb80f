"""Crisis resources per region, read from crisis_resources.yml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import yaml


class CrisisResourcesError(ValueError):
    """The crisis resources file is missing, malformed or lacks the region."""


@dataclass(frozen=True)
class CrisisResources:
    """What to do now in one region: the emergency number and a crisis line."""

    region: str
    region_name: str
    emergency_number: str
    crisis_line: str

    def as_template_variables(self) -> Dict[str, str]:
        """Variables available to every response, e.g. `{emergency_number}`."""
        return {
            "region": self.region,
            "region_name": self.region_name,
            "emergency_number": self.emergency_number,
            "crisis_line": self.crisis_line,
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
        known = ", ".join(sorted(regions)) or "none"
        raise CrisisResourcesError(f"Region {chosen!r} is not in {path} (known: {known}).")
    missing = [key for key in ("emergency_number", "crisis_line") if not entry.get(key)]
    if missing:
        raise CrisisResourcesError(f"Region {chosen!r} in {path} lacks {', '.join(missing)}.")
    return CrisisResources(
        region=chosen,
        region_name=str(entry.get("name") or chosen),
        emergency_number=str(entry["emergency_number"]),
        crisis_line=str(entry["crisis_line"]),
    )
