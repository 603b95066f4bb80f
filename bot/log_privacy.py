"""Keeps people's words, contact details and secrets out of every log line, ours and the libraries'.

Every process of the assistant (Rasa server, action server, delivery worker,
console, command line) calls ``install()`` first. It puts one ``LogRedactor``
in front of every log record the process makes, whatever the logger or
handler: Python's logging has no single place where all records pass (Sanic's
loggers do not propagate, Rasa adds handlers late), so the redactor runs where
records are made (``logging.setLogRecordFactory``). Structlog events (Rasa
3.6 logs parsed messages with it) are redacted field by field first, and
warnings (Rasa warns with the text of messages that start with "/") become
log records too.

What is redacted, in every message, traceback and structlog field:

- the recent messages people sent to this process (a bounded set, registered
  where messages enter: ``remember_text``), wherever they appear;
- email addresses and phone numbers (linear-time patterns, google-re2);
- the parameters SQLAlchemy prints with a failed statement (the transcript,
  contact details), the body Rasa prints when the action server refuses a
  call, the arguments of Rasa's "Failed to parse arguments" warning;
- secrets: the tokens this process was given (``remember_secret``),
  ``token=...`` query parameters and ``Bearer`` credentials.

Also in ``install()``: the process's umask becomes 077, so every database,
spool file and log it creates is readable by its owner only.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, MutableMapping, Optional, Tuple

import re2

REDACTED = "[redacted]"
OWNER_ONLY_UMASK = 0o077
RECENT_TEXTS = 1024
# Shorter messages ("ok", "yes", "2") are everywhere in ordinary log lines; they carry no one's story.
MIN_TEXT_LENGTH = 6
MIN_PHONE_DIGITS = 7

# Structlog fields that hold what people wrote (Rasa's own list of anonymizable keys, and ours).
SENSITIVE_FIELDS = frozenset(
    {
        "text", "response_text", "user_text", "slot_values", "parse_data_text", "parse_data_entities",
        "prediction_events", "tracker_latest_message", "prefilled_slots", "message", "response",
        "slot_candidates", "rasa_event", "rasa_events", "tracker_states", "current_states", "old_states",
        "successes", "current_entity", "next_entity", "states", "entity", "token_text", "user_message",
        "json_message", "transcript", "contact_value", "events", "tracker", "body", "request_body",
    }
)

_EMAIL = re2.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A digit run with phone separators, not glued to a word (ids, UUIDs, versions stay).
_PHONE = re2.compile(r"(^|[^\w.:/-])(\+?\(?\d[\d .()-]{5,}\d)")
_DATE = re2.compile(r"^\d{4}-\d\d-\d\d")
_DOTTED = re2.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$|^\d+\.\d+$")  # an IPv4 address, a decimal number
# Fragments the libraries print with what people wrote or a secret in them: (pattern, replacement).
_FRAGMENTS: Tuple[Tuple[Any, str], ...] = (
    # SQLAlchemy: "[parameters: (...)]" of a failed statement, one line (reprs escape newlines).
    (re2.compile(r"\[parameters: [^\n]*\]"), "[parameters: " + REDACTED + "]"),
    # PostgreSQL error details quote the offending values.
    (re2.compile(r"(DETAIL: )[^\n]*"), r"\1" + REDACTED),
    # rasa.utils.endpoints.ClientResponseError: "<status>, <reason>, body='<reply>'".
    (re2.compile(r"(?s)body='.*'"), "body=" + REDACTED),
    (re2.compile(r"(?s)body=b'.*'"), "body=" + REDACTED),
    # Rasa's warning about an intent payload ("/intent ...") it could not parse quotes the message.
    (re2.compile(r"(?s)Failed to parse arguments in line '.*?'\. .*?Continuing without .*"),
     "Failed to parse arguments of a message starting with '/' (" + REDACTED + ")."),
    # Slot values Rasa validates (contact details among them).
    (re2.compile(r"(?s)(Validating extracted slots: ).*"), r"\1" + REDACTED),
    # Secrets in URLs and headers.
    (re2.compile(r"(?i)([?&](?:token|auth_token|access_token|api_key|key|secret)=)[^&\s'\"]+"), r"\1" + REDACTED),
    (re2.compile(r"(?i)(Bearer\s+)[^\s'\",]+"), r"\1" + REDACTED),
)


def _redact_phone(match: Any) -> str:
    candidate = match.group(2)
    digits = sum(ch.isdigit() for ch in candidate)
    # A bare run of 7-8 digits is more often a process id or a count than a phone number.
    separated = candidate.startswith("+") or not candidate.isdigit()
    if digits < MIN_PHONE_DIGITS or not (separated or digits >= 9):
        return str(match.group(0))
    if _DATE.search(candidate) or _DOTTED.search(candidate.strip()):
        return str(match.group(0))
    return str(match.group(1)) + REDACTED


class LogRedactor(logging.Filter):
    """A logging filter that rewrites a record so that it no longer holds a person's words or a secret."""

    def __init__(self, recent_texts: int = RECENT_TEXTS) -> None:
        """An empty redactor: patterns only, until texts and secrets are remembered."""
        super().__init__()
        self._capacity = recent_texts
        self._texts: "OrderedDict[str, None]" = OrderedDict()
        self._secrets: List[str] = []
        self._lock = threading.Lock()

    def remember_text(self, text: Optional[str]) -> None:
        """Registers a message a person sent, so that it is redacted wherever it turns up."""
        if not isinstance(text, str):
            return
        text = text.strip()
        if len(text) < MIN_TEXT_LENGTH:
            return
        with self._lock:
            self._texts[text] = None
            self._texts.move_to_end(text)
            while len(self._texts) > self._capacity:
                self._texts.popitem(last=False)

    def remember_secret(self, secret: Optional[str]) -> None:
        """Registers a secret (a token) that must never be printed."""
        if secret and len(secret) >= 4 and secret not in self._secrets:
            with self._lock:
                self._secrets.append(secret)

    def redact(self, text: str) -> str:
        """The text with people's words, contact details and secrets replaced by [redacted]."""
        if not text:
            return text
        with self._lock:
            known = list(self._secrets) + list(reversed(self._texts))
        # Longest first, so a message that contains another remembered one goes whole.
        for value in sorted((v for v in known if v in text), key=len, reverse=True):
            text = text.replace(value, REDACTED)
        for pattern, replacement in _FRAGMENTS:
            text = pattern.sub(replacement, text)
        text = _EMAIL.sub(REDACTED, text)
        return str(_PHONE.sub(_redact_phone, text))

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrites the record's message, traceback and stack in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  # a malformed call still gets logged, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg = self.redact(message)
        record.args = ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self.redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True

    def redact_event_dict(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """A structlog processor: sensitive fields replaced, every other text field redacted."""
        for key, value in list(event_dict.items()):
            if key in SENSITIVE_FIELDS and value not in (None, "", [], {}):
                event_dict[key] = REDACTED
            elif isinstance(value, str):
                event_dict[key] = self.redact(value)
            elif key not in ("exc_info",) and isinstance(value, (dict, list, tuple)):
                event_dict[key] = self.redact(repr(value))
        return event_dict


_redactor = LogRedactor()
_installed_factory: Optional[Callable[..., logging.LogRecord]] = None


def redactor() -> LogRedactor:
    """The process's one redactor."""
    return _redactor


def remember_text(text: Optional[str]) -> None:
    """Registers a message a person sent to this process (see LogRedactor.remember_text)."""
    _redactor.remember_text(text)


def remember_texts(texts: Iterable[Optional[str]]) -> None:
    """Registers several messages."""
    for text in texts:
        _redactor.remember_text(text)


def install(secrets: Iterable[Optional[str]] = (), level: Optional[int] = None) -> LogRedactor:
    """Makes this process's logs private: redactor on every record, structlog and warnings routed, umask 077.

    Idempotent. `level`, if given, configures the root logger (``logging.basicConfig``)
    for processes that have no logging set up of their own.
    """
    global _installed_factory
    os.umask(OWNER_ONLY_UMASK)
    for secret in secrets:
        _redactor.remember_secret(secret)
    if _installed_factory is None or logging.getLogRecordFactory() is not _installed_factory:
        previous = logging.getLogRecordFactory()

        def make_redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redactor.filter(record)
            return record

        logging.setLogRecordFactory(make_redacted_record)
        _installed_factory = make_redacted_record
    logging.captureWarnings(True)
    if level is not None:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    _install_structlog()
    return _redactor


def _install_structlog() -> None:
    """Structlog events pass the redactor, in Rasa's configuration and in ours."""
    import structlog

    try:
        import rasa.utils.log_utils as rasa_log_utils
    except ImportError:  # pragma: no cover  # the action server's environment has Rasa too
        rasa_log_utils = None
    if rasa_log_utils is not None:
        # Rasa's configure_structlog() puts its `_anonymizer` first in every
        # event's processors; without Rasa Pro it does nothing.
        rasa_log_utils._anonymizer = _redactor.redact_event_dict  # type: ignore[assignment]
    # Until Rasa configures structlog (or in processes where it never does),
    # events go through the redactor to Python's logging, not straight to stdout.
    structlog.configure(
        processors=[
            _redactor.redact_event_dict,
            structlog.processors.add_log_level,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )


def install_rasa_message_hook() -> None:
    """Registers every message that enters Rasa (``UserMessage``) with the redactor.

    Relies on ``rasa.core.channels.channel.UserMessage.__init__`` (Rasa 3.6),
    through which every channel passes a person's text.
    """
    from rasa.core.channels.channel import UserMessage

    init = UserMessage.__init__
    if getattr(init, "remembers_text", False):
        return

    def remembering_init(self: UserMessage, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _redactor.remember_text(self.text)

    remembering_init.remembers_text = True  # type: ignore[attr-defined]
    UserMessage.__init__ = remembering_init  # type: ignore[method-assign]


def texts_in_action_call(action_call: Dict[str, Any]) -> List[str]:
    """The people's words in an action server call: their messages (contact details come in those)."""
    tracker = action_call.get("tracker") if isinstance(action_call, dict) else None
    if not isinstance(tracker, dict):
        return []
    texts: List[str] = []
    latest = tracker.get("latest_message")
    if isinstance(latest, dict) and isinstance(latest.get("text"), str):
        texts.append(latest["text"])
    events = tracker.get("events")
    if isinstance(events, list):
        texts.extend(e["text"] for e in events if isinstance(e, dict) and isinstance(e.get("text"), str)
                     and e.get("event") == "user")
    return texts
