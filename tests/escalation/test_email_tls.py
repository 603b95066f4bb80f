"""E-mail alerts over STARTTLS verify the server: a self-signed one is refused unless its CA is configured."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.escalation.config import EscalationConfig
from bot.escalation.notifiers import Alert, EmailNotifier, build_notifiers

from .test_escalation_notifiers import alert  # noqa: F401  # the fixture


def self_signed_certificate(directory: Path) -> Tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by itself; returns (cert, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class StartTlsSink:
    """An SMTP server on 127.0.0.1 that offers STARTTLS and accepts mail only after it."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.messages: List[Message] = []
        self.handshake_errors: List[str] = []
        self.logins: List[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "StartTlsSink":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                try:
                    self._session(connection)
                except (OSError, ssl.SSLError) as error:
                    self.handshake_errors.append(type(error).__name__)

    def _session(self, connection: socket.socket) -> None:
        stream: socket.socket = connection
        reader = stream.makefile("rb")
        secure = False
        stream.sendall(b"220 sink ESMTP\r\n")
        while line := reader.readline():
            command = line[:4].upper()
            if command == b"EHLO":
                offer = b"250-sink\r\n250-AUTH PLAIN\r\n250 OK\r\n" if secure else b"250-sink\r\n250 STARTTLS\r\n"
                stream.sendall(offer)
            elif command == b"STAR":
                stream.sendall(b"220 go ahead\r\n")
                stream = self.context.wrap_socket(connection, server_side=True)
                reader = stream.makefile("rb")
                secure = True
            elif command == b"AUTH":
                self.logins.append(line)
                stream.sendall(b"235 ok\r\n")
            elif command == b"DATA" and secure:
                stream.sendall(b"354 go\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    data += reader.readline()
                self.messages.append(message_from_bytes(data[: -len(b".\r\n")]))
                stream.sendall(b"250 queued\r\n")
            elif command == b"QUIT":
                stream.sendall(b"221 bye\r\n")
                return
            elif not secure and command in (b"MAIL", b"RCPT", b"DATA"):
                stream.sendall(b"530 STARTTLS first\r\n")
            else:
                stream.sendall(b"250 ok\r\n")


@pytest.fixture
def certificate(tmp_path: Path) -> Tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


def _notifier(port: int, ca_file: Optional[str] = None, user: Optional[str] = None) -> EmailNotifier:
    return EmailNotifier(
        "127.0.0.1", port, user, "smtp-password" if user else None, "bot@example.org", ["oncall@example.org"],
        starttls=True, ca_file=ca_file,
    )


def test_a_server_with_an_unverifiable_certificate_gets_no_alert_and_no_password(
    certificate: Tuple[Path, Path], alert: Alert  # noqa: F811
) -> None:
    with StartTlsSink(*certificate) as sink:
        with pytest.raises(ssl.SSLCertVerificationError):
            asyncio.run(_notifier(sink.port, user="alerts").send(alert))

    assert sink.messages == [] and sink.logins == []


def test_with_its_ca_configured_the_alert_is_delivered_over_tls(
    certificate: Tuple[Path, Path], alert: Alert  # noqa: F811
) -> None:
    cert, _ = certificate
    with StartTlsSink(*certificate) as sink:
        asyncio.run(_notifier(sink.port, ca_file=str(cert), user="alerts").send(alert))

    [message] = sink.messages
    assert message["Subject"] == "URGENT: Risk escalation (suicide)"
    assert len(sink.logins) == 1, "the login went over the verified connection"


def test_smtp_ca_file_reaches_the_notifier(tmp_path: Path) -> None:
    from bot.settings import escalation_config_from_env

    config = escalation_config_from_env(
        {"SMTP_HOST": "smtp.example.org", "SMTP_FROM": "a@example.org", "SMTP_TO": "b@example.org",
         "SMTP_CA_FILE": "/etc/clinic-ca.pem"},
        tmp_path,
    )
    notifier = build_notifiers(config)["email"]

    assert isinstance(notifier, EmailNotifier) and notifier.ca_file == "/etc/clinic-ca.pem"
    assert EscalationConfig().smtp_ca_file is None
    assert _notifier(25).tls_context().verify_mode == ssl.CERT_REQUIRED
    assert _notifier(25).tls_context().check_hostname
