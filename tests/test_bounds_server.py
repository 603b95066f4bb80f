"""A real Rasa server under hostile load: bounded memory, clean refusals, no 5xx, crisis replies on time.

One action server and one Rasa server (the project's endpoints, with a lower
`max_conversations` so that forgetting shows within the test) serve every
test here.
"""

from __future__ import annotations

import http.client
import json
import random
import string
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import yaml

from bot.channels.text import MAX_MESSAGE_CHARS
from bot.rasa_server import MAX_REQUEST_BYTES
from bot.services import Supervisor
from bot.settings import PROJECT_ROOT
from tests.adversarial_text import worst_case_samples
from tests.escalation.receivers import free_port
from tests.servers import require_model, running_services, server_environment, write_endpoints

pytestmark = pytest.mark.e2e

TOKEN = "bounds-e2e-token"
MAX_CONVERSATIONS = 1000
CONVERSATIONS = 2000
# Measured on a 2-core machine: 952 MB once the server was up, 964 MB at the
# peak of the 2,000 conversations below. The bound leaves 2.5 times that.
RSS_BOUND_MB = 2500
CRISIS_TIMEOUT_SECONDS = 10.0
# The slowest texts under the length limit for the NLU pipeline (`python -m bench worst-case`):
# now, and before its text handling was made linear (36 s, blocking every conversation).
WORST_CASES = (
    ("www." * (MAX_MESSAGE_CHARS // 4))[:MAX_MESSAGE_CHARS],
    "(" * (MAX_MESSAGE_CHARS // 2) + ")" * (MAX_MESSAGE_CHARS // 2),
)


@dataclass
class RasaUnderTest:
    supervisor: Supervisor
    port: int

    @property
    def pid(self) -> int:
        process = self.supervisor.service("rasa server").process
        assert process is not None
        return process.pid

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.pid}/status").read_text(encoding="utf-8")
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def post(
        self, path: str, body: bytes, timeout: float = 120.0, headers: Optional[Dict[str, str]] = None
    ) -> Tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def say(self, sender: str, message: str, timeout: float = 120.0) -> Tuple[int, Any]:
        body = json.dumps({"sender": sender, "message": message}, ensure_ascii=False).encode("utf-8")
        status, raw = self.post("/webhooks/rest/webhook", body, timeout)
        return status, (json.loads(raw) if status == 200 else raw)

    def user_messages(self, sender: str) -> List[str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", f"/conversations/{sender}/tracker?token={TOKEN}")
            response = connection.getresponse()
            assert response.status == 200
            events = json.loads(response.read())["events"]
        finally:
            connection.close()
        return [event.get("text") for event in events if event["event"] == "user"]


@pytest.fixture(scope="module")
def rasa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaUnderTest]:
    require_model()
    workdir = tmp_path_factory.mktemp("bounds-servers")
    rasa_port, action_port = free_port(), free_port()
    project_store = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8"))["tracker_store"]
    write_endpoints(workdir, action_port, tracker_store={**project_store, "max_conversations": MAX_CONVERSATIONS})
    env = server_environment(
        workdir, token=TOKEN, rasa_port=rasa_port, action_port=action_port, console_port=free_port()
    )
    with running_services(env, only=("action server", "rasa server")) as supervisor:
        yield RasaUnderTest(supervisor, rasa_port)


def _sender(kind: str) -> str:
    return f"bounds-{kind}-{uuid.uuid4().hex[:10]}"


def _replies_text(replies: List[Dict[str, Any]]) -> str:
    return " ".join(reply.get("text", "") for reply in replies)


def test_an_oversize_body_gets_a_413_and_the_server_goes_on(rasa: RasaUnderTest) -> None:
    body = json.dumps({"sender": _sender("big"), "message": "x" * 1000, "metadata": {"blob": "y" * 200_000}})
    assert len(body) > MAX_REQUEST_BYTES

    status, _ = rasa.post("/webhooks/rest/webhook", body.encode())

    assert status == 413
    status, replies = rasa.say(_sender("after"), "what is ptsd")
    assert status == 200 and replies


def test_a_body_at_the_limit_is_still_read(rasa: RasaUnderTest) -> None:
    status, replies = rasa.say(_sender("limit"), "is mdma therapy legal " + "a" * (MAX_MESSAGE_CHARS - 30))
    assert status == 200 and replies


def test_hostile_texts_never_get_a_server_error(rasa: RasaUnderTest) -> None:
    rng = random.Random(7)
    texts = worst_case_samples()
    alphabet = "ab(),.?!@1- '\"\u202e\u200b🙂字\t\n"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, MAX_MESSAGE_CHARS))) for _ in range(10)]
    texts += ["", " ", "\x00", "\ufeff", "/", "/faq/", "/nonexistent_intent", "{" * 5000 + "}" * 5000]

    outcomes = []
    for text in texts:
        body_bytes = len(json.dumps({"sender": "x" * 27, "message": text}, ensure_ascii=False).encode("utf-8"))
        status, _ = rasa.say(_sender("fuzz"), text)
        outcomes.append((status, body_bytes))

    assert all(status < 500 for status, _ in outcomes), outcomes
    # Refused only when the body is over the limit (4-byte emoji); otherwise answered, or a clear 400.
    assert all((status == 413) == (size > MAX_REQUEST_BYTES) for status, size in outcomes), outcomes
    assert all(status in (200, 400, 413) for status, _ in outcomes), outcomes
    assert [status for status, _ in outcomes].count(200) >= len(texts) - 15


def test_a_crisis_reply_is_not_starved_by_a_worst_case_message(rasa: RasaUnderTest) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        heavy = [pool.submit(rasa.say, _sender("heavy"), text) for text in WORST_CASES]
        time.sleep(0.1)  # the heavy messages are in before the crisis message
        crisis = pool.submit(rasa.say, _sender("crisis"), "I want to kill myself tonight", CRISIS_TIMEOUT_SECONDS)

        status, replies = crisis.result(timeout=CRISIS_TIMEOUT_SECONDS + 5)
        assert status == 200
        assert "988" in _replies_text(replies)
        assert all(future.result(timeout=120)[0] == 200 for future in heavy)


def _large_message(rng: random.Random) -> str:
    """Distinct words of random letters up to the length limit: large, and cheap for the NLU to read."""
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randrange(3, 12))) for _ in range(2200)]
    return " ".join(words)[: MAX_MESSAGE_CHARS - 500]


def test_memory_stays_bounded_over_2000_conversations_of_large_messages(rasa: RasaUnderTest) -> None:
    """2,000 conversations, each one message of about 19,500 characters, 4 at a time.

    The Rasa server's RSS stays under RSS_BOUND_MB (2.5 GB; measured 964 MB
    at the peak, 952 MB before), and the store keeps only the MAX_CONVERSATIONS most recent
    conversations: the first ones are forgotten.
    """
    rng = random.Random(11)
    senders = [_sender(f"load{n}") for n in range(CONVERSATIONS)]
    messages = [_large_message(rng) for _ in range(16)]
    start_rss = rasa.rss_mb()
    peak_rss = start_rss

    def talk(index: int) -> int:
        status, _ = rasa.say(senders[index], messages[index % len(messages)] + f" {index}")
        return status

    with ThreadPoolExecutor(max_workers=4) as pool:
        for first in range(0, CONVERSATIONS, 100):
            statuses = list(pool.map(talk, range(first, min(first + 100, CONVERSATIONS))))
            assert all(status == 200 for status in statuses), statuses
            peak_rss = max(peak_rss, rasa.rss_mb())

    print(f"Rasa server RSS: {start_rss:.0f} MB at the start, peak {peak_rss:.0f} MB")
    assert peak_rss < RSS_BOUND_MB
    assert rasa.user_messages(senders[0]) == []
    assert rasa.user_messages(senders[-1]) == [messages[(CONVERSATIONS - 1) % len(messages)] + f" {CONVERSATIONS - 1}"]
