"""The one place that reads environment variables: everything else receives a Settings."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Tuple

from bot.escalation.config import EscalationConfig
from bot.unanswered.config import DEFAULT_MIN_ANSWER_CONFIDENCE, UnansweredConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from error


def _text(env: Mapping[str, str], name: str) -> Optional[str]:
    value = env.get(name, "").strip()
    return value or None


def _list(env: Mapping[str, str], name: str) -> Tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as error:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from error
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


def _origins(env: Mapping[str, str], name: str, default: Tuple[str, ...]) -> Tuple[str, ...]:
    """Web origins like `https://clinic.example` (scheme, host, optional port; no path)."""
    origins = _list(env, name) or default
    normalised = []
    for origin in origins:
        scheme, _, rest = origin.partition("://")
        if origin == "*":
            normalised.append(origin)
        elif scheme.lower() in ("http", "https") and rest and not any(c in rest for c in "/?#@ "):
            normalised.append(f"{scheme.lower()}://{rest.lower()}")
        else:
            raise ValueError(f"{name} must list origins like https://clinic.example:8443, got {origin!r}")
    return tuple(normalised)


def escalation_config_from_env(env: Mapping[str, str], root: Path) -> EscalationConfig:
    """The escalation store and alert settings (see README for each variable)."""
    default_db = f"sqlite:///{root / 'var' / 'escalations.db'}"
    return EscalationConfig(
        db_url=_text(env, "ESCALATION_DB_URL") or default_db,
        webhook_url=_text(env, "ESCALATION_WEBHOOK_URL"),
        webhook_secret=_text(env, "ESCALATION_WEBHOOK_SECRET"),
        second_webhook_url=_text(env, "ESCALATION_SECOND_WEBHOOK_URL"),
        smtp_host=_text(env, "SMTP_HOST"),
        smtp_port=_int(env, "SMTP_PORT", 587),
        smtp_user=_text(env, "SMTP_USER"),
        smtp_password=_text(env, "SMTP_PASSWORD"),
        smtp_from=_text(env, "SMTP_FROM"),
        smtp_to=_list(env, "SMTP_TO"),
        smtp_second_to=_list(env, "SMTP_SECOND_TO"),
        smtp_starttls=_bool(env, "SMTP_STARTTLS", True),
        smtp_ca_file=_text(env, "SMTP_CA_FILE"),
        ack_minutes=float(env.get("ESCALATION_ACK_MINUTES", "").strip() or 10),
        max_attempts=_int(env, "ESCALATION_MAX_ATTEMPTS", 8),
        console_base_url=_text(env, "CONSOLE_BASE_URL") or "http://localhost:8000/console",
        priority_ack_minutes=float(env.get("ESCALATION_PRIORITY_ACK_MINUTES", "").strip() or 60),
        human_requests_per_hour=_int(env, "ESCALATION_HUMAN_REQUESTS_PER_HOUR", 3),
        low_alerts_per_minute=_int(env, "ESCALATION_LOW_ALERTS_PER_MINUTE", 30),
        record_timeout_seconds=float(env.get("ESCALATION_RECORD_TIMEOUT_SECONDS", "").strip() or 2),
    )


def unanswered_config_from_env(env: Mapping[str, str], root: Path) -> UnansweredConfig:
    """Where unanswered questions are kept and which FAQ answers count as unsure."""
    raw = env.get("UNANSWERED_MIN_ANSWER_CONFIDENCE", "").strip()
    try:
        min_confidence = float(raw) if raw else DEFAULT_MIN_ANSWER_CONFIDENCE
    except ValueError as error:
        raise ValueError(f"UNANSWERED_MIN_ANSWER_CONFIDENCE must be a number, got {raw!r}") from error
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"UNANSWERED_MIN_ANSWER_CONFIDENCE must be between 0 and 1, got {raw!r}")
    return UnansweredConfig(
        db_url=_text(env, "UNANSWERED_DB_URL") or f"sqlite:///{root / 'var' / 'unanswered.db'}",
        min_answer_confidence=min_confidence,
    )


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of the assistant's services, with their defaults."""

    project_root: Path = PROJECT_ROOT
    rasa_auth_token: str = field(default="", repr=False)
    rasa_auth_token_generated: bool = False
    rasa_port: int = 5005
    action_port: int = 5055
    crisis_region: Optional[str] = None
    crisis_resources_file: Path = field(default=PROJECT_ROOT / "crisis_resources.yml")
    model_dir: Path = field(default=PROJECT_ROOT / "models")
    endpoints_file: Path = field(default=PROJECT_ROOT / "endpoints.yml")
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
    unanswered: UnansweredConfig = field(default_factory=UnansweredConfig)
    escalation_spool_dir: Path = field(default=PROJECT_ROOT / "var" / "escalation-spool")
    console_host: str = "127.0.0.1"
    console_port: int = 8000
    console_users_file: Path = field(default=PROJECT_ROOT / "var" / "console_users.yml")
    console_users_file_configured: bool = False
    console_secret: Optional[str] = field(default=None, repr=False)
    console_cookie_secure: bool = False
    console_trusted_proxy_header: Optional[str] = None
    console_trusted_proxies: Tuple[str, ...] = ()
    credentials_file: Path = field(default=PROJECT_ROOT / "credentials.yml")
    active_credentials_file: Path = field(default=PROJECT_ROOT / "var" / "credentials.active.yml")
    chat_allowed_origins: Tuple[str, ...] = ("http://localhost:8000", "http://127.0.0.1:8000")
    chat_socket_url: str = "http://127.0.0.1:5005"
    action_timeout_seconds: float = 10.0
    action_host: str = "127.0.0.1"
    action_server_token: str = field(default="", repr=False)
    rasa_auth_token_file: Path = field(default=PROJECT_ROOT / "var" / "rasa_auth_token")

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Settings":
        """Builds settings from environment variables (see README for the list)."""
        env = os.environ if env is None else env
        token = env.get("RASA_AUTH_TOKEN", "").strip()
        root = Path(env.get("BOT_PROJECT_ROOT", str(PROJECT_ROOT)))
        return cls(
            project_root=root,
            rasa_auth_token=token or secrets.token_urlsafe(24),
            rasa_auth_token_generated=not token,
            rasa_port=_int(env, "RASA_PORT", 5005),
            action_port=_int(env, "ACTION_SERVER_PORT", 5055),
            crisis_region=(env.get("CRISIS_REGION", "").strip().upper() or None),
            crisis_resources_file=Path(env.get("CRISIS_RESOURCES_FILE", str(root / "crisis_resources.yml"))),
            model_dir=Path(env.get("RASA_MODEL_DIR", str(root / "models"))),
            endpoints_file=Path(env.get("RASA_ENDPOINTS_FILE", str(root / "endpoints.yml"))),
            credentials_file=Path(env.get("RASA_CREDENTIALS_FILE", str(root / "credentials.yml"))),
            active_credentials_file=Path(
                _text(env, "RASA_ACTIVE_CREDENTIALS_FILE") or root / "var" / "credentials.active.yml"
            ),
            escalation=escalation_config_from_env(env, root),
            unanswered=unanswered_config_from_env(env, root),
            escalation_spool_dir=Path(env.get("ESCALATION_SPOOL_DIR", str(root / "var" / "escalation-spool"))),
            console_host=env.get("CONSOLE_HOST", "").strip() or "127.0.0.1",
            console_port=_int(env, "CONSOLE_PORT", 8000),
            console_users_file=Path(_text(env, "CONSOLE_USERS_FILE") or root / "var" / "console_users.yml"),
            console_users_file_configured=_text(env, "CONSOLE_USERS_FILE") is not None,
            console_secret=_text(env, "CONSOLE_SECRET"),
            console_cookie_secure=_bool(env, "CONSOLE_COOKIE_SECURE", False),
            console_trusted_proxy_header=_text(env, "CONSOLE_TRUSTED_PROXY_HEADER"),
            console_trusted_proxies=_list(env, "CONSOLE_TRUSTED_PROXIES"),
            chat_allowed_origins=_origins(
                env,
                "CHAT_ALLOWED_ORIGINS",
                tuple(f"http://{host}:{_int(env, 'CONSOLE_PORT', 8000)}" for host in ("localhost", "127.0.0.1")),
            ),
            chat_socket_url=(
                _text(env, "CHAT_SOCKET_URL") or f"http://127.0.0.1:{_int(env, 'RASA_PORT', 5005)}"
            ).rstrip("/"),
            action_timeout_seconds=_positive_float(env, "ACTION_SERVER_TIMEOUT", 10.0),
            action_host=_text(env, "ACTION_SERVER_HOST") or "127.0.0.1",
            action_server_token=_text(env, "ACTION_SERVER_TOKEN") or secrets.token_urlsafe(32),
            rasa_auth_token_file=Path(_text(env, "RASA_AUTH_TOKEN_FILE") or root / "var" / "rasa_auth_token"),
        )
