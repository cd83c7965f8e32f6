"""What `flowhook sql` may run: statements that only read, judged by DuckDB's own parser.

The parser's verdict is the first guard; the second is the connection itself (`EventStore.read_only`),
which cannot change the store whatever slips past this one (a read-only open, or a read-only attach).
"""

from __future__ import annotations

import re

import duckdb

_READS = {duckdb.StatementType.SELECT}
"""SELECT covers WITH, FROM-first, VALUES, DESCRIBE, SHOW, SUMMARIZE and the PRAGMAs that only read
(DuckDB rewrites `PRAGMA table_info(...)` into a SELECT; one that sets something parses as SET)."""

_EXPLAIN = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?\b", re.IGNORECASE)


class NotReadOnly(ValueError):
    """The statement would change the store, or reach past it (files, extensions, other databases)."""


def _kind(statement: duckdb.Statement) -> str:
    return statement.type.name.replace("_", " ")


def read_only_statement(sql: str) -> str:
    """The one statement in `sql`, if it only reads; raises `NotReadOnly` (or `duckdb.ParserException`)."""
    statements = duckdb.extract_statements(sql)
    if not statements:
        raise NotReadOnly("no statement given")
    for statement in statements:
        if statement.type == duckdb.StatementType.EXPLAIN:
            # EXPLAIN ANALYZE runs what it explains: judge that statement too.
            inner = duckdb.extract_statements(_EXPLAIN.sub("", statement.query, count=1))
            if len(inner) == 1 and inner[0].type in _READS:
                continue
            kind = _kind(inner[0]) if len(inner) == 1 else "EXPLAIN"
        elif statement.type in _READS:
            continue
        else:
            kind = _kind(statement)
        raise NotReadOnly(f"refused ({kind}): `flowhook sql` only reads: SELECT, WITH, DESCRIBE, SHOW, EXPLAIN")
    if len(statements) > 1:
        raise NotReadOnly(f"refused ({len(statements)} statements): `flowhook sql` runs one statement at a time")
    return statements[0].query
