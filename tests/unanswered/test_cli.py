"""`python -m bot unanswered`: grouped output, --since and --json."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Iterator

import pytest

from bot.cli import main
from bot.unanswered.decision import FALLBACK, LOW_CONFIDENCE, UnansweredQuestion
from bot.unanswered.store import UnansweredStore


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[UnansweredStore]:
    """A log with questions from October and November, read by the CLI through UNANSWERED_DB_URL."""
    url = f"sqlite:///{tmp_path / 'unanswered.db'}"
    monkeypatch.setenv("UNANSWERED_DB_URL", url)
    store = UnansweredStore(url)
    Q = UnansweredQuestion
    store.add(
        [
            Q(date(2026, 10, 30), FALLBACK, "can my cat come along", None, None),
            Q(date(2026, 11, 2), LOW_CONFIDENCE, "is it covered by medicare", "faq/availability", 0.4),
            Q(date(2026, 11, 5), LOW_CONFIDENCE, "is it covered by medicare?", "faq/availability", 0.5),
            Q(date(2026, 11, 9), FALLBACK, "does medicare cover it", "faq/legal_status", 0.2),
            Q(date(2026, 11, 20), FALLBACK, "what about psilocybin, [NAME]", "faq/what_is_mdma", 0.2),
        ]
    )
    yield store
    store.dispose()


def test_lists_groups_biggest_first_with_counts_topics_and_examples(
    stored: UnansweredStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["unanswered"]) == 0
    assert capsys.readouterr().out == (
        "Unanswered questions, all dates: 5 messages in 3 groups\n"
        "\n"
        '  1. 3 × "is it covered by medicare"\n'
        "     closest topic: faq/availability (2 of 3)\n"
        "     why: unsure answer 2, fallback or Did you mean 1\n"
        "     seen: 2026-11-02 to 2026-11-09\n"
        "     also asked as:\n"
        '       - "does medicare cover it"\n'
        "\n"
        '  2. 1 × "what about psilocybin, [NAME]"\n'
        "     closest topic: faq/what_is_mdma (1 of 1)\n"
        "     why: fallback or Did you mean 1\n"
        "     seen: 2026-11-20\n"
        "\n"
        '  3. 1 × "can my cat come along"\n'
        "     closest topic: none\n"
        "     why: fallback or Did you mean 1\n"
        "     seen: 2026-10-30\n"
    )


def test_since_leaves_out_older_questions(stored: UnansweredStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unanswered", "--since", "2026-11-05"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Unanswered questions since 2026-11-05: 3 messages in 2 groups\n")
    assert "cat" not in out
    assert '2 × "does medicare cover it"' in out or '2 × "is it covered by medicare?"' in out


def test_since_after_the_last_question(stored: UnansweredStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unanswered", "--since", "2026-11-21"]) == 0
    assert capsys.readouterr().out == "No unanswered questions since 2026-11-21.\n"


def test_json_report(stored: UnansweredStore, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "unanswered.json"
    assert main(["unanswered", "--since", "2026-11-01", "--json", str(out), "--examples", "1"]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["since"] == "2026-11-01"
    assert report["total"] == 4
    assert report["groups"][0] == {
        "count": 3,
        "representative": "is it covered by medicare",
        "examples": ["does medicare cover it"],
        "guessed_topic": "faq/availability",
        "guessed_topic_count": 2,
        "reasons": {"low_confidence": 2, "fallback": 1},
        "first_seen": "2026-11-02",
        "last_seen": "2026-11-09",
    }
    assert [g["count"] for g in report["groups"]] == [3, 1]


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "01/11/2026"])
def test_a_bad_date_is_refused(stored: UnansweredStore, capsys: pytest.CaptureFixture[str], since: str) -> None:
    assert main(["unanswered", "--since", since]) == 2
    assert "--since must be a date like 2026-11-01" in capsys.readouterr().err


def test_an_empty_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("UNANSWERED_DB_URL", f"sqlite:///{tmp_path / 'new' / 'unanswered.db'}")
    assert main(["unanswered"]) == 0
    assert capsys.readouterr().out == "No unanswered questions yet.\n"


def test_an_unreachable_database_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UNANSWERED_DB_URL", "postgresql+psycopg2://nobody:secret@127.0.0.1:9/x?connect_timeout=2")
    assert main(["unanswered"]) == 1
    err = capsys.readouterr().err
    assert "cannot read the unanswered questions" in err
    assert "secret" not in err


def test_min_similarity_sets_how_alike_a_group_is(stored: UnansweredStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unanswered", "--min-similarity", "1"]) == 0
    assert capsys.readouterr().out.startswith("Unanswered questions, all dates: 5 messages in 4 groups\n")
    assert main(["unanswered", "--min-similarity", "0"]) == 2
    assert "--min-similarity must be above 0" in capsys.readouterr().err
