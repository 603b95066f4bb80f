"""Turns an unsure FAQ answer into a fallback, so the assistant asks instead of guessing."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text, Type

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.constants import RESPONSE_SELECTOR_DEFAULT_INTENT, RESPONSE_SELECTOR_RANKING_KEY
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    RESPONSE_SELECTOR,
)
from rasa.shared.nlu.training_data.message import Message

logger = logging.getLogger(__name__)


def _selector_output(message: Message, retrieval_intent: Text) -> Optional[Dict[Text, Any]]:
    selectors = message.get(RESPONSE_SELECTOR) or {}
    return selectors.get(retrieval_intent) or selectors.get(RESPONSE_SELECTOR_DEFAULT_INTENT)


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False
)
class FaqConfidenceGate(GraphComponent, IntentClassifier):
    """Predicts `nlu_fallback` when the ResponseSelector is unsure which answer fits.

    Rasa's FallbackClassifier only looks at intent confidence (rasa#9751), so a
    confident `faq` intent with an unsure sub-intent would still be answered.
    The selector's ranking stays on the message, so the response generator
    can offer the closest topics as "Did you mean" choices.
    """

    @classmethod
    def required_components(cls) -> List[Type]:
        """Needs an intent classifier (which also selects answers) before it."""
        return [IntentClassifier]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Returns the default configuration.

        retrieval_intent: the retrieval intent whose answers are gated.
        threshold: below this answer confidence the answer is withheld.
        ambiguity_threshold: if the best two answers are closer than this, the
            answer is withheld.
        """
        return {
            "retrieval_intent": "faq",
            "threshold": 0.5,
            "ambiguity_threshold": 0.1,
        }

    def __init__(self, config: Dict[Text, Any]) -> None:
        """Creates the gate from its configuration."""
        self.retrieval_intent: Text = config["retrieval_intent"]
        self.threshold: float = float(config["threshold"])
        self.ambiguity_threshold: float = float(config["ambiguity_threshold"])

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> FaqConfidenceGate:
        """Creates a new component (see parent class for full docstring)."""
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        """Replaces the intent by `nlu_fallback` where the FAQ answer is unsure."""
        for message in messages:
            if self._is_unsure_answer(message):
                self._fall_back(message)
        return messages

    def _is_unsure_answer(self, message: Message) -> bool:
        intent = message.get(INTENT) or {}
        if intent.get(INTENT_NAME_KEY) != self.retrieval_intent:
            return False
        selected = _selector_output(message, self.retrieval_intent)
        if not selected:
            return True
        ranking = selected.get(RESPONSE_SELECTOR_RANKING_KEY) or []
        confidences = [float(r.get(PREDICTED_CONFIDENCE_KEY, 0.0)) for r in ranking[:2]]
        if not confidences:
            return True
        if confidences[0] < self.threshold:
            return True
        return len(confidences) > 1 and confidences[0] - confidences[1] < self.ambiguity_threshold

    @staticmethod
    def _fall_back(message: Message) -> None:
        intent = message.get(INTENT) or {}
        confidence = float(intent.get(PREDICTED_CONFIDENCE_KEY) or 0.0)
        fallback = {INTENT_NAME_KEY: DEFAULT_NLU_FALLBACK_INTENT_NAME, PREDICTED_CONFIDENCE_KEY: confidence}
        ranking = [
            r
            for r in message.get(INTENT_RANKING_KEY) or []
            if r.get(INTENT_NAME_KEY) != DEFAULT_NLU_FALLBACK_INTENT_NAME
        ]
        message.set(INTENT, fallback, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [fallback, *ranking], add_to_output=True)
        logger.debug("Unsure FAQ answer: asking which topic was meant.")
