"""Fixtures for console tests: a fresh SQLite store per test and a signed-in client."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sanic import Sanic

from bot.escalation.store import Escalation, EscalationStore, escalations
from bot.web.app import create_app
from bot.web.config import ConsoleConfig
from bot.web.database import open_console_engine
from bot.web.passwords import hash_password

from .harness import AsgiClient

Sanic.test_mode = True

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
SECRET = "test-session-secret-0123456789abcdef"
PASSWORDS = {"ana": "ana's long passphrase", "ben": "ben's long passphrase"}
NAMES = {"ana": "Dr Ana Silva", "ben": "Ben Okafor, RN"}
# Cheap scrypt cost so each sign-in takes milliseconds; production uses the default.
TEST_COST = {"n": 2**10, "r": 8, "p": 1}
CSRF = {"X-Requested-With": "console"}

TRANSCRIPT = [
    {"sender": "user", "text": "hi", "timestamp": "2026-11-28T09:00:00+00:00"},
    {
        "sender": "bot",
        "text": "Hello, how can I help?",
        "timestamp": "2026-11-28T09:00:01+00:00",
    },
    {
        "sender": "user",
        "text": "<img src=x onerror=alert(1)> I can't cope tonight",
        "timestamp": "2026-11-28T09:00:30+00:00",
    },
]


@pytest.fixture(scope="session")
def password_hashes() -> dict[str, str]:
    """Return username -> hash for the test clinicians (hashed once per run)."""
    return {user: hash_password(pw, **TEST_COST) for user, pw in PASSWORDS.items()}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """Return the URL of a fresh SQLite escalation database."""
    return f"sqlite:///{tmp_path / 'escalations.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[EscalationStore]:
    """Return the escalation store the bot would write to, on the test database."""
    escalation_store = EscalationStore(db_url)
    yield escalation_store
    escalation_store.close()


@pytest.fixture
def config(db_url: str, password_hashes: dict[str, str]) -> ConsoleConfig:
    """Return a console config for the test database and clinicians."""
    return ConsoleConfig(
        db_url=db_url,
        clinicians=password_hashes,
        session_secret=SECRET,
        clinician_names=NAMES,
    )


@pytest.fixture
def start_client() -> Iterator[Callable[..., AsgiClient]]:
    """Return a function that starts a client on a new app; all are closed after."""
    clients: list[AsgiClient] = []

    def start(config: ConsoleConfig, **kwargs: Any) -> AsgiClient:
        client = AsgiClient(create_app(config), **kwargs).start()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()


@pytest.fixture
def client(config: ConsoleConfig, start_client: Callable[..., AsgiClient]) -> AsgiClient:
    """Return a client of a started console app, not signed in."""
    return start_client(config)


def sign_in(client: AsgiClient, username: str = "ana") -> None:
    """Sign ``client`` in as ``username`` or fail the test."""
    response = client.post(
        "/api/login",
        json_body={"username": username, "password": PASSWORDS[username]},
        headers=CSRF,
    )
    assert response.status == 200, response.text


@pytest.fixture
def signed_in(client: AsgiClient) -> AsgiClient:
    """Return a client signed in as clinician 'ana'."""
    sign_in(client)
    return client


def make_escalation(
    store: EscalationStore,
    level: str = "urgent",
    *,
    kind: str = "risk",
    category: str | None = "suicide",
    age: timedelta | None = None,
    transcript: list[dict[str, Any]] | None = None,
) -> Escalation:
    """Create an escalation through the store, optionally raised ``age`` ago."""
    escalation = store.create_escalation(
        conversation_id=f"conv-{uuid.uuid4().hex[:8]}",
        channel="socketio",
        kind=kind,
        level=level,
        category=category,
        transcript=TRANSCRIPT if transcript is None else transcript,
    )
    if age is not None:
        backdate(store, escalation.id, escalation.created_at - age)
    return store.get(escalation.id)


def backdate(store: EscalationStore, escalation_id: str, created_at: Any) -> None:
    """Move an escalation's creation time, as if it had been raised earlier."""
    with store._engine.begin() as conn:  # noqa: SLF001 - test-only time travel
        conn.execute(escalations.update().where(escalations.c.id == escalation_id).values(created_at=created_at))


# PostgreSQL -------------------------------------------------------------------


def _postgres_reachable(url: str) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """Return the URL of a running PostgreSQL, starting the local cluster if down."""
    if _postgres_reachable(POSTGRES_URL):
        return POSTGRES_URL
    clusters = Path("/etc/postgresql")
    for version in sorted(clusters.iterdir()) if clusters.is_dir() else []:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version.name, "main", "start"],
            check=False,
            capture_output=True,
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _postgres_reachable(POSTGRES_URL):
            return POSTGRES_URL
        time.sleep(0.5)
    pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} and could not be started")


@contextmanager
def _postgres_schema(url: str) -> Iterator[str]:
    schema = f"console_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, future=True)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """Yield a fresh PostgreSQL schema, dropped after the test."""
    with _postgres_schema(postgres_url) as schema:
        yield schema


@pytest.fixture
def postgres_config(config: ConsoleConfig, postgres_url: str, postgres_schema: str) -> ConsoleConfig:
    """Return the console config pointed at the fresh PostgreSQL schema."""
    return replace(config, db_url=postgres_url, db_schema=postgres_schema)


# The console's own tables, on SQLite and on PostgreSQL -------------------------


@dataclass(frozen=True)
class ConsoleDatabase:
    """A fresh escalation database: its URL and, on PostgreSQL, the schema of its tables."""

    url: str
    schema: str | None = None

    @property
    def dialect(self) -> str:
        """Return 'sqlite' or 'postgresql'."""
        return sa.engine.make_url(self.url).get_backend_name()


@pytest.fixture(params=["sqlite", "postgresql"])
def console_database(request: pytest.FixtureRequest, db_url: str) -> Iterator[ConsoleDatabase]:
    """Yield a fresh database: a SQLite file, or a PostgreSQL schema dropped after."""
    if request.param == "sqlite":
        yield ConsoleDatabase(db_url)
        return
    url = request.getfixturevalue("postgres_url")
    with _postgres_schema(url) as schema:
        yield ConsoleDatabase(url, schema)


@pytest.fixture
def console_engine(console_database: ConsoleDatabase) -> Iterator[sa.engine.Engine]:
    """Return an engine on the console's tables in the fresh database."""
    engine = open_console_engine(console_database.url, console_database.schema)
    yield engine
    engine.dispose()


@pytest.fixture
def any_config(config: ConsoleConfig, console_database: ConsoleDatabase) -> ConsoleConfig:
    """Return the console config on the fresh SQLite or PostgreSQL database."""
    return replace(config, db_url=console_database.url, db_schema=console_database.schema)


@pytest.fixture
def signed_in_ben(config: ConsoleConfig, start_client: Callable[..., AsgiClient]) -> AsgiClient:
    """Return a second client, on its own app, signed in as clinician 'ben'."""
    client = start_client(config)
    sign_in(client, "ben")
    return client
