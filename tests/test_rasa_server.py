"""bot.rasa_server: Rasa's check of action server replies, compiled once, same verdicts and errors."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Dict

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot.rasa_server import _validate_action_result, install_action_response_check

ORIGINAL = RemoteAction._validate_action_result
ACTION = RemoteAction("action_escalate_to_clinician", None)

VALID = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "escalation_id", "value": "e-1", "timestamp": None}], "responses": []},
    {"events": [], "responses": [{"response": "utter_offer_contact", "buttons": []}]},
]
INVALID = [
    {"events": "not a list", "responses": []},
    {"events": [{"event": "slot", "name": 3}], "responses": []},
    {"events": [], "responses": "nope"},
]


@pytest.mark.parametrize("result", VALID)
def test_valid_replies_pass_as_before(result: Dict[str, Any]) -> None:
    assert ORIGINAL(ACTION, result) is True
    assert _validate_action_result(ACTION, result) is True


@pytest.mark.parametrize("result", INVALID)
def test_invalid_replies_fail_with_rasas_own_error(result: Dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as rasas:
        ORIGINAL(ACTION, result)
    with pytest.raises(ValidationError) as ours:
        _validate_action_result(ACTION, result)

    assert ours.value.message == rasas.value.message
    assert "Failed to validate Action server response" in ours.value.message


def test_installing_replaces_rasas_check() -> None:
    try:
        install_action_response_check()
        assert RemoteAction._validate_action_result is _validate_action_result
    finally:
        RemoteAction._validate_action_result = ORIGINAL  # type: ignore[method-assign]


def test_the_command_line_is_rasas() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.rasa_server", "run", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "--enable-api" in result.stdout
    assert "--endpoints" in result.stdout
