"""Slack: Rasa's connector with signatures refused with a 403, replays dropped and a configurable API URL.

Conversations are stored as `slack:<user id>` (bot/channels/conversation_ids.py;
`slack:<user>_<channel>` with Rasa's `conversation_granularity: channel`).
An event Slack delivers again (same event_id) is answered but processed once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text, Tuple
from urllib.parse import parse_qs

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.slack import SlackBot, SlackInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.channels.conversation_ids import SLACK, ChannelRecipientOutput
from bot.channels.messaging.replays import SeenIds
from bot.channels.text import clean_user_text

logger = logging.getLogger(__name__)


def _text_or_none(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


async def _handle_quietly(on_new_message: Callable[[UserMessage], Awaitable[Any]], message: UserMessage) -> None:
    try:
        await on_new_message(message)
    except Exception:  # noqa: BLE001  # a background task: nobody else would see the error
        logger.exception("Failed to handle a Slack message (text not logged).")


class SlackApiBot(ChannelRecipientOutput, SlackBot):
    """Rasa's Slack output, posting to a configurable Web API base URL."""

    conversation_ids = SLACK

    def __init__(
        self,
        token: Text,
        slack_channel: Optional[Text] = None,
        thread_id: Optional[Text] = None,
        proxy: Optional[Text] = None,
        api_base_url: Optional[Text] = None,
    ) -> None:
        super().__init__(token, slack_channel, thread_id, proxy)
        if api_base_url:
            self.client = AsyncWebClient(token, proxy=proxy, base_url=api_base_url.rstrip("/") + "/")


class VerifiedSlackInput(SlackInput):
    """Slack at /webhooks/slack/webhook (events and interactivity).

    Rasa's own check of X-Slack-Signature is sound (HMAC-SHA256 of
    `v0:<timestamp>:<body>` with the signing secret, constant-time comparison,
    timestamps more than five minutes away refused against replays), but it
    answers 400 and runs after the body is parsed. Here it runs first and a
    failure is a 403. Slack's URL verification gets the `{"challenge": ...}`
    answer Slack expects. Bodies Rasa's channel would answer with a 500
    (a JSON array, a form without `payload`, fields of the wrong type) get a
    400; events that are not a person's message a 200 and nothing else.
    """

    @classmethod
    def name(cls) -> Text:
        """Same name and URL as Rasa's Slack channel."""
        return "slack"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        """Builds the channel from its credentials.yml section (Rasa's keys plus `api_base_url`)."""
        if not credentials:
            cls.raise_missing_credentials_exception()
            credentials = {}  # not reached: the call raises, but is not typed NoReturn
        return cls(
            credentials.get("slack_token"),
            credentials.get("slack_channel"),
            credentials.get("proxy"),
            credentials.get("slack_retry_reason_header", "x-slack-retry-reason"),
            credentials.get("slack_retry_number_header", "x-slack-retry-num"),
            credentials.get("errors_ignore_retry", None),
            credentials.get("use_threads", False),
            credentials.get("slack_signing_secret", ""),
            credentials.get("conversation_granularity", "sender"),
            api_base_url=credentials.get("api_base_url") or None,
        )

    def __init__(self, *args: Any, api_base_url: Optional[Text] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_base_url = api_base_url
        self.seen_events = SeenIds()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The health and webhook routes: the signature is checked before anything else."""
        webhook = Blueprint("slack_verified_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self._receive(request, on_new_message)

        return webhook

    async def _receive(
        self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> HTTPResponse:
        if not self.is_request_from_slack_authentic(request):
            logger.warning("Refused a Slack request without a valid, recent X-Slack-Signature.")
            return response.text("Invalid signature.", status=403)
        content_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        try:
            if content_type == "application/json":
                document = json.loads(request.body)
                if not isinstance(document, dict):
                    raise ValueError("not an object")
                if document.get("type") == "url_verification":
                    return response.json({"challenge": document.get("challenge", "")})
                if not self.seen_events.first_time(_text_or_none(document.get("event_id"))):
                    logger.info("Dropped a Slack event delivered again (same event_id).")
                    return response.text("")
                found = self._event_message(document)
            elif content_type == "application/x-www-form-urlencoded":
                found = self._interaction_message(request)
            else:
                return response.text("Expected a JSON or form-encoded body.", status=415)
        except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
            # ValueError covers json.JSONDecodeError; the others, fields of an unexpected type.
            return response.text("Not a Slack event or interaction this channel understands.", status=400)
        if found is None:
            return response.text("")
        text, user, metadata = found
        sender_id = SLACK.conversation_id(
            self._get_conversation_id(user, metadata.get("out_channel"), metadata.get("thread_id"))
        )
        thread_id = metadata.get("thread_id") if self.use_threads else None
        message = UserMessage(
            clean_user_text(text),
            self.get_output_channel(metadata.get("out_channel"), thread_id),
            sender_id,
            input_channel=self.name(),
            metadata=metadata,
        )
        # Slack wants an answer within 3 seconds: the message is handled after answering.
        task = asyncio.create_task(_handle_quietly(on_new_message, message))
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)
        return response.text("")

    def _event_message(self, document: Dict[str, Any]) -> Optional[Tuple[str, str, Dict[str, Any]]]:
        """The text, user and metadata of an Events API message from a person, or None for other events."""
        event = document.get("event")
        if not isinstance(event, dict):
            return None
        users = document.get("authed_users")
        if not isinstance(users, list):
            authorizations = document.get("authorizations")
            first = authorizations[0] if isinstance(authorizations, list) and authorizations else {}
            users = [first["user_id"]] if isinstance(first, dict) and first.get("user_id") else []
        metadata = {
            "out_channel": _text_or_none(event.get("channel")),
            "thread_id": _text_or_none(event.get("thread_ts", event.get("ts"))),
            "users": [str(user) for user in users],
        }
        user, text = event.get("user"), event.get("text")
        if not self._is_user_message(document) or not isinstance(text, str) or not isinstance(user, str) or not user:
            return None
        if not self._is_supported_channel(document, metadata):
            logger.info("Ignored a Slack message in a channel this assistant does not answer in.")
            return None
        return self._sanitize_user_message(text, metadata["users"]), user, metadata

    def _interaction_message(self, request: Request) -> Optional[Tuple[str, str, Dict[str, Any]]]:
        """The chosen value, user and metadata of a button press or menu choice, or None for other interactions."""
        form = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
        payload = json.loads(form["payload"][0])
        if not isinstance(payload, dict) or not self._is_interactive_message(payload):
            return None
        text = self._get_interactive_response(payload["actions"][0])
        user = payload["user"]["id"]
        if not isinstance(text, str) or not isinstance(user, str) or not user:
            return None
        message = payload.get("message") or {}
        metadata = {
            "out_channel": _text_or_none((payload.get("channel") or {}).get("id")),
            "thread_id": _text_or_none(message.get("thread_ts", message.get("ts"))),
            "users": [user],
        }
        return text, user, metadata

    def get_output_channel(self, channel: Optional[Text] = None, thread_id: Optional[Text] = None) -> OutputChannel:
        """Replies in the conversation's channel (and thread, with use_threads)."""
        return SlackApiBot(self.slack_token, channel or self.slack_channel, thread_id, self.proxy, self.api_base_url)
