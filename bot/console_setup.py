"""First-run set-up of the clinician console: an account and a signing secret."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Optional

import yaml

from bot.settings import Settings
from bot.web.config import ConsoleConfig, load_users_file
from bot.web.passwords import hash_password

FIRST_USER = "clinician"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def ensure_console_account(settings: Settings) -> Optional[str]:
    """Creates a first clinician account if no users file exists; returns its password.

    Only when CONSOLE_USERS_FILE is not set: a configured file that is missing
    is an error the console reports, never silently replaced.
    """
    path = settings.console_users_file
    if settings.console_users_file_configured or path.exists():
        return None
    password = secrets.token_urlsafe(12)
    document = {
        "clinicians": [
            {"username": FIRST_USER, "password_hash": hash_password(password), "name": "Care team clinician"}
        ]
    }
    _write_private(path, "# Created on first run; add accounts with `python -m bot hash-password`.\n"
                   + yaml.safe_dump(document, sort_keys=False))
    return password


def console_secret(settings: Settings) -> str:
    """CONSOLE_SECRET, or a secret generated once and kept in var/ (mode 600)."""
    if settings.console_secret:
        return settings.console_secret
    path = settings.project_root / "var" / "console_secret"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    secret = secrets.token_urlsafe(48)
    _write_private(path, secret + "\n")
    return secret


def console_config(settings: Settings) -> ConsoleConfig:
    """The console's configuration from the settings and the users file."""
    accounts = load_users_file(settings.console_users_file)
    return ConsoleConfig(
        db_url=settings.escalation.db_url,
        clinicians=accounts.password_hashes,
        clinician_names=accounts.names,
        session_secret=console_secret(settings),
        cookie_secure=settings.console_cookie_secure,
        base_path="/console",
        trusted_proxy_header=settings.console_trusted_proxy_header,
        trusted_proxies=settings.console_trusted_proxies,
    )
