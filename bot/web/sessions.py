"""Signed, expiring session tokens for the console cookie (HMAC-SHA256) and the sign-outs.

A token is ``<payload>.<signature>``, both unpadded base64url; the payload is
JSON with the username, issue and expiry times, a random id (so a signed-out
token can be refused until it expires) and a fingerprint of the password hash
(so changing a clinician's password ends their existing sessions).

The only server state is the list of signed-out session ids, kept in the
database (RevokedSessions) so that restarting the console does not make a
signed-out cookie valid again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from bot.escalation.store import UTC
from bot.web.database import revoked_sessions

# Separates this key's use from any other HMAC made with the same secret.
_KEY_CONTEXT = b"clinician-console-session-v1"
_CLOCK_SKEW_SECONDS = 60
MAX_TOKEN_LENGTH = 1024


@dataclass(frozen=True)
class Session:
    """A verified sign-in."""

    username: str
    session_id: str
    issued_at: int
    expires_at: int


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and verifies session tokens for the clinicians in ``password_hashes``."""

    def __init__(
        self,
        secret: str,
        password_hashes: Mapping[str, str],
        lifetime_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Derive the signing key; ``clock`` returns Unix time (replaceable in tests)."""
        self._key = hmac.new(secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
        self._password_hashes = password_hashes
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def _fingerprint(self, username: str) -> str:
        hashed = self._password_hashes.get(username, "")
        digest = hmac.new(self._key, hashed.encode(), hashlib.sha256).digest()
        return _b64encode(digest[:12])

    def issue(self, username: str) -> tuple[str, Session]:
        """Return a new token for ``username`` and the session it stands for."""
        now = int(self._clock())
        session = Session(
            username=username,
            session_id=secrets.token_urlsafe(16),
            issued_at=now,
            expires_at=now + self.lifetime_seconds,
        )
        payload = json.dumps(
            {
                "u": session.username,
                "sid": session.session_id,
                "iat": session.issued_at,
                "exp": session.expires_at,
                "pw": self._fingerprint(username),
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        token = f"{_b64encode(payload)}.{_b64encode(self._sign(payload))}"
        return token, session

    def verify(self, token: str | None) -> Session | None:
        """Return the session of a valid token; None if forged or expired.

        Whether it was signed out is RevokedSessions' to say.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            return None
        encoded_payload, encoded_signature = token.split(".")
        try:
            payload = _b64decode(encoded_payload)
            signature = _b64decode(encoded_signature)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        # Only a payload this signer produced gets here, so its shape can be trusted.
        claims = json.loads(payload)
        now = int(self._clock())
        username = claims["u"]
        if claims["exp"] <= now or claims["iat"] > now + _CLOCK_SKEW_SECONDS:
            return None
        if username not in self._password_hashes:
            return None
        if not hmac.compare_digest(claims["pw"], self._fingerprint(username)):
            return None
        return Session(
            username=username,
            session_id=claims["sid"],
            issued_at=claims["iat"],
            expires_at=claims["exp"],
        )


class RevokedSessions:
    """Session ids signed out before their expiry, in the database until they expire."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        """Use ``engine``'s console tables; ``clock`` returns Unix time (replaceable in tests)."""
        self._engine = engine
        self._clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def revoke(self, session: Session) -> None:
        """Refuse ``session`` from now on, in every console process and after restarts."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        statement = self._insert(revoked_sessions).values(
            session_id=session.session_id,
            expires_at=datetime.fromtimestamp(session.expires_at, UTC),
        )
        with self._engine.begin() as conn:
            conn.execute(statement.on_conflict_do_nothing(index_elements=["session_id"]))
            # An expired token is refused anyway: its sign-out need not be kept.
            conn.execute(revoked_sessions.delete().where(revoked_sessions.c.expires_at <= now))

    def is_revoked(self, session: Session) -> bool:
        """Return whether ``session`` was signed out."""
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(revoked_sessions.c.session_id).where(revoked_sessions.c.session_id == session.session_id)
            ).first()
        return found is not None
