"""The pattern book: every rule does what its examples say; bad files fail loudly."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pytest

from bot.risk import DEFAULT_PATTERNS_PATH, PatternBook, PatternBookError, RiskScreen

BOOK = PatternBook.load()


def _examples(kind: str) -> List[Tuple[str, str]]:
    entries = {"rules": BOOK.rules, "idioms": BOOK.idioms, "escalators": BOOK.escalators}[kind]
    return [(entry.id, example) for entry in entries for example in entry.examples]


def test_every_rule_has_examples() -> None:
    assert [rule.id for rule in BOOK.rules if not rule.examples] == []


def test_rule_ids_name_their_category() -> None:
    assert [r.id for r in BOOK.rules if not r.id.startswith(f"{r.category.value}.")] == []


@pytest.mark.parametrize("rule_id, example", _examples("rules"))
def test_rule_examples_match_their_rule(screen: RiskScreen, rule_id: str, example: str) -> None:
    counted = {m["rule"] for m in screen.explain(example) if m["verdict"] == "counts"}
    assert rule_id in counted, screen.explain(example)


@pytest.mark.parametrize("idiom_id, example", _examples("idioms"))
def test_idiom_examples_cancel_their_rules(screen: RiskScreen, idiom_id: str, example: str) -> None:
    idiom = next(i for i in BOOK.idioms if i.id == idiom_id)
    vetoed = [m for m in screen.explain(example) if m["verdict"] == "counts"]
    assert [m for m in vetoed if not idiom.rules or m["rule"] in idiom.rules] == []


@pytest.mark.parametrize("escalator_id, example", _examples("escalators"))
def test_escalator_examples_escalate(screen: RiskScreen, escalator_id: str, example: str) -> None:
    decision = screen.screen(example)
    assert decision is not None
    assert decision.escalated_by == escalator_id


MINIMAL_BOOK = """
categories: [suicide, harm_to_others, medical_emergency, self_harm, abuse_danger, acute_crisis]
fuzzy_targets: [myself]
grammar:
  negators: [not, never]
  negation_cancellers: [stop]
  subjects: [i]
  clause_breaks: [and]
  conditionals: [if]
  modals: [can]
  openers: [so]
  question_words: [what]
  auxiliaries: [is]
  situational_auxiliaries: [am]
  asking_frames: [i wonder]
  hypothetical_phrases: [what if]
  distant_past: ["years ago"]
  recent_time: [now]
  first_person: [i]
groups:
  i: [i]
rules:
  - id: acute_crisis.test_rule
    category: acute_crisis
    level: priority
    patterns: ["@i ~1 need a hug"]
"""


def test_a_custom_pattern_file_replaces_the_packaged_one(tmp_path: Path) -> None:
    path = tmp_path / "patterns.yml"
    path.write_text(MINIMAL_BOOK, encoding="utf-8")
    screen = RiskScreen.load(path)
    decision = screen.screen("I really need a hug")
    assert decision is not None
    assert decision.rule == "acute_crisis.test_rule"
    assert screen.screen("I want to die") is None


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("id: acute_crisis.test_rule", "id: Bad Id", "bad id"),
        ('"@i ~1 need a hug"', '"@nobody need a hug"', "unknown group"),
        ('"@i ~1 need a hug"', '"~1 need a hug"', "cannot start or end with a gap"),
        ('"@i ~1 need a hug"', '"%missing hug"', "unknown or nested phrase"),
        ('"@i ~1 need a hug"', '"(need a hug"', "unbalanced brackets"),
        ("level: priority", "level: soon", "is not one of"),
        ("negators: [not, never]", "negators: [not, no]", "quote it"),
        ("    level: priority", "    level: priority\n    requires: [signal.none]", "unknown signals"),
        ("categories: [suicide, ", "categories: [", "every category"),
    ],
)
def test_malformed_pattern_files_fail_with_a_location(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in MINIMAL_BOOK
    path = tmp_path / "patterns.yml"
    path.write_text(MINIMAL_BOOK.replace(old, new), encoding="utf-8")
    with pytest.raises(PatternBookError, match=message):
        PatternBook.load(path)


def test_a_missing_pattern_file_fails(tmp_path: Path) -> None:
    with pytest.raises(PatternBookError, match="Cannot read"):
        PatternBook.load(tmp_path / "absent.yml")


def test_the_packaged_book_is_the_default() -> None:
    assert DEFAULT_PATTERNS_PATH.name == "patterns.yml"
    assert DEFAULT_PATTERNS_PATH.is_file()
