"""Real databases for the action tests: the escalation suite's SQLite and PostgreSQL fixtures."""

from tests.escalation.conftest import database, postgres_url  # noqa: F401
