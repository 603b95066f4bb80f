"""Case files for `python -m bot evaluate`: valid files load, broken ones name the wrong line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import pytest

from bot.evaluation.cases import Case, CaseFileError, load_cases

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "cases.yml"
    path.write_text(content, encoding="utf-8")
    return path


def test_valid_file_loads_every_case_with_its_line(tmp_path: Path):
    path = _write(
        tmp_path,
        "# labeled cases\n"
        "cases:\n"
        '- text: "is mdma legal?"\n'
        "  expect: faq/legal_status\n"
        "- text: hi\n"
        "  expect: greet\n"
        "- text: I want to die\n"
        "  expect: escalate\n",
    )

    cases = load_cases(path)

    assert cases == [
        Case(text="is mdma legal?", expect=("faq/legal_status",), line=3),
        Case(text="hi", expect=("greet",), line=5),
        Case(text="I want to die", expect=("escalate",), line=7),
    ]


@pytest.mark.parametrize(
    "expect, outcomes",
    [
        ("faq/is_it_safe | faq/risks_and_side_effects", ("faq/is_it_safe", "faq/risks_and_side_effects")),
        ("greet|thank", ("greet", "thank")),
        ("out_of_scope | nlu_fallback | ", ("out_of_scope", "nlu_fallback")),
        ("  faq/legal_status  ", ("faq/legal_status",)),
    ],
)
def test_expect_is_split_on_pipes(tmp_path: Path, expect: str, outcomes: Tuple[str, ...]):
    path = _write(tmp_path, f'cases:\n- text: hi\n  expect: "{expect}"\n')

    [case] = load_cases(path)

    assert case.expect == outcomes


@pytest.mark.parametrize(
    "expect, faq, escalation",
    [
        (("faq/legal_status",), True, False),
        (("greet", "faq/what_is_mdma"), True, False),
        (("escalate", "faq/what_is_mdma"), True, True),
        (("escalate",), False, True),
        (("out_of_scope", "nlu_fallback"), False, False),
    ],
)
def test_case_properties(expect: Tuple[str, ...], faq: bool, escalation: bool):
    case = Case(text="t", expect=expect, line=1)

    assert case.expects_faq is faq
    assert case.expects_escalation is escalation
    assert all(case.accepts(outcome) for outcome in expect)
    assert not case.accepts("something_else")


@pytest.mark.parametrize(
    "content, line, problem",
    [
        pytest.param(
            'cases:\n- text: "hi"\n  expect: greet\n- text: "bye"\n   expect: goodbye\n',
            5,
            "not valid YAML",
            id="bad indentation",
        ),
        pytest.param("cases:\n- text: hi\n\texpect: greet\n", 3, "not valid YAML", id="tab"),
        pytest.param("cases:\n- text: hi: there\n  expect: greet\n", 2, "not valid YAML", id="colon in plain text"),
        pytest.param("cases:\n- text: *nope\n  expect: greet\n", 2, "not valid YAML", id="undefined alias"),
        pytest.param(
            "cases:\n- text: hi\n  expect: greet\n- expect: goodbye\n", 4, "case has no `text`", id="missing text"
        ),
        pytest.param('cases:\n- text: "  "\n  expect: greet\n', 2, "case has no `text`", id="blank text"),
        pytest.param(
            "cases:\n- text: hi\n  expect: greet\n\n- text: bye\n", 5, "case has no `expect`", id="missing expect"
        ),
        pytest.param('cases:\n- text: hi\n  expect: ""\n', 2, "case has no `expect`", id="empty expect"),
        pytest.param('cases:\n- text: hi\n  expect: " | "\n', 2, "`expect` is empty", id="only pipes"),
        pytest.param(
            "cases:\n- text: hi\n  expect: greet\n- just a string\n",
            4,
            "each case must be a mapping",
            id="case not a mapping",
        ),
        pytest.param("# header\n\ncases: []\n", 3, "`cases:` is empty", id="empty cases"),
        pytest.param("# header\ncases: hello\n", 2, "`cases:` must be a list", id="cases a string"),
        pytest.param(
            "# header\ncases:\n  text: hi\n  expect: greet\n", 3, "`cases:` must be a list", id="cases a mapping"
        ),
        pytest.param("", 1, "expected a mapping", id="empty file"),
        pytest.param("- text: hi\n  expect: greet\n", 1, "expected a mapping", id="top level a list"),
        pytest.param(
            "# held-out cases\n# never train on these\n- text: hi\n  expect: greet\n",
            3,
            "expected a mapping",
            id="top level a list after comments",
        ),
        pytest.param("# held-out cases\nitems:\n- text: hi\n", 2, "`cases:` must be a list", id="no cases key"),
    ],
)
def test_broken_files_name_the_line(tmp_path: Path, content: str, line: int, problem: str):
    path = _write(tmp_path, content)

    with pytest.raises(CaseFileError) as raised:
        load_cases(path)

    message = str(raised.value)
    assert message.startswith(f"{path}: line {line}: ")
    assert problem in message


def test_unreadable_file(tmp_path: Path):
    with pytest.raises(CaseFileError, match="cannot read the file"):
        load_cases(tmp_path / "missing.yml")


def test_non_utf8_file(tmp_path: Path):
    path = tmp_path / "cases.yml"
    path.write_bytes(b"cases:\n- text: caf\xe9\n  expect: greet\n")

    with pytest.raises(CaseFileError, match="cannot read the file"):
        load_cases(path)


# --- The command line -------------------------------------------------------------------


def _evaluate(*args: str, model_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RASA_MODEL_DIR": str(model_dir)}
    return subprocess.run(
        [sys.executable, "-m", "bot", "evaluate", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_reports_a_broken_case_file_without_a_traceback(tmp_path: Path):
    path = _write(tmp_path, 'cases:\n- text: "hi"\n  expect: greet\n- text: "bye"\n   expect: goodbye\n')

    result = _evaluate(str(path), model_dir=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "line 5" in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_reports_a_missing_model_without_a_traceback(tmp_path: Path):
    path = _write(tmp_path, "cases:\n- text: hi\n  expect: greet\n")
    empty = tmp_path / "models"
    empty.mkdir()

    result = _evaluate(str(path), model_dir=empty)

    assert result.returncode == 2
    assert result.stderr.startswith("error: No trained model in")
    assert "Traceback" not in result.stderr + result.stdout


# --- Risk labels: level and category, reported, never part of `expect` -------------------


def test_risk_cases_may_name_a_level_and_a_category(tmp_path: Path):
    path = _write(
        tmp_path,
        "cases:\n- text: I want to die\n  expect: escalate\n  level: priority\n  category: suicide\n"
        "- text: hi\n  expect: greet\n",
    )

    risky, plain = load_cases(path)

    assert (risky.level, risky.category, risky.expect) == ("priority", "suicide", ("escalate",))
    assert (plain.level, plain.category) == (None, None)


@pytest.mark.parametrize("label", ["level: [urgent]", "category: two words", 'level: ""'])
def test_a_label_that_is_not_one_word_names_its_line(tmp_path: Path, label: str):
    path = _write(tmp_path, f"cases:\n- text: hi\n  expect: escalate\n  {label}\n")

    with pytest.raises(CaseFileError, match=r"line 4: `(level|category)` must be a single word"):
        load_cases(path)


def _user_event(entities: list) -> dict:
    return {"event": "user", "text": "t", "parse_data": {"intent": {"name": "risk_urgent"}, "entities": entities}}


def test_risk_labels_come_from_the_latest_user_message():
    from bot.evaluation.runner import risk_labels_from_events

    flagged = [
        {"entity": "risk_level", "value": "urgent"},
        {"entity": "risk_category", "value": "suicide"},
    ]
    events = [_user_event([{"entity": "risk_level", "value": "priority"}]), {"event": "action"}, _user_event(flagged)]

    assert risk_labels_from_events(events) == ("urgent", "suicide")
    assert risk_labels_from_events([_user_event([])]) == (None, None)
    assert risk_labels_from_events([{"event": "action", "name": "action_listen"}]) == (None, None)


def test_the_summary_reports_label_agreement_over_escalated_cases_only():
    from bot.evaluation.report import as_json, summarise
    from bot.evaluation.runner import CaseResult

    def result(level: str, category: str, got: str, given: Tuple[object, object]) -> CaseResult:
        case = Case(text="t", expect=("escalate",), line=1, level=level, category=category)
        return CaseResult(case, got, 1.0, False, *given)  # type: ignore[arg-type]

    results = [
        result("urgent", "suicide", "escalate", ("urgent", "suicide")),
        result("urgent", "suicide", "escalate", ("priority", "suicide")),
        result("priority", "self_harm", "escalate", ("priority", "abuse_danger")),
        result("priority", "self_harm", "escalate", ("urgent", "unspecified")),
        # Missed entirely: counted in recall, not in label agreement.
        result("urgent", "suicide", "faq/availability", (None, None)),
    ]

    labels = summarise(results)["risk_labels"]

    assert labels["cases"] == 4
    assert labels["level_agreement"] == 0.5
    assert labels["category_agreement"] == 0.5
    assert {"expected": "urgent/suicide", "got": "priority/suicide", "count": 1} in labels["most_confused"]
    first = as_json(summarise(results), results)["cases"][0]
    assert (first["expect_level"], first["level"], first["category"]) == ("urgent", "urgent", "suicide")
