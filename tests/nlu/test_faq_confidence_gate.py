"""FaqConfidenceGate: an unsure FAQ answer becomes `nlu_fallback`; everything else is left alone."""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.faq_confidence_gate import FaqConfidenceGate

ANSWERS = ["faq/legal_status", "faq/is_it_safe", "faq/what_is_ptsd"]


def _gate(
    model_storage, resource, execution_context, threshold: float = 0.5, ambiguity_threshold: float = 0.1, **config: Any
) -> FaqConfidenceGate:
    return FaqConfidenceGate.create(
        {
            **FaqConfidenceGate.get_default_config(),
            "threshold": threshold,
            "ambiguity_threshold": ambiguity_threshold,
            **config,
        },
        model_storage,
        resource,
        execution_context,
    )


def _selector(confidences: List[float], retrieval_intent: str = "faq") -> Dict[str, Any]:
    ranking = [
        {"id": None, "confidence": confidence, "intent_response_key": key}
        for confidence, key in zip(confidences, ANSWERS[: len(confidences)], strict=True)
    ]
    output: Dict[str, Any] = {"all_retrieval_intents": [retrieval_intent]}
    output[retrieval_intent] = {
        "response": {
            "responses": [{"text": "an answer"}],
            "confidence": confidences[0] if confidences else 0.0,
            "intent_response_key": ranking[0]["intent_response_key"] if ranking else None,
            "utter_action": f"utter_{ranking[0]['intent_response_key']}" if ranking else None,
        },
        "ranking": ranking,
    }
    return output


def _message(intent: str, confidences: Optional[List[float]], intent_confidence: float = 0.8) -> Message:
    data: Dict[str, Any] = {
        "text": "some question",
        "intent": {"name": intent, "confidence": intent_confidence},
        "intent_ranking": [
            {"name": intent, "confidence": intent_confidence},
            {"name": "greet", "confidence": round(1 - intent_confidence, 6)},
        ],
    }
    if confidences is not None:
        data["response_selector"] = _selector(confidences)
    return Message(data=data)


@pytest.mark.parametrize(
    "intent, confidences, threshold, ambiguity_threshold, falls_back",
    [
        pytest.param("faq", [0.9, 0.05], 0.5, 0.1, False, id="sure answer"),
        pytest.param("faq", [0.6, 0.45], 0.5, 0.1, False, id="clear enough gap"),
        pytest.param("faq", [0.5, 0.2], 0.5, 0.1, False, id="exactly at threshold"),
        pytest.param("faq", [0.8], 0.5, 0.1, False, id="single candidate"),
        pytest.param("faq", [0.4, 0.3], 0.5, 0.1, True, id="below threshold"),
        pytest.param("faq", [0.55, 0.5], 0.5, 0.1, True, id="ambiguous top two"),
        pytest.param("faq", [0.3, 0.05], 0.35, 0.05, True, id="below project threshold"),
        pytest.param("faq", [0.4, 0.36], 0.35, 0.05, True, id="ambiguous with project thresholds"),
        pytest.param("faq", [0.4, 0.3], 0.35, 0.05, False, id="sure with project thresholds"),
        pytest.param("faq", [], 0.5, 0.1, True, id="empty ranking"),
        pytest.param("faq", None, 0.5, 0.1, True, id="no selector output"),
        pytest.param("greet", [0.2, 0.19], 0.5, 0.1, False, id="other intent"),
        pytest.param("nlu_fallback", [0.2, 0.19], 0.5, 0.1, False, id="already a fallback"),
    ],
)
def test_gate_table(
    model_storage,
    resource,
    execution_context,
    intent: str,
    confidences: Optional[List[float]],
    threshold: float,
    ambiguity_threshold: float,
    falls_back: bool,
):
    gate = _gate(model_storage, resource, execution_context, threshold, ambiguity_threshold)
    message = _message(intent, confidences, intent_confidence=0.8)
    before = copy.deepcopy(message.data)

    returned = gate.process([message])

    assert returned == [message]
    # The selector's output stays, so the fallback action can offer the closest topics.
    assert message.get("response_selector") == before.get("response_selector")
    if falls_back:
        assert message.get("intent") == {"name": "nlu_fallback", "confidence": 0.8}
        assert message.get("intent_ranking") == [{"name": "nlu_fallback", "confidence": 0.8}, *before["intent_ranking"]]
        assert "intent" in message.as_dict(only_output_properties=True)
    else:
        assert message.data == before


def test_default_selector_key_is_used_when_there_is_no_faq_key(model_storage, resource, execution_context):
    gate = _gate(model_storage, resource, execution_context)
    message = _message("faq", None)
    message.set("response_selector", {"all_retrieval_intents": ["faq"], "default": _selector([0.9, 0.05])["faq"]})
    before = copy.deepcopy(message.data)

    gate.process([message])

    assert message.data == before


def test_existing_fallback_entry_is_not_duplicated_in_the_ranking(model_storage, resource, execution_context):
    gate = _gate(model_storage, resource, execution_context)
    message = _message("faq", [0.3, 0.29], intent_confidence=0.6)
    message.set(
        "intent_ranking",
        [{"name": "faq", "confidence": 0.6}, {"name": "nlu_fallback", "confidence": 0.4}],
    )

    gate.process([message])

    names = [entry["name"] for entry in message.get("intent_ranking")]
    assert names == ["nlu_fallback", "faq"]


def test_other_retrieval_intent_can_be_gated(model_storage, resource, execution_context):
    gate = _gate(model_storage, resource, execution_context, retrieval_intent="chitchat")
    unsure_chitchat = Message(
        data={
            "text": "hm",
            "intent": {"name": "chitchat", "confidence": 0.9},
            "response_selector": _selector([0.3, 0.2], "chitchat"),
        }
    )
    unsure_faq = _message("faq", [0.3, 0.2])
    faq_before = copy.deepcopy(unsure_faq.data)

    gate.process([unsure_chitchat, unsure_faq])

    assert unsure_chitchat.get("intent")["name"] == "nlu_fallback"
    assert unsure_faq.data == faq_before


def test_gate_needs_an_intent_classifier_before_it():
    from rasa.nlu.classifiers.classifier import IntentClassifier

    assert FaqConfidenceGate.required_components() == [IntentClassifier]
