"""NoWordsClassifier: messages without letters or digits get `no_words`, others are untouched."""

from __future__ import annotations

import copy

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.no_words_classifier import NoWordsClassifier, has_words


def _classifier(model_storage, resource, execution_context, **config) -> NoWordsClassifier:
    return NoWordsClassifier.create(
        {**NoWordsClassifier.get_default_config(), **config}, model_storage, resource, execution_context
    )


def _guessed(text: str) -> Message:
    return Message(
        data={
            "text": text,
            "intent": {"name": "greet", "confidence": 0.4},
            "intent_ranking": [{"name": "greet", "confidence": 0.4}, {"name": "faq", "confidence": 0.35}],
            "response_selector": {"faq": {"response": {"utter_action": "utter_faq/legal_status"}, "ranking": []}},
        }
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="spaces"),
        pytest.param("\n\t", id="newline and tab"),
        pytest.param("🙂🙂", id="emoji"),
        pytest.param("?!", id="punctuation"),
        pytest.param("...", id="dots"),
        pytest.param("\u200b", id="zero-width space"),
        pytest.param("👍🏽 ❤️", id="emoji with modifiers"),
    ],
)
def test_messages_without_words_get_no_words(model_storage, resource, execution_context, text: str):
    classifier = _classifier(model_storage, resource, execution_context)
    message = _guessed(text)
    selector = copy.deepcopy(message.get("response_selector"))

    returned = classifier.process([message])

    assert returned == [message]
    assert message.get("intent") == {"name": "no_words", "confidence": 1.0}
    assert message.get("intent_ranking") == [{"name": "no_words", "confidence": 1.0}]
    assert message.get("response_selector") == selector
    assert {"intent", "intent_ranking"} <= set(message.as_dict(only_output_properties=True))


@pytest.mark.parametrize(
    "text",
    ["hi", "/faq/x", "/greet", "¿Qué es?", "MDMA", "2024", "ok 🙂", "ПТСР", "什么是创伤后应激障碍"],
)
def test_messages_with_words_are_untouched(model_storage, resource, execution_context, text: str):
    classifier = _classifier(model_storage, resource, execution_context)
    message = _guessed(text)
    before = copy.deepcopy(message.data)

    classifier.process([message])

    assert message.data == before


def test_intent_name_is_configurable(model_storage, resource, execution_context):
    classifier = _classifier(model_storage, resource, execution_context, intent="empty_message")
    message = _guessed("🙂")

    classifier.process([message])

    assert message.get("intent") == {"name": "empty_message", "confidence": 1.0}


@pytest.mark.parametrize("text, expected", [("", False), ("?!", False), ("a", True), ("٣", True), ("é", True)])
def test_has_words(text: str, expected: bool):
    assert has_words(text) is expected
