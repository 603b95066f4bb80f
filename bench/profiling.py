"""Where a message's time goes: cProfile around `Agent.handle_message`, in process.

Run by `python -m bench` as a child process (`python -m bench.profiling MODEL
ENDPOINTS CASES OUT`) while the bench action server is up, so custom actions
really run. The agent is loaded as `rasa run` loads it (rasa.core.agent.load_agent
with the endpoints file): same tracker store, lock store and response generator.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import pstats
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench.workspace import PROJECT_ROOT

# (label, file the function is defined in, function name): phases of one turn
# in rasa/core/processor.py and the tracker store it goes through.
STAGES: Sequence[Tuple[str, str, str]] = (
    ("tracker store: fetch + session check", "rasa/core/processor.py", "fetch_tracker_and_update_session"),
    ("NLU pipeline (parse_message)", "rasa/core/processor.py", "parse_message"),
    ("policy prediction", "rasa/core/processor.py", "_predict_next_with_tracker"),
    ("running actions (responses, action server)", "rasa/core/processor.py", "_run_action"),
    ("tracker store: save", "rasa/core/processor.py", "save_tracker"),
)
# Graph components: what each NLU component and policy costs.
COMPONENT_METHODS = ("process", "predict_action_probabilities")
COMPONENT_DIRS = ("rasa/nlu/", "rasa/core/policies/", "bot/nlu/")
# Frames that only carry the event loop or the profiler itself.
PLUMBING = ("asyncio/", "selectors.py", "cProfile", "_lsprof", "threading.py", "{method 'run' of '_contextvars")

StatKey = Tuple[str, int, str]


def where(key: StatKey) -> str:
    """`package/module.py:function` for a pstats key."""
    filename, line, function = key
    if filename == "~":
        return function
    if "site-packages/" in filename:
        filename = filename.split("site-packages/", 1)[1]
    elif filename.startswith(str(PROJECT_ROOT)):
        filename = str(Path(filename).relative_to(PROJECT_ROOT))
    elif "/lib/python3" in filename:
        filename = "stdlib/" + filename.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return f"{filename}:{line}:{function}"


def summarise(stats: pstats.Stats, messages: int, total_seconds: float) -> Dict[str, Any]:
    """Per-message cost of the turn's phases, graph components and hottest functions."""
    raw: Dict[StatKey, Tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]

    def ms(seconds: float) -> float:
        return round(seconds * 1000 / messages, 3)

    def share(seconds: float) -> float:
        return round(seconds / total_seconds, 4) if total_seconds else 0.0

    stages: List[Dict[str, Any]] = []
    for label, filename, function in STAGES:
        matches = [v[3] for k, v in raw.items() if k[0].endswith(filename) and k[2] == function]
        seconds = max(matches, default=0.0)  # a wrapper and what it wraps share a name: take the outer one
        stages.append({"name": label, "ms_per_message": ms(seconds), "share": share(seconds)})
    components: List[Dict[str, Any]] = [
        {"name": where(k), "ms_per_message": ms(v[3]), "share": share(v[3])}
        for k, v in raw.items()
        if k[2] in COMPONENT_METHODS and any(d in k[0] for d in COMPONENT_DIRS)
    ]
    components.sort(key=lambda row: -row["ms_per_message"])
    interesting = {k: v for k, v in raw.items() if not any(p in k[0] or p in k[2] for p in PLUMBING)}
    by_cumulative = sorted(interesting.items(), key=lambda item: -item[1][3])[:25]
    by_own = sorted(interesting.items(), key=lambda item: -item[1][2])[:15]
    return {
        "stages": stages,
        "components": [c for c in components if c["ms_per_message"] > 0][:15],
        "top_cumulative": [
            {"function": where(k), "calls": v[1], "ms_per_message": ms(v[3]), "share": share(v[3])}
            for k, v in by_cumulative
        ],
        "top_own": [
            {"function": where(k), "calls": v[1], "ms_per_message": ms(v[2]), "share": share(v[2])}
            for k, v in by_own
        ],
    }


def _conversation_messages(texts: Sequence[str], count: int, turns: int, seed: int) -> List[Tuple[str, str]]:
    rng = random.Random(seed)
    plan: List[Tuple[str, str]] = []
    sender = ""
    for index in range(count):
        if index % turns == 0:
            sender = f"bench-profile-{uuid.uuid4().hex[:12]}"
        # Made unique, as in the load test, so the embedding cache never answers.
        plan.append((sender, f"{rng.choice(texts)} (#{seed}-{index})"))
    return plan


async def _profile(args: argparse.Namespace) -> Dict[str, Any]:
    from rasa.core.agent import load_agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.core.utils import AvailableEndpoints

    from bench.accuracy import texts as case_texts

    texts = case_texts(Path(args.cases))
    started = time.perf_counter()
    agent = await load_agent(model_path=args.model, endpoints=AvailableEndpoints.read_endpoints(args.endpoints))
    load_seconds = time.perf_counter() - started

    async def handle(plan: Sequence[Tuple[str, str]], profiler: Optional[cProfile.Profile] = None) -> List[float]:
        elapsed: List[float] = []
        for sender, text in plan:
            message = UserMessage(text, CollectingOutputChannel(), sender)
            if profiler is not None:
                profiler.enable()
            began = time.perf_counter()
            await agent.handle_message(message)
            elapsed.append(time.perf_counter() - began)
            if profiler is not None:
                profiler.disable()
        return elapsed

    await handle(_conversation_messages(texts, args.warmup, args.turns, seed=1))
    plain = await handle(_conversation_messages(texts, args.messages, args.turns, seed=2))
    profiler = cProfile.Profile()
    profiled = await handle(_conversation_messages(texts, args.messages, args.turns, seed=3), profiler)
    dump = Path(args.out).with_suffix(".prof")
    profiler.dump_stats(str(dump))
    stats = pstats.Stats(profiler)
    summary = summarise(stats, args.messages, sum(profiled))
    return {
        "model_load_seconds": round(load_seconds, 2),
        "messages": args.messages,
        "mean_ms": round(statistics.mean(plain) * 1000, 3),
        "median_ms": round(statistics.median(plain) * 1000, 3),
        "mean_ms_profiled": round(statistics.mean(profiled) * 1000, 3),
        "pstats_file": str(dump),
        **summary,
    }


def main() -> None:
    """`python -m bench.profiling MODEL ENDPOINTS CASES OUT`."""
    parser = argparse.ArgumentParser(prog="python -m bench.profiling", description=__doc__)
    parser.add_argument("model")
    parser.add_argument("endpoints")
    parser.add_argument("cases", help="held-out case file whose texts are sent")
    parser.add_argument("out", help="JSON summary (the .prof dump goes next to it)")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--turns", type=int, default=8, help="messages per conversation")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # As `rasa run` does at its default log level: no debug events are printed.
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)
    # The server's own fixes (bot.rasa_server), so the profile is of what it runs.
    from bot.rasa_server import apply_fixes

    apply_fixes()
    result = asyncio.run(_profile(args))
    Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
