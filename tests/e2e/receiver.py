"""A real HTTP receiver on loopback that records the alerts posted to it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional


class AlertReceiver:
    """Accepts JSON POSTs on 127.0.0.1:<port>; can be stopped and started again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body.decode("utf-8", "replace")}
                    )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.allow_reuse_address = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def alerts_for(self, escalation_id: str) -> List[Dict[str, Any]]:
        with self._lock:
            return [a for a in self.received if escalation_id in a["body"]]

    def wait_for(self, escalation_id: str, timeout: float) -> Optional[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alerts = self.alerts_for(escalation_id)
            if alerts:
                return alerts[0]
            time.sleep(0.2)
        return None

    def json_bodies(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [json.loads(a["body"]) for a in self.received]
