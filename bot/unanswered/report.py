"""`python -m bot unanswered`: the grouped list an editor works from."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO

from bot.unanswered.config import UnansweredConfig
from bot.unanswered.decision import FALLBACK, LOW_CONFIDENCE
from bot.unanswered.grouping import DEFAULT_EXAMPLES, DEFAULT_MIN_SIMILARITY, QuestionGroup, group_questions

REASON_LABELS = {FALLBACK: "fallback or Did you mean", LOW_CONFIDENCE: "unsure answer"}


def parse_since(value: str) -> date:
    """A --since value (YYYY-MM-DD) as a date."""
    try:
        return date.fromisoformat(value.strip())
    except ValueError as error:
        raise ValueError(f"--since must be a date like 2026-11-01, got {value!r}") from error


def _reasons_text(reasons: Dict[str, int]) -> str:
    return ", ".join(f"{REASON_LABELS.get(reason, reason)} {count}" for reason, count in reasons.items())


def format_report(
    groups: List[QuestionGroup], since: Optional[date], examples: int = DEFAULT_EXAMPLES
) -> str:
    """The groups as plain text, biggest first, each with its examples and guessed topic."""
    total = sum(group.count for group in groups)
    if not groups:
        return f"No unanswered questions since {since.isoformat()}.\n" if since else "No unanswered questions yet.\n"
    period = f" since {since.isoformat()}" if since else ", all dates"
    lines = [
        f"Unanswered questions{period}: {total} message{'s' if total != 1 else ''} "
        f"in {len(groups)} group{'s' if len(groups) != 1 else ''}",
        "",
    ]
    for number, group in enumerate(groups, start=1):
        topic, topic_count = group.top_topic()
        lines.append(f"{number:>3}. {group.count} × \"{group.representative}\"")
        lines.append(
            f"     closest topic: {topic} ({topic_count} of {group.count})"
            if topic
            else "     closest topic: none"
        )
        lines.append(f"     why: {_reasons_text(group.reasons())}")
        seen = group.first_seen.isoformat()
        if group.last_seen != group.first_seen:
            seen += f" to {group.last_seen.isoformat()}"
        lines.append(f"     seen: {seen}")
        others = group.examples(examples)
        if others:
            lines.append("     also asked as:")
            lines.extend(f"       - \"{text}\"" for text in others)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def as_json(groups: List[QuestionGroup], since: Optional[date], examples: int = DEFAULT_EXAMPLES) -> Dict[str, Any]:
    """The groups as JSON-ready data."""
    entries = []
    for group in groups:
        topic, topic_count = group.top_topic()
        entries.append(
            {
                "count": group.count,
                "representative": group.representative,
                "examples": group.examples(examples),
                "guessed_topic": topic,
                "guessed_topic_count": topic_count,
                "reasons": group.reasons(),
                "first_seen": group.first_seen.isoformat(),
                "last_seen": group.last_seen.isoformat(),
            }
        )
    return {
        "since": since.isoformat() if since else None,
        "total": sum(group.count for group in groups),
        "groups": entries,
    }


def run_report(
    config: UnansweredConfig,
    since: Optional[str] = None,
    json_path: Optional[str] = None,
    examples: int = DEFAULT_EXAMPLES,
    min_similarity: Optional[float] = None,
    out: Optional[TextIO] = None,
) -> int:
    """Reads the stored questions, groups them and prints the report; returns the exit status."""
    min_similarity = DEFAULT_MIN_SIMILARITY if min_similarity is None else min_similarity
    from sqlalchemy.exc import SQLAlchemyError

    from bot.unanswered.store import UnansweredStore

    try:
        since_date = parse_since(since) if since else None
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if examples < 0:
        print("error: --examples must be 0 or more", file=sys.stderr)
        return 2
    if not 0.0 < min_similarity <= 1.0:
        print("error: --min-similarity must be above 0 and at most 1", file=sys.stderr)
        return 2
    store = UnansweredStore(config.db_url)
    try:
        questions = store.questions(since_date)
    except SQLAlchemyError as error:
        print(f"error: cannot read the unanswered questions: {type(error).__name__}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    groups = group_questions(questions, min_similarity)
    (out or sys.stdout).write(format_report(groups, since_date, examples))
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(as_json(groups, since_date, examples), indent=2, ensure_ascii=False), "utf-8")
    return 0
