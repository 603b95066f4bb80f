"""The production Rasa server and action server, on bench ports, with a bench model."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, List, Optional, Type

from bench.processes import last_log_line, proc_status_kb, start, stop
from bench.progress import clock, say
from bench.workspace import ACTION_PORT, PROJECT_ROOT, RASA_PORT, Contender, Workspace
from bot.services import assistant_services, service_environment
from bot.settings import Settings

READY_TIMEOUT_SECONDS = 900


class ServerFailed(RuntimeError):
    """A server did not start or stopped on its own."""


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class BenchServers:
    """`with BenchServers(...) as servers:` runs both servers and always stops them.

    The command lines come from bot.services (what `make run` starts), with
    the bench ports, the bench endpoints file, this contender's model and only
    the REST channel of credentials.yml.
    """

    def __init__(self, contender: Contender, workspace: Workspace) -> None:
        env = workspace.child_env()
        env["RASA_MODEL_DIR"] = str(contender.model)
        self.settings = Settings.from_env(env)
        self.env = service_environment(self.settings, env)
        wanted = ("action server", "rasa server")
        self.services = [s for s in assistant_services(self.settings) if s.name in wanted]
        rasa = next(s for s in self.services if s.name == "rasa server")
        rasa.command[rasa.command.index("--credentials") + 1] = str(workspace.write_credentials())
        self.contender = contender
        self.logs = {s.name: workspace.logs / f"{contender.name}-{s.name.replace(' ', '-')}.log" for s in self.services}
        self._processes: List[subprocess.Popen] = []
        self._log_files: List[IO[bytes]] = []
        self.rasa_process: Optional[subprocess.Popen] = None

    @property
    def webhook_url(self) -> str:
        """The REST channel."""
        return f"http://127.0.0.1:{RASA_PORT}/webhooks/rest/webhook"

    @property
    def rasa_pid(self) -> int:
        """The Rasa server's process id (for /proc/<pid>/status)."""
        assert self.rasa_process is not None
        return self.rasa_process.pid

    def __enter__(self) -> "BenchServers":
        for port in (RASA_PORT, ACTION_PORT):
            if _port_in_use(port):
                raise ServerFailed(f"port {port} is already in use: is another benchmark running?")
        try:
            for service in self.services:
                log = self.logs[service.name].open("wb")
                self._log_files.append(log)
                process = start(service.command, self.env, PROJECT_ROOT, log)
                self._processes.append(process)
                if service.name == "rasa server":
                    self.rasa_process = process
            say(f"starting {self.contender.name} servers (Rasa :{RASA_PORT}, actions :{ACTION_PORT})")
            self._wait_until_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stops both servers (Rasa first) and closes their logs."""
        for process in reversed(self._processes):
            stop(process)
        self._processes.clear()
        for log in self._log_files:
            log.close()
        self._log_files.clear()

    def _wait_until_ready(self) -> None:
        started = time.monotonic()
        next_note = started + 30
        urls = [f"http://127.0.0.1:{ACTION_PORT}/health", f"http://127.0.0.1:{RASA_PORT}/webhooks/rest/"]
        for url in urls:
            while not self._answers(url):
                self.check_alive()
                if time.monotonic() - started > READY_TIMEOUT_SECONDS:
                    raise ServerFailed(f"{url} did not answer within {READY_TIMEOUT_SECONDS} s")
                if time.monotonic() >= next_note:
                    log = self.logs["rasa server"]
                    say(f"  still loading ({clock(time.monotonic() - started)}) | {last_log_line(log)}")
                    next_note += 30
                time.sleep(0.5)
        say(f"  {self.contender.name} servers ready after {clock(time.monotonic() - started)}")

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def check_alive(self) -> None:
        """Raises ServerFailed, with the end of its log, if a server has stopped."""
        for service, process in zip(self.services, self._processes, strict=True):
            if process.poll() is not None:
                log: Path = self.logs[service.name]
                raise ServerFailed(
                    f"{self.contender.name} {service.name} stopped (exit {process.returncode}): "
                    f"{last_log_line(log, 300)} (log: {log})"
                )

    def rss_mb(self) -> Optional[float]:
        """The Rasa server's resident memory now."""
        kb = proc_status_kb(self.rasa_pid, "VmRSS")
        return kb / 1024 if kb is not None else None

    def peak_rss_mb(self) -> Optional[float]:
        """The Rasa server's peak resident memory since it started (VmHWM)."""
        kb = proc_status_kb(self.rasa_pid, "VmHWM")
        return kb / 1024 if kb is not None else None
