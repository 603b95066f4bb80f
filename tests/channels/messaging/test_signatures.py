"""The signature checks, against signatures computed the way each platform documents."""

from __future__ import annotations

from typing import Dict, Optional

import pytest

from bot.channels.messaging.signatures import meta_signature_is_valid, secret_token_matches, twilio_signature_is_valid

from .signing import meta_signature, twilio_signature

APP_SECRET = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
BODY = b'{"object":"page","entry":[]}'
AUTH_TOKEN = "fedcba9876543210" * 2
URL = "https://assistant.example.org/webhooks/twilio/webhook"
PARAMS = {"Body": "is mdma therapy legal?", "From": "+15551234567", "To": "+15005550006", "ToCity": ""}


class FormLike(dict):
    """A form with `getlist`, like Sanic's RequestParameters."""

    def getlist(self, name: str) -> list:
        return self[name]


def form(params: Dict[str, str]) -> FormLike:
    return FormLike({key: [value] for key, value in params.items()})


@pytest.mark.parametrize(
    ("headers", "valid"),
    [
        ({"X-Hub-Signature-256": meta_signature(APP_SECRET, BODY)}, True),
        ({"X-Hub-Signature": meta_signature(APP_SECRET, BODY, "sha1")}, True),
        (
            {
                "X-Hub-Signature-256": meta_signature(APP_SECRET, BODY),
                "X-Hub-Signature": meta_signature(APP_SECRET, BODY, "sha1"),
            },
            True,
        ),
        ({"X-Hub-Signature-256": meta_signature(APP_SECRET, BODY).upper().replace("SHA256=", "sha256=")}, True),
        ({}, False),
        ({"X-Hub-Signature-256": ""}, False),
        ({"X-Hub-Signature-256": meta_signature("0" * 32, BODY)}, False),
        ({"X-Hub-Signature-256": meta_signature(APP_SECRET, BODY + b" ")}, False),
        (
            {
                "X-Hub-Signature-256": meta_signature("0" * 32, BODY),
                "X-Hub-Signature": meta_signature(APP_SECRET, BODY, "sha1"),
            },
            False,
        ),
        ({"X-Hub-Signature": meta_signature(APP_SECRET, BODY, "md5")}, False),
        ({"X-Hub-Signature-256": meta_signature(APP_SECRET, BODY, "sha1")}, False),
        ({"X-Hub-Signature-256": meta_signature(APP_SECRET, BODY).split("=", 1)[1]}, False),
    ],
    ids=[
        "sha256",
        "sha1-only",
        "both",
        "uppercase-hex",
        "missing",
        "empty",
        "wrong-secret",
        "tampered-body",
        "bad-sha256-good-sha1",
        "md5",
        "sha1-in-sha256-header",
        "no-prefix",
    ],
)
def test_meta_signature(headers: Dict[str, str], valid: bool) -> None:
    sha1_only = "X-Hub-Signature-256" not in headers and "X-Hub-Signature" in headers
    assert meta_signature_is_valid(APP_SECRET, BODY, headers, allow_sha1=True) is valid
    # SHA-1 alone counts only when explicitly allowed.
    assert meta_signature_is_valid(APP_SECRET, BODY, headers) is (valid and not sha1_only)


@pytest.mark.parametrize("sha256", ["", "sha256=", "  "])
def test_a_present_but_empty_sha256_header_never_falls_back_to_sha1(sha256: str) -> None:
    headers = {"X-Hub-Signature-256": sha256, "X-Hub-Signature": meta_signature(APP_SECRET, BODY, "sha1")}
    assert meta_signature_is_valid(APP_SECRET, BODY, headers, allow_sha1=True) is False


@pytest.mark.parametrize(
    ("url", "params", "signature", "valid"),
    [
        (URL, PARAMS, twilio_signature(AUTH_TOKEN, URL, PARAMS), True),
        # Twilio may sign the URL with or without the default port.
        (URL, PARAMS, twilio_signature(AUTH_TOKEN, URL.replace(".org/", ".org:443/"), PARAMS), True),
        (URL, PARAMS, None, False),
        (URL, PARAMS, "", False),
        (URL, PARAMS, twilio_signature("0" * 32, URL, PARAMS), False),
        (URL, PARAMS, twilio_signature(AUTH_TOKEN, "http://127.0.0.1:5005/webhooks/twilio/webhook", PARAMS), False),
        (URL, {**PARAMS, "Body": "hello"}, twilio_signature(AUTH_TOKEN, URL, PARAMS), False),
        (URL, {k: v for k, v in PARAMS.items() if k != "ToCity"}, twilio_signature(AUTH_TOKEN, URL, PARAMS), False),
    ],
    ids=["valid", "valid-with-port", "missing", "empty", "wrong-token", "other-url", "tampered", "dropped-blank"],
)
def test_twilio_signature(url: str, params: Dict[str, str], signature: Optional[str], valid: bool) -> None:
    assert twilio_signature_is_valid(AUTH_TOKEN, url, form(params), signature) is valid


@pytest.mark.parametrize(
    ("received", "valid"),
    [("s3cret-token_1", True), (None, False), ("", False), ("s3cret-token_", False), ("s3cret-token_1 ", False)],
)
def test_telegram_secret_token(received: Optional[str], valid: bool) -> None:
    assert secret_token_matches("s3cret-token_1", received) is valid
