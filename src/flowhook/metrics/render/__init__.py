"""Present a `Report` to its readers: Markdown and table artifacts, JSON, the terminal, and the store's report rows.

Contract: pure, no I/O. `definitions` says once what each figure means (a gloss for the terminal's legend, a
sentence for the Markdown and the JSON); `markdown`, `terminal` and `records` (JSON, table-artifact and store rows)
each present the same figures, with the same warnings first. Numbers are rounded for people only: the JSON and the
store's rows keep them whole.
"""

from flowhook.metrics.render.definitions import DEFINITIONS, Definition
from flowhook.metrics.render.markdown import MAX_BUCKET_LINES, to_markdown
from flowhook.metrics.render.records import to_json_dict, to_store_rows, to_table_rows
from flowhook.metrics.render.terminal import DEFAULT_BUCKETS, legend, to_rich

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFINITIONS",
    "MAX_BUCKET_LINES",
    "Definition",
    "legend",
    "to_json_dict",
    "to_markdown",
    "to_rich",
    "to_store_rows",
    "to_table_rows",
]
