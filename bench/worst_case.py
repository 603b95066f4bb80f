"""`python -m bench worst-case`: the slowest message under the length limit, through the NLU pipeline.

Every candidate is a text at the channels' limit (`MAX_MESSAGE_CHARS`) built
from a unit that has been slow somewhere (symbols that spaCy's tokenizer peels
one at a time, runs a pattern could backtrack on, words that each start a risk
match, bidi and zero-width marks...) plus seeded random mixes. Each is parsed
in process by the trained model (`Agent.parse_message`, with the server's
sequential graph runner), best of a few runs; the report lists the slowest,
and how the slowest grows with length (linear: doubling the text should about
double the time). Nothing is asserted: the target is under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench.progress import say
from bench.workspace import PROJECT_ROOT

TARGET_MS = 50.0
# Units that, repeated, have slowed or broken text handling somewhere.
RUN_UNITS = [
    "a@", "1-", "a", "1", "1 ", "a ", "(", ")", "()", "[", "]", "{}", "((a))", "🙂", "🙂😀", "\u202e", "\u200b",
    "\u200f", "a.b", "www.", "http://", "@a", ".", "!?", "-", "'", "’", "a'", "\x00", "\x1f", "\r\n", " ", "\t",
    "é", "e\u0301", "字", "ع", "kill myself ", "if i, ", "years ago ", "i want to die, ", "$1,000 ", "2024-08-09 ",
    "+44 20 ", "NCT0", "\ufeff", "\U0001f3f3\ufe0f\u200d\U0001f308", "ǅ", "ﬁ", "Ⅻ", "𝔸", "so so ", "a. ",
    "i'm not ok. ", "what if i, ", "dying of embarrassment ",
]
_MIX_ALPHABET = "ab(),.?!@1- '\"\u202e\u200b🙂字\t\n"


def max_message_chars() -> int:
    from bot.channels.text import MAX_MESSAGE_CHARS

    return MAX_MESSAGE_CHARS


def repeated(unit: str, length: int) -> str:
    """`unit` repeated to exactly `length` characters."""
    return (unit * (length // len(unit) + 1))[:length]


def worst_case_candidates(length: Optional[int] = None, mixes: int = 5, seed: int = 7) -> Dict[str, str]:
    """Named texts of `length` characters (default: the channels' limit)."""
    length = length or max_message_chars()
    candidates = {f"{unit!r} x {length}": repeated(unit, length) for unit in RUN_UNITS}
    candidates[f"'(' x {length // 2} + ')' x {length // 2}"] = "(" * (length // 2) + ")" * (length // 2)
    rng = random.Random(seed)
    for number in range(mixes):
        candidates[f"random mix {number + 1}"] = "".join(rng.choice(_MIX_ALPHABET) for _ in range(length))
    return candidates


def _load_agent(model: Path) -> Any:
    from rasa.core.agent import Agent

    from bot.rasa_server import install_sequential_graph_runner

    install_sequential_graph_runner()
    return Agent.load(str(model))


def _time_parse(agent: Any, text: str, repeats: int) -> float:
    """Best wall time of `repeats` parses, in ms."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        asyncio.run(agent.parse_message(text))
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def measure(agent: Any, candidates: Dict[str, str], repeats: int) -> List[Tuple[str, float]]:
    """(name, ms) for each candidate, slowest first."""
    results = []
    for name, text in candidates.items():
        results.append((name, _time_parse(agent, text, repeats)))
    return sorted(results, key=lambda item: -item[1])


def growth(agent: Any, unit: str, lengths: Sequence[int], repeats: int) -> List[Tuple[int, float]]:
    return [(length, _time_parse(agent, repeated(unit, length), repeats)) for length in lengths]


def _latest_model() -> Path:
    models = sorted((PROJECT_ROOT / "models").glob("*.tar.gz"), key=lambda path: path.stat().st_mtime)
    if not models:
        raise SystemExit("No trained model in models/: run `make train` first.")
    return models[-1]


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the measurement and prints the report (and writes it as JSON with --json)."""
    parser = argparse.ArgumentParser(prog="python -m bench worst-case", description=__doc__)
    parser.add_argument("--model", type=Path, help="model archive (default: newest in models/)")
    parser.add_argument("--repeats", type=int, default=3, help="parses per text; the best counts (default 3)")
    parser.add_argument("--top", type=int, default=12, help="slowest texts listed (default 12)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    model = args.model or _latest_model()
    say(f"worst case: loading {model.relative_to(PROJECT_ROOT) if model.is_relative_to(PROJECT_ROOT) else model}")
    agent = _load_agent(model)
    from rasa.utils.log_utils import configure_structlog

    # Rasa logs every parse at debug level, text included.
    logging.disable(logging.CRITICAL)
    configure_structlog(logging.WARNING)
    typical = statistics.median(
        _time_parse(agent, text, args.repeats)
        for text in ("what is mdma assisted therapy", "is it legal in the us?", "I feel unsafe tonight")
    )
    candidates = worst_case_candidates()
    say(f"parsing {len(candidates)} texts of {max_message_chars()} characters, best of {args.repeats}")
    results = measure(agent, candidates, args.repeats)
    worst_name, worst_ms = results[0]
    unit = next((u for u in RUN_UNITS if worst_name.startswith(repr(u) + " x")), None)
    limit = max_message_chars()
    scaling = growth(agent, unit, [limit // 8, limit // 4, limit // 2, limit], args.repeats) if unit else []

    print(f"\nTypical message: {typical:.1f} ms. Slowest {min(args.top, len(results))} of {len(results)}:")
    for name, ms in results[: args.top]:
        print(f"  {ms:8.1f} ms  {name}")
    if scaling:
        print(f"Growth of the slowest ({unit!r}): " + ", ".join(f"{n} chars {ms:.1f} ms" for n, ms in scaling))
    verdict = "within" if worst_ms < TARGET_MS else "over"
    print(f"worst-case message: {worst_ms:.1f} ms ({worst_name}); target {TARGET_MS:.0f} ms: {verdict}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "typical_ms": typical,
                    "results": results,
                    "growth": scaling,
                    "worst": {"name": worst_name, "ms": worst_ms},
                    "target_ms": TARGET_MS,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 0
