"""Slack: Rasa's connector with signatures refused with a 403 and a configurable API URL."""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.slack import SlackBot, SlackInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.channels.text import clean_user_text

logger = logging.getLogger(__name__)


class SlackApiBot(SlackBot):
    """Rasa's Slack output, posting to a configurable Web API base URL."""

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
    answer Slack expects.
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

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Rasa's routes, behind the signature check."""

        async def handle_cleaned(message: UserMessage) -> None:
            message.text = clean_user_text(message.text) if message.text else message.text
            await on_new_message(message)

        webhook = super().blueprint(handle_cleaned)

        # A plain function: Sanic 21.12's lazy blueprint decorators mis-handle bound methods.
        @webhook.middleware("request")
        async def refuse_unsigned(request: Request) -> Optional[HTTPResponse]:
            return await self._refuse_unsigned(request)

        return webhook

    async def _refuse_unsigned(self, request: Request) -> Optional[HTTPResponse]:
        if not request.path.rstrip("/").endswith("/webhook"):
            return None
        if not self.is_request_from_slack_authentic(request):
            logger.warning("Refused a Slack request without a valid, recent X-Slack-Signature.")
            return response.text("Invalid signature.", status=403)
        if request.headers.get("content-type") == "application/json":
            try:
                document = json.loads(request.body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return response.text("The request body must be JSON.", status=400)
            if isinstance(document, dict) and document.get("type") == "url_verification":
                return response.json({"challenge": document.get("challenge", "")})
        return None

    def get_output_channel(self, channel: Optional[Text] = None, thread_id: Optional[Text] = None) -> OutputChannel:
        """Replies in the conversation's channel (and thread, with use_threads)."""
        return SlackApiBot(self.slack_token, channel or self.slack_channel, thread_id, self.proxy, self.api_base_url)
