"""The action server (`python -m bot actions`): rasa-sdk's executor behind a closed door.

rasa-sdk 3.6's own server (``rasa_sdk.endpoint``) listens on every interface,
answers anyone, reads bodies of any size (and inflates them without a limit),
and its error reply echoes the whole request, which Rasa then logs at ERROR:
the conversation, in the logs. Anyone who can reach it can also create an
urgent escalation with one POST. This app keeps rasa-sdk's executor and its
wire format (``/webhook``, ``/actions``, ``/health``; 400 for a rejected
action, 404 for an unknown one) and adds:

- a shared secret: every call but ``/health`` needs ``Authorization: Bearer
  <ACTION_SERVER_TOKEN>`` (Rasa sends it, see ``endpoints.yml``), compared in
  constant time; anything else gets 401;
- a body limit (``MAX_BODY_BYTES``), also after inflating a ``deflate`` or
  ``gzip`` body;
- errors answered with a short JSON message that never repeats the request;
- the texts of each call registered with the log redactor (bot.log_privacy).

It listens on 127.0.0.1 unless ACTION_SERVER_HOST says otherwise.
"""

from __future__ import annotations

import hmac
import json
import logging
import zlib
from typing import Any, Dict, Optional

from sanic import Sanic, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import log_privacy

logger = logging.getLogger(__name__)

# A call carries the conversation's tracker (bounded history): well under 1 MB.
MAX_BODY_BYTES = 1024 * 1024
OPEN_PATHS = frozenset({"/health"})
_ERRORS = {
    400: "bad request",
    401: "unauthorized",
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
    415: "unsupported content encoding",
}


class _BadRequest(Exception):
    """The call could not be read; `status` says why, nothing of the request is kept."""

    def __init__(self, status: int) -> None:
        super().__init__(_ERRORS.get(status, "bad request"))
        self.status = status


def is_authorized(header: Optional[str], token: str) -> bool:
    """Whether an Authorization header carries the shared secret (constant-time comparison)."""
    expected = f"Bearer {token}".encode()
    return bool(token) and hmac.compare_digest((header or "").encode("utf-8", "replace"), expected)


def read_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The request body, inflated if it is deflate- or gzip-encoded, never more than `max_bytes`."""
    body = request.body or b""
    if len(body) > max_bytes:
        raise _BadRequest(413)
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding in ("identity", ""):
        return body
    if encoding not in ("deflate", "gzip"):
        raise _BadRequest(415)
    # wbits 32+15: zlib or gzip header, detected.
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)
    try:
        inflated = inflater.decompress(body, max_bytes + 1)
    except zlib.error as error:
        raise _BadRequest(400) from error
    if len(inflated) > max_bytes or inflater.unconsumed_tail:
        raise _BadRequest(413)
    return inflated


def _error(status: int, **extra: Any) -> HTTPResponse:
    return response.json({"error": _ERRORS.get(status, "internal error"), **extra}, status=status)


def create_app(token: str, actions_package: str = "actions", max_body_bytes: int = MAX_BODY_BYTES) -> Sanic:
    """The action server for the actions in `actions_package`, answering only callers that hold `token`."""
    from rasa_sdk import utils as sdk_utils
    from rasa_sdk.executor import ActionExecutor
    from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

    if not token:
        raise ValueError("the action server needs a token (ACTION_SERVER_TOKEN)")
    app = Sanic("action_server", configure_logging=False)
    # Sanic refuses larger bodies while reading them (413), before any handler runs.
    app.config.REQUEST_MAX_SIZE = max_body_bytes
    executor = ActionExecutor()
    executor.register_package(actions_package)

    @app.on_request
    async def authenticate(request: Request) -> Optional[HTTPResponse]:
        if request.path in OPEN_PATHS or is_authorized(request.headers.get("Authorization"), token):
            return None
        return _error(401)

    @app.get("/health")
    async def health(_: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    @app.post("/webhook")
    async def webhook(request: Request) -> HTTPResponse:
        try:
            action_call = json.loads(read_body(request, max_body_bytes))
        except _BadRequest as error:
            return _error(error.status)
        except (ValueError, UnicodeDecodeError):
            return _error(400)
        if not isinstance(action_call, dict) or not isinstance(action_call.get("next_action"), str):
            return _error(400)
        log_privacy.remember_texts(log_privacy.texts_in_action_call(action_call))
        sdk_utils.check_version_compatibility(action_call.get("version"))
        try:
            result: Dict[str, Any] = await executor.run(action_call)
        except ActionExecutionRejection as rejection:
            # Rasa reads `action_name` and `error` of a 400 to try another action.
            logger.info("Action %s rejected the call.", rejection.action_name)
            return response.json({"error": rejection.message, "action_name": rejection.action_name}, status=400)
        except ActionNotFoundException as missing:
            logger.error("No action called %r.", missing.action_name[:100])
            return response.json({"error": "no such action", "action_name": missing.action_name}, status=404)
        return response.json(result)

    @app.get("/actions")
    async def actions(_: Request) -> HTTPResponse:
        return response.json([{"name": name} for name in executor.actions])

    @app.exception(Exception)
    async def on_error(request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, SanicException) and 400 <= exception.status_code < 500:
            return _error(exception.status_code)
        action = None
        try:
            parsed = request.json if request is not None and request.body else None
            action = parsed.get("next_action") if isinstance(parsed, dict) else None
        except Exception:  # noqa: BLE001  # an unreadable body has no action name
            action = None
        logger.error("Action %s failed (%s).", str(action)[:100], type(exception).__name__, exc_info=exception)
        return _error(500)

    return app


def run_action_server(token: str, host: str, port: int, actions_package: str = "actions") -> None:
    """Serves the actions until the process is stopped."""
    app = create_app(token, actions_package)
    logger.info("Action server listening on http://%s:%d (token required).", host, port)
    app.run(host=host, port=port, workers=1, access_log=False, motd=False)
