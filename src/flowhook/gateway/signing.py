"""Standard Webhooks signatures: verify what arrives, sign what the demo and tests send."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


class SignatureError(ValueError):
    """The delivery is not authentic: missing headers, bad signature or a stale timestamp."""


def generate_secret() -> str:
    """A new Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def load_or_create_secret(path: Path) -> tuple[str, bool]:
    """The dev secret kept at `path`, made on first use; returns (secret, created)."""
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = generate_secret()
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret, True


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """Check a delivery's signature and timestamp (±5 min); returns its `webhook-id`."""
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError as exc:
        raise SignatureError(str(exc)) from None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        # The library raises these on malformed signature headers or a non-UTF-8 body.
        raise SignatureError("Malformed signature header or body") from None
    return next(value for key, value in headers.items() if key.lower() == "webhook-id")


def sign(secret: str, body: bytes, *, msg_id: str, timestamp: float | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`."""
    ts = int(time.time() if timestamp is None else timestamp)
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}
