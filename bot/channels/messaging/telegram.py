"""Telegram: Rasa's connector with the webhook's secret token required and a configurable API server.

Telegram does not sign updates: the only proof that one comes from Telegram
is the secret token registered with the webhook and sent back in the
X-Telegram-Bot-Api-Secret-Token header. Without one, anyone who finds the
webhook URL can write into any chat's conversation. So the channel is only
switched on with TELEGRAM_SECRET_TOKEN set, unless TELEGRAM_ALLOW_UNVERIFIED
is true, which is logged as a warning at every start
(bot/channels/credentials.py decides; the channel repeats the warning).

Conversations are stored as `telegram:<chat id>`
(bot/channels/conversation_ids.py). An update Telegram delivers again (same
update_id) is answered but processed once.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text, Tuple

from aiogram.bot.api import TelegramAPIServer
from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.telegram import TelegramInput, TelegramOutput
from rasa.shared.constants import INTENT_MESSAGE_PREFIX
from rasa.shared.core.constants import USER_INTENT_RESTART
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.conversation_ids import TELEGRAM, ChannelRecipientOutput
from bot.channels.credentials import is_true
from bot.channels.messaging.replays import SeenIds
from bot.channels.messaging.signatures import secret_token_matches
from bot.channels.text import MAX_MESSAGE_CHARS, clean_user_text

logger = logging.getLogger(__name__)

SECRET_TOKEN_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# What Telegram accepts as a webhook secret token.
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# Telegram's own limit is 4096 characters a message; larger bodies are not updates.
MAX_UPDATE_BYTES = 64 * 1024
UNVERIFIED_WARNING = (
    "TELEGRAM_ALLOW_UNVERIFIED is true and TELEGRAM_SECRET_TOKEN is unset: the Telegram webhook accepts "
    "updates from anyone who finds its URL, who can then write into any Telegram chat's conversation. "
    "Set TELEGRAM_SECRET_TOKEN."
)


def update_text(update: Dict[str, Any]) -> Optional[Tuple[Any, str]]:
    """The chat id and text of a Telegram update, or None for an update that carries no message from a person.

    Mirrors Rasa's TelegramInput: a button press sends its callback data, an
    edited message its new text, a location `{"lng": ..., "lat": ...}`;
    "/bot" is removed from typed text. Unlike Rasa's, any other shape of
    update (channel posts, member changes, malformed fields) is skipped
    instead of raising.
    """
    callback = update.get("callback_query")
    if isinstance(callback, dict):
        message, text = callback.get("message"), callback.get("data")
    elif isinstance(update.get("edited_message"), dict):
        message = update["edited_message"]
        text = message.get("text")
    else:
        message = update.get("message")
        if not isinstance(message, dict):
            return None
        text = message.get("text")
        location = message.get("location")
        if isinstance(text, str):
            text = text.replace("/bot", "")
        elif isinstance(location, dict):
            text = json.dumps({"lng": location.get("longitude"), "lat": location.get("latitude")})
    if not isinstance(message, dict) or not isinstance(text, str):
        return None
    chat = message.get("chat")
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if isinstance(chat_id, bool) or not isinstance(chat_id, (int, str)) or not str(chat_id).strip():
        return None
    return chat_id, text


class TelegramBotOutput(ChannelRecipientOutput, TelegramOutput):
    """Rasa's Telegram output, talking to a configurable Bot API server, buttons one per row."""

    conversation_ids = TELEGRAM

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

    Every update must carry the secret token in the
    X-Telegram-Bot-Api-Secret-Token header; anything else gets a 403. Without
    a secret token (only with `allow_unverified`), every update is accepted
    and a warning is logged at start. The webhook is registered once the
    server has started, and a failure to reach Telegram is logged instead of
    stopping the whole assistant. Malformed updates get a 400, updates that
    carry no message from a person a 200, never a 500.
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
            allow_unverified=is_true(credentials.get("allow_unverified")),
        )

    def __init__(
        self,
        access_token: Optional[Text],
        verify: Optional[Text],
        webhook_url: Optional[Text],
        secret_token: Optional[Text] = None,
        api_base_url: Optional[Text] = None,
        allow_unverified: bool = False,
    ) -> None:
        super().__init__(access_token, verify, webhook_url, debug_mode=False)
        self.secret_token = secret_token
        self.api_base_url = api_base_url
        self.allow_unverified = allow_unverified
        self.seen_updates = SeenIds()
        if not secret_token:
            if allow_unverified:
                logger.warning(UNVERIFIED_WARNING)
            else:
                logger.error(
                    "The Telegram channel has no secret token (TELEGRAM_SECRET_TOKEN) and "
                    "TELEGRAM_ALLOW_UNVERIFIED is not true: every update will be refused."
                )

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The health, webhook and set_webhook routes, with the webhook registered at start-up."""
        webhook = Blueprint("telegram_verified_webhook", __name__)
        out_channel = self.get_output_channel()

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/set_webhook", methods=["GET", "POST"])
        async def set_webhook(_: Request) -> HTTPResponse:
            registered = await self._register_webhook()
            return response.text("Webhook registered." if registered else "Could not register the webhook.")

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self._receive(request, on_new_message, out_channel)

        # A plain function: Sanic 21.12's lazy blueprint decorators mis-handle bound methods.
        @webhook.listener("after_server_start")
        async def register_webhook(app: Sanic, loop: Any) -> None:
            await self._register_webhook()

        return webhook

    def _verified(self, request: Request) -> bool:
        if not self.secret_token:
            return self.allow_unverified
        return secret_token_matches(self.secret_token, request.headers.get(SECRET_TOKEN_HEADER))

    async def _receive(
        self,
        request: Request,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        out_channel: TelegramBotOutput,
    ) -> HTTPResponse:
        if not self._verified(request):
            logger.warning("Refused a Telegram update without the right %s header.", SECRET_TOKEN_HEADER)
            return response.text("Invalid secret token.", status=403)
        if len(request.body) > MAX_UPDATE_BYTES:
            return response.text("The update is too large.", status=413)
        try:
            update = json.loads(request.body)
            if isinstance(update, str):  # Rasa accepts an update sent as a JSON string too
                update = json.loads(update)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return response.text("The request body must be a JSON object.", status=400)
        if not isinstance(update, dict):
            return response.text("The request body must be a JSON object.", status=400)
        update_id = update.get("update_id")
        if not self.seen_updates.first_time(str(update_id) if update_id is not None else None):
            logger.info("Dropped a Telegram update delivered again (same update_id).")
            return response.text("success")
        found = update_text(update)
        if found is None:
            return response.text("success")
        chat_id, text = found
        if len(text) > MAX_MESSAGE_CHARS:
            return response.text("The message is too long.", status=413)
        sender_id = TELEGRAM.conversation_id(chat_id)
        metadata = self.get_metadata(request)
        texts = [text]
        if text == INTENT_MESSAGE_PREFIX + USER_INTENT_RESTART:
            texts.append("/start")
        try:
            for each in texts:
                await on_new_message(
                    UserMessage(
                        clean_user_text(each), out_channel, sender_id, input_channel=self.name(), metadata=metadata
                    )
                )
        except Exception:  # noqa: BLE001  # Telegram only needs to know the update arrived
            logger.exception("Failed to handle a Telegram message (text not logged).")
        return response.text("success")

    async def _register_webhook(self) -> bool:
        if not self.webhook_url:
            logger.warning("No Telegram webhook URL configured: the webhook was not registered.")
            return False
        channel = self.get_output_channel()
        try:
            if await channel.set_webhook(self.webhook_url):
                logger.info("Registered the Telegram webhook.")
                return True
            logger.error("Telegram refused the webhook; GET /webhooks/telegram/set_webhook retries.")
        except Exception as error:  # noqa: BLE001  # the other channels keep working
            logger.error(
                "Could not register the Telegram webhook (%s); GET /webhooks/telegram/set_webhook retries.",
                type(error).__name__,
            )
        finally:
            await channel.session.close()
        return False

    def get_output_channel(self) -> TelegramBotOutput:
        """A Telegram client for replies (the webhook is registered separately, at start-up)."""
        return TelegramBotOutput(self.access_token, self.secret_token, self.api_base_url)
