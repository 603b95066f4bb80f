"""Fresh databases for the unanswered-questions log, and real servers for the end-to-end test."""

from __future__ import annotations

import json
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import sqlalchemy as sa

from bot.services import Supervisor, service_environment
from bot.settings import PROJECT_ROOT, Settings
from tests.escalation.conftest import postgres_url  # noqa: F401 - the fixture, started if down
from tests.escalation.receivers import free_port
from tests.servers import require_model, running_services, server_environment, write_endpoints

RASA_PORT = free_port()
ACTION_PORT = free_port()
CONSOLE_PORT = free_port()
TOKEN = "unanswered-e2e-token"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL database dropped after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'unanswered.db'}"
        return
    server_url = sa.engine.make_url(request.getfixturevalue("postgres_url"))
    name = f"unanswered_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class RunningAssistant:
    """The Rasa and action servers, the log's database, and small HTTP helpers."""

    supervisor: Supervisor
    settings: Settings
    env: Dict[str, str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.rasa_port}"

    def say(self, message: str, sender: str) -> List[Dict[str, Any]]:
        body = json.dumps({"sender": sender, "message": message}).encode()
        request = urllib.request.Request(
            self.base_url + "/webhooks/rest/webhook",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            return json.loads(response.read())

    def latest_parse_data(self, sender: str) -> Dict[str, Any]:
        url = f"{self.base_url}/conversations/{sender}/tracker?token={TOKEN}"
        with urllib.request.urlopen(url, timeout=30) as response:
            events = json.loads(response.read())["events"]
        return [e for e in events if e["event"] == "user"][-1]["parse_data"]


def new_sender() -> str:
    return f"unanswered-e2e-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def assistant_with_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAssistant]:
    """Starts the action and Rasa servers with the project's endpoints (event broker included).

    Only these two: the log lives in the Rasa server, so the alert worker and
    the console would add load without adding anything to check.
    """
    require_model()
    workdir = tmp_path_factory.mktemp("unanswered-servers")
    endpoints = (PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8")
    assert "bot.unanswered.broker.UnansweredQuestionsBroker" in endpoints, "endpoints.yml lost the event broker"
    write_endpoints(workdir, ACTION_PORT)
    env = server_environment(
        workdir, token=TOKEN, rasa_port=RASA_PORT, action_port=ACTION_PORT, console_port=CONSOLE_PORT
    )
    settings = Settings.from_env(env)
    with running_services(env, only=("action server", "rasa server")) as supervisor:
        yield RunningAssistant(supervisor, settings, service_environment(settings, env))

