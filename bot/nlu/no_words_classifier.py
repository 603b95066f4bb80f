"""Recognises messages without any words (empty, emoji, punctuation) before guessing."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message


def has_words(text: Text) -> bool:
    """True if the text holds at least one letter or digit in any script."""
    return any(ch.isalnum() for ch in text)


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False
)
class NoWordsClassifier(GraphComponent, IntentClassifier):
    """Sets the `no_words` intent for messages with no letters or digits.

    A classifier asked about "" or "🙂🙂" still returns its best guess; a
    person is better served by "I didn't catch any words". Button payloads
    (`/intent`) have words and pass through untouched.
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """intent: the intent set for messages without words."""
        return {"intent": "no_words"}

    def __init__(self, config: Dict[Text, Any]) -> None:
        """Creates the classifier."""
        self.intent: Text = config["intent"]

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> NoWordsClassifier:
        """Creates a new component (see parent class for full docstring)."""
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        """Overrides the intent of messages that contain no words."""
        for message in messages:
            if not has_words(message.get(TEXT) or ""):
                intent = {INTENT_NAME_KEY: self.intent, PREDICTED_CONFIDENCE_KEY: 1.0}
                message.set(INTENT, intent, add_to_output=True)
                message.set(INTENT_RANKING_KEY, [intent], add_to_output=True)
        return messages
