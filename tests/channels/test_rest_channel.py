"""The REST webhook's request validation: bad bodies get a clear error, text is cleaned."""

from __future__ import annotations

import asyncio
import json
import uuid
import warnings
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from bot.channels.metadata import MAX_METADATA_BYTES, MAX_METADATA_DEPTH, metadata_depth
from bot.channels.rest import (
    MAX_BODY_BYTES,
    MAX_SENDER_CHARS,
    InvalidRestRequest,
    ValidatingRestInput,
    parse_rest_request,
)
from bot.channels.text import MAX_MESSAGE_CHARS, clean_user_text


def _body(document: Any) -> bytes:
    return json.dumps(document).encode("utf-8")


@pytest.mark.parametrize(
    "body, expected",
    [
        pytest.param(
            _body({"message": "is mdma legal?", "sender": "u"}),
            {"message": "is mdma legal?", "sender": "u", "metadata": None},
            id="message and sender",
        ),
        pytest.param(
            _body({"message": "hi", "sender": "user-1", "metadata": {"region": "UK"}}),
            {"message": "hi", "sender": "user-1", "metadata": {"region": "UK"}},
            id="all fields",
        ),
        pytest.param(
            _body({"message": "", "sender": "user-1"}),
            {"message": "", "sender": "user-1", "metadata": None},
            id="empty message",
        ),
        pytest.param(
            _body({"message": "x" * MAX_MESSAGE_CHARS, "sender": "s" * MAX_SENDER_CHARS}),
            {"message": "x" * MAX_MESSAGE_CHARS, "sender": "s" * MAX_SENDER_CHARS, "metadata": None},
            id="longest allowed",
        ),
        pytest.param(
            _body({"message": "¿Qué es? 🙂", "sender": "u", "metadata": {}}),
            {"message": "¿Qué es? 🙂", "sender": "u", "metadata": {}},
            id="unicode",
        ),
        pytest.param(
            _body({"message": "hi", "sender": "u", "metadata": None}),
            {"message": "hi", "sender": "u", "metadata": None},
            id="explicit null metadata",
        ),
    ],
)
def test_valid_requests(body: bytes, expected: dict):
    assert parse_rest_request(body) == expected


@pytest.mark.parametrize(
    "body, error",
    [
        pytest.param(b"", "JSON object", id="empty body"),
        pytest.param(b"{not json", "JSON object", id="malformed JSON"),
        pytest.param(b'{"message": "hi"', "JSON object", id="truncated JSON"),
        pytest.param(b'[{"message": "hi"}]', "JSON object", id="JSON array"),
        pytest.param(b'"hi"', "JSON object", id="JSON string"),
        pytest.param(b"null", "JSON object", id="JSON null"),
        pytest.param(b'{"message": "caf\xe9"}', "JSON object", id="invalid UTF-8"),
        pytest.param(b"\xff\xfe{}", "JSON object", id="binary"),
        pytest.param(_body({"sender": "user-1"}), '"message" is required', id="missing message"),
        pytest.param(_body({"message": 123}), '"message" is required', id="number message"),
        pytest.param(_body({"message": None}), '"message" is required', id="null message"),
        pytest.param(_body({"message": ["hi"]}), '"message" is required', id="list message"),
        pytest.param(_body({"message": {"text": "hi"}}), '"message" is required', id="object message"),
        pytest.param(_body({"message": True}), '"message" is required', id="boolean message"),
        pytest.param(
            _body({"message": "x" * (MAX_MESSAGE_CHARS + 1)}), f"longer than {MAX_MESSAGE_CHARS}", id="too long"
        ),
        pytest.param(_body({"message": "hi"}), '"sender" is required', id="missing sender"),
        pytest.param(_body({"message": "hi", "sender": None}), '"sender" is required', id="null sender"),
        pytest.param(_body({"message": "hi", "sender": 42}), '"sender" is required', id="number sender"),
        pytest.param(_body({"message": "hi", "sender": ["a"]}), '"sender" is required', id="list sender"),
        pytest.param(_body({"message": "hi", "sender": ""}), '"sender" is required', id="empty sender"),
        pytest.param(_body({"message": "hi", "sender": "   "}), '"sender" is required', id="blank sender"),
        pytest.param(
            _body({"message": "hi", "sender": "s" * (MAX_SENDER_CHARS + 1)}), '"sender" is required', id="long sender"
        ),
        pytest.param(
            _body({"message": "hi", "sender": "u", "metadata": "x"}), '"metadata" must be', id="string metadata"
        ),
        pytest.param(
            _body({"message": "hi", "sender": "u", "metadata": [1]}), '"metadata" must be', id="list metadata"
        ),
        pytest.param(
            _body({"message": "hi", "sender": "u", "metadata": 3}), '"metadata" must be', id="number metadata"
        ),
    ],
)
def test_invalid_requests(body: bytes, error: str):
    with pytest.raises(InvalidRestRequest, match=error):
        parse_rest_request(body)


@pytest.mark.parametrize(
    "sender",
    [
        "telegram:123",
        "twilio:+15551234567",
        "whatsapp:+15551234567",
        "slack:U1",
        "facebook:1",
        "web:" + "a" * 32,
        "TELEGRAM:123",
        " web:x",
    ],
)
def test_senders_of_other_channels_are_refused(sender: str):
    with pytest.raises(InvalidRestRequest, match="belong to other channels"):
        parse_rest_request(_body({"message": "/restart", "sender": sender}))


@pytest.mark.parametrize("sender", ["123", "+15551234567", "U1", "demo-1", "api:client-7"])
def test_other_senders_are_kept_exactly(sender: str):
    assert parse_rest_request(_body({"message": "hi", "sender": sender}))["sender"] == sender


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"level": value}
    return value


@pytest.mark.parametrize(
    "metadata, accepted",
    [
        pytest.param({}, True, id="empty"),
        pytest.param({"page": "/faq", "region": "UK"}, True, id="flat"),
        pytest.param(_nested(MAX_METADATA_DEPTH), True, id="deepest allowed"),
        pytest.param({"list": [[1]]}, True, id="lists count as levels, within"),
        pytest.param(_nested(MAX_METADATA_DEPTH + 1), False, id="too deep"),
        pytest.param({"list": [[[1]]]}, False, id="lists count as levels, beyond"),
        pytest.param({"k": "x" * (MAX_METADATA_BYTES - 10)}, True, id="largest allowed"),
        pytest.param({"k": "x" * MAX_METADATA_BYTES}, False, id="too large"),
        pytest.param({"k": "é" * (MAX_METADATA_BYTES // 2)}, False, id="too large in UTF-8 bytes"),
    ],
)
def test_metadata_limits(metadata: dict, accepted: bool):
    body = _body({"message": "hi", "sender": "u", "metadata": metadata})
    if accepted:
        assert parse_rest_request(body)["metadata"] == metadata
    else:
        with pytest.raises(InvalidRestRequest, match=f"{MAX_METADATA_DEPTH} levels|{MAX_METADATA_BYTES} bytes"):
            parse_rest_request(body)


def test_metadata_depth():
    assert [metadata_depth(v) for v in (1, {}, {"a": 1}, {"a": [1]}, [[[]]], _nested(50))] == [0, 1, 1, 2, 3, 50]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply nested JSON"),
        pytest.param(
            b'{"message": "hi", "sender": "u", "metadata": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001,
            id="deeply nested metadata",
        ),
        pytest.param(_body({"message": "x", "sender": "u", "pad": "p" * MAX_BODY_BYTES}), id="body too large"),
    ],
)
def test_hostile_bodies_are_refused(body: bytes):
    with pytest.raises(InvalidRestRequest):
        parse_rest_request(body)


def test_errors_never_echo_the_body():
    secret = "my private words"

    with pytest.raises(InvalidRestRequest) as raised:
        parse_rest_request(_body({"message": secret, "metadata": secret}))

    assert secret not in str(raised.value)


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        pytest.param("hi\x00there", "hi there", id="NUL"),
        pytest.param("a\x07b\x1bc", "a b c", id="bell and escape"),
        pytest.param("line one\nline two", "line one\nline two", id="newline kept"),
        pytest.param("col\tcol", "col\tcol", id="tab kept"),
        pytest.param("a\r\nb", "a \nb", id="carriage return"),
        pytest.param("a\u200bb", "a b", id="zero-width space"),
        pytest.param("a\u202eb", "a b", id="right-to-left override"),
        pytest.param("a\ud800b", "a b", id="lone surrogate"),
        pytest.param("cafe\u0301", "café", id="NFC"),
        pytest.param("I want to die\x00", "I want to die ", id="risk text intact"),
    ],
)
def test_message_text_is_cleaned(raw: str, cleaned: str):
    parsed = parse_rest_request(_body({"message": raw, "sender": "u"}))

    assert parsed["message"] == cleaned
    assert clean_user_text(raw) == cleaned


def test_long_text_is_not_truncated():
    text = "word " * (MAX_MESSAGE_CHARS // 5)

    assert parse_rest_request(_body({"message": text, "sender": "u"}))["message"] == text


# --- The webhook itself, driven in-process over ASGI ------------------------------------


class _Webhook:
    """The channel's blueprint on a fresh Sanic app, with a fake Rasa behind it."""

    def __init__(self, reply: str = "hello back", fail: bool = False) -> None:
        Sanic.test_mode = True
        self.received: list[UserMessage] = []
        self._reply = reply
        self._fail = fail
        self.app = Sanic(f"rest_channel_test_{uuid.uuid4().hex}")
        self.app.blueprint(ValidatingRestInput().blueprint(self._on_new_message), url_prefix="/webhooks/rest")

    async def _on_new_message(self, message: UserMessage) -> None:
        self.received.append(message)
        await message.output_channel.send_text_message(message.sender_id, self._reply)
        if self._fail:
            raise RuntimeError("the assistant failed after replying")

    def post(self, body: bytes) -> tuple[int, Any]:
        return asyncio.run(self._request("POST", "/webhooks/rest/webhook", body))

    def get(self, path: str) -> tuple[int, Any]:
        return asyncio.run(self._request("GET", path, b""))

    async def _request(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        to_app: asyncio.Queue = asyncio.Queue()
        from_app: asyncio.Queue = asyncio.Queue()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lifespan = asyncio.ensure_future(self.app({"type": "lifespan"}, to_app.get, from_app.put))
            await to_app.put({"type": "lifespan.startup"})
            assert (await asyncio.wait_for(from_app.get(), 10))["type"] == "lifespan.startup.complete"
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": method,
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
                "client": ("127.0.0.1", 50000),
                "server": ("test", 80),
            }
            requests = [{"type": "http.request", "body": body, "more_body": False}]
            started: dict = {}
            chunks: list[bytes] = []

            async def receive() -> dict:
                return requests.pop(0) if requests else {"type": "http.disconnect"}

            async def send(message: dict) -> None:
                if message["type"] == "http.response.start":
                    started.update(message)
                elif message["type"] == "http.response.body":
                    chunks.append(message.get("body", b""))

            await self.app(scope, receive, send)
            lifespan.cancel()
        return started["status"], json.loads(b"".join(chunks))


def test_webhook_answers_a_valid_message_with_cleaned_text():
    webhook = _Webhook(reply="hello back")

    status, reply = webhook.post(_body({"message": "hi\x00there", "sender": "user-1", "metadata": {"a": 1}}))

    assert status == 200
    assert reply == [{"recipient_id": "user-1", "text": "hello back"}]
    [message] = webhook.received
    assert (message.text, message.sender_id, message.input_channel) == ("hi there", "user-1", "rest")
    assert message.metadata == {"a": 1}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'[{"message": "secret words"}]', id="JSON array"),
        pytest.param(b'{"message": "secret words"', id="malformed JSON"),
        pytest.param(_body({"text": "secret words"}), id="missing message"),
        pytest.param(_body({"message": "secret words", "sender": 5}), id="bad sender"),
    ],
)
def test_webhook_rejects_bad_requests_with_400_and_no_echo(body: bytes):
    webhook = _Webhook()

    status, reply = webhook.post(body)

    assert status == 400
    assert set(reply) == {"error"}
    assert "secret words" not in json.dumps(reply)
    assert webhook.received == []


@pytest.mark.parametrize(
    "body, error",
    [
        pytest.param(_body({"message": "hi", "sender": "telegram:123"}), "belong to other channels", id="prefix"),
        pytest.param(_body({"message": "hi", "sender": "u", "metadata": _nested(9)}), "levels deep", id="deep"),
        pytest.param(
            _body({"message": "hi", "sender": "u", "metadata": {"k": "x" * 4000}}), "bytes as JSON", id="large"
        ),
    ],
)
def test_webhook_names_the_rule_a_request_breaks(body: bytes, error: str):
    webhook = _Webhook()

    status, reply = webhook.post(body)

    assert status == 400
    assert error in reply["error"]
    assert webhook.received == []


def test_webhook_returns_what_was_collected_when_the_assistant_fails():
    webhook = _Webhook(reply="call 911 now", fail=True)

    status, reply = webhook.post(_body({"message": "help", "sender": "user-1"}))

    assert status == 200
    assert reply == [{"recipient_id": "user-1", "text": "call 911 now"}]


def test_health_route():
    assert _Webhook().get("/webhooks/rest/") == (200, {"status": "ok"})
