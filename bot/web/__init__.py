"""The clinician console: a Sanic web app to see and act on escalations."""

from bot.web.app import create_app, run_console
from bot.web.config import (
    ClinicianAccounts,
    ConsoleConfig,
    UsersFileError,
    load_users_file,
)
from bot.web.passwords import hash_password, main_hash_password, verify_password

__all__ = [
    "ClinicianAccounts",
    "ConsoleConfig",
    "UsersFileError",
    "create_app",
    "hash_password",
    "load_users_file",
    "main_hash_password",
    "run_console",
    "verify_password",
]
