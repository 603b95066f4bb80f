"""Real Rasa and action servers on loopback ports, started once for the e2e tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

import pytest

from bot.escalation.store import EscalationStore
from bot.services import Supervisor
from bot.settings import Settings
from tests.e2e.receiver import AlertReceiver
from tests.escalation.receivers import free_port
from tests.servers import require_model, running_services, server_environment, write_console_users, write_endpoints

RASA_PORT = free_port()
ACTION_PORT = free_port()
CONSOLE_PORT = free_port()
RECEIVER_PORT = free_port()
TOKEN = "e2e-test-token"
CLINICIAN_PASSWORD = "e2e-clinician-password"


@dataclass
class RunningAssistant:
    """Handles to the running servers and small HTTP helpers."""

    supervisor: Supervisor
    settings: Settings
    receiver: AlertReceiver

    def store(self) -> EscalationStore:
        return EscalationStore(self.settings.escalation.db_url)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.rasa_port}"

    def post_raw(self, body: bytes, path: str = "/webhooks/rest/webhook") -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.base_url + path, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def say(self, message: str, sender: Optional[str] = None) -> List[Dict[str, Any]]:
        status, body = self.post_raw(json.dumps({"sender": sender or new_sender(), "message": message}).encode())
        assert status == 200, body
        return json.loads(body)

    def tracker(self, sender: str, token: Optional[str] = TOKEN) -> Dict[str, Any]:
        url = f"{self.base_url}/conversations/{sender}/tracker"
        if token:
            url += f"?token={token}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())

    def bot_actions(self, sender: str) -> List[str]:
        events = self.tracker(sender)["events"]
        return [e["metadata"].get("utter_action", "") for e in events if e["event"] == "bot"]

    def executed_actions(self, sender: str) -> List[str]:
        events = self.tracker(sender)["events"]
        return [e["name"] for e in events if e["event"] == "action"]


def new_sender() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAssistant]:
    """Starts the action server and the Rasa server (REST channel, token-protected API)."""
    require_model()
    workdir = tmp_path_factory.mktemp("servers")
    write_endpoints(workdir, ACTION_PORT)
    users = write_console_users(workdir, CLINICIAN_PASSWORD)
    receiver = AlertReceiver(RECEIVER_PORT)
    receiver.start()
    env = server_environment(
        workdir,
        token=TOKEN,
        rasa_port=RASA_PORT,
        action_port=ACTION_PORT,
        console_port=CONSOLE_PORT,
        ESCALATION_WEBHOOK_URL=receiver.url,
        ESCALATION_WEBHOOK_SECRET="e2e-webhook-secret",
        CONSOLE_USERS_FILE=str(users),
        CONSOLE_SECRET="e2e-console-secret-" + "x" * 32,
    )
    try:
        with running_services(env) as supervisor:
            yield RunningAssistant(supervisor, Settings.from_env(env), receiver)
    finally:
        receiver.stop()
