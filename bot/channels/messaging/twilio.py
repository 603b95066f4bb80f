"""Twilio SMS and WhatsApp: signed webhooks, numbered choices for buttons, non-blocking sends.

Conversations are stored as `twilio:+1555...` (SMS) and `whatsapp:+1555...`
(bot/channels/conversation_ids.py). A message Twilio sends again with the same
MessageSid is answered but processed once (bot/channels/messaging/replays.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.twilio import TwilioInput, TwilioOutput
from sanic import Blueprint, response
from sanic.request import Request, RequestParameters
from sanic.response import HTTPResponse
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient

from bot.channels.conversation_ids import TWILIO_SMS, TWILIO_WHATSAPP, ChannelRecipientOutput, ConversationIds
from bot.channels.messaging.choices import numbered_choices, resolve_numbered_reply, tracker_store_of
from bot.channels.messaging.replays import SeenIds
from bot.channels.messaging.signatures import twilio_signature_is_valid
from bot.channels.text import clean_user_text

logger = logging.getLogger(__name__)

# Twilio accepts message bodies of up to 1600 characters (SMS and WhatsApp).
MAX_BODY_CHARS = 1600


def message_bodies(text: str, limit: int = MAX_BODY_CHARS) -> List[str]:
    """`text` in as few messages as fit, cut between paragraphs where possible.

    One message per reply where it fits: separate SMS can arrive out of order.
    """
    bodies: List[str] = []
    current = ""
    for paragraph in (part.strip() for part in text.strip().split("\n\n")):
        if not paragraph:
            continue
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            bodies.append(current)
        while len(paragraph) > limit:
            cut = paragraph.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            bodies.append(paragraph[:cut].rstrip())
            paragraph = paragraph[cut:].lstrip()
        current = paragraph
    if current:
        bodies.append(current)
    return bodies


def form_parameters(request: Request) -> RequestParameters:
    """The POSTed form with blank values kept: Twilio signs `ToCity=` and the like too (Sanic's form drops them)."""
    content_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return RequestParameters()
    try:
        return RequestParameters(parse_qs(request.body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return RequestParameters()


class NumberedChoicesTwilioOutput(ChannelRecipientOutput, TwilioOutput):
    """Rasa's Twilio output, sending through Twilio's async client, with buttons as numbered choices.

    Replies go to the phone number of the conversation, written as Twilio
    addresses it (`whatsapp:+1555...` on WhatsApp).
    """

    @classmethod
    def name(cls) -> Text:
        """Same name as Rasa's Twilio output."""
        return "twilio"

    def __init__(
        self,
        account_sid: Optional[Text],
        auth_token: Optional[Text],
        twilio_number: Optional[Text],
        api_base_url: Optional[Text] = None,
        conversation_ids: ConversationIds = TWILIO_SMS,
        address_scheme: Text = "",
    ) -> None:
        super().__init__(account_sid, auth_token, twilio_number)
        # One short-lived aiohttp session per request: nothing to close afterwards.
        self.http_client = AsyncTwilioHttpClient(pool_connections=False, timeout=30)
        self.api_base_url = api_base_url
        self.conversation_ids = conversation_ids
        self.address_scheme = address_scheme

    def twilio_address(self, recipient_id: Text) -> Text:
        """The recipient as Twilio addresses it: the number, after `whatsapp:` on WhatsApp."""
        if not self.address_scheme or recipient_id.startswith(self.address_scheme):
            return recipient_id
        return self.address_scheme + recipient_id

    def get_hostname(self, uri: str) -> str:
        """Twilio's URL, moved to `api_base_url` when one is configured."""
        uri = super().get_hostname(uri)
        if not self.api_base_url:
            return uri
        base = urlsplit(self.api_base_url)
        target = urlsplit(uri)
        return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + target.path, target.query, ""))

    async def _send_message(self, message_data: Dict[Text, Any]) -> Any:
        try:
            return await self.messages.create_async(**message_data)
        except TwilioRestException as error:
            logger.error("Twilio did not accept a message (HTTP %s, error %s).", error.status, error.code)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            logger.error("Could not reach Twilio to send a message: %s", type(error).__name__)
        return None

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        """Sends the text as one message, or as few as Twilio's length limit allows."""
        to = self.twilio_address(recipient_id)
        for body in message_bodies(text):
            await self._send_message({"to": to, "from_": self.twilio_number, "body": body})

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        """Sends the text followed by the buttons as "1. Title" lines, in the same message."""
        choices = numbered_choices(buttons)
        await self.send_text_message(recipient_id, f"{text.strip()}\n{choices}" if text.strip() else choices)


class VerifiedTwilioInput(TwilioInput):
    """Twilio SMS at /webhooks/twilio/webhook: only requests with a valid X-Twilio-Signature are processed.

    Twilio signs the URL it calls plus the POST parameters with the account's
    auth token. Behind a proxy the URL the server sees differs from the public
    one, so the URL to check against is configured (`webhook_url`, exactly as
    entered in the Twilio console).
    """

    conversation_ids: ConversationIds = TWILIO_SMS
    # How Twilio writes this channel's phone numbers in From and To.
    address_scheme: Text = ""

    @classmethod
    def name(cls) -> Text:
        """Same name and URL as Rasa's Twilio channel."""
        return "twilio"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        """Builds the channel from its credentials.yml section."""
        if not credentials:
            cls.raise_missing_credentials_exception()
            credentials = {}  # not reached: the call raises, but is not typed NoReturn
        required = ("account_sid", "auth_token", "twilio_number", "webhook_url")
        missing = [key for key in required if not credentials.get(key)]
        if missing:
            raise ValueError(f"The {cls.name()} channel needs {', '.join(missing)} in credentials.yml.")
        return cls(
            credentials["account_sid"],
            credentials["auth_token"],
            credentials["twilio_number"],
            webhook_url=credentials["webhook_url"],
            api_base_url=credentials.get("api_base_url"),
        )

    def __init__(
        self,
        account_sid: Text,
        auth_token: Text,
        twilio_number: Text,
        webhook_url: Text,
        api_base_url: Optional[Text] = None,
    ) -> None:
        super().__init__(account_sid, auth_token, twilio_number, debug_mode=False)
        self.webhook_url = webhook_url
        self.api_base_url = api_base_url
        self.seen_messages = SeenIds()

    def conversation_id(self, address: Text) -> Text:
        """`twilio:+1555...` for an SMS sender, `whatsapp:+1555...` for `whatsapp:+1555...`."""
        number = address[len(self.address_scheme) :] if address.startswith(self.address_scheme) else address
        return self.conversation_ids.conversation_id(number)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The health and webhook routes."""
        webhook = Blueprint(f"{self.name()}_verified_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def message(request: Request) -> HTTPResponse:
            form = form_parameters(request)
            signature = request.headers.get("X-Twilio-Signature")
            if not twilio_signature_is_valid(self.auth_token or "", self.webhook_url, form, signature):
                logger.warning("Refused a %s webhook request without a valid X-Twilio-Signature.", self.name())
                return response.text("Invalid signature.", status=403)
            sender = form.get("From")
            text = form.get("Body")
            if not sender or text is None:
                return response.text("", status=204)
            if not self.seen_messages.first_time(form.get("MessageSid")):
                logger.info("Dropped a %s message Twilio sent again (same MessageSid).", self.name())
                return response.text("", status=204)
            conversation_id = self.conversation_id(sender)
            # Some carriers turn @ into ¡ in SMS.
            text = clean_user_text(text).replace("¡", "@")
            text = await resolve_numbered_reply(tracker_store_of(request), conversation_id, text)
            user_message = UserMessage(
                text,
                self.get_output_channel(),
                conversation_id,
                input_channel=self.name(),
                metadata=self.get_metadata(request),
            )
            try:
                await on_new_message(user_message)
            except Exception:  # noqa: BLE001  # Twilio only needs to know the message arrived
                logger.exception("Failed to handle a %s message (text not logged).", self.name())
            return response.text("", status=204)

        return webhook

    def get_output_channel(self) -> OutputChannel:
        """Replies through Twilio from the configured number."""
        return NumberedChoicesTwilioOutput(
            self.account_sid,
            self.auth_token,
            self.twilio_number,
            self.api_base_url,
            conversation_ids=self.conversation_ids,
            address_scheme=self.address_scheme,
        )


class VerifiedTwilioWhatsAppInput(VerifiedTwilioInput):
    """WhatsApp through Twilio at /webhooks/twilio_whatsapp/webhook, checked like SMS.

    Senders arrive as `whatsapp:+<number>`; replies go from the configured
    WhatsApp sender, written with or without the `whatsapp:` prefix.
    """

    conversation_ids = TWILIO_WHATSAPP
    address_scheme = "whatsapp:"

    @classmethod
    def name(cls) -> Text:
        """The channel's name and URL segment."""
        return "twilio_whatsapp"

    def __init__(
        self,
        account_sid: Text,
        auth_token: Text,
        twilio_number: Text,
        webhook_url: Text,
        api_base_url: Optional[Text] = None,
    ) -> None:
        number = twilio_number.strip()
        if not number.startswith("whatsapp:"):
            number = f"whatsapp:{number}"
        super().__init__(account_sid, auth_token, number, webhook_url, api_base_url)
