"""Runs labeled messages through the trained assistant, in process, like the server does."""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple

from bot.channels.text import clean_user_text
from bot.evaluation.cases import ESCALATE, Case

ESCALATION_ACTION = "action_escalate_to_clinician"
FALLBACK_INTENT = "nlu_fallback"
OUT_OF_SCOPE = "out_of_scope"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseResult:
    """What the assistant did with one case."""

    case: Case
    got: str
    confidence: float
    fell_back: bool
    level: Optional[str] = None
    category: Optional[str] = None

    @property
    def correct(self) -> bool:
        """Whether the outcome is one of the acceptable ones."""
        return self.case.accepts(self.got)


def latest_model(model_dir: Path) -> Path:
    """The newest trained model in `model_dir`."""
    models = sorted(Path(model_dir).glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise FileNotFoundError(f"No trained model in {model_dir}: run `make train` first.")
    return models[-1]


@contextmanager
def _quiet_custom_actions() -> Iterator[None]:
    """Custom actions are not executed here (no action server); hide those errors."""
    processor_logger = logging.getLogger("rasa.core.processor")
    action_logger = logging.getLogger("rasa.core.actions.action")
    levels = processor_logger.level, action_logger.level
    processor_logger.setLevel(logging.CRITICAL)
    action_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        processor_logger.setLevel(levels[0])
        action_logger.setLevel(levels[1])


class AssistantEvaluator:
    """Decides what the assistant would do, with the production model, policies and rules.

    Every case starts a fresh conversation and goes through Rasa's own message
    processor, so the first-message rules, the NLU gates and the risk rules
    apply exactly as on the server. Custom actions are recognised by name but
    not executed: no alert is sent and no record is written.
    """

    def __init__(self, agent: "Agent") -> None:  # type: ignore[name-defined]  # noqa: F821
        """Wraps a loaded Rasa agent."""
        self.agent = agent

    @classmethod
    def load(cls, model_path: Path, endpoints_file: Optional[Path] = None) -> "AssistantEvaluator":
        """Loads a trained model with the production response generator, no action server."""
        from rasa.core.agent import Agent
        from rasa.core.utils import AvailableEndpoints

        generator = None
        if endpoints_file is not None and Path(endpoints_file).exists():
            generator = AvailableEndpoints.read_endpoints(str(endpoints_file)).nlg
            if generator is not None:
                # The server records escalation decisions while rendering; an evaluation records nothing.
                generator.kwargs.pop("record_escalations", None)
        return cls(Agent.load(str(model_path), generator=generator))

    async def outcome(self, text: str) -> Tuple[str, float, bool]:
        """Returns (got, confidence, fell_back) for one message in a new conversation."""
        return outcome_from_events(await self._events(text))

    async def _events(self, text: str) -> List[Mapping[str, Any]]:
        """The tracker events, in Rasa's JSON form, of a new conversation with one message."""
        from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

        sender = f"evaluate-{uuid.uuid4().hex}"
        # Every channel cleans what people type (NFC, control characters) before Rasa sees it.
        cleaned = clean_user_text(text)
        with _quiet_custom_actions():
            await self.agent.handle_message(UserMessage(cleaned, CollectingOutputChannel(), sender))
        tracker = await self.agent.tracker_store.retrieve(sender)
        return [] if tracker is None else [event.as_dict() for event in tracker.events]

    async def run(self, cases: Sequence[Case], progress: bool = True) -> List[CaseResult]:
        """Evaluates every case, showing a progress bar on stderr."""
        from tqdm import tqdm

        results: List[CaseResult] = []
        for case in tqdm(cases, desc="Evaluating", unit="case", disable=not progress, leave=False):
            events = await self._events(case.text)
            got, confidence, fell_back = outcome_from_events(events)
            level, category = risk_labels_from_events(events) if got == ESCALATE else (None, None)
            results.append(CaseResult(case, got, confidence, fell_back, level, category))
        return results


def outcome_from_events(events: Sequence[Mapping[str, Any]]) -> Tuple[str, float, bool]:
    """(got, confidence, fell_back) for the latest user message, from tracker events in Rasa's JSON form.

    Shared by the in-process evaluator and the check against a running server
    (`GET /conversations/<id>/tracker`), so both name an outcome the same way:
    `escalate` if the escalation action ran after the message, else the FAQ
    answer it sent (`faq/<topic>`), else its intent (`nlu_fallback` counts as
    `out_of_scope`).
    """
    user_indices = [i for i, event in enumerate(events) if event.get("event") == "user"]
    if not user_indices:
        return OUT_OF_SCOPE, 0.0, False
    user = events[user_indices[-1]]
    after = events[user_indices[-1] + 1 :]
    parse_data = user.get("parse_data") or {}
    intent_data = parse_data.get("intent") or {}
    intent = intent_data.get("name") or OUT_OF_SCOPE
    intent_confidence = float(intent_data.get("confidence") or 0.0)
    fell_back = intent == FALLBACK_INTENT
    actions = [event.get("name") for event in after if event.get("event") == "action"]
    if ESCALATION_ACTION in actions:
        return ESCALATE, intent_confidence, fell_back
    for event in after:
        if event.get("event") == "bot":
            utter_action = (event.get("metadata") or {}).get("utter_action") or ""
            if utter_action.startswith("utter_faq/"):
                return utter_action[len("utter_") :], _answer_confidence(parse_data), fell_back
    if fell_back:
        return OUT_OF_SCOPE, intent_confidence, True
    return intent, intent_confidence, fell_back


def risk_labels_from_events(events: Sequence[Mapping[str, Any]]) -> Tuple[Optional[str], Optional[str]]:
    """(level, category) the safety screen gave the latest user message, or None where it gave none."""
    from bot.nlu.safety_screen import RISK_CATEGORY_ENTITY, RISK_LEVEL_ENTITY

    users = [event for event in events if event.get("event") == "user"]
    if not users:
        return None, None
    entities = (users[-1].get("parse_data") or {}).get("entities") or []
    found = {entity.get("entity"): entity.get("value") for entity in entities if isinstance(entity, Mapping)}
    return found.get(RISK_LEVEL_ENTITY), found.get(RISK_CATEGORY_ENTITY)


def _answer_confidence(parse_data: Optional[dict]) -> float:
    selector = ((parse_data or {}).get("response_selector") or {}).get("faq") or {}
    return float((selector.get("response") or {}).get("confidence") or 0.0)


def evaluate(
    model_path: Path,
    cases: Sequence[Case],
    endpoints_file: Optional[Path] = None,
    progress: bool = True,
) -> List[CaseResult]:
    """Loads the model and evaluates the cases (blocking helper for the CLI and tests)."""
    evaluator = AssistantEvaluator.load(model_path, endpoints_file)
    return asyncio.run(evaluator.run(cases, progress=progress))
