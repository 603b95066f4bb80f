"""The clinician console (page under /console, JSON under /api) and the demo clinic page at /, in one Sanic app."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import traceback
from http import HTTPStatus
from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from bot.escalation.console_queries import ConsoleQueries
from bot.escalation.store import EscalationStore
from bot.web.api import MAX_BODY_BYTES, api_blueprint
from bot.web.client_address import ClientAddressResolver
from bot.web.config import ConsoleConfig
from bot.web.database import open_console_engine
from bot.web.demo import ChatPageConfig, chat_page_config, demo_blueprint
from bot.web.errors import ConsoleError
from bot.web.pages import console_pages_blueprint, load_console_assets
from bot.web.password_checks import PasswordCheckPool
from bot.web.passwords import dummy_hash_like
from bot.web.sessions import RevokedSessions, SessionSigner
from bot.web.throttle import LoginThrottle

logger = logging.getLogger(__name__)

APP_NAME = "clinician_console"
REQUEST_MAX_SIZE = MAX_BODY_BYTES

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Escalations are health data: keep them out of browser and proxy caches.
    "Cache-Control": "no-store",
}
HSTS_HEADER = ("Strict-Transport-Security", "max-age=31536000")

_GENERIC_MESSAGES = {
    400: "The request is malformed.",
    404: "Not found.",
    405: "This method is not allowed here.",
    413: "The request is too large.",
    500: "Something went wrong on the server. Please try again.",
}


async def _open_resources(app: Sanic, _loop: Any) -> None:
    config: ConsoleConfig = app.ctx.config
    app.ctx.store = await asyncio.to_thread(EscalationStore, config.db_url, schema=config.db_schema)
    engine = await asyncio.to_thread(open_console_engine, config.db_url, config.db_schema)
    app.ctx.engine = engine
    app.ctx.queries = ConsoleQueries(engine)
    app.ctx.sessions = SessionSigner(config.session_secret, config.clinicians, config.session_seconds)
    app.ctx.revoked = RevokedSessions(engine)
    app.ctx.throttle = LoginThrottle(
        engine,
        config.session_secret,
        config.max_failed_logins,
        config.max_failed_logins_per_address,
        config.login_window_seconds,
    )
    app.ctx.password_checks = PasswordCheckPool(config.password_check_concurrency, config.password_check_queue)
    app.ctx.client_address = ClientAddressResolver(config.trusted_proxy_header, config.trusted_proxies)
    some_hash = next(iter(config.clinicians.values()), None)
    app.ctx.dummy_hash = await asyncio.to_thread(dummy_hash_like, some_hash)
    app.ctx.console_assets = load_console_assets(config.base_path)
    if not config.clinicians:
        logger.warning(
            "The clinician console has no accounts: nobody can sign in. "
            "Add clinicians to the users file (see `python -m bot hash-password`)."
        )


async def _close_resources(app: Sanic, _loop: Any) -> None:
    password_checks: PasswordCheckPool | None = getattr(app.ctx, "password_checks", None)
    if password_checks is not None:
        await asyncio.to_thread(password_checks.close)
    store: EscalationStore | None = getattr(app.ctx, "store", None)
    if store is not None:
        await asyncio.to_thread(store.close)
    engine = getattr(app.ctx, "engine", None)
    if engine is not None:
        await asyncio.to_thread(engine.dispose)


def _error_response(request: Request, exception: Exception) -> HTTPResponse:
    """Answer every error as {"error": {"status", "message"}}; never echo the request."""
    headers: dict[str, str] = {}
    details: dict[str, Any] = {}
    if isinstance(exception, ConsoleError):
        status, message = exception.status, exception.message
        headers, details = exception.headers, exception.details
    elif isinstance(exception, SanicException):
        status = exception.status_code
        message = _GENERIC_MESSAGES.get(status) or HTTPStatus(status).phrase
        headers = dict(getattr(exception, "headers", None) or {})
    else:
        status, message = 500, _GENERIC_MESSAGES[500]
    if status >= 500:
        # Only the type and the stack: exception messages can carry SQL parameters,
        # and with them what a person wrote.
        logger.error(
            "Unhandled %s on %s %s\n%s",
            type(exception).__name__,
            request.method,
            request.path,
            "".join(traceback.format_tb(exception.__traceback__)),
        )
    return json_response(
        {"error": {"status": status, "message": message, **details}},
        status=status,
        headers=headers,
    )


def _security_headers(cookie_secure: bool) -> Any:
    headers = dict(SECURITY_HEADERS)
    if cookie_secure:
        headers[HSTS_HEADER[0]] = HSTS_HEADER[1]

    async def add_security_headers(request: Request, response: HTTPResponse) -> None:
        # setdefault lets another blueprint on this app send its own policy.
        for name, value in headers.items():
            response.headers.setdefault(name, value)

    return add_security_headers


def create_app(config: ConsoleConfig, chat_page: ChatPageConfig | None = None) -> Sanic:
    """Create the console app; add more blueprints (e.g. a page at /) before running.

    Args:
        config: Console settings, built by bot.settings.
        chat_page: With it, the demo clinic page with the chat widget is served at /.

    Returns:
        The Sanic app; its database store is opened when the server starts.
    """
    app = Sanic(APP_NAME)
    app.config.REQUEST_MAX_SIZE = REQUEST_MAX_SIZE
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.config = config
    app.blueprint(console_pages_blueprint(config.base_path))
    app.blueprint(api_blueprint())
    if chat_page is not None:
        app.blueprint(demo_blueprint(chat_page))
    app.register_listener(_open_resources, "before_server_start")
    app.register_listener(_close_resources, "after_server_stop")
    app.register_middleware(_security_headers(config.cookie_secure), "response")
    app.error_handler.add(Exception, _error_response)
    return app


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run_console(
    config: ConsoleConfig, host: str = "127.0.0.1", port: int = 8000, chat_page: ChatPageConfig | None = None
) -> None:
    """Serve the console in this process until interrupted (one worker, no access log).

    One worker, so the bound on concurrent password checks holds for the
    whole machine (sign-outs and the sign-in limit are in the database).
    The demo clinic page is served at / with `chat_page`, or by default with
    the chat settings of the environment (CHAT_SOCKET_URL, CRISIS_REGION...).
    """
    if chat_page is None:
        from bot.settings import Settings

        chat_page = chat_page_config(Settings.from_env())
    if not config.cookie_secure and not _is_loopback(host):
        logger.warning(
            "The console listens on %s but cookie_secure is off: serve it only behind HTTPS and turn cookie_secure on.",
            host,
        )
    app = create_app(config, chat_page)
    app.run(
        host=host,
        port=port,
        workers=1,
        access_log=False,
        debug=False,
        auto_reload=False,
    )
