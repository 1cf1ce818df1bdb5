"""Standard Webhooks signatures (https://www.standardwebhooks.com), via the reference library."""

from __future__ import annotations

import base64
import functools
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def headers(*, msg_id: str, timestamp: datetime, body: str, secrets_: list[str]) -> dict[str, str]:
    """The three headers; with several secrets (during rotation) one signature per secret."""
    signatures = " ".join(
        _signer(s).sign(msg_id=msg_id, timestamp=timestamp, data=body) for s in secrets_
    )
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
    }


@functools.lru_cache(maxsize=1024)  # bounded: about 200 bytes a secret
def _signer(secret: str) -> Webhook:
    """The secret's key, decoded once (base64) rather than at every send."""
    return Webhook(secret)
