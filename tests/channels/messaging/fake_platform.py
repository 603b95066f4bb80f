"""A stand-in for the Telegram, Slack, Twilio and Graph APIs on loopback that records every call."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit


@dataclass
class PlatformCall:
    """One request a connector made to a platform API."""

    platform: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: Any = field(default=None)

    @property
    def method(self) -> str:
        """The API method: the last path segment (sendMessage, chat.postMessage, Messages.json, messages)."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def _parse_body(content_type: str, raw: bytes) -> Any:
    text = raw.decode("utf-8", "replace")
    if "json" in content_type:
        return json.loads(text) if text else None
    if "x-www-form-urlencoded" in content_type:
        return {key: values[0] if len(values) == 1 else values for key, values in parse_qs(text).items()}
    return text


class FakePlatform:
    """Answers like each platform's API would, under /telegram, /slack, /twilio and /facebook."""

    def __init__(self, port: int, telegram_bot_name: str) -> None:
        self.port = port
        self.telegram_bot_name = telegram_bot_name
        self.calls: List[PlatformCall] = []
        # Graph API calls to these recipients take this many seconds (a slow platform).
        self.facebook_delays: Dict[str, float] = {}
        # What happened, in order: "<platform> <recipient> started|finished", and what tests add.
        self.timeline: List[str] = []
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                name = parts.path.strip("/").split("/", 1)[0]
                call = PlatformCall(
                    platform=name,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers=dict(self.headers),
                    body=_parse_body(self.headers.get("Content-Type", ""), raw),
                )
                with platform._lock:
                    platform.calls.append(call)
                delay = platform._delay_for(call)
                if delay:
                    recipient = call.body.get("recipient", {}).get("id")
                    platform.note(f"facebook {recipient} started")
                    time.sleep(delay)
                    platform.note(f"facebook {recipient} finished")
                status, answer = platform._answer(call)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def note(self, happening: str) -> None:
        """Adds to the timeline (from any thread)."""
        with self._lock:
            self.timeline.append(happening)

    def timeline_copy(self) -> List[str]:
        with self._lock:
            return list(self.timeline)

    def _delay_for(self, call: PlatformCall) -> float:
        if call.platform != "facebook" or not isinstance(call.body, dict):
            return 0.0
        recipient = (call.body.get("recipient") or {}).get("id")
        with self._lock:
            return self.facebook_delays.get(recipient, 0.0)

    def _answer(self, call: PlatformCall) -> tuple[int, Any]:
        if call.platform == "telegram":
            if call.method == "getMe":
                user = {"id": 7012345678, "is_bot": True, "first_name": "Test", "username": self.telegram_bot_name}
                return 200, {"ok": True, "result": user}
            if call.method == "sendMessage":
                chat_id = int((call.body or {}).get("chat_id", 0))
                chat = {"id": chat_id, "type": "private"}
                sent = {"message_id": len(self.calls), "date": int(time.time()), "chat": chat}
                return 200, {"ok": True, "result": sent}
            return 200, {"ok": True, "result": True}
        if call.platform == "slack":
            body = call.body if isinstance(call.body, dict) else {}
            return 200, {"ok": True, "channel": body.get("channel"), "ts": f"{time.time():.6f}"}
        if call.platform == "twilio":
            body = call.body if isinstance(call.body, dict) else {}
            return 201, {
                "sid": f"SM{len(self.calls):032x}",
                "status": "queued",
                "to": body.get("To"),
                "from": body.get("From"),
                "body": body.get("Body"),
            }
        if call.platform == "facebook":
            recipient = ((call.body or {}).get("recipient") or {}).get("id")
            return 200, {"recipient_id": recipient, "message_id": f"m_{len(self.calls)}"}
        return 200, {"ok": True}

    def calls_where(self, predicate: Callable[[PlatformCall], bool]) -> List[PlatformCall]:
        with self._lock:
            return [call for call in self.calls if predicate(call)]

    def wait_for(
        self,
        predicate: Callable[[List[PlatformCall]], bool],
        select: Callable[[PlatformCall], bool],
        timeout: float = 60,
    ) -> List[PlatformCall]:
        """The calls `select` picks once `predicate` holds for them (for replies sent in the background)."""
        deadline = time.monotonic() + timeout
        while True:
            calls = self.calls_where(select)
            if predicate(calls) or time.monotonic() > deadline:
                return calls
            time.sleep(0.1)
