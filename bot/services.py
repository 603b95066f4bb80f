"""Starts the assistant's processes together, restarts any that stops, and stops them together (`make run`).

Secrets reach the services through their environment only: a command line is
visible to every user of the machine (`ps`).
"""

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
from typing import IO, Dict, List, Mapping, Optional, Sequence

from bot.settings import Settings

STOP_GRACE_SECONDS = 15
# A service that exits is started again after 1 s, then 2, 4, ... up to 30 s
# while it keeps failing; once it has run this long the delay starts over.
RESTART_FIRST_DELAY_SECONDS = 1.0
RESTART_MAX_DELAY_SECONDS = 30.0
RESTART_RESET_AFTER_SECONDS = 60.0
OWNER_ONLY_UMASK = 0o077


@dataclass
class Service:
    """One long-running process and how to tell that it is up."""

    name: str
    command: List[str]
    ready_url: Optional[str] = None
    process: Optional[subprocess.Popen] = field(default=None, repr=False)
    wanted: bool = True
    restarts: int = 0
    started_at: float = 0.0
    restart_at: Optional[float] = None


def service_environment(settings: Settings, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment every service runs with: the project importable, token set."""
    env = dict(os.environ if base is None else base)
    root = str(settings.project_root)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["RASA_AUTH_TOKEN"] = settings.rasa_auth_token
    env["ACTION_SERVER_TOKEN"] = settings.action_server_token
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
            # rasa-sdk's executor behind a token check (bot.action_server); host, port, token from the environment.
            [sys.executable, "-m", "bot", "actions"],
            ready_url=f"http://127.0.0.1:{settings.action_port}/health",
        ),
        Service(
            "rasa server",
            [
                # `rasa run`, with Rasa 3.6's slow check of action server replies fixed.
                sys.executable, "-m", "bot.rasa_server", "run",
                "--enable-api",  # its --auth-token comes from RASA_AUTH_TOKEN, in-process
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
    """Runs services until Ctrl-C or SIGTERM, starting again (with backoff) any that stops."""

    def __init__(
        self, services: Sequence[Service], env: Dict[str, str], cwd: Path, log_dir: Optional[Path] = None
    ) -> None:
        """Prepares (does not start) the services; with `log_dir`, each one's output goes to `<name>.log` there."""
        self.services = list(services)
        self.env = env
        self.cwd = cwd
        self.log_dir = log_dir
        self._stopping = False

    def start(self) -> None:
        """Starts every service in its own process group."""
        for service in self.services:
            self._start(service)

    def _start(self, service: Service) -> None:
        print(f"Starting {service.name}: {' '.join(service.command)}", flush=True)
        output: Optional[IO[bytes]] = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.log_path(service.name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            output = os.fdopen(descriptor, "ab")
        try:
            service.process = subprocess.Popen(
                service.command,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                umask=OWNER_ONLY_UMASK,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
            )
        finally:
            if output is not None:
                output.close()
        service.wanted = True
        service.started_at = time.monotonic()
        service.restart_at = None

    def log_path(self, name: str) -> Path:
        """Where the output of service `name` is kept (only with a log_dir)."""
        assert self.log_dir is not None
        return self.log_dir / f"{name.replace(' ', '-')}.log"

    def service(self, name: str) -> Service:
        """The service called `name`."""
        return next(s for s in self.services if s.name == name)

    def stop_service(self, name: str) -> None:
        """Stops one service and keeps it stopped (e.g. to check the others cope without it)."""
        service = self.service(name)
        service.wanted = False
        process = service.process
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
                if self._stopping or service.process is not None and service.process.poll() is not None:
                    return False
                try:
                    with urllib.request.urlopen(service.ready_url, timeout=2):
                        break
                except (urllib.error.URLError, ConnectionError, OSError):
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.5)
        return True

    def heal(self, now: Optional[float] = None) -> None:
        """Starts again every wanted service that has stopped, once its backoff delay has passed."""
        now = time.monotonic() if now is None else now
        for service in self.services:
            process = service.process
            if not service.wanted or process is None or process.poll() is None:
                continue
            if service.restart_at is None:
                if now - service.started_at >= RESTART_RESET_AFTER_SECONDS:
                    service.restarts = 0
                delay = restart_delay(service.restarts)
                service.restart_at = now + delay
                print(
                    f"{service.name} stopped (exit {process.returncode}); starting it again in {delay:.0f} s.",
                    flush=True,
                )
            elif now >= service.restart_at:
                service.restarts += 1
                self._start(service)

    @property
    def stopping(self) -> bool:
        """Whether a stop signal has arrived."""
        return self._stopping

    def handle_stop_signals(self) -> None:
        """From now on SIGINT (Ctrl-C) and SIGTERM end `wait_until_ready` and `run` (main thread only)."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def run(self) -> int:
        """Keeps the services running until SIGINT or SIGTERM, then stops them all; returns 0."""
        self.handle_stop_signals()
        try:
            while not self._stopping:
                self.heal()
                time.sleep(0.5)
        finally:
            self.stop()
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def stop(self) -> None:
        """Stops every service: SIGTERM, then SIGKILL after a grace period."""
        for service in reversed(self.services):
            service.wanted = False
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


def restart_delay(restarts: int) -> float:
    """Seconds to wait before starting a service again after `restarts` restarts in a row."""
    return float(min(RESTART_MAX_DELAY_SECONDS, RESTART_FIRST_DELAY_SECONDS * 2 ** min(restarts, 10)))


def prepare_private_files(settings: Settings) -> None:
    """Creates the folders the services write people's data to as owner-only (0700), and tightens old ones.

    The services also run with umask 077, so the files they create there
    (escalation database, spool, unanswered questions) are 0600.
    """
    folders = {settings.project_root / "var", settings.escalation_spool_dir}
    files = []
    for url in (settings.escalation.db_url, settings.unanswered.db_url):
        if url.startswith("sqlite:///"):
            database = Path(url[len("sqlite:///"):])
            folders.add(database.parent)
            files.append(database)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if folder.stat().st_uid == os.getuid():
            folder.chmod(0o700)
    for path in files:
        if path.exists() and path.stat().st_uid == os.getuid():
            path.chmod(0o600)


def show_generated_token(settings: Settings, interactive: Optional[bool] = None) -> None:
    """Tells the person running `make run` the generated API token: on a terminal, else via a 0600 file."""
    if not settings.rasa_auth_token_generated:
        return
    interactive = sys.stdout.isatty() if interactive is None else interactive
    if interactive:
        print(
            "RASA_AUTH_TOKEN was not set; generated one for this run:\n"
            f"  RASA_AUTH_TOKEN={settings.rasa_auth_token}",
            flush=True,
        )
        return
    path = settings.rasa_auth_token_file
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(settings.rasa_auth_token + "\n")
    print(f"RASA_AUTH_TOKEN was not set; generated one for this run, written to {path} (readable by you only).",
          flush=True)


def run_all(settings: Settings) -> int:
    """`make run`: start everything, print where it listens, stop on Ctrl-C."""
    show_generated_token(settings)
    prepare_private_files(settings)
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
    supervisor.handle_stop_signals()
    supervisor.start()
    if not supervisor.wait_until_ready():
        supervisor.stop()
        if supervisor.stopping:
            return 0
        print("A service failed to start; stopped everything.", file=sys.stderr, flush=True)
        return 1
    print(
        "\nReady.\n"
        f"  REST channel:  POST http://localhost:{settings.rasa_port}/webhooks/rest/webhook\n"
        f"  HTTP API:      http://localhost:{settings.rasa_port}/ (token required)\n"
        f"  Action server: http://{settings.action_host}:{settings.action_port}/webhook (token required)\n"
        f"  Demo page:     http://localhost:{settings.console_port}/ (clinic page with the chat widget)\n"
        f"  Console:       http://localhost:{settings.console_port}/console\n"
        "A service that stops is started again. Press Ctrl-C to stop.",
        flush=True,
    )
    return supervisor.run()
