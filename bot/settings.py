"""The one place that reads environment variables: everything else receives a Settings."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from error


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of the assistant's services, with their defaults."""

    project_root: Path = PROJECT_ROOT
    rasa_auth_token: str = ""
    rasa_auth_token_generated: bool = False
    rasa_port: int = 5005
    action_port: int = 5055
    crisis_region: Optional[str] = None
    crisis_resources_file: Path = field(default=PROJECT_ROOT / "crisis_resources.yml")
    model_dir: Path = field(default=PROJECT_ROOT / "models")
    endpoints_file: Path = field(default=PROJECT_ROOT / "endpoints.yml")
    credentials_file: Path = field(default=PROJECT_ROOT / "credentials.yml")

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
        )
