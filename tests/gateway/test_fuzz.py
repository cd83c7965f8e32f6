"""Fuzzing the live gateway: whatever arrives, signed or not, the answer is never a 5xx and every error is
JSON with a code and a message. Two parts share one tally, printed in the figures at the end:

- property-based, from the gateway's own OpenAPI document (schemathesis);
- hand-made hostile bodies (deep nesting, huge numbers, broken text, compression, ...) sent to a source of
  every kind, each signed and unsigned: a signed one that cannot become events is quarantined byte for
  byte, an unsigned one is refused with 401 and kept nowhere.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from flowhook.gateway.config import IngressLimits
from flowhook.gateway.schemes import generate_secret, sign
from flowhook.settings import Settings
from flowhook.sources.webhook import SignatureConfig, SourceConfig, load_sources
from tests.conftest import ROOT
from tests.figures import report
from tests.servers import serve

STANDARD = SignatureConfig()
SECRET = generate_secret(STANDARD)
DEEP = 10_000


class Tally:
    """Requests sent and answers that were 5xx, per part."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.server_errors = 0

    def check(self, part: str, response: Any) -> None:
        self.sent[part] += 1
        if response.status_code >= 500:
            self.server_errors += 1
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            payload = response.json()
            assert isinstance(payload["code"], str) and isinstance(payload["message"], str)


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    counts = Tally()
    yield counts
    total = sum(counts.sent.values())
    report(
        f"gateway fuzz: {total} requests tried (schemathesis {counts.sent['schemathesis']}, "
        f"hand-made {counts.sent['hand-made']}), 5xx: {counts.server_errors}"
    )


# --- the sources: one of every kind, each with its own secret in a file ------------------------------------

# A generic template (the Prefect Cloud pass-through shape), besides the sample GitHub and Stripe ones.
TEMPLATE = '{"type": {{ body.type | tojson }}, "data": {{ body.data | tojson }}}'


def _sources() -> dict[str, SourceConfig]:
    samples = load_sources(ROOT / "sources.yaml")
    hmac = samples["cloudevents"].signature
    return {
        "standard": SourceConfig(),
        "plain": SourceConfig(signature=SignatureConfig(scheme="hmac", header="x-signature")),
        "template": SourceConfig(format="template", template=TEMPLATE),
        "cloudevents": SourceConfig(signature=hmac, format="cloudevents"),
        "stripe": samples["stripe"],
        "github": samples["github"],
    }


@dataclass
class Hostile:
    client: httpx.Client
    settings: Settings
    secrets: dict[str, str]

    def post(self, source: str, body: bytes, headers: dict[str, str], *, signed: bool) -> httpx.Response:
        config = self.settings.source_configs()[source]
        if signed:
            headers = {**headers, **sign(config.signature, body, self.secrets[source])}
        elif config.signature.scheme == "github":
            headers = {**headers, "X-GitHub-Delivery": "f00d"}
        return self.client.post(f"/hooks/{source}", content=body, headers=headers)

    def quarantined(self) -> set[str]:
        return {path.stem for path in self.settings.quarantine_dir.glob("*.json")}


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    sources: dict[str, SourceConfig] = {"fuzz": SourceConfig(rate_limit=1e6)}
    secrets: dict[str, str] = {}
    for name, config in _sources().items():
        secrets[name] = generate_secret(config.signature)
        (data_dir / f"{name}.secret").write_text(secrets[name] + "\n")
        sources[name] = config.model_copy(update={"secret": f"file:{data_dir / f'{name}.secret'}"})
    # Every unsigned request here must reach the signature check, not the per-address budget for them.
    unlimited = IngressLimits(unverified_rate=1e6, unverified_burst=10**6)
    config = Settings(data_dir=data_dir, webhook_secret=SECRET, sources=sources, ingress=unlimited)
    with serve(config) as client:
        yield Hostile(client, config, secrets)


# --- property-based --------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_no_request_is_a_server_error(live_gateway: Hostile, tally: Tally) -> None:
    client = live_gateway.client
    schema = schemathesis.openapi.from_url(str(client.base_url.join("/openapi.json")))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/hooks/{source}", "/health"}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: Any) -> None:
            # As generated (mostly unsigned, random source names and bodies) ...
            tally.check("schemathesis", case.call())
            # ... and the same body correctly signed for a configured source, so validation is fuzzed too.
            if case.method == "POST" and isinstance(case.body, dict | list):
                body = json.dumps(case.body).encode()  # stdlib: integers past 64 bits too
                headers = {"content-type": "application/json", **sign(STANDARD, body, SECRET, msg_id="msg_fuzz")}
                response = client.post("/hooks/fuzz", content=body, headers=headers)
                tally.check("schemathesis", response)
                assert response.status_code in (202, 400, 413, 422), response.text

        fuzz()


# --- hand-made hostile bodies ------------------------------------------------------------------------------

# Each source's usual headers, so the hostile part reaches its parser; a case's headers go on top (None: left out).
HEADERS = {
    "github": {"content-type": "application/json", "X-GitHub-Event": "push"},
    "cloudevents": {"content-type": "application/cloudevents+json"},
}
JSON: dict[str, str | None] = {}
GZIP: dict[str, str | None] = {"content-encoding": "gzip"}


def _nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + "1" + close * depth


def _event(value: str) -> bytes:
    """A plausible delivery for every source kind with `value` (raw JSON text) inside it."""
    return (
        '{"specversion": "1.0", "id": "e1", "source": "s", "type": "invoice.paid", "created": 1714557600, '
        '"data": {"object": {"customer": "c1", "amount_paid": 1, "x": ' + value + "}, "
        '"user_id": "u1", "action": "a", "x": ' + value + "}}"
    ).encode()


# name → (body, headers, statuses allowed when signed). Unsigned, every one is refused before it is read
# as JSON (401), except where the status is decided from the headers first (415).
CASES: dict[str, tuple[bytes, dict[str, str | None], set[int]]] = {
    "deep array": (_nested(DEEP).encode(), JSON, {400, 422}),
    "deep object in data": (_event(_nested(DEEP, '{"a":', "}")), JSON, {400, 422}),
    "1,000 deep in data": (_event(_nested(1000)), JSON, {400, 422}),
    "300 deep in data": (_event(_nested(300)), JSON, {202, 400, 422}),
    "float 1e400": (_event("1e400"), JSON, {400, 422}),
    "integer of 5,000 digits": (_event("1" + "0" * 5000), JSON, {400, 422}),
    "negative 1e400": (_event("-1e400"), JSON, {400, 422}),
    "integer past 64 bits": (_event("18446744073709551616"), JSON, {400, 422}),
    "created 1e300": (_event("1").replace(b"1714557600", b"1e300"), JSON, {202, 400, 422}),
    "invalid UTF-8": (_event('"\xff\xfe"').replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe"), JSON, {400, 422}),
    "lone surrogate escaped": (_event('"\\ud800"'), JSON, {400, 422}),
    "lone surrogate as bytes": (_event('"x"').replace(b'"x"', b'"\xed\xa0\x80"'), JSON, {400, 422}),
    "duplicate keys": (_event('{"k": 1, "k": 2}'), JSON, {202, 400, 422}),
    "NaN": (_event("NaN"), JSON, {400, 422}),
    "Infinity": (_event("Infinity"), JSON, {400, 422}),
    "byte order mark": (b"\xef\xbb\xbf" + _event("1"), JSON, {400, 422}),
    "empty body": (b"", JSON, {202, 400, 422}),
    "null": (b"null", JSON, {202, 400, 422}),
    "a bare string": (b'"hello"', JSON, {202, 400, 422}),
    "an empty array": (b"[]", JSON, {202, 400, 422}),
    "text/plain": (_event("1"), {"content-type": "text/plain; charset=utf-8"}, {415}),
    "no content-type": (_event("1"), {"content-type": None}, {415}),
    "gzip": (gzip.compress(_event("1")), GZIP, {415}),
    "gzip bomb": (gzip.compress(b"[" * 20_000_000), GZIP, {415}),
    "deflate": (b"x\x9c" + _event("1"), {"content-encoding": "deflate"}, {415}),
}
SOURCES = list(_sources())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_bodies_get_a_clear_answer_from_every_source(live_gateway: Hostile, tally: Tally, case: str) -> None:
    body, overrides, allowed = CASES[case]
    for source in SOURCES:
        usual = HEADERS.get(source, {"content-type": "application/json"})
        headers = {name: value for name, value in {**usual, **overrides}.items() if value is not None}
        before = live_gateway.quarantined()
        response = live_gateway.post(source, body, headers, signed=True)
        tally.check("hand-made", response)
        assert response.status_code in allowed, f"{source}: {response.status_code} {response.text}"
        added = live_gateway.quarantined() - before
        if response.status_code in (400, 422):  # authentic but unusable: kept byte for byte
            [kept_id] = added
            assert kept_id == response.json()["quarantine_id"], source
            kept = orjson.loads((live_gateway.settings.quarantine_dir / f"{kept_id}.json").read_bytes())
            assert base64.b64decode(kept["body"]) == body
        else:
            assert not added, source

        before = live_gateway.quarantined()
        response = live_gateway.post(source, body, headers, signed=False)
        tally.check("hand-made", response)
        assert response.status_code == (415 if 415 in allowed else 401), f"{source}: {response.text}"
        assert live_gateway.quarantined() == before, source
