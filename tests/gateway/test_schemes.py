"""Signature schemes: published vectors, what each scheme accepts and refuses, and that bad input only
ever raises `SignatureError`."""

from __future__ import annotations

import base64
import random
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from starlette.datastructures import Headers

from flowhook.gateway.schemes import SignatureError, Verified, generate_secret, sign, verify
from flowhook.sources.webhook import SignatureConfig

NOW = 1_700_000_000
BODY = b'{"type": "user_request", "data": {"user_id": "u1", "action": "search"}}'

CONFIGS: dict[str, SignatureConfig] = {
    "standard": SignatureConfig(scheme="standard"),
    "github": SignatureConfig(scheme="github"),
    "stripe": SignatureConfig(scheme="stripe"),
    "hmac-timestamp": SignatureConfig(
        scheme="hmac", header="X-Signature", prefix="sha256=", timestamp_header="X-Signature-Timestamp"
    ),
    "hmac-base64": SignatureConfig(scheme="hmac", header="X-Shopify-Hmac-Sha256", encoding="base64"),
    "hmac-sha512": SignatureConfig(scheme="hmac", header="X-Sig", algorithm="sha512", prefix="v1="),
}
SCHEMES = list(CONFIGS)
TIMESTAMPED = ["standard", "stripe", "hmac-timestamp"]
SECRETS = {name: generate_secret(config) for name, config in CONFIGS.items()}
# The headers each scheme cannot verify without (GitHub's delivery id is optional).
REQUIRED = {
    "standard": ["webhook-id", "webhook-timestamp", "webhook-signature"],
    "github": ["X-Hub-Signature-256"],
    "stripe": ["Stripe-Signature"],
    "hmac-timestamp": ["X-Signature", "X-Signature-Timestamp"],
    "hmac-base64": ["X-Shopify-Hmac-Sha256"],
    "hmac-sha512": ["X-Sig"],
}

# Standard Webhooks: the vector in the spec's README and every reference library's tests
# (github.com/standard-webhooks/standard-webhooks, libraries/python/tests).
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STANDARD_TIMESTAMP = 1614265330
STANDARD_BODY = b'{"test": 2432232314}'
STANDARD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# GitHub: docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries,
# "Testing the webhook payload validation".
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# Stripe: a header Stripe really sent, kept in stripe-dotnet's tests
# (src/Stripe.Tests.XUnit/events/when_constructing_an_event.cs with events/event.json, commit 0fec460).
# The signed body is event.json without the file's final newline; the v0 entry is an old scheme, ignored.
STRIPE_SECRET = "whsec_H68eTX02a4bCbiQOOoSAsIytOvuWZrQC"
STRIPE_TIMESTAMP = 1493329224
STRIPE_V1 = "09b8e30b483570b410390cdac6327c036937e84a6316008a0143db833ac21a09"
STRIPE_HEADER = (
    f"t={STRIPE_TIMESTAMP},v1={STRIPE_V1},v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef"
)
STRIPE_BODY = b"""{
  "id": "evt_1ADKLLLWlyqCpbLp0qRyqExL",
  "object": "event",
  "api_version": "2017-04-06",
  "created": 1493329207,
  "data": {
    "object": {
      "id": "ii_1ACxoELWlyqCpbLpBSzyGWHX",
      "object": "invoiceitem",
      "amount": 1000,
      "currency": "usd",
      "customer": "cus_AY3wPzBBv9DU2H",
      "date": 1493242586,
      "description": "Test Invoice Item",
      "discountable": false,
      "invoice": "in_1ADKLKLWlyqCpbLpMhrRBk7u",
      "livemode": false,
      "metadata": {
        "A": "Value-A",
        "B": "Value-B"
      },
      "period": {
        "start": 1493242586,
        "end": 1493242586
      },
      "plan": null,
      "proration": false,
      "quantity": null,
      "subscription": null
    },
    "previous_attributes": {
      "invoice": null
    }
  },
  "livemode": false,
  "pending_webhooks": 2,
  "request": null,
  "type": "invoiceitem.updated"
}"""

# Generic HMAC: RFC 4231 test case 2 (SHA-256, SHA-512) and RFC 2202 test case 2 (SHA-1).
RFC_KEY = "Jefe"
RFC_BODY = b"what do ya want for nothing?"
RFC_DIGESTS = [
    ("sha1", "hex", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    ("sha256", "hex", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ("sha256", "base64", "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="),
    (
        "sha512",
        "hex",
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fd"
        "caeab1a34d4a6b4b636e070a38bce737",
    ),
]


def _signed(name: str, body: bytes = BODY, secret: str | None = None, offset: float = 0) -> dict[str, str]:
    return sign(CONFIGS[name], body, secret or SECRETS[name], msg_id="msg_1", timestamp=NOW + offset)


def _check(name: str, body: bytes, headers: Mapping[str, str], secrets: list[str] | None = None) -> Verified:
    return verify(CONFIGS[name], body, headers, secrets or [SECRETS[name]], now=NOW)


def _refusal(name: str, body: bytes, headers: Mapping[str, str], secrets: list[str] | None = None) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        _check(name, body, headers, secrets)
    return caught.value


def _replaced(headers: Mapping[str, str], name: str, value: str | None) -> dict[str, str]:
    """`headers` with `name` (any case) set to `value`, or removed for None."""
    kept = {key: old for key, old in headers.items() if key.lower() != name.lower()}
    return kept if value is None else {**kept, name: value}


@pytest.mark.parametrize(
    ("config", "body", "headers", "secret", "now", "expected"),
    [
        pytest.param(
            CONFIGS["standard"],
            STANDARD_BODY,
            {
                "webhook-id": STANDARD_ID,
                "webhook-timestamp": str(STANDARD_TIMESTAMP),
                "webhook-signature": STANDARD_SIGNATURE,
            },
            STANDARD_SECRET,
            STANDARD_TIMESTAMP,
            Verified(STANDARD_ID, datetime(2021, 2, 25, 15, 2, 10, tzinfo=UTC)),
            id="standard",
        ),
        pytest.param(
            CONFIGS["github"],
            GITHUB_BODY,
            {"X-Hub-Signature-256": GITHUB_SIGNATURE, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
            GITHUB_SECRET,
            NOW,
            Verified("72d3162e-cc78-11e3-81ab-4c9367dc0958", None),
            id="github",
        ),
        pytest.param(
            CONFIGS["stripe"],
            STRIPE_BODY,
            {"Stripe-Signature": STRIPE_HEADER},
            STRIPE_SECRET,
            STRIPE_TIMESTAMP + 5,
            Verified(None, datetime(2017, 4, 27, 21, 40, 24, tzinfo=UTC)),
            id="stripe",
        ),
        pytest.param(
            SignatureConfig(scheme="hmac", header="X-Hub-Signature-256", prefix="sha256="),
            GITHUB_BODY,
            {"X-Hub-Signature-256": GITHUB_SIGNATURE},
            GITHUB_SECRET,
            NOW,
            Verified(None, None),
            id="hmac-as-github",
        ),
    ],
)
def test_published_vectors_verify(
    config: SignatureConfig, body: bytes, headers: dict[str, str], secret: str, now: float, expected: Verified
) -> None:
    assert verify(config, body, headers, [secret], now=now) == expected
    with pytest.raises(SignatureError) as caught:
        verify(config, body + b" ", headers, [secret], now=now)
    assert caught.value.code == "invalid_signature"


@pytest.mark.parametrize(
    ("config", "body", "secret", "msg_id", "timestamp", "expected"),
    [
        pytest.param(
            CONFIGS["standard"],
            STANDARD_BODY,
            STANDARD_SECRET,
            STANDARD_ID,
            STANDARD_TIMESTAMP,
            {
                "webhook-id": STANDARD_ID,
                "webhook-timestamp": str(STANDARD_TIMESTAMP),
                "webhook-signature": STANDARD_SIGNATURE,
            },
            id="standard",
        ),
        pytest.param(
            CONFIGS["github"],
            GITHUB_BODY,
            GITHUB_SECRET,
            "delivery-1",
            None,
            {"X-GitHub-Delivery": "delivery-1", "X-Hub-Signature-256": GITHUB_SIGNATURE},
            id="github",
        ),
        pytest.param(
            CONFIGS["stripe"],
            STRIPE_BODY,
            STRIPE_SECRET,
            None,
            STRIPE_TIMESTAMP,
            {"Stripe-Signature": f"t={STRIPE_TIMESTAMP},v1={STRIPE_V1}"},
            id="stripe",
        ),
    ],
)
def test_sign_reproduces_published_vectors(
    config: SignatureConfig,
    body: bytes,
    secret: str,
    msg_id: str | None,
    timestamp: float | None,
    expected: dict[str, str],
) -> None:
    assert sign(config, body, secret, msg_id=msg_id, timestamp=timestamp) == expected


@pytest.mark.parametrize(("algorithm", "encoding", "digest"), RFC_DIGESTS)
def test_hmac_matches_the_rfc_vectors(algorithm: str, encoding: str, digest: str) -> None:
    config = SignatureConfig.model_validate(
        {"scheme": "hmac", "header": "X-Sig", "algorithm": algorithm, "encoding": encoding, "prefix": "sig="}
    )
    assert sign(config, RFC_BODY, RFC_KEY) == {"X-Sig": "sig=" + digest}
    assert verify(config, RFC_BODY, {"x-sig": "sig=" + digest}, [RFC_KEY]) == Verified(None, None)


@pytest.mark.parametrize(
    ("name", "msg_id", "expected"),
    [
        ("standard", "msg_1", Verified("msg_1", datetime.fromtimestamp(NOW, UTC))),
        ("github", "msg_1", Verified("msg_1", None)),
        ("stripe", None, Verified(None, datetime.fromtimestamp(NOW, UTC))),
        ("hmac-timestamp", None, Verified(None, datetime.fromtimestamp(NOW, UTC))),
        ("hmac-base64", None, Verified(None, None)),
        ("hmac-sha512", None, Verified(None, None)),
    ],
)
def test_a_signed_delivery_verifies_with_its_id_and_time(name: str, msg_id: str | None, expected: Verified) -> None:
    headers = sign(CONFIGS[name], BODY, SECRETS[name], msg_id=msg_id, timestamp=NOW + 0.9)
    verified = _check(name, BODY, headers)
    assert verified == expected
    assert verified.signed_at is None or verified.signed_at.tzinfo is UTC


@pytest.mark.parametrize("name", SCHEMES)
def test_sign_and_verify_default_to_the_real_clock(name: str) -> None:
    headers = sign(CONFIGS[name], BODY, SECRETS[name])
    verified = verify(CONFIGS[name], BODY, headers, [SECRETS[name]])
    if name in TIMESTAMPED:
        assert verified.signed_at is not None
        assert abs(verified.signed_at.timestamp() - time.time()) < 5


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("standard", {"webhook-id", "webhook-timestamp", "webhook-signature"}),
        ("github", {"X-GitHub-Delivery", "X-Hub-Signature-256"}),
        ("stripe", {"Stripe-Signature"}),
        ("hmac-timestamp", {"X-Signature", "X-Signature-Timestamp"}),
        ("hmac-base64", {"X-Shopify-Hmac-Sha256"}),
        ("hmac-sha512", {"X-Sig"}),
    ],
)
def test_sign_sends_the_headers_a_real_sender_sends(name: str, expected: set[str]) -> None:
    assert set(_signed(name)) == expected


@pytest.mark.parametrize("name", ["standard", "github"])
def test_sign_makes_a_fresh_delivery_id_when_none_is_given(name: str) -> None:
    first, second = (sign(CONFIGS[name], BODY, SECRETS[name], timestamp=NOW) for _ in range(2))
    assert _check(name, BODY, first).delivery_id != _check(name, BODY, second).delivery_id


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title, lambda key: key])
@pytest.mark.parametrize("name", SCHEMES)
def test_header_names_are_case_insensitive(name: str, case: Callable[[str], str]) -> None:
    headers = {case(key): value for key, value in _signed(name).items()}
    assert _check(name, BODY, headers) == _check(name, BODY, _signed(name))


@pytest.mark.parametrize("name", SCHEMES)
def test_whitespace_around_header_values_is_ignored(name: str) -> None:
    headers = {key: f" {value}\t" for key, value in _signed(name).items()}
    assert _check(name, BODY, headers) == _check(name, BODY, _signed(name))


@pytest.mark.parametrize("name", SCHEMES)
def test_starlette_headers_are_accepted(name: str) -> None:
    assert _check(name, BODY, Headers(headers=_signed(name))) == _check(name, BODY, _signed(name))


@pytest.mark.parametrize("name", SCHEMES)
@pytest.mark.parametrize("tampered", [BODY.replace(b"u1", b"u2"), BODY + b"\n", b"", BODY[:-1]])
def test_a_tampered_body_is_refused(name: str, tampered: bytes) -> None:
    assert _refusal(name, tampered, _signed(name)).code == "invalid_signature"


@pytest.mark.parametrize("name", SCHEMES)
def test_the_wrong_secret_is_refused(name: str) -> None:
    headers = _signed(name, secret=generate_secret(CONFIGS[name]))
    assert _refusal(name, BODY, headers).code == "invalid_signature"


@pytest.mark.parametrize(("name", "header"), [("standard", "webhook-id"), ("standard", "webhook-timestamp")])
def test_a_tampered_signed_header_is_refused(name: str, header: str) -> None:
    headers = _signed(name)
    value = "msg_2" if header == "webhook-id" else str(NOW - 1)
    assert _refusal(name, BODY, _replaced(headers, header, value)).code == "invalid_signature"


def test_a_tampered_stripe_or_hmac_timestamp_is_refused() -> None:
    stripe = _signed("stripe")["Stripe-Signature"].replace(f"t={NOW}", f"t={NOW - 1}")
    assert _refusal("stripe", BODY, {"Stripe-Signature": stripe}).code == "invalid_signature"
    headers = _replaced(_signed("hmac-timestamp"), "X-Signature-Timestamp", str(NOW - 1))
    assert _refusal("hmac-timestamp", BODY, headers).code == "invalid_signature"


@pytest.mark.parametrize("name", SCHEMES)
def test_an_old_secret_listed_second_still_verifies_during_a_rotation(name: str) -> None:
    config = CONFIGS[name]
    old, new, stranger = (generate_secret(config) for _ in range(3))
    assert _check(name, BODY, _signed(name, secret=old), [new, old]) == _check(
        name, BODY, _signed(name, secret=new), [new, old]
    )
    assert _refusal(name, BODY, _signed(name, secret=old), [new]).code == "invalid_signature"
    assert _refusal(name, BODY, _signed(name, secret=stranger), [new, old]).code == "invalid_signature"


@pytest.mark.parametrize(
    ("name", "header", "join"),
    [
        ("standard", "webhook-signature", lambda first, second: f"{first} {second}"),
        # Stripe signs with every active secret of an endpoint: `t=..,v1=<new>,v1=<old>`.
        ("stripe", "Stripe-Signature", lambda first, second: first + "," + second.split(",", 1)[1]),
    ],
)
def test_a_header_carrying_two_signatures_verifies_when_only_the_second_matches(
    name: str, header: str, join: Callable[[str, str], str]
) -> None:
    other = _signed(name, secret=generate_secret(CONFIGS[name]))[header]
    headers = _signed(name)
    both = _replaced(headers, header, join(other, headers[header]))
    assert _check(name, BODY, both) == _check(name, BODY, headers)
    assert _refusal(name, BODY, _replaced(headers, header, join(other, other))).code == "invalid_signature"


def test_an_unknown_standard_signature_version_is_skipped_not_trusted() -> None:
    headers = _signed("standard")
    good = headers["webhook-signature"].split(",", 1)[1]
    assert _check("standard", BODY, _replaced(headers, "webhook-signature", f"v1a,AAAA v2,{good} v1,{good}"))
    assert _refusal("standard", BODY, _replaced(headers, "webhook-signature", f"v1a,{good}")).code == (
        "malformed_signature"
    )


def test_a_fractional_standard_timestamp_is_floored_as_the_library_does() -> None:
    timestamp = int(time.time())
    headers = sign(CONFIGS["standard"], BODY, STANDARD_SECRET, msg_id="msg_1", timestamp=timestamp)
    fractional = _replaced(headers, "webhook-timestamp", f"{timestamp}.75")
    Webhook(STANDARD_SECRET).verify(BODY, fractional, json_parse=False)  # the library agrees
    verified = verify(CONFIGS["standard"], BODY, fractional, [STANDARD_SECRET], now=timestamp)
    assert verified.signed_at == datetime.fromtimestamp(timestamp, UTC)


def test_standard_agrees_with_the_standardwebhooks_library() -> None:
    timestamp = int(time.time())
    for body in (BODY, b"{}", '{"name": "Zoë ✓"}'.encode()):
        ours = sign(CONFIGS["standard"], body, STANDARD_SECRET, msg_id="msg_x", timestamp=timestamp)
        theirs = Webhook(STANDARD_SECRET).sign("msg_x", datetime.fromtimestamp(timestamp, UTC), body.decode())
        assert ours["webhook-signature"] == theirs
        Webhook(STANDARD_SECRET).verify(body, ours, json_parse=False)


@pytest.mark.parametrize("name", TIMESTAMPED)
@pytest.mark.parametrize(
    ("offset", "code", "message"),
    [
        (-612, "stale_timestamp", "signed 612 s ago; the limit is 300 s"),
        (-301, "stale_timestamp", "signed 301 s ago; the limit is 300 s"),
        (301, "future_timestamp", "signed 301 s in the future; the limit is 300 s"),
        (86_400, "future_timestamp", "signed 86400 s in the future; the limit is 300 s"),
    ],
)
def test_a_stale_or_future_timestamp_is_refused(name: str, offset: int, code: str, message: str) -> None:
    error = _refusal(name, BODY, _signed(name, offset=offset))
    assert (error.code, str(error)) == (code, message)


@pytest.mark.parametrize("name", TIMESTAMPED)
@pytest.mark.parametrize("offset", [-300, -60, 0, 60, 300])
def test_a_timestamp_within_the_tolerance_verifies(name: str, offset: int) -> None:
    assert _check(name, BODY, _signed(name, offset=offset)).signed_at == datetime.fromtimestamp(NOW + offset, UTC)


@pytest.mark.parametrize("name", TIMESTAMPED)
def test_the_tolerance_comes_from_the_config(name: str) -> None:
    config = CONFIGS[name].model_copy(update={"tolerance_seconds": 10})
    headers = _signed(name, offset=-11)
    with pytest.raises(SignatureError, match="signed 11 s ago; the limit is 10 s"):
        verify(config, BODY, headers, [SECRETS[name]], now=NOW)
    assert verify(CONFIGS[name], BODY, headers, [SECRETS[name]], now=NOW).signed_at is not None


@pytest.mark.parametrize("name", ["github", "hmac-base64", "hmac-sha512"])
def test_schemes_without_timestamps_accept_old_deliveries(name: str) -> None:
    assert _check(name, BODY, _signed(name, offset=-10 * 365 * 86_400)) == Verified(
        "msg_1" if name == "github" else None, None
    )


@pytest.mark.parametrize(("name", "header"), [(name, header) for name in SCHEMES for header in REQUIRED[name]])
def test_a_missing_header_is_refused(name: str, header: str) -> None:
    assert _refusal(name, BODY, _replaced(_signed(name), header, None)).code == "missing_signature"


def test_a_missing_github_delivery_id_is_no_error() -> None:
    assert _check("github", BODY, _replaced(_signed("github"), "X-GitHub-Delivery", None)) == Verified(None, None)


def test_githubs_sha1_header_alone_is_not_accepted() -> None:
    headers = {"X-Hub-Signature": "sha1=" + "0" * 40, "X-GitHub-Delivery": "d1"}
    assert _refusal("github", BODY, headers).code == "missing_signature"


HUGE = "A" * 20_000
GOOD_HEX = "ab" * 32
MALFORMED: list[tuple[str, str, str, str]] = [
    ("standard", "webhook-signature", "", "malformed_signature"),
    ("standard", "webhook-signature", "garbage", "malformed_signature"),
    ("standard", "webhook-signature", "v1,", "malformed_signature"),
    ("standard", "webhook-signature", "v1,!!!!", "malformed_signature"),
    ("standard", "webhook-signature", "v1,abc=", "malformed_signature"),
    ("standard", "webhook-signature", "v1:abc", "malformed_signature"),
    ("standard", "webhook-signature", "v1,a,b", "malformed_signature"),
    ("standard", "webhook-signature", "v2,AAAA", "malformed_signature"),
    ("standard", "webhook-signature", "v1,é" + "A" * 43, "malformed_signature"),
    ("standard", "webhook-signature", "v1," + "A" * 43 + "=", "invalid_signature"),
    ("standard", "webhook-signature", "v1," + HUGE, "malformed_signature"),
    ("standard", "webhook-timestamp", "", "malformed_signature"),
    ("standard", "webhook-timestamp", "abc", "malformed_signature"),
    ("standard", "webhook-timestamp", "nan", "malformed_signature"),
    ("standard", "webhook-timestamp", "inf", "malformed_signature"),
    ("standard", "webhook-timestamp", "1e400", "malformed_signature"),
    ("standard", "webhook-timestamp", "-5", "malformed_signature"),
    ("standard", "webhook-timestamp", "１７００００００００", "malformed_signature"),  # full-width digits
    ("standard", "webhook-timestamp", "9" * 5000, "malformed_signature"),
    ("standard", "webhook-id", "", "malformed_signature"),
    ("standard", "webhook-id", HUGE, "malformed_signature"),
    ("standard", "webhook-id", "msg_\udc80", "malformed_signature"),  # a lone surrogate cannot be UTF-8
    ("github", "X-Hub-Signature-256", "", "malformed_signature"),
    ("github", "X-Hub-Signature-256", "sha256=", "malformed_signature"),
    ("github", "X-Hub-Signature-256", "sha256=" + "zz" * 32, "malformed_signature"),
    ("github", "X-Hub-Signature-256", "sha256=" + GOOD_HEX[:-1], "malformed_signature"),
    ("github", "X-Hub-Signature-256", "sha256=" + " ".join([GOOD_HEX[:32], GOOD_HEX[32:]]), "malformed_signature"),
    ("github", "X-Hub-Signature-256", "sha256=" + "é" * 64, "malformed_signature"),
    ("github", "X-Hub-Signature-256", GOOD_HEX, "malformed_signature"),
    ("github", "X-Hub-Signature-256", "sha1=" + "ab" * 20, "malformed_signature"),
    ("github", "X-Hub-Signature-256", "sha256=" + GOOD_HEX, "invalid_signature"),
    ("github", "X-Hub-Signature-256", "sha256=" + HUGE, "malformed_signature"),
    ("github", "X-GitHub-Delivery", HUGE, "malformed_signature"),
    ("stripe", "Stripe-Signature", "", "malformed_signature"),
    ("stripe", "Stripe-Signature", "garbage", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"t=abc,v1={GOOD_HEX}", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"t=,v1={GOOD_HEX}", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"t={NOW}.5,v1={GOOD_HEX}", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"t=１７００００００００,v1={GOOD_HEX}", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"t={'9' * 5000},v1={GOOD_HEX}", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"v1={GOOD_HEX}", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"t={NOW}", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"t={NOW},v0={GOOD_HEX}", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"t={NOW}v1={GOOD_HEX}", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"t={NOW} v1={GOOD_HEX}", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"t={NOW},t={NOW},v1={GOOD_HEX}", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"t={NOW},v1=zz", "malformed_signature"),
    ("stripe", "Stripe-Signature", f"t={NOW},v1={GOOD_HEX}", "invalid_signature"),
    ("stripe", "Stripe-Signature", f"t={NOW},v1={GOOD_HEX},", "invalid_signature"),
    ("stripe", "Stripe-Signature", f"t={NOW},v1=" + HUGE, "malformed_signature"),
    ("hmac-timestamp", "X-Signature", GOOD_HEX, "malformed_signature"),
    ("hmac-timestamp", "X-Signature", "SHA256=" + GOOD_HEX, "malformed_signature"),
    ("hmac-timestamp", "X-Signature", "sha256=not-hex", "malformed_signature"),
    ("hmac-timestamp", "X-Signature", "sha256=" + base64.b64encode(bytes(32)).decode(), "malformed_signature"),
    ("hmac-timestamp", "X-Signature", "sha256=" + GOOD_HEX, "invalid_signature"),
    ("hmac-timestamp", "X-Signature-Timestamp", "abc", "malformed_signature"),
    ("hmac-timestamp", "X-Signature-Timestamp", "", "malformed_signature"),
    ("hmac-timestamp", "X-Signature-Timestamp", f"{NOW}.0", "malformed_signature"),
    ("hmac-timestamp", "X-Signature-Timestamp", "１７００００００００", "malformed_signature"),
    ("hmac-timestamp", "X-Signature-Timestamp", "9" * 5000, "malformed_signature"),
    ("hmac-base64", "X-Shopify-Hmac-Sha256", "!!!!", "malformed_signature"),
    ("hmac-base64", "X-Shopify-Hmac-Sha256", GOOD_HEX, "malformed_signature"),
    ("hmac-base64", "X-Shopify-Hmac-Sha256", base64.b64encode(bytes(31)).decode(), "malformed_signature"),
    ("hmac-base64", "X-Shopify-Hmac-Sha256", base64.b64encode(bytes(32)).decode(), "invalid_signature"),
    ("hmac-sha512", "X-Sig", "v1=" + GOOD_HEX, "malformed_signature"),
    ("hmac-sha512", "X-Sig", "v1=" + "ab" * 64, "invalid_signature"),
]


@pytest.mark.parametrize(("name", "header", "value", "code"), MALFORMED)
def test_a_malformed_header_is_refused_with_a_signature_error(name: str, header: str, value: str, code: str) -> None:
    assert _refusal(name, BODY, _replaced(_signed(name), header, value)).code == code


@pytest.mark.parametrize("name", SCHEMES)
@pytest.mark.parametrize("body", [b"\xff\xfe\x00binary", b'{"a": "\xe9"}', b"\x80", bytes(range(256))])
def test_a_non_utf8_body_signed_as_bytes_verifies(name: str, body: bytes) -> None:
    assert _check(name, body, _signed(name, body=body)) == _check(name, BODY, _signed(name))
    assert _refusal(name, body[:-1] + bytes([body[-1] ^ 1]), _signed(name, body=body)).code == "invalid_signature"


SECRET_FORMS = {
    "standard": re.compile(r"whsec_[A-Za-z0-9+/]{43}="),
    "github": re.compile(r"[A-Za-z0-9_-]{32}"),
    "stripe": re.compile(r"whsec_[A-Za-z0-9_-]{32}"),
    "hmac-timestamp": re.compile(r"[A-Za-z0-9_-]{32}"),
}


@pytest.mark.parametrize(("name", "form"), SECRET_FORMS.items())
def test_generate_secret_makes_distinct_working_secrets(name: str, form: re.Pattern[str]) -> None:
    config = CONFIGS[name]
    secrets = {generate_secret(config) for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert form.fullmatch(secret), secret
        _check(name, BODY, _signed(name, secret=secret), [secret])  # raises if the secret does not work
    if name == "standard":
        assert all(len(base64.b64decode(secret.removeprefix("whsec_"))) == 32 for secret in secrets)


@pytest.mark.parametrize("name", SCHEMES)
def test_no_secrets_is_a_configuration_bug_not_a_bad_delivery(name: str) -> None:
    with pytest.raises(ValueError) as caught:
        verify(CONFIGS[name], BODY, _signed(name), [], now=NOW)
    assert type(caught.value) is ValueError


@pytest.mark.parametrize("secret", ["", "whsec_!!!not-base64", "whsec_"])
def test_an_unusable_standard_secret_is_a_configuration_bug(secret: str) -> None:
    with pytest.raises(ValueError) as caught:
        verify(CONFIGS["standard"], BODY, _signed("standard"), [SECRETS["standard"], secret], now=NOW)
    assert type(caught.value) is ValueError
    with pytest.raises(ValueError):
        sign(CONFIGS["standard"], BODY, secret)


def test_hmac_without_a_header_is_a_configuration_bug() -> None:
    config = SignatureConfig(scheme="hmac")
    with pytest.raises(ValueError, match="needs `header`") as caught:
        verify(config, BODY, {"X-Signature": "00"}, ["secret"], now=NOW)
    assert type(caught.value) is ValueError
    with pytest.raises(ValueError, match="needs `header`"):
        sign(config, BODY, "secret")


def test_a_signature_error_carries_its_code_and_message() -> None:
    message = "signed 612 s ago; the limit is 300 s"
    error = SignatureError("stale_timestamp", message)
    assert isinstance(error, ValueError)
    assert (error.code, error.message, str(error)) == ("stale_timestamp", message, message)


def _noise(rng: random.Random, valid: str) -> str:
    """Random bytes as Starlette hands them over (latin-1), alone or spliced into a valid value."""
    size = rng.choice([0, 1, 8, 64, 300, 20_000])
    junk = rng.randbytes(size).decode("latin-1")
    start = rng.randrange(len(valid) + 1)
    return rng.choice([junk, valid[:start] + junk, valid[:start] + junk + valid[start + 1 :]])


@pytest.mark.parametrize("name", SCHEMES)
def test_random_header_values_only_ever_raise_signature_errors(name: str) -> None:
    rng = random.Random(f"flowhook-{name}")
    valid = _signed(name)
    refused = 0
    for _ in range(200):
        chosen = rng.sample(sorted(valid), rng.randint(1, len(valid)))
        headers = {key: _noise(rng, value) if key in chosen else value for key, value in valid.items()}
        try:
            _check(name, BODY, headers)
        except SignatureError as error:
            refused += 1
            assert error.code in {"missing_signature", "malformed_signature", "invalid_signature"}
        else:  # nothing verifies unless every signed header still holds its genuine value
            # (hex digits in either case are the same MAC; the noise may flip one, e.g. `e` → `E`)
            assert all(valid[key].lower() in headers[key].lower() for key in REQUIRED[name]), headers
    assert refused >= 150  # the noise reaches the checks; it does not mostly miss them
