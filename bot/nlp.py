"""A small English spaCy pipeline that works offline: tokenizer plus lookup lemmas."""

from __future__ import annotations

from functools import lru_cache
from typing import List

import spacy
from spacy.language import Language


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


def lemmas(text: str) -> List[str]:
    """Lower-cased lemmas of the text's tokens, punctuation and spaces dropped."""
    doc = english_pipeline()(text)
    return [
        (token.lemma_ or token.text).lower()
        for token in doc
        if not (token.is_punct or token.is_space)
    ]
