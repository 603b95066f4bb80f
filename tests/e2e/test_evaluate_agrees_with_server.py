"""`python -m bot evaluate` (in process) reaches the same outcome as a running Rasa server.

Every held-out case is evaluated in process and sent, as a new conversation, to
a real Rasa server with the same model; the server's outcome is read from its
tracker. The evaluator's figures are only worth something if they agree.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from bot.evaluation.cases import Case, load_cases
from bot.evaluation.runner import AssistantEvaluator, CaseResult, latest_model
from bot.evaluation.server_check import (
    RasaServerClient,
    ServerCheckError,
    compare_with_server,
    format_agreement,
)
from bot.services import Supervisor
from bot.settings import PROJECT_ROOT, Settings
from tests.escalation.receivers import free_port
from tests.servers import running_services, server_environment, write_endpoints

pytestmark = pytest.mark.e2e

RASA_PORT = free_port()
ACTION_PORT = free_port()
TOKEN = "server-check-token"
CASE_FILES = ("faq_cases.yml", "faq_cases_fresh.yml", "risk_cases.yml")
MIN_AGREEMENT = 0.97
SERVER_START_TIMEOUT = 300.0


@dataclass
class StartingServer:
    """The action and Rasa servers, started but maybe still loading the model."""

    supervisor: Supervisor
    model: Path
    base_url: str

    def wait_until_ready(self) -> None:
        if not self.supervisor.wait_until_ready(timeout=SERVER_START_TIMEOUT):
            pytest.fail("The Rasa server or the action server did not start; see the output above.")


def _copy_latest_model(target: Path) -> Path:
    """A private copy of the newest model, so a retrain during the test changes neither side."""
    model_dir = Settings.from_env().model_dir
    for _ in range(3):
        try:
            source = latest_model(model_dir)
            return Path(shutil.copy2(source, target / source.name))
        except FileNotFoundError:  # a model replaced while we copied it: take the new one
            continue
    pytest.fail(f"No trained model in {model_dir}: run `make train` (make test does) first.")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartingServer]:
    """Starts the action server and the Rasa server (REST channel, --enable-api, --auth-token)."""
    workdir = tmp_path_factory.mktemp("server-check")
    (workdir / "models").mkdir()
    model = _copy_latest_model(workdir / "models")
    write_endpoints(workdir, ACTION_PORT)
    env = server_environment(
        workdir, token=TOKEN, rasa_port=RASA_PORT, action_port=ACTION_PORT, RASA_MODEL_DIR=str(workdir / "models")
    )
    # Not waited for here: the test evaluates in process while the server loads.
    with running_services(env, only=("action server", "rasa server"), wait=False) as supervisor:
        yield StartingServer(supervisor, model, f"http://127.0.0.1:{RASA_PORT}")


def _evaluate_in_process(model: Path, cases: List[Case]) -> List[CaseResult]:
    """What `python -m bot evaluate` computes, with the model loaded once for every file."""
    evaluator = AssistantEvaluator.load(model, PROJECT_ROOT / "endpoints.yml")
    return asyncio.run(evaluator.run(cases, progress=False))


def test_evaluator_agrees_with_the_running_server_on_every_heldout_case(server: StartingServer) -> None:
    cases_by_file: Dict[str, List[Case]] = {
        name: load_cases(PROJECT_ROOT / "tests" / "heldout" / name) for name in CASE_FILES
    }
    all_cases = [case for cases in cases_by_file.values() for case in cases]
    # The server loads its model in another process meanwhile.
    results = _evaluate_in_process(server.model, all_cases)
    server.wait_until_ready()
    server_outcomes = RasaServerClient(server.base_url, TOKEN).outcomes([case.text for case in all_cases])

    reports, failing = [], []
    start = 0
    for name, cases in cases_by_file.items():
        end = start + len(cases)
        agreement = compare_with_server(results[start:end], server_outcomes[start:end])
        reports.append(f"{name}: {format_agreement(agreement)}")
        if agreement.rate < MIN_AGREEMENT:
            failing.append(name)
        start = end
    overall = compare_with_server(results, server_outcomes)
    report = "\n".join(reports + [f"all files: {format_agreement(overall).splitlines()[0]}"])
    print(report)

    assert len(all_cases) > 600, "every held-out case was compared"
    assert not failing and overall.rate >= MIN_AGREEMENT, report


def test_server_check_names_a_wrong_token(server: StartingServer) -> None:
    server.wait_until_ready()

    with pytest.raises(ServerCheckError, match="HTTP 401.*--auth-token"):
        RasaServerClient(server.base_url, "not-the-token").outcome("what is ptsd")


def test_cli_reports_agreement_with_the_server(server: StartingServer, tmp_path: Path) -> None:
    cases = tmp_path / "cases.yml"
    cases.write_text(
        "cases:\n"
        "- text: is mdma assisted therapy legal in the united states\n  expect: faq/legal_status\n"
        "- text: hello there\n  expect: greet\n"
        "- text: I have the pills ready and I'm going to kill myself tonight\n  expect: escalate\n",
        encoding="utf-8",
    )
    out = tmp_path / "report.json"
    server.wait_until_ready()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "RASA_MODEL_DIR": str(server.model.parent)}
    env.pop("RASA_AUTH_TOKEN", None)

    result = subprocess.run(
        [sys.executable, "-m", "bot", "evaluate", str(cases), "--no-progress", "--json", str(out),
         "--server", server.base_url, "--token", TOKEN, "--min-agreement", "1.0"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Agreement with the server: 100.0% (3/3 cases)" in result.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["server_agreement"]["rate"] == 1.0
    assert report["server_agreement"]["disagreements"] == []
    assert [case["got"] for case in report["cases"]] == ["faq/legal_status", "greet", "escalate"]
