"""Choose the spool by one setting: the local folder, or an S3 bucket that worker runs on other machines reach."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from flowhook.spool.config import S3Connection
from flowhook.spool.folder import Spool
from flowhook.spool.protocol import BatchSpool
from flowhook.spool.s3 import S3Spool
from flowhook.spool.s3_objects import s3_client


class SpoolSettings(Protocol):
    """What `open_spool` reads of the settings (`flowhook.settings.Settings` has it): the spool needs no more."""

    @property
    def spool_url(self) -> str | None: ...

    @property
    def spool_dir(self) -> Path: ...

    @property
    def s3(self) -> S3Connection: ...


def open_spool(settings: SpoolSettings) -> BatchSpool:
    """The spool `FLOWHOOK_SPOOL_URL` names: unset, the folder `<data_dir>/spool`; `s3://bucket/prefix`, that
    bucket and prefix, reached as `FLOWHOOK_S3__*` and boto3's credential chain say."""
    if settings.spool_url is None:
        return Spool(settings.spool_dir)
    return S3Spool.from_url(settings.spool_url, client=s3_client(settings.s3.endpoint_url, settings.s3.region))
