"""The delivery lane in front of FastAPI, on a real uvicorn server over loopback sockets: every refusal answered
in the one shape and counted once, what is not a delivery still served by FastAPI, and an unexpected failure
answered 500 in JSON and counted once."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from flowhook.gateway.headers import Headers
from flowhook.gateway.schemes import generate_secret, sign
from flowhook.sampling.log import read_records, sample_files
from flowhook.sampling.recorder import UNKNOWN
from flowhook.settings import IngressLimits, Settings
from flowhook.sources.webhook import SignatureConfig, SourceConfig
from tests.servers import serve

STANDARD = SignatureConfig()
SECRET = generate_secret(STANDARD)
MAX_BODY = 4096
SHAPE = {"code", "message", "errors", "quarantine_id"}


def item(**data: Any) -> dict[str, Any]:
    return {"type": "user_request", "data": {"user_id": "u1", "action": "search", **data}}


def signed(body: bytes, msg_id: str, **extra: str) -> dict[str, str]:
    return {**sign(STANDARD, body, SECRET, msg_id=msg_id), "content-type": "application/json", **extra}


def post(client: httpx.Client, source: str, document: Any, *, msg_id: str = "msg_1", **headers: str) -> httpx.Response:
    body = document if isinstance(document, bytes) else orjson.dumps(document)
    return client.post(f"/hooks/{source}", content=body, headers=signed(body, msg_id, **headers))


def counted(settings: Settings) -> dict[tuple[str, int, str], int]:
    """Deliveries counted per (source, status, code), from the sample records written once the server stopped."""
    counts: dict[tuple[str, int, str], int] = {}
    for _, path in sample_files(settings.samples_dir):
        for record in read_records(path):
            if record.get("kind") == "ingress":
                key = (record["source"], record["status"], record["code"])
                counts[key] = counts.get(key, 0) + record["deliveries"]
    return counts


def assert_refusal(response: httpx.Response, status: int, code: str, *, retry_after: bool = False) -> dict[str, Any]:
    """The one shape of every refusal: JSON `{code, message, errors?, quarantine_id?}`, Retry-After where asked."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    payload: dict[str, Any] = response.json()
    assert set(payload) <= SHAPE and payload["code"] == code, payload
    assert isinstance(payload["message"], str) and payload["message"].endswith("."), payload
    assert ("retry-after" in response.headers) == retry_after, response.headers
    if retry_after:
        assert int(response.headers["retry-after"]) >= 1
    return payload


def _chunked_over_limit(client: httpx.Client) -> httpx.Response:
    """A body with no Content-Length that grows past the limit as it is read."""
    body = orjson.dumps(item(path="x" * (2 * MAX_BODY)))
    chunks = (body[i : i + 1024] for i in range(0, len(body), 1024))
    return client.post("/hooks/shop", content=chunks, headers=signed(body, "msg_chunked"))


TEXT = {"content-type": "text/plain"}
GZIP = {"content-encoding": "gzip"}
Case = tuple[str, Callable[[httpx.Client], httpx.Response], int, str, str]
"""(what, the request, status, code, the source it is counted under)."""
CASES: list[Case] = [
    ("unknown source", lambda c: post(c, "nowhere", item()), 404, "unknown_source", UNKNOWN),
    ("not JSON", lambda c: post(c, "shop", item(), **TEXT), 415, "unsupported_media_type", "shop"),
    ("compressed", lambda c: post(c, "shop", item(), **GZIP), 415, "unsupported_encoding", "shop"),
    ("declared too large", lambda c: post(c, "shop", item(path="x" * 2 * MAX_BODY)), 413, "body_too_large", "shop"),
    ("read too large", _chunked_over_limit, 413, "body_too_large", "shop"),
    ("unsigned", lambda c: c.post("/hooks/shop", json=item()), 401, "missing_signature", "shop"),
    ("forged", lambda c: post(c, "other", item()), 401, "invalid_signature", "other"),
    ("unverified again", lambda c: c.post("/hooks/shop", json=item()), 429, "too_many_unverified", "shop"),
    ("not JSON inside", lambda c: post(c, "shop", b"{nope", msg_id="msg_bad"), 400, "invalid_json", "shop"),
    ("schema", lambda c: post(c, "shop", {"type": "user_request", "data": {}}), 422, "schema_violation", "shop"),
    ("no secret", lambda c: post(c, "secretless", item()), 503, "secret_unavailable", "secretless"),
    ("within the limit", lambda c: post(c, "limited", item(), msg_id="msg_a"), 202, "accepted", "limited"),
    ("over the limit", lambda c: post(c, "limited", item(), msg_id="msg_b"), 429, "rate_limited", "limited"),
]  # fmt: skip
RETRY_AFTER = {"too_many_unverified", "secret_unavailable", "rate_limited"}
QUARANTINED = {"invalid_json", "schema_violation"}


def test_every_refusal_is_answered_in_one_shape_and_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWHOOK_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("LANE_TEST_UNSET_SECRET", raising=False)
    (tmp_path / "other.secret").write_text(generate_secret(STANDARD))  # not the one `post` signs with
    sources = {
        "shop": SourceConfig(),
        "other": SourceConfig(secret=f"file:{tmp_path / 'other.secret'}"),
        "secretless": SourceConfig(secret="env:LANE_TEST_UNSET_SECRET"),
        "limited": SourceConfig(rate_limit=0.01, burst=1),
    }
    limits = IngressLimits(unverified_burst=2, unverified_rate=0.01)  # the third unverified delivery is 429
    settings = Settings(
        data_dir=tmp_path, webhook_secret=SECRET, sources=sources, max_body_bytes=MAX_BODY, ingress=limits
    )
    with serve(settings) as client:
        for what, request, status, code, _ in CASES:
            response = request(client)
            if status == 202:
                assert response.status_code == 202, (what, response.text)
                continue
            payload = assert_refusal(response, status, code, retry_after=code in RETRY_AFTER)
            assert ("quarantine_id" in payload) == (code in QUARANTINED), (what, payload)
            if code in QUARANTINED:
                assert (settings.quarantine_dir / f"{payload['quarantine_id']}.json").is_file()
        time.sleep(1.1)  # a second's counts are written once it has ended
    expected: dict[tuple[str, int, str], int] = {}
    for _, _, status, code, source in CASES:
        expected[source, status, code] = expected.get((source, status, code), 0) + 1
    assert counted(settings) == expected


def test_what_is_not_a_delivery_is_served_by_fastapi(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, webhook_secret=SECRET, sources={"shop": SourceConfig()})
    with serve(settings) as client:
        assert client.get("/health").json()["status"] == "ok"
        docs = client.get("/docs")
        assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
        spec = client.get("/openapi.json").json()
        assert "202" in spec["paths"]["/hooks/{source}"]["post"]["responses"]
        wrong_method = client.get("/hooks/shop")
        assert_refusal(wrong_method, 405, "method_not_allowed")
        assert wrong_method.headers["allow"] == "POST"
        assert_refusal(client.post("/hooks/shop/more", json=item()), 404, "not_found")
        assert_refusal(client.get("/reports/nothing.png"), 404, "not_found")
        assert_refusal(client.get("/nowhere"), 404, "not_found")
        assert post(client, "shop", item()).status_code == 202  # and deliveries beside them


def test_an_unexpected_failure_is_a_500_in_json_counted_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, webhook_secret=SECRET, sources={"shop": SourceConfig()})
    with serve(settings) as client:
        # A real fault on disk: the quarantine folder is a file now, so keeping a bad delivery fails.
        shutil.rmtree(settings.quarantine_dir)
        settings.quarantine_dir.write_text("not a folder")
        response = post(client, "shop", {"type": "user_request", "data": {}})
        assert_refusal(response, 500, "internal_error")
        assert post(client, "shop", item(), msg_id="msg_after").status_code == 202  # the gateway goes on
        time.sleep(1.1)
    assert counted(settings) == {("shop", 500, "internal_error"): 1, ("shop", 202, "accepted"): 1}


def test_a_body_cut_off_is_counted_as_incomplete(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, webhook_secret=SECRET, sources={"shop": SourceConfig()})
    with serve(settings) as client:
        assert client.base_url.port is not None
        body = orjson.dumps(item())
        head = "".join(f"{k}: {v}\r\n" for k, v in signed(body, "msg_cut").items())
        with socket.create_connection(("127.0.0.1", client.base_url.port)) as sock:
            sock.sendall(f"POST /hooks/shop HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode())
            sock.sendall(body[:10])
            time.sleep(0.2)
        time.sleep(1.2)
    assert counted(settings) == {("shop", 400, "body_incomplete"): 1}


def test_headers_are_read_once_by_lower_case_name_the_last_of_a_repeat_kept() -> None:
    headers = Headers([(b"content-type", b"application/json"), (b"x-tag", b"a"), (b"x-tag", b"b")])
    assert headers.get("Content-Type") == headers["CONTENT-TYPE"] == "application/json"
    assert headers["x-tag"] == "b" and headers.getlist("X-Tag") == ["a", "b"]
    assert "X-TAG" in headers and "missing" not in headers and headers.repeated


def test_a_repeated_content_type_must_be_json_in_every_value(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, webhook_secret=SECRET, sources={"shop": SourceConfig()})
    body = orjson.dumps(item())
    pairs = [(k, v) for k, v in signed(body, "msg_1").items() if k != "content-type"]
    with serve(settings) as client:
        mixed = [*pairs, ("content-type", "text/plain"), ("content-type", "application/json")]
        assert_refusal(client.post("/hooks/shop", content=body, headers=mixed), 415, "unsupported_media_type")
        both = [*pairs, ("content-type", "application/json"), ("content-type", "application/json")]
        assert client.post("/hooks/shop", content=body, headers=both).status_code == 202
