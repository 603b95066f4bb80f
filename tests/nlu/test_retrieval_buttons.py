"""RetrievalIntentButtonResolver: `/faq/<topic>` payloads select exactly that answer."""

from __future__ import annotations

import copy
from typing import Any, Dict

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.retrieval_buttons import RetrievalIntentButtonResolver

GUESS: Dict[str, Any] = {
    "intent": {"name": "greet", "confidence": 0.42},
    "intent_ranking": [{"name": "greet", "confidence": 0.42}, {"name": "faq", "confidence": 0.4}],
}


def _trained(model_storage, resource, execution_context, training_data) -> RetrievalIntentButtonResolver:
    resolver = RetrievalIntentButtonResolver.create(
        RetrievalIntentButtonResolver.get_default_config(), model_storage, resource, execution_context
    )
    resolver.train(training_data)
    return resolver


def _guessed(text: str) -> Message:
    """A message as an earlier classifier left it."""
    return Message(data={"text": text, **copy.deepcopy(GUESS)})


@pytest.mark.parametrize("text", ["/faq/legal_status", "  /faq/legal_status  ", "/faq/legal_status\n"])
def test_payload_selects_that_answer(model_storage, resource, execution_context, training_data, faq_responses, text):
    resolver = _trained(model_storage, resource, execution_context, training_data)
    message = _guessed(text)

    resolver.process([message])

    assert message.get("intent") == {"name": "faq", "confidence": 1.0}
    assert message.get("intent_ranking") == [{"name": "faq", "confidence": 1.0}]
    selector = message.get("response_selector")
    assert selector["all_retrieval_intents"] == ["faq"]
    assert selector["faq"]["response"] == {
        "responses": faq_responses["utter_faq/legal_status"],
        "confidence": 1.0,
        "intent_response_key": "faq/legal_status",
        "utter_action": "utter_faq/legal_status",
    }
    assert selector["faq"]["ranking"] == [{"id": None, "confidence": 1.0, "intent_response_key": "faq/legal_status"}]
    assert {"intent", "intent_ranking", "response_selector"} <= set(message.as_dict(only_output_properties=True))


def test_payload_replaces_the_classifiers_answer_and_keeps_the_rest(
    model_storage, resource, execution_context, training_data
):
    resolver = _trained(model_storage, resource, execution_context, training_data)
    other_selector = {"response": {"utter_action": "utter_chitchat/weather"}, "ranking": []}
    message = _guessed("/faq/what_is_ptsd")
    message.set("custom", {"kept": True})
    message.set(
        "response_selector",
        {
            "all_retrieval_intents": ["chitchat", "faq"],
            "faq": {"response": {"utter_action": "utter_faq/legal_status"}, "ranking": []},
            "chitchat": other_selector,
        },
    )

    resolver.process([message])

    selector = message.get("response_selector")
    assert selector["faq"]["response"]["utter_action"] == "utter_faq/what_is_ptsd"
    assert selector["chitchat"] == other_selector
    assert selector["all_retrieval_intents"] == ["chitchat", "faq"]
    assert message.get("custom") == {"kept": True}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("/faq/nope", id="unknown answer"),
        pytest.param("/faq/", id="no answer"),
        pytest.param("/greet", id="plain intent payload"),
        pytest.param("/greet/legal_status", id="unknown retrieval intent"),
        pytest.param("/faq/legal_status/extra", id="extra path"),
        pytest.param("/faq/legal_status@0.5", id="confidence suffix"),
        pytest.param("faq/legal_status", id="no slash"),
        pytest.param("tell me about /faq/legal_status", id="payload inside text"),
        pytest.param("is mdma legal", id="plain text"),
        pytest.param("", id="empty text"),
    ],
)
def test_other_messages_are_untouched(model_storage, resource, execution_context, training_data, text: str):
    resolver = _trained(model_storage, resource, execution_context, training_data)
    message = _guessed(text)
    before = copy.deepcopy(message.data)

    resolver.process([message])

    assert message.data == before


def test_only_retrieval_answers_are_remembered(model_storage, resource, execution_context, training_data):
    resolver = _trained(model_storage, resource, execution_context, training_data)

    assert set(resolver.responses) == {"faq/legal_status", "faq/what_is_ptsd", "faq/is_it_safe"}


def test_answers_round_trip_through_the_model_storage(
    model_storage, resource, execution_context, training_data, faq_responses
):
    _trained(model_storage, resource, execution_context, training_data)

    loaded = RetrievalIntentButtonResolver.load(
        RetrievalIntentButtonResolver.get_default_config(), model_storage, resource, execution_context
    )
    message = _guessed("/faq/is_it_safe")
    loaded.process([message])

    assert loaded.responses == {key[len("utter_") :]: value for key, value in faq_responses.items() if "/" in key}
    assert message.get("response_selector")["faq"]["response"]["utter_action"] == "utter_faq/is_it_safe"
    assert message.get("response_selector")["faq"]["response"]["responses"] == faq_responses["utter_faq/is_it_safe"]


def test_load_without_saved_answers_leaves_buttons_inert(model_storage, resource, execution_context):
    loaded = RetrievalIntentButtonResolver.load(
        RetrievalIntentButtonResolver.get_default_config(), model_storage, resource, execution_context
    )
    message = _guessed("/faq/legal_status")
    before = copy.deepcopy(message.data)

    loaded.process([message])

    assert message.data == before
