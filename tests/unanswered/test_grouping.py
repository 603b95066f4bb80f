"""Similar questions are grouped, counted and described for an editor."""

from __future__ import annotations

import random
from datetime import date
from typing import List, Optional

from bot.unanswered.decision import FALLBACK, LOW_CONFIDENCE, UnansweredQuestion
from bot.unanswered.grouping import content_terms, group_questions, phrasing_key


def q(
    text: str, day: int = 10, reason: str = FALLBACK, topic: Optional[str] = "faq/availability"
) -> UnansweredQuestion:
    return UnansweredQuestion(date(2026, 11, day), reason, text, topic, 0.3)


QUESTIONS: List[UnansweredQuestion] = [
    q("is mdma therapy covered by medicare", 2, LOW_CONFIDENCE),
    q("Is MDMA therapy covered by Medicare?", 5, LOW_CONFIDENCE),
    q("does medicare cover mdma therapy", 9),
    q("will medicare cover the therapy", 12, LOW_CONFIDENCE, "faq/legal_status"),
    q("what about psilocybin", 3, topic="faq/what_is_mdma"),
    q("is psilocybin better than mdma", 20, topic="faq/trial_results"),
    q("psilocybin or mdma?", 21, topic="faq/what_is_mdma"),
    q("can I bring my dog to the session", 7, topic=None),
    q("what about it?", 8, topic=None),
]


def test_similar_questions_share_a_group_biggest_first() -> None:
    groups = group_questions(QUESTIONS)
    texts = [sorted(phrasing_key(x.text) for x in g.questions) for g in groups]
    assert texts == [
        [
            "does medicare cover mdma therapy",
            "is mdma therapy covered by medicare",
            "is mdma therapy covered by medicare",
            "will medicare cover the therapy",
        ],
        ["is psilocybin better than mdma", "psilocybin or mdma", "what about psilocybin"],
        ["what about it"],  # seen after the dog question, so listed first among equals
        ["can i bring my dog to the session"],
    ]
    assert [g.count for g in groups] == [4, 3, 1, 1]


def test_a_group_describes_itself() -> None:
    medicare = group_questions(QUESTIONS)[0]
    assert medicare.representative == "Is MDMA therapy covered by Medicare?"  # a tie: first in order
    assert medicare.examples() == ["does medicare cover mdma therapy", "will medicare cover the therapy"]
    assert medicare.examples(limit=1) == ["does medicare cover mdma therapy"]
    assert medicare.top_topic() == ("faq/availability", 3)
    assert medicare.reasons() == {LOW_CONFIDENCE: 3, FALLBACK: 1}
    assert (medicare.first_seen, medicare.last_seen) == (date(2026, 11, 2), date(2026, 11, 12))


def test_a_group_without_guesses_has_no_topic() -> None:
    dog = group_questions(QUESTIONS)[-1]
    assert dog.top_topic() == (None, 0)
    assert dog.examples() == []


def test_the_grouping_does_not_depend_on_the_order_of_the_questions() -> None:
    shuffled = list(QUESTIONS)
    random.Random(4).shuffle(shuffled)

    def summary(questions: List[UnansweredQuestion]) -> List[tuple]:
        return [(g.representative, g.count, tuple(g.examples())) for g in group_questions(questions)]

    assert summary(shuffled) == summary(QUESTIONS)


def test_questions_without_content_words_are_grouped_by_wording_only() -> None:
    groups = group_questions([q("what about it?"), q("What about it"), q("and this?"), q("[NAME] [EMAIL]")])
    assert sorted((g.count, phrasing_key(g.representative)) for g in groups) == [
        (1, "[name] [email]"),
        (1, "and this"),
        (2, "what about it"),
    ]


def test_unrelated_questions_stay_apart_at_a_high_bar() -> None:
    pair = [q("does medicare cover mdma therapy"), q("will medicare cover the therapy")]
    assert len(group_questions(pair, min_similarity=0.35)) == 1
    assert len(group_questions(pair, min_similarity=0.99)) == 2


def test_content_terms_are_lemmas_without_stop_words_or_placeholders() -> None:
    assert content_terms("Is [NAME] covered by the trials? Email [EMAIL]") == ["cover", "trial", "email"]


def test_no_questions_no_groups() -> None:
    assert group_questions([]) == []
