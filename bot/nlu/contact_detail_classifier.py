"""Recognises a message that gives a phone number or email address to be contacted."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.contact import contact_detail


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False
)
class ContactDetailClassifier(GraphComponent, IntentClassifier):
    """Sets `provide_contact` when a message contains a phone number or email address.

    The number itself is not copied anywhere here: the contact action reads it
    from the message and stores it with the escalation, after consent. The
    safety screen runs after this component, so risk still wins.
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """intent: the intent set for messages with contact details."""
        return {"intent": "provide_contact"}

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
    ) -> ContactDetailClassifier:
        """Creates a new component (see parent class for full docstring)."""
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        """Overrides the intent of messages that give contact details."""
        for message in messages:
            if contact_detail(message.get(TEXT)) is not None:
                intent = {INTENT_NAME_KEY: self.intent, PREDICTED_CONFIDENCE_KEY: 1.0}
                message.set(INTENT, intent, add_to_output=True)
                message.set(INTENT_RANKING_KEY, [intent, *(message.get(INTENT_RANKING_KEY) or [])], add_to_output=True)
        return messages
