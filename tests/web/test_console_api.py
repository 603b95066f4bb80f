"""The console's JSON API: sign-in, sessions, listing and acting on escalations."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from bot.escalation.store import EscalationStore
from bot.web.api import MAX_NOTE_LENGTH
from bot.web.config import ConsoleConfig
from bot.web.sessions import SessionSigner

from .conftest import CSRF, PASSWORDS, SECRET, TRANSCRIPT, make_escalation, sign_in
from .harness import AsgiClient

SOME_ID = "3f2b8c4e-0d6a-4f0e-9a51-7c1d2e3f4a5b"

API_ROUTES = [
    ("POST", "/api/logout"),
    ("GET", "/api/session"),
    ("GET", "/api/escalations"),
    ("GET", "/api/escalations?status=all"),
    ("GET", f"/api/escalations/{SOME_ID}"),
    ("POST", f"/api/escalations/{SOME_ID}/acknowledge"),
    ("POST", f"/api/escalations/{SOME_ID}/resolve"),
]


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


# Authentication ---------------------------------------------------------------


@pytest.mark.parametrize("with_csrf_header", [True, False])
@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_every_api_route_needs_a_session(
    client: AsgiClient,
    store: EscalationStore,
    method: str,
    path: str,
    with_csrf_header: bool,
) -> None:
    make_escalation(store)
    response = client.request(
        method,
        path,
        json_body={"note": "done"},
        headers=CSRF if with_csrf_header else None,
    )
    assert response.status == 401
    assert _error(response) == {"status": 401, "message": "Please sign in."}
    assert response.header("content-type") == "application/json"


def test_wrong_password_and_unknown_user_get_the_same_401(client: AsgiClient) -> None:
    wrong_password = client.post(
        "/api/login",
        json_body={"username": "ana", "password": PASSWORDS["ben"]},
        headers=CSRF,
    )
    unknown_user = client.post(
        "/api/login",
        json_body={"username": "zoe", "password": PASSWORDS["ana"]},
        headers=CSRF,
    )
    assert wrong_password.status == unknown_user.status == 401
    assert wrong_password.body == unknown_user.body
    assert "password" not in wrong_password.text.lower().split("check the")[0]
    assert wrong_password.header("set-cookie") is None
    assert client.cookies == {}


def test_right_password_sets_a_hardened_session_cookie(client: AsgiClient) -> None:
    response = client.post(
        "/api/login",
        json_body={"username": "ana", "password": PASSWORDS["ana"]},
        headers=CSRF,
    )
    assert response.status == 200
    assert response.json()["username"] == "ana"
    assert response.json()["name"] == "Dr Ana Silva"
    cookie = client.parsed_set_cookie(response, "console_session")
    assert cookie["httponly"] == "true"
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == str(8 * 3600)
    assert "secure" not in cookie
    session = client.get("/api/session")
    assert session.status == 200
    assert session.json()["username"] == "ana"


def test_secure_cookie_uses_the_host_prefix(config: ConsoleConfig, start_client: Callable[..., AsgiClient]) -> None:
    client = start_client(replace(config, cookie_secure=True))
    sign_in(client)
    assert set(client.cookies) == {"__Host-console_session"}
    assert client.get("/api/session").status == 200
    response = client.get("/api/session")
    assert response.header("strict-transport-security") == "max-age=31536000"


def test_login_needs_the_console_header(client: AsgiClient) -> None:
    response = client.post("/api/login", json_body={"username": "ana", "password": PASSWORDS["ana"]})
    assert response.status == 403
    assert client.cookies == {}


@pytest.mark.parametrize(
    "body",
    [b"not json", b'["ana", "pw"]', b'{"username": "ana"}', b'{"username": 1, "password": 2}'],
)
def test_login_with_a_malformed_body_is_400(client: AsgiClient, body: bytes) -> None:
    response = client.post("/api/login", body=body, headers=CSRF)
    assert response.status == 400
    assert client.cookies == {}


def test_failed_logins_are_throttled_per_username_and_address(
    config: ConsoleConfig, start_client: Callable[..., AsgiClient]
) -> None:
    config = replace(config, max_failed_logins=3)
    attacker = start_client(config, client_ip="203.0.113.9")
    for _ in range(3):
        response = attacker.post(
            "/api/login",
            json_body={"username": "ana", "password": "guess"},
            headers=CSRF,
        )
        assert response.status == 401
    blocked = attacker.post(
        "/api/login",
        json_body={"username": "ana", "password": PASSWORDS["ana"]},
        headers=CSRF,
    )
    assert blocked.status == 429
    assert 0 < int(blocked.header("retry-after")) <= 900
    assert attacker.cookies == {}
    # Ana signing in from her own address is not locked out by the attacker.
    attacker.client_ip = "198.51.100.7"
    sign_in(attacker)


def test_logout_ends_the_session_even_for_a_copied_cookie(signed_in: AsgiClient) -> None:
    copied = dict(signed_in.cookies)
    response = signed_in.post("/api/logout", headers=CSRF)
    assert response.status == 204
    assert signed_in.cookies == {}
    signed_in.cookies.update(copied)
    assert signed_in.get("/api/session").status == 401


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token: "x" + token,
        lambda token: token.split(".")[0],
        lambda token: "",
        lambda token: "a.b.c",
    ],
    ids=["signature", "payload", "unsigned", "empty", "garbage"],
)
def test_tampered_cookie_is_401(signed_in: AsgiClient, tamper: Callable[[str], str]) -> None:
    signed_in.cookies["console_session"] = tamper(signed_in.cookies["console_session"])
    assert signed_in.get("/api/escalations").status == 401


def test_expired_cookie_is_401(client: AsgiClient, config: ConsoleConfig) -> None:
    nine_hours_ago = time.time() - 9 * 3600
    signer = SessionSigner(SECRET, config.clinicians, config.session_seconds, clock=lambda: nine_hours_ago)
    client.cookies["console_session"], _ = signer.issue("ana")
    assert client.get("/api/escalations").status == 401
    fresh = SessionSigner(SECRET, config.clinicians, config.session_seconds)
    client.cookies["console_session"], _ = fresh.issue("ana")
    assert client.get("/api/escalations").status == 200


def test_cookie_signed_with_another_secret_is_401(client: AsgiClient, config: ConsoleConfig) -> None:
    signer = SessionSigner("another-secret-" * 3, config.clinicians, 3600)
    client.cookies["console_session"], _ = signer.issue("ana")
    assert client.get("/api/escalations").status == 401


# Listing ----------------------------------------------------------------------


def test_list_puts_urgent_first_then_priority_then_low_oldest_first(
    signed_in: AsgiClient, store: EscalationStore
) -> None:
    low_old = make_escalation(store, "low", kind="human_request", category=None, age=timedelta(hours=3))
    urgent_new = make_escalation(store, "urgent", age=timedelta(minutes=1))
    priority = make_escalation(store, "priority", category="self_harm", age=timedelta(minutes=30))
    urgent_old = make_escalation(store, "urgent", category="medical_emergency", age=timedelta(minutes=20))
    resolved = make_escalation(store, "urgent", age=timedelta(hours=1))
    store.resolve(resolved.id, "ben", "called back")

    response = signed_in.get("/api/escalations?status=open")

    assert response.status == 200
    body = response.json()
    assert body["status"] == "open"
    assert body["count"] == 4
    assert [item["id"] for item in body["escalations"]] == [
        urgent_old.id,
        urgent_new.id,
        priority.id,
        low_old.id,
    ]
    ages = {item["id"]: item["age_seconds"] for item in body["escalations"]}
    assert 20 * 60 <= ages[urgent_old.id] < 21 * 60
    assert 3 * 3600 <= ages[low_old.id] < 3 * 3600 + 60
    assert all("transcript" not in item for item in body["escalations"])


def test_list_defaults_to_open_and_filters_by_status(signed_in: AsgiClient, store: EscalationStore) -> None:
    open_one = make_escalation(store, "priority", category="acute_crisis")
    acknowledged = make_escalation(store, "urgent")
    store.acknowledge(acknowledged.id, "ben")
    resolved = make_escalation(store, "low", kind="human_request", category=None)
    store.resolve(resolved.id, "ben", "done")

    def ids(query: str) -> list[str]:
        response = signed_in.get(f"/api/escalations{query}")
        assert response.status == 200
        return [item["id"] for item in response.json()["escalations"]]

    assert ids("") == [open_one.id]
    assert ids("?status=acknowledged") == [acknowledged.id]
    assert ids("?status=resolved") == [resolved.id]
    assert ids("?status=all") == [acknowledged.id, open_one.id, resolved.id]


def test_list_rejects_an_unknown_status(signed_in: AsgiClient) -> None:
    response = signed_in.get("/api/escalations?status=everything")
    assert response.status == 400
    assert "everything" not in response.text


# Detail and actions -----------------------------------------------------------


def test_detail_shows_the_transcript_and_audit_trail(signed_in: AsgiClient, store: EscalationStore) -> None:
    escalation = make_escalation(store)
    store.record_contact(escalation.conversation_id, "phone", "+44 20 7946 0000")

    response = signed_in.get(f"/api/escalations/{escalation.id}")

    assert response.status == 200
    body = response.json()
    assert body["id"] == escalation.id
    assert body["conversation_id"] == escalation.conversation_id
    assert body["transcript"] == TRANSCRIPT
    assert body["contact"] == {"method": "phone", "value": "+44 20 7946 0000"}
    assert [event["action"] for event in body["events"]] == ["created", "contact_recorded"]


def test_acknowledge_then_resolve_records_who_did_it(signed_in: AsgiClient, store: EscalationStore) -> None:
    escalation = make_escalation(store)

    acknowledged = signed_in.post(f"/api/escalations/{escalation.id}/acknowledge", headers=CSRF)
    assert acknowledged.status == 200
    assert acknowledged.json()["status"] == "acknowledged"
    assert acknowledged.json()["acknowledged_by"] == "ana"

    resolved = signed_in.post(
        f"/api/escalations/{escalation.id}/resolve",
        json_body={"note": "  Called back; safety plan agreed.  "},
        headers=CSRF,
    )
    assert resolved.status == 200
    assert resolved.json()["status"] == "resolved"

    stored = store.get(escalation.id)
    assert stored.acknowledged_by == "ana"
    assert stored.resolved_by == "ana"
    assert stored.resolution_note == "Called back; safety plan agreed."
    events = [(event.actor, event.action) for event in store.events(escalation.id)]
    assert events == [("system", "created"), ("ana", "acknowledged"), ("ana", "resolved")]
    assert resolved.json()["events"][-1]["actor_name"] == "Dr Ana Silva"
    assert resolved.json()["resolved_by_name"] == "Dr Ana Silva"


def test_resolving_an_open_escalation_directly_is_allowed(signed_in: AsgiClient, store: EscalationStore) -> None:
    escalation = make_escalation(store, "low", kind="human_request", category=None)
    response = signed_in.post(
        f"/api/escalations/{escalation.id}/resolve",
        json_body={"note": "x" * MAX_NOTE_LENGTH},
        headers=CSRF,
    )
    assert response.status == 200
    assert store.get(escalation.id).resolved_by == "ana"


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("acknowledge", "acknowledge"),
        ("resolve", "acknowledge"),
        ("resolve", "resolve"),
    ],
)
def test_invalid_transition_is_409(signed_in: AsgiClient, store: EscalationStore, first: str, then: str) -> None:
    escalation = make_escalation(store)
    body = {"note": "handled"}
    assert signed_in.post(f"/api/escalations/{escalation.id}/{first}", json_body=body, headers=CSRF).status == 200

    response = signed_in.post(f"/api/escalations/{escalation.id}/{then}", json_body=body, headers=CSRF)

    assert response.status == 409
    error = _error(response)
    assert error["current_status"] == store.get(escalation.id).status
    assert [event.action for event in store.events(escalation.id)] == [
        "created",
        first + "d",
    ]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("POST", "/acknowledge"), ("POST", "/resolve")],
)
@pytest.mark.parametrize("escalation_id", [SOME_ID, "not-a-uuid", "1"])
def test_unknown_escalation_is_404(signed_in: AsgiClient, method: str, suffix: str, escalation_id: str) -> None:
    response = signed_in.request(
        method,
        f"/api/escalations/{escalation_id}{suffix}",
        json_body={"note": "done"},
        headers=CSRF,
    )
    assert response.status == 404
    assert _error(response)["status"] == 404


@pytest.mark.parametrize(
    "body",
    [
        b'{"note": "SECRET-BODY-TEXT',
        b"SECRET-BODY-TEXT",
        b'["SECRET-BODY-TEXT"]',
        b'"SECRET-BODY-TEXT"',
        b"\xff\xfeSECRET-BODY-TEXT",
        b"",
    ],
)
def test_malformed_json_is_400_and_not_echoed(signed_in: AsgiClient, store: EscalationStore, body: bytes) -> None:
    escalation = make_escalation(store)
    response = signed_in.post(
        f"/api/escalations/{escalation.id}/resolve",
        body=body,
        headers={**CSRF, "content-type": "application/json"},
    )
    assert response.status == 400
    assert _error(response) == {
        "status": 400,
        "message": "The request body must be a JSON object.",
    }
    assert b"SECRET" not in response.body
    assert store.get(escalation.id).status == "open"


@pytest.mark.parametrize(
    "note",
    [None, "", "   ", 42, ["a"], "x" * (MAX_NOTE_LENGTH + 1)],
    ids=["missing", "empty", "blank", "number", "list", "too-long"],
)
def test_resolve_needs_a_note_of_at_most_2000_characters(
    signed_in: AsgiClient, store: EscalationStore, note: object
) -> None:
    escalation = make_escalation(store)
    body = {} if note is None else {"note": note}
    response = signed_in.post(f"/api/escalations/{escalation.id}/resolve", json_body=body, headers=CSRF)
    assert response.status == 400
    assert store.get(escalation.id).status == "open"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Requested-With": "XMLHttpRequest"},
        {**CSRF, "Origin": "https://evil.example"},
        {**CSRF, "Origin": "null"},
    ],
    ids=["no-header", "other-header", "foreign-origin", "null-origin"],
)
def test_state_changes_refuse_cross_site_requests(
    signed_in: AsgiClient, store: EscalationStore, headers: dict[str, str]
) -> None:
    escalation = make_escalation(store)
    response = signed_in.post(f"/api/escalations/{escalation.id}/acknowledge", headers=headers)
    assert response.status == 403
    assert store.get(escalation.id).status == "open"


def test_state_changes_accept_the_console_own_origin(signed_in: AsgiClient, store: EscalationStore) -> None:
    escalation = make_escalation(store)
    response = signed_in.post(
        f"/api/escalations/{escalation.id}/acknowledge",
        headers={**CSRF, "Origin": f"https://{signed_in.host}"},
    )
    assert response.status == 200


def test_a_clinician_removed_from_the_users_file_is_signed_out(
    config: ConsoleConfig, start_client: Callable[..., AsgiClient]
) -> None:
    first = start_client(config)
    sign_in(first, "ben")
    without_ben = replace(config, clinicians={"ana": config.clinicians["ana"]})
    second = start_client(without_ben)
    second.cookies.update(first.cookies)
    assert second.get("/api/session").status == 401


def test_unknown_routes_and_methods_answer_json(signed_in: AsgiClient) -> None:
    missing = signed_in.get(f"/api/{uuid.uuid4()}")
    assert missing.status == 404
    assert _error(missing) == {"status": 404, "message": "Not found."}
    wrong_method = signed_in.get("/api/login")
    assert wrong_method.status == 405
    assert _error(wrong_method)["status"] == 405


def test_errors_carry_the_security_headers(client: AsgiClient) -> None:
    response = client.get("/api/escalations")
    assert response.status == 401
    assert "default-src 'self'" in response.header("content-security-policy")
    assert response.header("x-content-type-options") == "nosniff"
    assert response.header("cache-control") == "no-store"
