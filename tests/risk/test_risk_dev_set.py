"""The screen over the hand-written development set (tests/risk/dev_cases.yml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

from bot.risk import RiskScreen

DEV_CASES = yaml.safe_load(Path(__file__).with_name("dev_cases.yml").read_text(encoding="utf-8"))
RISK_CASES = DEV_CASES["risk"]
LOOKALIKES = DEV_CASES["lookalike"]
MAX_LOOKALIKES_FLAGGED = 0.05


def test_dev_set_is_big_and_covers_every_category_and_level() -> None:
    assert len(RISK_CASES) >= 80
    assert len(LOOKALIKES) >= 80
    covered = {(case["category"], case["level"]) for case in RISK_CASES}
    categories = {category for category, _ in covered}
    assert categories == {
        "suicide",
        "self_harm",
        "harm_to_others",
        "medical_emergency",
        "acute_crisis",
        "abuse_danger",
    }
    assert {level for _, level in covered} == {"urgent", "priority"}


@pytest.mark.parametrize("case", RISK_CASES, ids=[c["text"][:60] for c in RISK_CASES])
def test_risk_is_flagged_with_its_level_and_category(screen: RiskScreen, case: Dict[str, Any]) -> None:
    decision = screen.screen(case["text"])
    assert decision is not None, f"missed: {case['text']!r}\n{screen.explain(case['text'])}"
    assert (decision.level.value, decision.category.value) == (
        case["level"],
        case["category"],
    ), f"{case['text']!r} flagged by {decision.rule}"


def test_no_risk_case_is_missed(screen: RiskScreen) -> None:
    missed = [case["text"] for case in RISK_CASES if screen.screen(case["text"]) is None]
    assert missed == []


def test_few_lookalikes_are_flagged(screen: RiskScreen) -> None:
    flagged = {}
    for text in LOOKALIKES:
        decision = screen.screen(text)
        if decision is not None:
            flagged[text] = decision.rule
    assert len(flagged) <= MAX_LOOKALIKES_FLAGGED * len(LOOKALIKES), flagged
