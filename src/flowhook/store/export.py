"""Query results to files: CSV and Parquet written by DuckDB itself, from rows already read out of the store.

The store's read-only connection may not write files (`enable_external_access` is off there, one of `flowhook sql`'s
guards), so the rows leave it as Arrow and a separate in-memory DuckDB, which holds nothing of the store, writes them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

FileFormat = Literal["csv", "parquet"]


def write_rows(rows: pa.Table, path: Path, *, file_format: FileFormat) -> None:
    """Write `rows` to `path` as CSV (with a header) or Parquet, replacing any file there."""
    if file_format not in ("csv", "parquet"):
        raise ValueError(f"unknown file format {file_format!r}: 'csv' or 'parquet'")
    options = "FORMAT csv, HEADER true" if file_format == "csv" else "FORMAT parquet"
    target = "'" + str(path).replace("'", "''") + "'"
    con = duckdb.connect(config={"python_enable_replacements": False})
    try:
        con.register("export_rows", rows)
        con.execute(f"COPY export_rows TO {target} ({options})")
    finally:
        con.close()


def csv_text(rows: pa.Table) -> str:
    """`rows` as the CSV text `write_rows` writes, for stdout."""
    with tempfile.TemporaryDirectory(prefix="flowhook-export-") as folder:
        path = Path(folder) / "rows.csv"
        write_rows(rows, path, file_format="csv")
        return path.read_text(encoding="utf-8")
