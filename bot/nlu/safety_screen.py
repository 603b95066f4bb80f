"""Makes sure a person at risk is treated as at risk, whatever the classifiers said."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text, Type

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.constants import ENTITY_ATTRIBUTE_CONFIDENCE_TYPE
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from bot.risk import Level, RiskDecision, RiskScreen

logger = logging.getLogger(__name__)

SAFETY_SCREEN_KEY = "safety_screen"
RISK_LEVEL_ENTITY = "risk_level"
RISK_CATEGORY_ENTITY = "risk_category"
UNSPECIFIED_CATEGORY = "unspecified"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class SafetyScreen(GraphComponent, IntentClassifier):
    """Overrides the intent with a risk intent when a message shows risk.

    Place it last in the pipeline. For each message:
    - if the deterministic screen (`bot.risk`) finds risk, the intent becomes
      `risk_urgent` or `risk_priority` with confidence 1.0;
    - otherwise, if a classifier ranked a risk intent at or above
      `risk_intent_threshold` and the message is not a general question, that
      risk intent is promoted to the top, its confidence unchanged;
    - otherwise the message is left as it is.
    When it flags a message it adds the entities `risk_level` and `risk_category`
    and a `safety_screen` output with the decision (and the classifier's intent).
    It removes nothing: the risk intent's old ranking entry is replaced by the new
    one at the top, every other entry, entity and output stays.
    """

    @classmethod
    def required_components(cls) -> List[Type]:
        """Needs nothing before it: the screen tokenises the text itself."""
        return []

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Returns the default configuration.

        risk_intent_threshold: when a classifier's risk intents together reach
            this confidence, the likelier one is promoted to the top. Keep it below the FAQ
            threshold: a missed risk costs more than a false alarm.
        urgent_intent: the intent for urgent risk.
        priority_intent: the intent for risk that needs a clinician soon.
        patterns_path: a pattern file to use instead of the packaged
            `bot/risk/patterns.yml`.
        """
        return {
            "risk_intent_threshold": 0.3,
            "urgent_intent": "risk_urgent",
            "priority_intent": "risk_priority",
            "patterns_path": None,
        }

    def __init__(self, config: Dict[Text, Any], screen: Optional[RiskScreen] = None) -> None:
        """Builds the screen (spaCy pipeline and patterns) once, here."""
        config = {**self.get_default_config(), **config}
        self.risk_intent_threshold = float(config["risk_intent_threshold"])
        self.urgent_intent: Text = config["urgent_intent"]
        self.priority_intent: Text = config["priority_intent"]
        self._screen = screen or RiskScreen.load(config["patterns_path"])

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SafetyScreen:
        """Creates a new component (see parent class for full docstring)."""
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        """Flags the messages that show risk; leaves the others untouched."""
        for message in messages:
            text = message.get(TEXT)
            if not isinstance(text, str) or not text.strip():
                continue
            screening = self._screen.analyse(text)
            if screening.decision is not None:
                self._flag_from_screen(message, screening.decision)
                continue
            risk_intent = self._ranked_risk_intent(message)
            if risk_intent is not None and not screening.informational:
                category = screening.cue_category.value if screening.cue_category else UNSPECIFIED_CATEGORY
                self._flag_from_classifier(message, risk_intent, category, len(text))
        return messages

    def _intent_for(self, level: Level) -> Text:
        return self.urgent_intent if level is Level.URGENT else self.priority_intent

    def _ranked_risk_intent(self, message: Message) -> Optional[Dict[Text, Any]]:
        """The likelier risk intent, if the classifier's risk intents together reach the threshold.

        Urgent and priority risk share most of their words, so a classifier
        often splits its belief between them; their sum is what says "risk".
        """
        risk_names = {self.urgent_intent, self.priority_intent}
        scores: Dict[Text, float] = {}
        for entry in [message.get(INTENT) or {}, *(message.get(INTENT_RANKING_KEY) or [])]:
            name = entry.get(INTENT_NAME_KEY)
            if name in risk_names:
                scores[name] = max(scores.get(name, 0.0), float(entry.get(PREDICTED_CONFIDENCE_KEY) or 0.0))
        if not scores or sum(scores.values()) < self.risk_intent_threshold:
            return None
        name = max(scores, key=lambda n: scores[n])
        return {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: scores[name]}

    def _flag_from_screen(self, message: Message, decision: RiskDecision) -> None:
        intent = {INTENT_NAME_KEY: self._intent_for(decision.level), PREDICTED_CONFIDENCE_KEY: 1.0}
        previous = message.get(INTENT)
        self._put_intent_first(message, intent)
        self._add_entities(message, decision.level.value, decision.category.value, decision.start, decision.end)
        output = {**decision.as_dict(), "source": "screen", "classifier_intent": previous}
        message.set(SAFETY_SCREEN_KEY, output, add_to_output=True)
        logger.debug(f"Safety screen rule '{decision.rule}' flagged the message.")

    def _flag_from_classifier(
        self, message: Message, risk_intent: Dict[Text, Any], category: Text, length: int
    ) -> None:
        name = risk_intent[INTENT_NAME_KEY]
        level = Level.URGENT if name == self.urgent_intent else Level.PRIORITY
        intent = {
            INTENT_NAME_KEY: name,
            PREDICTED_CONFIDENCE_KEY: float(risk_intent.get(PREDICTED_CONFIDENCE_KEY) or 0.0),
        }
        previous = message.get(INTENT)
        self._put_intent_first(message, intent)
        self._add_entities(message, level.value, category, 0, length)
        output = {
            "level": level.value,
            "category": category,
            "rule": None,
            "start": 0,
            "end": length,
            "escalated_by": None,
            "source": "classifier",
            "classifier_intent": previous,
        }
        message.set(SAFETY_SCREEN_KEY, output, add_to_output=True)
        logger.debug(f"Safety screen promoted the classifier's '{name}' intent.")

    @staticmethod
    def _put_intent_first(message: Message, intent: Dict[Text, Any]) -> None:
        # The intent's own old entry makes way for the new one; every other stays.
        ranking = [
            entry
            for entry in message.get(INTENT_RANKING_KEY) or []
            if entry.get(INTENT_NAME_KEY) != intent[INTENT_NAME_KEY]
        ]
        message.set(INTENT, intent, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [dict(intent), *ranking], add_to_output=True)

    @staticmethod
    def _add_entities(message: Message, level: Text, category: Text, start: int, end: int) -> None:
        added = [
            {
                ENTITY_ATTRIBUTE_TYPE: entity,
                ENTITY_ATTRIBUTE_VALUE: value,
                ENTITY_ATTRIBUTE_START: start,
                ENTITY_ATTRIBUTE_END: end,
                ENTITY_ATTRIBUTE_CONFIDENCE_TYPE: 1.0,
                EXTRACTOR: SafetyScreen.__name__,
            }
            for entity, value in ((RISK_LEVEL_ENTITY, level), (RISK_CATEGORY_ENTITY, category))
        ]
        message.set(ENTITIES, [*(message.get(ENTITIES) or []), *added], add_to_output=True)
