"""Configuration of the clinician console, built by bot.settings (no env reads here)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from bot.web.client_address import parse_proxies
from bot.web.passwords import InvalidPasswordHashError, parse_password_hash

MIN_SECRET_LENGTH = 32
_BASE_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")
_USERNAME = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")


class UsersFileError(ValueError):
    """The console users file cannot be used; the message never quotes a hash."""


@dataclass(frozen=True)
class ConsoleConfig:
    """Settings of the clinician console web app.

    Attributes:
        db_url: SQLAlchemy URL of the escalation database (as in EscalationConfig).
        clinicians: Username -> scrypt password hash (see bot.web.passwords).
        session_secret: Key that signs session cookies; at least 32 characters.
        cookie_secure: Send the session cookie only over HTTPS; keep False only
            for a console reached on localhost.
        base_path: Where the console page is served; alert links point below it.
        clinician_names: Username -> display name shown in the console.
        db_schema: PostgreSQL schema of the escalation tables (default: search path).
        session_hours: How long a sign-in lasts.
        max_failed_logins: Failed sign-ins allowed per username and address
            within ``login_window_seconds`` before further tries are refused.
        max_failed_logins_per_address: The same limit for one address, all
            usernames together.
        login_window_seconds: Window of the failed sign-in limits.
        trusted_proxy_header: Header holding the client address (e.g.
            X-Forwarded-For), believed only on connections from ``trusted_proxies``.
        trusted_proxies: Addresses or networks of the reverse proxies in front
            of the console.
        password_check_concurrency: Password hashes computed at once (each
            takes about 0.3 s of one core).
        password_check_queue: Sign-ins allowed to wait for a place; more get 429.
    """

    db_url: str
    clinicians: Mapping[str, str]
    session_secret: str = field(repr=False)
    cookie_secure: bool = False
    base_path: str = "/console"
    clinician_names: Mapping[str, str] = field(default_factory=dict)
    db_schema: str | None = None
    session_hours: float = 8.0
    max_failed_logins: int = 5
    max_failed_logins_per_address: int = 20
    login_window_seconds: float = 900.0
    trusted_proxy_header: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    password_check_concurrency: int = 1
    password_check_queue: int = 4

    def __post_init__(self) -> None:
        """Reject settings that would leave the console open or unusable."""
        if len(self.session_secret or "") < MIN_SECRET_LENGTH:
            raise ValueError(
                f"session_secret must be at least {MIN_SECRET_LENGTH} characters "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if not _BASE_PATH.fullmatch(self.base_path) or self.base_path == "/api":
            raise ValueError(
                "base_path must look like '/console': a leading slash, no trailing "
                "slash, letters, digits and . _ ~ - only, and not '/api'"
            )
        for username, hashed in self.clinicians.items():
            if not _USERNAME.fullmatch(username):
                raise ValueError(f"clinician username {username!r} must be 1-64 letters, digits or . _ @ + -")
            try:
                parse_password_hash(hashed)
            except InvalidPasswordHashError as error:
                raise ValueError(f"password hash of clinician {username!r}: {error}") from None
        if self.session_hours <= 0:
            raise ValueError("session_hours must be positive")
        if self.max_failed_logins < 1 or self.max_failed_logins_per_address < 1:
            raise ValueError("failed login limits must be at least 1")
        if self.login_window_seconds <= 0:
            raise ValueError("login_window_seconds must be positive")
        if self.password_check_concurrency < 1 or self.password_check_queue < 0:
            raise ValueError("password_check_concurrency must be at least 1 and password_check_queue at least 0")
        self._check_proxies()
        # Read-only copies: a frozen config should not change through a shared dict.
        object.__setattr__(self, "clinicians", MappingProxyType(dict(self.clinicians)))
        object.__setattr__(self, "clinician_names", MappingProxyType(dict(self.clinician_names)))

    def _check_proxies(self) -> None:
        if self.trusted_proxy_header is not None and not _HEADER_NAME.fullmatch(self.trusted_proxy_header):
            raise ValueError("trusted_proxy_header must be a header name such as X-Forwarded-For")
        if bool(self.trusted_proxy_header) != bool(self.trusted_proxies):
            # A header without proxies would be believed from no one; proxies without a header tell nothing.
            raise ValueError(
                "set both the trusted proxy header and the trusted proxies (CONSOLE_TRUSTED_PROXY_HEADER "
                "and CONSOLE_TRUSTED_PROXIES), or neither"
            )
        parse_proxies(self.trusted_proxies)
        object.__setattr__(self, "trusted_proxies", tuple(self.trusted_proxies))

    @property
    def session_seconds(self) -> int:
        """Return the lifetime of a session in whole seconds."""
        return int(self.session_hours * 3600)

    def display_name(self, username: str) -> str:
        """Return the name shown for ``username``, or the username itself."""
        return self.clinician_names.get(username) or username


@dataclass(frozen=True)
class ClinicianAccounts:
    """The accounts read from a console users file."""

    password_hashes: dict[str, str]
    names: dict[str, str]


def _users_file_entries(data: Any, path: Path) -> list[Mapping[str, Any]]:
    entries = data.get("clinicians") if isinstance(data, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise UsersFileError(
            f"{path}: expected a non-empty list under 'clinicians:' (each with username, password_hash and name)"
        )
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise UsersFileError(f"{path}: clinician #{position} is not a mapping")
    return entries


def load_users_file(path: str | Path) -> ClinicianAccounts:
    """Read ``clinicians: [{username, password_hash, name}]`` from a YAML file.

    Raises:
        UsersFileError: The file is missing, malformed, has a duplicate username
            or a value that is not a password hash made by ``hash-password``.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsersFileError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError:
        raise UsersFileError(f"{path} is not valid YAML") from None
    hashes: dict[str, str] = {}
    names: dict[str, str] = {}
    for position, entry in enumerate(_users_file_entries(data, path), start=1):
        username = entry.get("username")
        if not isinstance(username, str) or not _USERNAME.fullmatch(username):
            raise UsersFileError(f"{path}: clinician #{position} needs a username of 1-64 letters, digits or . _ @ + -")
        if username in hashes:
            raise UsersFileError(f"{path}: username {username!r} appears twice")
        hashed = entry.get("password_hash")
        try:
            if not isinstance(hashed, str):
                raise InvalidPasswordHashError("it must be text")
            parse_password_hash(hashed)
        except InvalidPasswordHashError as error:
            raise UsersFileError(f"{path}: password_hash of {username!r}: {error}") from None
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise UsersFileError(f"{path}: name of {username!r} must be text")
        hashes[username] = hashed
        names[username] = (name or "").strip() or username
    return ClinicianAccounts(password_hashes=hashes, names=names)
