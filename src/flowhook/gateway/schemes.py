"""Webhook signature schemes: check what arrives, sign what the tests, the demo and the docs send.

`SignatureConfig.scheme` picks Standard Webhooks, GitHub, Stripe or a configurable HMAC. The raw body
bytes are checked before anything parses them; every fault in a delivery becomes a `SignatureError`
with a machine-readable code, while a fault in the configuration stays a plain `ValueError`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from secrets import token_bytes, token_urlsafe
from typing import assert_never

from flowhook.gateway.headers import Headers
from flowhook.gateway.sources import SignatureConfig

# Longer header values are refused unread: no sender needs them, and parsing them costs.
_MAX_HEADER = 8192
# Whole seconds, at most 12 ASCII digits (`\d` would admit other scripts' digits, which int() accepts).
_SECONDS = re.compile(r"[0-9]{1,12}")
# Standard Webhooks libraries parse the timestamp as a float and sign its floor.
_SECONDS_FRACTION = re.compile(r"([0-9]{1,12})(?:\.[0-9]*)?")
_HEX = re.compile(r"[0-9a-fA-F]*")
_WHSEC = "whsec_"


@dataclass(frozen=True)
class Verified:
    """What an authentic delivery says about itself, where its scheme says it."""

    delivery_id: str | None
    signed_at: datetime | None


class SignatureError(ValueError):
    """A delivery that is not authentic: `code` for programs, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def verify(
    config: SignatureConfig,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    now: float | None = None,
) -> Verified:
    """Accept a delivery signed with any of `secrets` (current first, then those kept during a rotation)."""
    return verify_with_keys(config, body, headers, [signing_key(config, secret) for secret in secrets], now=now)


def verify_with_keys(
    config: SignatureConfig,
    body: bytes,
    headers: Mapping[str, str],
    keys: Sequence[bytes],
    *,
    now: float | None = None,
) -> Verified:
    """`verify` with the secrets' HMAC keys (`signing_key`) already derived: for the gateway, which keeps them."""
    if not keys:
        raise ValueError("no secret to verify deliveries against")
    # The gateway's Headers are lower-cased already; anything else is copied so.
    lowered = headers if isinstance(headers, Headers) else {key.lower(): value for key, value in headers.items()}
    clock = time.time() if now is None else now
    if config.scheme == "standard":
        return _verify_standard(config, body, lowered, keys, clock)
    if config.scheme == "github":
        return _verify_github(body, lowered, keys)
    if config.scheme == "stripe":
        return _verify_stripe(config, body, lowered, keys, clock)
    if config.scheme == "hmac":
        return _verify_hmac(config, body, lowered, keys, clock)
    assert_never(config.scheme)


def sign(
    config: SignatureConfig,
    body: bytes,
    secret: str,
    *,
    msg_id: str | None = None,
    timestamp: float | None = None,
) -> dict[str, str]:
    """The headers a real sender attaches to `body`; `msg_id` is used by standard and github only."""
    return sign_with_key(config, body, signing_key(config, secret), msg_id=msg_id, timestamp=timestamp)


def sign_with_key(
    config: SignatureConfig,
    body: bytes,
    key: bytes,
    *,
    msg_id: str | None = None,
    timestamp: float | None = None,
) -> dict[str, str]:
    """`sign` with the secret's HMAC key (`signing_key`) already derived: for a sender that signs many bodies."""
    seconds = math.floor(time.time() if timestamp is None else timestamp)
    if config.scheme == "standard":
        msg_id = f"msg_{token_urlsafe(18)}" if msg_id is None else msg_id
        digest = hmac.digest(key, f"{msg_id}.{seconds}.".encode() + body, "sha256")
        signature = "v1," + base64.b64encode(digest).decode()
        return {"webhook-id": msg_id, "webhook-timestamp": str(seconds), "webhook-signature": signature}
    if config.scheme == "github":
        delivery = str(uuid.uuid4()) if msg_id is None else msg_id
        digest = hmac.digest(key, body, "sha256")
        return {"X-GitHub-Delivery": delivery, "X-Hub-Signature-256": "sha256=" + digest.hex()}
    if config.scheme == "stripe":
        digest = hmac.digest(key, f"{seconds}.".encode() + body, "sha256")
        return {"Stripe-Signature": f"t={seconds},v1={digest.hex()}"}
    if config.scheme == "hmac":
        header = _hmac_header(config)
        signed = f"{seconds}.".encode() + body if config.timestamp_header else body
        digest = hmac.digest(key, signed, config.algorithm)
        encoded = digest.hex() if config.encoding == "hex" else base64.b64encode(digest).decode()
        headers = {header: config.prefix + encoded}
        if config.timestamp_header:
            headers[config.timestamp_header] = str(seconds)
        return headers
    assert_never(config.scheme)


def generate_secret(config: SignatureConfig) -> str:
    """A new secret in the form this scheme's senders issue."""
    match config.scheme:
        case "standard":
            return _WHSEC + base64.b64encode(token_bytes(32)).decode()
        case "stripe":
            return _WHSEC + token_urlsafe(24)  # 24 bytes are 32 url-safe characters
        case "github" | "hmac":
            return token_urlsafe(24)
        case _:
            assert_never(config.scheme)


def _verify_standard(
    config: SignatureConfig, body: bytes, headers: Mapping[str, str], keys: Sequence[bytes], now: float
) -> Verified:
    msg_id = _header(headers, "webhook-id")
    seconds = _seconds(_header(headers, "webhook-timestamp"), "webhook-timestamp", _SECONDS_FRACTION)
    entries = _header(headers, "webhook-signature").split()
    candidates = [_base64(value, 32) for version, _, value in (e.partition(",") for e in entries) if version == "v1"]
    _match(candidates, keys, _utf8(msg_id, "webhook-id") + f".{seconds}.".encode() + body, "sha256")
    return Verified(msg_id, _within(seconds, now, config.tolerance_seconds))


def _verify_github(body: bytes, headers: Mapping[str, str], keys: Sequence[bytes]) -> Verified:
    algorithm, _, digest = _header(headers, "x-hub-signature-256").partition("=")
    if algorithm != "sha256":
        raise SignatureError("malformed_signature", "X-Hub-Signature-256 is not `sha256=<hex digest>`")
    _match([_hex(digest, 32)], keys, body, "sha256")
    delivery = headers.get("x-github-delivery", "").strip()
    if len(delivery) > _MAX_HEADER:
        raise SignatureError("malformed_signature", "X-GitHub-Delivery is too long")
    return Verified(delivery or None, None)


def _verify_stripe(
    config: SignatureConfig, body: bytes, headers: Mapping[str, str], keys: Sequence[bytes], now: float
) -> Verified:
    stamps: list[str] = []
    candidates: list[bytes | None] = []
    for item in _header(headers, "stripe-signature").split(","):
        if not item.strip():
            continue  # a stray comma; Stripe's own libraries skip it too
        name, equals, value = item.strip().partition("=")
        if not equals:
            raise SignatureError("malformed_signature", "Stripe-Signature items are `key=value`, separated by commas")
        if name == "t":
            stamps.append(value)
        elif name == "v1":
            candidates.append(_hex(value, 32, strict=False))
    if len(stamps) != 1:
        raise SignatureError("malformed_signature", "Stripe-Signature needs exactly one `t=<unix seconds>`")
    seconds = _seconds(stamps[0], "Stripe-Signature t", _SECONDS)
    _match(candidates, keys, f"{seconds}.".encode() + body, "sha256")
    return Verified(None, _within(seconds, now, config.tolerance_seconds))


def _verify_hmac(
    config: SignatureConfig, body: bytes, headers: Mapping[str, str], keys: Sequence[bytes], now: float
) -> Verified:
    header = _hmac_header(config)
    value = _header(headers, header.lower())
    if not value.startswith(config.prefix):
        raise SignatureError("malformed_signature", f"{header} does not start with {config.prefix!r}")
    size = hashlib.new(config.algorithm).digest_size
    encoded = value.removeprefix(config.prefix)
    candidate = _hex(encoded, size) if config.encoding == "hex" else _base64(encoded, size, strict=True)
    if config.timestamp_header is None:
        _match([candidate], keys, body, config.algorithm)
        return Verified(None, None)
    raw = _header(headers, config.timestamp_header.lower())
    seconds = _seconds(raw, config.timestamp_header, _SECONDS)
    _match([candidate], keys, raw.encode() + b"." + body, config.algorithm)
    return Verified(None, _within(seconds, now, config.tolerance_seconds))


def signing_key(config: SignatureConfig, secret: str) -> bytes:
    """The HMAC key for `secret`: base64 after `whsec_` for standard, the UTF-8 text for the others."""
    if not secret:
        raise ValueError("an empty secret authenticates nothing")
    if config.scheme != "standard":
        return secret.encode()  # Stripe too: its libraries key with the whole `whsec_...` text
    text = secret.removeprefix(_WHSEC)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        raise ValueError("a Standard Webhooks secret is `whsec_` followed by base64") from None
    if not key:
        raise ValueError("a Standard Webhooks secret needs key bytes after `whsec_`")
    return key


def _hmac_header(config: SignatureConfig) -> str:
    if config.header is None:
        raise ValueError("scheme hmac needs `header`: the header that carries the signature")
    return config.header


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise SignatureError("missing_signature", f"the {name} header is missing")
    value = value.strip()
    if not value:
        raise SignatureError("malformed_signature", f"the {name} header is empty")
    if len(value) > _MAX_HEADER:
        raise SignatureError("malformed_signature", f"the {name} header is longer than {_MAX_HEADER} characters")
    return value


def _seconds(text: str, what: str, pattern: re.Pattern[str]) -> int:
    match = pattern.fullmatch(text)
    if match is None:
        raise SignatureError("malformed_signature", f"{what} is not a UNIX timestamp in seconds")
    return int(match.group(1) if match.groups() else match.group(0))


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise SignatureError("malformed_signature", f"{what} is not valid text") from None


def _hex(text: str, size: int, *, strict: bool = True) -> bytes | None:
    """Digest bytes from hex; a malformed one is an error, or None where the scheme skips it."""
    if len(text) == 2 * size and _HEX.fullmatch(text):
        return bytes.fromhex(text)
    if strict:
        raise SignatureError("malformed_signature", f"the signature is not {2 * size} hex digits")
    return None


def _base64(text: str, size: int, *, strict: bool = False) -> bytes | None:
    """Digest bytes from base64; a malformed one is an error, or None where the scheme skips it."""
    try:
        digest = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        digest = b""
    if len(digest) == size:
        return digest
    if strict:
        raise SignatureError("malformed_signature", f"the signature is not {size} bytes in base64")
    return None


def _match(candidates: Sequence[bytes | None], keys: Sequence[bytes], signed: bytes, algorithm: str) -> None:
    """Pass if any well-formed candidate is the HMAC of `signed` under any key, compared in constant time."""
    usable = [candidate for candidate in candidates if candidate is not None]
    if not usable:
        raise SignatureError("malformed_signature", "the header holds no well-formed signature of a known version")
    for key in keys:
        expected = hmac.digest(key, signed, algorithm)
        if any(hmac.compare_digest(expected, candidate) for candidate in usable):
            return
    raise SignatureError("invalid_signature", "no signature matches the body under a configured secret")


def _within(seconds: int, now: float, tolerance: int) -> datetime:
    """The signing time, once it is known to be within `tolerance` of `now` (checked after the signature)."""
    age = now - seconds
    limit = f"the limit is {tolerance} s"
    if age > tolerance:
        raise SignatureError("stale_timestamp", f"signed {math.ceil(age)} s ago; {limit}")
    if -age > tolerance:
        raise SignatureError("future_timestamp", f"signed {math.ceil(-age)} s in the future; {limit}")
    return datetime.fromtimestamp(seconds, UTC)
