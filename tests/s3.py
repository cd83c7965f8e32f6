"""S3 for tests: moto's standalone server in this process (`ThreadedMotoServer`) on 127.0.0.1, and clients of it.

The server runs in a thread of the test process, so its objects are reachable directly too: `age` moves an
object's LastModified into the past, as `os.utime` does for a file (S3 itself offers no way to).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from moto.core.utils import utcnow
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

from flowhook.stack import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""Dummy credentials moto accepts; set in the environment of whatever builds its own client (gateway, flow runs)."""


@contextmanager
def moto_server(port: int | None = None) -> Iterator[str]:
    """moto's server on 127.0.0.1 (a free port unless given) until the block ends; its endpoint URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port or free_port(), verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    try:
        yield f"http://{host}:{bound}"
    finally:
        stop(server)


def stop(server: ThreadedMotoServer) -> None:
    """Stop the server and close its socket, so the port refuses connections (as S3 being down does)."""
    server.stop()
    if server._server is not None:
        server._server.server_close()


@lru_cache
def client(endpoint: str) -> Any:
    """A boto3 S3 client of the endpoint with the dummy credentials, failing fast when nothing answers (cached:
    clients are thread-safe, and making one costs a tenth of a second)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"}),
    )


def new_bucket(s3: Any) -> str:
    """A fresh, empty bucket."""
    name = f"flowhook-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every key under `prefix`, sorted."""
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [item["Key"] for item in page.get("Contents", [])]
    return sorted(found)


def age(bucket: str, key: str, seconds: float) -> None:
    """Make the object's LastModified `seconds` ago (the server shares this process: moto's backend directly)."""
    partition, account = s3_backends.bucket_accounts[bucket]
    found = s3_backends[account][partition].get_object(bucket, key)
    assert found is not None, f"no object {key} in {bucket}"
    found.last_modified = utcnow() - timedelta(seconds=seconds)
