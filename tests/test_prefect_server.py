"""Prefect's SQLite configuration as the local stack's server runs it: two transactions that each read,
then write, at the same time. Begun DEFERRED (Prefect's default) the second is refused at its write with
"database is locked"; begun IMMEDIATE (flowhook.prefect_server) it waits for the first and both commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCENARIO = r"""
import asyncio, sys
import sqlalchemy as sa
from prefect.server.database.configurations import AioSqliteConfiguration
from flowhook.prefect_server import begin_sqlite_writes_immediately

if sys.argv[2] == "immediate":
    begin_sqlite_writes_immediately()
    begin_sqlite_writes_immediately()  # idempotent


async def main() -> None:
    config = AioSqliteConfiguration(connection_url=f"sqlite+aiosqlite:///{sys.argv[1]}")
    engine = await config.engine()
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE t (n INTEGER)"))

    two_has_read, one_has_committed = asyncio.Event(), asyncio.Event()

    async def wait(event: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass  # begun IMMEDIATE, the other is waiting for our lock: go on

    async def read_then_write(n: int) -> str:
        session = await config.session(engine)
        try:
            async with session:
                async with config.begin_transaction(session):
                    await session.execute(sa.text("SELECT count(*) FROM t"))
                    if n == 1:
                        await wait(two_has_read, 1)
                    else:
                        two_has_read.set()
                        await wait(one_has_committed, 5)  # 2 writes after 1 committed, on an older snapshot
                    await session.execute(sa.text("INSERT INTO t VALUES (:n)"), {"n": n})
            return "committed"
        except Exception as exc:
            return type(exc).__name__ + ": " + str(exc).splitlines()[0]
        finally:
            if n == 1:
                one_has_committed.set()

    results = await asyncio.gather(read_then_write(1), read_then_write(2))
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar()
    await engine.dispose()
    print(results, rows)


asyncio.run(main())
"""


def _run(tmp_path: Path, mode: str) -> str:
    db = tmp_path / f"{mode}.db"
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO, str(db), mode], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


@pytest.mark.timeout(180)
def test_concurrent_read_then_write_transactions_wait_instead_of_failing(tmp_path: Path) -> None:
    deferred = _run(tmp_path, "deferred")
    immediate = _run(tmp_path, "immediate")
    assert "database is locked" in deferred and deferred.endswith(" 1"), deferred
    assert immediate == "['committed', 'committed'] 2", immediate
