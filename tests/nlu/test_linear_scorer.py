"""LinearScorer gives the probabilities sklearn gives, on the project's real training data."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import yaml
from rasa.shared.importers.importer import TrainingDataImporter
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from bot.nlu.linear_intent_classifier import _features_text
from bot.nlu.linear_scorer import LinearScorer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus() -> Tuple[List[str], List[str]]:
    """Every intent and FAQ example of data/, lemmatised as the classifier sees them."""
    importer = TrainingDataImporter.load_from_config(
        str(ROOT / "config.yml"), str(ROOT / "domain.yml"), [str(ROOT / "data")]
    )
    data = importer.get_nlu_data()
    texts, labels = [], []
    for message in data.intent_examples:
        label = message.get("intent_response_key") or message.get("intent")
        texts.append(_features_text(message.get("text")))
        labels.append(label)
    return texts, labels


def _unseen_texts() -> List[str]:
    cases = yaml.safe_load((ROOT / "tests/heldout/faq_cases_fresh.yml").read_text())["cases"]
    return [_features_text(case["text"]) for case in cases] + ["", "zzzz qqqq", "?!", "MDMA " * 300]


def _features() -> FeatureUnion:
    return FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
        ]
    )


def test_tf_idf_only_matches_predict_proba(corpus: Tuple[List[str], List[str]]) -> None:
    texts, labels = corpus
    features = _features()
    classifier = LogisticRegression(C=20.0, max_iter=5000, random_state=0).fit(features.fit_transform(texts), labels)
    unseen = _unseen_texts()

    scored = LinearScorer(features, classifier).probabilities(unseen)

    np.testing.assert_allclose(scored, classifier.predict_proba(features.transform(unseen)), rtol=1e-9, atol=1e-12)


def test_dense_features_match_predict_proba(corpus: Tuple[List[str], List[str]]) -> None:
    """A stand-in for the sentence embedding: random float32 columns next to the TF-IDF ones."""
    from scipy import sparse

    texts, labels = corpus
    rng = np.random.default_rng(7)
    features = _features()
    dense = rng.normal(size=(len(texts), 16)).astype(np.float32)
    matrix = sparse.hstack([features.fit_transform(texts), sparse.csr_matrix(dense)]).tocsr()
    classifier = LogisticRegression(C=20.0, max_iter=5000, random_state=0).fit(matrix, labels)
    unseen = _unseen_texts()
    unseen_dense = rng.normal(size=(len(unseen), 16)).astype(np.float32)

    scored = LinearScorer(features, classifier).probabilities(unseen, unseen_dense)

    expected = classifier.predict_proba(
        sparse.hstack([features.transform(unseen), sparse.csr_matrix(unseen_dense)]).tocsr()
    )
    np.testing.assert_allclose(scored, expected, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="dense features"):
        LinearScorer(features, classifier).probabilities(unseen)


def test_models_it_cannot_reproduce_are_refused(corpus: Tuple[List[str], List[str]]) -> None:
    texts, labels = corpus
    features = _features()
    matrix = features.fit_transform(texts)
    two_classes = ["greet" if label == "greet" else "other" for label in labels]

    with pytest.raises(ValueError, match="three or more"):
        LinearScorer(features, LogisticRegression(max_iter=5000).fit(matrix, two_classes))
    with pytest.raises(ValueError, match="liblinear"):
        LinearScorer(features, LogisticRegression(solver="liblinear").fit(matrix, labels))
