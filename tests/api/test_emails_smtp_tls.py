"""SLOTGRAPH_SMTP_URL over TLS with a login, against a real aiosmtpd on loopback: STARTTLS
required (`smtp://...?starttls=true`) and TLS from the first byte (`smtps://`), each with AUTH
required and a certificate from a private CA trusted through `?ca_file=` (docs/emails.md)."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.settings import Settings
from slotgraph.worker import Worker
from tests.api.conftest import Api, Clock, make_api
from tests.api.test_emails import BASE, book_ann, drain, resource
from tests.conftest import clean
from tests.mailbox import Mailbox, free_port

USER, PASSWORD = "mailer@book.example", "s3cret:pass"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate it signed for localhost and 127.0.0.1."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("slotgraph test CA"))
        .issuer_name(_name("slotgraph test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca_cert.public_bytes(pem))
    cert_file.write_bytes(cert.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, cert_file, key_file


def authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    """Accepts USER/PASSWORD, and only inside TLS (aiosmtpd's `auth_require_tls` knows
    STARTTLS only, so with TLS from the first byte this is the check)."""
    over_tls = server.transport.get_extra_info("ssl_object") is not None
    login = (auth_data.login, auth_data.password) if isinstance(auth_data, LoginPassword) else None
    ok = over_tls and login == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@contextmanager
def tls_server(tmp_path: Path, *, implicit: bool) -> Iterator[tuple[Mailbox, Path]]:
    ca_file, cert_file, key_file = make_certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    box = Mailbox(free_port())
    common: dict[str, Any] = {
        "hostname": "127.0.0.1",
        "port": box.port,
        "authenticator": authenticate,
    }
    if implicit:
        controller = Controller(box, ssl_context=context, auth_require_tls=False, **common)
    else:
        controller = Controller(
            box, tls_context=context, require_starttls=True, auth_require_tls=True, **common
        )
    controller.start()
    try:
        yield box, ca_file
    finally:
        controller.stop()


def smtp_url(box: Mailbox, ca_file: Path, *, implicit: bool, password: str = PASSWORD) -> str:
    login = f"mailer%40book.example:{password.replace(':', '%3A')}@"
    if implicit:
        return f"smtps://{login}localhost:{box.port}?ca_file={ca_file}"
    return f"smtp://{login}localhost:{box.port}?starttls=true&ca_file={ca_file}"


def settings(url: str) -> Settings:
    return Settings(run_worker=False, smtp_url=url, public_url=BASE)


@pytest.fixture(params=["starttls", "smtps"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Mailbox, Path, bool]]:
    implicit = request.param == "smtps"
    with tls_server(tmp_path, implicit=implicit) as (box, ca_file):
        yield box, ca_file, implicit


@pytest.fixture
async def tls_api(engine: AsyncEngine) -> AsyncIterator[Api]:
    await clean(engine)
    clock = Clock()
    http, created = await make_api(engine, clock, Settings(run_worker=False, public_url=BASE))
    async with http:
        yield Api(http, created.secret_key, created.public_key, clock, engine.dialect.name)


async def errors(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        query = text("SELECT error FROM delivery_attempts WHERE error IS NOT NULL")
        return list((await conn.execute(query)).scalars())


def worker(engine: AsyncEngine, api: Api, url: str) -> Worker:
    return Worker(engine, settings(url), clock=api.clock, jitter=lambda: 0.0, worker_id="mail")


async def book_and_send(engine: AsyncEngine, api: Api, url: str) -> None:
    """Ann books (her email is the only one: the resource has none), and the worker sends."""
    await book_ann(api, await resource(api, email=None))
    await drain(worker(engine, api, url))


async def test_a_booking_email_arrives_over_tls_with_a_login(
    engine: AsyncEngine, tls_api: Api, server: tuple[Mailbox, Path, bool]
) -> None:
    box, ca_file, implicit = server
    await book_and_send(engine, tls_api, smtp_url(box, ca_file, implicit=implicit))
    assert await errors(engine) == []
    (booked,) = box.received
    assert booked.rcpt_tos == ["ann@example.com"]
    assert booked.subject.startswith("Booked: Dr. Berg, Saturday 18 May 2024")


async def test_a_wrong_password_is_refused_logged_and_retried(
    engine: AsyncEngine, tls_api: Api, server: tuple[Mailbox, Path, bool]
) -> None:
    box, ca_file, implicit = server
    await book_and_send(
        engine, tls_api, smtp_url(box, ca_file, implicit=implicit, password="wrong")
    )
    assert box.received == []
    async with engine.connect() as conn:
        attempts = (
            await conn.execute(text("SELECT attempt, status_code, error FROM delivery_attempts"))
        ).all()
        pending = (await conn.execute(text("SELECT status, attempts FROM deliveries"))).all()
    assert [(a[0], a[1]) for a in attempts] == [(1, 535)], attempts
    assert "wrong" not in attempts[0][2]  # the password is never logged
    assert [tuple(p) for p in pending] == [("pending", 1)]
    # The operator fixes the password; the retry 5 s later goes through.
    tls_api.clock.advance(timedelta(seconds=6))
    await drain(worker(engine, tls_api, smtp_url(box, ca_file, implicit=implicit)))
    assert [r.rcpt_tos for r in box.received] == [["ann@example.com"]]


async def test_a_certificate_from_an_untrusted_ca_is_refused(
    engine: AsyncEngine, tls_api: Api, server: tuple[Mailbox, Path, bool], tmp_path: Path
) -> None:
    box, _, implicit = server
    (tmp_path / "other").mkdir()
    other_ca, _, _ = make_certificates(tmp_path / "other")
    await book_and_send(engine, tls_api, smtp_url(box, other_ca, implicit=implicit))
    assert box.received == []
    (error,) = await errors(engine)
    assert "CERTIFICATE_VERIFY_FAILED" in error
