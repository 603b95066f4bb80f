"""Every service's logs, output and command line stay free of people's words, contact details and tokens.

The whole stack runs as `make run` starts it (Rasa at DEBUG, the most it ever
logs), with things going wrong on purpose: the escalation database is down
(a closed port), the action server answers 500 with the request echoed back
(as rasa-sdk's own server did), and it answers with a malformed reply. Each
message carries a unique marker word; none may appear in any log.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from bot.services import Supervisor
from tests.escalation.receivers import free_port
from tests.servers import require_model, running_services, server_environment, write_console_users, write_endpoints

pytestmark = pytest.mark.e2e

RASA_TOKEN = "rasa-" + secrets.token_urlsafe(24)
ACTION_TOKEN = "act-" + secrets.token_urlsafe(24)
PHONE = "+1 555 201 8899"
RUN = uuid.uuid4().hex[:8]
MARKERS = {name: f"{name}{RUN}" for name in ("heron", "badger", "marten", "puffin", "lynx", "stoat", "vole", "wren")}


class MisbehavingProxy:
    """Sits between Rasa and the action server; for some conversations it answers as a broken server would."""

    def __init__(self, action_port: int) -> None:
        self.port = free_port()
        self.action_port = action_port
        self.seen: List[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                call = json.loads(body)
                sender = str(call.get("sender_id", ""))
                proxy.seen.append(sender)
                if sender.startswith("e500-"):
                    status, reply = 500, json.dumps({"error": "boom", "request_body": call}).encode()
                elif sender.startswith("bad-"):
                    latest = call["tracker"]["latest_message"]["text"]
                    # Rasa's schema error quotes the offending value: here, the person's words.
                    malformed = {"events": latest, "responses": []}
                    status, reply = 200, json.dumps(malformed).encode()
                else:
                    status, reply = proxy.forward(body, dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        Thread(target=self._server.serve_forever, daemon=True).start()

    def forward(self, body: bytes, headers: Dict[str, str]) -> Tuple[int, bytes]:
        wanted = {k: v for k, v in headers.items() if k.lower() in ("authorization", "content-type")}
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.action_port}/webhook", data=body, headers=wanted, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Stack:
    def __init__(
        self, supervisor: Supervisor, workdir: Path, rasa_port: int, action_port: int, proxy: MisbehavingProxy
    ) -> None:
        self.supervisor = supervisor
        self.proxy = proxy
        self.workdir = workdir
        self.rasa_port = rasa_port
        self.action_port = action_port

    def post(self, url: str, body: bytes, headers: Optional[Dict[str, str]] = None) -> Tuple[int, bytes]:
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json", **(headers or {})}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def say(self, sender: str, text: str) -> List[Dict[str, Any]]:
        status, body = self.post(
            f"http://127.0.0.1:{self.rasa_port}/webhooks/rest/webhook",
            json.dumps({"sender": sender, "message": text}).encode(),
        )
        assert status == 200, body
        return list(json.loads(body))

    def tracker_events(self, sender: str) -> List[Dict[str, Any]]:
        url = f"http://127.0.0.1:{self.rasa_port}/conversations/{sender}/tracker?token={RASA_TOKEN}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return list(json.loads(response.read())["events"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_model()
    workdir = tmp_path_factory.mktemp("private-logs")
    rasa_port, action_port, console_port = free_port(), free_port(), free_port()
    proxy = MisbehavingProxy(action_port)
    write_endpoints(workdir, proxy.port)
    users = write_console_users(workdir, "unused-password-123")
    env = server_environment(
        workdir,
        token=RASA_TOKEN,
        rasa_port=rasa_port,
        action_port=action_port,
        console_port=console_port,
        ACTION_SERVER_TOKEN=ACTION_TOKEN,
        # Nothing listens there: the escalation database is down for the whole test.
        ESCALATION_DB_URL=f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/escalations",
        CONSOLE_USERS_FILE=str(users),
        CONSOLE_SECRET="private-logs-console-secret-" + "x" * 32,
        LOG_LEVEL="DEBUG",
    )
    try:
        # The console needs the escalation database to start; everything else runs without it.
        services = ("action server", "rasa server", "delivery worker")
        with running_services(env, only=services, log_dir=workdir / "logs") as supervisor:
            yield Stack(supervisor, workdir, rasa_port, action_port, proxy)
    finally:
        proxy.stop()


def _descendants(pids: List[int]) -> List[int]:
    parents: Dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = list(pids), list(pids)
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in found]
        found += children
        frontier = children
    return found


def test_no_token_on_any_command_line(stack: Stack) -> None:
    pids = _descendants([s.process.pid for s in stack.supervisor.services if s.process is not None])
    command_lines = {}
    for pid in pids:
        try:
            command_lines[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue

    assert len(command_lines) >= 3
    assert any("bot.rasa_server" in line for line in command_lines.values())
    for line in command_lines.values():
        assert RASA_TOKEN not in line and ACTION_TOKEN not in line, line


def test_people_words_never_reach_a_log_even_when_everything_fails(stack: Stack) -> None:
    m = MARKERS
    # A person at risk while the escalation database is down: spooled, then contact details.
    person = f"p-{RUN}"
    replies = stack.say(person, f"I am going to kill myself tonight {m['heron']}")
    assert "988" in " ".join(r.get("text", "") for r in replies)
    stack.say(person, "/deny")
    stack.say(person, "/affirm")
    stack.say(person, f"call me on {PHONE} or write to {m['badger']}@example.org")
    # The action server answers 500 with the whole request echoed, then a malformed reply.
    stack.say(f"e500-{RUN}", f"I want to die tonight {m['marten']}")
    stack.say(f"bad-{RUN}", f"I want to die tonight {m['puffin']}")
    # An intent payload with words after it (Rasa warns, quoting the message), an FAQ question.
    stack.say(f"q-{RUN}", f'/greet{{"name": "x"}} and then {m["lynx"]} words')
    stack.say(f"q-{RUN}", f"is mdma therapy legal where {m['stoat']} lives")
    # Bad requests straight at the servers.
    status, reply = stack.post(
        f"http://127.0.0.1:{stack.action_port}/webhook",
        json.dumps({"next_action": "action_escalate_to_clinician",
                    "tracker": {"sender_id": "x", "events": m["vole"]}}).encode(),
        {"Authorization": f"Bearer {ACTION_TOKEN}"},
    )
    assert status == 500 and m["vole"].encode() not in reply
    status, reply = stack.post(
        f"http://127.0.0.1:{stack.rasa_port}/webhooks/rest/webhook", f'{{"message": "{m["wren"]}'.encode()
    )
    assert status == 400 and m["wren"].encode() not in reply
    time.sleep(4)  # the worker retries the spool and the database a few times

    logs = {path.name: path.read_text(encoding="utf-8", errors="replace")
            for path in (stack.workdir / "logs").glob("*.log")}
    everything = "\n".join(logs.values())

    # The failures did happen, and were logged.
    assert "escalation waits in the spool" in logs["rasa-server.log"]
    assert "Failed to execute custom action" in everything or "action_escalate_to_clinician" in everything
    assert "Failed to validate Action server response" in everything
    assert {f"e500-{RUN}", f"bad-{RUN}"} <= set(stack.proxy.seen)
    # ...without a person's words, contact details or a secret.
    for name, text in logs.items():
        for marker in m.values():
            assert marker not in text, f"{marker} in {name}"
        assert "201 8899" not in text and "2018899" not in text, name
        assert RASA_TOKEN not in text and ACTION_TOKEN not in text, name


def test_files_with_peoples_data_are_owner_only(stack: Stack) -> None:
    spool = stack.workdir / "spool"
    spooled = list(spool.glob("*.json"))

    assert spooled, "the escalation waited in the spool"
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    for path in spooled:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    unanswered = stack.workdir / "unanswered.db"
    if unanswered.exists():
        assert stat.S_IMODE(unanswered.stat().st_mode) == 0o600
    for log in (stack.workdir / "logs").glob("*.log"):
        assert stat.S_IMODE(log.stat().st_mode) & 0o077 == 0, log


def test_the_action_server_refuses_rasa_without_the_token(stack: Stack) -> None:
    call = {"next_action": "action_escalate_to_clinician", "sender_id": "intruder",
            "tracker": {"sender_id": "intruder", "events": [], "slots": {}, "latest_message": {}}}

    status, reply = stack.post(f"http://127.0.0.1:{stack.action_port}/webhook", json.dumps(call).encode())

    assert status == 401 and json.loads(reply) == {"error": "unauthorized"}
    assert not any("intruder" in path.read_text() for path in (stack.workdir / "spool").glob("*.json"))
    assert os.environ.get("ACTION_SERVER_TOKEN") != ACTION_TOKEN
