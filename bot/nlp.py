"""A small English spaCy pipeline that works offline: tokenizer plus lookup lemmas.

spaCy's tokenizer takes time quadratic in the length of a run without spaces:
it peels prefixes and suffixes off one at a time, searching the rest of the
run each time ("((((...", "🙂🙂🙂...", "a@a@a@..." of 20,000 characters took
tens of seconds). Real words are short, so before the tokenizer sees a run
longer than `MAX_RUN_CHARS`, `long_run_edits` turns each group of symbols in it
into a space (keeping one sentence mark such as "." or "?") and cuts longer
letter runs: every run it peels is then short, symbols add no tokens, and a
message costs time linear in its length.
"""

from __future__ import annotations

from functools import lru_cache
from typing import List, Tuple

import re2
import spacy
from spacy.language import Language

# Longer than any word or ordinary link; a run longer than this is split.
MAX_RUN_CHARS = 40
_LONG_RUN = re2.compile(r"\S{" + str(MAX_RUN_CHARS + 1) + ",}")
_SENTENCE_MARKS = frozenset(".!?,;:")


@lru_cache(maxsize=1)
def english_pipeline() -> Language:
    """Builds `spacy.blank("en")` with the lookup lemmatizer from spacy-lookups-data.

    Trained English pipelines cannot be downloaded here and none on PyPI fits
    spaCy 3.4, so this is the project's pipeline. Built once per process, on
    first use, never at import time.
    """
    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    return nlp


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "'"


def long_run_edits(text: str) -> List[Tuple[int, int, str]]:
    """Ordered, non-overlapping `(start, end, replacement)` edits that leave no run longer than `MAX_RUN_CHARS`.

    Only runs longer than that change: each group of symbols in one becomes a
    space (with the group's first sentence mark, if any, standing alone), and
    each letter run is cut every `MAX_RUN_CHARS` characters.
    """
    edits: List[Tuple[int, int, str]] = []
    for run in _LONG_RUN.finditer(text):
        position, end = run.start(), run.end()
        while position < end:
            stop = position
            if _is_word_char(text[position]):
                while stop < end and _is_word_char(text[stop]):
                    stop += 1
                for cut in range(position + MAX_RUN_CHARS, stop, MAX_RUN_CHARS):
                    edits.append((cut, cut + 1, " " + text[cut]))
            else:
                while stop < end and not _is_word_char(text[stop]):
                    stop += 1
                mark = next((ch for ch in text[position:stop] if ch in _SENTENCE_MARKS), "")
                edits.append((position, stop, f" {mark} " if mark else " "))
            position = stop
    return edits


def simplify_long_runs(text: str) -> str:
    """The text with `long_run_edits(text)` applied."""
    edits = long_run_edits(text)
    if not edits:
        return text
    parts: List[str] = []
    position = 0
    for start, end, replacement in edits:
        parts.append(text[position:start])
        parts.append(replacement)
        position = end
    parts.append(text[position:])
    return "".join(parts)


def lemmas(text: str) -> List[str]:
    """Lower-cased lemmas of the text's tokens, punctuation and spaces dropped."""
    doc = english_pipeline()(simplify_long_runs(text))
    return [
        (token.lemma_ or token.text).lower()
        for token in doc
        if not (token.is_punct or token.is_space)
    ]
