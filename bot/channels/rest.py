"""The REST channel with input validation: bad requests get a clear 400, never a 500.

A REST conversation is keyed by exactly the `sender` its caller gives, so
existing API clients keep their conversation ids. Senders that start with
another channel's prefix ("telegram:", "twilio:", "web:", ... see
bot/channels/conversation_ids.py) are refused: those conversations belong to
people on that channel.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text, Union

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse, ResponseStream

from bot.channels.conversation_ids import RESERVED_PREFIXES, is_reserved
from bot.channels.metadata import metadata_problem
from bot.channels.text import MAX_MESSAGE_CHARS, clean_user_text

# Fits the escalation record's conversation id column (255 characters).
MAX_SENDER_CHARS = 255
# The longest message, every character JSON-escaped as a surrogate pair, plus metadata.
MAX_BODY_BYTES = 256 * 1024

logger = logging.getLogger(__name__)


class InvalidRestRequest(ValueError):
    """A request to the REST webhook that cannot be processed."""


def parse_rest_request(body: bytes) -> Dict[str, Any]:
    """Validates a webhook body: a JSON object with a string `message`."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRestRequest(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        document = json.loads(body.decode("utf-8") if body else "")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise InvalidRestRequest("The request body must be a JSON object.") from error
    if not isinstance(document, dict):
        raise InvalidRestRequest("The request body must be a JSON object.")
    message = document.get("message")
    if not isinstance(message, str):
        raise InvalidRestRequest('"message" is required and must be a string.')
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidRestRequest(f'"message" is longer than {MAX_MESSAGE_CHARS} characters.')
    sender = document.get("sender")
    # Required: without it Rasa files every message under one shared "default"
    # conversation, mixing different people's words.
    if not isinstance(sender, str) or not sender.strip() or len(sender) > MAX_SENDER_CHARS:
        raise InvalidRestRequest(
            f'"sender" is required: a conversation id of at most {MAX_SENDER_CHARS} characters.'
        )
    if is_reserved(sender):
        raise InvalidRestRequest(
            '"sender" must not start with ' + ", ".join(f'"{p}"' for p in RESERVED_PREFIXES)
            + ": those conversation ids belong to other channels."
        )
    metadata = document.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRestRequest('"metadata" must be a JSON object.')
    problem = metadata_problem(metadata) if metadata else None
    if problem:
        raise InvalidRestRequest(f'"metadata" {problem}.')
    return {"message": clean_user_text(message), "sender": sender, "metadata": metadata}


class ValidatingRestInput(RestInput):
    """Rasa's REST channel (`/webhooks/rest/webhook`) that validates what it receives.

    Rasa's own channel answers a JSON array with a 500 and a missing or
    non-string `message` with an empty reply. Here they get a 400 with a JSON
    explanation (the body is never echoed back), and control characters are
    cleaned from the text.
    """

    @classmethod
    def name(cls) -> Text:
        """Same name and URL as Rasa's REST channel."""
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The health and webhook routes."""
        webhook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> Union[ResponseStream, HTTPResponse]:
            try:
                parsed = parse_rest_request(request.body)
            except InvalidRestRequest as error:
                return response.json({"error": str(error)}, status=400)
            text: str = parsed["message"]
            sender: Optional[str] = parsed["sender"]
            metadata = parsed["metadata"]
            input_channel = self.name()
            if request.args.get("stream", "false").lower() == "true":
                return response.stream(
                    self.stream_response(on_new_message, text, sender, input_channel, metadata),  # type: ignore[arg-type]
                    content_type="text/event-stream",
                )
            collector = CollectingOutputChannel()
            try:
                await on_new_message(
                    UserMessage(text, collector, sender, input_channel=input_channel, metadata=metadata)
                )
            except Exception:  # noqa: BLE001  # the person still gets what was collected
                logger.exception("Failed to handle a REST message (text not logged).")
            return response.json(collector.messages)

        return webhook
