"""The secrets calendars need: feed tokens (HMAC-derived, stored hashed) and CalDAV passwords
(encrypted with Fernet under SLOTGRAPH_ENCRYPTION_KEY)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{32}$")


class KeyMissing(Exception):
    """SLOTGRAPH_ENCRYPTION_KEY is not set (or not a Fernet key) but is needed."""


# What to do, said where the key is missing or malformed (before, the API's 409 said only "is
# not set", and how to make a key was in docs/calendars.md's last section).
MAKE_ONE = (
    "Make one with `python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'`, set it for every `slotgraph serve` and `worker`, "
    "and restart them (docs/calendars.md, Security)."
)


def _keys(setting: str | None) -> list[str]:
    return [k.strip() for k in (setting or "").split(",") if k.strip()]


def configured(setting: str | None) -> bool:
    return bool(_keys(setting))


def feed_key(setting: str | None, instance_secret: str) -> bytes:
    """The HMAC key for feed tokens: from the first encryption key when one is set (so a copy of
    the database alone reveals no feed URL), else this installation's own secret."""
    keys = _keys(setting)
    material = keys[0] if keys else instance_secret
    if not material:
        raise KeyMissing("No key for feed tokens.")
    return hashlib.sha256(b"slotgraph feed token v1\0" + material.encode()).digest()


def feed_token(key: bytes, resource_id: uuid.UUID, generation: int) -> str:
    mac = hmac.new(key, f"{resource_id}:{generation}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def fernet(setting: str | None) -> MultiFernet:
    """All configured keys: the first encrypts, any of them decrypts (key rotation)."""
    keys = _keys(setting)
    if not keys:
        raise KeyMissing(f"SLOTGRAPH_ENCRYPTION_KEY is not set. {MAKE_ONE}")
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError as exc:
        raise KeyMissing(
            "SLOTGRAPH_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64-encoded bytes), "
            f"comma-separated. {MAKE_ONE}"
        ) from exc


def encrypt(setting: str | None, plain: str) -> str:
    return fernet(setting).encrypt(plain.encode()).decode()


def decrypt(setting: str | None, token: str) -> str:
    try:
        return fernet(setting).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise KeyMissing("No key in SLOTGRAPH_ENCRYPTION_KEY decrypts this password.") from exc
