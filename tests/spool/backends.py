"""The spool backends the contract tests run against: a local folder, and S3 on moto's server."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flowhook.spool import BatchSpool, S3Spool, Spool
from tests import s3


@dataclass(frozen=True)
class SpoolSpec:
    """Where a test's spool lives; picklable, so a spawned process opens the same spool."""

    kind: Literal["local", "s3"]
    root: Path | None = None
    endpoint: str | None = None
    bucket: str | None = None
    prefix: str = "flowhook/spool"

    def open(self) -> BatchSpool:
        if self.kind == "local":
            assert self.root is not None
            return Spool(self.root)
        assert self.endpoint is not None and self.bucket is not None
        return S3Spool(s3.client(self.endpoint), self.bucket, self.prefix)

    def age(self, batch_id: str, seconds: float) -> None:
        """Put the batch's clock in its current state `seconds` back (its last move was that long ago)."""
        if self.kind == "local":
            spool = Spool(self._root)
            state = spool.state_of(batch_id)
            assert state is not None, batch_id
            self._utime(spool.path(state, batch_id), seconds)
            return
        done = f"{self.prefix}/done/{batch_id}"
        for key in [*self._keys(f"{self.prefix}/state/{batch_id}/"), *self._keys(done)]:
            s3.age(self._bucket, key, seconds)

    def age_lease(self, event_type: str, owner: str, seconds: float) -> None:
        if self.kind == "local":
            self._utime(Spool(self._root).leases / f"{event_type}@{owner}", seconds)
        else:
            s3.age(self._bucket, f"{self.prefix}/leases/{event_type}@{owner}", seconds)

    def age_launch(self, batch_id: str, seconds: float) -> None:
        if self.kind == "local":
            self._utime(Spool(self._root).launches / batch_id, seconds)
        else:
            s3.age(self._bucket, f"{self.prefix}/launches/{batch_id}", seconds)

    @property
    def _root(self) -> Path:
        assert self.root is not None
        return self.root

    @property
    def _bucket(self) -> str:
        assert self.bucket is not None
        return self.bucket

    def _keys(self, prefix: str) -> list[str]:
        assert self.endpoint is not None
        return s3.keys(s3.client(self.endpoint), self._bucket, prefix)

    @staticmethod
    def _utime(path: Path, seconds: float) -> None:
        then = time.time() - seconds
        os.utime(path, (then, then))
