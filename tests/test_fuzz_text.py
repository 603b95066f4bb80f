"""Property tests: hostile text through every NLU component and text helper raises nothing.

The NLU components run as the server runs them: the project's trained model,
parsed in process (`Agent.parse_message`), so every component in config.yml
sees each text after the ones before it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from bot.contact import contact_detail, contact_details
from bot.nlp import MAX_RUN_CHARS, lemmas, simplify_long_runs
from bot.nlu.no_words_classifier import has_words
from bot.risk import RiskScreen
from bot.unanswered.scrub import MAX_TEXT_LENGTH, scrub_personal_data
from bot.unanswered.scrub import has_words as has_words_left
from tests.adversarial_text import hostile_text
from tests.servers import require_model

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def risk_screen() -> RiskScreen:
    return RiskScreen.load()


@pytest.fixture(scope="module")
def agent() -> Any:
    from rasa.core.agent import Agent

    return Agent.load(str(require_model()))


@FUZZ
@given(text=hostile_text)
def test_contact_details_are_exact_spans_of_the_text(text: str) -> None:
    details = contact_details(text)
    previous_end = 0
    for detail in details:
        assert previous_end <= detail.start < detail.end <= len(text)
        assert text[detail.start : detail.end] == detail.value
        previous_end = detail.end
    first = contact_detail(text)
    assert (first is None) == (not details)


@FUZZ
@given(text=hostile_text)
def test_scrubbing_leaves_no_contact_detail_and_stays_short(text: str) -> None:
    scrubbed = scrub_personal_data(text)
    assert len(scrubbed) <= MAX_TEXT_LENGTH
    assert not [d for d in contact_details(scrubbed) if d.method == "email"]
    has_words_left(scrubbed)


@FUZZ
@given(text=hostile_text)
def test_long_runs_are_simplified_and_lemmas_come_back(text: str) -> None:
    simplified = simplify_long_runs(text)
    assert all(len(run) <= MAX_RUN_CHARS for run in simplified.split())
    assert all(isinstance(lemma, str) for lemma in lemmas(text))
    has_words(text)


@FUZZ
@given(text=hostile_text)
def test_the_risk_screen_takes_anything(risk_screen: RiskScreen, text: str) -> None:
    screening = risk_screen.analyse(text)
    if screening.decision is not None:
        assert 0 <= screening.decision.start < screening.decision.end <= len(text)
    risk_screen.explain(text)


@FUZZ
@given(text=hostile_text)
def test_every_nlu_component_of_the_model_takes_anything(agent: Any, text: str) -> None:
    parsed = asyncio.run(agent.parse_message(text))
    assert parsed["intent"]["name"]
    assert isinstance(parsed["text"], str)
    assert 0.0 <= parsed["intent"]["confidence"] <= 1.0
