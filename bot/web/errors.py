"""The one error type console handlers raise; its message is safe to show."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ConsoleError(Exception):
    """An error answered as JSON with ``status``; the message never quotes input."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Keep the HTTP status, the message for the clinician and extra fields."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.details = dict(details or {})
