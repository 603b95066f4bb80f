"""Contract tests: each custom component's minimal pipeline validates, trains and parses.

Each YAML file next to this module is the smallest pipeline a component runs in.
Training uses Rasa's own `train_nlu` on a tiny data file, so the recipe, graph
validation (signatures and type hints), persistence and loading are the real ones.
Rasa 3.6 does not check `required_components` of components that are not trainable
in an NLU-only graph, so that contract is covered by the unit tests instead.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Type

import pytest
from rasa.core.agent import Agent
from rasa.core.channels.channel import UserMessage
from rasa.engine.constants import PLACEHOLDER_MESSAGE
from rasa.engine.graph import GraphComponent
from rasa.engine.recipes.recipe import Recipe
from rasa.engine.validation import validate
from rasa.model_training import train_nlu
from rasa.shared.data import TrainingType
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.utils.io import read_model_configuration

import bot.nlu
from bot.nlu.contact_detail_classifier import ContactDetailClassifier
from bot.nlu.faq_confidence_gate import FaqConfidenceGate
from bot.nlu.linear_intent_classifier import LinearIntentClassifier
from bot.nlu.no_words_classifier import NoWordsClassifier
from bot.nlu.retrieval_buttons import RetrievalIntentButtonResolver
from bot.nlu.safety_screen import SafetyScreen

CONFIGS = Path(__file__).parent

# "tell me more about that one" is an example of two answers on purpose: a message
# that cannot tell them apart.
TINY_NLU = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - hi there
    - good morning
- intent: goodbye
  examples: |
    - bye
    - see you later
    - goodbye for now
- intent: faq/legal_status
  examples: |
    - is mdma legal
    - is mdma therapy approved by the fda
    - what is the legal status of mdma
    - tell me more about that one
- intent: faq/what_is_ptsd
  examples: |
    - what is ptsd
    - define post traumatic stress disorder
    - explain ptsd to me
    - tell me more about that one
responses:
  utter_faq/legal_status:
  - text: It is not an approved treatment in the US.
  utter_faq/what_is_ptsd:
  - text: PTSD is a mental health condition.
"""

COMPONENTS: Dict[str, Type] = {
    "contact_detail_classifier": ContactDetailClassifier,
    "linear_intent_classifier": LinearIntentClassifier,
    "faq_confidence_gate": FaqConfidenceGate,
    "retrieval_buttons": RetrievalIntentButtonResolver,
    "safety_screen": SafetyScreen,
    "no_words_classifier": NoWordsClassifier,
}


def _config_path(name: str) -> Path:
    return CONFIGS / f"{name}.yml"


@pytest.fixture(scope="module")
def trained_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Agent]]:
    """Trains each config at most once in this module and loads it like `rasa run` does.

    Training is the slow part and parsing never changes a trained model, so the
    agents are shared by this module's tests (an exception to fresh fixtures).
    """
    agents: Dict[str, Agent] = {}
    base = tmp_path_factory.mktemp("configs")
    with pytest.MonkeyPatch.context() as monkeypatch:
        # No shared training cache (results would depend on earlier runs), no telemetry.
        monkeypatch.setenv("RASA_CACHE_DIRECTORY", str(base / "cache"))
        monkeypatch.setenv("RASA_MAX_CACHE_SIZE", "0")
        monkeypatch.setenv("RASA_TELEMETRY_ENABLED", "false")

        def train(name: str) -> Agent:
            if name not in agents:
                directory = base / name
                directory.mkdir()
                data = directory / "nlu.yml"
                data.write_text(TINY_NLU, encoding="utf-8")
                model = train_nlu(str(_config_path(name)), str(data), output=str(directory / "models"))
                assert model is not None and Path(model).is_file()
                agents[name] = Agent.load(model)
            return agents[name]

        yield train


def _parse(agent: Agent, text: str) -> Dict[str, Any]:
    return asyncio.run(agent.parse_message(text))


def _run_up_to(agent: Agent, component: Type, text: str) -> Message:
    """Runs the trained NLU graph up to `component`, before Rasa's RegexMessageHandler."""
    schema = agent.processor.model_metadata.predict_schema
    [node] = [name for name, node in schema.nodes.items() if node.uses is component and name.startswith("run_")]
    results = agent.processor.graph_runner.run(inputs={PLACEHOLDER_MESSAGE: [UserMessage(text)]}, targets=[node])
    [message] = results[node]
    return message


def _custom_components() -> Dict[str, Type]:
    """Every graph component defined in `bot.nlu`, by module name."""
    found: Dict[str, Type] = {}
    for module_info in pkgutil.iter_modules(bot.nlu.__path__):
        module = importlib.import_module(f"bot.nlu.{module_info.name}")
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, GraphComponent) and value.__module__ == module.__name__:
                found[module_info.name] = value
    return found


def test_every_custom_component_has_a_config():
    assert _custom_components() == COMPONENTS
    assert {path.stem for path in CONFIGS.glob("*.yml")} == set(COMPONENTS)


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_config_passes_recipe_and_graph_validation(name: str):
    config = read_model_configuration(_config_path(name))
    recipe = Recipe.recipe_for_name(config["recipe"])

    model_configuration = recipe.graph_config_for_recipe(config, {}, training_type=TrainingType.NLU)
    validate(model_configuration)

    used = {node.uses for node in model_configuration.predict_schema.nodes.values()}
    assert COMPONENTS[name] in used


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_config_trains_and_parses(name: str, trained_agent: Callable[[str], Agent]):
    agent = trained_agent(name)

    question = _parse(agent, "is mdma legal in the us")
    greeting = _parse(agent, "hello")

    assert {"text", "intent", "intent_ranking", "entities", "response_selector"} <= set(question)
    assert question["intent"]["name"] == "faq"
    assert question["response_selector"]["faq"]["response"]["utter_action"] == "utter_faq/legal_status"
    assert greeting["intent"]["name"] == "greet"
    ranking_names: List[str] = [entry["name"] for entry in question["intent_ranking"]]
    assert set(ranking_names) <= {"faq", "greet", "goodbye"}


def test_no_words_config_answers_emoji_with_no_words(trained_agent: Callable[[str], Agent]):
    agent = trained_agent("no_words_classifier")

    result = _parse(agent, "🙂🙂")

    assert result["intent"] == {"name": "no_words", "confidence": 1.0}


@pytest.mark.parametrize("text", ["please call me on +44 7700 900123", "my email is sam@example.org"])
def test_contact_detail_config_recognises_contact_details(trained_agent: Callable[[str], Agent], text: str):
    agent = trained_agent("contact_detail_classifier")

    result = _parse(agent, text)

    assert result["intent"] == {"name": "provide_contact", "confidence": 1.0}
    assert result["intent_ranking"][0]["name"] == "provide_contact"


def test_safety_screen_config_flags_a_person_at_risk(trained_agent: Callable[[str], Agent]):
    agent = trained_agent("safety_screen")

    result = _parse(agent, "I'm going to kill myself tonight")

    assert result["intent"] == {"name": "risk_urgent", "confidence": 1.0}
    assert result["intent_ranking"][0]["name"] == "risk_urgent"
    entities = {entity["entity"]: entity["value"] for entity in result["entities"]}
    assert entities == {"risk_level": "urgent", "risk_category": "suicide"}
    # The classifier's answer is still there: the screen removes nothing.
    assert "response_selector" in result


def test_retrieval_buttons_config_selects_the_payloads_answer(trained_agent: Callable[[str], Agent]):
    agent = trained_agent("retrieval_buttons")

    message = _run_up_to(agent, RetrievalIntentButtonResolver, "/faq/what_is_ptsd")

    assert message.get("intent") == {"name": "faq", "confidence": 1.0}
    selected = message.get("response_selector")["faq"]["response"]
    assert selected["utter_action"] == "utter_faq/what_is_ptsd"
    assert selected["responses"] == [{"text": "PTSD is a mental health condition."}]


def test_faq_confidence_gate_config_lets_a_sure_answer_through(trained_agent: Callable[[str], Agent]):
    agent = trained_agent("faq_confidence_gate")

    message = _run_up_to(agent, FaqConfidenceGate, "what is the legal status of mdma")

    assert message.get("intent")["name"] == "faq"
    assert message.get("response_selector")["faq"]["response"]["utter_action"] == "utter_faq/legal_status"


def test_faq_confidence_gate_config_asks_when_two_answers_tie(trained_agent: Callable[[str], Agent]):
    agent = trained_agent("faq_confidence_gate")

    result = _parse(agent, "tell me more about that one")

    assert result["intent"]["name"] == "nlu_fallback"
    assert result["intent_ranking"][0]["name"] == "nlu_fallback"
    ranked = {entry["intent_response_key"] for entry in result["response_selector"]["faq"]["ranking"][:2]}
    assert ranked == {"faq/legal_status", "faq/what_is_ptsd"}
