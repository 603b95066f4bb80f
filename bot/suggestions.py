"""The FAQ topics to offer when the assistant is unsure which answer fits ("Did you mean").

Pure functions over plain dictionaries (the NLU parse data of the last message
and the domain's responses), so they run inside the Rasa server, where
`bot.nlg.RegionalResponseGenerator` uses them, without the action server.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Text

RETRIEVAL_INTENT = "faq"
MAX_SUGGESTIONS = 3
MIN_SUGGESTIONS = 2
MIN_SUGGESTION_CONFIDENCE = 0.05

# The "Did you mean" response gets the closest topics put before its own
# buttons ("Something else"); with fewer than MIN_SUGGESTIONS it is replaced
# by the general topics. The words of both live in domain.yml.
DID_YOU_MEAN_RESPONSE = "utter_did_you_mean"
NO_SUGGESTIONS_RESPONSE = "utter_default"

Responses = Mapping[Text, Sequence[Mapping[Text, Any]]]


def topic_title(responses: Responses, intent_response_key: Text) -> Optional[Text]:
    """The short title kept with an FAQ answer's metadata, if the answer exists."""
    for variation in responses.get(f"utter_{intent_response_key}") or []:
        title = (variation.get("metadata") or {}).get("title")
        if title:
            return str(title)
    return None


def suggested_topics(parse_data: Optional[Mapping[Text, Any]], responses: Responses) -> List[Dict[Text, Any]]:
    """The closest FAQ answers to a message, best first, as buttons (at most MAX_SUGGESTIONS).

    Reads the response selector's ranking that the NLU left on the message
    (`response_selector.faq`, or `default` when the selector is not named);
    skips answers below MIN_SUGGESTION_CONFIDENCE and answers without a title.
    """
    selectors = (parse_data or {}).get("response_selector") or {}
    selected = selectors.get(RETRIEVAL_INTENT) or selectors.get("default") or {}
    buttons: List[Dict[Text, Any]] = []
    for candidate in selected.get("ranking") or []:
        key = candidate.get("intent_response_key")
        if not key or float(candidate.get("confidence") or 0.0) < MIN_SUGGESTION_CONFIDENCE:
            continue
        title = topic_title(responses, key)
        if title:
            buttons.append({"title": title, "payload": f"/{key}"})
        if len(buttons) == MAX_SUGGESTIONS:
            break
    return buttons


def enough_to_suggest(topics: Sequence[Mapping[Text, Any]]) -> bool:
    """Whether there are enough close topics to ask "Did you mean" (else offer the general ones)."""
    return len(topics) >= MIN_SUGGESTIONS
