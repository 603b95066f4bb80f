"""Facebook Messenger: X-Hub-Signature-256 checked before anything runs, choices that fit Messenger's limits."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from fbmessenger import MessengerClient
from fbmessenger.elements import Text as FBText
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.facebook import FacebookInput, Messenger, MessengerBot
from rasa.core.tracker_store import TrackerStore
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.messaging.choices import numbered_choices, resolve_numbered_reply, tracker_store_of
from bot.channels.messaging.signatures import meta_signature_is_valid
from bot.channels.text import clean_user_text

logger = logging.getLogger(__name__)

# Messenger's limits: button and quick reply titles, buttons per template and its text, quick replies per message.
MAX_TITLE_CHARS = 20
MAX_TEMPLATE_BUTTONS = 3
MAX_TEMPLATE_TEXT_CHARS = 640
MAX_QUICK_REPLIES = 13
SEND_TIMEOUT_SECONDS = 10


class GraphApiClient(MessengerClient):
    """fbmessenger's client with a configurable Graph API URL and a timeout on every send."""

    def __init__(self, page_access_token: Text, graph_api_url: Optional[Text] = None) -> None:
        super().__init__(page_access_token)
        if graph_api_url:
            self.graph_url = graph_api_url.rstrip("/")

    def send(self, payload: Any, recipient_id: Any, *args: Any, timeout: Optional[float] = None, **kwargs: Any) -> Any:
        """Sends a message; gives up after SEND_TIMEOUT_SECONDS rather than hanging the server."""
        return super().send(payload, recipient_id, *args, timeout=timeout or SEND_TIMEOUT_SECONDS, **kwargs)

    def send_action(self, sender_action: Any, recipient_id: Any, timeout: Optional[float] = None) -> Any:
        """Sends a sender action (typing, seen) with the same timeout."""
        return super().send_action(sender_action, recipient_id, timeout=timeout or SEND_TIMEOUT_SECONDS)


class ChoicesMessengerBot(MessengerBot):
    """Rasa's Messenger output, with buttons Messenger can always show.

    Rasa sends buttons as a button template, which Messenger refuses for
    titles over 20 characters and which Rasa drops for more than 3 buttons.
    Those fit as they are; otherwise the choices are numbered in the text and
    offered as quick replies "1", "2", ... carrying the buttons' payloads.
    """

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        """Sends a button template when the buttons fit one, numbered quick replies otherwise."""
        titles_fit = all(len(str(button.get("title", ""))) <= MAX_TITLE_CHARS for button in buttons)
        if titles_fit and len(buttons) <= MAX_TEMPLATE_BUTTONS and len(text) <= MAX_TEMPLATE_TEXT_CHARS:
            await super().send_text_with_buttons(recipient_id, text, [dict(b) for b in buttons], **kwargs)
            return
        offered = buttons[:MAX_QUICK_REPLIES]
        replies = [
            {"content_type": "text", "title": str(index), "payload": button["payload"]}
            for index, button in enumerate(offered, start=1)
        ]
        body = f"{text.strip()}\n\n{numbered_choices(offered)}" if text.strip() else numbered_choices(offered)
        self.send(recipient_id, FBText(text=body, quick_replies=self._convert_to_quick_reply(replies)))


class VerifiedMessenger(Messenger):
    """Rasa's Messenger event handling, for every event of a batch, with number replies resolved."""

    def __init__(
        self,
        client: MessengerClient,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        tracker_store: Optional[TrackerStore],
    ) -> None:
        super().__init__(client.page_access_token, on_new_message)
        self.client = client
        self.tracker_store = tracker_store

    async def handle(self, payload: Dict, metadata: Optional[Dict[Text, Any]]) -> None:
        """Handles each messaging event (Rasa's stops after the first one of a batch)."""
        for entry in payload.get("entry") or []:
            for message in entry.get("messaging") or []:
                self.last_message = message
                if message.get("message"):
                    await self.message(message, metadata)
                elif message.get("postback"):
                    await self.postback(message, metadata)

    async def _handle_user_message(self, text: Text, sender_id: Text, metadata: Optional[Dict[Text, Any]]) -> None:
        out_channel = ChoicesMessengerBot(self.client)
        text = await resolve_numbered_reply(self.tracker_store, sender_id, clean_user_text(text))
        await out_channel.send_action(sender_id, sender_action="mark_seen")
        await out_channel.send_action(sender_id, sender_action="typing_on")
        try:
            await self.on_new_message(
                UserMessage(text, out_channel, sender_id, input_channel=self.name(), metadata=metadata)
            )
        except Exception:  # noqa: BLE001  # Messenger only needs to know the event arrived
            logger.exception("Failed to handle a Messenger message (text not logged).")
        finally:
            await out_channel.send_action(sender_id, sender_action="typing_off")


class VerifiedMessengerInput(FacebookInput):
    """Messenger at /webhooks/facebook/webhook.

    POSTs must be signed with the app secret: X-Hub-Signature-256 (SHA-256),
    or X-Hub-Signature (SHA-1) when only that one is sent. A missing or wrong
    signature gets a 403 and nothing is processed (Rasa's own check answers
    200, lets the sender choose the hash and compares in variable time). The
    GET verification handshake answers only the configured verify token.
    """

    @classmethod
    def name(cls) -> Text:
        """Same name and URL as Rasa's Facebook channel."""
        return "facebook"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        """Builds the channel from its credentials.yml section (Rasa's keys plus `graph_api_url`)."""
        if not credentials:
            cls.raise_missing_credentials_exception()
            credentials = {}  # not reached: the call raises, but is not typed NoReturn
        missing = [key for key in ("verify", "secret", "page-access-token") if not credentials.get(key)]
        if missing:
            raise ValueError(f"The facebook channel needs {', '.join(missing)} in credentials.yml.")
        return cls(
            credentials["verify"],
            credentials["secret"],
            credentials["page-access-token"],
            graph_api_url=credentials.get("graph_api_url") or None,
        )

    def __init__(self, fb_verify: Text, fb_secret: Text, fb_access_token: Text, graph_api_url: Optional[Text] = None):
        super().__init__(fb_verify, fb_secret, fb_access_token)
        self.graph_api_url = graph_api_url

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The health, verification and webhook routes."""
        webhook = Blueprint("facebook_verified_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["GET"])
        async def token_verification(request: Request) -> HTTPResponse:
            received = request.args.get("hub.verify_token") or ""
            if request.args.get("hub.mode", "subscribe") == "subscribe" and hmac.compare_digest(
                received.encode("utf-8"), self.fb_verify.encode("utf-8")
            ):
                return response.text(request.args.get("hub.challenge") or "")
            logger.warning("Refused a Messenger verification request with the wrong verify token.")
            return response.text("Invalid verify token.", status=403)

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not meta_signature_is_valid(self.fb_secret, request.body, request.headers):
                logger.warning("Refused a Messenger request without a valid X-Hub-Signature-256.")
                return response.text("Invalid signature.", status=403)
            try:
                payload = json.loads(request.body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return response.text("The request body must be JSON.", status=400)
            if not isinstance(payload, dict):
                return response.text("The request body must be a JSON object.", status=400)
            messenger = VerifiedMessenger(self._client(), on_new_message, tracker_store_of(request))
            await messenger.handle(payload, self.get_metadata(request))
            return response.text("success")

        return webhook

    def _client(self) -> GraphApiClient:
        return GraphApiClient(self.fb_access_token, self.graph_api_url)

    def get_output_channel(self) -> OutputChannel:
        """Replies through the Graph API as the page."""
        return ChoicesMessengerBot(self._client())
