"""Checks that a webhook request really comes from the platform that signs it."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Optional

from twilio.request_validator import RequestValidator


def secret_token_matches(expected: str, received: Optional[str]) -> bool:
    """Telegram's X-Telegram-Bot-Api-Secret-Token equals the configured secret."""
    return bool(received) and hmac.compare_digest(expected.encode("utf-8"), (received or "").encode("utf-8"))


def twilio_signature_is_valid(auth_token: str, url: str, params: Any, signature: Optional[str]) -> bool:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the webhook URL followed by the sorted POST parameters.

    Args:
        auth_token: The account's auth token (the signing key).
        url: The public URL Twilio called, exactly as configured in the console.
        params: The form parameters; a mapping with `getlist` (Sanic's form)
            keeps repeated parameters.
        signature: The received header, if any.
    """
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


_META_HEADERS = (("X-Hub-Signature-256", "sha256", hashlib.sha256), ("X-Hub-Signature", "sha1", hashlib.sha1))


def meta_signature_is_valid(app_secret: str, body: bytes, headers: Any) -> bool:
    """X-Hub-Signature-256 (or, only when it is absent, X-Hub-Signature) is the app secret's HMAC of the body.

    The algorithm comes from the header name, never from the header value, so
    a sender cannot pick a weaker one.
    """
    for header, prefix, digest in _META_HEADERS:
        received = headers.get(header)
        if received:
            expected = f"{prefix}=" + hmac.new(app_secret.encode("utf-8"), body, digest).hexdigest()
            return hmac.compare_digest(expected.encode("utf-8"), received.strip().lower().encode("utf-8"))
    return False
