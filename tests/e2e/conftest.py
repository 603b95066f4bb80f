"""Real Rasa and action servers on loopback ports, started once for the e2e tests."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from bot.escalation.store import EscalationStore
from bot.services import Supervisor, activate_channels, assistant_services, service_environment
from bot.settings import PROJECT_ROOT, Settings
from bot.web.passwords import hash_password
from tests.e2e.receiver import AlertReceiver

RASA_PORT = 15005
ACTION_PORT = 15055
CONSOLE_PORT = 18000
RECEIVER_PORT = 18099
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


def _latest_model(model_dir: Path) -> Path:
    models = sorted(model_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        pytest.fail("No trained model in models/: run `make train` (make test does) before the e2e tests.")
    return models[-1]


@pytest.fixture(scope="session")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAssistant]:
    """Starts the action server and the Rasa server (REST channel, token-protected API)."""
    _latest_model(PROJECT_ROOT / "models")
    workdir = tmp_path_factory.mktemp("servers")
    endpoints = (PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8")
    endpoints = endpoints.replace("127.0.0.1:5055", f"127.0.0.1:{ACTION_PORT}")
    (workdir / "endpoints.yml").write_text(endpoints, encoding="utf-8")
    users = workdir / "console_users.yml"
    users.write_text(
        "clinicians:\n"
        f"- username: dr_test\n  password_hash: '{hash_password(CLINICIAN_PASSWORD)}'\n  name: Dr Test\n",
        encoding="utf-8",
    )
    receiver = AlertReceiver(RECEIVER_PORT)
    receiver.start()
    env = {
        **os.environ,
        "RASA_AUTH_TOKEN": TOKEN,
        "RASA_PORT": str(RASA_PORT),
        "ACTION_SERVER_PORT": str(ACTION_PORT),
        "CONSOLE_PORT": str(CONSOLE_PORT),
        "RASA_ENDPOINTS_FILE": str(workdir / "endpoints.yml"),
        "ESCALATION_DB_URL": f"sqlite:///{workdir / 'escalations.db'}",
        "ESCALATION_SPOOL_DIR": str(workdir / "spool"),
        "ESCALATION_WEBHOOK_URL": receiver.url,
        "ESCALATION_WEBHOOK_SECRET": "e2e-webhook-secret",
        "CONSOLE_USERS_FILE": str(users),
        "CONSOLE_SECRET": "e2e-console-secret-" + "x" * 32,
        "RASA_ACTIVE_CREDENTIALS_FILE": str(workdir / "credentials.active.yml"),
        "UNANSWERED_DB_URL": f"sqlite:///{workdir / 'unanswered.db'}",
    }
    settings = Settings.from_env(env)
    activate_channels(settings, env)
    supervisor = Supervisor(
        assistant_services(settings), service_environment(settings, env), settings.project_root
    )
    supervisor.start()
    try:
        if not supervisor.wait_until_ready(timeout=300):
            pytest.fail("A service (Rasa, actions, worker or console) did not start; see the output above.")
        yield RunningAssistant(supervisor, settings, receiver)
    finally:
        supervisor.stop()
        receiver.stop()
