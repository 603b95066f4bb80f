"""Command line: `python -m bot <command>` (run, shell, evaluate, ...)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

from bot.settings import Settings


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    import structlog

    from bot.evaluation.cases import CaseFileError, load_cases
    from bot.evaluation.report import as_json, format_summary, summarise
    from bot.evaluation.runner import evaluate, latest_model

    try:
        cases = load_cases(Path(args.cases))
    except CaseFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        model = Path(args.model) if args.model else latest_model(settings.model_dir)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Evaluating {len(cases)} cases from {args.cases} with {model.name}", file=sys.stderr)
    # Rasa's structured debug events would otherwise be printed into the report on stdout.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results = evaluate(
        model, cases, settings.endpoints_file, progress=not args.no_progress
    )
    summary = summarise(results)
    print(format_summary(summary))
    report = as_json(summary, results)
    failures = []
    if args.server:
        from bot.evaluation.server_check import (
            RasaServerClient,
            ServerCheckError,
            compare_with_server,
            format_agreement,
        )

        token = args.token or (None if settings.rasa_auth_token_generated else settings.rasa_auth_token)
        print(f"Sending the same {len(cases)} messages to {args.server}", file=sys.stderr)
        try:
            server_outcomes = RasaServerClient(args.server, token).outcomes([case.text for case in cases])
        except ServerCheckError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        agreement = compare_with_server(results, server_outcomes)
        print("")
        print(format_agreement(agreement))
        report["server_agreement"] = {
            "server": args.server,
            "rate": agreement.rate,
            "disagreements": [
                {"text": d.case.text, "line": d.case.line, "evaluator": d.evaluator, "server": d.server}
                for d in agreement.disagreements
            ],
        }
        if args.min_agreement is not None and agreement.rate < args.min_agreement:
            failures.append(f"agreement with the server {agreement.rate:.1%} is below {args.min_agreement:.1%}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.min_faq_accuracy is not None and summary["faq_cases"] and summary["faq_accuracy"] < args.min_faq_accuracy:
        failures.append(f"FAQ accuracy {summary['faq_accuracy']:.1%} is below {args.min_faq_accuracy:.1%}")
    if (
        args.min_escalation_recall is not None
        and summary["escalation_cases"]
        and summary["escalation_recall"] < args.min_escalation_recall
    ):
        failures.append(
            f"escalation recall {summary['escalation_recall']:.1%} is below {args.min_escalation_recall:.1%}"
        )
    if args.max_false_escalation_rate is not None and summary["false_escalation_rate"] > args.max_false_escalation_rate:
        failures.append(
            f"false escalation rate {summary['false_escalation_rate']:.1%} is above "
            f"{args.max_false_escalation_rate:.1%}"
        )
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services import run_all

    return run_all(settings)


def _shell(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services import (
        Supervisor,
        activate_channels,
        assistant_services,
        service_environment,
    )

    activate_channels(settings)
    env = service_environment(settings)
    action_server = [s for s in assistant_services(settings) if s.name == "action server"]
    supervisor = Supervisor(action_server, env, settings.project_root)
    supervisor.start()
    try:
        supervisor.wait_until_ready()
        command = [
            sys.executable, "-m", "bot.rasa_server", "shell",
            "--model", str(settings.model_dir),
            "--endpoints", str(settings.endpoints_file),
            "--credentials", str(settings.active_credentials_file),
        ]
        return subprocess.call(command, env=env, cwd=settings.project_root)
    finally:
        supervisor.stop()


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services import rasa_executable, service_environment

    command = [rasa_executable(), "train", "--out", str(settings.model_dir)]
    if args.force:
        command.append("--force")
    return subprocess.call(command, env=service_environment(settings), cwd=settings.project_root)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from bot.escalation.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    run_worker(settings.escalation, settings.escalation_spool_dir)
    return 0


def _escalations(args: argparse.Namespace, settings: Settings) -> int:
    from bot.escalation.overview import print_dead_letters, print_escalations

    if args.dead:
        return print_dead_letters(settings.escalation, settings.escalation_spool_dir, sys.stdout)
    return print_escalations(settings.escalation, args.status, args.limit, sys.stdout)


def _console(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from bot.console_setup import console_config, ensure_console_account
    from bot.web.app import run_console
    from bot.web.config import UsersFileError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    password = ensure_console_account(settings)
    if password:
        print(f"Console account created: {settings.console_users_file}\n  user: clinician  password: {password}")
    try:
        config = console_config(settings)
    except (UsersFileError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run_console(config, host=settings.console_host, port=settings.console_port)
    return 0


def _actions(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from bot.action_server import run_action_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    run_action_server(settings.action_server_token, settings.action_host, settings.action_port)
    return 0


def _hash_password(args: argparse.Namespace, settings: Settings) -> int:
    from bot.web.passwords import main_hash_password

    return main_hash_password(args.rest)


def _unanswered(args: argparse.Namespace, settings: Settings) -> int:
    from bot.unanswered.report import run_report

    return run_report(
        settings.unanswered,
        since=args.since,
        json_path=args.json,
        examples=args.examples,
        min_similarity=args.min_similarity,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start the action server and the Rasa server")
    run.set_defaults(handler=_run)

    shell = commands.add_parser("shell", help="chat with the assistant in the terminal")
    shell.set_defaults(handler=_shell)

    train = commands.add_parser("train", help="train a model unless one exists for the current data")
    train.add_argument("--force", action="store_true", help="train even if nothing changed")
    train.set_defaults(handler=_train)

    worker = commands.add_parser("worker", help="deliver escalation alerts (webhook, email) with retries")
    worker.set_defaults(handler=_worker)

    escalations = commands.add_parser(
        "escalations", help="list escalations (no words, no contact details), or with --dead what needs a person"
    )
    escalations.add_argument(
        "--dead",
        action="store_true",
        help="list alerts never delivered and spooled entries quarantined; exit 1 if there are any",
    )
    escalations.add_argument(
        "--status", choices=("open", "acknowledged", "resolved"), help="only escalations with this status"
    )
    escalations.add_argument("--limit", type=int, default=50, metavar="N", help="at most N escalations (default 50)")
    escalations.set_defaults(handler=_escalations)

    console = commands.add_parser("console", help="serve the clinician console on port 8000")
    console.set_defaults(handler=_console)

    actions = commands.add_parser(
        "actions", help="serve the custom actions on 127.0.0.1:5055 (ACTION_SERVER_TOKEN required by callers)"
    )
    actions.set_defaults(handler=_actions)

    hash_password = commands.add_parser("hash-password", help="hash a console password for the users file")
    hash_password.add_argument("rest", nargs=argparse.REMAINDER)
    hash_password.set_defaults(handler=_hash_password)

    evaluate = commands.add_parser("evaluate", help="measure what the assistant does with labeled cases")
    evaluate.add_argument("cases", help="YAML file with `cases: [{text, expect}]`")
    evaluate.add_argument("--json", metavar="OUT", help="also write a JSON report here")
    evaluate.add_argument("--model", help="model archive (default: the newest in models/)")
    evaluate.add_argument("--min-faq-accuracy", type=float, metavar="X", help="exit 1 below this FAQ accuracy")
    evaluate.add_argument("--min-escalation-recall", type=float, metavar="X", help="exit 1 below this recall")
    evaluate.add_argument(
        "--max-false-escalation-rate", type=float, metavar="X", help="exit 1 above this false escalation rate"
    )
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.add_argument(
        "--server",
        metavar="URL",
        help="also send every case to this running Rasa server (started with --enable-api) and report "
        "where it did something else; the messages are real: risk cases record escalations, so use a test server",
    )
    evaluate.add_argument("--token", metavar="T", help="the server's --auth-token (default: RASA_AUTH_TOKEN)")
    evaluate.add_argument(
        "--min-agreement", type=float, metavar="X", help="with --server: exit 1 below this agreement rate"
    )
    evaluate.set_defaults(handler=_evaluate)

    unanswered = commands.add_parser(
        "unanswered", help="list questions the assistant could not answer well, similar ones grouped"
    )
    unanswered.add_argument("--since", metavar="DATE", help="only questions from this day on (YYYY-MM-DD)")
    unanswered.add_argument("--json", metavar="OUT", help="also write the groups as JSON here")
    unanswered.add_argument("--examples", type=int, default=3, metavar="N", help="other phrasings shown per group")
    unanswered.add_argument(
        "--min-similarity", type=float, metavar="X", help="how alike the questions in a group must be (0-1)"
    )
    unanswered.set_defaults(handler=_unanswered)
    return parser


def main(argv: Optional[List[str]] = None, private_process: bool = False) -> int:
    """Entry point of `python -m bot`; `private_process` (the program itself) makes the whole process's logs private."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    if private_process:
        from bot.log_privacy import install

        install(secrets=(settings.rasa_auth_token, settings.action_server_token))
    # endpoints.yml refers to ${ACTION_SERVER_TOKEN}: Rasa refuses to read it when unset.
    os.environ.setdefault("ACTION_SERVER_TOKEN", settings.action_server_token)
    return int(args.handler(args, settings))
