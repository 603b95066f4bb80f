"""The output channels: message splitting, API base URLs and Messenger's button limits."""

from __future__ import annotations

import asyncio
from typing import Any, List, Tuple

import pytest

from bot.channels.messaging.facebook import ChoicesMessengerBot, GraphApiClient
from bot.channels.messaging.slack import SlackApiBot
from bot.channels.messaging.telegram import TelegramBotOutput, VerifiedTelegramInput
from bot.channels.messaging.twilio import MAX_BODY_CHARS, NumberedChoicesTwilioOutput, message_bodies

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "fedcba9876543210" * 2


@pytest.mark.parametrize(
    ("text", "bodies"),
    [
        ("One paragraph.", ["One paragraph."]),
        ("First.\n\nSecond.", ["First.\n\nSecond."]),
        ("  \n\nOnly this.\n\n  ", ["Only this."]),
        ("a" * 1000 + "\n\n" + "b" * 1000, ["a" * 1000, "b" * 1000]),
        ("word " * 500, None),
    ],
    ids=["short", "paragraphs-together", "blank-parts", "split-between-paragraphs", "long-paragraph"],
)
def test_message_bodies(text: str, bodies: Any) -> None:
    result = message_bodies(text)
    if bodies is not None:
        assert result == bodies
    assert all(0 < len(body) <= MAX_BODY_CHARS for body in result)
    assert " ".join(" ".join(result).split()) == " ".join(text.split())


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (None, "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"),
        ("http://127.0.0.1:9/twilio", "http://127.0.0.1:9/twilio/2010-04-01/Accounts/AC1/Messages.json"),
        ("http://127.0.0.1:9/twilio/", "http://127.0.0.1:9/twilio/2010-04-01/Accounts/AC1/Messages.json"),
    ],
)
def test_twilio_api_base_url(base: Any, expected: str) -> None:
    output = NumberedChoicesTwilioOutput(SID, TOKEN, "+15005550006", base)
    assert output.get_hostname("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json") == expected


def test_telegram_and_slack_api_base_urls() -> None:
    telegram = TelegramBotOutput("7012345678:AAFakeToken", api_base_url="http://127.0.0.1:9/telegram/")
    assert telegram.server.api_url("T", "sendMessage") == "http://127.0.0.1:9/telegram/botT/sendMessage"
    assert "api.telegram.org" in TelegramBotOutput("7012345678:AAFakeToken").server.api_url("T", "getMe")
    assert SlackApiBot("xoxb-1", api_base_url="http://127.0.0.1:9/slack/api").client.base_url == (
        "http://127.0.0.1:9/slack/api/"
    )
    assert SlackApiBot("xoxb-1").client.base_url == "https://slack.com/api/"
    assert GraphApiClient("EAA", "http://127.0.0.1:9/facebook/v19.0/").graph_url == "http://127.0.0.1:9/facebook/v19.0"


class RecordingMessengerClient:
    """Stands in for fbmessenger's client: records what would be posted to the Send API."""

    def __init__(self) -> None:
        self.sent: List[Tuple[Any, str]] = []

    async def send(self, payload: Any, recipient_id: str, messaging_type: str = "RESPONSE", **kwargs: Any) -> None:
        self.sent.append((payload, recipient_id))


def send_buttons(buttons: List[dict], text: str = "Pick one") -> Any:
    client = RecordingMessengerClient()
    asyncio.run(ChoicesMessengerBot(client).send_text_with_buttons("psid-1", text, buttons))  # type: ignore[arg-type]
    assert len(client.sent) == 1
    return client.sent[0][0]


def test_short_titles_use_messengers_button_template() -> None:
    payload = send_buttons([{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}])
    template = payload["attachment"]["payload"]
    assert template["template_type"] == "button"
    assert [(b["title"], b["type"]) for b in template["buttons"]] == [("Yes", "postback"), ("No", "postback")]


@pytest.mark.parametrize(
    "buttons",
    [
        [{"title": "What Breakthrough Therapy means", "payload": "/faq/breakthrough_therapy_designation"}],
        [{"title": f"Topic {n}", "payload": f"/faq/t{n}"} for n in range(4)],
    ],
    ids=["long-title", "four-buttons"],
)
def test_buttons_messenger_cannot_show_become_numbered_quick_replies(buttons: List[dict]) -> None:
    payload = send_buttons(buttons)
    lines = payload["text"].split("\n\n", 1)[1].split("\n")
    assert lines == [f"{n}. {b['title']}" for n, b in enumerate(buttons, start=1)]
    assert payload["quick_replies"] == [
        {"content_type": "text", "title": str(n), "payload": b["payload"]} for n, b in enumerate(buttons, start=1)
    ]


def test_an_unreachable_telegram_api_at_start_up_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    channel = VerifiedTelegramInput(
        "7012345678:AAFakeToken",
        "mdma_info_test_bot",
        "https://assistant.example.org/webhooks/telegram/webhook",
        api_base_url="http://127.0.0.1:9/telegram",  # nothing listens on the discard port
    )
    asyncio.run(channel._register_webhook())
    assert "Could not register the Telegram webhook" in caplog.text
    assert "AAFakeToken" not in caplog.text


def test_messenger_replies_go_to_the_psid_of_the_conversation() -> None:
    client = RecordingMessengerClient()
    output = ChoicesMessengerBot(client)  # type: ignore[arg-type]

    async def scenario() -> None:
        await output.send_response("facebook:2450001", {"text": "First.\n\nSecond."})
        # A custom payload cannot send to someone else.
        await output.send_response("facebook:2450001", {"custom": {"text": "card", "sender": {"id": "999"}}})
        # A conversation from before prefixes existed keeps its id.
        await output.send_response("2450002", {"text": "Old."})

    asyncio.run(scenario())
    assert [(payload.get("text"), recipient) for payload, recipient in client.sent] == [
        ("First.", "2450001"),
        ("Second.", "2450001"),
        ("card", "2450001"),
        ("Old.", "2450002"),
    ]


def test_messengers_blocking_send_is_not_available() -> None:
    with pytest.raises(NotImplementedError):
        ChoicesMessengerBot(RecordingMessengerClient()).send("1", object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ids", "address_scheme", "conversation_id", "to"),
    [
        ("sms", "", "twilio:+15550001111", "+15550001111"),
        ("whatsapp", "whatsapp:", "whatsapp:+15550001111", "whatsapp:+15550001111"),
    ],
)
def test_twilio_replies_go_to_the_number_as_twilio_addresses_it(
    ids: str, address_scheme: str, conversation_id: str, to: str
) -> None:
    from bot.channels.conversation_ids import TWILIO_SMS, TWILIO_WHATSAPP

    output = NumberedChoicesTwilioOutput(
        SID,
        TOKEN,
        "+15005550006",
        conversation_ids=TWILIO_SMS if ids == "sms" else TWILIO_WHATSAPP,
        address_scheme=address_scheme,
    )
    sent: List[dict] = []

    async def record(message_data: dict) -> None:
        sent.append(message_data)

    output._send_message = record  # type: ignore[method-assign]
    asyncio.run(output.send_response(conversation_id, {"text": "Hello."}))
    assert [message["to"] for message in sent] == [to]
