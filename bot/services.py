"""Starts the assistant's processes together and stops them together (`make run`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from bot.settings import Settings

STOP_GRACE_SECONDS = 15


@dataclass
class Service:
    """One long-running process and how to tell that it is up."""

    name: str
    command: List[str]
    ready_url: Optional[str] = None
    process: Optional[subprocess.Popen] = field(default=None, repr=False)


def service_environment(settings: Settings, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment every service runs with: the project importable, token set."""
    env = dict(os.environ if base is None else base)
    root = str(settings.project_root)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["RASA_AUTH_TOKEN"] = settings.rasa_auth_token
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    return env


def rasa_executable() -> str:
    """The `rasa` command of the running interpreter's environment."""
    return str(Path(sys.executable).with_name("rasa"))


def activate_channels(settings: Settings, env: Optional[Mapping[str, str]] = None) -> List[str]:
    """Writes the credentials of the channels whose variables are set; returns their names."""
    from bot.channels.credentials import write_active_credentials

    return write_active_credentials(
        settings.credentials_file, os.environ if env is None else env, settings.active_credentials_file
    )


def assistant_services(settings: Settings) -> List[Service]:
    """Action server, Rasa server, alert delivery worker and console, as `make run` starts them."""
    return [
        Service(
            "action server",
            [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(settings.action_port)],
            ready_url=f"http://127.0.0.1:{settings.action_port}/health",
        ),
        Service(
            "rasa server",
            [
                # `rasa run`, with Rasa 3.6's slow check of action server replies fixed.
                sys.executable, "-m", "bot.rasa_server", "run",
                "--enable-api",
                "--auth-token", settings.rasa_auth_token,
                "--port", str(settings.rasa_port),
                "--model", str(settings.model_dir),
                "--endpoints", str(settings.endpoints_file),
                "--credentials", str(settings.active_credentials_file),
            ],
            ready_url=f"http://127.0.0.1:{settings.rasa_port}/",
        ),
        Service("delivery worker", [sys.executable, "-m", "bot", "worker"]),
        Service(
            "console",
            [sys.executable, "-m", "bot", "console"],
            ready_url=f"http://127.0.0.1:{settings.console_port}/console",
        ),
    ]


class Supervisor:
    """Runs services until Ctrl-C or until one of them stops, then stops them all."""

    def __init__(self, services: Sequence[Service], env: Dict[str, str], cwd: Path) -> None:
        """Prepares (does not start) the services."""
        self.services = list(services)
        self.env = env
        self.cwd = cwd
        self._stopping = False

    def start(self) -> None:
        """Starts every service in its own process group."""
        for service in self.services:
            self._start(service)

    def _start(self, service: Service) -> None:
        print(f"Starting {service.name}: {' '.join(_redact(service.command))}", flush=True)
        service.process = subprocess.Popen(service.command, env=self.env, cwd=self.cwd, start_new_session=True)

    def service(self, name: str) -> Service:
        """The service called `name`."""
        return next(s for s in self.services if s.name == name)

    def stop_service(self, name: str) -> None:
        """Stops one service (e.g. to check the others cope without it)."""
        process = self.service(name).process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def start_service(self, name: str) -> None:
        """Starts one stopped service again."""
        self._start(self.service(name))

    def wait_until_ready(self, timeout: float = 180.0) -> bool:
        """Polls each service's ready URL; False if one dies or time runs out."""
        deadline = time.monotonic() + timeout
        for service in self.services:
            while service.ready_url:
                if service.process is not None and service.process.poll() is not None:
                    return False
                try:
                    with urllib.request.urlopen(service.ready_url, timeout=2):
                        break
                except (urllib.error.URLError, ConnectionError, OSError):
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.5)
        return True

    def run(self) -> int:
        """Blocks until a signal or a service exit; returns the exit status."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            while not self._stopping:
                for service in self.services:
                    if service.process is not None and service.process.poll() is not None:
                        print(f"{service.name} stopped (exit {service.process.returncode}).", flush=True)
                        self.stop()
                        return 1
                time.sleep(0.5)
        finally:
            self.stop()
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def stop(self) -> None:
        """Stops every service: SIGTERM, then SIGKILL after a grace period."""
        for service in reversed(self.services):
            process = service.process
            if process is not None and process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for service in self.services:
            process = service.process
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()


def _redact(command: Sequence[str]) -> List[str]:
    redacted = list(command)
    for index, part in enumerate(redacted[:-1]):
        if part == "--auth-token":
            redacted[index + 1] = "***"
    return redacted


def run_all(settings: Settings) -> int:
    """`make run`: start everything, print where it listens, stop on Ctrl-C."""
    if settings.rasa_auth_token_generated:
        print(
            "RASA_AUTH_TOKEN was not set; generated one for this run:\n"
            f"  RASA_AUTH_TOKEN={settings.rasa_auth_token}",
            flush=True,
        )
    from bot.console_setup import ensure_console_account

    password = ensure_console_account(settings)
    if password:
        print(
            f"Created the first console account (kept hashed in {settings.console_users_file}):\n"
            f"  user: clinician  password: {password}",
            flush=True,
        )
    channels = activate_channels(settings)
    print("Channels on: " + ", ".join(name.rsplit(".", 1)[-1] for name in channels), flush=True)
    supervisor = Supervisor(assistant_services(settings), service_environment(settings), settings.project_root)
    supervisor.start()
    if not supervisor.wait_until_ready():
        print("A service failed to start; stopping.", file=sys.stderr, flush=True)
        supervisor.stop()
        return 1
    print(
        "\nReady.\n"
        f"  REST channel:  POST http://localhost:{settings.rasa_port}/webhooks/rest/webhook\n"
        f"  HTTP API:      http://localhost:{settings.rasa_port}/ (token required)\n"
        f"  Action server: http://localhost:{settings.action_port}/webhook\n"
        f"  Demo page:     http://localhost:{settings.console_port}/ (clinic page with the chat widget)\n"
        f"  Console:       http://localhost:{settings.console_port}/console\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    return supervisor.run()
