"""Rasa's Socket.IO channel, hardened for a public website chat widget.

Three changes to Rasa 3.6's `SocketIOInput`:

- Only pages on allowed origins (CHAT_ALLOWED_ORIGINS) can open a socket from
  a browser. Rasa passes `cors_allowed_origins=[]`, which turns the check off.
- Session persistence works: Rasa does not await `enter_room`, a coroutine in
  python-socketio 5 (rasa#13027), so with `session_persistence: true` replies
  never arrive. Here the room is joined, a reconnecting page keeps its
  conversation, and a socket can only speak for the session it was confirmed.
- Bad messages (not an object, no text, too long, malformed metadata or
  metadata over bot/channels/metadata.py's limits) are refused with a
  `chat_error` event instead of raising inside the server.

Conversations are stored as `web:<session id>` (bot/channels/conversation_ids.py),
so no other channel can reach them; replies go to the room named by the bare
session id.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import uuid
from typing import Any, Awaitable, Callable, Dict, Optional, Sequence, Text, Tuple

import rasa.core.channels.channel
from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

from bot.channels.conversation_ids import WEB_WIDGET, ChannelRecipientOutput
from bot.channels.metadata import metadata_problem
from bot.channels.text import MAX_MESSAGE_CHARS, clean_user_text

logger = logging.getLogger(__name__)

ERROR_EVENT = "chat_error"
# A session id is what this channel hands out (uuid4().hex): unguessable, so
# knowing one is the only way to join that conversation's room.
SESSION_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
# Largest Engine.IO packet: 20,000 characters of JSON-escaped text plus metadata.
MAX_PACKET_BYTES = 256 * 1024


class InvalidSocketMessage(ValueError):
    """A `user_uttered` payload that cannot be processed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_socket_message(data: Any, metadata_key: str = "metadata") -> Tuple[str, Dict[str, Any]]:
    """Validates a `user_uttered` payload and returns its cleaned text and metadata.

    Raises:
        InvalidSocketMessage: The payload is not an object, has no string
            `message`, a message over MAX_MESSAGE_CHARS, or metadata that is not
            an object (or a JSON string of one).
    """
    if not isinstance(data, dict):
        raise InvalidSocketMessage("invalid_message", "A message must be an object with a `message` string.")
    message = data.get("message")
    if not isinstance(message, str):
        raise InvalidSocketMessage("invalid_message", "`message` is required and must be a string.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidSocketMessage(
            "message_too_long", f"That message is longer than {MAX_MESSAGE_CHARS} characters."
        )
    if not message.strip():
        raise InvalidSocketMessage("empty_message", "The message is empty.")
    not_an_object = InvalidSocketMessage("invalid_metadata", f"`{metadata_key}` must be an object.")
    metadata = data.get(metadata_key)
    if isinstance(metadata, str):
        # Rasa's channel also accepts metadata sent as a JSON string.
        try:
            metadata = json.loads(metadata) if metadata.strip() else None
        except json.JSONDecodeError:
            raise not_an_object from None
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise not_an_object
    problem = metadata_problem(metadata) if metadata else None
    if problem:
        raise InvalidSocketMessage("metadata_too_large", f"`{metadata_key}` {problem}.")
    return clean_user_text(message), metadata


def is_session_id(value: Any) -> bool:
    """True for a session id in the form this channel issues."""
    return isinstance(value, str) and SESSION_ID_PATTERN.fullmatch(value) is not None


class NamespacedSocketIOOutput(ChannelRecipientOutput, SocketIOOutput):
    """Rasa's Socket.IO output that also sends to a custom namespace, to the room of the bare session id."""

    conversation_ids = WEB_WIDGET

    def __init__(self, sio: AsyncServer, bot_message_evt: Text, namespace: Optional[Text] = None) -> None:
        super().__init__(sio, bot_message_evt)
        self.namespace = namespace

    async def _send_message(self, socket_id: Text, response: Any) -> None:
        await self.sio.emit(self.bot_message_evt, response, room=socket_id, namespace=self.namespace)

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        """Sends a custom payload's `data` (Rasa's convention) to the recipient's room, never another."""
        await self.sio.emit(
            self.bot_message_evt, json_message.get("data"), room=recipient_id, namespace=self.namespace
        )


class HardenedSocketIOInput(SocketIOInput):
    """The Socket.IO channel for the website widget (see the module docstring).

    Configured in credentials.yml like Rasa's own; the allowed origins come
    from the settings (CHAT_ALLOWED_ORIGINS) unless `allowed_origins` is given.
    Browsers always send an Origin header, so a page elsewhere cannot connect;
    clients that send none (scripts, apps) are not browsers and are let in,
    as python-socketio does.
    """

    @classmethod
    def name(cls) -> Text:
        """Same name and URLs as Rasa's Socket.IO channel."""
        return "socketio"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        """Builds the channel from its credentials.yml entry and the settings."""
        credentials = credentials or {}
        origins = credentials.get("allowed_origins")
        if origins is None:
            from bot.settings import Settings

            origins = Settings.from_env().chat_allowed_origins
        return cls(
            credentials.get("user_message_evt", "user_uttered"),
            credentials.get("bot_message_evt", "bot_uttered"),
            credentials.get("namespace"),
            credentials.get("session_persistence", False),
            credentials.get("socketio_path", "/socket.io"),
            credentials.get("jwt_key"),
            credentials.get("jwt_method", "HS256"),
            credentials.get("metadata_key", "metadata"),
            allowed_origins=tuple(origins),
        )

    def __init__(
        self,
        user_message_evt: Text = "user_uttered",
        bot_message_evt: Text = "bot_uttered",
        namespace: Optional[Text] = None,
        session_persistence: bool = False,
        socketio_path: Optional[Text] = "/socket.io",
        jwt_key: Optional[Text] = None,
        jwt_method: Optional[Text] = "HS256",
        metadata_key: Optional[Text] = "metadata",
        allowed_origins: Sequence[str] = ("http://localhost:8000", "http://127.0.0.1:8000"),
    ) -> None:
        if not allowed_origins:
            # An empty list would switch python-socketio's origin check off.
            raise ValueError("The Socket.IO channel needs at least one allowed origin (CHAT_ALLOWED_ORIGINS).")
        super().__init__(
            user_message_evt,
            bot_message_evt,
            namespace,
            session_persistence,
            socketio_path,
            jwt_key,
            jwt_method,
            metadata_key,
        )
        self.allowed_origins = list(allowed_origins)
        if "*" in self.allowed_origins:
            logger.warning("CHAT_ALLOWED_ORIGINS contains '*': a page on any website can open a chat socket.")
        else:
            logger.info("The chat socket accepts browser pages from: %s", ", ".join(self.allowed_origins))

    def get_output_channel(self) -> Optional[rasa.core.channels.channel.OutputChannel]:
        """The output channel used to push messages outside a conversation turn."""
        if self.sio is None:
            return super().get_output_channel()
        return NamespacedSocketIOOutput(self.sio, self.bot_message_evt, self.namespace)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The Socket.IO server, attached to Rasa's Sanic app, and a health route."""
        sio = AsyncServer(
            async_mode="sanic",
            cors_allowed_origins=self.allowed_origins,
            max_http_buffer_size=MAX_PACKET_BYTES,
        )
        socketio_webhook = SocketBlueprint(sio, self.socketio_path, "socketio_webhook", __name__)
        self.sio = sio
        namespace = self.namespace

        async def refuse(sid: Text, code: str, message: str) -> None:
            await sio.emit(ERROR_EVENT, {"error": code, "message": message}, room=sid, namespace=namespace)

        @socketio_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @sio.on("connect", namespace=namespace)
        async def connect(sid: Text, environ: Dict, auth: Optional[Dict] = None) -> bool:
            if not self.jwt_key:
                return True
            token = auth.get("token") if isinstance(auth, dict) else None
            if not isinstance(token, str) or not token:
                return False
            algorithm = self.jwt_algorithm or "HS256"
            return rasa.core.channels.channel.decode_bearer_token(token, self.jwt_key, algorithm) is not None

        @sio.on("session_request", namespace=namespace)
        async def session_request(sid: Text, data: Any = None) -> None:
            requested = data.get("session_id") if isinstance(data, dict) else None
            session_id = requested if is_session_id(requested) else uuid.uuid4().hex
            session = await sio.get_session(sid, namespace=namespace)
            previous = session.get("session_id")
            if self.session_persistence:
                if previous and previous != session_id:
                    await sio.leave_room(sid, previous, namespace=namespace)
                await sio.enter_room(sid, session_id, namespace=namespace)
            await sio.save_session(sid, {"session_id": session_id}, namespace=namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=namespace)

        @sio.on(self.user_message_evt, namespace=namespace)
        async def handle_message(sid: Text, data: Any = None) -> None:
            try:
                text, metadata = parse_socket_message(data, self.metadata_key or "metadata")
            except InvalidSocketMessage as error:
                logger.info("Refused a Socket.IO message: %s", error.code)
                await refuse(sid, error.code, str(error))
                return
            if self.session_persistence:
                session = await sio.get_session(sid, namespace=namespace)
                sender_id = session.get("session_id")
                if not sender_id:
                    await refuse(sid, "no_session", "Send session_request and wait for session_confirm first.")
                    return
                claimed = data.get("session_id")
                if claimed is not None and claimed != sender_id:
                    await refuse(sid, "session_mismatch", "This socket belongs to another session.")
                    return
            else:
                sender_id = sid
            output = NamespacedSocketIOOutput(sio, self.bot_message_evt, namespace)
            message = UserMessage(
                text, output, WEB_WIDGET.conversation_id(sender_id), input_channel=self.name(), metadata=metadata
            )
            try:
                await on_new_message(message)
            except Exception as error:  # noqa: BLE001  # the socket stays usable
                # Type and stack only: exception messages can carry what a person wrote.
                logger.error(
                    "Failed to handle a Socket.IO message: %s\n%s",
                    type(error).__name__,
                    "".join(traceback.format_tb(error.__traceback__)),
                )
                await refuse(sid, "server_error", "Something went wrong. Please try again.")

        return socketio_webhook
