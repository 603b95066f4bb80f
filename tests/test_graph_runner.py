"""SequentialGraphRunner gives the trained model's exact results, without dask."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, List

import pytest
import rasa.core.processor
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.core.events import ActionExecuted

from bot.evaluation.runner import latest_model
from bot.graph_runner import SequentialGraphRunner

ROOT = Path(__file__).resolve().parents[1]

MESSAGES = [
    "hello",
    "Is MDMA-assisted therapy legal in the US?",
    "/faq/legal_status",
    "what are the side effects",
    "can I talk to a real person",
    "I want to end my life",
    "yes",
    "🙂",
    "",
    "blorp fnarg zzz",
    "thanks, bye",
]


async def _agent(runner: type, monkeypatch: pytest.MonkeyPatch) -> Any:
    from rasa.core.agent import load_agent
    from rasa.core.utils import AvailableEndpoints
    from rasa.utils.endpoints import EndpointConfig

    monkeypatch.setattr(rasa.core.processor, "DaskGraphRunner", runner)
    endpoints = AvailableEndpoints(nlg=EndpointConfig(type="bot.nlg.RegionalResponseGenerator"))
    agent = await load_agent(model_path=str(latest_model(ROOT / "models")), endpoints=endpoints)
    assert type(agent.processor.graph_runner) is runner
    return agent


async def _observe(agent: Any) -> Dict[str, List[Any]]:
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    parses = [await agent.parse_message(text) for text in MESSAGES]
    for text in MESSAGES:
        await agent.handle_message(UserMessage(text, CollectingOutputChannel(), "runner-check"))
    tracker = await agent.tracker_store.retrieve_full_tracker("runner-check")
    actions = [event.action_name for event in tracker.events if isinstance(event, ActionExecuted)]
    return {"parses": parses, "actions": actions}


def test_same_parses_and_actions_as_dask(monkeypatch: pytest.MonkeyPatch) -> None:
    async def both() -> List[Dict[str, List[Any]]]:
        observed = []
        for runner in (DaskGraphRunner, SequentialGraphRunner):
            observed.append(await _observe(await _agent(runner, monkeypatch)))
        return observed

    with_dask, sequential = asyncio.run(both())

    assert sequential["parses"] == with_dask["parses"]
    assert sequential["actions"] == with_dask["actions"]
    assert "utter_faq" in sequential["actions"]
    assert "action_escalate_to_clinician" in sequential["actions"]


def test_an_input_named_like_a_node_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = asyncio.run(_agent(SequentialGraphRunner, monkeypatch))
    runner = agent.processor.graph_runner
    node = next(iter(runner._graph_schema.nodes))

    with pytest.raises(GraphRunError, match="clashes with a node name"):
        runner.run(inputs={"__message__": node})
