"""S3 objects as the S3 spool uses them: conditional puts, gets, heads, listings and deletes of one bucket, with
S3's answers turned into the spool's (a missing key is None, a taken key False, anything else SpoolUnavailable)."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from flowhook.spool.protocol import SpoolUnavailable

logger = logging.getLogger(__name__)

MAX_SKEW_SECONDS = 2.0
"""More difference than this between the local clock and S3's is logged: ages would be off by as much."""

_MISSING = {"NoSuchKey", "NotFound", "404"}
_CONDITIONAL = {"PreconditionFailed", "ConditionalRequestConflict"}
"""412: the key exists (another claimer won). 409: another conditional write on the key is in progress."""


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix without surrounding slashes) of `s3://bucket/prefix`."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, prefix.strip("/")


@lru_cache(maxsize=8)
def s3_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 S3 client (thread-safe; cached, as creating one costs tens of milliseconds of CPU), with
    credentials from boto3's chain and short timeouts, so an unreachable S3 fails a call in seconds."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=3,
        read_timeout=20,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=20,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3Objects:
    """The objects of one bucket, through a boto3 client."""

    def __init__(self, client: Any, bucket: str, *, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.bucket = bucket
        self._clock = clock
        self._skew_warned = False

    def put(self, key: str, body: bytes = b"", *, absent: bool = False, metadata: dict[str, str] | None = None) -> bool:
        """Write an object; with `absent`, only if there is none yet (False if there was: If-None-Match)."""
        from botocore.exceptions import ClientError

        extra: dict[str, Any] = {"IfNoneMatch": "*"} if absent else {}
        if metadata:
            extra["Metadata"] = metadata
        for attempt in range(3):
            try:
                response = self._call("put_object", Key=key, Body=body, **extra)
            except ClientError as exc:  # only the conditional answers get through `_call`
                if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                    return False
                time.sleep(0.1 * (attempt + 1))  # 409: a concurrent write on the key; it decides, then ask again
                continue
            self._check_clock(response)
            return True
        raise SpoolUnavailable(f"S3 put_object {key}: conditional writes kept conflicting")

    def get_object(self, key: str) -> dict[str, Any] | None:
        """The object's GetObject answer (Body, LastModified, ...), or None if there is none."""
        from botocore.exceptions import ClientError

        try:
            response: dict[str, Any] = self._call("get_object", Key=key)
        except ClientError:
            return None  # only a missing key gets through `_call`
        return response

    def get(self, key: str) -> bytes | None:
        response = self.get_object(key)
        if response is None:
            return None
        data: bytes = response["Body"].read()
        return data

    def head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            response: dict[str, Any] = self._call("head_object", Key=key)
        except ClientError:
            return None
        return response

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def list(self, prefix: str) -> Iterator[tuple[str, float]]:
        """(key, LastModified as a Unix time) of every object under `prefix`, page by page."""
        token: dict[str, str] = {}
        while True:
            page = self._call("list_objects_v2", Prefix=prefix, **token)
            for item in page.get("Contents", []):
                yield item["Key"], item["LastModified"].timestamp()
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def delete(self, keys: Sequence[str]) -> None:
        """Delete the keys (missing ones too: no error), a thousand a request."""
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": key} for key in keys[start : start + 1000]]
            response = self._call("delete_objects", Delete={"Objects": chunk, "Quiet": True})
            if response.get("Errors"):
                raise SpoolUnavailable(f"S3 delete_objects in s3://{self.bucket}: {response['Errors'][:3]}")

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING or code in _CONDITIONAL:
                raise
            message = f"S3 {operation} in s3://{self.bucket}: {code} {error.get('Message', '')}".strip()
            raise SpoolUnavailable(message) from exc
        except BotoCoreError as exc:
            raise SpoolUnavailable(f"S3 unreachable for s3://{self.bucket}: {exc}") from exc

    def _check_clock(self, response: dict[str, Any]) -> None:
        """Warn once when S3's Date header and the local clock disagree by more than `MAX_SKEW_SECONDS`."""
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if date is None or self._skew_warned:
            return
        # The Date header is S3's time cut to the second: half a second later is the unbiased guess.
        skew = email.utils.parsedate_to_datetime(date).timestamp() + 0.5 - self._clock()
        if abs(skew) > MAX_SKEW_SECONDS:
            self._skew_warned = True
            logger.warning(
                "this machine's clock is %.1f s %s S3's: lease and batch ages are off by as much; sync it (NTP)",
                abs(skew),
                "behind" if skew > 0 else "ahead of",
            )
