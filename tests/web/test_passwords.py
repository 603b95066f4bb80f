"""Password hashing, the hash-password command and the console users file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.web.config import ConsoleConfig, UsersFileError, load_users_file
from bot.web.passwords import (
    DEFAULT_N,
    DEFAULT_P,
    DEFAULT_R,
    InvalidPasswordHashError,
    hash_password,
    main_hash_password,
    parse_password_hash,
    verify_password,
)

from .conftest import SECRET, TEST_COST


def test_hash_round_trip_with_the_default_cost() -> None:
    hashed = hash_password("a long enough passphrase")

    scheme, n, r, p, salt, key = hashed.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", DEFAULT_N, DEFAULT_R, DEFAULT_P)
    assert salt and key
    assert verify_password("a long enough passphrase", hashed)
    assert not verify_password("a long enough passphrasE", hashed)


def test_each_hash_has_its_own_salt() -> None:
    first = hash_password("same password here", **TEST_COST)
    second = hash_password("same password here", **TEST_COST)
    assert first != second
    assert parse_password_hash(first).salt != parse_password_hash(second).salt
    assert verify_password("same password here", first)
    assert verify_password("same password here", second)


@pytest.mark.parametrize(
    "hashed",
    [
        "",
        "plaintext",
        "bcrypt$12$abc",
        "scrypt$1024$8$1$bm90LWJhc2U2NA$$",
        "scrypt$1000$8$1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
        f"scrypt${2**24}$8$1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
        "scrypt$1024$8$99$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
        "scrypt$1024$8$1$!!!$a2V5a2V5a2V5a2V5a2V5a2V5",
    ],
    ids=["empty", "plain", "other-scheme", "empty-key", "n-not-power-of-2", "n-too-big", "p-too-big", "bad-base64"],
)
def test_malformed_hashes_never_verify(hashed: str) -> None:
    with pytest.raises(InvalidPasswordHashError):
        parse_password_hash(hashed)
    assert verify_password("anything at all", hashed) is False


def test_hash_password_command_reads_stdin() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main_hash_password(
        ["--stdin"],
        stdin=io.StringIO("correct horse battery staple\n"),
        stdout=stdout,
        stderr=stderr,
    )
    assert code == 0
    hashed = stdout.getvalue().strip()
    assert verify_password("correct horse battery staple", hashed)
    assert "correct horse" not in stderr.getvalue()


def test_hash_password_command_refuses_short_passwords() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main_hash_password(["--stdin"], stdin=io.StringIO("short\n"), stdout=stdout, stderr=stderr)
    assert code == 1
    assert stdout.getvalue() == ""
    assert "at least 12 characters" in stderr.getvalue()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_users_file_is_read(tmp_path: Path, password_hashes: dict[str, str]) -> None:
    users = _write(
        tmp_path / "users.yml",
        "clinicians:\n"
        f"  - username: ana\n    password_hash: '{password_hashes['ana']}'\n"
        "    name: Dr Ana Silva\n"
        f"  - username: ben\n    password_hash: '{password_hashes['ben']}'\n",
    )

    accounts = load_users_file(users)

    assert accounts.password_hashes == password_hashes
    assert accounts.names == {"ana": "Dr Ana Silva", "ben": "ben"}
    config = ConsoleConfig(
        db_url="sqlite://",
        clinicians=accounts.password_hashes,
        clinician_names=accounts.names,
        session_secret=SECRET,
    )
    assert config.display_name("ana") == "Dr Ana Silva"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("clinicians: []\n", "non-empty list"),
        ("- just a list\n", "non-empty list"),
        ("clinicians: [\n", "not valid YAML"),
        ("clinicians:\n  - username: 'a b'\n    password_hash: x\n", "username"),
        ("clinicians:\n  - username: ana\n    password_hash: SECRET-HASH-VALUE\n", "password_hash of 'ana'"),
        (
            "clinicians:\n  - username: ana\n    password_hash: {hash}\n  - username: ana\n    password_hash: {hash}\n",
            "appears twice",
        ),
    ],
    ids=["empty", "not-a-mapping", "bad-yaml", "bad-username", "bad-hash", "duplicate"],
)
def test_users_file_errors_say_what_is_wrong_without_quoting_hashes(
    tmp_path: Path, password_hashes: dict[str, str], content: str, message: str
) -> None:
    users = _write(tmp_path / "users.yml", content.replace("{hash}", password_hashes["ana"]))
    with pytest.raises(UsersFileError) as error:
        load_users_file(users)
    assert message in str(error.value)
    assert "SECRET-HASH-VALUE" not in str(error.value)
    assert password_hashes["ana"] not in str(error.value)


def test_missing_users_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(UsersFileError, match="cannot read"):
        load_users_file(tmp_path / "nowhere.yml")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"session_secret": "short"}, "session_secret"),
        ({"base_path": "console"}, "base_path"),
        ({"base_path": "/console/"}, "base_path"),
        ({"base_path": "/api"}, "base_path"),
        ({"base_path": '/con"sole'}, "base_path"),
        ({"clinicians": {"ana": "not-a-hash"}}, "password hash of clinician 'ana'"),
        ({"session_hours": 0}, "session_hours"),
    ],
)
def test_console_config_rejects_unsafe_settings(password_hashes: dict[str, str], changes: dict, message: str) -> None:
    settings = {
        "db_url": "sqlite://",
        "clinicians": password_hashes,
        "session_secret": SECRET,
        **changes,
    }
    with pytest.raises(ValueError, match=message):
        ConsoleConfig(**settings)


def test_console_config_is_read_only(password_hashes: dict[str, str]) -> None:
    clinicians = dict(password_hashes)
    config = ConsoleConfig(db_url="sqlite://", clinicians=clinicians, session_secret=SECRET)
    clinicians["mallory"] = clinicians["ana"]
    assert "mallory" not in config.clinicians
    with pytest.raises(TypeError):
        config.clinicians["mallory"] = clinicians["ana"]  # type: ignore[index]
    assert SECRET not in repr(config)
