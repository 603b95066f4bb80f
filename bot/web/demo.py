"""The demo clinic page at `/` and the chat widget a clinic embeds with one script tag."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Tuple
from urllib.parse import urlsplit

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw
from sanic.response import json as json_response

from bot.crisis import CrisisResources, load_crisis_resources
from bot.settings import PROJECT_ROOT, Settings
from bot.web.errors import ConsoleError

logger = logging.getLogger(__name__)

WIDGET_DIR = Path(__file__).resolve().parent / "static" / "widget"
SOCKETIO_CLIENT_FILE = PROJECT_ROOT / "web" / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
PAGE_FILE = "clinic.html"
PAGE_STYLE = "clinic.css"
# Only these files are served under /widget/: a clinic's page loads them from
# another origin, so they are marked as embeddable (Cross-Origin-Resource-Policy).
WIDGET_FILES = {
    "chat-widget.js": "text/javascript; charset=utf-8",
    "chat-widget.css": "text/css; charset=utf-8",
    "socket.io.min.js": "text/javascript; charset=utf-8",
}
INSTALL_HINT = "npm ci --prefix web"


@dataclass(frozen=True)
class ChatPageConfig:
    """What the demo page and the widget need: the crisis line and where the chat socket is.

    Attributes:
        crisis: Emergency number and crisis line of the configured region.
        socket_url: Origin of the Rasa server's Socket.IO channel, e.g. http://127.0.0.1:5005.
        allowed_origins: Pages allowed to embed the widget (the same list the channel enforces).
        socket_path: Path of the Socket.IO endpoint on the Rasa server.
        socketio_client_file: socket.io-client's browser bundle, installed by npm.
    """

    crisis: CrisisResources
    socket_url: str
    allowed_origins: Tuple[str, ...]
    socket_path: str = "/socket.io"
    socketio_client_file: Path = field(default=SOCKETIO_CLIENT_FILE)

    def __post_init__(self) -> None:
        """Reject a socket URL the page's security policy could not name."""
        parts = urlsplit(self.socket_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"CHAT_SOCKET_URL must look like https://assistant.example:5005, got {self.socket_url!r}")

    @property
    def socket_origins(self) -> Tuple[str, str]:
        """The socket's HTTP and WebSocket origins, for the page's connect-src."""
        parts = urlsplit(self.socket_url)
        websocket_scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{parts.scheme}://{parts.netloc}", f"{websocket_scheme}://{parts.netloc}"


def chat_page_config(settings: Settings) -> ChatPageConfig:
    """The demo page's configuration; fails early if the crisis resources cannot be read."""
    return ChatPageConfig(
        crisis=load_crisis_resources(settings.crisis_resources_file, settings.crisis_region),
        socket_url=settings.chat_socket_url,
        allowed_origins=settings.chat_allowed_origins,
    )


@dataclass(frozen=True)
class _Asset:
    body: bytes
    content_type: str


def _tel_href(number: str) -> str:
    return "tel:" + "".join(ch for ch in number if ch.isdigit() or ch == "+")


def render_clinic_page(template: str, crisis: CrisisResources) -> str:
    """Fill the page template's placeholders with the (escaped) crisis resources."""
    values = {
        "emergency_number": crisis.emergency_number,
        "emergency_tel": _tel_href(crisis.emergency_number),
        "crisis_line": crisis.crisis_line,
        "region_name": crisis.region_name,
    }
    page = template
    for name, value in values.items():
        page = page.replace("{{ " + name + " }}", html.escape(value, quote=True))
    return page


def page_security_policy(config: ChatPageConfig) -> str:
    """The demo page's CSP: the console's, plus the chat socket in connect-src."""
    http_origin, websocket_origin = config.socket_origins
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' {http_origin} {websocket_origin}; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    )


def widget_settings(config: ChatPageConfig) -> Dict[str, Any]:
    """What the widget fetches on load: where to connect and what to show in an emergency."""
    return {
        "socket_url": config.socket_url,
        "socket_path": config.socket_path,
        "crisis": config.crisis.as_template_variables(),
    }


def _load_assets(config: ChatPageConfig) -> Dict[str, _Asset]:
    page = render_clinic_page((WIDGET_DIR / PAGE_FILE).read_text(encoding="utf-8"), config.crisis)
    assets = {
        PAGE_FILE: _Asset(page.encode("utf-8"), "text/html; charset=utf-8"),
        PAGE_STYLE: _Asset((WIDGET_DIR / PAGE_STYLE).read_bytes(), "text/css; charset=utf-8"),
    }
    for name, content_type in WIDGET_FILES.items():
        path = config.socketio_client_file if name == "socket.io.min.js" else WIDGET_DIR / name
        try:
            assets[name] = _Asset(path.read_bytes(), content_type)
        except FileNotFoundError:
            # The console must keep running for escalations; the widget then says it cannot connect.
            logger.error("The chat widget cannot load %s: run `%s`.", path, INSTALL_HINT)
    return assets


def demo_blueprint(config: ChatPageConfig) -> Blueprint:
    """The demo clinic page at `/`, its style, and the widget files and settings under `/widget/`."""
    bp = Blueprint("chat_demo")
    security_policy = page_security_policy(config)
    settings_body = widget_settings(config)
    allow_any_origin = "*" in config.allowed_origins

    @bp.listener("before_server_start")
    async def load_assets(app: Any, _loop: Any) -> None:
        app.ctx.chat_assets = _load_assets(config)

    def serve(request: Request, name: str, headers: Dict[str, str]) -> HTTPResponse:
        asset = request.app.ctx.chat_assets.get(name)
        if asset is None:
            raise ConsoleError(404, "Not found.")
        return raw(asset.body, content_type=asset.content_type, headers=headers)

    @bp.get("/")
    async def clinic_page(request: Request) -> HTTPResponse:
        return serve(request, PAGE_FILE, {"Content-Security-Policy": security_policy, "Cache-Control": "no-cache"})

    @bp.get("/clinic.css")
    async def clinic_style(request: Request) -> HTTPResponse:
        return serve(request, PAGE_STYLE, {"Cache-Control": "no-cache"})

    @bp.get("/widget/config.json")
    async def widget_config(request: Request) -> HTTPResponse:
        headers = {"Cache-Control": "no-cache", "Vary": "Origin"}
        origin = request.headers.get("origin")
        if origin and (allow_any_origin or origin in config.allowed_origins):
            headers["Access-Control-Allow-Origin"] = origin
        return json_response(settings_body, headers=headers)

    @bp.get("/widget/<name:str>")
    async def widget_file(request: Request, name: str) -> HTTPResponse:
        if name not in WIDGET_FILES:
            raise ConsoleError(404, "Not found.")
        return serve(request, name, {"Cache-Control": "no-cache", "Cross-Origin-Resource-Policy": "cross-origin"})

    return bp
