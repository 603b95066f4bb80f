"""An in-process ASGI client for the console app that keeps cookies like a browser.

sanic-testing (whose asgi_client does the same) pins an httpx/h11 older than the
one this environment needs, so the few lines of ASGI driving live here instead.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from sanic import Sanic

DEFAULT_HOST = "console.test"
STARTUP_TIMEOUT_SECONDS = 30


@contextmanager
def _quiet_asgi_warnings():
    # Sanic 21.12 warns on every ASGI call that before_server_start runs at startup;
    # that is exactly what the app wants.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You have set a listener for", category=UserWarning)
        yield


@dataclass
class Response:
    """What the app answered."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """Return the first header called ``name`` (any case), or None."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        """Return every header called ``name`` (any case)."""
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def text(self) -> str:
        """Return the body as text."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class AsgiClient:
    """Runs the app's ASGI lifespan and requests in one private event loop."""

    app: Sanic
    host: str = DEFAULT_HOST
    client_ip: str = "127.0.0.1"
    cookies: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Create the loop; nothing runs until ``start``."""
        self.loop = asyncio.new_event_loop()
        self._lifespan: asyncio.Future[Any] | None = None

    # Lifespan ---------------------------------------------------------------

    def start(self) -> AsgiClient:
        """Run the app's startup listeners (opens the store)."""
        self.loop.run_until_complete(self._start())
        return self

    async def _start(self) -> None:
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        with _quiet_asgi_warnings():
            self._lifespan = asyncio.ensure_future(
                self.app(
                    {"type": "lifespan", "asgi": {"version": "3.0"}},
                    self._to_app.get,
                    self._from_app.put,
                )
            )
            await self._to_app.put({"type": "lifespan.startup"})
            reply = asyncio.ensure_future(self._from_app.get())
            done, _ = await asyncio.wait(
                {reply, self._lifespan},
                timeout=STARTUP_TIMEOUT_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )
        if reply not in done:
            reply.cancel()
            if self._lifespan in done:
                self._lifespan.result()  # re-raises the startup error
            raise TimeoutError("the app did not finish starting")
        assert reply.result()["type"] == "lifespan.startup.complete"

    def close(self) -> None:
        """Run the shutdown listeners and close the loop (again: nothing happens)."""
        if self._lifespan is not None and not self.loop.is_closed():
            self.loop.run_until_complete(self._stop())
        self._lifespan = None
        self.loop.close()

    async def _stop(self) -> None:
        assert self._lifespan is not None
        await self._to_app.put({"type": "lifespan.shutdown"})
        reply = await asyncio.wait_for(self._from_app.get(), STARTUP_TIMEOUT_SECONDS)
        assert reply["type"] == "lifespan.shutdown.complete"
        try:
            await self._lifespan
        except AttributeError:
            # Sanic 21.12 handles the finished lifespan scope like a request and
            # fails for want of one; ASGI servers ignore this after shutdown too.
            pass

    # Requests ---------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        send_cookies: bool = True,
    ) -> Response:
        """Send one request and return the response; Set-Cookie updates the jar."""
        return self.run(self.send_later(method, path, json_body=json_body, body=body, headers=headers,
                                        send_cookies=send_cookies))

    def send_later(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        send_cookies: bool = True,
    ) -> asyncio.Task[Response]:
        """Start a request on the client's loop and return its task (see ``run``), for concurrent requests."""
        all_headers = {"host": self.host}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["content-type"] = "application/json"
        if send_cookies and self.cookies:
            all_headers["cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        all_headers.update({key.lower(): value for key, value in (headers or {}).items()})

        async def send() -> Response:
            response = await self._send(method, path, all_headers, body or b"")
            self._store_cookies(response)
            return response

        return self.loop.create_task(send())

    def run(self, awaitable: Any) -> Any:
        """Run the client's loop until ``awaitable`` is done and return its result."""
        return self.loop.run_until_complete(awaitable)

    def get(self, path: str, **kwargs: Any) -> Response:
        """Send a GET request."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        """Send a POST request."""
        return self.request("POST", path, **kwargs)

    async def _send(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        parts = urlsplit(path)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": parts.path,
            "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(),
            "root_path": "",
            "headers": [(key.encode("latin-1"), value.encode("latin-1")) for key, value in headers.items()],
            "client": (self.client_ip, 50000),
            "server": (self.host, 80),
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        disconnected = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await disconnected.wait()
            return {"type": "http.disconnect"}

        started: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        with _quiet_asgi_warnings():
            await self.app(scope, receive, send)
        disconnected.set()
        return Response(
            status=started["status"],
            headers=[(key.decode("latin-1"), value.decode("latin-1")) for key, value in started.get("headers", [])],
            body=b"".join(chunks),
        )

    def _store_cookies(self, response: Response) -> None:
        for header in response.header_all("set-cookie"):
            cookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def parsed_set_cookie(self, response: Response, name: str) -> dict[str, str]:
        """Return the attributes of cookie ``name`` set by ``response``, lower-cased."""
        for header in response.header_all("set-cookie"):
            if header.startswith(f"{name}="):
                attributes = {"value": header.split(";")[0].split("=", 1)[1]}
                for part in header.split(";")[1:]:
                    key, _, value = part.strip().partition("=")
                    attributes[key.lower()] = value or "true"
                return attributes
        raise AssertionError(f"no Set-Cookie for {name}")
