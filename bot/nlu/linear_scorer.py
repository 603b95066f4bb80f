"""The trained TF-IDF + logistic regression model, scored one message at a time without sklearn's overhead.

For a single chat message, sklearn spends far longer on its checks than on
the arithmetic: ``TfidfVectorizer.transform`` re-derives ``idf_`` from a sparse
diagonal matrix on every call (its fitted-check reads every attribute), the
FeatureUnion goes through joblib, and ``predict_proba`` multiplies a sparse row
by a transposed, non-contiguous coefficient matrix. Together about 4 ms of a
~10 ms turn. This scorer takes the fitted vocabularies, IDF weights and
coefficients once and computes the same probabilities (to floating-point
rounding) in a fraction of that.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion


class _Block:
    """One TF-IDF vectorizer and the rows of the coefficients that belong to its features."""

    def __init__(self, vectorizer: TfidfVectorizer, weights: np.ndarray) -> None:
        self.analyse: Callable[[str], List[str]] = vectorizer.build_analyzer()
        self.vocabulary = vectorizer.vocabulary_
        self.idf = np.asarray(vectorizer.idf_, dtype=np.float64)
        self.sublinear_tf = bool(vectorizer.sublinear_tf)
        self.weights = weights

    def scores(self, document: str) -> Optional[np.ndarray]:
        """This block's part of the decision scores, or None when no known term occurs."""
        counts = Counter(
            index for term in self.analyse(document) if (index := self.vocabulary.get(term)) is not None
        )
        if not counts:
            return None
        indices = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        values = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        if self.sublinear_tf:
            values = np.log(values) + 1.0
        values *= self.idf[indices]
        values /= np.sqrt(np.dot(values, values))
        return values @ self.weights[indices]


class LinearScorer:
    """Class probabilities from fitted TF-IDF vectorizers (plus dense features) and a LogisticRegression."""

    def __init__(self, features: FeatureUnion, classifier: LogisticRegression) -> None:
        """Copy what scoring needs out of the fitted objects.

        Raises:
            ValueError: The model is not one this scorer reproduces exactly.
        """
        vectorizers = [transformer for _, transformer in features.transformer_list]
        for vectorizer in vectorizers:
            if not isinstance(vectorizer, TfidfVectorizer) or vectorizer.norm != "l2" or not vectorizer.use_idf:
                raise ValueError("only l2-normalised TF-IDF features with IDF are supported")
            if vectorizer.binary:
                raise ValueError("binary term counts are not supported")
        if features.transformer_weights:
            raise ValueError("weighted feature unions are not supported")
        if classifier.coef_.shape[0] < 3 or classifier.multi_class not in ("auto", "multinomial"):
            raise ValueError("only multinomial logistic regression over three or more classes is supported")
        if classifier.solver == "liblinear":
            raise ValueError("liblinear fits one-vs-rest models, which are scored differently")
        coefficients = np.ascontiguousarray(classifier.coef_.T, dtype=np.float64)
        self._blocks: List[_Block] = []
        start = 0
        for vectorizer in vectorizers:
            size = len(vectorizer.vocabulary_)
            self._blocks.append(_Block(vectorizer, coefficients[start : start + size]))
            start += size
        self._dense_weights = coefficients[start:]
        self._intercept = np.asarray(classifier.intercept_, dtype=np.float64)
        self.classes: Tuple[str, ...] = tuple(str(label) for label in classifier.classes_)

    @property
    def dense_features(self) -> int:
        """How many dense features (e.g. the sentence embedding) follow the TF-IDF ones."""
        return int(self._dense_weights.shape[0])

    def probabilities(self, documents: Sequence[str], dense: Optional[np.ndarray] = None) -> np.ndarray:
        """Rows of class probabilities, as ``predict_proba`` on the same features gives them."""
        rows = np.empty((len(documents), len(self.classes)), dtype=np.float64)
        for row, document in enumerate(documents):
            scores = self._intercept.copy()
            for block in self._blocks:
                part = block.scores(document)
                if part is not None:
                    scores += part
            if self.dense_features:
                if dense is None:
                    raise ValueError(f"the model needs {self.dense_features} dense features per document")
                scores += np.asarray(dense[row], dtype=np.float64) @ self._dense_weights
            rows[row] = _softmax(scores)
        return rows


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()
