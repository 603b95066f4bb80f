"""Limits on the `metadata` object a caller may attach to a message (REST and the widget's socket).

Rasa stores message metadata in the tracker with every user event and hands
it to every component and action. Unbounded, one caller could make every
later turn of a conversation slower and its stored tracker huge, or nest it
deep enough to break code that walks it recursively. Nothing in this
assistant needs more than a few flat keys, so metadata over the limits is
refused with an error that names the limit, never silently cut.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional, Tuple

MAX_METADATA_BYTES = 2048
MAX_METADATA_DEPTH = 3


def metadata_depth(value: Any) -> int:
    """How deeply objects and lists nest in `value`: 0 for a scalar, 1 for a flat object (iterative, no recursion)."""
    deepest = 0
    pending: List[Tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = list(item)
        else:
            continue
        deepest = max(deepest, depth + 1)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def metadata_problem(metadata: Any) -> Optional[str]:
    """Why `metadata` (already known to be an object) is over the limits, or None when it is within them."""
    if metadata_depth(metadata) > MAX_METADATA_DEPTH:
        return f"nests more than {MAX_METADATA_DEPTH} levels deep"
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > MAX_METADATA_BYTES:
        return f"is larger than {MAX_METADATA_BYTES} bytes as JSON"
    return None
