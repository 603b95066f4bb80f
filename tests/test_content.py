"""Checks over the real content: every FAQ answer is sourced, current, safe and well linked."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Dict, List, Set

import pytest
import yaml
from rasa.shared.nlu.training_data.loading import load_data

from bot.crisis import TEMPLATE_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
HELDOUT = ROOT / "tests" / "heldout"

FAQ_IDS = [
    "what_is_mdma_assisted_therapy",
    "what_is_mdma",
    "how_mdma_helps",
    "what_is_ptsd",
    "ptsd_symptoms",
    "standard_ptsd_treatments",
    "treatment_process",
    "preparation_sessions",
    "mdma_session",
    "integration_sessions",
    "therapist_role",
    "trial_results",
    "benefits",
    "is_it_safe",
    "risks_and_side_effects",
    "who_can_receive",
    "recreational_use",
    "legal_status",
    "breakthrough_therapy_designation",
    "availability",
]
MIN_EXAMPLES_PER_TOPIC = 10
MIN_WORDS, MAX_WORDS = 40, 120
REVIEW_MAX_AGE = timedelta(days=365)

DOSE = re.compile(
    r"\d+(?:[.,]\d+)?\s?(?:mg|milligrams?|micrograms?|mcg|µg)\b|\bmg\b|milligram|microgram", re.IGNORECASE
)
REGULATORY = re.compile(r"\bFDA\b|\blegal(?:ly)?\b|\bapproved\b|\bSchedule I\b", re.IGNORECASE)
NOT_APPROVED = re.compile(r"\bnot (?:an )?approved\b", re.IGNORECASE)
YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
EMERGENCY = re.compile(r"\bemergenc|\bin danger\b|\bambulance\b", re.IGNORECASE)
HARDCODED_NUMBER = re.compile(
    r"(?<![\d,.])(?:911|999|000|112|988|111|116 ?123|13 ?11 ?14|13 ?11 ?26|838255|85258|1-?800-?222-?1222"
    r"|1-?800-?799-?7233|88788|0808 ?2000 ?247|1800 ?737 ?732|1800 ?011 ?046|0800 ?138 ?1619)(?![\d,])"
)
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
KNOWN_PLACEHOLDERS = set(TEMPLATE_VARIABLES)


def _yaml(path: Path) -> Dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _answers() -> Dict[str, List[Dict[str, Any]]]:
    return _yaml(DATA / "responses.yml")["responses"]


def _answer(faq_id: str) -> List[Dict[str, Any]]:
    variations = _answers().get(f"utter_faq/{faq_id}")
    assert variations, f"utter_faq/{faq_id} is missing from data/responses.yml"
    return variations


def _all_responses() -> Dict[str, List[Dict[str, Any]]]:
    """Conversation responses from domain.yml and the FAQ answers, as Rasa merges them."""
    return {**(_yaml(ROOT / "domain.yml").get("responses") or {}), **_answers()}


def _response_texts() -> List[pytest.param]:
    return [
        pytest.param(variation.get("text") or "", id=f"{name}[{index}]")
        for name, variations in _all_responses().items()
        for index, variation in enumerate(variations)
    ]


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _training_texts() -> Set[str]:
    texts: Set[str] = set()
    for name in ("nlu.yml", "nlu_risk.yml"):
        texts.update(_normalise(message.get("text")) for message in load_data(str(DATA / name)).training_examples)
    return texts


# --- The set of topics ------------------------------------------------------------------


def test_faq_answers_are_exactly_the_topics():
    answers = {key for key in _answers() if key.startswith("utter_faq/")}

    assert answers == {f"utter_faq/{faq_id}" for faq_id in FAQ_IDS}


def test_faq_intents_are_exactly_the_topics_with_examples():
    counts: Dict[str, int] = {}
    for message in load_data(str(DATA / "nlu.yml")).training_examples:
        key = message.get("intent_response_key")
        if key:
            counts[key] = counts.get(key, 0) + 1

    assert set(counts) == {f"faq/{faq_id}" for faq_id in FAQ_IDS}
    too_few = {key: count for key, count in counts.items() if count < MIN_EXAMPLES_PER_TOPIC}
    assert not too_few, f"topics with fewer than {MIN_EXAMPLES_PER_TOPIC} examples: {too_few}"


# --- Each answer ------------------------------------------------------------------------


@pytest.mark.parametrize("faq_id", FAQ_IDS)
def test_answer_has_sources_title_and_recent_review(faq_id: str):
    today = date.today()
    for variation in _answer(faq_id):
        metadata = variation.get("metadata") or {}
        sources = metadata.get("sources")
        assert isinstance(sources, list) and sources, "metadata.sources must be a non-empty list"
        assert all(isinstance(source, str) and source.strip() for source in sources)
        title = metadata.get("title")
        assert isinstance(title, str) and title.strip(), "metadata.title is missing"
        reviewed_raw = metadata.get("last_reviewed")
        reviewed = reviewed_raw if isinstance(reviewed_raw, date) else date.fromisoformat(str(reviewed_raw))
        assert reviewed <= today, f"last_reviewed {reviewed} is in the future"
        assert reviewed >= today - REVIEW_MAX_AGE, f"last_reviewed {reviewed} is more than a year old"


@pytest.mark.parametrize("faq_id", FAQ_IDS)
def test_answer_length(faq_id: str):
    for variation in _answer(faq_id):
        words = len(str(variation.get("text") or "").split())
        assert MIN_WORDS <= words <= MAX_WORDS, f"{words} words"


@pytest.mark.parametrize("faq_id", FAQ_IDS)
def test_answer_links_two_or_three_other_topics(faq_id: str):
    for variation in _answer(faq_id):
        buttons = variation.get("buttons") or []
        assert 2 <= len(buttons) <= 3, f"{len(buttons)} buttons"
        payloads = [button.get("payload") for button in buttons]
        assert len(set(payloads)) == len(payloads), "duplicate buttons"
        for button in buttons:
            assert str(button.get("title") or "").strip(), "button without a title"
            match = re.fullmatch(r"/faq/(\w+)", str(button.get("payload")))
            assert match and match.group(1) in FAQ_IDS, f"{button.get('payload')} is not a topic"
            assert match.group(1) != faq_id, "a button points to its own answer"


@pytest.mark.parametrize("faq_id", FAQ_IDS)
def test_answer_about_regulation_says_not_approved_and_when(faq_id: str):
    for variation in _answer(faq_id):
        text = str(variation.get("text") or "")
        if REGULATORY.search(text):
            assert NOT_APPROVED.search(text), "mentions regulation but not that it is not approved"
            assert YEAR.search(text), "mentions regulation without a year"


@pytest.mark.parametrize("text", _response_texts())
def test_no_dose_amounts(text: str):
    assert not DOSE.search(text)


# --- Emergency wording ------------------------------------------------------------------


@pytest.mark.parametrize("text", _response_texts())
def test_emergency_numbers_come_from_the_region(text: str):
    if EMERGENCY.search(text):
        assert "{emergency_number}" in text
    assert not HARDCODED_NUMBER.search(text), "emergency numbers belong in crisis_resources.yml"


@pytest.mark.parametrize("text", _response_texts())
def test_placeholders_are_ones_the_generator_fills(text: str):
    assert set(PLACEHOLDER.findall(text)) <= KNOWN_PLACEHOLDERS


def test_crisis_responses_give_the_emergency_number():
    responses = _all_responses()
    crisis = [name for name in responses if name.startswith("utter_crisis")]

    assert crisis, "no utter_crisis* response in the domain"
    for name in crisis:
        for variation in responses[name]:
            assert "{emergency_number}" in variation.get("text", ""), name
            assert "not an emergency service" in " ".join(variation.get("text", "").split()), name


# --- Held-out sets stay held out --------------------------------------------------------


@pytest.mark.parametrize("heldout", ["faq_cases.yml", "risk_cases.yml"])
def test_heldout_cases_are_not_training_examples(heldout: str):
    training = _training_texts()
    cases = _yaml(HELDOUT / heldout)["cases"]

    leaked = sorted({case["text"] for case in cases if _normalise(str(case["text"])) in training})

    assert not leaked, f"{len(leaked)} held-out texts are also training examples: {leaked}"
