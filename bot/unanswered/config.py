"""Configuration of the unanswered-questions log."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MIN_ANSWER_CONFIDENCE = 0.6


@dataclass(frozen=True)
class UnansweredConfig:
    """Settings of the unanswered-questions log, built by bot.settings.

    Attributes:
        db_url: SQLAlchemy URL of the database the questions are kept in.
        min_answer_confidence: an FAQ answer chosen with less confidence than
            this counts as unsure, so its question is kept for editors.
    """

    db_url: str = "sqlite:///var/unanswered.db"
    min_answer_confidence: float = DEFAULT_MIN_ANSWER_CONFIDENCE

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_answer_confidence <= 1.0:
            raise ValueError(
                f"min_answer_confidence must be between 0 and 1, got {self.min_answer_confidence}"
            )
