"""Property-based fuzzing of the live gateway from its own OpenAPI document: whatever arrives,
signed or not, the answer is never a 5xx and every error is JSON with a code and a message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from flowhook.gateway.schemes import generate_secret, sign
from flowhook.settings import Settings
from flowhook.sources.webhook import SignatureConfig, SourceConfig
from tests.servers import serve

STANDARD = SignatureConfig()
SECRET = generate_secret(STANDARD)


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    config = Settings(data_dir=data_dir, webhook_secret=SECRET, sources={"fuzz": SourceConfig(rate_limit=1e6)})
    with serve(config) as client:
        yield client


def _assert_clean(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        payload = response.json()
        assert isinstance(payload["code"], str) and isinstance(payload["message"], str)


@pytest.mark.timeout(240)
def test_no_request_is_a_server_error(live_gateway: httpx.Client) -> None:
    schema = schemathesis.openapi.from_url(str(live_gateway.base_url.join("/openapi.json")))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/hooks/{source}", "/health"}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: Any) -> None:
            # As generated (mostly unsigned, random source names and bodies) ...
            _assert_clean(case.call())
            # ... and the same body correctly signed for a configured source, so validation is fuzzed too.
            if case.method == "POST" and isinstance(case.body, dict | list):
                body = json.dumps(case.body).encode()  # stdlib: integers past 64 bits too
                headers = {"content-type": "application/json", **sign(STANDARD, body, SECRET, msg_id="msg_fuzz")}
                response = live_gateway.post("/hooks/fuzz", content=body, headers=headers)
                _assert_clean(response)
                assert response.status_code in (202, 400, 413, 422), response.text

        fuzz()
