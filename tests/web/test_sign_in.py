"""Sign-in that holds: attempts counted before hashing, a bounded hashing pool, trusted proxies only,
sign-outs and the limit surviving a restart (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

import bot.web.api
from bot.console_setup import console_config
from bot.settings import Settings
from bot.web.client_address import ClientAddressResolver
from bot.web.config import ConsoleConfig

from .conftest import CSRF, PASSWORDS, SECRET, sign_in
from .harness import AsgiClient

WRONG = {"username": "ana", "password": "a wrong guess"}


def _login(client: AsgiClient, body: dict | None = None, headers: dict | None = None):
    return client.post("/api/login", json_body=body or WRONG, headers={**CSRF, **(headers or {})})


# Counting before hashing -----------------------------------------------------------


def test_concurrent_wrong_passwords_get_no_more_tries_than_the_limit(
    any_config: ConsoleConfig, start_client: Callable[..., AsgiClient]
) -> None:
    config = replace(any_config, max_failed_logins=3, password_check_queue=20)
    client = start_client(config, client_ip="203.0.113.9")
    tasks = [client.send_later("POST", "/api/login", json_body=WRONG, headers=CSRF) for _ in range(10)]
    responses = client.run(asyncio.gather(*tasks))
    statuses = sorted(response.status for response in responses)
    assert statuses == [401] * 3 + [429] * 7
    assert all(
        "Too many failed sign-ins" in response.text for response in responses if response.status == 429
    )


def test_the_limit_and_sign_outs_survive_a_restart(
    any_config: ConsoleConfig, start_client: Callable[..., AsgiClient]
) -> None:
    config = replace(any_config, max_failed_logins=2)
    first = start_client(config, client_ip="203.0.113.9")
    assert [_login(first).status for _ in range(2)] == [401, 401]
    first.client_ip = "198.51.100.7"
    sign_in(first)
    copied = dict(first.cookies)
    assert first.post("/api/logout", headers=CSRF).status == 204
    first.close()

    restarted = start_client(config, client_ip="203.0.113.9")
    assert _login(restarted, {"username": "ana", "password": PASSWORDS["ana"]}).status == 429
    restarted.cookies.update(copied)
    assert restarted.get("/api/session").status == 401
    restarted.client_ip = "198.51.100.7"
    restarted.cookies.clear()
    sign_in(restarted)
    assert restarted.get("/api/session").status == 200


# The hashing pool ------------------------------------------------------------------


def test_sign_ins_beyond_the_hashing_queue_are_refused_at_once(
    config: ConsoleConfig, start_client: Callable[..., AsgiClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    running: list[int] = []
    lock = threading.Lock()
    most_at_once = [0]

    def slow_check(password: str, hashed: str) -> bool:
        with lock:
            running.append(1)
            most_at_once[0] = max(most_at_once[0], len(running))
        release.wait(timeout=60)
        with lock:
            running.pop()
        return False

    monkeypatch.setattr(bot.web.api, "verify_password", slow_check)
    client = start_client(replace(config, password_check_concurrency=1, password_check_queue=1))
    pool = client.app.ctx.password_checks

    async def until_admitted(count: int) -> None:
        while pool.admitted < count:
            await asyncio.sleep(0.01)

    first = client.send_later("POST", "/api/login", json_body=WRONG, headers=CSRF)
    second = client.send_later("POST", "/api/login", json_body={**WRONG, "username": "ben"}, headers=CSRF)
    client.run(asyncio.wait_for(until_admitted(2), 30))

    refused = _login(client, {"username": "zoe", "password": "x"})
    assert refused.status == 429
    assert "busy" in refused.json()["error"]["message"]
    assert refused.header("retry-after") == "1"

    release.set()
    assert [response.status for response in client.run(asyncio.gather(first, second))] == [401, 401]
    assert most_at_once[0] == 1
    assert pool.admitted == 0
    # With the pool free again, a sign-in goes through.
    monkeypatch.undo()
    sign_in(client)


# Client address --------------------------------------------------------------------


PROXIED = {"trusted_proxy_header": "X-Forwarded-For", "trusted_proxies": ("10.0.0.0/8", "::1")}


@pytest.mark.parametrize(
    ("peer", "header", "address"),
    [
        ("203.0.113.9", ["198.51.100.7"], "203.0.113.9"),  # not a proxy: the header is ignored
        ("10.0.0.5", ["198.51.100.7"], "198.51.100.7"),
        ("10.0.0.5", ["1.2.3.4, 198.51.100.7"], "198.51.100.7"),  # the client forged the left part
        ("10.0.0.5", ["198.51.100.7, 10.0.0.9"], "198.51.100.7"),  # two proxies
        ("10.0.0.5", ["1.2.3.4", "198.51.100.7"], "198.51.100.7"),  # repeated header
        ("10.0.0.5", ["198.51.100.7:5123"], "198.51.100.7"),
        ("10.0.0.5", ["[2001:db8::7]:443"], "2001:db8::7"),
        ("10.0.0.5", ["garbage"], "10.0.0.5"),
        ("10.0.0.5", ["198.51.100.7, garbage, 10.0.0.9"], "10.0.0.9"),
        ("10.0.0.5", [], "10.0.0.5"),
        ("::1", ["2001:db8::7"], "2001:db8::7"),
        (None, ["198.51.100.7"], "unknown"),
    ],
)
def test_the_client_address_trusts_only_the_configured_proxies(
    peer: str | None, header: list[str], address: str
) -> None:
    resolver = ClientAddressResolver(PROXIED["trusted_proxy_header"], PROXIED["trusted_proxies"])
    assert resolver.resolve(peer, header) == address


def test_without_a_proxy_setting_the_header_is_ignored() -> None:
    assert ClientAddressResolver(None, ()).resolve("10.0.0.5", ["198.51.100.7"]) == "10.0.0.5"


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(
    config: ConsoleConfig, start_client: Callable[..., AsgiClient]
) -> None:
    client = start_client(replace(config, max_failed_logins=2, **PROXIED), client_ip="10.0.0.5")
    attacker = {"X-Forwarded-For": "203.0.113.9"}
    assert [_login(client, headers=attacker).status for _ in range(3)] == [401, 401, 429]
    assert _login(client, headers={"X-Forwarded-For": "198.51.100.7"}).status == 401


def test_a_forged_forwarding_header_does_not_reset_the_limit(
    config: ConsoleConfig, start_client: Callable[..., AsgiClient]
) -> None:
    client = start_client(replace(config, max_failed_logins=2, **PROXIED), client_ip="203.0.113.9")
    statuses = [_login(client, headers={"X-Forwarded-For": f"198.51.100.{n}"}).status for n in range(3)]
    assert statuses == [401, 401, 429]


@pytest.mark.parametrize(
    "changes",
    [
        {"trusted_proxy_header": "X-Forwarded-For"},
        {"trusted_proxies": ("10.0.0.1",)},
        {"trusted_proxy_header": "X-Forwarded-For", "trusted_proxies": ("proxy.example",)},
        {"trusted_proxy_header": "Bad Header:", "trusted_proxies": ("10.0.0.1",)},
        {"password_check_concurrency": 0},
        {"password_check_queue": -1},
    ],
)
def test_unsafe_proxy_and_pool_settings_are_refused(config: ConsoleConfig, changes: dict) -> None:
    with pytest.raises(ValueError):
        replace(config, **changes)


# Request size ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/login", "/api/escalations/resolve"])
def test_a_body_over_64_kb_is_413(signed_in: AsgiClient, path: str) -> None:
    body = b'{"note": "' + b"x" * (64 * 1024) + b'"}'
    response = signed_in.post(path, body=body, headers={**CSRF, "content-type": "application/json"})
    assert response.status == 413
    assert response.json() == {"error": {"status": 413, "message": "The request is too large."}}


def test_the_proxy_settings_come_from_the_environment(tmp_path: Path, password_hashes: dict[str, str]) -> None:
    users = tmp_path / "users.yml"
    users.write_text(
        f"clinicians:\n- username: ana\n  password_hash: '{password_hashes['ana']}'\n  name: Ana\n", encoding="utf-8"
    )
    env = {"BOT_PROJECT_ROOT": str(tmp_path), "CONSOLE_USERS_FILE": str(users), "CONSOLE_SECRET": SECRET}
    proxy_env = {"CONSOLE_TRUSTED_PROXY_HEADER": "X-Forwarded-For", "CONSOLE_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"}
    proxied = console_config(Settings.from_env({**env, **proxy_env}))
    assert (proxied.trusted_proxy_header, proxied.trusted_proxies) == ("X-Forwarded-For", ("127.0.0.1", "10.0.0.0/8"))
    direct = console_config(Settings.from_env(env))
    assert (direct.trusted_proxy_header, direct.trusted_proxies) == (None, ())
    with pytest.raises(ValueError, match="CONSOLE_TRUSTED_PROXIES"):
        console_config(Settings.from_env({**env, "CONSOLE_TRUSTED_PROXY_HEADER": "X-Forwarded-For"}))
