"""Email over TLS to an SMTP server on loopback with a certificate made by the test (its own CA):
STARTTLS and implicit TLS deliver when the CA is configured; a certificate that does not verify (unknown
CA, another name) is refused and nothing is sent, unless verification is turned off explicitly; a server
that does not offer STARTTLS never gets the message in clear."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mpp.contracts.events.notification import NotificationChannel
from mpp.notification.domain.templates import default_book, render
from mpp.notification.ports import Outcome, OutgoingMessage
from mpp.notification.providers import SmtpEmailProvider, TlsMode
from tests.integration.notification.fakes import MailBox

pytestmark = pytest.mark.integration

SENDER = "MPP Kota Sukamaju <noreply@mpp.example.id>"


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(
    directory: Path, *, server_names: tuple[str, ...] = ("localhost",), ips: tuple[str, ...] = ("127.0.0.1",)
) -> Pki:
    """A CA and a server certificate it signed, valid for the names and addresses given."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"MPP test CA {uuid.uuid4().hex[:6]}")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt = [x509.DNSName(n) for n in server_names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(server_names[0] if server_names else "server"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pki


class TlsMailBox(MailBox):
    """Keeps messages and the TLS version each one arrived over (None: in clear)."""

    def __init__(self) -> None:
        super().__init__()
        self.tls_versions: list[str | None] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        ssl_object = server.transport.get_extra_info("ssl_object") if server.transport else None
        self.tls_versions.append(ssl_object.version() if ssl_object is not None else None)
        return await super().handle_DATA(server, session, envelope)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def tls_smtp_server(pki: Pki | None, *, mode: TlsMode) -> Iterator[tuple[TlsMailBox, int]]:
    """aiosmtpd on loopback: ``starttls`` offers (and requires) STARTTLS, ``tls`` speaks TLS from the
    first byte, ``none`` offers no TLS at all."""
    box, port = TlsMailBox(), _free_port()
    context = None
    if pki is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki.cert_file, pki.key_file)
    if mode == "tls":
        controller = Controller(box, hostname="127.0.0.1", port=port, ssl_context=context)
    elif mode == "starttls":
        controller = Controller(
            box, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
        )
    else:
        controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def email() -> OutgoingMessage:
    template = default_book().find("application_returned", NotificationChannel.EMAIL)
    assert template is not None
    rendered = render(
        template,
        {
            "service_name": "Persetujuan Bangunan Gedung (PBG)",
            "missing": ["Dokumen rencana teknis"],
            "note": "Gambar struktur belum ditandatangani.",
            "site_name": "MPP Kota Sukamaju",
        },
    )
    return OutgoingMessage(str(uuid.uuid4()), NotificationChannel.EMAIL, "warga@example.id", rendered)


def provider(
    port: int, tls: TlsMode, *, host: str = "127.0.0.1", ca_file: Path | None = None, verify: bool = True
) -> SmtpEmailProvider:
    return SmtpEmailProvider(
        host=host,
        port=port,
        sender=SENDER,
        tls=tls,
        timeout_s=5.0,
        ca_file=str(ca_file) if ca_file else None,
        verify=verify,
    )


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_tls_delivers_when_the_servers_certificate_verifies(tmp_path: Path, mode: TlsMode) -> None:
    pki = make_pki(tmp_path)
    message = email()
    with tls_smtp_server(pki, mode=mode) as (box, port):
        result = await provider(port, mode, ca_file=pki.ca_file).send(message)
    assert result.outcome is Outcome.SENT
    [mail] = box.messages
    assert mail["X-MPP-Delivery-Id"] == message.delivery_id
    assert box.envelopes == [("noreply@mpp.example.id", ["warga@example.id"])]
    [version] = box.tls_versions
    assert version in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_a_certificate_from_an_unknown_ca_is_refused_and_nothing_is_sent(
    tmp_path: Path, mode: TlsMode
) -> None:
    pki = make_pki(tmp_path / "server")
    other = make_pki(tmp_path / "other")  # a CA that did not sign the server's certificate
    with tls_smtp_server(pki, mode=mode) as (box, port):
        result = await provider(port, mode, ca_file=other.ca_file).send(email())
        system_cas = await provider(port, mode).send(email())
    for refused in (result, system_cas):
        assert refused.outcome is Outcome.PERMANENT
        assert refused.error_code == "tls_certificate"
    assert box.messages == []


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_a_certificate_for_another_name_is_refused(tmp_path: Path, mode: TlsMode) -> None:
    pki = make_pki(tmp_path, server_names=("mail.mpp.example.id",), ips=())
    with tls_smtp_server(pki, mode=mode) as (box, port):
        result = await provider(port, mode, ca_file=pki.ca_file).send(email())
    assert result.outcome is Outcome.PERMANENT and result.error_code == "tls_certificate"
    assert box.messages == []


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_turning_verification_off_explicitly_sends_over_tls_anyway(
    tmp_path: Path, mode: TlsMode
) -> None:
    pki = make_pki(tmp_path, server_names=("mail.mpp.example.id",), ips=())
    with tls_smtp_server(pki, mode=mode) as (box, port):
        result = await provider(port, mode, verify=False).send(email())
    assert result.outcome is Outcome.SENT
    [version] = box.tls_versions
    assert version in ("TLSv1.2", "TLSv1.3")


async def test_starttls_configured_never_falls_back_to_clear_text(tmp_path: Path) -> None:
    with tls_smtp_server(None, mode="none") as (box, port):
        result = await provider(port, "starttls", verify=False).send(email())
    assert result.outcome is Outcome.TRANSIENT
    assert box.messages == []
