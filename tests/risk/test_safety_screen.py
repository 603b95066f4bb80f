"""Contract of the SafetyScreen Rasa component (pipeline: tests/configs/safety_screen.yml).

SafetyScreen is built the way Rasa builds it from that pipeline, then fed messages
carrying what the components before it leave there (tokens, features, the
classifier's intents, ranking and FAQ answer), set by hand so that no classifier
has to be trained here. tests/configs/test_component_configs.py trains the same
pipeline end to end.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import rasa.shared.utils.io
from rasa.engine.graph import ExecutionContext, GraphComponent, GraphModelConfiguration, GraphSchema
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.engine.validation import validate
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import (
    CountVectorsFeaturizer,
)
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.data import TrainingType
from rasa.shared.nlu.constants import (
    ENTITIES,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    RESPONSE_SELECTOR,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.linear_intent_classifier import LinearIntentClassifier
from bot.nlu.safety_screen import SafetyScreen
from bot.risk import RiskScreen

CONFIG_PATH = Path(__file__).parents[1] / "configs" / "safety_screen.yml"
TRAINING_TEXTS = [
    "what is mdma",
    "how long is a session",
    "hello",
    "I want to die",
    "can you die from mdma",
]


@pytest.fixture(scope="module")
def model_configuration() -> GraphModelConfiguration:
    config = rasa.shared.utils.io.read_config_file(str(CONFIG_PATH))
    return DefaultV1Recipe().graph_config_for_recipe(config, {}, TrainingType.NLU)


@pytest.fixture(scope="module")
def screen_config(model_configuration: GraphModelConfiguration) -> Dict[str, Any]:
    node = next(n for n in model_configuration.predict_schema.nodes.values() if n.uses is SafetyScreen)
    return {**SafetyScreen.get_default_config(), **node.config}


@pytest.fixture(scope="module")
def component(screen_config: Dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> GraphComponent:
    # Built the way Rasa builds it at prediction time: `load`, which calls `create`.
    return SafetyScreen.load(
        screen_config,
        LocalModelStorage(tmp_path_factory.mktemp("model_storage")),
        Resource("safety_screen"),
        ExecutionContext(GraphSchema({})),
    )


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> List[GraphComponent]:
    """A tokenizer and a featurizer, so that messages carry real tokens and features."""
    storage = LocalModelStorage(tmp_path_factory.mktemp("upstream_storage"))
    context = ExecutionContext(GraphSchema({}))
    tokenizer = WhitespaceTokenizer.create(
        WhitespaceTokenizer.get_default_config(), storage, Resource("tokenizer"), context
    )
    featurizer = CountVectorsFeaturizer.create(
        CountVectorsFeaturizer.get_default_config(), storage, Resource("featurizer"), context
    )
    examples = tokenizer.process([Message(data={TEXT: text}) for text in TRAINING_TEXTS])
    featurizer.train(TrainingData(training_examples=examples))
    return [tokenizer, featurizer]


def _message(
    upstream: List[GraphComponent],
    text: Optional[str],
    ranking: List[Dict[str, Any]],
    entities: Optional[List[Dict[str, Any]]] = None,
) -> Message:
    """A message as the classifiers before SafetyScreen would leave it."""
    message = Message(data={TEXT: text} if text is not None else {})
    if text:
        for step in upstream:
            step.process([message])
    if ranking:
        message.set(INTENT, dict(ranking[0]), add_to_output=True)
        message.set(INTENT_RANKING_KEY, [dict(r) for r in ranking], add_to_output=True)
        message.set(RESPONSE_SELECTOR, copy.deepcopy(FAQ_ANSWER), add_to_output=True)
    if entities is not None:
        message.set(ENTITIES, entities, add_to_output=True)
    return message


def _intent(name: str, confidence: float) -> Dict[str, Any]:
    return {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: confidence}


FAQ_RANKING = [
    _intent("faq", 0.81),
    _intent("risk_priority", 0.11),
    _intent("greet", 0.05),
    _intent("risk_urgent", 0.03),
]
FAQ_ANSWER = {
    "all_retrieval_intents": ["faq"],
    "faq": {
        "response": {
            "responses": [{"text": "MDMA is a synthetic drug."}],
            "confidence": 0.7,
            "intent_response_key": "faq/what_is_mdma",
            "utter_action": "utter_faq/what_is_mdma",
        },
        "ranking": [{"intent_response_key": "faq/what_is_mdma", "confidence": 0.7}],
    },
}
USER_ENTITY = {"entity": "topic", "value": "mdma", "start": 0, "end": 4, "extractor": "DIET"}


def _assert_nothing_removed(before: Message, after: Message) -> None:
    assert set(before.data) <= set(after.data)
    assert before.output_properties <= after.output_properties
    assert after.get(TEXT) == before.get(TEXT)
    assert len(after.features) == len(before.features)
    for feature_before, feature_after in zip(before.features, after.features, strict=True):
        assert feature_before.fingerprint() == feature_after.fingerprint()
    assert after.get(ENTITIES, [])[: len(before.get(ENTITIES, []))] == before.get(ENTITIES, [])
    assert after.get(RESPONSE_SELECTOR) == before.get(RESPONSE_SELECTOR)
    names_before = {r[INTENT_NAME_KEY] for r in before.get(INTENT_RANKING_KEY) or []}
    names_after = {r[INTENT_NAME_KEY] for r in after.get(INTENT_RANKING_KEY) or []}
    assert names_before <= names_after
    for key, value in before.data.items():
        if key not in (INTENT, INTENT_RANKING_KEY, ENTITIES):
            assert after.data[key] is value or after.data[key] == value


def test_the_pipeline_validates(model_configuration: GraphModelConfiguration) -> None:
    validate(model_configuration)


def test_it_is_an_untrained_intent_classifier_run_last(
    model_configuration: GraphModelConfiguration, screen_config: Dict[str, Any]
) -> None:
    nodes = model_configuration.predict_schema.nodes
    node_name, node = next((k, n) for k, n in nodes.items() if n.uses is SafetyScreen)
    classifier = next(k for k, n in nodes.items() if n.uses is LinearIntentClassifier)
    assert (node.fn, node.constructor_name, node.resource) == ("process", "load", None)
    assert node.needs == {"messages": classifier}
    assert nodes["run_RegexMessageHandler"].needs == {"messages": node_name}
    assert not any(n.uses is SafetyScreen for n in model_configuration.train_schema.nodes.values())
    assert screen_config["risk_intent_threshold"] == 0.3


def test_default_config_is_documented() -> None:
    defaults = SafetyScreen.get_default_config()
    assert defaults == {
        "risk_intent_threshold": 0.3,
        "urgent_intent": "risk_urgent",
        "priority_intent": "risk_priority",
        "patterns_path": None,
    }
    docstring = SafetyScreen.get_default_config.__doc__ or ""
    assert all(key in docstring for key in defaults)


@pytest.mark.parametrize(
    "text, intent, level, category, words",
    [
        ("I want to kill myself", "risk_urgent", "urgent", "suicide", "I want to kill myself"),
        ("ok. I took molly and my chest hurts", "risk_urgent", "urgent", "medical_emergency", "my chest hurts"),
        ("I'm not ok, I want to die", "risk_priority", "priority", "suicide", "I want to die"),
        ("I don't feel safe at home", "risk_priority", "priority", "abuse_danger", "I don't feel safe at home"),
    ],
)
def test_screen_match_overrides_the_intent_and_adds_entities(
    component: SafetyScreen,
    upstream: List[GraphComponent],
    text: str,
    intent: str,
    level: str,
    category: str,
    words: str,
) -> None:
    message = _message(upstream, text, FAQ_RANKING, entities=[dict(USER_ENTITY)])
    before = copy.deepcopy(message)

    [processed] = component.process([message])

    _assert_nothing_removed(before, processed)
    assert processed.get(INTENT) == _intent(intent, 1.0)
    ranking = processed.get(INTENT_RANKING_KEY)
    assert ranking[0] == _intent(intent, 1.0)
    assert [r[INTENT_NAME_KEY] for r in ranking].count(intent) == 1
    assert len(ranking) == len(FAQ_RANKING)
    added = processed.get(ENTITIES)[1:]
    assert [(e["entity"], e["value"], e["extractor"]) for e in added] == [
        ("risk_level", level, "SafetyScreen"),
        ("risk_category", category, "SafetyScreen"),
    ]
    for entity in added:
        assert text[entity["start"] : entity["end"]] == words
    output = processed.get("safety_screen")
    assert (output["level"], output["category"], output["source"]) == (level, category, "screen")
    assert output["rule"].startswith(f"{category}.")
    assert output["classifier_intent"] == FAQ_RANKING[0]
    assert {"safety_screen", INTENT, INTENT_RANKING_KEY, ENTITIES} <= processed.output_properties


@pytest.mark.parametrize(
    "ranking, expected_intent, level",
    [
        ([_intent("risk_priority", 0.62), _intent("faq", 0.2)], _intent("risk_priority", 0.62), "priority"),
        ([_intent("faq", 0.5), _intent("risk_urgent", 0.35)], _intent("risk_urgent", 0.35), "urgent"),
        (
            [_intent("nlu_fallback", 0.4), _intent("risk_priority", 0.3), _intent("faq", 0.3)],
            _intent("risk_priority", 0.3),
            "priority",
        ),
    ],
)
def test_a_ranked_risk_intent_is_promoted_when_the_screen_finds_nothing(
    component: SafetyScreen,
    upstream: List[GraphComponent],
    ranking: List[Dict[str, Any]],
    expected_intent: Dict[str, Any],
    level: str,
) -> None:
    text = "everything feels hopeless and I am so tired of it all"
    message = _message(upstream, text, ranking)
    before = copy.deepcopy(message)

    [processed] = component.process([message])

    _assert_nothing_removed(before, processed)
    assert processed.get(INTENT) == expected_intent
    assert processed.get(INTENT_RANKING_KEY)[0] == expected_intent
    assert len(processed.get(INTENT_RANKING_KEY)) == len(ranking)
    assert [(e["entity"], e["value"]) for e in processed.get(ENTITIES)] == [
        ("risk_level", level),
        ("risk_category", "suicide"),
    ]
    output = processed.get("safety_screen")
    assert (output["source"], output["rule"], output["level"]) == ("classifier", None, level)


def test_a_promoted_risk_without_cue_words_has_an_unspecified_category(
    component: SafetyScreen, upstream: List[GraphComponent]
) -> None:
    message = _message(upstream, "it is all too much today", [_intent("risk_priority", 0.5)])
    [processed] = component.process([message])
    assert [(e["entity"], e["value"]) for e in processed.get(ENTITIES)] == [
        ("risk_level", "priority"),
        ("risk_category", "unspecified"),
    ]


@pytest.mark.parametrize(
    "text, ranking",
    [
        # A general question stays a question, even if a classifier suspected risk.
        ("can you die from MDMA?", [_intent("faq", 0.5), _intent("risk_urgent", 0.45)]),
        ("what are the risks of overdose", [_intent("risk_urgent", 0.6), _intent("faq", 0.3)]),
        # A risk intent below the threshold is not promoted.
        ("it is all too much today", [_intent("faq", 0.7), _intent("risk_priority", 0.29)]),
        # No risk anywhere.
        ("how long does a session last?", FAQ_RANKING),
        ("hi", [_intent("greet", 0.99)]),
        ("this wait is killing me", [_intent("out_of_scope", 0.9)]),
    ],
)
def test_other_messages_are_left_untouched(
    component: SafetyScreen,
    upstream: List[GraphComponent],
    text: str,
    ranking: List[Dict[str, Any]],
) -> None:
    message = _message(upstream, text, ranking, entities=[dict(USER_ENTITY)])
    before = copy.deepcopy(message)

    [processed] = component.process([message])

    assert processed.data == before.data
    assert processed.output_properties == before.output_properties
    assert processed.get("safety_screen") is None


@pytest.mark.parametrize("text", [None, "", "   ", "\x00\x01", "\U0001f600"])
def test_empty_or_odd_text_does_not_crash(
    component: SafetyScreen, upstream: List[GraphComponent], text: Optional[str]
) -> None:
    message = _message(upstream, text, [_intent("risk_urgent", 0.9)])
    before = copy.deepcopy(message)
    [processed] = component.process([message])
    if text is None or not text.strip():
        assert processed.data == before.data
    assert processed.get(INTENT) is not None


def test_a_message_without_classifier_output_is_still_screened(
    component: SafetyScreen, upstream: List[GraphComponent]
) -> None:
    message = _message(upstream, "I want to die", ranking=[])
    [processed] = component.process([message])
    assert processed.get(INTENT) == _intent("risk_priority", 1.0)
    assert processed.get(INTENT_RANKING_KEY) == [_intent("risk_priority", 1.0)]


def test_a_batch_is_screened_message_by_message(component: SafetyScreen, upstream: List[GraphComponent]) -> None:
    messages = [
        _message(upstream, "what is mdma?", FAQ_RANKING),
        _message(upstream, "my friend overdosed and won't wake up", FAQ_RANKING),
    ]
    processed = component.process(messages)
    assert [m.get(INTENT)[INTENT_NAME_KEY] for m in processed] == ["faq", "risk_urgent"]


def test_configured_intent_names_are_used(upstream: List[GraphComponent], screen: RiskScreen) -> None:
    custom = SafetyScreen({"urgent_intent": "crisis_now", "priority_intent": "crisis_soon"}, screen=screen)
    [processed] = custom.process([_message(upstream, "I want to die", FAQ_RANKING)])
    assert processed.get(INTENT) == _intent("crisis_soon", 1.0)
