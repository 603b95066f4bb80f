"""run_console serves the app with Sanic's own server on loopback, logging no user text."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bot.escalation.store import EscalationStore

from .conftest import CSRF, PASSWORDS, SECRET, make_escalation

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = """
import sys
from bot.web import ConsoleConfig, run_console
db_url, password_hash, secret, port = sys.argv[1:5]
config = ConsoleConfig(db_url=db_url, clinicians={"ana": password_hash}, session_secret=secret)
run_console(config, host="127.0.0.1", port=int(port))
"""
USER_TEXT = "PRIVATE-USER-TEXT-7f3a"
NOTE_TEXT = "PRIVATE-NOTE-TEXT-9c1d"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(
    url: str,
    *,
    data: dict | None = None,
    body: bytes | None = None,
    headers: dict | None = None,
):
    if data is not None:
        body = json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        return urllib.request.urlopen(request, timeout=5)
    except urllib.error.HTTPError as error:
        return error


def _chunked_post(port: int, path: str, body: bytes, headers: dict) -> tuple[int, dict]:
    """POST ``body`` without a Content-Length, in chunks, as a streaming client would."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        chunks = (body[start : start + 8192] for start in range(0, len(body), 8192))
        connection.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _wait_until_serving(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "the console server exited while starting"
        try:
            urllib.request.urlopen(f"{base}/console", timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the console server did not start within 60 s")


def test_run_console_serves_over_real_http(
    db_url: str, store: EscalationStore, password_hashes: dict[str, str], tmp_path: Path
) -> None:
    escalation = make_escalation(store, transcript=[{"sender": "user", "text": USER_TEXT, "timestamp": None}])
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT, db_url, password_hashes["ana"], SECRET, str(port)],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_serving(base, server)

            page = _request(f"{base}/console")
            assert page.status == 200
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]

            login = _request(
                f"{base}/api/login",
                data={"username": "ana", "password": PASSWORDS["ana"]},
                headers={**CSRF, "Content-Type": "application/json"},
            )
            assert login.status == 200
            cookie = login.headers["Set-Cookie"].split(";")[0]
            auth = {**CSRF, "Cookie": cookie, "Content-Type": "application/json"}

            detail = json.load(_request(f"{base}/api/escalations/{escalation.id}", headers=auth))
            assert detail["transcript"][0]["text"] == USER_TEXT
            resolved = _request(
                f"{base}/api/escalations/{escalation.id}/resolve",
                data={"note": NOTE_TEXT},
                headers=auth,
            )
            assert resolved.status == 200
            malformed = _request(
                f"{base}/api/escalations/{escalation.id}/resolve",
                body=f'{{"note": "{NOTE_TEXT}'.encode(),
                headers=auth,
            )
            assert malformed.status == 400
            assert NOTE_TEXT.encode() not in malformed.read()

            too_large = b'{"note": "' + NOTE_TEXT.encode() * 5000 + b'"}'
            refused = _request(f"{base}/api/escalations/{escalation.id}/resolve", body=too_large, headers=auth)
            assert refused.status == 413
            assert json.load(refused) == {"error": {"status": 413, "message": "The request is too large."}}
            assert _chunked_post(port, f"/api/escalations/{escalation.id}/resolve", too_large, auth) == (
                413,
                {"error": {"status": 413, "message": "The request is too large."}},
            )
        finally:
            server.send_signal(signal.SIGINT)
            try:
                exit_code = server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                raise
    assert exit_code == 0
    assert store.get(escalation.id).resolved_by == "ana"
    output = log_path.read_text(encoding="utf-8", errors="replace")
    assert USER_TEXT not in output
    assert NOTE_TEXT not in output
    assert PASSWORDS["ana"] not in output
