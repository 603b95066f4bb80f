"""FAQ accuracy and escalation recall of a model, measured by `python -m bot evaluate`."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import yaml

from bench.processes import run_measured
from bench.progress import clock, say
from bench.workspace import PROJECT_ROOT, Contender, Workspace


@dataclass(frozen=True)
class Accuracy:
    """Held-out figures of one model (both case files)."""

    faq_accuracy: float
    faq_cases: int
    fallback_rate: float
    escalation_recall: float
    escalation_cases: int
    false_escalations: int
    safe_cases: int

    @property
    def false_escalation_rate(self) -> float:
        """Escalations of messages that needed none, over both files."""
        return self.false_escalations / self.safe_cases if self.safe_cases else 0.0


class EvaluationFailed(RuntimeError):
    """`python -m bot evaluate` did not produce a report."""


def texts(cases_file: Path) -> List[str]:
    """The `text` of every case in a held-out file."""
    document = yaml.safe_load(cases_file.read_text(encoding="utf-8"))
    return [str(case["text"]) for case in document["cases"]]


def write_subset(source: Path, target: Path, count: int) -> Path:
    """Every n-th case of a file, so a --quick run still spans its topics."""
    cases = yaml.safe_load(source.read_text(encoding="utf-8"))["cases"]
    step = max(1, len(cases) // count)
    subset = [{"text": case["text"], "expect": case["expect"]} for case in cases[::step][:count]]
    target.write_text(
        f"# {count} cases of {source.name} for `python -m bench --quick`.\n"
        + yaml.safe_dump({"cases": subset}, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return target


def _evaluate(contender: Contender, workspace: Workspace, cases_file: Path) -> Dict[str, Any]:
    report = workspace.evaluations / f"{contender.name}-{cases_file.stem}.json"
    report.unlink(missing_ok=True)
    log = workspace.logs / f"evaluate-{contender.name}-{cases_file.stem}.log"
    command = [
        sys.executable, "-m", "bot", "evaluate", str(cases_file),
        "--model", str(contender.model),
        "--json", str(report),
        "--no-progress",
    ]
    finished = run_measured(
        command,
        workspace.child_env(),
        PROJECT_ROOT,
        log,
        heartbeat=lambda elapsed: say(f"  still evaluating {contender.name} on {cases_file.name} ({clock(elapsed)})"),
    )
    if finished.returncode != 0 or not report.exists():
        raise EvaluationFailed(f"evaluating {contender.name} on {cases_file.name} failed; see {log}")
    summary: Dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))["summary"]
    return summary


def measure(contender: Contender, workspace: Workspace, faq_file: Path, risk_file: Path) -> Accuracy:
    """Evaluates the model on the held-out FAQ and risk cases (in process, production rules)."""
    say(f"evaluating {contender.name} on {faq_file.name} and {risk_file.name}")
    faq = _evaluate(contender, workspace, faq_file)
    risk = _evaluate(contender, workspace, risk_file)
    accuracy = Accuracy(
        faq_accuracy=faq["faq_accuracy"],
        faq_cases=faq["faq_cases"],
        fallback_rate=faq["fallback_rate"],
        escalation_recall=risk["escalation_recall"],
        escalation_cases=risk["escalation_cases"],
        false_escalations=faq["false_escalations"] + risk["false_escalations"],
        safe_cases=(faq["cases"] - faq["escalation_cases"]) + (risk["cases"] - risk["escalation_cases"]),
    )
    say(
        f"  {contender.name}: FAQ accuracy {accuracy.faq_accuracy:.1%}, "
        f"escalation recall {accuracy.escalation_recall:.1%}, "
        f"false escalations {accuracy.false_escalations}/{accuracy.safe_cases}"
    )
    return accuracy
