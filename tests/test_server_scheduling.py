"""The Rasa server's turn scheduling and text preparation, with the trained model and a real action server on loopback.

`bot.rasa_server.install_turn_scheduler` changes only when a turn's work runs:
a request for a person, whose turn waits for the action server, is answered
before the messages that arrived after it, unless the action server hangs, in
which case the others are not held up. Sentence vectors are computed on a
worker thread before the turn, and the turn finds them ready.
"""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional

import pytest
from aiohttp import web
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.processor import MessageProcessor

from bot import rasa_server
from bot.turn_scheduler import TurnScheduler
from tests.escalation.receivers import free_port
from tests.servers import require_model

HUMAN_REQUEST = "can I talk to a real person"
FAQ_TEXTS = [
    "is mdma-assisted therapy legal in the us",
    "what is ptsd",
    "how long does a session last",
    "what are the side effects",
    "who can take part in the trials",
]


@pytest.fixture
def scheduled(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[TurnScheduler], TurnScheduler]]:
    """Installs a scheduler on Rasa's MessageProcessor for one test, then puts Rasa's methods back."""
    monkeypatch.setattr(MessageProcessor, "handle_message", MessageProcessor.__dict__["handle_message"])
    monkeypatch.setattr(MessageProcessor, "_send_bot_messages", MessageProcessor.__dict__["_send_bot_messages"])
    yield rasa_server.install_turn_scheduler


class ActionServer:
    """A real HTTP action server on loopback; `action_request_care_team` waits for `hold` first."""

    def __init__(self, hold: Callable[[], Awaitable[None]]) -> None:
        self.hold = hold
        self.port = free_port()
        self.called = asyncio.Event()
        self._runner: Optional[web.AppRunner] = None

    async def _webhook(self, request: web.Request) -> web.Response:
        body: Dict[str, Any] = await request.json()
        if body.get("next_action") == "action_request_care_team":
            self.called.set()
            await self.hold()
            return web.json_response({"events": [], "responses": []})
        return web.json_response({"events": [], "responses": []})

    async def __aenter__(self) -> "ActionServer":
        app = web.Application()
        app.router.add_post("/webhook", self._webhook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def _agent(action_port: Optional[int] = None) -> Any:
    from rasa.core.agent import load_agent
    from rasa.core.utils import AvailableEndpoints
    from rasa.utils.endpoints import EndpointConfig

    endpoints = AvailableEndpoints(
        nlg=EndpointConfig(type="bot.nlg.RegionalResponseGenerator"),
        action=EndpointConfig(url=f"http://127.0.0.1:{action_port}/webhook") if action_port else None,
        tracker_store=EndpointConfig(type="bot.tracker_store.LiveTrackerStore"),
    )
    return await load_agent(model_path=str(require_model()), endpoints=endpoints)


async def _finishing_order(agent: Any, server: ActionServer) -> List[str]:
    """Sends the request for a person, then, while its turn waits for the action server, five questions."""
    finished: List[str] = []

    async def say(sender: str, text: str) -> None:
        await agent.handle_message(UserMessage(text, CollectingOutputChannel(), sender))
        finished.append(sender)

    # Each conversation has started already, so every turn below is one message.
    for sender in ["person", *(f"reader-{n}" for n in range(len(FAQ_TEXTS)))]:
        await agent.handle_message(UserMessage("hello", CollectingOutputChannel(), sender))
    human = asyncio.create_task(say("person", HUMAN_REQUEST))
    await asyncio.wait_for(server.called.wait(), timeout=60)
    readers = [asyncio.create_task(say(f"reader-{n}", text)) for n, text in enumerate(FAQ_TEXTS)]
    await asyncio.wait_for(asyncio.gather(human, *readers), timeout=120)
    tracker = await agent.tracker_store.retrieve_full_tracker("person")
    assert "action_request_care_team" in [getattr(event, "action_name", None) for event in tracker.events]
    return finished


def test_a_request_for_a_person_is_not_overtaken_while_its_turn_waits_for_the_action_server(
    scheduled: Callable[[TurnScheduler], TurnScheduler],
) -> None:
    scheduler = scheduled(TurnScheduler(park_after=30.0))

    async def scenario() -> List[str]:
        async with ActionServer(hold=lambda: asyncio.sleep(0.05)) as server:
            agent = await _agent(server.port)
            return await _finishing_order(agent, server)

    finished = asyncio.run(scenario())

    assert finished[0] == "person", finished
    assert sorted(finished[1:]) == sorted(f"reader-{n}" for n in range(len(FAQ_TEXTS)))
    assert scheduler.parked_turns == 0


def test_a_hanging_action_server_does_not_hold_up_the_other_conversations(
    scheduled: Callable[[TurnScheduler], TurnScheduler],
) -> None:
    scheduler = scheduled(TurnScheduler(park_after=0.1))
    readers_done = asyncio.Event()

    async def hold() -> None:
        # Answers only once every other message has been answered (or after 30 s,
        # in which case the order below shows that they were held up).
        try:
            await asyncio.wait_for(readers_done.wait(), timeout=30)
        except asyncio.TimeoutError:
            pass

    async def scenario() -> List[str]:
        async with ActionServer(hold=hold) as server:
            agent = await _agent(server.port)
            order_task = asyncio.create_task(_finishing_order(agent, server))
            while not order_task.done():
                tracker_count = 0
                for n in range(len(FAQ_TEXTS)):
                    tracker = await agent.tracker_store.retrieve_full_tracker(f"reader-{n}")
                    texts = [getattr(event, "text", None) for event in tracker.events] if tracker else []
                    tracker_count += FAQ_TEXTS[n] in texts
                if tracker_count == len(FAQ_TEXTS):
                    readers_done.set()
                await asyncio.sleep(0.02)
            return await order_task

    finished = asyncio.run(scenario())

    assert finished[-1] == "person", finished
    assert scheduler.parked_turns >= 1


def test_sentence_vectors_are_computed_before_the_turn(scheduled: Callable[[TurnScheduler], TurnScheduler]) -> None:
    scheduled(TurnScheduler())

    async def scenario() -> List[Any]:
        agent = await _agent()
        classifier = next(
            node._component
            for node in agent.processor.graph_runner._instantiated_nodes.values()
            if hasattr(node._component, "prepare_text")
        )
        before = classifier.encoder.cache_info()
        message = UserMessage("a question nobody asked before: is it safe?", CollectingOutputChannel(), "p")
        await agent.handle_message(message)
        after = classifier.encoder.cache_info()
        return [before, after]

    before, after = asyncio.run(scenario())

    # Computed once, ahead of the turn (a miss), and found by the turn (a hit).
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 1


def test_the_servers_loaded_objects_are_frozen_once_its_model_is_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    import rasa.core.run

    loaded: List[str] = []

    async def load_agent_on_start(model_path: str, endpoints: Any, remote_storage: Any, app: Any, loop: Any) -> str:
        loaded.append(model_path)
        return "agent"

    monkeypatch.setattr(rasa.core.run, "load_agent_on_start", load_agent_on_start)
    rasa_server.install_gc_freeze_after_model_load()
    rasa_server.install_gc_freeze_after_model_load()  # once is enough; twice changes nothing
    patched = rasa.core.run.load_agent_on_start
    assert patched is not load_agent_on_start
    gc.unfreeze()
    try:
        agent = asyncio.run(patched("model.tar.gz", None, None, SimpleNamespace(ctx=SimpleNamespace()), None))
        assert agent == "agent" and loaded == ["model.tar.gz"]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_server_runs_numpy_single_threaded_and_hands_the_lock_over_often(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    probe = (
        "import os, sys; import bot.rasa_server as s; import rasa.__main__; "
        "rasa.__main__.main = lambda: print(os.environ['OPENBLAS_NUM_THREADS'], sys.getswitchinterval()); "
        "s.main(['--version'])"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    threads, interval = result.stdout.strip().splitlines()[-1].split()
    assert threads == "1"
    assert float(interval) == rasa_server.SWITCH_INTERVAL_SECONDS < 0.005
