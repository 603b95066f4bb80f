"""Facebook Messenger: signatures checked before anything runs, replies sent without blocking the server.

- POSTs must carry a valid X-Hub-Signature-256. The older SHA-1 header is
  accepted only when the SHA-256 one is absent and FACEBOOK_ALLOW_SHA1_SIGNATURE
  is true (Meta has sent both for years).
- Replies go through the Graph API with aiohttp. Rasa's output uses
  fbmessenger, whose `requests` calls (several per message, 10 s timeout
  each) would stop every conversation on the server while Meta answers.
- Conversations are stored as `facebook:<PSID>` (bot/channels/conversation_ids.py);
  an event Meta delivers again (same message id) is answered but processed once.
- Choices are written to fit Messenger's limits.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Text, Union

import aiohttp
from fbmessenger.attachments import Image
from fbmessenger.elements import Text as FBText
from fbmessenger.sender_actions import SenderAction
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.facebook import FacebookInput, Messenger, MessengerBot
from rasa.core.tracker_store import TrackerStore
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.conversation_ids import FACEBOOK, ChannelRecipientOutput
from bot.channels.credentials import is_true
from bot.channels.messaging.choices import numbered_choices, resolve_numbered_reply, tracker_store_of
from bot.channels.messaging.replays import SeenIds
from bot.channels.messaging.signatures import meta_signature_is_valid
from bot.channels.text import clean_user_text

logger = logging.getLogger(__name__)

# Messenger's limits: button and quick reply titles, buttons per template and its text, quick replies per message.
MAX_TITLE_CHARS = 20
MAX_TEMPLATE_BUTTONS = 3
MAX_TEMPLATE_TEXT_CHARS = 640
MAX_QUICK_REPLIES = 13
SEND_TIMEOUT_SECONDS = 10
# fbmessenger's default, kept so that configurations without FACEBOOK_GRAPH_API_URL talk to the same API.
DEFAULT_GRAPH_API_URL = "https://graph.facebook.com/v2.12"


class GraphApiClient:
    """The Send API (`POST <graph url>/me/messages`) over aiohttp, with a timeout on every call.

    One connection pool per client, opened on the first send in the running
    event loop and closed by `close()`. A failed send is logged (status or
    error type only) and does not raise: the rest of the reply still goes.
    """

    def __init__(
        self, page_access_token: Text, graph_api_url: Optional[Text] = None, timeout: float = SEND_TIMEOUT_SECONDS
    ) -> None:
        self.page_access_token = page_access_token
        self.graph_url = (graph_api_url or DEFAULT_GRAPH_API_URL).rstrip("/")
        self.timeout = timeout
        self._session: Optional[aiohttp.ClientSession] = None
        self._session_loop: Optional[asyncio.AbstractEventLoop] = None

    async def send(self, payload: Any, recipient_id: Text, messaging_type: Text = "RESPONSE") -> Optional[Any]:
        """Sends one message to a PSID; returns the Graph API's answer, None if it failed."""
        body = {
            "messaging_type": messaging_type,
            "notification_type": "REGULAR",
            "recipient": {"id": recipient_id},
            "message": payload,
        }
        return await self._post(body)

    async def send_action(self, sender_action: Any, recipient_id: Text) -> Optional[Any]:
        """Sends a sender action (mark_seen, typing_on, typing_off)."""
        return await self._post({"recipient": {"id": recipient_id}, "sender_action": sender_action})

    async def close(self) -> None:
        """Closes the connection pool, if one was opened."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _current_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._session_loop = loop
        return self._session

    async def _post(self, body: Dict[str, Any]) -> Optional[Any]:
        url = f"{self.graph_url}/me/messages"
        try:
            async with self._current_session().post(
                url, params={"access_token": self.page_access_token}, json=body
            ) as answer:
                if answer.status >= 400:
                    logger.error("The Graph API did not accept a Messenger send (HTTP %s).", answer.status)
                    return None
                return await answer.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            logger.error("Could not reach the Graph API to send to Messenger: %s", type(error).__name__)
        return None


class ChoicesMessengerBot(ChannelRecipientOutput, MessengerBot):
    """Rasa's Messenger output, sending without blocking, with buttons Messenger can always show.

    Every method of Rasa's MessengerBot is re-written to await the async
    client. Rasa sends buttons as a button template, which Messenger refuses
    for titles over 20 characters and which Rasa drops for more than 3
    buttons. Those fit as they are; otherwise the choices are numbered in the
    text and offered as quick replies "1", "2", ... carrying the buttons' payloads.
    """

    conversation_ids = FACEBOOK

    def __init__(self, messenger_client: GraphApiClient) -> None:
        self.messenger_client = messenger_client  # type: ignore[assignment]
        OutputChannel.__init__(self)

    def send(self, recipient_id: Text, element: Any) -> None:
        """Not available: Rasa's blocking send. Every method here awaits the client instead."""
        raise NotImplementedError("ChoicesMessengerBot sends asynchronously; use its async methods.")

    async def _send(self, recipient_id: Text, payload: Any) -> None:
        await self.messenger_client.send(payload, recipient_id, "RESPONSE")

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        """Sends each paragraph as its own message, as Rasa does."""
        for part in text.strip().split("\n\n"):
            await self._send(recipient_id, FBText(text=part).to_dict())

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        """Sends an image by URL."""
        await self._send(recipient_id, Image(url=image).to_dict())

    async def send_action(self, recipient_id: Text, sender_action: Text) -> None:
        """Sends a sender action (e.g. "typing_on")."""
        await self.messenger_client.send_action(SenderAction(sender_action).to_dict(), recipient_id)

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        """Sends a button template when the buttons fit one, numbered quick replies otherwise."""
        titles_fit = all(len(str(button.get("title", ""))) <= MAX_TITLE_CHARS for button in buttons)
        if titles_fit and len(buttons) <= MAX_TEMPLATE_BUTTONS and len(text) <= MAX_TEMPLATE_TEXT_CHARS:
            template_buttons = [dict(button) for button in buttons]
            self._add_postback_info(template_buttons)
            template = {"template_type": "button", "text": text, "buttons": template_buttons}
            await self._send(recipient_id, {"attachment": {"type": "template", "payload": template}})
            return
        offered = buttons[:MAX_QUICK_REPLIES]
        replies = [
            {"content_type": "text", "title": str(index), "payload": button["payload"]}
            for index, button in enumerate(offered, start=1)
        ]
        body = f"{text.strip()}\n\n{numbered_choices(offered)}" if text.strip() else numbered_choices(offered)
        await self._send(recipient_id, FBText(text=body, quick_replies=self._convert_to_quick_reply(replies)).to_dict())

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        """Sends text with quick replies."""
        replies = self._convert_to_quick_reply(quick_replies)
        await self._send(recipient_id, FBText(text=text, quick_replies=replies).to_dict())

    async def send_elements(self, recipient_id: Text, elements: Iterable[Dict[Text, Any]], **kwargs: Any) -> None:
        """Sends a generic template."""
        elements = list(elements)
        for element in elements:
            if "buttons" in element:
                self._add_postback_info(element["buttons"])
        template = {"template_type": "generic", "elements": elements}
        await self._send(recipient_id, {"attachment": {"type": "template", "payload": template}})

    async def send_custom_json(
        self, recipient_id: Text, json_message: Union[List, Dict[Text, Any]], **kwargs: Any
    ) -> None:
        """Sends a custom payload as it is, to the conversation's own PSID only."""
        # Rasa's lets the payload name another recipient (`sender.id`); a reply never goes elsewhere.
        await self._send(recipient_id, json_message)


class VerifiedMessenger(Messenger):
    """Rasa's Messenger event handling: every event of a batch, once per message id, number replies resolved."""

    def __init__(
        self,
        client: GraphApiClient,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        tracker_store: Optional[TrackerStore],
        seen_messages: SeenIds,
    ) -> None:
        self.on_new_message = on_new_message
        self.client = client  # type: ignore[assignment]
        self.last_message: Dict[Text, Any] = {}
        self.tracker_store = tracker_store
        self.seen_messages = seen_messages

    async def handle(self, payload: Dict, metadata: Optional[Dict[Text, Any]]) -> None:
        """Handles each messaging event (Rasa's stops after the first one of a batch); skips malformed ones."""
        entries = payload.get("entry")
        for entry in entries if isinstance(entries, list) else []:
            events = entry.get("messaging") if isinstance(entry, dict) else None
            for event in events if isinstance(events, list) else []:
                if not isinstance(event, dict) or not isinstance(event.get("sender"), dict):
                    continue
                kind = "message" if isinstance(event.get("message"), dict) else "postback"
                content = event.get(kind)
                if not isinstance(content, dict):
                    continue
                mid = content.get("mid")
                if not self.seen_messages.first_time(mid if isinstance(mid, str) else None):
                    logger.info("Dropped a Messenger event delivered again (same message id).")
                    continue
                self.last_message = event
                try:
                    if kind == "message":
                        await self.message(event, metadata)
                    else:
                        await self.postback(event, metadata)
                except (KeyError, IndexError, TypeError, AttributeError):
                    logger.info("Skipped a Messenger event with fields of an unexpected shape.")

    async def _handle_user_message(self, text: Text, sender_id: Text, metadata: Optional[Dict[Text, Any]]) -> None:
        if not isinstance(text, str) or not isinstance(sender_id, str) or not sender_id:
            return
        out_channel = ChoicesMessengerBot(self.client)  # type: ignore[arg-type]
        conversation_id = FACEBOOK.conversation_id(sender_id)
        text = await resolve_numbered_reply(self.tracker_store, conversation_id, clean_user_text(text))
        await out_channel.send_action(sender_id, sender_action="mark_seen")
        await out_channel.send_action(sender_id, sender_action="typing_on")
        try:
            await self.on_new_message(
                UserMessage(text, out_channel, conversation_id, input_channel=self.name(), metadata=metadata)
            )
        except Exception:  # noqa: BLE001  # Messenger only needs to know the event arrived
            logger.exception("Failed to handle a Messenger message (text not logged).")
        finally:
            await out_channel.send_action(sender_id, sender_action="typing_off")


class VerifiedMessengerInput(FacebookInput):
    """Messenger at /webhooks/facebook/webhook.

    POSTs must be signed with the app secret: X-Hub-Signature-256 (SHA-256),
    or X-Hub-Signature (SHA-1) only when the SHA-256 header is absent and
    `allow_sha1_signature` is set. A missing or wrong signature gets a 403 and
    nothing is processed (Rasa's own check answers 200, lets the sender choose
    the hash and compares in variable time). The GET verification handshake
    answers only the configured verify token.
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
            allow_sha1_signature=is_true(credentials.get("allow_sha1_signature")),
        )

    def __init__(
        self,
        fb_verify: Text,
        fb_secret: Text,
        fb_access_token: Text,
        graph_api_url: Optional[Text] = None,
        allow_sha1_signature: bool = False,
    ) -> None:
        super().__init__(fb_verify, fb_secret, fb_access_token)
        self.graph_api_url = graph_api_url
        self.allow_sha1_signature = allow_sha1_signature
        self.seen_messages = SeenIds()
        self._graph_client: Optional[GraphApiClient] = None
        if allow_sha1_signature:
            logger.warning("Messenger requests signed with SHA-1 only are accepted (FACEBOOK_ALLOW_SHA1_SIGNATURE).")

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
            if not meta_signature_is_valid(
                self.fb_secret, request.body, request.headers, allow_sha1=self.allow_sha1_signature
            ):
                logger.warning("Refused a Messenger request without a valid X-Hub-Signature-256.")
                return response.text("Invalid signature.", status=403)
            try:
                payload = json.loads(request.body)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                return response.text("The request body must be JSON.", status=400)
            if not isinstance(payload, dict):
                return response.text("The request body must be a JSON object.", status=400)
            messenger = VerifiedMessenger(self._client(), on_new_message, tracker_store_of(request), self.seen_messages)
            await messenger.handle(payload, self.get_metadata(request))
            return response.text("success")

        @webhook.listener("after_server_stop")
        async def close_client(app: Sanic, loop: Any) -> None:
            if self._graph_client is not None:
                await self._graph_client.close()

        return webhook

    def _client(self) -> GraphApiClient:
        """The channel's one Graph API client (and connection pool)."""
        if self._graph_client is None:
            self._graph_client = GraphApiClient(self.fb_access_token, self.graph_api_url)
        return self._graph_client

    def get_output_channel(self) -> OutputChannel:
        """Replies through the Graph API as the page."""
        return ChoicesMessengerBot(self._client())
