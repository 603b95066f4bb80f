"""bench/results.md and the one-line summary the run ends with."""

from __future__ import annotations

import importlib.metadata
import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from bench.accuracy import Accuracy
from bench.load import LevelResult, TurnGrowth
from bench.progress import clock
from bench.training import TrainingResult
from bench.workspace import PROJECT_ROOT

MISSING = "n/a"


@dataclass
class ContenderResult:
    """Everything measured for one configuration (None where a step was skipped)."""

    name: str
    config: str
    training: Optional[TrainingResult] = None
    accuracy: Optional[Accuracy] = None
    model_size_mb: Optional[float] = None
    ready_seconds: Optional[float] = None
    idle_rss_mb: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    levels: Dict[int, LevelResult] = field(default_factory=dict)
    growth: Optional[TurnGrowth] = None

    def best_throughput(self) -> Optional[float]:
        """Messages per second at the level that answered most."""
        return max((level.throughput for level in self.levels.values()), default=None)


@dataclass(frozen=True)
class RunSettings:
    """How the run was done, for the reader of the report."""

    quick: bool
    users: Sequence[int]
    warmup_seconds: float
    seconds: float
    turns_per_conversation: int
    long_conversation_turns: int
    profile_messages: int
    faq_file: str
    risk_file: str
    load_texts: int
    notes: List[str] = field(default_factory=list)


def machine() -> Dict[str, str]:
    """CPU, cores, memory, software versions, date and load of this machine."""
    cpu = MISSING
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = MISSING
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except (OSError, ValueError):
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = MISSING
    return {
        "CPU": cpu,
        "Cores": str(os.cpu_count()),
        "RAM": memory,
        "Python": sys.version.split()[0],
        "Rasa": importlib.metadata.version("rasa"),
        "Date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "Commit": f"{commit} (plus any uncommitted changes in the tree)",
        "Load average at start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }


def _percent(value: Optional[float]) -> str:
    return MISSING if value is None else f"{value:.1%}"


def _ms(value: Optional[float]) -> str:
    return MISSING if value is None or math.isnan(value) else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _mb(value: Optional[float]) -> str:
    return MISSING if value is None else f"{value:.0f} MB"


def _rows(results: Sequence[ContenderResult], users: Sequence[int]) -> List[List[str]]:
    def row(metric: str, cell: Callable[[ContenderResult], str]) -> List[str]:
        return [metric, *(cell(result) for result in results)]

    def accuracy(attribute: str) -> Callable[[ContenderResult], str]:
        return lambda r: _percent(getattr(r.accuracy, attribute)) if r.accuracy else MISSING

    def training(r: ContenderResult) -> str:
        if r.training is None:
            return MISSING
        return clock(r.training.wall_seconds) + (" (earlier run)" if r.training.reused else "")

    def level(users_count: int, cell: Callable[[LevelResult], str]) -> Callable[[ContenderResult], str]:
        return lambda r: cell(r.levels[users_count]) if users_count in r.levels else MISSING

    def growth(cell: Callable[[TurnGrowth], str]) -> Callable[[ContenderResult], str]:
        return lambda r: cell(r.growth) if r.growth else MISSING

    any_accuracy = next((r.accuracy for r in results if r.accuracy), None)
    faq_n = f" ({any_accuracy.faq_cases} cases)" if any_accuracy else ""
    risk_n = f" ({any_accuracy.escalation_cases} cases)" if any_accuracy else ""
    safe_n = f" ({any_accuracy.safe_cases} cases)" if any_accuracy else ""
    rows = [
        row(f"FAQ accuracy, held-out{faq_n}", accuracy("faq_accuracy")),
        row(f"Escalation recall, held-out{risk_n}", accuracy("escalation_recall")),
        row(f"False escalations of safe held-out messages{safe_n}", accuracy("false_escalation_rate")),
        row("Fallback rate on the FAQ cases", accuracy("fallback_rate")),
        row("Training time (wall, cold cache)", training),
        row("Training peak RSS", lambda r: _mb(r.training.peak_rss_mb) if r.training else MISSING),
        row("Model archive size", lambda r: _mb(r.model_size_mb)),
        row("Server start-up until ready", lambda r: clock(r.ready_seconds) if r.ready_seconds else MISSING),
        row("Server RSS after warm-up", lambda r: _mb(r.idle_rss_mb)),
        row("Server peak RSS (VmHWM, whole run)", lambda r: _mb(r.peak_rss_mb)),
    ]
    for count in users:
        at = f"@{count} user" + ("s" if count != 1 else "")
        rows.append(row(f"Throughput {at}", level(count, lambda lv: f"{lv.throughput:.1f} msg/s")))
        rows.append(
            row(
                f"p50 / p95 / p99 {at}",
                level(count, lambda lv: " / ".join(_ms(lv.p(p)) for p in (50, 95, 99))),
            )
        )
    rows.append(
        row(
            "Messages answered / errors under load",
            lambda r: f"{sum(lv.messages for lv in r.levels.values())} / {sum(lv.errors for lv in r.levels.values())}"
            if r.levels
            else MISSING,
        )
    )
    rows.append(row("Long conversation: median of turns 1-5", growth(lambda g: _ms(g.first))))
    rows.append(row("Long conversation: median of the last 5 turns", growth(lambda g: _ms(g.last))))
    rows.append(row("Long conversation: last / first", growth(lambda g: f"{g.last / g.first:.2f}x")))
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def _findings(profile: Dict[str, Any], ours: Optional[ContenderResult]) -> List[str]:
    """Plain statements drawn from the profile and the load figures."""
    findings: List[str] = []
    stages = {stage["name"]: stage for stage in profile["stages"]}
    phases = [stage for stage in profile["stages"] if not stage["name"].startswith("of which")]
    ranked = sorted(phases, key=lambda stage: -stage["share"])
    findings.append(
        f"In process, one message costs {profile['mean_ms']:.1f} ms on average (median "
        f"{profile['median_ms']:.1f} ms) without the profiler, {profile['mean_ms_profiled']:.1f} ms with it: "
        "compare the shares below, not their absolute times."
    )
    findings.append(
        "Largest phases of a turn: "
        + ", ".join(f"{stage['name']} {stage['share']:.0%}" for stage in ranked[:3])
        + "."
    )
    if profile["components"]:
        top = profile["components"][0]
        findings.append(
            f"Most expensive graph component: `{top['name']}` at {top['ms_per_message']:.2f} ms per message "
            f"({top['share']:.0%} of the turn)."
        )
    if profile["top_own"]:
        hottest = profile["top_own"][0]
        findings.append(
            f"Most time spent inside one function (own time): `{hottest['function']}` "
            f"({hottest['share']:.0%})."
        )
    store = sum(
        stages[name]["share"]
        for name in ("tracker store: fetch + session check", "tracker store: save")
        if name in stages
    )
    findings.append(f"Fetching and saving the conversation in the tracker store takes {store:.0%} of a turn.")
    if ours is not None and 1 in ours.levels:
        over_http = ours.levels[1].p(50)
        extra = over_http - profile["median_ms"]
        findings.append(
            f"Over HTTP with one user the median reply took {over_http:.1f} ms against {profile['median_ms']:.1f} ms "
            "in process: "
            + (
                f"the REST channel, Sanic and the client add about {extra:.1f} ms."
                if extra > 1
                else "no measurable cost from the REST channel, Sanic and the client."
            )
        )
    if ours is not None and ours.growth is not None:
        ratio = ours.growth.last / ours.growth.first
        verdict = "grows with the history" if ratio > 1.3 else "does not grow noticeably with the history"
        findings.append(
            f"In one long conversation the cost of a turn {verdict}: median {ours.growth.first:.1f} ms for "
            f"turns 1-5, {ours.growth.last:.1f} ms for the last five ({ratio:.2f}x)."
        )
    return findings


def _profile_section(profile: Dict[str, Any], ours: Optional[ContenderResult]) -> List[str]:
    def rows(entries: Sequence[Dict[str, Any]], key: str, code: bool = True) -> List[List[str]]:
        quote = "`" if code else ""
        return [[f"{quote}{e[key]}{quote}", f"{e['ms_per_message']:.3f}", f"{e['share']:.1%}"] for e in entries]

    lines = [
        "## Where the time goes (our configuration)",
        "",
        f"cProfile around `Agent.handle_message` for {profile['messages']} held-out FAQ messages in "
        "conversations of a few turns, agent loaded as `rasa run` loads it (same endpoints, action server "
        f"running; model load took {profile['model_load_seconds']:.1f} s in process). "
        f"Full dump: `{Path(profile['pstats_file']).relative_to(PROJECT_ROOT)}` "
        "(`python -m pstats` or snakeviz). The profile is of the event loop's thread: the sentence "
        "encoder runs on a worker thread before each turn (`prepare_text`, see `bot/rasa_server.py`), so "
        "it counts in the averages without the profiler but not in the tables.",
        "",
        "What shapes the tail under load, besides the cost of a turn (see `bot/rasa_server.py`): turns are "
        "served first come, first served (`bot/turn_scheduler.py`), so a turn that waits for the action "
        "server is no longer overtaken at each wait by every message that arrived meanwhile; the objects "
        "loaded at start are frozen out of Python's cyclic garbage collector, whose full collections "
        "otherwise stopped every conversation for about 300 ms; and idle conversations are packed "
        "(`live_conversations` in `endpoints.yml`), so those pauses do not grow with the number of "
        "conversations seen.",
        "",
        *[f"- {finding}" for finding in _findings(profile, ours)],
        "",
        "Phases of a turn (ms per message under the profiler):",
        "",
        _table(["phase", "ms/message", "share"], rows(profile["stages"], "name", code=False)),
        "",
        "Graph components:",
        "",
        _table(["component", "ms/message", "share"], rows(profile["components"], "name")),
        "",
        "Top functions by cumulative time (event-loop plumbing left out):",
        "",
        _table(["function", "ms/message", "share"], rows(profile["top_cumulative"], "function")),
        "",
        "Top functions by own time:",
        "",
        _table(["function", "ms/message", "share"], rows(profile["top_own"], "function")),
        "",
    ]
    return lines


def write(
    path: Path,
    results: Sequence[ContenderResult],
    settings: RunSettings,
    machine_info: Dict[str, str],
    profile: Optional[Dict[str, Any]],
) -> None:
    """Writes the Markdown report."""
    header = ["metric", *(f"{r.name} (`{r.config}`)" for r in results)]
    lines = ["# Benchmark: our configuration against Rasa 3.6's default", ""]
    if settings.quick:
        lines += [
            "> **Quick run** (`python -m bench --quick`): few messages, short windows and, for the default",
            "> configuration, epochs cut down. It checks the harness; its figures mean nothing.",
            "",
        ]
    lines += [
        "Written by `make bench` (`python -m bench`). Same training data (`data/`, `domain.yml`), same held-out",
        "sets, same machine, one run. Both models are served by the production setup: `rasa run` with the",
        "project's credentials (REST channel) and endpoints (response generator, action server), as `make run`",
        "starts it.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in machine_info.items()],
        "",
        "## Results",
        "",
        _table(header, _rows(results, settings.users)),
        "",
        "## How it was measured",
        "",
        f"- Accuracy: `python -m bot evaluate` on `{settings.faq_file}` (FAQ accuracy, fallback rate) and "
        f"`{settings.risk_file}` (escalation recall); false escalations count both files' cases that need none. "
        "Each case is a new conversation through Rasa's message processor with the production rules.",
        "- Training: `rasa train --config ... --out bench/work/<name> --force` with an empty Rasa cache; wall "
        "time and peak RSS of the `rasa train` process.",
        f"- Load: one aiohttp client process; {', '.join(map(str, settings.users))} concurrent simulated users, "
        "closed loop (the next message as soon as the reply arrives, no think time), each user in its own "
        f"conversations of {settings.turns_per_conversation} turns (own sender id), messages drawn from the "
        f"{settings.load_texts} held-out FAQ texts, each made unique with a running number so that no cache of "
        f"earlier messages helps. Per level: {settings.warmup_seconds:g} s warm-up, then a "
        f"{settings.seconds:g} s measured window; only replies that arrive inside it count. Throughput in the "
        "summary line is the best of the levels.",
        "- Server memory: VmRSS of the `rasa run` process sampled every 0.25 s under load and VmHWM (its peak "
        "since start, model loading included) at the end; conversations stay in the tracker store of "
        "`endpoints.yml` (in memory).",
        f"- Long conversation: one sender, {settings.long_conversation_turns} sequential messages on a quiet "
        "server, median of the first five against the last five.",
        *[f"- {note}" for note in settings.notes],
        "",
    ]
    if profile is not None:
        lines += _profile_section(profile, next((r for r in results if r.name == "ours"), None))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def summary_line(results: Sequence[ContenderResult]) -> str:
    """`accuracy ours/default=A/B throughput ours/default=X/Y msg/s p99@10 ours/default=P/Q ms`."""
    by_name = {r.name: r for r in results}

    def pair(cell: Callable[[ContenderResult], Optional[str]]) -> str:
        return "/".join((cell(by_name[n]) if n in by_name else None) or MISSING for n in ("ours", "default"))

    def p99_at_10(r: ContenderResult) -> Optional[str]:
        return f"{r.levels[10].p(99):.0f}" if 10 in r.levels else None

    def throughput(r: ContenderResult) -> Optional[str]:
        best = r.best_throughput()
        return None if best is None else f"{best:.1f}"

    return (
        f"accuracy ours/default={pair(lambda r: f'{r.accuracy.faq_accuracy:.1%}' if r.accuracy else None)} "
        f"throughput ours/default={pair(throughput)} msg/s "
        f"p99@10 ours/default={pair(p99_at_10)} ms"
    )
