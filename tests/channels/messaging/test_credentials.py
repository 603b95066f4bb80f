"""write_active_credentials: channels whose variables are unset stay off; nothing secret is written."""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml
from rasa.core.run import create_http_input_channels
from rasa.shared.utils.io import read_config_file

from bot.channels.credentials import write_active_credentials
from bot.channels.messaging.facebook import VerifiedMessengerInput
from bot.channels.messaging.telegram import VerifiedTelegramInput
from bot.settings import PROJECT_ROOT

from .conftest import CHANNEL_ENV, MESSAGING_CHANNELS

TEMPLATE = PROJECT_ROOT / "credentials.yml"
REST = "bot.channels.rest.ValidatingRestInput"
TELEGRAM, SLACK, TWILIO, WHATSAPP, MESSENGER = MESSAGING = MESSAGING_CHANNELS

REQUIRED: Dict[str, List[str]] = {
    # TELEGRAM_SECRET_TOKEN unless TELEGRAM_ALLOW_UNVERIFIED is true (see the tests below).
    TELEGRAM: ["TELEGRAM_ACCESS_TOKEN", "TELEGRAM_BOT_NAME", "TELEGRAM_WEBHOOK_URL", "TELEGRAM_SECRET_TOKEN"],
    SLACK: ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"],
    TWILIO: ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_NUMBER", "TWILIO_WEBHOOK_URL"],
    WHATSAPP: ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_WHATSAPP_NUMBER", "TWILIO_WHATSAPP_WEBHOOK_URL"],
    MESSENGER: ["FACEBOOK_VERIFY_TOKEN", "FACEBOOK_APP_SECRET", "FACEBOOK_PAGE_ACCESS_TOKEN"],
}
OPTIONAL = {
    "TELEGRAM_ALLOW_UNVERIFIED": (TELEGRAM, "allow_unverified"),
    "TELEGRAM_API_BASE_URL": (TELEGRAM, "api_base_url"),
    "FACEBOOK_ALLOW_SHA1_SIGNATURE": (MESSENGER, "allow_sha1_signature"),
    "SLACK_API_BASE_URL": (SLACK, "api_base_url"),
    "TWILIO_API_BASE_URL": (TWILIO, "api_base_url"),
    "FACEBOOK_GRAPH_API_URL": (MESSENGER, "graph_api_url"),
}


def written(path: Path) -> Dict[str, object]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def test_without_channel_variables_only_the_sections_without_variables_stay(tmp_path: Path) -> None:
    out = tmp_path / "credentials.yml"
    enabled = write_active_credentials(TEMPLATE, {}, out)
    assert REST in enabled
    assert not set(MESSAGING) & set(enabled)
    assert list(written(out)) == enabled
    assert written(out)[REST] is None


def test_with_every_variable_set_every_channel_is_on(tmp_path: Path) -> None:
    enabled = write_active_credentials(TEMPLATE, CHANNEL_ENV, tmp_path / "credentials.yml")
    assert enabled[0] == REST
    assert [name for name in enabled if name in MESSAGING] == MESSAGING


@pytest.mark.parametrize(
    ("channel", "variable"),
    [(channel, variable) for channel, variables in REQUIRED.items() for variable in variables],
)
@pytest.mark.parametrize("unset", ["missing", "empty", "blank"])
def test_a_channel_with_an_unset_required_variable_stays_off(
    tmp_path: Path, channel: str, variable: str, unset: str
) -> None:
    env = dict(CHANNEL_ENV)
    if unset == "missing":
        del env[variable]
    else:
        env[variable] = "" if unset == "empty" else "   "
    enabled = write_active_credentials(TEMPLATE, env, tmp_path / "credentials.yml")
    assert channel not in enabled
    assert REST in enabled
    untouched = [name for name, variables in REQUIRED.items() if variable not in variables]
    assert set(untouched) <= set(enabled)


@pytest.mark.parametrize("variable", sorted(OPTIONAL))
def test_an_unset_optional_variable_leaves_its_key_out(tmp_path: Path, variable: str) -> None:
    channel, key = OPTIONAL[variable]
    out = tmp_path / "credentials.yml"
    env = {k: v for k, v in CHANNEL_ENV.items() if k != variable}
    assert channel in write_active_credentials(TEMPLATE, env, out)
    assert key not in written(out)[channel]
    write_active_credentials(TEMPLATE, {**CHANNEL_ENV, variable: CHANNEL_ENV.get(variable, "true")}, out)
    assert written(out)[channel][key] == "${" + variable + "}"


def test_the_file_holds_references_only_and_only_its_owner_can_read_it(tmp_path: Path) -> None:
    out = tmp_path / "var" / "credentials.active.yml"
    write_active_credentials(TEMPLATE, CHANNEL_ENV, out)
    text = out.read_text(encoding="utf-8")
    for value in CHANNEL_ENV.values():
        assert value not in text
    assert "${TWILIO_AUTH_TOKEN}" in text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == [out.name], "no temporary file left behind"


def test_rasa_loads_the_file_and_builds_every_channel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "credentials.yml"
    write_active_credentials(TEMPLATE, CHANNEL_ENV, out)
    for name, value in CHANNEL_ENV.items():
        monkeypatch.setenv(name, value)
    loaded = read_config_file(str(out))
    assert loaded[TWILIO]["auth_token"] == CHANNEL_ENV["TWILIO_AUTH_TOKEN"]
    assert loaded[TELEGRAM]["secret_token"] == CHANNEL_ENV["TELEGRAM_SECRET_TOKEN"]
    names = {channel.name() for channel in create_http_input_channels(None, str(out))}
    assert {"rest", "telegram", "slack", "twilio", "twilio_whatsapp", "facebook"} <= names


def test_the_output_is_a_valid_template_for_itself(tmp_path: Path) -> None:
    first = tmp_path / "first.yml"
    second = tmp_path / "second.yml"
    enabled = write_active_credentials(TEMPLATE, CHANNEL_ENV, first)
    assert write_active_credentials(first, CHANNEL_ENV, second) == enabled
    assert written(second) == written(first)


def test_variables_inside_text_lists_and_nested_settings(tmp_path: Path) -> None:
    template = tmp_path / "template.yml"
    template.write_text(
        "plain.Channel:\n"
        "  url: https://${HOST}/hook\n"
        "  options:\n"
        "    retries: 3\n"
        "    label: ${LABEL:-}\n"
        "  tags: [fixed, '${TAG:-}']\n"
        "needs.Other:\n"
        "  nested:\n"
        "    key: ${OTHER_KEY}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.yml"
    assert write_active_credentials(template, {"HOST": "example.org"}, out) == ["plain.Channel"]
    expected = {"url": "https://${HOST}/hook", "options": {"retries": 3}, "tags": ["fixed"]}
    assert written(out) == {"plain.Channel": expected}
    env = {"HOST": "example.org", "LABEL": "x", "TAG": "y", "OTHER_KEY": "z"}
    assert write_active_credentials(template, env, out) == ["plain.Channel", "needs.Other"]
    assert written(out)["plain.Channel"]["tags"] == ["fixed", "${TAG}"]


def test_a_value_rasa_would_not_expand_is_an_error(tmp_path: Path) -> None:
    template = tmp_path / "template.yml"
    template.write_text("some.Channel:\n  token: '#${TOKEN}'\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expands"):
        write_active_credentials(template, {"TOKEN": "x"}, tmp_path / "out.yml")


@pytest.mark.parametrize("content", ["- a\n- b\n", "just text\n"])
def test_a_template_that_is_not_a_mapping_is_an_error(tmp_path: Path, content: str) -> None:
    template = tmp_path / "template.yml"
    template.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError):
        write_active_credentials(template, {}, tmp_path / "out.yml")


def test_an_empty_template_enables_nothing(tmp_path: Path) -> None:
    template = tmp_path / "template.yml"
    template.write_text("# nothing\n", encoding="utf-8")
    assert write_active_credentials(template, {}, tmp_path / "out.yml") == []


def without_secret_token(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in CHANNEL_ENV.items() if k != "TELEGRAM_SECRET_TOKEN"}
    env.update(extra)
    return env


@pytest.mark.parametrize("allow", [None, "", "false", "no", "maybe"])
def test_telegram_without_a_secret_token_stays_off_with_the_reason_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, allow: Optional[str]
) -> None:
    env = without_secret_token() if allow is None else without_secret_token(TELEGRAM_ALLOW_UNVERIFIED=allow)
    with caplog.at_level(logging.ERROR, logger="bot.channels.credentials"):
        enabled = write_active_credentials(TEMPLATE, env, tmp_path / "credentials.yml")
    assert TELEGRAM not in enabled
    assert [name for name in enabled if name in MESSAGING] == [SLACK, TWILIO, WHATSAPP, MESSENGER]
    assert "VerifiedTelegramInput channel stays off: TELEGRAM_SECRET_TOKEN is unset" in caplog.text
    for value in CHANNEL_ENV.values():
        assert value not in caplog.text


@pytest.mark.parametrize("allow", ["true", "TRUE", "1", "yes"])
def test_telegram_without_a_secret_token_starts_only_when_explicitly_allowed_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, allow: str
) -> None:
    out = tmp_path / "credentials.yml"
    with caplog.at_level(logging.WARNING, logger="bot.channels.credentials"):
        enabled = write_active_credentials(TEMPLATE, without_secret_token(TELEGRAM_ALLOW_UNVERIFIED=allow), out)
    assert TELEGRAM in enabled
    assert "WITHOUT a secret token" in caplog.text
    assert written(out)[TELEGRAM]["allow_unverified"] == "${TELEGRAM_ALLOW_UNVERIFIED}"
    assert "secret_token" not in written(out)[TELEGRAM]


def test_the_telegram_channel_warns_at_every_start_when_unverified(caplog: pytest.LogCaptureFixture) -> None:
    section = {"access_token": "7012345678:AAFake", "verify": "bot", "webhook_url": "https://a.example/webhook"}
    with caplog.at_level(logging.WARNING, logger="bot.channels.messaging.telegram"):
        channel = VerifiedTelegramInput.from_credentials({**section, "allow_unverified": "true"})
    assert isinstance(channel, VerifiedTelegramInput) and channel.allow_unverified
    assert "accepts updates from anyone" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bot.channels.messaging.telegram"):
        refusing = VerifiedTelegramInput.from_credentials(section)
    assert isinstance(refusing, VerifiedTelegramInput) and not refusing.allow_unverified
    assert "every update will be refused" in caplog.text


def test_messenger_reads_the_sha1_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = {"verify": "v", "secret": "s", "page-access-token": "t"}
    assert VerifiedMessengerInput.from_credentials(section).allow_sha1_signature is False  # type: ignore[attr-defined]
    allowed = VerifiedMessengerInput.from_credentials({**section, "allow_sha1_signature": "true"})
    assert allowed.allow_sha1_signature is True  # type: ignore[attr-defined]


class _Headers:
    def __init__(self, headers: Dict[str, str]) -> None:
        self.headers = headers


@pytest.mark.parametrize(
    ("secret_token", "allow_unverified", "headers", "accepted"),
    [
        (None, False, {}, False),
        (None, False, {"X-Telegram-Bot-Api-Secret-Token": "anything"}, False),
        (None, True, {}, True),
        ("s3cret", False, {}, False),
        ("s3cret", True, {}, False),
        ("s3cret", False, {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}, True),
    ],
)
def test_which_telegram_updates_are_let_through(
    secret_token: Optional[str], allow_unverified: bool, headers: Dict[str, str], accepted: bool
) -> None:
    channel = VerifiedTelegramInput(
        "7012345678:AAFake", "bot", None, secret_token=secret_token, allow_unverified=allow_unverified
    )
    assert channel._verified(_Headers(headers)) is accepted  # type: ignore[arg-type]
