"""Fixtures for escalation tests: real SQLite and PostgreSQL, a controllable clock."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.escalation.config import EscalationConfig
from bot.escalation.store import EscalationStore

from .harness import Database, FakeClock
from .receivers import TcpProxy

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


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
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                version.name,
                "main",
                "start",
            ],
            check=False,
            capture_output=True,
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _postgres_reachable(POSTGRES_URL):
            return POSTGRES_URL
        time.sleep(0.5)
    pytest.fail(
        f"PostgreSQL is not reachable at {POSTGRES_URL} and could not be started"
    )


@contextmanager
def _postgres_database(url: str) -> Iterator[Database]:
    schema = f"esc_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, future=True)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    db = Database(url=url, schema=schema)
    try:
        yield db
    finally:
        for store in db.stores:
            store.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Yield a fresh database: a SQLite file, or a PostgreSQL schema dropped after."""
    if request.param == "postgresql":
        with _postgres_database(request.getfixturevalue("postgres_url")) as db:
            yield db
        return
    db = Database(url=f"sqlite:///{tmp_path / 'escalations.db'}")
    yield db
    for store in db.stores:
        store.close()


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[Database]:
    """Yield a fresh PostgreSQL schema, for behaviour only PostgreSQL has."""
    with _postgres_database(postgres_url) as db:
        yield db


@pytest.fixture
def store(database: Database) -> EscalationStore:
    """Return a store that queues webhook alerts."""
    return database.store()


@pytest.fixture
def clock() -> FakeClock:
    """Return a fresh controllable clock."""
    return FakeClock()


@pytest.fixture
def config() -> EscalationConfig:
    """Return a config with fast retries and few attempts, so tests run quickly."""
    return EscalationConfig(
        webhook_secret="test-secret",
        max_attempts=3,
        backoff_base_seconds=0.05,
        backoff_cap_seconds=0.2,
        poll_interval_seconds=0.01,
        lease_seconds=30,
        console_base_url="https://care.example.org/console",
    )


@pytest.fixture
def vanishing_postgres(
    postgres_database: Database,
) -> Iterator[tuple[Database, TcpProxy]]:
    """Yield a PostgreSQL schema reached through a proxy the test can stop (database down)."""
    url = sa.engine.make_url(postgres_database.url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    db = Database(url=through_proxy, schema=postgres_database.schema)
    try:
        yield db, proxy
    finally:
        proxy.stop()
        for store in db.stores:
            store.close()
