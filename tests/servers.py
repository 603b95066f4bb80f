"""Starting the real services for end-to-end tests: the same processes `make run` starts, on test ports."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence

import pytest
import yaml

from bot.services import Supervisor, activate_channels, assistant_services, service_environment
from bot.settings import PROJECT_ROOT, Settings
from bot.web.passwords import hash_password

# Variables a developer's shell may set that would change what the tests expect.
_DERIVED_SETTINGS = ("CHAT_ALLOWED_ORIGINS", "CHAT_SOCKET_URL", "CRISIS_REGION")


def require_model(model_dir: Path = PROJECT_ROOT / "models") -> Path:
    """The newest trained model, or a failed test saying how to get one."""
    models = sorted(model_dir.glob("*.tar.gz"), key=lambda path: path.stat().st_mtime)
    if not models:
        pytest.fail(f"No trained model in {model_dir}: run `make train` (make test does) first.")
    return models[-1]


def write_endpoints(workdir: Path, action_port: int, tracker_store: Optional[Dict[str, Any]] = None) -> Path:
    """The project's endpoints.yml with the test action server port (and, optionally, another tracker store)."""
    endpoints = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8"))
    endpoints["action_endpoint"]["url"] = f"http://127.0.0.1:{action_port}/webhook"
    if tracker_store is not None:
        endpoints["tracker_store"] = tracker_store
    path = workdir / "endpoints.yml"
    path.write_text(yaml.safe_dump(endpoints, sort_keys=False), encoding="utf-8")
    return path


def write_console_users(workdir: Path, password: str, name: str = "Dr Test") -> Path:
    """A console accounts file with one clinician, `dr_test`."""
    path = workdir / "console_users.yml"
    path.write_text(
        f"clinicians:\n- username: dr_test\n  password_hash: '{hash_password(password)}'\n  name: {name}\n",
        encoding="utf-8",
    )
    return path


def server_environment(
    workdir: Path,
    *,
    token: str,
    rasa_port: int,
    action_port: int,
    console_port: Optional[int] = None,
    **extra: str,
) -> Dict[str, str]:
    """The environment for the services: test ports, every file and database inside `workdir`."""
    env = {
        **os.environ,
        "RASA_AUTH_TOKEN": token,
        "RASA_PORT": str(rasa_port),
        "ACTION_SERVER_PORT": str(action_port),
        "RASA_ENDPOINTS_FILE": str(workdir / "endpoints.yml"),
        "RASA_ACTIVE_CREDENTIALS_FILE": str(workdir / "credentials.active.yml"),
        "ESCALATION_DB_URL": f"sqlite:///{workdir / 'escalations.db'}",
        "ESCALATION_SPOOL_DIR": str(workdir / "spool"),
        "UNANSWERED_DB_URL": f"sqlite:///{workdir / 'unanswered.db'}",
    }
    if console_port is not None:
        env["CONSOLE_PORT"] = str(console_port)
    for name in _DERIVED_SETTINGS:
        env.pop(name, None)
    env.update(extra)
    return env


@contextmanager
def running_services(
    env: Dict[str, str],
    only: Optional[Sequence[str]] = None,
    wait: bool = True,
    timeout: float = 300,
    log_dir: Optional[Path] = None,
) -> Iterator[Supervisor]:
    """Starts the services `make run` starts (or `only` those), waits until they answer, stops them after.

    With `log_dir`, each service's output is kept in `<log_dir>/<service>.log` instead of the test's output.
    """
    settings = Settings.from_env(env)
    activate_channels(settings, env)
    services = [s for s in assistant_services(settings) if only is None or s.name in only]
    supervisor = Supervisor(services, service_environment(settings, env), settings.project_root, log_dir=log_dir)
    supervisor.start()
    try:
        if wait and not supervisor.wait_until_ready(timeout=timeout):
            pytest.fail("A service did not start; see the output above.")
        yield supervisor
    finally:
        supervisor.stop()


@contextmanager
def running_chat_services(
    workdir: Path,
    *,
    token: str,
    rasa_port: int,
    action_port: int,
    console_port: int,
    console_secret: str,
) -> Iterator[Supervisor]:
    """Actions, Rasa (the project's channels, the widget's socket among them), worker and console on test ports."""
    require_model()
    write_endpoints(workdir, action_port)
    users = write_console_users(workdir, "unused-password-123")
    env = server_environment(
        workdir,
        token=token,
        rasa_port=rasa_port,
        action_port=action_port,
        console_port=console_port,
        CONSOLE_USERS_FILE=str(users),
        CONSOLE_SECRET=console_secret,
    )
    with running_services(env) as supervisor:
        yield supervisor
