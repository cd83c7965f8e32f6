"""`GET /reports/{name}` on a real server: charts from the reports folder, a JSON 404 for anything else."""

from __future__ import annotations

import http.client
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from flowhook.gateway import MemorySink
from flowhook.gateway.schemes import generate_secret
from flowhook.settings import Settings
from flowhook.sources.webhook import SignatureConfig, SourceConfig
from tests.servers import serve

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(4096)  # the bytes must come back exactly, so make them unguessable
PARENT_SECRET = b"\x89PNG\r\n\x1a\nsecret in the data dir's parent " + os.urandom(64)
DATA_SECRET = b"\x89PNG\r\n\x1a\nsecret in the data dir " + os.urandom(64)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[httpx.Client, Settings]]:
    settings = Settings(
        data_dir=tmp_path / "data",
        sources={"shop": SourceConfig()},
        webhook_secret=generate_secret(SignatureConfig()),
    )
    settings.reports_dir.mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(PARENT_SECRET)
    (settings.data_dir / "secret.png").write_bytes(DATA_SECRET)
    with serve(settings, MemorySink()) as client:
        yield client, settings


def raw_get(client: httpx.Client, target: str) -> tuple[int, str | None, bytes]:
    """GET with the request target sent byte for byte (httpx would resolve `..` segments before sending)."""
    connection = http.client.HTTPConnection(client.base_url.host, client.base_url.port, timeout=10)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.getheader("content-type"), response.read()
    finally:
        connection.close()


def assert_not_found(status: int, content_type: str | None, body: bytes) -> dict[str, Any]:
    assert status == 404, body
    assert content_type == "application/json"
    payload: dict[str, Any] = orjson.loads(body)
    assert set(payload) == {"code", "message"}
    assert payload["code"] == "not_found"
    assert isinstance(payload["message"], str) and payload["message"]
    return payload


@pytest.mark.parametrize("name", ["report-2024_05_01.png", "a.png", "x" * 100 + ".png"])
def test_a_chart_in_the_reports_folder_is_served_as_png(served: tuple[httpx.Client, Settings], name: str) -> None:
    client, settings = served
    (settings.reports_dir / name).write_bytes(PNG)
    response = client.get(f"/reports/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == PNG


@pytest.mark.parametrize(
    "name",
    [
        "missing.png",  # no such file
        "x.txt",  # exists, not a .png name
        "chart.PNG",
        "chart.png.txt",
        "chart png.png",
        "x" * 101 + ".png",  # exists, name over 100 characters
        "folder.png",  # a directory
        ".png",
    ],
)
def test_anything_but_a_chart_file_is_a_json_404(served: tuple[httpx.Client, Settings], name: str) -> None:
    client, settings = served
    for present in ("x.txt", "chart.PNG", "chart.png.txt", "chart png.png", "x" * 101 + ".png", ".png"):
        (settings.reports_dir / present).write_bytes(PNG)
    (settings.reports_dir / "folder.png").mkdir()
    response = client.get(f"/reports/{name}")
    payload = assert_not_found(response.status_code, response.headers.get("content-type"), response.content)
    assert name in payload["message"]
    assert PNG not in response.content


@pytest.mark.parametrize(
    "target",
    [
        "/reports/../x.png",
        "/reports/../secret.png",
        "/reports/../../secret.png",
        "/reports/%2e%2e%2fsecret.png",
        "/reports/%2e%2e%2f%2e%2e%2fsecret.png",
        "/reports/..%2f..%2fsecret.png",
        "/reports/%2e%2e/%2e%2e/secret.png",
        "/reports/.%2e/.%2e/secret.png",
        "/reports/%252e%252e%252f%252e%252e%252fsecret.png",
        "/reports/..%5c..%5csecret.png",
        "/reports/%2fsecret.png",
        "/reports//secret.png",
    ],
)
def test_nothing_outside_the_reports_folder_is_served(served: tuple[httpx.Client, Settings], target: str) -> None:
    client, settings = served
    (settings.reports_dir / "x.png").write_bytes(PNG)  # a real chart, so a resolved `..` cannot land on it either
    status, content_type, body = raw_get(client, target)
    assert_not_found(status, content_type, body)
    assert PARENT_SECRET not in body and DATA_SECRET not in body


def test_the_secrets_are_there_to_be_found(served: tuple[httpx.Client, Settings], tmp_path: Path) -> None:
    # The traversal test only means something if the files it must not reach exist where it aims.
    client, settings = served
    assert (settings.reports_dir / ".." / "secret.png").read_bytes() == DATA_SECRET
    assert (settings.reports_dir / ".." / ".." / "secret.png").read_bytes() == PARENT_SECRET
    (settings.reports_dir / "secret.png").write_bytes(PARENT_SECRET)
    status, content_type, body = raw_get(client, "/reports/secret.png")  # the same request path works inside
    assert (status, content_type, body) == (200, "image/png", PARENT_SECRET)
