"""Telegram: Rasa's connector with the webhook's secret token checked and a configurable API server."""

from __future__ import annotations

import logging
import re
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from aiogram.bot.api import TelegramAPIServer
from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.telegram import TelegramInput, TelegramOutput
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.messaging.signatures import secret_token_matches
from bot.channels.text import clean_user_text

logger = logging.getLogger(__name__)

SECRET_TOKEN_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# What Telegram accepts as a webhook secret token.
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class TelegramBotOutput(TelegramOutput):
    """Rasa's Telegram output, talking to a configurable Bot API server, buttons one per row."""

    def __init__(
        self, access_token: Optional[Text], secret_token: Optional[Text] = None, api_base_url: Optional[Text] = None
    ) -> None:
        super().__init__(access_token)
        self.secret_token = secret_token
        if api_base_url:
            self.server = TelegramAPIServer.from_base(api_base_url)

    async def set_webhook(self, url: Text, *args: Any, **kwargs: Any) -> bool:  # type: ignore[override]
        """Registers the webhook, with the secret token Telegram must send back (aiogram 2.15 predates it)."""
        payload = {"url": url}
        if self.secret_token:
            payload["secret_token"] = self.secret_token
        return bool(await self.request("setWebhook", payload))

    async def send_text_with_buttons(
        self,
        recipient_id: Text,
        text: Text,
        buttons: List[Dict[Text, Any]],
        button_type: Optional[Text] = "vertical",
        **kwargs: Any,
    ) -> None:
        """Sends an inline keyboard; one button per row so long titles stay readable."""
        await super().send_text_with_buttons(recipient_id, text, buttons, button_type=button_type, **kwargs)


class VerifiedTelegramInput(TelegramInput):
    """Telegram at /webhooks/telegram/webhook.

    Telegram does not sign updates. When a secret token is configured it is
    registered with the webhook and every update must carry it in the
    X-Telegram-Bot-Api-Secret-Token header; anything else gets a 403. The
    webhook is registered once the server has started, and a failure to reach
    Telegram is logged instead of stopping the whole assistant.
    """

    @classmethod
    def name(cls) -> Text:
        """Same name and URL as Rasa's Telegram channel."""
        return "telegram"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        """Builds the channel from its credentials.yml section."""
        if not credentials:
            cls.raise_missing_credentials_exception()
            credentials = {}  # not reached: the call raises, but is not typed NoReturn
        secret_token = credentials.get("secret_token") or None
        if secret_token is not None and not _SECRET_TOKEN.match(secret_token):
            raise ValueError("The Telegram secret token must be 1-256 characters of A-Z, a-z, 0-9, _ and -.")
        return cls(
            credentials.get("access_token"),
            credentials.get("verify"),
            credentials.get("webhook_url"),
            secret_token=secret_token,
            api_base_url=credentials.get("api_base_url") or None,
        )

    def __init__(
        self,
        access_token: Optional[Text],
        verify: Optional[Text],
        webhook_url: Optional[Text],
        secret_token: Optional[Text] = None,
        api_base_url: Optional[Text] = None,
    ) -> None:
        super().__init__(access_token, verify, webhook_url, debug_mode=False)
        self.secret_token = secret_token
        self.api_base_url = api_base_url

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Rasa's routes, behind the secret token check, with the webhook registered at start-up."""

        async def handle_cleaned(message: UserMessage) -> None:
            message.text = clean_user_text(message.text) if message.text else message.text
            await on_new_message(message)

        webhook = super().blueprint(handle_cleaned)

        # Plain functions: Sanic 21.12's lazy blueprint decorators mis-handle bound methods.
        @webhook.middleware("request")
        async def refuse_without_secret_token(request: Request) -> Optional[HTTPResponse]:
            return await self._refuse_without_secret_token(request)

        @webhook.listener("after_server_start")
        async def register_webhook(app: Sanic, loop: Any) -> None:
            await self._register_webhook()

        return webhook

    async def _refuse_without_secret_token(self, request: Request) -> Optional[HTTPResponse]:
        if not self.secret_token or request.method != "POST" or not request.path.rstrip("/").endswith("/webhook"):
            return None
        if secret_token_matches(self.secret_token, request.headers.get(SECRET_TOKEN_HEADER)):
            return None
        logger.warning("Refused a Telegram update without the right %s header.", SECRET_TOKEN_HEADER)
        return response.text("Invalid secret token.", status=403)

    async def _register_webhook(self) -> None:
        if not self.webhook_url:
            logger.warning("No Telegram webhook URL configured: the webhook was not registered.")
            return
        channel = self.get_output_channel()
        try:
            if await channel.set_webhook(self.webhook_url):
                logger.info("Registered the Telegram webhook.")
            else:
                logger.error("Telegram refused the webhook; GET /webhooks/telegram/set_webhook retries.")
        except Exception as error:  # noqa: BLE001  # the other channels keep working
            logger.error(
                "Could not register the Telegram webhook (%s); GET /webhooks/telegram/set_webhook retries.",
                type(error).__name__,
            )
        finally:
            await channel.session.close()

    def get_output_channel(self) -> TelegramBotOutput:
        """A Telegram client for replies (the webhook is registered separately, at start-up)."""
        return TelegramBotOutput(self.access_token, self.secret_token, self.api_base_url)
