"""Conversation ids that belong to their channel: `<prefix>:<platform id>`.

Rasa keys a conversation by its sender id alone, whatever channel it came
from. Were a Telegram chat stored as "123" and an SMS as "+1555...", anyone
who knows that chat id or phone number could write into the person's
conversation through the REST channel (restart it, change the contact details
of an escalation, raise one in their name). So every channel except REST
stores `<prefix>:<platform id>` ("telegram:123", "twilio:+1555...",
"web:<session id>"), its output channel strips the prefix again before
talking to the platform, and the REST channel refuses any sender that starts
with one of these prefixes. A REST conversation keeps exactly the sender its
caller chose.

The prefixes are defined here only; channels import their `ConversationIds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Text, Tuple

from rasa.core.channels.channel import OutputChannel


@dataclass(frozen=True)
class ConversationIds:
    """How one channel turns platform ids into conversation ids and back."""

    prefix: str

    def conversation_id(self, platform_id: Any) -> str:
        """The Rasa sender id for a platform's user, chat or session id."""
        return f"{self.prefix}:{platform_id}"

    def platform_id(self, conversation_id: Text) -> Text:
        """The platform id a conversation's replies go to.

        An id without this channel's prefix (a conversation started before
        prefixes existed) is already a platform id and is returned as it is.
        """
        head = f"{self.prefix}:"
        return conversation_id[len(head) :] if conversation_id.startswith(head) else conversation_id


TWILIO_SMS = ConversationIds("twilio")
# Twilio addresses WhatsApp users as "whatsapp:+1555...": the conversation id is
# that address, and the platform id is the number after the scheme.
TWILIO_WHATSAPP = ConversationIds("whatsapp")
TELEGRAM = ConversationIds("telegram")
SLACK = ConversationIds("slack")
FACEBOOK = ConversationIds("facebook")
WEB_WIDGET = ConversationIds("web")

# Rasa channel name -> its ids. Every channel but REST is listed.
BY_CHANNEL: Dict[str, ConversationIds] = {
    "twilio": TWILIO_SMS,
    "twilio_whatsapp": TWILIO_WHATSAPP,
    "telegram": TELEGRAM,
    "slack": SLACK,
    "facebook": FACEBOOK,
    "socketio": WEB_WIDGET,
}

RESERVED_PREFIXES: Tuple[str, ...] = tuple(sorted(f"{ids.prefix}:" for ids in BY_CHANNEL.values()))


def is_reserved(sender: Text) -> bool:
    """Whether a sender id names another channel's conversation (any case: stores may not tell them apart)."""
    return sender.strip().lower().startswith(RESERVED_PREFIXES)


class ChannelRecipientOutput(OutputChannel):
    """An output channel that sends a conversation's replies to its platform id.

    Rasa passes the conversation id (`tracker.sender_id`) as `recipient_id`
    to `send_response`, for replies in a turn and for messages it sends on
    its own (reminders, /conversations/<id>/trigger_intent). Listed before
    the platform's output class, this strips the channel's prefix there.
    """

    conversation_ids: ConversationIds

    async def send_response(self, recipient_id: Text, message: Dict[Text, Any]) -> None:
        """Sends `message` to the platform id of conversation `recipient_id`."""
        await super().send_response(self.conversation_ids.platform_id(recipient_id), message)
