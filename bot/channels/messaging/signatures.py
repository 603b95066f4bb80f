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


def meta_signature_is_valid(app_secret: str, body: bytes, headers: Any, allow_sha1: bool = False) -> bool:
    """X-Hub-Signature-256 is the app secret's HMAC-SHA256 of the body.

    X-Hub-Signature (HMAC-SHA1) counts only when X-Hub-Signature-256 is
    absent (not merely empty) and `allow_sha1` is set. The algorithm comes
    from the header name, never from the header value, so a sender cannot
    pick a weaker one.
    """
    sha256 = headers.get("X-Hub-Signature-256")
    if sha256 is not None:
        return _hmac_matches(app_secret, body, sha256, "sha256", hashlib.sha256)
    sha1 = headers.get("X-Hub-Signature")
    if allow_sha1 and sha1 is not None:
        return _hmac_matches(app_secret, body, sha1, "sha1", hashlib.sha1)
    return False


def _hmac_matches(app_secret: str, body: bytes, received: str, prefix: str, digest: Any) -> bool:
    if not received:
        return False
    expected = f"{prefix}=" + hmac.new(app_secret.encode("utf-8"), body, digest).hexdigest()
    return hmac.compare_digest(expected.encode("utf-8"), received.strip().lower().encode("utf-8"))
