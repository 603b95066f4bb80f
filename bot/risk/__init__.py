"""Deterministic risk screen: finds messages from people at risk, with reviewable rules.

The rules live in `patterns.yml`; `RiskScreen` applies them. Importing this
package loads nothing heavy: spaCy is loaded when a `RiskScreen` is built.
"""

from bot.risk.patterns import (
    DEFAULT_PATTERNS_PATH,
    Category,
    Context,
    Level,
    PatternBook,
    PatternBookError,
)
from bot.risk.screen import RiskDecision, RiskScreen, Screening

__all__ = [
    "DEFAULT_PATTERNS_PATH",
    "Category",
    "Context",
    "Level",
    "PatternBook",
    "PatternBookError",
    "RiskDecision",
    "RiskScreen",
    "Screening",
]
