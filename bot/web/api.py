"""JSON API of the clinician console: sign-in and escalation handling under /api."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty
from sanic.response import json as json_response

from bot.escalation.store import (
    Escalation,
    EscalationEvent,
    EscalationNotFoundError,
    EscalationStore,
    InvalidTransitionError,
)
from bot.web.config import ConsoleConfig
from bot.web.errors import ConsoleError
from bot.web.passwords import verify_password
from bot.web.sessions import Session, SessionSigner
from bot.web.throttle import LoginThrottle

logger = logging.getLogger(__name__)

API_PREFIX = "/api"
CSRF_HEADER = "X-Requested-With"
CSRF_HEADER_VALUE = "console"
MAX_NOTE_LENGTH = 2000
MAX_USERNAME_LENGTH = 64
MAX_PASSWORD_LENGTH = 1024
# Resolved escalations only grow; open and acknowledged ones are never cut off.
RESOLVED_LIST_LIMIT = 200
LEVEL_ORDER = {"urgent": 0, "priority": 1, "low": 2}
STATUS_FILTERS = ("open", "acknowledged", "resolved", "all")

UTC = timezone(timedelta(0))

Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]


def session_cookie_name(config: ConsoleConfig) -> str:
    """Return the cookie name; the __Host- prefix pins HTTPS cookies to this host."""
    return "__Host-console_session" if config.cookie_secure else "console_session"


def _config(request: Request) -> ConsoleConfig:
    return request.app.ctx.config


def _store(request: Request) -> EscalationStore:
    return request.app.ctx.store


def _sessions(request: Request) -> SessionSigner:
    return request.app.ctx.sessions


def _signed_in_session(request: Request) -> Session | None:
    token = request.cookies.get(session_cookie_name(_config(request)))
    return _sessions(request).verify(token)


def _check_same_origin(request: Request) -> None:
    """Refuse state changes a page on another site could trigger (CSRF).

    A custom header cannot be sent cross-site without a CORS preflight, which this
    app never grants; an Origin header, when the browser sends one, must name this
    host (the scheme is not compared, so a TLS-terminating proxy works).
    """
    if request.headers.get(CSRF_HEADER, "").lower() != CSRF_HEADER_VALUE:
        raise ConsoleError(403, "This request must come from the console page.")
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
        raise ConsoleError(403, "This request must come from the console page.")


def signed_in(handler: Handler) -> Handler:
    """Answer 401 unless the request carries a valid session; state changes also CSRF.

    The verified session is put on ``request.ctx.session``.
    """

    @functools.wraps(handler)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        session = _signed_in_session(request)
        if session is None:
            raise ConsoleError(401, "Please sign in.")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            _check_same_origin(request)
        request.ctx.session = session
        return await handler(request, *args, **kwargs)

    return wrapper


def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ConsoleError(400, "The request body must be a JSON object.")
    return data


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def _now() -> datetime:
    return datetime.now(UTC)


def escalation_summary(escalation: Escalation, now: datetime) -> dict[str, Any]:
    """Return the list fields of an escalation: no transcript and no contact details."""
    age = (now - escalation.created_at).total_seconds()
    return {
        "id": escalation.id,
        "kind": escalation.kind,
        "level": escalation.level,
        "category": escalation.category,
        "status": escalation.status,
        "channel": escalation.channel,
        "created_at": _iso(escalation.created_at),
        "age_seconds": max(0, int(age)),
        "acknowledged_at": _iso(escalation.acknowledged_at),
        "acknowledged_by": escalation.acknowledged_by,
        "resolved_at": _iso(escalation.resolved_at),
        "resolved_by": escalation.resolved_by,
        "has_contact": escalation.contact_method is not None,
    }


def escalation_detail(
    escalation: Escalation,
    events: list[EscalationEvent],
    now: datetime,
    config: ConsoleConfig,
) -> dict[str, Any]:
    """Return everything a clinician needs to act: transcript, contact, audit trail."""

    def name_of(actor: str | None) -> str | None:
        if actor is None or actor not in config.clinicians:
            return actor
        return config.display_name(actor)

    detail = escalation_summary(escalation, now)
    detail.update(
        {
            "acknowledged_by_name": name_of(escalation.acknowledged_by),
            "resolved_by_name": name_of(escalation.resolved_by),
            "conversation_id": escalation.conversation_id,
            "resolution_note": escalation.resolution_note,
            "contact": (
                {
                    "method": escalation.contact_method,
                    "value": escalation.contact_value,
                }
                if escalation.contact_method
                else None
            ),
            "transcript": [
                {
                    "sender": turn.get("sender"),
                    "text": turn.get("text", ""),
                    "timestamp": turn.get("timestamp"),
                }
                for turn in escalation.transcript
            ],
            "events": [
                {
                    "actor": event.actor,
                    "actor_name": name_of(event.actor),
                    "action": event.action,
                    "at": _iso(event.at),
                    "note": event.note,
                }
                for event in events
            ],
        }
    )
    return detail


def sort_for_triage(escalations: list[Escalation]) -> list[Escalation]:
    """Order urgent before priority before low, the longest waiting first in each."""
    return sorted(
        escalations,
        key=lambda item: (LEVEL_ORDER.get(item.level, len(LEVEL_ORDER)), item.created_at),
    )


def _list_for_filter(store: EscalationStore, status: str) -> tuple[list[Escalation], bool]:
    if status in ("open", "acknowledged"):
        return store.list_escalations(status=status), False
    resolved = store.list_escalations(status="resolved", limit=RESOLVED_LIST_LIMIT)
    truncated = len(resolved) >= RESOLVED_LIST_LIMIT
    if status == "resolved":
        return resolved, truncated
    active = store.list_escalations(status="open") + store.list_escalations(status="acknowledged")
    return active + resolved, truncated


async def _detail_response(request: Request, escalation: Escalation, status: int = 200) -> HTTPResponse:
    events = await asyncio.to_thread(_store(request).events, escalation.id)
    body = escalation_detail(escalation, events, _now(), _config(request))
    return json_response(body, status=status)


async def _conflict(request: Request, escalation_id: str, action: str) -> ConsoleError:
    current = await asyncio.to_thread(_store(request).get, escalation_id)
    return ConsoleError(
        409,
        f"This escalation cannot be {action}: it is already {current.status}.",
        details={"current_status": current.status},
    )


def _not_found() -> ConsoleError:
    return ConsoleError(404, "There is no escalation with this id.")


async def login(request: Request) -> HTTPResponse:
    """Check a username and password; on success set the session cookie."""
    _check_same_origin(request)
    data = _json_object(request)
    username, password = data.get("username"), data.get("password")
    if (
        not isinstance(username, str)
        or not isinstance(password, str)
        or not 0 < len(username) <= MAX_USERNAME_LENGTH
        or not 0 < len(password) <= MAX_PASSWORD_LENGTH
    ):
        raise ConsoleError(400, "Please enter a username and a password.")
    config = _config(request)
    throttle: LoginThrottle = request.app.ctx.throttle
    address = request.ip or "unknown"
    wait = throttle.retry_after(username, address)
    if wait > 0:
        raise ConsoleError(
            429,
            "Too many failed sign-ins. Please wait a few minutes and try again.",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    hashed = config.clinicians.get(username)
    # An unknown username is checked against a dummy hash so it takes as long.
    matches = await asyncio.to_thread(verify_password, password, hashed or request.app.ctx.dummy_hash)
    if hashed is None or not matches:
        throttle.record_failure(username, address)
        # The attempted username stays out of the log: it is sometimes a password.
        logger.info("Failed console sign-in from %s", address)
        raise ConsoleError(401, "Sign-in failed: check the username and password.")
    throttle.record_success(username, address)
    token, session = _sessions(request).issue(username)
    logger.info("Clinician %s signed in to the console", username)
    response = json_response(_session_body(config, session))
    cookie_name = session_cookie_name(config)
    response.cookies[cookie_name] = token
    cookie = response.cookies[cookie_name]
    cookie["path"] = "/"
    cookie["httponly"] = True
    cookie["samesite"] = "Strict"
    cookie["max-age"] = config.session_seconds
    cookie["secure"] = config.cookie_secure
    return response


def _session_body(config: ConsoleConfig, session: Session) -> dict[str, Any]:
    return {
        "username": session.username,
        "name": config.display_name(session.username),
        "expires_at": _iso(datetime.fromtimestamp(session.expires_at, UTC)),
    }


@signed_in
async def logout(request: Request) -> HTTPResponse:
    """End the session: refuse its token from now on and clear the cookie."""
    session: Session = request.ctx.session
    _sessions(request).revoke(session)
    config = _config(request)
    response = empty()
    cookie_name = session_cookie_name(config)
    response.cookies[cookie_name] = ""
    cookie = response.cookies[cookie_name]
    cookie["path"] = "/"
    cookie["max-age"] = 0
    cookie["httponly"] = True
    cookie["samesite"] = "Strict"
    cookie["secure"] = config.cookie_secure
    logger.info("Clinician %s signed out of the console", session.username)
    return response


@signed_in
async def current_session(request: Request) -> HTTPResponse:
    """Return who is signed in, so the page knows whether to show the sign-in form."""
    return json_response(_session_body(_config(request), request.ctx.session))


@signed_in
async def list_escalations(request: Request) -> HTTPResponse:
    """List escalations with one status (default open), in triage order."""
    status = request.args.get("status", "open")
    if status not in STATUS_FILTERS:
        raise ConsoleError(400, f"status must be one of: {', '.join(STATUS_FILTERS)}.")
    escalations, truncated = await asyncio.to_thread(_list_for_filter, _store(request), status)
    now = _now()
    items = [escalation_summary(item, now) for item in sort_for_triage(escalations)]
    return json_response(
        {
            "status": status,
            "count": len(items),
            "truncated": truncated,
            "escalations": items,
        }
    )


@signed_in
async def get_escalation(request: Request, escalation_id: UUID) -> HTTPResponse:
    """Return one escalation with its transcript and audit trail."""
    try:
        escalation = await asyncio.to_thread(_store(request).get, str(escalation_id))
    except EscalationNotFoundError:
        raise _not_found() from None
    return await _detail_response(request, escalation)


@signed_in
async def acknowledge_escalation(request: Request, escalation_id: UUID) -> HTTPResponse:
    """Record that the signed-in clinician has taken this escalation on."""
    username = request.ctx.session.username
    try:
        escalation = await asyncio.to_thread(_store(request).acknowledge, str(escalation_id), username)
    except EscalationNotFoundError:
        raise _not_found() from None
    except InvalidTransitionError:
        raise await _conflict(request, str(escalation_id), "acknowledged") from None
    logger.info("Escalation %s acknowledged by %s", escalation.id, username)
    return await _detail_response(request, escalation)


@signed_in
async def resolve_escalation(request: Request, escalation_id: UUID) -> HTTPResponse:
    """Close this escalation with the clinician's note of what was done."""
    note = _json_object(request).get("note")
    if not isinstance(note, str) or not note.strip():
        raise ConsoleError(400, "Please write a short note of what was done.")
    note = note.strip()
    if len(note) > MAX_NOTE_LENGTH:
        raise ConsoleError(400, f"The note can be at most {MAX_NOTE_LENGTH} characters long.")
    username = request.ctx.session.username
    try:
        escalation = await asyncio.to_thread(_store(request).resolve, str(escalation_id), username, note)
    except EscalationNotFoundError:
        raise _not_found() from None
    except InvalidTransitionError:
        raise await _conflict(request, str(escalation_id), "resolved") from None
    logger.info("Escalation %s resolved by %s", escalation.id, username)
    return await _detail_response(request, escalation)


def api_blueprint() -> Blueprint:
    """Return a new blueprint with the console's JSON API under /api."""
    bp = Blueprint("console_api", url_prefix=API_PREFIX)
    bp.add_route(login, "/login", methods=["POST"])
    bp.add_route(logout, "/logout", methods=["POST"])
    bp.add_route(current_session, "/session", methods=["GET"])
    bp.add_route(list_escalations, "/escalations", methods=["GET"])
    bp.add_route(get_escalation, "/escalations/<escalation_id:uuid>", methods=["GET"])
    bp.add_route(
        acknowledge_escalation,
        "/escalations/<escalation_id:uuid>/acknowledge",
        methods=["POST"],
    )
    bp.add_route(
        resolve_escalation,
        "/escalations/<escalation_id:uuid>/resolve",
        methods=["POST"],
    )
    return bp
