"""Prefect's server as the local stack runs it: `python -m flowhook.prefect_server server start ...` is
`prefect server start ...` with one change on SQLite: every write transaction begins IMMEDIATE.

Prefect begins most write transactions DEFERRED: a transaction that has read takes the write lock only at
its first write, and if another connection committed meanwhile, SQLite refuses the upgrade at once with
"database is locked" (SQLITE_BUSY_SNAPSHOT), which the busy timeout does not wait out. The API answers 503
and its clients retry after 2, 4, 8... seconds. When several event types wake at once, the automation's
create-flow-run was refused that way and a run started seconds late (or, after five refusals, never).
Begun IMMEDIATE, a writer waits for the lock instead (Prefect's busy timeout, 60 s), as Prefect already
does for the writes it marks `with_for_update`. Reads begin no transaction and are unaffected; Postgres
is untouched."""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any


def begin_sqlite_writes_immediately() -> None:
    """Make Prefect's SQLite configuration begin every write transaction IMMEDIATE (idempotent)."""
    from prefect.server.database.configurations import AioSqliteConfiguration

    begin = AioSqliteConfiguration.begin_transaction
    if getattr(begin, "flowhook_immediate", False):
        return

    @asynccontextmanager
    async def begin_transaction(self: Any, session: Any, with_for_update: bool = False) -> AsyncGenerator[Any]:
        async with begin(self, session, with_for_update=True) as transaction:
            yield transaction

    begin_transaction.flowhook_immediate = True  # type: ignore[attr-defined]
    AioSqliteConfiguration.begin_transaction = begin_transaction  # type: ignore[method-assign]


def main() -> None:
    """Run Prefect's CLI with the arguments given, in this process (one API process runs uvicorn here)."""
    begin_sqlite_writes_immediately()
    from prefect.cli import app

    sys.argv[0] = "prefect"  # Prefect's CLI reads its arguments from sys.argv
    app()


if __name__ == "__main__":
    main()
