"""The hardened Socket.IO channel: origins, session persistence and bad input, on a real Rasa server."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from typing import Any, Dict, Iterator, List, Optional

import pytest
import socketio
import websockets
import yaml

from bot.channels.socketio import (
    MAX_PACKET_BYTES,
    HardenedSocketIOInput,
    InvalidSocketMessage,
    NamespacedSocketIOOutput,
    is_session_id,
    parse_socket_message,
)
from bot.channels.text import MAX_MESSAGE_CHARS
from bot.services import Supervisor
from bot.settings import PROJECT_ROOT
from tests.escalation.receivers import free_port
from tests.servers import running_chat_services

RASA_PORT = free_port()
ACTION_PORT = free_port()
CONSOLE_PORT = free_port()
TOKEN = "socketio-test-token"
ALLOWED_ORIGIN = f"http://127.0.0.1:{CONSOLE_PORT}"
# Guards against a hung server; no assertion depends on how fast it answers.
REPLY_WAIT_SECONDS = 120
SOCKET_CHANNEL = "bot.channels.socketio.HardenedSocketIOInput"


def project_socket_channel_section() -> Dict[str, Any]:
    """The Socket.IO entry of the project's credentials.yml, as Rasa would read it."""
    credentials = yaml.safe_load((PROJECT_ROOT / "credentials.yml").read_text(encoding="utf-8"))
    assert SOCKET_CHANNEL in credentials, "credentials.yml must configure the hardened Socket.IO channel"
    return credentials[SOCKET_CHANNEL] or {}




@pytest.fixture(scope="module")
def chat_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    """Actions, Rasa (the project's channels), worker and console on test ports."""
    workdir = tmp_path_factory.mktemp("socketio-servers")
    with running_chat_services(
        workdir,
        token=TOKEN,
        rasa_port=RASA_PORT,
        action_port=ACTION_PORT,
        console_port=CONSOLE_PORT,
        console_secret="socketio-test-console-secret-" + "x" * 32,
    ) as supervisor:
        # The project's credentials.yml, with the channels whose secrets are unset left off.
        assert SOCKET_CHANNEL in yaml.safe_load((workdir / "credentials.active.yml").read_text(encoding="utf-8"))
        yield supervisor


def web(session_id: str) -> str:
    """The conversation id of a widget session: the channel's prefix and the session id."""
    return f"web:{session_id}"


def tracker(sender: str) -> Dict[str, Any]:
    url = f"http://127.0.0.1:{RASA_PORT}/conversations/{sender}/tracker?token={TOKEN}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def user_texts(sender: str) -> List[str]:
    return [e["text"] for e in tracker(sender)["events"] if e["event"] == "user"]


class ChatClient:
    """A Socket.IO client as a browser runs it: Engine.IO 4 over a websocket.

    The packets are written by hand: python-engineio's websocket client needs
    aiohttp 3.10 and Rasa 3.6 pins aiohttp below that (its long-polling client
    works, and is used for the polling checks, but waits ~30 s to disconnect).
    """

    def __init__(self, websocket: Any) -> None:
        self.websocket = websocket
        self.replies: asyncio.Queue[Dict[str, Any]] = asyncio.Queue()
        self.errors: asyncio.Queue[Dict[str, Any]] = asyncio.Queue()
        self.confirmations: asyncio.Queue[str] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, origin: str = ALLOWED_ORIGIN) -> "ChatClient":
        url = f"ws://127.0.0.1:{RASA_PORT}/socket.io/?EIO=4&transport=websocket"
        websocket = await websockets.connect(url, origin=origin, open_timeout=30, max_size=None)
        assert (await websocket.recv()).startswith("0{"), "Engine.IO open packet"
        await websocket.send("40")
        assert (await websocket.recv()).startswith("40{"), "Socket.IO connect packet"
        return cls(websocket)

    async def _read(self) -> None:
        queues = {"bot_uttered": self.replies, "chat_error": self.errors, "session_confirm": self.confirmations}
        try:
            async for packet in self.websocket:
                if packet == "2":
                    await self.websocket.send("3")
                elif packet.startswith("42"):
                    event, data = json.loads(packet[2:])
                    queues[event].put_nowait(data)
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def emit(self, event: str, data: Any) -> None:
        await self.websocket.send("42" + json.dumps([event, data]))

    async def start_session(self, session_id: Optional[str] = None) -> str:
        await self.emit("session_request", {"session_id": session_id})
        return await asyncio.wait_for(self.confirmations.get(), REPLY_WAIT_SECONDS)

    async def say(self, message: str, session_id: Optional[str]) -> None:
        await self.emit("user_uttered", {"message": message, "session_id": session_id})

    async def replies_until_buttons(self) -> List[Dict[str, Any]]:
        """Bot messages up to and including the next one that offers quick replies."""
        received = [await asyncio.wait_for(self.replies.get(), REPLY_WAIT_SECONDS)]
        while not received[-1].get("quick_replies"):
            received.append(await asyncio.wait_for(self.replies.get(), REPLY_WAIT_SECONDS))
        return received

    async def next_error(self) -> Dict[str, Any]:
        return await asyncio.wait_for(self.errors.get(), REPLY_WAIT_SECONDS)

    async def close(self) -> None:
        await self.websocket.close()
        await self._reader


async def polling_client(origin: str) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        f"http://127.0.0.1:{RASA_PORT}", headers={"Origin": origin}, transports=["polling"], wait_timeout=30
    )
    return client


def bot_texts_of_last_turn(sender: str) -> List[str]:
    events = tracker(sender)["events"]
    last_user = max(i for i, e in enumerate(events) if e["event"] == "user")
    return [e["text"] for e in events[last_user:] if e["event"] == "bot" and e.get("text")]


# ---- Without a server --------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, code",
    [
        pytest.param("what is mdma?", "invalid_message", id="a string"),
        pytest.param(["what is mdma?"], "invalid_message", id="a list"),
        pytest.param(None, "invalid_message", id="nothing"),
        pytest.param({}, "invalid_message", id="no message"),
        pytest.param({"message": 42}, "invalid_message", id="a number"),
        pytest.param({"message": {"text": "hi"}}, "invalid_message", id="an object"),
        pytest.param({"message": "x" * (MAX_MESSAGE_CHARS + 1)}, "message_too_long", id="too long"),
        pytest.param({"message": " \n\t "}, "empty_message", id="only whitespace"),
        pytest.param({"message": "hi", "metadata": [1]}, "invalid_metadata", id="metadata list"),
        pytest.param({"message": "hi", "metadata": "{not json"}, "invalid_metadata", id="metadata bad json"),
        pytest.param({"message": "hi", "metadata": "[1, 2]"}, "invalid_metadata", id="metadata json list"),
        pytest.param({"message": "hi", "metadata": {"k": "x" * 3000}}, "metadata_too_large", id="metadata too large"),
        pytest.param(
            {"message": "hi", "metadata": {"a": {"b": {"c": {"d": 1}}}}}, "metadata_too_large", id="metadata too deep"
        ),
        pytest.param(
            {"message": "hi", "metadata": json.dumps({"k": "x" * 3000})}, "metadata_too_large", id="metadata json large"
        ),
    ],
)
def test_bad_messages_are_refused(data: Any, code: str) -> None:
    with pytest.raises(InvalidSocketMessage) as refused:
        parse_socket_message(data)
    assert refused.value.code == code


@pytest.mark.parametrize(
    "data, text, metadata",
    [
        pytest.param({"message": "is mdma legal?"}, "is mdma legal?", {}, id="message only"),
        pytest.param({"message": "hi", "metadata": {"page": "/"}}, "hi", {"page": "/"}, id="metadata object"),
        pytest.param({"message": "hi", "metadata": '{"page": "/"}'}, "hi", {"page": "/"}, id="metadata json"),
        pytest.param({"message": "a\x00b\u200bc"}, "a b c", {}, id="control characters cleaned"),
        pytest.param({"message": "x" * MAX_MESSAGE_CHARS}, "x" * MAX_MESSAGE_CHARS, {}, id="longest allowed"),
    ],
)
def test_good_messages_are_cleaned(data: Any, text: str, metadata: Dict[str, Any]) -> None:
    assert parse_socket_message(data) == (text, metadata)


@pytest.mark.parametrize(
    "value, expected",
    [
        (uuid.uuid4().hex, True),
        ("0123456789abcdef0123456789abcdef", True),
        ("0123456789ABCDEF0123456789ABCDEF", False),
        ("abc", False),
        ("../../etc/passwd", False),
        (str(uuid.uuid4()), False),
        (None, False),
        (12345, False),
    ],
)
def test_session_ids_are_only_the_ones_the_channel_issues(value: Any, expected: bool) -> None:
    assert is_session_id(value) is expected


def test_an_empty_origin_list_is_refused_because_it_would_allow_every_origin() -> None:
    with pytest.raises(ValueError, match="CHAT_ALLOWED_ORIGINS"):
        HardenedSocketIOInput(allowed_origins=())


class RecordingServer:
    """Stands in for python-socketio's AsyncServer: records what would be emitted."""

    def __init__(self) -> None:
        self.emitted: List[tuple] = []

    async def emit(self, event: str, data: Any = None, room: Any = None, namespace: Any = None) -> None:
        self.emitted.append((event, data, room, namespace))


def test_replies_go_to_the_recipients_room_in_the_channels_namespace() -> None:
    server = RecordingServer()
    output = NamespacedSocketIOOutput(server, "bot_uttered", "/chat")  # type: ignore[arg-type]

    async def scenario() -> None:
        await output.send_text_with_buttons("room-1", "Hello", [{"title": "Legal?", "payload": "/faq/x"}])
        await output.send_custom_json("room-1", {"data": {"kind": "card"}, "room": "someone-else"})

    asyncio.run(scenario())
    assert server.emitted == [
        (
            "bot_uttered",
            {"text": "Hello", "quick_replies": [{"content_type": "text", "title": "Legal?", "payload": "/faq/x"}]},
            "room-1",
            "/chat",
        ),
        ("bot_uttered", {"kind": "card"}, "room-1", "/chat"),
    ]


def test_credentials_entry_keeps_the_widget_events_and_persistence() -> None:
    section = project_socket_channel_section()
    channel = HardenedSocketIOInput.from_credentials(section)
    assert isinstance(channel, HardenedSocketIOInput)
    assert (channel.user_message_evt, channel.bot_message_evt) == ("user_uttered", "bot_uttered")
    assert channel.session_persistence is True
    assert channel.name() == "socketio"


# ---- On a real Rasa server -----------------------------------------------------------------


def test_allowed_origin_connects_and_gets_an_answer(chat_servers: Supervisor) -> None:
    async def scenario() -> str:
        client = await ChatClient.connect()
        try:
            session_id = await client.start_session()
            assert is_session_id(session_id)
            await client.say("what is mdma-assisted therapy?", session_id)
            replies = await client.replies_until_buttons()
        finally:
            await client.close()
        events = tracker(web(session_id))["events"]
        assert [e["text"] for e in events if e["event"] == "user"] == ["what is mdma-assisted therapy?"]
        assert [e["input_channel"] for e in events if e["event"] == "user"] == ["socketio"]
        answered = [e["metadata"].get("utter_action") for e in events if e["event"] == "bot"]
        assert "utter_faq/what_is_mdma_assisted_therapy" in answered
        # Rasa's output sends each paragraph of a response as its own message.
        turn = "\n\n".join(bot_texts_of_last_turn(web(session_id)))
        assert all(reply["text"] and reply["text"] in turn for reply in replies)
        assert all(button["payload"].startswith("/") for button in replies[-1]["quick_replies"])
        return session_id

    asyncio.run(scenario())


FOREIGN_ORIGINS = [
    f"http://127.0.0.1:{CONSOLE_PORT + 999}",
    f"https://127.0.0.1:{CONSOLE_PORT}",
    f"http://127.0.0.1:{CONSOLE_PORT}.evil.example",
    "http://evil.example",
    "null",
]


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_a_foreign_origin_is_refused_on_the_websocket(chat_servers: Supervisor, origin: str) -> None:
    async def scenario() -> None:
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as refused:
            await ChatClient.connect(origin)
        assert refused.value.status_code == 400

    asyncio.run(scenario())


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_a_foreign_origin_is_refused_on_long_polling(chat_servers: Supervisor, origin: str) -> None:
    async def scenario() -> None:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await polling_client(origin)

    asyncio.run(scenario())


@pytest.mark.parametrize("origin", [f"http://localhost:{CONSOLE_PORT}", f"http://127.0.0.1:{CONSOLE_PORT}"])
def test_both_default_origins_are_allowed(chat_servers: Supervisor, origin: str) -> None:
    async def scenario() -> None:
        client = await ChatClient.connect(origin)
        try:
            assert is_session_id(await client.start_session())
        finally:
            await client.close()

    asyncio.run(scenario())


def test_long_polling_works_from_an_allowed_origin(chat_servers: Supervisor) -> None:
    async def scenario() -> None:
        client = await polling_client(ALLOWED_ORIGIN)
        confirmed: asyncio.Queue[str] = asyncio.Queue()
        client.on("session_confirm", confirmed.put_nowait)
        await client.emit("session_request", {"session_id": None})
        assert is_session_id(await asyncio.wait_for(confirmed.get(), REPLY_WAIT_SECONDS))
        # Without waiting for the pending long-poll to return (see ChatClient).
        await client.eio.disconnect(abort=True)

    asyncio.run(scenario())


def test_connections_with_the_same_session_id_share_the_conversation(chat_servers: Supervisor) -> None:
    async def scenario() -> tuple[str, str]:
        first, second, stranger = [await ChatClient.connect() for _ in range(3)]
        try:
            session_id = await first.start_session()
            assert await second.start_session(session_id) == session_id
            other_session = await stranger.start_session()
            assert other_session != session_id

            await first.say("what is mdma-assisted therapy?", session_id)
            seen_by_first = await first.replies_until_buttons()
            seen_by_second = await second.replies_until_buttons()
            assert seen_by_second == seen_by_first
            assert stranger.replies.empty()

            # The page reloads: a new socket with the stored session id continues the conversation.
            await first.close()
            reloaded = await ChatClient.connect()
            assert await reloaded.start_session(session_id) == session_id
            await reloaded.say("/faq/legal_status", session_id)
            assert (await reloaded.replies_until_buttons())[-1]["quick_replies"]
            await reloaded.close()
        finally:
            for client in (first, second, stranger):
                await client.close()
        return session_id, other_session

    session_id, other_session = asyncio.run(scenario())
    assert user_texts(web(session_id)) == ["what is mdma-assisted therapy?", "/faq/legal_status"]
    assert user_texts(web(other_session)) == []


def test_a_session_id_the_channel_did_not_issue_is_replaced(chat_servers: Supervisor) -> None:
    async def scenario() -> None:
        client = await ChatClient.connect()
        try:
            issued = await client.start_session("user-1")
            assert issued != "user-1" and is_session_id(issued)
        finally:
            await client.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "payload, code",
    [
        pytest.param("what is mdma?", "invalid_message", id="a string"),
        pytest.param(["what is mdma?"], "invalid_message", id="a list"),
        pytest.param({"message": None}, "invalid_message", id="null message"),
        pytest.param({"message": 7}, "invalid_message", id="a number"),
        pytest.param({"message": "y" * (MAX_MESSAGE_CHARS + 1)}, "message_too_long", id="too long"),
        pytest.param({"message": "   "}, "empty_message", id="blank"),
        pytest.param({"message": "hi", "metadata": "{oops"}, "invalid_metadata", id="bad metadata"),
        pytest.param({"message": "hi", "metadata": {"k": "x" * 3000}}, "metadata_too_large", id="large metadata"),
    ],
)
def test_bad_payloads_are_refused_and_the_server_still_answers(
    chat_servers: Supervisor, payload: Any, code: str
) -> None:
    async def scenario() -> str:
        client = await ChatClient.connect()
        try:
            session_id = await client.start_session()
            if isinstance(payload, dict):
                payload["session_id"] = session_id
            await client.emit("user_uttered", payload)
            assert (await client.next_error())["error"] == code
            await client.say("/faq/legal_status", session_id)
            assert (await client.replies_until_buttons())[-1]["quick_replies"]
        finally:
            await client.close()
        return session_id

    assert user_texts(web(asyncio.run(scenario()))) == ["/faq/legal_status"]


def test_a_socket_cannot_speak_for_another_session(chat_servers: Supervisor) -> None:
    async def scenario() -> str:
        owner, intruder = await ChatClient.connect(), await ChatClient.connect()
        try:
            owners_session = await owner.start_session()
            intruders_session = await intruder.start_session()
            await intruder.say("/faq/legal_status", owners_session)
            assert (await intruder.next_error())["error"] == "session_mismatch"
            await intruder.say("/faq/legal_status", intruders_session)
            assert (await intruder.replies_until_buttons())[-1]["quick_replies"]
            assert owner.replies.empty()
        finally:
            await owner.close()
            await intruder.close()
        return owners_session

    assert user_texts(web(asyncio.run(scenario()))) == []


def test_a_message_before_the_session_is_confirmed_is_refused(chat_servers: Supervisor) -> None:
    async def scenario() -> None:
        client = await ChatClient.connect()
        try:
            await client.say("hello", None)
            assert (await client.next_error())["error"] == "no_session"
        finally:
            await client.close()

    asyncio.run(scenario())


def test_an_oversized_packet_drops_only_that_connection(chat_servers: Supervisor) -> None:
    async def scenario() -> tuple[str, str]:
        flooder = await ChatClient.connect()
        flooded_session = await flooder.start_session()
        await flooder.say("z" * (MAX_PACKET_BYTES + 1024), flooded_session)
        await asyncio.wait_for(flooder.closed.wait(), REPLY_WAIT_SECONDS)
        await flooder.close()

        client = await ChatClient.connect()
        try:
            session_id = await client.start_session()
            await client.say("/faq/legal_status", session_id)
            assert (await client.replies_until_buttons())[-1]["quick_replies"]
        finally:
            await client.close()
        return flooded_session, session_id

    flooded_session, session_id = asyncio.run(scenario())
    assert user_texts(web(flooded_session)) == []
    assert user_texts(web(session_id)) == ["/faq/legal_status"]


def rest(sender: str, message: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{RASA_PORT}/webhooks/rest/webhook",
        data=json.dumps({"sender": sender, "message": message}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=REPLY_WAIT_SECONDS) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_rest_channel_cannot_reach_a_widget_conversation(chat_servers: Supervisor) -> None:
    async def scenario() -> tuple[str, List[Dict[str, Any]]]:
        client = await ChatClient.connect()
        try:
            session_id = await client.start_session()
            await client.say("/faq/legal_status", session_id)
            await client.replies_until_buttons()
            for sender in (web(session_id), web(session_id).upper()):
                status, answer = rest(sender, "/restart")
                assert status == 400 and "belong to other channels" in answer["error"]
            # The bare session id is an unrelated REST conversation; nothing of it reaches the widget.
            status, answer = rest(session_id, "/faq/availability")
            assert status == 200 and answer
            await client.say("/faq/what_is_ptsd", session_id)
            replies = await client.replies_until_buttons()
            assert client.errors.empty()
        finally:
            await client.close()
        return session_id, replies

    session_id, replies = asyncio.run(scenario())
    assert user_texts(web(session_id)) == ["/faq/legal_status", "/faq/what_is_ptsd"]
    assert user_texts(session_id) == ["/faq/availability"]
    turn = "\n\n".join(bot_texts_of_last_turn(web(session_id)))
    assert all(reply["text"] and reply["text"] in turn for reply in replies)
