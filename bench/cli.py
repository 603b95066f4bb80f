"""`python -m bench`: our config.yml against Rasa 3.6's default, side by side, in one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bench import accuracy, load, report, training
from bench.processes import run_measured
from bench.progress import clock, say
from bench.report import ContenderResult, RunSettings
from bench.servers import BenchServers
from bench.workspace import (
    BENCH_DIR,
    DEFAULT_CONFIG,
    FAQ_CASES,
    OUR_CONFIG,
    PROJECT_ROOT,
    RISK_CASES,
    Contender,
    Workspace,
)

QUICK_EPOCHS = 2
QUICK_CASES = 30


class ProfilingFailed(RuntimeError):
    """The profiling child did not write its summary."""


def build_parser() -> argparse.ArgumentParser:
    """Options of `python -m bench`."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="check the harness: few messages, short windows, default config with epochs cut down "
        "(work in bench/work/quick, report in bench/work/quick/results.md)",
    )
    parser.add_argument(
        "--skip-default-training",
        action="store_true",
        help="reuse bench/work/default from an earlier run if it was trained on the current data and config",
    )
    parser.add_argument("--only", choices=("ours", "default"), help="measure one configuration only")
    parser.add_argument("--users", default="1,10,50", help="concurrency levels (default: 1,10,50)")
    parser.add_argument("--seconds", type=float, help="measured window per level (default 60; quick 4)")
    parser.add_argument("--warmup", type=float, help="warm-up per level in seconds (default 10; quick 2)")
    parser.add_argument("--turns", type=int, default=8, help="messages per simulated conversation (default 8)")
    parser.add_argument("--long-turns", type=int, help="turns of the long conversation (default 100; quick 30)")
    parser.add_argument("--profile-messages", type=int, help="messages profiled (default 300; quick 30)")
    parser.add_argument("--results", type=Path, help="report path (default bench/results.md)")
    return parser


def _interrupt_on_sigterm() -> None:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _profile(contender: Contender, workspace: Workspace, messages: int, turns: int) -> Dict[str, Any]:
    out = workspace.profiles / f"{contender.name}.json"
    out.unlink(missing_ok=True)
    log = workspace.logs / f"profile-{contender.name}.log"
    say(f"profiling {contender.name}: cProfile around Agent.handle_message for {messages} messages")
    command = [
        sys.executable, "-m", "bench.profiling",
        str(contender.model), str(workspace.endpoints_file), str(FAQ_CASES), str(out),
        "--messages", str(messages), "--turns", str(turns),
    ]
    finished = run_measured(
        command,
        workspace.child_env(),
        PROJECT_ROOT,
        log,
        heartbeat=lambda elapsed: say(f"  still profiling ({clock(elapsed)})"),
    )
    if finished.returncode != 0 or not out.exists():
        raise ProfilingFailed(f"profiling {contender.name} failed (exit {finished.returncode}); see {log}")
    profile: Dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    say(f"  {profile['mean_ms']:.1f} ms per message in process; summary in {out}")
    return profile


def _serve_and_load(
    contender: Contender,
    workspace: Workspace,
    result: ContenderResult,
    settings: RunSettings,
    texts: Sequence[str],
) -> Optional[Dict[str, Any]]:
    """Starts the servers, runs the long conversation and the load levels; profiles ours."""
    started = time.monotonic()
    profile = None
    with BenchServers(contender, workspace) as servers:
        result.ready_seconds = time.monotonic() - started
        url = servers.webhook_url
        asyncio.run(load.warm_up(url, contender.name, texts, messages=10))
        result.idle_rss_mb = servers.rss_mb()
        say(f"{contender.name}: long conversation of {settings.long_conversation_turns} turns")
        result.growth = asyncio.run(load.turn_growth(url, contender.name, texts, settings.long_conversation_turns))
        say(f"  turns 1-5 median {result.growth.first:.1f} ms, last 5 median {result.growth.last:.1f} ms")
        for users in settings.users:
            servers.check_alive()
            say(
                f"{contender.name}: {users} users, {settings.warmup_seconds:g} s warm-up + "
                f"{settings.seconds:g} s measured"
            )
            level = asyncio.run(
                load.run_level(
                    url,
                    contender.name,
                    texts,
                    users,
                    settings.warmup_seconds,
                    settings.seconds,
                    settings.turns_per_conversation,
                    servers.rss_mb,
                )
            )
            result.levels[users] = level
            say(
                f"  {level.throughput:.1f} msg/s, p50 {level.p(50):.0f} ms, p95 {level.p(95):.0f} ms, "
                f"p99 {level.p(99):.0f} ms, {level.errors} errors, RSS {level.peak_rss_mb or 0:.0f} MB"
            )
        if contender.name == "ours":
            profile = _profile(contender, workspace, settings.profile_messages, settings.turns_per_conversation)
        servers.check_alive()
        result.peak_rss_mb = servers.peak_rss_mb()
    say(f"{contender.name} servers stopped (peak RSS {result.peak_rss_mb or 0:.0f} MB)")
    return profile


def run(args: argparse.Namespace) -> int:
    """The whole benchmark; returns the exit status."""
    quick = bool(args.quick)
    workspace = Workspace.create(quick)
    users = [int(part) for part in str(args.users).split(",") if part.strip()]
    results_path: Path = args.results or (workspace.root / "results.md" if quick else BENCH_DIR / "results.md")
    machine_info = report.machine()
    say(f"bench: {machine_info['CPU']}, {machine_info['Cores']} cores, {machine_info['RAM']}, "
        f"Rasa {machine_info['Rasa']}, load average {machine_info['Load average at start']}")
    if quick:
        say("QUICK run: checks the harness only, figures are not meaningful")
    notes: List[str] = []
    drift = training.default_config_drift(DEFAULT_CONFIG)
    if drift:
        say(f"WARNING: {drift}")
        notes.append(f"Warning: {drift}.")
    workspace.write_endpoints()

    default_config = DEFAULT_CONFIG
    faq_file, risk_file = FAQ_CASES, RISK_CASES
    if quick:
        default_config = training.write_quick_config(DEFAULT_CONFIG, workspace.root / "rasa_default_quick.yml",
                                                     QUICK_EPOCHS)
        faq_file = accuracy.write_subset(FAQ_CASES, workspace.root / "faq_cases_quick.yml", QUICK_CASES)
        risk_file = accuracy.write_subset(RISK_CASES, workspace.root / "risk_cases_quick.yml", QUICK_CASES)
        notes.append(f"Quick run: default config trained with epochs={QUICK_EPOCHS}; {QUICK_CASES} cases per file.")
    contenders = [
        workspace.contender("ours", OUR_CONFIG),
        workspace.contender("default", default_config),
    ]
    if args.only:
        contenders = [c for c in contenders if c.name == args.only]
    settings = RunSettings(
        quick=quick,
        users=users,
        warmup_seconds=args.warmup if args.warmup is not None else (2 if quick else 10),
        seconds=args.seconds if args.seconds is not None else (4 if quick else 60),
        turns_per_conversation=args.turns,
        long_conversation_turns=args.long_turns or (30 if quick else 100),
        profile_messages=args.profile_messages or (30 if quick else 300),
        faq_file=str(faq_file.relative_to(PROJECT_ROOT)),
        risk_file=str(risk_file.relative_to(PROJECT_ROOT)),
        load_texts=0,
        notes=notes,
    )
    texts = accuracy.texts(FAQ_CASES)
    settings = RunSettings(**{**settings.__dict__, "load_texts": len(texts)})
    results = {c.name: ContenderResult(c.name, str(c.config.relative_to(PROJECT_ROOT))) for c in contenders}

    for contender in contenders:
        earlier = training.reuse(contender) if contender.name == "default" and args.skip_default_training else None
        if earlier is not None:
            say(f"reusing {contender.model} (trained {earlier.trained_at} in {clock(earlier.wall_seconds)})")
            results[contender.name].training = earlier
        else:
            results[contender.name].training = training.train(contender, workspace)
        results[contender.name].model_size_mb = contender.model.stat().st_size / 1024 / 1024
    if len({r.training.data for r in results.values() if r.training}) > 1:
        say("WARNING: data/ or domain.yml changed between the trainings: the models saw different data")
        notes.append("Warning: data/ or domain.yml changed between the two trainings (different data).")
    for contender in contenders:
        results[contender.name].accuracy = accuracy.measure(contender, workspace, faq_file, risk_file)
    profile = None
    for contender in contenders:
        profile = _serve_and_load(contender, workspace, results[contender.name], settings, texts) or profile

    machine_info["Load average at end"] = " ".join(f"{value:.2f}" for value in os.getloadavg())
    ordered = [results[c.name] for c in contenders]
    report.write(results_path, ordered, settings, machine_info, profile)
    say(f"report written to {results_path}")
    print(report.summary_line(ordered), flush=True)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; servers and children are stopped on errors, Ctrl-C and SIGTERM."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worst-case"]:
        from bench import worst_case

        return worst_case.main(argv[1:])
    args = build_parser().parse_args(argv)
    _interrupt_on_sigterm()
    try:
        return run(args)
    except KeyboardInterrupt:
        say("interrupted: every server and child process was stopped")
        return 130
    except RuntimeError as error:  # TrainingFailed, EvaluationFailed, ServerFailed, LoadFailed, ProfilingFailed...
        say(f"FAILED: {error}")
        return 1
