"""Fixtures for the custom NLU components: a real model storage and tiny training data."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

EXAMPLES = {
    "greet": ["hello", "hi there", "good morning", "hey, nice to meet you"],
    "goodbye": ["bye", "see you later", "goodbye for now", "talk to you soon"],
    "faq/legal_status": [
        "is mdma legal",
        "is mdma therapy approved by the fda",
        "what is the legal status of mdma",
        "is it against the law to use mdma",
    ],
    "faq/what_is_ptsd": [
        "what is ptsd",
        "define post traumatic stress disorder",
        "explain ptsd to me",
        "what does ptsd mean",
    ],
    "faq/is_it_safe": [
        "is mdma therapy safe",
        "how safe is the treatment",
        "is it dangerous to take mdma in therapy",
        "can the treatment harm me",
    ],
}

RESPONSES: Dict[str, List[Dict[str, Any]]] = {
    "utter_faq/legal_status": [{"text": "It is not an approved treatment.", "metadata": {"title": "Legal status"}}],
    "utter_faq/what_is_ptsd": [{"text": "PTSD is a mental health condition.", "metadata": {"title": "What PTSD is"}}],
    "utter_faq/is_it_safe": [{"text": "It is not risk-free.", "metadata": {"title": "Is it safe?"}}],
    "utter_greet": [{"text": "Hello!"}],
}


def example(text: str, label: str) -> Message:
    """A training message for an intent (`greet`) or a retrieval answer (`faq/legal_status`)."""
    data: Dict[str, Any] = {"text": text, "intent": label.split("/", 1)[0]}
    if "/" in label:
        data["intent_response_key"] = label
    return Message(data=data)


def make_training_data(examples: Optional[Dict[str, List[str]]] = None) -> TrainingData:
    """Tiny training data with intents, FAQ answers and their responses."""
    chosen = EXAMPLES if examples is None else examples
    messages = [example(text, label) for label, texts in chosen.items() for text in texts]
    return TrainingData(training_examples=messages, responses=copy.deepcopy(RESPONSES))


@pytest.fixture
def model_storage(tmp_path: Path) -> LocalModelStorage:
    """A real, empty model storage in a fresh directory."""
    return LocalModelStorage(tmp_path)


@pytest.fixture
def resource() -> Resource:
    """The resource a component persists into."""
    return Resource("component")


@pytest.fixture
def execution_context() -> ExecutionContext:
    """An execution context for a graph with no other nodes."""
    return ExecutionContext(GraphSchema({}), "test")


@pytest.fixture
def training_data() -> TrainingData:
    """Fresh tiny training data."""
    return make_training_data()


@pytest.fixture
def training_data_with() -> Callable[[Dict[str, List[str]]], TrainingData]:
    """Builds training data from other examples, with the same responses."""
    return make_training_data


@pytest.fixture
def faq_responses() -> Dict[str, List[Dict[str, Any]]]:
    """A copy of the responses the training data carries."""
    return copy.deepcopy(RESPONSES)
