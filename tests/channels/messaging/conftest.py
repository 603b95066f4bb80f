"""A real Rasa server with the messaging channels on, replying to a fake platform API on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping

import pytest

from bot.channels.credentials import write_active_credentials
from bot.services import Supervisor
from bot.settings import PROJECT_ROOT, Settings
from tests.escalation.receivers import free_port
from tests.servers import require_model, running_services, server_environment, write_console_users, write_endpoints

from .fake_platform import FakePlatform

RASA_PORT = free_port()
ACTION_PORT = free_port()
CONSOLE_PORT = free_port()
PLATFORM_PORT = free_port()
TOKEN = "messaging-test-token"
PUBLIC_BASE_URL = "https://assistant.example.org"
PLATFORM_URL = f"http://127.0.0.1:{PLATFORM_PORT}"

# Fake but well-formed credentials: the shapes each platform uses, no real secret.
CHANNEL_ENV: Dict[str, str] = {
    "TELEGRAM_ACCESS_TOKEN": "7012345678:AAFakeTestTokenOnly-abcdefghijklmnopqr",
    "TELEGRAM_BOT_NAME": "mdma_info_test_bot",
    "TELEGRAM_WEBHOOK_URL": f"{PUBLIC_BASE_URL}/webhooks/telegram/webhook",
    "TELEGRAM_SECRET_TOKEN": "test-secret_token-5f2c9a",
    "TELEGRAM_API_BASE_URL": f"{PLATFORM_URL}/telegram",
    "SLACK_BOT_TOKEN": "xoxb-000000000000-0000000000000-FakeTestTokenOnly0000",
    "SLACK_SIGNING_SECRET": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "SLACK_API_BASE_URL": f"{PLATFORM_URL}/slack/api/",
    "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "TWILIO_AUTH_TOKEN": "fedcba9876543210" * 2,
    "TWILIO_NUMBER": "+15005550006",
    "TWILIO_WEBHOOK_URL": f"{PUBLIC_BASE_URL}/webhooks/twilio/webhook",
    "TWILIO_WHATSAPP_NUMBER": "whatsapp:+14155238886",
    "TWILIO_WHATSAPP_WEBHOOK_URL": f"{PUBLIC_BASE_URL}/webhooks/twilio_whatsapp/webhook",
    "TWILIO_API_BASE_URL": f"{PLATFORM_URL}/twilio",
    "FACEBOOK_VERIFY_TOKEN": "fake-verify-token-3b7e",
    "FACEBOOK_APP_SECRET": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
    "FACEBOOK_PAGE_ACCESS_TOKEN": "EAAFakeTestPageAccessTokenOnly0000",
    "FACEBOOK_GRAPH_API_URL": f"{PLATFORM_URL}/facebook/v19.0",
}

MESSAGING_CHANNELS = [
    "bot.channels.messaging.telegram.VerifiedTelegramInput",
    "bot.channels.messaging.slack.VerifiedSlackInput",
    "bot.channels.messaging.twilio.VerifiedTwilioInput",
    "bot.channels.messaging.twilio.VerifiedTwilioWhatsAppInput",
    "bot.channels.messaging.facebook.VerifiedMessengerInput",
]


@dataclass
class RunningChannels:
    """The running servers, the fake platform and small HTTP helpers."""

    supervisor: Supervisor
    settings: Settings
    platform: FakePlatform
    enabled: List[str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.rasa_port}"

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base_url + path, data=body, headers=dict(headers), method="POST")
        return _send(request)

    def get(self, path: str) -> tuple[int, bytes]:
        return _send(urllib.request.Request(self.base_url + path, method="GET"))

    def conversation_exists(self, sender: str) -> bool:
        """Whether the tracker store holds the conversation (asking never creates one).

        Sender ids go into the path as they are ("+1555...", "whatsapp:+1..."):
        Rasa does not unquote conversation ids.
        """
        status, _ = self.get(f"/conversations/{urllib.parse.quote(sender, safe='+:@')}/story?token={TOKEN}")
        assert status in (200, 404), status
        return status == 200

    def events(self, sender: str) -> List[Dict[str, Any]]:
        status, body = self.get(f"/conversations/{urllib.parse.quote(sender, safe='+:@')}/tracker?token={TOKEN}")
        assert status == 200, body
        return json.loads(body)["events"]

    def user_texts(self, sender: str) -> List[str]:
        return [e.get("text") or "" for e in self.events(sender) if e["event"] == "user"]

    def bot_actions(self, sender: str) -> List[str]:
        return [e["metadata"].get("utter_action", "") for e in self.events(sender) if e["event"] == "bot"]

    def restart_rasa(self) -> None:
        self.supervisor.stop_service("rasa server")
        self.supervisor.start_service("rasa server")
        if not self.supervisor.wait_until_ready(timeout=300):
            pytest.fail("The Rasa server did not come back after a restart.")


def _send(request: urllib.request.Request) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="session")
def channels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningChannels]:
    """Starts the action server and a Rasa server with every messaging channel configured."""
    require_model()
    workdir = tmp_path_factory.mktemp("messaging-servers")
    # A persistent tracker store, so a restart of the Rasa server keeps conversations.
    write_endpoints(
        workdir, ACTION_PORT, tracker_store={"type": "SQL", "dialect": "sqlite", "db": str(workdir / "trackers.db")}
    )
    users = write_console_users(workdir, "messaging-password", name="Dr T")
    platform = FakePlatform(PLATFORM_PORT, CHANNEL_ENV["TELEGRAM_BOT_NAME"])
    platform.start()
    env = server_environment(
        workdir,
        token=TOKEN,
        rasa_port=RASA_PORT,
        action_port=ACTION_PORT,
        console_port=CONSOLE_PORT,
        **CHANNEL_ENV,
        RASA_CREDENTIALS_FILE=str(workdir / "credentials.yml"),
        ESCALATION_WEBHOOK_URL=f"{PLATFORM_URL}/alerts",
        ESCALATION_WEBHOOK_SECRET="messaging-webhook-secret",
        CONSOLE_USERS_FILE=str(users),
        CONSOLE_SECRET="messaging-console-secret-" + "x" * 32,
    )
    try:
        enabled = write_active_credentials(PROJECT_ROOT / "credentials.yml", env, workdir / "credentials.yml")
        missing = [name for name in MESSAGING_CHANNELS if name not in enabled]
        if missing:
            pytest.fail(f"These channels stayed off with every variable set: {missing}")
        with running_services(env) as supervisor:
            yield RunningChannels(supervisor, Settings.from_env(env), platform, enabled)
    finally:
        platform.stop()
