"""bot.services: `make run` keeps every service running, shows tokens only to a person, and stops on a signal."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from bot.services import (
    RESTART_MAX_DELAY_SECONDS,
    Service,
    Supervisor,
    restart_delay,
    show_generated_token,
)
from bot.settings import PROJECT_ROOT, Settings
from tests.escalation.receivers import free_port
from tests.servers import require_model, server_environment, write_console_users, write_endpoints


def test_restart_delays_double_up_to_the_cap() -> None:
    delays = [restart_delay(n) for n in range(8)]

    assert delays[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert delays[5:] == [RESTART_MAX_DELAY_SECONDS] * 3 == [30.0] * 3


def _services() -> List[Service]:
    return [
        Service("short", [sys.executable, "-c", "import sys; sys.exit(3)"]),
        Service("long", [sys.executable, "-c", "import time; time.sleep(120)"]),
    ]


def test_a_service_that_exits_is_started_again_after_its_delay_and_the_others_keep_running() -> None:
    supervisor = Supervisor(_services(), dict(os.environ), PROJECT_ROOT)
    supervisor.start()
    try:
        short, long = supervisor.service("short"), supervisor.service("long")
        long_pid = long.process.pid  # type: ignore[union-attr]
        short.process.wait(timeout=30)  # type: ignore[union-attr]
        first_pid = short.process.pid  # type: ignore[union-attr]
        now = time.monotonic()

        supervisor.heal(now)
        assert short.process.pid == first_pid and short.restart_at == pytest.approx(now + 1.0)  # type: ignore[union-attr]
        supervisor.heal(now + 0.5)
        assert short.process.pid == first_pid  # type: ignore[union-attr]
        supervisor.heal(now + 1.0)
        assert short.process.pid != first_pid and short.restarts == 1  # type: ignore[union-attr]

        short.process.wait(timeout=30)  # type: ignore[union-attr]
        supervisor.heal(now + 2.0)
        assert short.restart_at == pytest.approx(now + 4.0), "the second restart waits twice as long"
        assert long.process.pid == long_pid and long.process.poll() is None  # type: ignore[union-attr]
    finally:
        supervisor.stop()


def test_a_service_stopped_on_purpose_stays_stopped() -> None:
    supervisor = Supervisor(_services(), dict(os.environ), PROJECT_ROOT)
    supervisor.start()
    try:
        supervisor.stop_service("long")
        supervisor.heal(time.monotonic() + 100)
        assert supervisor.service("long").process.poll() is not None  # type: ignore[union-attr]
    finally:
        supervisor.stop()


def test_a_generated_token_goes_to_a_private_file_when_nobody_watches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.from_env({"BOT_PROJECT_ROOT": str(tmp_path)})
    assert settings.rasa_auth_token_generated

    show_generated_token(settings, interactive=False)
    output = capsys.readouterr().out
    path = tmp_path / "var" / "rasa_auth_token"

    assert str(path) in output and settings.rasa_auth_token not in output
    assert path.read_text().strip() == settings.rasa_auth_token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    show_generated_token(settings, interactive=True)
    assert f"RASA_AUTH_TOKEN={settings.rasa_auth_token}" in capsys.readouterr().out


def test_a_token_that_was_set_is_never_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_env({"BOT_PROJECT_ROOT": str(tmp_path), "RASA_AUTH_TOKEN": "given-token"})

    show_generated_token(settings, interactive=True)

    assert capsys.readouterr().out == ""
    assert not (tmp_path / "var" / "rasa_auth_token").exists()


# `make run` itself: `python -m bot run`, output to a file (not a terminal), no token set.


class MakeRun:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.output = workdir / "make-run.out"
        self.rasa_port, self.action_port, self.console_port = free_port(), free_port(), free_port()
        self.token_file = workdir / "rasa_auth_token"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "MakeRun":
        write_endpoints(self.workdir, self.action_port)
        users = write_console_users(self.workdir, "unused-password-123")
        env = server_environment(
            self.workdir, token="", rasa_port=self.rasa_port, action_port=self.action_port,
            console_port=self.console_port, CONSOLE_USERS_FILE=str(users),
            CONSOLE_SECRET="make-run-console-secret-" + "x" * 32, RASA_AUTH_TOKEN_FILE=str(self.token_file),
        )
        env.pop("RASA_AUTH_TOKEN")
        env.pop("ACTION_SERVER_TOKEN", None)
        env["PYTHONPATH"] = str(PROJECT_ROOT)
        with open(self.output, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"], env=env, cwd=PROJECT_ROOT, stdout=output, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 300
        while "Ready." not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("make run did not start:\n" + self.text()[-3000:])
            time.sleep(1)
        return self

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def services(self) -> Dict[str, int]:
        """Service name -> pid, of the supervisor's direct children."""
        assert self.process is not None
        found = {}
        for pid in _descendants(self.process.pid):
            line = _cmdline(pid)
            for name, needle in (("action server", "-m bot actions"), ("rasa server", "bot.rasa_server"),
                                 ("delivery worker", "-m bot worker"), ("console", "-m bot console")):
                if needle in line and _parent(pid) == self.process.pid:
                    found[name] = pid
        return found

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _descendants(root: int) -> List[int]:
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid in pids if _parent(pid) in frontier and pid not in found]
        found += children
        frontier = children
    return found


def _environ(pid: int) -> Dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def _get(url: str, token: Optional[str] = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    require_model()
    running = MakeRun(tmp_path_factory.mktemp("make-run")).start()
    try:
        yield running
    finally:
        running.stop()


def test_make_run_keeps_generated_tokens_off_screens_command_lines_and_logs(make_run: MakeRun) -> None:
    token = make_run.token_file.read_text().strip()
    action_token = _environ(make_run.services()["action server"])["ACTION_SERVER_TOKEN"]
    output = make_run.text()

    assert str(make_run.token_file) in output
    assert stat.S_IMODE((make_run.workdir / "spool").stat().st_mode) == 0o700, "created owner-only before any service"
    assert stat.S_IMODE(make_run.token_file.stat().st_mode) == 0o600
    assert _get(f"http://127.0.0.1:{make_run.rasa_port}/status?token={token}") == 200
    assert _get(f"http://127.0.0.1:{make_run.rasa_port}/status?token=wrong") == 401
    assert token not in output and action_token not in output
    assert make_run.process is not None
    for pid in [make_run.process.pid, *_descendants(make_run.process.pid)]:
        line = _cmdline(pid)
        assert token not in line and action_token not in line, line


def test_make_run_starts_a_killed_service_again_and_leaves_the_others_alone(make_run: MakeRun) -> None:
    before = make_run.services()
    assert set(before) == {"action server", "rasa server", "delivery worker", "console"}

    os.kill(before["action server"], signal.SIGKILL)
    deadline = time.monotonic() + 120
    after = make_run.services()
    while after.get("action server") in (None, before["action server"]):
        assert time.monotonic() < deadline, make_run.text()[-3000:]
        time.sleep(0.5)
        after = make_run.services()
    action_token = _environ(after["action server"])["ACTION_SERVER_TOKEN"]
    actions_url = f"http://127.0.0.1:{make_run.action_port}/actions"
    while _get(actions_url, action_token) != 200:
        assert time.monotonic() < deadline, make_run.text()[-3000:]
        time.sleep(0.5)

    assert _get(actions_url) == 401
    assert "action server stopped (exit -9); starting it again" in make_run.text()
    for name in ("rasa server", "delivery worker", "console"):
        assert after[name] == before[name], f"{name} was not touched"


def test_make_run_stops_everything_on_sigterm(make_run: MakeRun) -> None:
    assert make_run.process is not None
    children = _descendants(make_run.process.pid)

    assert make_run.stop() == 0
    still_running = [pid for pid in children if "bot" in _cmdline(pid)]
    assert still_running == []
