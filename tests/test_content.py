"""Checks over the real content: every FAQ answer is sourced, current, safe, plain and well linked."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Dict, List, Set

import pytest
import textstat
import yaml
from rasa.shared.nlu.training_data.loading import load_data

from bot.crisis import TEMPLATE_VARIABLES, load_crisis_resources

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
    "cost_and_insurance",
    "joining_a_trial",
    "what_it_feels_like",
    "long_term_effects",
    "medications_and_interactions",
    "other_psychedelic_therapies",
    "veterans",
    "approval_outlook",
]
# Files that hold FAQ examples (risk examples live in nlu_risk.yml).
FAQ_TRAINING_FILES = ["nlu.yml", "nlu_more.yml", "nlu_faq_topics.yml"]
MIN_EXAMPLES_PER_TOPIC = 30
MIN_WORDS, MAX_WORDS = 40, 120
REVIEW_MAX_AGE = timedelta(days=365)
SOURCE_URL = re.compile(r"https://\S+\.\S+")
# The promotional article the first version was written from: never a source.
NOT_A_SOURCE = re.compile(r"product brief|infolabmed", re.IGNORECASE)
CRISIS_FILE = ROOT / "crisis_resources.yml"
REGIONS = ["US", "UK", "AU"]

# Plain language: each reply reads at US school grade 8 or below (Flesch-Kincaid,
# textstat 0.7.3), scored as a person reads it, with each region's lines filled in.
# Names and terms that have no plainer word are taken out before scoring.
MAX_GRADE = 8.0
UNAVOIDABLE_TERMS = [
    "3,4-methylenedioxymethamphetamine",
    "methylenedioxymethamphetamine",
    "MDMA-assisted",
    "post-traumatic",
    "Psychopharmacology",
]

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
    for name in (*FAQ_TRAINING_FILES, "nlu_risk.yml"):
        texts.update(_normalise(message.get("text")) for message in load_data(str(DATA / name)).training_examples)
    return texts


# --- The set of topics ------------------------------------------------------------------


def test_faq_answers_are_exactly_the_topics():
    answers = {key for key in _answers() if key.startswith("utter_faq/")}

    assert answers == {f"utter_faq/{faq_id}" for faq_id in FAQ_IDS}


def test_faq_intents_are_exactly_the_topics_with_examples():
    counts: Dict[str, int] = {}
    for name in FAQ_TRAINING_FILES:
        for message in load_data(str(DATA / name)).training_examples:
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
        assert all(SOURCE_URL.search(source) for source in sources), "every source gives its address"
        assert not any(NOT_A_SOURCE.search(source) for source in sources), "the promotional brief is not a source"
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


# --- Plain language --------------------------------------------------------------------


def reading_grade(text: str) -> float:
    """The text's Flesch-Kincaid grade, without the terms that have no plainer word."""
    for term in UNAVOIDABLE_TERMS:
        text = text.replace(term, "")
    return float(textstat.flesch_kincaid_grade(text))


def _rendered_variations() -> List[pytest.param]:
    """Every variation of every response, as each region renders it."""
    regions = [load_crisis_resources(CRISIS_FILE, region).as_template_variables() for region in REGIONS]
    return [
        pytest.param([str(variation.get("text") or "").format(**region) for region in regions], id=f"{name}[{index}]")
        for name, variations in _all_responses().items()
        for index, variation in enumerate(variations)
    ]


def test_reading_grade_is_measured_as_expected():
    assert reading_grade("The cat sat on the mat.") < 2
    long_words = "Methodological heterogeneity substantially complicates interpretation of randomized evidence."
    assert reading_grade(long_words) > 12
    assert reading_grade("MDMA-assisted therapy helps.") == reading_grade("therapy helps.")


@pytest.mark.parametrize("texts", _rendered_variations())
def test_every_reply_reads_at_grade_eight_or_below(texts: List[str]):
    for text in texts:
        grade = reading_grade(text)
        assert grade <= MAX_GRADE, f"grade {grade:.1f}: {text}"


# --- Facts that must stay stated -------------------------------------------------------


@pytest.mark.parametrize(
    "faq_id, facts",
    [
        ("trial_results", ["9 to 2", "10 to 1", "another phase 3 trial", "Psychopharmacology", "three phase 2 papers"]),
        ("trial_results", ["phase 3 papers stand"]),
        ("risks_and_side_effects", ["muscle tightness"]),
        ("who_can_receive", ["uncontrolled high blood pressure", "tapered", "prescriber"]),
        ("legal_status", ["1 July 2023", "not a registered medicine", "Special Access Program", "UK", "EU"]),
        ("mdma_session", ["stayed the night", "next morning"]),
        ("treatment_process", ["three to four months"]),
        ("recreational_use", ["Never use alone", "water", "drug checking", "antidepressants", "{emergency_number}"]),
        ("joining_a_trial", ["ClinicalTrials.gov", "Screening", "retreats", "guides"]),
        ("medications_and_interactions", ["SSRIs", "never stop", "prescriber"]),
        ("other_psychedelic_therapies", ["Esketamine", "2019", "Psilocybin", "not approved"]),
        ("veterans", ["VA", "{veterans_line}"]),
        ("long_term_effects", ["addictive", "serotonin"]),
        ("approval_outlook", ["another phase 3 trial", "No one can say"]),
    ],
)
def test_answer_states_the_reviewed_facts(faq_id: str, facts: List[str]):
    text = " ".join(str(_answer(faq_id)[0].get("text")).split())
    for fact in facts:
        assert fact.lower() in text.lower(), f"{faq_id} no longer says {fact!r}"


@pytest.mark.parametrize(
    "faq_id, claim",
    [
        ("how_mdma_helps", "the therapy does the healing"),
        ("benefits", "renewed sense of hope"),
    ],
)
def test_answer_drops_claims_the_evidence_does_not_support(faq_id: str, claim: str):
    assert claim.lower() not in " ".join(str(_answer(faq_id)[0].get("text")).split()).lower()


def test_no_answer_dates_regulation_with_an_old_as_of():
    for name, variations in _answers().items():
        for variation in variations:
            assert "As of November" not in str(variation.get("text")), name


def test_introduction_is_honest_about_the_transcript():
    [intro] = _all_responses()["utter_intro"]
    text = " ".join(str(intro["text"]).split())

    assert "care team is told" in text and "can read this chat" in text
    assert "not an emergency service" in text


# --- Held-out sets stay held out --------------------------------------------------------


@pytest.mark.parametrize(
    "heldout", ["faq_cases.yml", "faq_cases_fresh.yml", "faq_cases_v2.yml", "risk_cases.yml", "risk_cases_v2.yml"]
)
def test_heldout_cases_are_not_training_examples(heldout: str):
    training = _training_texts()
    cases = _yaml(HELDOUT / heldout)["cases"]

    leaked = sorted({case["text"] for case in cases if _normalise(str(case["text"])) in training})

    assert not leaked, f"{len(leaked)} held-out texts are also training examples: {leaked}"
