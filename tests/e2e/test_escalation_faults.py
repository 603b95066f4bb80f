"""Escalations survive every single fault: real Rasa, action server and worker, real PostgreSQL, real webhook.

One stack for the whole module, with two hops that fail on demand: the Rasa
server reaches the action server through `ActionServerHop` (stop, 500, hang)
and every process reaches PostgreSQL through `TcpHop` (cut, restore). Each
test sends one risk message in a new conversation under one fault, restores
the system and checks the escalation and its alert. The last test checks the
totals over the module: as many escalations as risk messages, each alerted
exactly once, and no alert carrying the person's words.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import sqlalchemy as sa

from bot.escalation.store import Escalation, EscalationStore
from bot.services import Supervisor
from tests.e2e.faults import ERROR, HANG, ActionServerHop, TcpHop
from tests.e2e.receiver import AlertReceiver
from tests.escalation.conftest import POSTGRES_URL
from tests.escalation.receivers import SmtpSink, free_port
from tests.servers import require_model, running_services, server_environment, write_endpoints

pytestmark = pytest.mark.e2e

TOKEN = "fault-test-token"
ACTION_TIMEOUT_SECONDS = 3
RECOVERY_TIMEOUT = 90.0
SERVICES = ("action server", "rasa server", "delivery worker")


@dataclass
class FaultStack:
    """The running services, the hops that break them, and what was sent."""

    supervisor: Supervisor
    rasa_port: int
    receiver: AlertReceiver
    mailbox: SmtpSink
    action_hop: ActionServerHop
    db_hop: TcpHop
    store: EscalationStore
    spool_dir: Path
    sent: Dict[str, str] = field(default_factory=dict)  # conversation id -> the person's unique words
    figures: List[str] = field(default_factory=list)

    def say(self, message: str, sender: str) -> List[Dict[str, Any]]:
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.rasa_port}/webhooks/rest/webhook",
            data=json.dumps({"sender": sender, "message": message}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200
            return json.loads(response.read())

    def new_risk(self) -> Tuple[str, str]:
        """A new conversation and a risk message with words of its own."""
        sender = f"fault-{uuid.uuid4().hex[:12]}"
        words = f"zebra{uuid.uuid4().hex[:10]}"
        self.sent[sender] = words
        return sender, f"I have the pills ready and I'm going to kill myself tonight {words}"

    def send_risk(self) -> List[Dict[str, Any]]:
        """One risk message in a new conversation; returns the replies."""
        sender, message = self.new_risk()
        replies = self.say(message, sender)
        texts = " ".join(reply.get("text") or "" for reply in replies)
        assert "911" in texts and "988" in texts, "the crisis resources are in the reply"
        return replies

    def kill(self, name: str) -> None:
        process = self.supervisor.service(name).process
        assert process is not None and process.poll() is None
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def restart(self, name: str) -> None:
        self.supervisor.start_service(name)
        assert self.supervisor.wait_until_ready(timeout=300), f"{name} came back"

    def emails_for(self, escalation_id: str) -> List[str]:
        bodies = [message.get_payload(decode=True) or b"" for message in list(self.mailbox.messages)]
        texts = [body.decode("utf-8", "replace") for body in bodies if isinstance(body, bytes)]
        return [text for text in texts if escalation_id in text]

    def escalations(self) -> List[Escalation]:
        return [e for e in self.store.list_escalations(status=None) if e.conversation_id in self.sent]

    def wait_for_alert(self, sender: str, timeout: float = RECOVERY_TIMEOUT) -> Escalation:
        """The conversation's escalation once it is stored and its alert has arrived."""
        deadline = time.monotonic() + timeout
        escalation: Optional[Escalation] = None
        while time.monotonic() < deadline:
            found = [e for e in self.escalations() if e.conversation_id == sender]
            if found:
                escalation = found[0]
                if self.receiver.alerts_for(escalation.id) and self.emails_for(escalation.id):
                    return escalation
            time.sleep(0.5)
        pytest.fail(f"no {'alert' if escalation else 'escalation'} for the conversation within {timeout:.0f} s")


def _honest_status(replies: List[Dict[str, Any]]) -> str:
    texts = [reply.get("text") or "" for reply in replies]
    [status] = [text for text in texts if "care team" in text and "being alerted" in text]
    return status


@pytest.fixture(scope="module")
def mailbox() -> Iterator[SmtpSink]:
    """A real SMTP server on loopback, the second alert destination, on a loop of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sink = SmtpSink()
    asyncio.run_coroutine_threadsafe(sink.__aenter__(), loop).result(timeout=10)
    try:
        yield sink
    finally:
        asyncio.run_coroutine_threadsafe(sink.__aexit__(None, None, None), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mailbox: SmtpSink) -> Iterator[FaultStack]:
    require_model()
    workdir = tmp_path_factory.mktemp("faults")
    schema = f"esc_e2e_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, future=True)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    upstream_port = sa.engine.make_url(POSTGRES_URL).port or 5432
    db_hop = TcpHop(upstream_port)
    db_hop.start()
    hop_url = sa.engine.make_url(POSTGRES_URL).set(port=db_hop.port, query={"options": f"-csearch_path={schema}"})
    rasa_port, action_port = free_port(), free_port()
    action_hop = ActionServerHop(f"http://127.0.0.1:{action_port}")
    action_hop.start()
    receiver = AlertReceiver(free_port())
    receiver.start()
    write_endpoints(workdir, action_hop.port)
    env = server_environment(
        workdir,
        token=TOKEN,
        rasa_port=rasa_port,
        action_port=action_port,
        ESCALATION_DB_URL=hop_url.render_as_string(hide_password=False),
        ESCALATION_WEBHOOK_URL=receiver.url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(mailbox.port),
        SMTP_FROM="alerts@clinic.example",
        SMTP_TO="care-team@clinic.example",
        SMTP_STARTTLS="false",
        ESCALATION_ACK_MINUTES="120",  # no reminder within the module: every alert counted is a first alert
        ACTION_SERVER_TIMEOUT=str(ACTION_TIMEOUT_SECONDS),
    )
    store = EscalationStore(POSTGRES_URL, schema=schema)
    try:
        with running_services(env, only=SERVICES) as supervisor:
            stack = FaultStack(supervisor, rasa_port, receiver, mailbox, action_hop, db_hop, store, workdir / "spool")
            yield stack
            print("\n" + "\n".join(stack.figures))
    finally:
        receiver.stop()
        action_hop.stop()
        db_hop.cut()
        store.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_action_server_stopped(stack: FaultStack) -> None:
    stack.supervisor.stop_service("action server")
    stack.action_hop.stop()  # nothing listens where the Rasa server calls actions
    try:
        replies = stack.send_risk()
    finally:
        stack.action_hop.start()
        stack.restart("action server")
    _honest_status(replies)
    stack.wait_for_alert(list(stack.sent)[-1])


def test_action_server_answering_500(stack: FaultStack) -> None:
    stack.action_hop.set_mode(ERROR)
    calls = stack.action_hop.requests
    try:
        replies = stack.send_risk()
    finally:
        stack.action_hop.release()
    assert stack.action_hop.requests > calls, "the escalation action was called and failed"
    _honest_status(replies)
    stack.wait_for_alert(list(stack.sent)[-1])


def test_action_server_hanging_past_rasas_timeout(stack: FaultStack) -> None:
    stack.action_hop.set_mode(HANG)
    calls = stack.action_hop.requests
    try:
        replies = stack.send_risk()
    finally:
        stack.action_hop.release()
    assert stack.action_hop.requests > calls, "the escalation action was called and never answered"
    assert replies[-1]["text"] == "Are you safe right now?", "the turn went on after the timeout"
    _honest_status(replies)
    stack.wait_for_alert(list(stack.sent)[-1])


def test_escalation_database_down_then_back(stack: FaultStack) -> None:
    stack.db_hop.cut()
    try:
        replies = stack.send_risk()
        sender = list(stack.sent)[-1]
        _honest_status(replies)  # the spool file exists: the alert is on its way
        assert [path for path in stack.spool_dir.rglob("*") if path.is_file()], "the decision waits in the spool"
        assert not [e for e in stack.escalations() if e.conversation_id == sender]
    finally:
        stack.db_hop.restore()
    stack.wait_for_alert(sender)


def test_rasa_server_killed_right_after_the_crisis_reply(stack: FaultStack) -> None:
    # The crisis reply and its status are rendered before the escalation action is
    # called; the hop holds that call, and the server is killed while it waits.
    stack.action_hop.set_mode(HANG)
    calls = stack.action_hop.requests
    sender, message = stack.new_risk()
    outcome: Dict[str, Any] = {}

    def converse() -> None:
        try:
            outcome["replies"] = stack.say(message, sender)
        except OSError as error:
            outcome["error"] = error

    talk = threading.Thread(target=converse, daemon=True)
    talk.start()
    try:
        deadline = time.monotonic() + 60
        while stack.action_hop.requests == calls and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stack.action_hop.requests > calls, "the turn reached the escalation action"
        stack.kill("rasa server")
    finally:
        stack.action_hop.release()
    talk.join(timeout=30)
    assert "error" in outcome, "the turn died with the server"
    stack.restart("rasa server")
    stack.wait_for_alert(sender)


def test_delivery_worker_killed(stack: FaultStack) -> None:
    replies = stack.send_risk()
    stack.kill("delivery worker")
    _honest_status(replies)
    time.sleep(2)
    stack.restart("delivery worker")
    stack.wait_for_alert(list(stack.sent)[-1])


def test_full_stop_and_restart(stack: FaultStack) -> None:
    replies = stack.send_risk()
    stack.supervisor.stop()
    _honest_status(replies)
    stack.supervisor.start()
    assert stack.supervisor.wait_until_ready(timeout=300)
    stack.wait_for_alert(list(stack.sent)[-1])


def test_each_risk_message_made_one_escalation_alerted_exactly_once(stack: FaultStack) -> None:
    time.sleep(5)  # a duplicate delivery would arrive within the worker's next passes
    escalations = stack.escalations()
    bodies = [alert["body"] for alert in stack.receiver.received]
    per_escalation = {e.id: len(stack.receiver.alerts_for(e.id)) for e in escalations}
    emails = {e.id: len(stack.emails_for(e.id)) for e in escalations}
    email_texts = [text for e in escalations for text in stack.emails_for(e.id)]
    headers = [{k.lower(): v for k, v in alert["headers"].items()} for alert in stack.receiver.received]
    keys = [header.get("idempotency-key") for header in headers]
    stack.figures += [
        f"risk messages sent: {len(stack.sent)}",
        f"escalations created: {len(escalations)}",
        f"alerts received: {len(bodies)} (distinct idempotency keys: {len(set(keys))})",
        f"webhook alerts per escalation: {sorted(per_escalation.values())}",
        f"emails received: {len(stack.mailbox.messages)}; per escalation: {sorted(emails.values())}",
    ]
    assert len(escalations) == len(stack.sent) == 7
    assert sorted({e.conversation_id for e in escalations}) == sorted(stack.sent)
    assert all(count == 1 for count in per_escalation.values()), per_escalation
    assert len(bodies) == len(escalations)
    assert all(count == 1 for count in emails.values()), emails
    assert len(stack.mailbox.messages) == len(escalations)
    for words in stack.sent.values():
        assert not any(words in body for body in bodies), "an alert carried the person's words"
        assert not any(words in text for text in email_texts), "an email carried the person's words"
    assert all(any(words in turn["text"] for turn in e.transcript) for e, words in (
        (e, stack.sent[e.conversation_id]) for e in escalations
    )), "the console keeps the words"
