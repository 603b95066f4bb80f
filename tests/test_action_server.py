"""The action server as `make run` starts it: closed without the token, bounded bodies, errors that echo nothing."""

from __future__ import annotations

import gzip
import http.client
import json
import secrets
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from bot.action_server import MAX_BODY_BYTES, is_authorized
from bot.settings import PROJECT_ROOT
from tests.escalation.receivers import free_port

TOKEN = secrets.token_urlsafe(32)
MARKER = f"walrus{uuid.uuid4().hex[:10]}"


class ActionServer:
    """A running `python -m bot actions` and a small HTTP client for it."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.log = workdir / "actions.log"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "ActionServer":
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(PROJECT_ROOT),
            "ACTION_SERVER_TOKEN": TOKEN,
            "ACTION_SERVER_PORT": str(self.port),
            "ESCALATION_DB_URL": f"sqlite:///{self.workdir / 'escalations.db'}",
            "ESCALATION_SPOOL_DIR": str(self.workdir / "spool"),
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        }
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "actions"], env=env, cwd=PROJECT_ROOT,
                stdout=output, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if self.request("GET", "/health")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.3)
        pytest.fail("the action server did not start:\n" + self.log.read_text())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Optional[Dict[str, str]] = None,
        host: str = "127.0.0.1",
    ) -> Tuple[int, bytes]:
        connection = http.client.HTTPConnection(host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body or None, headers=headers or {})
            reply = connection.getresponse()
            return reply.status, reply.read()
        finally:
            connection.close()

    def call(self, action_call: Any, token: Optional[str] = TOKEN, **headers: str) -> Tuple[int, bytes]:
        body = action_call if isinstance(action_call, bytes) else json.dumps(action_call).encode()
        all_headers = {"Content-Type": "application/json", **headers}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        return self.request("POST", "/webhook", body, all_headers)


def escalation_call(text: str) -> Dict[str, Any]:
    """What Rasa sends to run action_escalate_to_clinician after a risk message."""
    return {
        "next_action": "action_escalate_to_clinician",
        "sender_id": "someone",
        "version": "3.6.21",
        "domain": {},
        "tracker": {
            "sender_id": "someone",
            "slots": {"risk_level": "urgent", "risk_category": "suicide"},
            "latest_message": {"text": text, "intent": {"name": "risk_urgent"}},
            "events": [{"event": "user", "text": text, "timestamp": 1.0}],
            "latest_input_channel": "rest",
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "utter_crisis",
        },
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActionServer]:
    running = ActionServer(tmp_path_factory.mktemp("actions")).start()
    try:
        yield running
    finally:
        running.stop()


def _escalations(server: ActionServer) -> int:
    import sqlalchemy as sa

    path = server.workdir / "escalations.db"
    if not path.exists():
        return 0
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            if "escalations" not in tables:
                return 0
            return int(connection.execute(sa.text("SELECT count(*) FROM escalations")).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"},
     {"Authorization": f"Bearer {TOKEN}x"}],
    ids=["none", "wrong", "no-scheme", "basic", "longer"],
)
def test_a_call_without_the_token_is_refused_and_creates_no_escalation(
    server: ActionServer, headers: Dict[str, str]
) -> None:
    before = _escalations(server)
    body = json.dumps(escalation_call(f"I will end it tonight {MARKER}")).encode()

    status, reply = server.request("POST", "/webhook", body, {"Content-Type": "application/json", **headers})

    assert status == 401
    assert json.loads(reply) == {"error": "unauthorized"}
    assert _escalations(server) == before


def test_the_action_list_needs_the_token_too(server: ActionServer) -> None:
    assert server.request("GET", "/actions")[0] == 401
    status, body = server.request("GET", "/actions", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert {"name": "action_escalate_to_clinician"} in json.loads(body)


def test_health_stays_open(server: ActionServer) -> None:
    assert server.request("GET", "/health") == (200, b'{"status":"ok"}')


def test_with_the_token_the_action_runs(server: ActionServer) -> None:
    before = _escalations(server)

    status, body = server.call(escalation_call(f"I will end it tonight {MARKER}"))

    assert status == 200, body
    events = json.loads(body)["events"]
    assert {e["name"] for e in events} == {"escalation_level"}
    # The Rasa server records the decision itself; this action only keeps the slot in step.
    assert _escalations(server) == before


def test_a_compressed_call_is_read(server: ActionServer) -> None:
    call = {"next_action": "action_no_such_thing", "tracker": {"sender_id": "x"}}
    for encoding, packed in (("deflate", zlib.compress(json.dumps(call).encode())),
                             ("gzip", gzip.compress(json.dumps(call).encode()))):
        status, body = server.call(packed, **{"Content-Encoding": encoding})
        assert status == 404, (encoding, body)


@pytest.mark.parametrize(
    "body, headers, status",
    [
        (b"x" * (MAX_BODY_BYTES + 1), {}, 413),
        (zlib.compress(b" " * (MAX_BODY_BYTES * 20)), {"Content-Encoding": "deflate"}, 413),
        (gzip.compress(b" " * (MAX_BODY_BYTES + 10)), {"Content-Encoding": "gzip"}, 413),
        (b"not deflate at all " + MARKER.encode(), {"Content-Encoding": "deflate"}, 400),
        (b"{}", {"Content-Encoding": "br"}, 415),
        (f'{{"next_action": "{MARKER}"'.encode(), {}, 400),
        (json.dumps([MARKER]).encode(), {}, 400),
        (json.dumps({"tracker": MARKER}).encode(), {}, 400),
    ],
    ids=["too-large", "deflate-bomb", "gzip-bomb", "bad-deflate", "unknown-encoding", "bad-json", "list", "no-action"],
)
def test_bad_bodies_get_a_short_error_that_echoes_nothing(
    server: ActionServer, body: bytes, headers: Dict[str, str], status: int
) -> None:
    got, reply = server.call(body, **headers)

    assert got == status
    assert set(json.loads(reply)) == {"error"}
    assert MARKER.encode() not in reply


def test_an_unknown_action_gets_404_without_the_request(server: ActionServer) -> None:
    call = escalation_call(f"hello {MARKER}")
    call["next_action"] = "action_that_does_not_exist"

    status, reply = server.call(call)

    assert status == 404
    assert json.loads(reply) == {"error": "no such action", "action_name": "action_that_does_not_exist"}


def test_a_failing_action_answers_500_without_echoing_the_request(server: ActionServer) -> None:
    call = escalation_call(f"my words {MARKER} and +1 555 201 7788")
    call["tracker"]["events"] = "not a list of events"

    status, reply = server.call(call)

    assert status == 500
    assert json.loads(reply) == {"error": "internal error"}
    assert MARKER.encode() not in reply


def test_the_log_has_no_words_and_no_token(server: ActionServer) -> None:
    test_a_failing_action_answers_500_without_echoing_the_request(server)
    time.sleep(0.5)  # the log line is written after the reply
    log = server.log.read_text()

    assert "failed (" in log, "the failure is logged"
    assert MARKER not in log
    assert "555 201 7788" not in log
    assert TOKEN not in log


def test_it_listens_on_loopback_only(server: ActionServer) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 9))  # no packet is sent: picks this machine's outward address
        address = probe.getsockname()[0]
    if address.startswith("127."):
        pytest.skip("this machine has no address but loopback")  # pragma: no cover
    with pytest.raises(OSError):
        server.request("GET", "/health", host=address)


@pytest.mark.parametrize(
    "header, expected",
    [(f"Bearer {TOKEN}", True), (None, False), ("", False), (f"bearer {TOKEN}", False), ("Bearer é", False)],
)
def test_token_check(header: Optional[str], expected: bool) -> None:
    assert is_authorized(header, TOKEN) is expected
    assert is_authorized(header, "") is False
