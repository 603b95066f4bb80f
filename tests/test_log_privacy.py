"""bot.log_privacy: one redactor keeps people's words, contact details and secrets out of every log line."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.log_privacy import REDACTED, LogRedactor, texts_in_action_call
from bot.settings import PROJECT_ROOT

MARKER = f"otter{uuid.uuid4().hex[:10]}"


def _record(message: str, *args: object, exc_info: object = None, name: str = "any") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, args, exc_info)  # type: ignore[arg-type]


def _formatted(redactor: LogRedactor, record: logging.LogRecord) -> str:
    redactor.filter(record)
    return logging.Formatter("%(message)s").format(record)


@pytest.mark.parametrize(
    "text",
    [
        "call me on +1 555 201 8899 please",
        "my number is (555) 201-8899",
        "07700 900123",
        "write to jane.doe@example.org",
        "GET /conversations/x/tracker?token=s3cr3t-t0ken HTTP/1.1",
        "Authorization: Bearer s3cr3t-t0ken",
    ],
)
def test_contact_details_and_secrets_are_redacted(text: str) -> None:
    redacted = LogRedactor().redact(text)

    assert REDACTED in redacted
    for secret in ("8899", "201-8899", "900123", "jane.doe", "s3cr3t"):
        assert secret not in redacted


@pytest.mark.parametrize(
    "text",
    [
        "Escalation 6f1c7a52-0000-4000-8000-000000000001 recorded (urgent, suicide).",
        "Raised at 2026-11-28T09:30:00+00:00 and 2026-11-28 09:30:00",
        "Action server listening on http://127.0.0.1:5055 (token required).",
        "Starting worker [1234567]",
        "rasa 3.6.21, sanic 21.12.2, 681 of 681 cases",
        "Connected to 192.168.100.200:5432",
        "NLU confidence 0.3512345678901234 for intent 'faq' is lower than NLU threshold 0.40.",
    ],
)
def test_ordinary_log_lines_are_left_alone(text: str) -> None:
    assert LogRedactor().redact(text) == text


def test_remembered_messages_are_redacted_wherever_they_appear() -> None:
    redactor = LogRedactor()
    redactor.remember_text(f"  I feel lost {MARKER}  ")
    redactor.remember_text("ok")  # too short to matter, never redacted

    record = _record("Could not handle %r for %s", {"text": f"I feel lost {MARKER}"}, "someone")

    assert _formatted(redactor, record) == f"Could not handle {{'text': '{REDACTED}'}} for someone"
    assert redactor.redact("ok then") == "ok then"


def test_the_set_of_remembered_messages_is_bounded() -> None:
    redactor = LogRedactor(recent_texts=2)
    for word in ("first-message", "second-message", "third-message"):
        redactor.remember_text(word)

    assert redactor.redact("first-message third-message") == f"first-message {REDACTED}"


def test_sqlalchemy_statement_parameters_are_redacted_from_tracebacks(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, transcript TEXT NOT NULL UNIQUE)"))
        connection.execute(sa.text("INSERT INTO t (transcript) VALUES (:v)"), {"v": f"my words {MARKER}"})
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO t (transcript) VALUES (:v)"), {"v": f"my words {MARKER}"})
    except sa.exc.IntegrityError:
        record = _record("Could not store the escalation.", exc_info=sys.exc_info())
    engine.dispose()

    output = _formatted(LogRedactor(), record)

    assert "IntegrityError" in output and "[parameters: [redacted]]" in output
    assert MARKER not in output


def test_the_action_servers_reply_in_rasas_error_is_redacted() -> None:
    from rasa.utils.endpoints import ClientResponseError

    try:
        raise ClientResponseError(500, "Internal Server Error", f'{{"request_body": {{"text": "{MARKER}"}}}}')
    except ClientResponseError:
        record = _record("Encountered an exception while running action", exc_info=sys.exc_info())

    output = _formatted(LogRedactor(), record)

    assert "500, Internal Server Error, body=[redacted]" in output
    assert MARKER not in output


def test_structlog_fields_with_words_are_replaced() -> None:
    redactor = LogRedactor()
    event = {
        "event": "processor.message.parse",
        "parse_data_text": f"I feel lost {MARKER}",
        "parse_data_intent": {"name": "risk_urgent"},
        "user_text": f"/greet hi {MARKER}",
        "note": "reach me at jane.doe@example.org",
    }

    out = redactor.redact_event_dict(None, "debug", dict(event))

    assert out["parse_data_text"] == out["user_text"] == REDACTED
    assert MARKER not in repr(out) and "jane.doe" not in repr(out)
    assert "risk_urgent" in repr(out["parse_data_intent"])


def test_texts_of_an_action_call_are_the_persons_messages() -> None:
    call = {
        "tracker": {
            "latest_message": {"text": "latest words"},
            "events": [{"event": "user", "text": "earlier words"}, {"event": "bot", "text": "bot words"}, "junk"],
        }
    }
    assert texts_in_action_call(call) == ["latest words", "earlier words"]
    assert texts_in_action_call({"tracker": "junk"}) == []


# In a real process, with the redactor installed as every entry point installs it.
SCRIPT = textwrap.dedent(
    """
    import logging, os, sys, warnings
    from bot import log_privacy
    marker, token = sys.argv[1], sys.argv[2]
    log_privacy.install(secrets=[token], level=logging.INFO)
    log_privacy.remember_text(f"I feel lost {marker}")
    # A logger that does not propagate, with its own handler (as Sanic's do).
    sanic_error = logging.getLogger("sanic.error")
    sanic_error.propagate = False
    sanic_error.addHandler(logging.StreamHandler(sys.stderr))
    sanic_error.error("Exception occurred while handling uri: 'http://h/x?token=%s' %s", token, f"I feel lost {marker}")
    logging.getLogger("rasa.core.processor").warning("Message was: I feel lost %s", marker)
    try:
        raise ValueError(f"bad text I feel lost {marker}")
    except ValueError:
        logging.getLogger("bot.x").exception("Handling failed")
    warnings.warn(f"Failed to parse arguments in line '/greet {marker}'. Failed to interpret some parts. "
                  f"Continuing without {marker}. ")
    import structlog
    structlog.get_logger().warning("message.parsing.failed", user_text=f"/greet {marker}")
    logging.getLogger("bot.x").info("Using token %s", token)
    with open(os.path.join(sys.argv[3], "new-file"), "w") as handle:
        handle.write("x")
    os.mkdir(os.path.join(sys.argv[3], "new-folder"))
    print("done", flush=True)
    """
)


def test_installed_in_a_process_every_logger_and_warning_is_redacted(tmp_path: Path) -> None:
    token = "tok-" + uuid.uuid4().hex
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONWARNINGS": "default"}

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, MARKER, token, str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=120, check=False,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Exception occurred while handling uri" in output and "Handling failed" in output
    assert "ValueError" in output and "message.parsing.failed" in output and "Failed to parse arguments" in output
    assert MARKER not in output
    assert token not in output
    assert stat.S_IMODE((tmp_path / "new-file").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "new-folder").stat().st_mode) == 0o700
