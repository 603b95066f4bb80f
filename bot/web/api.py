"""JSON API of the clinician console: sign-in and escalation handling under /api.

Every time it sends is ISO 8601 UTC (bot.web.times); lists are paged and never
carry a transcript, which is sent only when one escalation is opened.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import re
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty
from sanic.response import json as json_response

from bot.escalation.console_queries import (
    ConsoleQueries,
    EscalationFilter,
    EscalationPage,
    EscalationSummary,
    InvalidCursorError,
    QueueSummary,
)
from bot.escalation.store import (
    LEVELS,
    STATUSES,
    UTC,
    Escalation,
    EscalationEvent,
    EscalationNotFoundError,
    EscalationStore,
    InvalidTransitionError,
)
from bot.web.client_address import ClientAddressResolver
from bot.web.config import ConsoleConfig
from bot.web.errors import ConsoleError
from bot.web.password_checks import PasswordCheckPool, PasswordChecksBusyError
from bot.web.passwords import verify_password
from bot.web.sessions import RevokedSessions, Session, SessionSigner
from bot.web.throttle import LoginThrottle, SignInThrottledError
from bot.web.times import iso_utc, transcript_time
from bot.web.vocabulary import ALL_STATUSES, CATEGORIES, vocabulary

logger = logging.getLogger(__name__)

API_PREFIX = "/api"
CSRF_HEADER = "X-Requested-With"
CSRF_HEADER_VALUE = "console"
MAX_NOTE_LENGTH = 2000
MAX_USERNAME_LENGTH = 64
MAX_PASSWORD_LENGTH = 1024
MAX_CHANNEL_LENGTH = 64
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# One bulk resolve covers at most a full page.
MAX_BULK_RESOLVE = MAX_PAGE_SIZE
# Same as the app's REQUEST_MAX_SIZE; checked here too for servers that do not enforce it (ASGI).
MAX_BODY_BYTES = 64 * 1024
STATUS_FILTERS = (*STATUSES, ALL_STATUSES)
_PAGE_SIZE = re.compile(r"[0-9]{1,4}")

Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]


def session_cookie_name(config: ConsoleConfig) -> str:
    """Return the cookie name; the __Host- prefix pins HTTPS cookies to this host."""
    return "__Host-console_session" if config.cookie_secure else "console_session"


def _config(request: Request) -> ConsoleConfig:
    return request.app.ctx.config


def _store(request: Request) -> EscalationStore:
    return request.app.ctx.store


def _queries(request: Request) -> ConsoleQueries:
    return request.app.ctx.queries


def _sessions(request: Request) -> SessionSigner:
    return request.app.ctx.sessions


async def _signed_in_session(request: Request) -> Session | None:
    token = request.cookies.get(session_cookie_name(_config(request)))
    session = _sessions(request).verify(token)
    if session is None:
        return None
    revoked: RevokedSessions = request.app.ctx.revoked
    if await asyncio.to_thread(revoked.is_revoked, session):
        return None
    return session


def client_address(request: Request) -> str:
    """Return the address a request comes from (a trusted proxy's header, else the socket peer)."""
    resolver: ClientAddressResolver = request.app.ctx.client_address
    values = request.headers.getall(resolver.header, []) if resolver.header else []
    return resolver.resolve(request.ip, values)


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
        session = await _signed_in_session(request)
        if session is None:
            raise ConsoleError(401, "Please sign in.")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            _check_same_origin(request)
        request.ctx.session = session
        return await handler(request, *args, **kwargs)

    return wrapper


def _json_object(request: Request) -> dict[str, Any]:
    if len(request.body or b"") > MAX_BODY_BYTES:
        raise ConsoleError(413, "The request is too large.")
    try:
        data = json.loads(request.body or b"")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ConsoleError(400, "The request body must be a JSON object.")
    return data


def _now() -> datetime:
    return datetime.now(UTC)


def _seconds_since(moment: datetime, now: datetime) -> int:
    return max(0, int((now - moment).total_seconds()))


def escalation_summary(escalation: Escalation | EscalationSummary, now: datetime) -> dict[str, Any]:
    """Return the list fields of an escalation: no transcript and no contact details."""
    has_contact = (
        escalation.has_contact
        if isinstance(escalation, EscalationSummary)
        else escalation.contact_method is not None
    )
    return {
        "id": escalation.id,
        "kind": escalation.kind,
        "level": escalation.level,
        "category": escalation.category,
        "status": escalation.status,
        "channel": escalation.channel,
        "created_at": iso_utc(escalation.created_at),
        "age_seconds": _seconds_since(escalation.created_at, now),
        "acknowledged_at": iso_utc(escalation.acknowledged_at),
        "acknowledged_by": escalation.acknowledged_by,
        "resolved_at": iso_utc(escalation.resolved_at),
        "resolved_by": escalation.resolved_by,
        "has_contact": has_contact,
    }


def queue_summary(summary: QueueSummary, now: datetime) -> dict[str, Any]:
    """Return the counts shown above the list: open (by level), oldest open wait, acknowledged."""
    oldest = summary.oldest_open_at
    return {
        "open": summary.open,
        "open_by_level": summary.open_by_level,
        "acknowledged": summary.acknowledged,
        "oldest_open_at": iso_utc(oldest),
        "oldest_open_wait_seconds": _seconds_since(oldest, now) if oldest else None,
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
                    "timestamp": transcript_time(turn.get("timestamp")),
                }
                for turn in escalation.transcript
            ],
            "events": [
                {
                    "actor": event.actor,
                    "actor_name": name_of(event.actor),
                    "action": event.action,
                    "at": iso_utc(event.at),
                    "note": event.note,
                }
                for event in events
            ],
        }
    )
    return detail


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
    """Check a username and password; on success set the session cookie.

    The attempt is counted (and refused over the limit) before the password is
    hashed, and the hash waits for a place in the bounded pool, or is refused
    at once when the pool's queue is full.
    """
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
    password_checks: PasswordCheckPool = request.app.ctx.password_checks
    address = client_address(request)
    try:
        password_checks.admit()
    except PasswordChecksBusyError:
        raise ConsoleError(
            429,
            "The console is busy with other sign-ins. Please try again in a moment.",
            headers={"Retry-After": "1"},
        ) from None
    try:
        attempt = await asyncio.to_thread(throttle.begin, username, address)
    except SignInThrottledError as error:
        password_checks.release()
        raise ConsoleError(
            429,
            "Too many failed sign-ins. Please wait a few minutes and try again.",
            headers={"Retry-After": str(math.ceil(error.retry_after_seconds))},
        ) from None
    except BaseException:
        password_checks.release()
        raise
    hashed = config.clinicians.get(username)
    # An unknown username is checked against a dummy hash so it takes as long.
    matches = await password_checks.run(verify_password, password, hashed or request.app.ctx.dummy_hash)
    if hashed is None or not matches:
        # The attempt stays counted as a failure. The attempted username stays
        # out of the log: it is sometimes a password.
        logger.info("Failed console sign-in from %s", address)
        raise ConsoleError(401, "Sign-in failed: check the username and password.")
    await asyncio.to_thread(throttle.succeeded, attempt)
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
        "expires_at": iso_utc(datetime.fromtimestamp(session.expires_at, UTC)),
    }


@signed_in
async def logout(request: Request) -> HTTPResponse:
    """End the session: refuse its token from now on and clear the cookie."""
    session: Session = request.ctx.session
    revoked: RevokedSessions = request.app.ctx.revoked
    await asyncio.to_thread(revoked.revoke, session)
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


def _choice(request: Request, name: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
    value = request.args.get(name) or default
    if value is not None and value not in allowed:
        raise ConsoleError(400, f"{name} must be one of: {', '.join(allowed)}.")
    return value


def _page_size(request: Request) -> int:
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    # Not str.isdigit, which accepts "²" that int() refuses, nor thousands of digits int() refuses too.
    if not _PAGE_SIZE.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise ConsoleError(400, f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}.")
    return int(raw)


def _list_filter(request: Request) -> EscalationFilter:
    status = _choice(request, "status", STATUS_FILTERS, "open")
    channel = request.args.get("channel") or None
    if channel is not None and len(channel) > MAX_CHANNEL_LENGTH:
        raise ConsoleError(400, f"channel can be at most {MAX_CHANNEL_LENGTH} characters long.")
    return EscalationFilter(
        status=None if status == ALL_STATUSES else status,
        level=_choice(request, "level", LEVELS),
        category=_choice(request, "category", CATEGORIES),
        channel=channel,
    )


def _list_page(
    queries: ConsoleQueries, which: EscalationFilter, limit: int, cursor: str | None
) -> tuple[EscalationPage, QueueSummary]:
    return queries.page(which, limit, cursor), queries.queue_summary()


@signed_in
async def list_escalations(request: Request) -> HTTPResponse:
    """List one page of escalations matching the filters, with the queue counts.

    Query: status (open by default, acknowledged, resolved or all), level,
    category, channel, limit (1-200, default 50) and cursor (next_cursor of
    the previous page). Open and acknowledged escalations come in triage
    order (urgent, priority, low; the longest waiting first); resolved ones
    most recently resolved first.
    """
    which = _list_filter(request)
    limit = _page_size(request)
    cursor = request.args.get("cursor") or None
    try:
        page, summary = await asyncio.to_thread(_list_page, _queries(request), which, limit, cursor)
    except InvalidCursorError:
        raise ConsoleError(400, "This page link is no longer valid: please start from the first page.") from None
    now = _now()
    return json_response(
        {
            "status": which.status or ALL_STATUSES,
            "filters": {"level": which.level, "category": which.category, "channel": which.channel},
            "count": len(page.items),
            "total": page.total,
            "limit": limit,
            "next_cursor": page.next_cursor,
            "queue": queue_summary(summary, now),
            "escalations": [escalation_summary(item, now) for item in page.items],
        }
    )


@signed_in
async def get_vocabulary(request: Request) -> HTTPResponse:
    """Return the levels, statuses, categories, channels... the page shows, and the API's limits."""
    channels = await asyncio.to_thread(_queries(request).channels)
    limits = {"note": MAX_NOTE_LENGTH, "page_size": DEFAULT_PAGE_SIZE, "bulk_resolve": MAX_BULK_RESOLVE}
    return json_response(vocabulary(channels, limits))


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
    note = _resolution_note(_json_object(request))
    username = request.ctx.session.username
    try:
        escalation = await asyncio.to_thread(_store(request).resolve, str(escalation_id), username, note)
    except EscalationNotFoundError:
        raise _not_found() from None
    except InvalidTransitionError:
        raise await _conflict(request, str(escalation_id), "resolved") from None
    logger.info("Escalation %s resolved by %s", escalation.id, username)
    return await _detail_response(request, escalation)


def _resolution_note(data: dict[str, Any]) -> str:
    note = data.get("note")
    if not isinstance(note, str) or not note.strip():
        raise ConsoleError(400, "Please write a short note of what was done.")
    note = note.strip()
    if len(note) > MAX_NOTE_LENGTH:
        raise ConsoleError(400, f"The note can be at most {MAX_NOTE_LENGTH} characters long.")
    return note


def _escalation_ids(data: dict[str, Any]) -> list[str]:
    ids = data.get("ids")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_BULK_RESOLVE:
        raise ConsoleError(400, f"Please choose from 1 to {MAX_BULK_RESOLVE} escalations.")
    parsed: list[str] = []
    for value in ids:
        try:
            escalation_id = str(UUID(value)) if isinstance(value, str) else None
        except ValueError:
            escalation_id = None
        if escalation_id is None:
            raise ConsoleError(400, "Every escalation id must be a UUID.")
        if escalation_id not in parsed:
            parsed.append(escalation_id)
    return parsed


def _resolve_each(store: EscalationStore, ids: list[str], username: str, note: str) -> dict[str, Any]:
    # One transaction per escalation, each with its own audit event, as if resolved one by one.
    resolved: list[str] = []
    not_resolved: list[dict[str, str]] = []
    for escalation_id in ids:
        try:
            store.resolve(escalation_id, username, note)
        except EscalationNotFoundError:
            not_resolved.append({"id": escalation_id, "reason": "not_found"})
        except InvalidTransitionError:
            not_resolved.append({"id": escalation_id, "reason": "already_resolved"})
        else:
            resolved.append(escalation_id)
    return {"resolved": resolved, "not_resolved": not_resolved}


@signed_in
async def resolve_escalations(request: Request) -> HTTPResponse:
    """Resolve several escalations (e.g. test traffic) with one note, recorded on each of them."""
    data = _json_object(request)
    ids = _escalation_ids(data)
    note = _resolution_note(data)
    username = request.ctx.session.username
    outcome = await asyncio.to_thread(_resolve_each, _store(request), ids, username, note)
    logger.info("%d escalations resolved together by %s", len(outcome["resolved"]), username)
    return json_response(outcome)


def api_blueprint() -> Blueprint:
    """Return a new blueprint with the console's JSON API under /api."""
    bp = Blueprint("console_api", url_prefix=API_PREFIX)
    bp.add_route(login, "/login", methods=["POST"])
    bp.add_route(logout, "/logout", methods=["POST"])
    bp.add_route(current_session, "/session", methods=["GET"])
    bp.add_route(list_escalations, "/escalations", methods=["GET"])
    bp.add_route(resolve_escalations, "/escalations/resolve", methods=["POST"])
    bp.add_route(get_vocabulary, "/vocabulary", methods=["GET"])
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
