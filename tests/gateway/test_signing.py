"""Standard Webhooks signatures: what verifies, what is refused, and the published test vector."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from flowhook.gateway.signing import SignatureError, generate_secret, load_or_create_secret, sign, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = b'{"type": "user_request", "data": {"user_id": "u1", "action": "search"}}'

# The Standard Webhooks test vector (the spec's README and every reference library's tests).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_then_verify_returns_the_delivery_id() -> None:
    headers = sign(SECRET, BODY, msg_id="msg_1")
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert verify(SECRET, BODY, headers) == "msg_1"


@pytest.mark.parametrize("case", [str.title, str.upper, str.lower])
def test_header_names_are_case_insensitive(case: Callable[[str], str]) -> None:
    headers = {case(key): value for key, value in sign(SECRET, BODY, msg_id="msg_1").items()}
    assert verify(SECRET, BODY, headers) == "msg_1"


@pytest.mark.parametrize("offset", [-240, -60, 0, 60, 240])
def test_timestamps_within_five_minutes_verify(offset: int) -> None:
    headers = sign(SECRET, BODY, msg_id="msg_1", timestamp=time.time() + offset)
    assert verify(SECRET, BODY, headers) == "msg_1"


def test_a_tampered_body_is_refused() -> None:
    headers = sign(SECRET, BODY, msg_id="msg_1")
    with pytest.raises(SignatureError, match="No matching signature"):
        verify(SECRET, BODY.replace(b"u1", b"u2"), headers)


def test_a_tampered_id_or_timestamp_is_refused() -> None:
    headers = sign(SECRET, BODY, msg_id="msg_1")
    with pytest.raises(SignatureError):
        verify(SECRET, BODY, {**headers, "webhook-id": "msg_2"})
    with pytest.raises(SignatureError):
        verify(SECRET, BODY, {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1)})


def test_the_wrong_secret_is_refused() -> None:
    headers = sign(generate_secret(), BODY, msg_id="msg_1")
    with pytest.raises(SignatureError, match="No matching signature"):
        verify(SECRET, BODY, headers)


@pytest.mark.parametrize(("offset", "message"), [(-600, "too old"), (600, "too new")])
def test_a_stale_or_future_timestamp_is_refused(offset: int, message: str) -> None:
    headers = sign(SECRET, BODY, msg_id="msg_1", timestamp=time.time() + offset)
    with pytest.raises(SignatureError, match=message):
        verify(SECRET, BODY, headers)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(missing: str) -> None:
    headers = sign(SECRET, BODY, msg_id="msg_1")
    del headers[missing]
    with pytest.raises(SignatureError, match="Missing required headers"):
        verify(SECRET, BODY, headers)


@pytest.mark.parametrize("header", ["", "v1,", "garbage", "v1,a,b", "v1,!!!!", "v1,abc=", "v1:abc", "v2,AAAA"])
def test_a_malformed_signature_header_is_refused(header: str) -> None:
    headers = {**sign(SECRET, BODY, msg_id="msg_1"), "webhook-signature": header}
    with pytest.raises(SignatureError):
        verify(SECRET, BODY, headers)


@pytest.mark.parametrize("timestamp", ["", "soon", "nan", "1e400"])
def test_a_malformed_timestamp_is_refused(timestamp: str) -> None:
    headers = {**sign(SECRET, BODY, msg_id="msg_1"), "webhook-timestamp": timestamp}
    with pytest.raises(SignatureError):
        verify(SECRET, BODY, headers)


@pytest.mark.parametrize("body", [b"\xff\xfe{}", b'{"a": "\xe9"}', b"\x80"])
def test_a_non_utf8_body_is_refused(body: bytes) -> None:
    headers = sign(SECRET, b"{}", msg_id="msg_1")
    with pytest.raises(SignatureError):
        verify(SECRET, body, headers)


@pytest.mark.parametrize("new_first", [False, True])
def test_a_rotated_signature_header_with_two_signatures_verifies(new_first: bool) -> None:
    old_secret = generate_secret()
    timestamp = time.time()
    old = sign(old_secret, BODY, msg_id="msg_1", timestamp=timestamp)["webhook-signature"]
    headers = sign(SECRET, BODY, msg_id="msg_1", timestamp=timestamp)
    new = headers["webhook-signature"]
    headers["webhook-signature"] = f"{new} {old}" if new_first else f"{old} {new}"
    assert verify(SECRET, BODY, headers) == "msg_1"
    assert verify(old_secret, BODY, headers) == "msg_1"
    with pytest.raises(SignatureError):
        verify(generate_secret(), BODY, headers)


def test_an_unknown_signature_version_is_skipped_not_trusted() -> None:
    headers = sign(SECRET, BODY, msg_id="msg_1")
    good = headers["webhook-signature"].split(",", 1)[1]
    with pytest.raises(SignatureError):
        verify(SECRET, BODY, {**headers, "webhook-signature": f"v1a,{good}"})
    assert verify(SECRET, BODY, {**headers, "webhook-signature": f"v1a,AAAA v1,{good}"}) == "msg_1"


def test_sign_matches_the_standard_webhooks_test_vector() -> None:
    headers = sign(VECTOR_SECRET, VECTOR_BODY, msg_id=VECTOR_ID, timestamp=VECTOR_TIMESTAMP)
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }


def test_the_test_vector_is_hmac_sha256_of_id_timestamp_and_body() -> None:
    """Rebuilt from the spec by hand, so the vector checks the library and not only itself."""
    key = base64.b64decode(VECTOR_SECRET.removeprefix("whsec_"))
    signed = f"{VECTOR_ID}.{VECTOR_TIMESTAMP}.".encode() + VECTOR_BODY
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    assert "v1," + base64.b64encode(digest).decode() == VECTOR_SIGNATURE


def test_verify_uses_the_library_that_made_the_vector() -> None:
    # verify() refuses the vector's 2021 timestamp, so check the library's own signer on it instead.
    signature = Webhook(VECTOR_SECRET).sign(
        VECTOR_ID, datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC), VECTOR_BODY.decode()
    )
    assert signature == VECTOR_SIGNATURE
    with pytest.raises(SignatureError, match="too old"):
        verify(
            VECTOR_SECRET, VECTOR_BODY, sign(VECTOR_SECRET, VECTOR_BODY, msg_id=VECTOR_ID, timestamp=VECTOR_TIMESTAMP)
        )


def test_generate_secret_makes_distinct_32_byte_whsec_secrets() -> None:
    secrets = {generate_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_load_or_create_secret_makes_it_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dev-webhook-secret"
    secret, created = load_or_create_secret(path)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == (secret, False)
    headers = sign(secret, BODY, msg_id="msg_1")
    assert verify(secret, BODY, headers) == "msg_1"
