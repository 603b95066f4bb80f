"""Real faults between real processes: an HTTP hop that fails on demand, a TCP hop that can be cut."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, List, Optional

from tests.escalation.receivers import free_port

PASS, ERROR, HANG = "pass", "error", "hang"


class ActionServerHop:
    """Sits between the Rasa server and the action server on loopback.

    `pass` forwards every request; `error` answers 500 as a crashed action
    would; `hang` holds the request without answering (until `release()`).
    """

    def __init__(self, upstream: str, port: Optional[int] = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = port or free_port()
        self.mode = PASS
        self.requests = 0
        self._released = threading.Event()
        self._server: Optional[ThreadingHTTPServer] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == HANG:
            self._released.clear()
        else:
            self._released.set()

    def release(self) -> None:
        self.set_mode(PASS)

    def start(self) -> None:
        hop = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self._forward(None)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hop.requests += 1
                if hop.mode == ERROR:
                    self._answer(500, b'{"error": "injected"}')
                    return
                if hop.mode == HANG:
                    hop._released.wait(timeout=600)
                    return  # the connection closes without an answer
                self._forward(body)

            def _forward(self, body: Optional[bytes]) -> None:
                request = urllib.request.Request(
                    hop.upstream + self.path,
                    data=body,
                    headers={"Content-Type": self.headers.get("Content-Type") or "application/json"},
                    method=self.command,
                )
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        self._answer(response.status, response.read())
                except urllib.error.HTTPError as error:
                    self._answer(error.code, error.read())
                except OSError:
                    self._answer(502, b'{"error": "upstream unreachable"}')

            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class TcpHop:
    """Forwards a TCP port to another (PostgreSQL here); `cut()` closes it and every open connection."""

    def __init__(self, upstream_port: int, port: Optional[int] = None) -> None:
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self._listener: Optional[socket.socket] = None
        self._connections: List[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Nothing listens on the port any more, and open connections break."""
        if self._listener is not None:
            try:
                # Closing alone leaves a socket that a blocked accept() still holds listening.
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            connections, self._connections = self._connections, []
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def restore(self) -> None:
        self.start()
