"""LinearIntentClassifier: intents and FAQ answers from one model, in Rasa's output format."""

from __future__ import annotations

import copy
import json
import os
from typing import Any, Dict, List, Optional

import pytest
import skops.io as sio
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import RasaException
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.preprocessing import FunctionTransformer

from bot.nlu.linear_intent_classifier import LinearIntentClassifier

# Most tests check the output format and persistence, which do not depend on the
# sentence embedding; leaving it out keeps them fast. Tests parametrized over
# EMBEDDINGS run with the default configuration too.
FAST = {"sentence_embeddings": False}
EMBEDDINGS = [pytest.param(FAST, id="tf-idf only"), pytest.param({}, id="default config")]


def _config(**config: Any) -> Dict[str, Any]:
    return {**LinearIntentClassifier.get_default_config(), **FAST, **config}


def _classifier(
    model_storage: LocalModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    **config: Any,
) -> LinearIntentClassifier:
    return LinearIntentClassifier.create(_config(**config), model_storage, resource, execution_context)


def _trained(
    model_storage: LocalModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    training_data: TrainingData,
    **config: Any,
) -> LinearIntentClassifier:
    classifier = _classifier(model_storage, resource, execution_context, **config)
    classifier.train(training_data)
    return classifier


def _parse(classifier: LinearIntentClassifier, text: str) -> Message:
    message = Message(data={"text": text})
    classifier.process([message])
    return message


@pytest.mark.parametrize(
    "text, intent, answer",
    [
        ("is mdma legal in the us", "faq", "faq/legal_status"),
        ("what is ptsd exactly", "faq", "faq/what_is_ptsd"),
        ("is the treatment safe", "faq", "faq/is_it_safe"),
        ("hello there", "greet", None),
        ("bye, see you", "goodbye", None),
    ],
)
def test_process_sets_intent_and_ranking(
    model_storage, resource, execution_context, training_data, text: str, intent: str, answer: Optional[str]
):
    classifier = _trained(model_storage, resource, execution_context, training_data)

    message = _parse(classifier, text)

    assert message.get("intent")["name"] == intent
    ranking = message.get("intent_ranking")
    assert [r["name"] for r in ranking][0] == intent
    assert {r["name"] for r in ranking} == {"greet", "goodbye", "faq"}
    confidences = [r["confidence"] for r in ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert sum(confidences) == pytest.approx(1.0)
    assert message.get("intent")["confidence"] == pytest.approx(confidences[0])
    if answer is not None:
        selected = message.get("response_selector")["faq"]["response"]
        assert selected["intent_response_key"] == answer
        assert selected["utter_action"] == f"utter_{answer}"


@pytest.mark.parametrize("config", EMBEDDINGS)
def test_response_selector_has_response_selector_format(
    model_storage, resource, execution_context, training_data, faq_responses, config: Dict[str, Any]
):
    classifier = _trained(model_storage, resource, execution_context, training_data, **config)

    selector = _parse(classifier, "is mdma legal in the us").get("response_selector")

    assert selector["all_retrieval_intents"] == ["faq"]
    faq = selector["faq"]
    assert faq["response"]["responses"] == faq_responses["utter_faq/legal_status"]
    assert faq["response"]["utter_action"] == "utter_faq/legal_status"
    ranking = faq["ranking"]
    assert [r["intent_response_key"] for r in ranking][0] == "faq/legal_status"
    assert {r["intent_response_key"] for r in ranking} == {"faq/legal_status", "faq/what_is_ptsd", "faq/is_it_safe"}
    assert all(set(r) == {"id", "confidence", "intent_response_key"} for r in ranking)
    confidences = [r["confidence"] for r in ranking]
    assert confidences == sorted(confidences, reverse=True)
    # Confidences are conditional on the intent being `faq`, like ResponseSelector's.
    assert sum(confidences) == pytest.approx(1.0)
    assert faq["response"]["confidence"] == pytest.approx(confidences[0])


def test_predictions_are_output_properties(model_storage, resource, execution_context, training_data):
    classifier = _trained(model_storage, resource, execution_context, training_data)

    output = _parse(classifier, "is mdma legal").as_dict(only_output_properties=True)

    assert {"intent", "intent_ranking", "response_selector"} <= set(output)


def test_process_removes_nothing_already_on_the_message(model_storage, resource, execution_context, training_data):
    classifier = _trained(model_storage, resource, execution_context, training_data)
    entities = [{"entity": "risk_level", "value": "urgent", "start": 0, "end": 2}]
    message = Message(data={"text": "is mdma legal", "entities": entities, "custom": {"kept": True}})

    classifier.process([message])

    assert message.get("custom") == {"kept": True}
    assert message.get("entities") == entities
    assert message.get("text") == "is mdma legal"


@pytest.mark.parametrize("config", EMBEDDINGS)
def test_process_handles_several_messages_and_empty_text(
    model_storage, resource, execution_context, training_data, config: Dict[str, Any]
):
    classifier = _trained(model_storage, resource, execution_context, training_data, **config)
    messages = [Message(data={"text": "is mdma legal"}), Message(data={"text": ""}), Message(data={"text": "hi"})]

    returned = classifier.process(messages)

    assert returned == messages
    assert [m.get("intent")["name"] for m in messages][0] == "faq"
    assert [m.get("intent")["name"] for m in messages][2] == "greet"
    assert messages[1].get("intent")["name"] in {"faq", "greet", "goodbye"}


def test_untrained_classifier_leaves_messages_alone(model_storage, resource, execution_context):
    classifier = _classifier(model_storage, resource, execution_context)
    message = Message(data={"text": "is mdma legal", "intent": {"name": "greet", "confidence": 0.3}})

    classifier.process([message])

    assert message.get("intent") == {"name": "greet", "confidence": 0.3}
    assert message.get("response_selector") is None


@pytest.mark.parametrize("config", EMBEDDINGS)
def test_persist_and_load_give_the_same_predictions(
    model_storage, resource, execution_context, training_data, config: Dict[str, Any]
):
    texts = ["is mdma legal in the us", "what is ptsd", "hello", "is it dangerous", "something unrelated"]
    trained = _trained(model_storage, resource, execution_context, training_data, **config)
    before = [_parse(trained, text).as_dict(only_output_properties=True) for text in texts]

    loaded = LinearIntentClassifier.load(_config(**config), model_storage, resource, execution_context)
    after = [_parse(loaded, text).as_dict(only_output_properties=True) for text in texts]

    assert loaded is not trained
    assert loaded.responses == trained.responses
    assert _rounded(after) == _rounded(before)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def test_load_refuses_a_model_file_with_unexpected_types(model_storage, resource, execution_context, training_data):
    _trained(model_storage, resource, execution_context, training_data)
    # Tamper with every saved skops file: add a transformer that would call os.system.
    with model_storage.write_to(resource) as directory:
        saved = sorted(directory.glob("*.skops"))
        for path in saved:
            original = sio.load(path, trusted=True)
            sio.dump({"original": original, "tampered": FunctionTransformer(func=os.system)}, path)
    assert saved, "the classifier saved no skops file"

    with pytest.raises(RasaException, match="unexpected types.*system"):
        LinearIntentClassifier.load(_config(), model_storage, resource, execution_context)


def test_load_accepts_its_own_model_file(model_storage, resource, execution_context, training_data):
    _trained(model_storage, resource, execution_context, training_data)

    loaded = LinearIntentClassifier.load(_config(), model_storage, resource, execution_context)

    assert _parse(loaded, "is mdma legal").get("intent")["name"] == "faq"


@pytest.mark.parametrize("ranking_length", [1, 2])
def test_ranking_length_limits_both_rankings(
    model_storage, resource, execution_context, training_data, ranking_length: int
):
    classifier = _trained(model_storage, resource, execution_context, training_data, ranking_length=ranking_length)

    message = _parse(classifier, "is mdma legal")

    assert len(message.get("intent_ranking")) == ranking_length
    assert message.get("intent")["name"] == "faq"
    assert len(message.get("response_selector")["faq"]["ranking"]) == ranking_length
    assert message.get("response_selector")["faq"]["response"]["intent_response_key"] == "faq/legal_status"


def test_ranking_length_zero_reports_everything(model_storage, resource, execution_context, training_data):
    # Rasa's classifiers and ResponseSelector treat ranking_length 0 as "no limit".
    classifier = _trained(model_storage, resource, execution_context, training_data, ranking_length=0)

    message = _parse(classifier, "is mdma legal")

    assert message.get("intent")["name"] == "faq"
    assert len(message.get("intent_ranking")) == 3
    assert len(message.get("response_selector")["faq"]["ranking"]) == 3


def test_only_retrieval_answers_still_rank_the_answers(model_storage, resource, execution_context, training_data_with):
    data = training_data_with(
        {
            "faq/legal_status": ["is mdma legal", "legal status of mdma", "is it approved"],
            "faq/what_is_ptsd": ["what is ptsd", "define ptsd", "explain ptsd"],
        }
    )
    classifier = _trained(model_storage, resource, execution_context, data)

    message = _parse(classifier, "what is ptsd")

    assert message.get("intent") == {"name": "faq", "confidence": pytest.approx(1.0)}
    assert message.get("response_selector")["faq"]["response"]["utter_action"] == "utter_faq/what_is_ptsd"


@pytest.mark.parametrize(
    "examples",
    [
        pytest.param({}, id="no examples"),
        pytest.param({"greet": ["hi", "hello", "hey"]}, id="one intent"),
        pytest.param({"faq/legal_status": ["is mdma legal", "is it approved"]}, id="one answer"),
    ],
)
def test_training_needs_two_labels(
    model_storage, resource, execution_context, training_data_with, examples: Dict[str, List[str]]
):
    classifier = _classifier(model_storage, resource, execution_context)

    with pytest.raises(RasaException, match="at least two"):
        classifier.train(training_data_with(examples))


def test_training_keeps_answers_for_the_selector(
    model_storage, resource, execution_context, training_data, faq_responses
):
    classifier = _trained(model_storage, resource, execution_context, copy.deepcopy(training_data))

    assert classifier.responses == {key[len("utter_") :]: value for key, value in faq_responses.items()}


def test_load_refuses_a_model_trained_with_another_sentence_encoder(
    model_storage, resource, execution_context, training_data
):
    """Vectors from another encoder would quietly shift every prediction: retrain instead."""
    _trained(model_storage, resource, execution_context, training_data, sentence_embeddings=True)
    with model_storage.write_to(resource) as directory:
        (meta_file,) = [path for path in directory.glob("*.json")]
        meta = json.loads(meta_file.read_text())
        assert len(meta["sentence_encoder"]) == 64
        meta["sentence_encoder"] = "numpy-float32"
        meta_file.write_text(json.dumps(meta))

    with pytest.raises(RasaException, match="different sentence encoder.*make train"):
        LinearIntentClassifier.load(
            _config(sentence_embeddings=True), model_storage, resource, execution_context
        )
