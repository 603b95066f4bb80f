"""The console page: served locally with strict security headers, XSS-safe script."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import pytest
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, text

from bot.escalation.store import HUMAN_REQUEST_CATEGORY, LEVELS, RISK_CATEGORIES
from bot.web.app import create_app
from bot.web.config import ConsoleConfig
from bot.web.pages import STATIC_DIR

from .harness import AsgiClient

SOME_ID = "3f2b8c4e-0d6a-4f0e-9a51-7c1d2e3f4a5b"


@pytest.mark.parametrize("path", ["/console", "/console/", f"/console/escalations/{SOME_ID}"])
def test_console_page_is_served_with_a_strict_policy(client: AsgiClient, path: str) -> None:
    response = client.get(path)

    assert response.status == 200
    assert response.header("content-type") == "text/html; charset=utf-8"
    policy = response.header("content-security-policy")
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.header("x-content-type-options") == "nosniff"
    assert response.header("referrer-policy") == "no-referrer"
    assert response.header("cache-control") == "no-store"
    assert '<script src="/console/static/console.js" defer></script>' in response.text
    assert '<meta name="console-base" content="/console">' in response.text


def test_page_loads_nothing_from_elsewhere_and_has_no_inline_code(
    client: AsgiClient,
) -> None:
    page = client.get("/console").text
    assert "{{" not in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert not re.search(r"\son[a-z]+=", page)
    assert "<style" not in page and "style=" not in page
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert url.startswith("/console") or url == "#main"


def test_page_labels_every_form_control(client: AsgiClient) -> None:
    page = client.get("/console").text
    control_ids = re.findall(r"<(?:input|select|textarea)\b[^>]*\bid=\"([^\"]+)\"", page)
    assert control_ids
    for control_id in control_ids:
        assert f'<label for="{control_id}">' in page


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("console.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_static_files_are_served_locally(client: AsgiClient, name: str, content_type: str) -> None:
    response = client.get(f"/console/static/{name}")
    assert response.status == 200
    assert response.header("content-type") == content_type
    assert response.body == (STATIC_DIR / name).read_bytes()
    assert response.header("x-content-type-options") == "nosniff"


@pytest.mark.parametrize("name", ["index.html", "missing.js", "..%2Fapp.py", "%2e%2e"])
def test_only_the_console_files_are_served(client: AsgiClient, name: str) -> None:
    assert client.get(f"/console/static/{name}").status == 404


def test_script_never_writes_html() -> None:
    script = (STATIC_DIR / "console.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "textContent" in script


def test_base_path_is_configurable(config: ConsoleConfig, start_client: Callable[..., AsgiClient]) -> None:
    client = start_client(replace(config, base_path="/care/console"))
    page = client.get(f"/care/console/escalations/{SOME_ID}")
    assert page.status == 200
    assert 'src="/care/console/static/console.js"' in page.text
    assert client.get("/care/console/static/console.js").status == 200
    assert client.get("/console").status == 404


def test_another_blueprint_can_serve_the_root_page(config: ConsoleConfig) -> None:
    demo = Blueprint("demo_clinic")

    @demo.get("/")
    async def clinic_page(request: Request) -> HTTPResponse:
        return text("Demo clinic")

    app = create_app(config)
    app.blueprint(demo)
    client = AsgiClient(app).start()
    try:
        root = client.get("/")
        assert root.status == 200
        assert root.text == "Demo clinic"
        assert "default-src 'self'" in root.header("content-security-policy")
        assert client.get("/console").status == 200
    finally:
        client.close()


def test_the_page_takes_levels_and_categories_from_the_api() -> None:
    """They are defined once, in the store; the page gets them from /api/vocabulary."""
    script = (STATIC_DIR / "console.js").read_text(encoding="utf-8")
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    for value in (*LEVELS, *RISK_CATEGORIES, HUMAN_REQUEST_CATEGORY):
        assert not re.search(rf"\b{value}\b", script), f"{value} is typed into console.js"
        assert f'value="{value}"' not in page, value
    assert "<option" not in page
    assert 'api("GET", "/vocabulary")' in script
