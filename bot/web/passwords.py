"""Clinician password hashing with scrypt from the standard library.

A hash looks like ``scrypt$32768$8$3$<salt, base64>$<key, base64>``: the cost
parameters travel with each hash, so they can be raised later without
invalidating the passwords already stored.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import hashlib
import hmac
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

SCHEME = "scrypt"
# OWASP's scrypt settings with 32 MiB of memory: about 0.3 s per check on one core.
DEFAULT_N = 2**15
DEFAULT_R = 8
DEFAULT_P = 3
SALT_BYTES = 16
KEY_BYTES = 32
MIN_PASSWORD_LENGTH = 12
# Bounds on parameters read from a hash, so a bad users file cannot exhaust memory.
MAX_N = 2**20
MAX_R = 32
MAX_P = 16


class InvalidPasswordHashError(ValueError):
    """A string is not a password hash this module can check."""


@dataclass(frozen=True)
class ScryptHash:
    """The parts of a stored password hash."""

    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def encode(self) -> str:
        """Return the hash in its stored text form."""
        salt = base64.b64encode(self.salt).decode("ascii")
        key = base64.b64encode(self.key).decode("ascii")
        return f"{SCHEME}${self.n}${self.r}${self.p}${salt}${key}"


def _maxmem(n: int, r: int, p: int) -> int:
    # scrypt needs 128 * r * n bytes for V plus 128 * r * p for B; leave headroom.
    return 128 * r * (n + p) + 2**20


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=_maxmem(n, r, p),
        dklen=length,
    )


def parse_password_hash(hashed: str) -> ScryptHash:
    """Split a stored hash into its parts, or raise InvalidPasswordHashError.

    The error message never contains the hash itself.
    """
    parts = hashed.split("$") if isinstance(hashed, str) else []
    if len(parts) != 6 or parts[0] != SCHEME:
        raise InvalidPasswordHashError(
            "expected 'scrypt$n$r$p$salt$hash' (make one with `python -m bot hash-password`)"
        )
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error) as error:
        raise InvalidPasswordHashError("the cost parameters or the base64 parts of the hash are malformed") from error
    if n < 2 or n > MAX_N or n & (n - 1):
        raise InvalidPasswordHashError(f"n must be a power of two up to {MAX_N}")
    if not 1 <= r <= MAX_R or not 1 <= p <= MAX_P:
        raise InvalidPasswordHashError(f"r must be 1..{MAX_R} and p must be 1..{MAX_P}")
    if len(salt) < 8 or len(key) < 16:
        raise InvalidPasswordHashError("the salt or the key of the hash is too short")
    return ScryptHash(n=n, r=r, p=p, salt=salt, key=key)


def hash_password(password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    """Return a salted scrypt hash of ``password`` in the stored text form."""
    if not password:
        raise ValueError("password must not be empty")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, n, r, p, KEY_BYTES)
    hashed = ScryptHash(n=n, r=r, p=p, salt=salt, key=key)
    # Round-trip through the parser so out-of-bounds parameters fail here, not at login.
    return parse_password_hash(hashed.encode()).encode()


def verify_password(password: str, hashed: str) -> bool:
    """Return whether ``password`` matches ``hashed``; False for a malformed hash."""
    try:
        parts = parse_password_hash(hashed)
    except InvalidPasswordHashError:
        return False
    if not isinstance(password, str):
        return False
    candidate = _derive(password, parts.salt, parts.n, parts.r, parts.p, len(parts.key))
    return hmac.compare_digest(candidate, parts.key)


def dummy_hash_like(hashed: str | None) -> str:
    """Return a hash of a random password with the same cost as ``hashed``.

    Checking a password against it takes as long as checking a real one, so the
    response time does not reveal whether a username exists.
    """
    try:
        parts = parse_password_hash(hashed or "")
    except InvalidPasswordHashError:
        return hash_password(secrets.token_urlsafe(24))
    return hash_password(secrets.token_urlsafe(24), n=parts.n, r=parts.r, p=parts.p)


def _read_password(stdin: TextIO, stderr: TextIO, from_stdin: bool) -> str | None:
    if from_stdin or not stdin.isatty():
        line = stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass("New clinician password: ", stream=stderr)
    second = getpass.getpass("Repeat the password: ", stream=stderr)
    if not hmac.compare_digest(first.encode(), second.encode()):
        print("The two passwords differ; nothing was hashed.", file=stderr)
        return None
    return first


def main_hash_password(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Print the hash of a password for the console users file; return an exit code.

    The password is asked for twice without echo, or read as one line from
    standard input when it is not a terminal or ``--stdin`` is given.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = argparse.ArgumentParser(
        prog="python -m bot hash-password",
        description=(
            "Hash a clinician password for the console users file (clinicians: [{username, password_hash, name}])."
        ),
    )
    parser.add_argument(
        "--stdin",
        action="store_true",
        help="read the password as one line from standard input instead of prompting",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    password = _read_password(stdin, stderr, args.stdin)
    if password is None:
        return 1
    if len(password) < MIN_PASSWORD_LENGTH:
        print(
            f"Please choose a password of at least {MIN_PASSWORD_LENGTH} characters.",
            file=stderr,
        )
        return 1
    print(hash_password(password), file=stdout)
    return 0
