"""Lets a button payload such as `/faq/legal_status` select that retrieval answer."""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional, Text

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
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    RESPONSE_SELECTOR,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.shared.utils.io import dump_obj_as_json_to_file, read_json_file

logger = logging.getLogger(__name__)

_PAYLOAD = re.compile(r"^/(?P<intent>[A-Za-z0-9_-]+)/(?P<response>[A-Za-z0-9_-]+)$")
_FILE = "retrieval_responses.json"


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class RetrievalIntentButtonResolver(GraphComponent, IntentClassifier):
    """Resolves `/<retrieval_intent>/<response>` payloads to that exact answer.

    Rasa cannot trigger a retrieval sub-intent from a button (rasa#5576): the
    payload `/faq/legal_status` is not a domain intent, so Rasa falls back to
    classifying the literal text. This component, placed after the
    ResponseSelector, sets the retrieval intent and the selected response with
    full confidence, so the usual `utter_faq` rule answers exactly that topic.
    Unknown payloads are left alone.
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """No options: the known answers are learnt from the training data."""
        return {}

    def __init__(
        self,
        model_storage: ModelStorage,
        resource: Resource,
        responses: Optional[Dict[Text, List[Dict[Text, Any]]]] = None,
    ) -> None:
        """Creates the resolver with the known `intent/response` keys and their answers."""
        self._model_storage = model_storage
        self._resource = resource
        self.responses: Dict[Text, List[Dict[Text, Any]]] = responses or {}

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> RetrievalIntentButtonResolver:
        """Creates an untrained resolver."""
        return cls(model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        """Remembers every retrieval answer key, e.g. `faq/legal_status`."""
        self.responses = {
            key[len("utter_") :]: variations
            for key, variations in training_data.responses.items()
            if key.startswith("utter_") and "/" in key
        }
        with self._model_storage.write_to(self._resource) as directory:
            dump_obj_as_json_to_file(directory / _FILE, self.responses)
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> RetrievalIntentButtonResolver:
        """Loads the known answer keys saved by `train`."""
        try:
            with model_storage.read_from(resource) as directory:
                responses = read_json_file(directory / _FILE)
        except (ValueError, FileNotFoundError):
            logger.warning("No retrieval answers saved with the model; buttons stay inert.")
            responses = {}
        return cls(model_storage, resource, responses)

    def process(self, messages: List[Message]) -> List[Message]:
        """Selects the answer named by a `/intent/response` payload."""
        for message in messages:
            key = self._payload_key(message.get(TEXT))
            if key is not None:
                self._select(message, key)
        return messages

    def _payload_key(self, text: Optional[Text]) -> Optional[Text]:
        if not text:
            return None
        match = _PAYLOAD.match(text.strip())
        if not match:
            return None
        key = f"{match.group('intent')}/{match.group('response')}"
        return key if key in self.responses else None

    def _select(self, message: Message, key: Text) -> None:
        retrieval_intent = key.split("/", 1)[0]
        intent = {INTENT_NAME_KEY: retrieval_intent, PREDICTED_CONFIDENCE_KEY: 1.0}
        ranking_entry = {"id": None, PREDICTED_CONFIDENCE_KEY: 1.0, "intent_response_key": key}
        selectors = dict(message.get(RESPONSE_SELECTOR) or {})
        selectors.setdefault(
            RESPONSE_SELECTOR_RETRIEVAL_INTENTS, sorted({k.split("/", 1)[0] for k in self.responses})
        )
        selectors[retrieval_intent] = {
            RESPONSE_SELECTOR_PREDICTION_KEY: {
                RESPONSE_SELECTOR_RESPONSES_KEY: self.responses[key],
                PREDICTED_CONFIDENCE_KEY: 1.0,
                "intent_response_key": key,
                RESPONSE_SELECTOR_UTTER_ACTION_KEY: f"utter_{key}",
            },
            RESPONSE_SELECTOR_RANKING_KEY: [ranking_entry],
        }
        message.set(INTENT, intent, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [intent], add_to_output=True)
        message.set(RESPONSE_SELECTOR, selectors, add_to_output=True)
