"""The console page and its static files, served under the configured base path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from bot.web.errors import ConsoleError

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX_FILE = "index.html"
BASE_PATH_PLACEHOLDER = "{{ base_path }}"
# Only these files are served: nothing else in the package can be fetched by name.
ASSET_TYPES = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    """A file served from memory."""

    body: bytes
    content_type: str


def load_console_assets(base_path: str) -> dict[str, Asset]:
    """Read the page and its static files, with the base path filled into the page.

    The base path is validated by ConsoleConfig to URL-safe characters only, so it
    can go into the HTML unescaped.
    """
    index = (STATIC_DIR / INDEX_FILE).read_text(encoding="utf-8")
    assets = {
        INDEX_FILE: Asset(
            index.replace(BASE_PATH_PLACEHOLDER, base_path).encode("utf-8"),
            "text/html; charset=utf-8",
        )
    }
    for name, content_type in ASSET_TYPES.items():
        assets[name] = Asset((STATIC_DIR / name).read_bytes(), content_type)
    return assets


def _serve(request: Request, name: str, cache_control: str) -> HTTPResponse:
    asset = request.app.ctx.console_assets.get(name)
    if asset is None:
        raise ConsoleError(404, "Not found.")
    return raw(
        asset.body,
        content_type=asset.content_type,
        headers={"Cache-Control": cache_control},
    )


async def console_page(request: Request) -> HTTPResponse:
    """Serve the single-page console; the script picks the view from the URL."""
    return _serve(request, INDEX_FILE, "no-store")


async def escalation_page(request: Request, escalation_id: UUID) -> HTTPResponse:
    """Serve the console opened on one escalation (where alert links point)."""
    return _serve(request, INDEX_FILE, "no-store")


async def static_file(request: Request, name: str) -> HTTPResponse:
    """Serve one of the console's own script, style or icon files."""
    if name not in ASSET_TYPES:
        raise ConsoleError(404, "Not found.")
    return _serve(request, name, "no-cache")


def console_pages_blueprint(base_path: str) -> Blueprint:
    """Return a new blueprint serving the console page below ``base_path``."""
    bp = Blueprint("console_pages", url_prefix=base_path)
    bp.add_route(console_page, "/", methods=["GET"], strict_slashes=False)
    bp.add_route(escalation_page, "/escalations/<escalation_id:uuid>", methods=["GET"])
    bp.add_route(static_file, "/static/<name:str>", methods=["GET"])
    return bp
