"""Groups similar unanswered questions so an editor sees each gap once, with its count.

Each question becomes a TF-IDF vector over its lemmas (`bot.nlp.lemmas`,
English stop words and placeholders left out, words in nearly every question
such as "mdma" or "therapy" damped). Questions are taken most common
phrasing first; each joins the group whose centroid is most similar (cosine) if
that similarity reaches `min_similarity`, otherwise it starts a new group. The
result is deterministic for the same questions. The default bar (0.45) put
87% of the held-out FAQ phrasings in a group with their own topic; the MiniLM
encoder in `bot.embeddings` did no better here and takes seconds to load. Questions with no content words
left ("what about it?") are grouped by their exact wording only.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bot.unanswered.decision import UnansweredQuestion
from bot.unanswered.scrub import PLACEHOLDERS

DEFAULT_MIN_SIMILARITY = 0.45
DEFAULT_EXAMPLES = 3

# Words in nearly every question to this assistant: sharing them says little,
# so they count a quarter ("does mdma therapy work" is not "who can't take mdma").
GENERIC_TERMS = frozenset({"mdma", "therapy", "assist", "assisted", "psychotherapy", "treatment", "ptsd"})
GENERIC_WEIGHT = 0.25

_TRAILING = re.compile(r"[\s?!.,;:]+$")
_SPACES = re.compile(r"\s+")


def phrasing_key(text: str) -> str:
    """Two questions with the same key are the same phrasing (case, spacing, end punctuation)."""
    return _TRAILING.sub("", _SPACES.sub(" ", text.casefold())).strip()


def content_terms(text: str) -> List[str]:
    """The lemmas that carry meaning: no stop words, placeholders, numbers or one-letter words."""
    from spacy.lang.en.stop_words import STOP_WORDS

    from bot.nlp import lemmas

    for placeholder in PLACEHOLDERS:
        text = text.replace(placeholder, " ")
    return [
        lemma
        for lemma in lemmas(text)
        if len(lemma) > 1 and lemma not in STOP_WORDS and any(ch.isalpha() for ch in lemma)
    ]


def usual_wording(questions: Sequence[UnansweredQuestion]) -> str:
    """The exact text most of these same-phrasing questions used (alphabetically first on a tie)."""
    counts = Counter(question.text for question in questions)
    return min(counts, key=lambda text: (-counts[text], text))


@dataclass
class QuestionGroup:
    """Similar questions, with what an editor needs to act on them."""

    questions: List[UnansweredQuestion] = field(default_factory=list)
    representative: str = ""

    @property
    def count(self) -> int:
        """How many messages are in the group."""
        return len(self.questions)

    @property
    def first_seen(self) -> date:
        """The day of the oldest message."""
        return min(q.received_on for q in self.questions)

    @property
    def last_seen(self) -> date:
        """The day of the newest message."""
        return max(q.received_on for q in self.questions)

    def reasons(self) -> Dict[str, int]:
        """How many messages fell back and how many got an unsure answer."""
        return dict(Counter(q.reason for q in self.questions).most_common())

    def top_topic(self) -> Tuple[Optional[str], int]:
        """The FAQ topic guessed most often for these messages, and for how many."""
        topics = Counter(q.guessed_topic for q in self.questions if q.guessed_topic)
        if not topics:
            return None, 0
        (topic, count), *_ = sorted(topics.items(), key=lambda item: (-item[1], item[0]))
        return topic, count

    def examples(self, limit: int = DEFAULT_EXAMPLES) -> List[str]:
        """Other phrasings in the group, most common first, without the representative."""
        phrasings: Dict[str, List[UnansweredQuestion]] = {}
        for question in self.questions:
            phrasings.setdefault(phrasing_key(question.text), []).append(question)
        skip = phrasing_key(self.representative)
        ordered = sorted((k for k in phrasings if k != skip), key=lambda k: (-len(phrasings[k]), k))
        return [usual_wording(phrasings[k]) for k in ordered[:limit]]


def group_questions(
    questions: Sequence[UnansweredQuestion], min_similarity: float = DEFAULT_MIN_SIMILARITY
) -> List[QuestionGroup]:
    """Similar questions grouped, biggest group first (then the most recent)."""
    if not questions:
        return []
    phrasings: Dict[str, List[UnansweredQuestion]] = {}
    for question in questions:
        phrasings.setdefault(phrasing_key(question.text), []).append(question)
    # Most common phrasing first, so the usual wording of a gap seeds its group.
    keys = sorted(phrasings, key=lambda k: (-len(phrasings[k]), k))
    vectors = _tfidf([content_terms(k) for k in keys])

    groups: List[QuestionGroup] = []
    centroids: List[np.ndarray] = []
    members: List[List[int]] = []
    for index, key in enumerate(keys):
        vector = vectors[index]
        best, similarity = _closest(vector, centroids)
        if best is not None and similarity >= min_similarity:
            groups[best].questions.extend(phrasings[key])
            members[best].append(index)
            centroids[best] = centroids[best] + vector * len(phrasings[key])
        else:
            groups.append(QuestionGroup(list(phrasings[key])))
            members.append([index])
            centroids.append(vector * len(phrasings[key]))
    for group, indices, centroid in zip(groups, members, centroids, strict=True):
        group.representative = usual_wording(phrasings[keys[_most_central(indices, vectors, centroid)]])
    return sorted(groups, key=lambda g: (-g.count, -g.last_seen.toordinal(), phrasing_key(g.representative)))


def _tfidf(documents: List[List[str]]) -> np.ndarray:
    """L2-normalised TF-IDF rows (smoothed IDF, log-scaled term frequency, generic terms damped)."""
    vocabulary = sorted({term for terms in documents for term in terms})
    column = {term: i for i, term in enumerate(vocabulary)}
    matrix = np.zeros((len(documents), len(vocabulary)))
    for row, terms in enumerate(documents):
        for term, count in Counter(terms).items():
            matrix[row, column[term]] = 1.0 + np.log(count)
    document_frequency = (matrix > 0).sum(axis=0)
    idf = np.log((1 + len(documents)) / (1 + document_frequency)) + 1.0
    weights = np.array([GENERIC_WEIGHT if term in GENERIC_TERMS else 1.0 for term in vocabulary])
    matrix *= idf * weights
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def _closest(vector: np.ndarray, centroids: List[np.ndarray]) -> Tuple[Optional[int], float]:
    if not centroids or not vector.any():
        return None, 0.0
    similarities = [_cosine(vector, centroid) for centroid in centroids]
    best = int(np.argmax(similarities))
    return best, similarities[best]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm else 0.0


def _most_central(indices: List[int], vectors: np.ndarray, centroid: np.ndarray) -> int:
    """The member closest to the centroid; the first (most common) one on a tie."""
    return max(indices, key=lambda i: (_cosine(vectors[i], centroid), -indices.index(i)))
