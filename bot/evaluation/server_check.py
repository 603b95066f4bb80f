"""Asks a running Rasa server what it does with messages, to check `bot evaluate` agrees with it.

Each message is sent to the REST channel as a new conversation, then the
conversation's tracker (Rasa's HTTP API, `--enable-api`) tells which actions
ran and which answer was sent; `outcome_from_events` names that outcome exactly
as the in-process evaluator does.

The messages are real: on a server with an action server, a risk message
records an escalation and alerts the care team. Point this at a test server.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from bot.evaluation.cases import Case
from bot.evaluation.runner import CaseResult, outcome_from_events

SENDER_PREFIX = "evaluate-server-check-"
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT_SECONDS = 60.0
API_HINT = " (is the server started with --enable-api, and is the token its --auth-token?)"


class ServerCheckError(RuntimeError):
    """The server could not be asked (unreachable, refused the token, bad reply)."""


class RasaServerClient:
    """Sends messages to a running Rasa server and reads back what it did."""

    def __init__(self, base_url: str, token: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        """`base_url` like http://127.0.0.1:5005; `token` is the server's `--auth-token`."""
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST" if data is not None else "GET",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            hint = API_HINT if error.code in (401, 403, 404) else ""
            raise ServerCheckError(f"{request.get_method()} {path.split('?')[0]}: HTTP {error.code}{hint}") from error
        except (urllib.error.URLError, OSError) as error:
            raise ServerCheckError(f"cannot reach {self.base_url}: {error}") from error
        except json.JSONDecodeError as error:
            raise ServerCheckError(f"{path.split('?')[0]}: the reply is not JSON") from error

    def send(self, sender: str, text: str) -> List[Dict[str, Any]]:
        """Posts one message to the REST channel; returns the bot's replies."""
        return self._request("/webhooks/rest/webhook", {"sender": sender, "message": text})

    def tracker_events(self, sender: str) -> List[Dict[str, Any]]:
        """The conversation's events (ActionExecuted, BotUttered, UserUttered, ...) as JSON."""
        path = f"/conversations/{urllib.parse.quote(sender, safe='')}/tracker"
        if self.token:
            path += "?" + urllib.parse.urlencode({"token": self.token})
        return list(self._request(path).get("events") or [])

    def outcome(self, text: str) -> str:
        """What the server did with `text` as the first message of a new conversation."""
        sender = f"{SENDER_PREFIX}{uuid.uuid4().hex}"
        self.send(sender, text)
        got, _confidence, _fell_back = outcome_from_events(self.tracker_events(sender))
        return got

    def outcomes(self, texts: Sequence[str], concurrency: int = DEFAULT_CONCURRENCY) -> List[str]:
        """The server's outcome for each text, in order, a few conversations at a time."""
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(self.outcome, texts))


@dataclass(frozen=True)
class Disagreement:
    """A case where the evaluator and the server did different things."""

    case: Case
    evaluator: str
    server: str


@dataclass(frozen=True)
class Agreement:
    """How often the in-process evaluator and the server reached the same outcome."""

    total: int
    disagreements: List[Disagreement]

    @property
    def rate(self) -> float:
        """Share of cases with the same outcome (1.0 when there are none)."""
        return 1.0 - len(self.disagreements) / self.total if self.total else 1.0


def compare_with_server(results: Sequence[CaseResult], server_outcomes: Sequence[str]) -> Agreement:
    """Pairs the evaluator's results with the server's outcomes for the same cases."""
    if len(results) != len(server_outcomes):
        raise ValueError(f"{len(results)} evaluator results but {len(server_outcomes)} server outcomes")
    disagreements = [
        Disagreement(result.case, result.got, server)
        for result, server in zip(results, server_outcomes, strict=True)
        if result.got != server
    ]
    return Agreement(total=len(results), disagreements=disagreements)


def format_agreement(agreement: Agreement) -> str:
    """Agreement rate, then one line per disagreeing case."""
    lines = [
        f"Agreement with the server: {agreement.rate:.1%} "
        f"({agreement.total - len(agreement.disagreements)}/{agreement.total} cases)"
    ]
    for item in agreement.disagreements:
        lines.append(
            f"  line {item.case.line}: evaluator {item.evaluator}, server {item.server}: {item.case.text!r}"
        )
    return "\n".join(lines)
