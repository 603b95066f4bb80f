"""Real loopback receivers for alert tests: an HTTP webhook, a tiny SMTP sink and a TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import email
import socket
import threading
from dataclasses import dataclass, field
from email.message import Message
from types import TracebackType
from typing import final

from aiohttp import web


def free_port() -> int:
    """Return a loopback port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the webhook receiver saw it."""

    headers: dict[str, str]
    body: bytes


@final
class WebhookReceiver:
    """An aiohttp server on 127.0.0.1 recording requests; scripted answers."""

    def __init__(
        self,
        port: int | None = None,
        statuses: list[int | tuple[int, dict[str, str]]] | None = None,
        delay_seconds: float = 0.0,
    ) -> None:
        """Prepare a receiver; ``statuses`` are answered in order, then 200 forever.

        An entry may be (status, headers), e.g. (429, {"Retry-After": "120"}).
        """
        self.port = port or free_port()
        self.statuses = list(statuses or [])
        self.delay_seconds = delay_seconds
        self.requests: list[ReceivedRequest] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Return the URL alerts should be posted to."""
        return f"http://127.0.0.1:{self.port}/alerts"

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            ReceivedRequest(dict(request.headers), await request.read())
        )
        await asyncio.sleep(self.delay_seconds)
        answer = self.statuses.pop(0) if self.statuses else 200
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return web.Response(
            status=status, text="ok" if status < 300 else "nope", headers=headers
        )

    async def start(self) -> WebhookReceiver:
        """Start listening on the receiver's port."""
        app = web.Application()
        app.router.add_post("/alerts", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        """Stop listening; later connections are refused."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WebhookReceiver:
        """Start the receiver for an ``async with`` block."""
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the receiver."""
        await self.stop()


@final
@dataclass
class SmtpSink:
    """Just enough of an SMTP server (RFC 5321 happy path) to receive alert e-mails."""

    port: int = field(default_factory=free_port)
    messages: list[Message] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    _server: asyncio.AbstractServer | None = None

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        while line := await reader.readline():
            command = line[:4].upper()
            if command == b"DATA":
                writer.write(b"354 end with <CRLF>.<CRLF>\r\n")
                await writer.drain()
                data = await reader.readuntil(b"\r\n.\r\n")
                unstuffed = data[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")
                self.messages.append(email.message_from_bytes(unstuffed))
                writer.write(b"250 queued\r\n")
            elif command == b"RCPT":
                self.recipients.append(line.decode().split(":", 1)[1].strip(" <>\r\n"))
                writer.write(b"250 ok\r\n")
            elif command == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 sink\r\n")
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> SmtpSink:
        """Start listening on 127.0.0.1."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@final
class TcpProxy:
    """A loopback TCP forwarder to a real server, so a test can make that server vanish.

    Stopping the proxy closes every forwarded connection and refuses new ones,
    which is what a crashed or unreachable database looks like to a client.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        """Prepare a forwarder to ``upstream_host:upstream_port`` on a free port."""
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        """Start accepting and forwarding connections."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listener and every forwarded connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone does not on Linux.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.extend((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
