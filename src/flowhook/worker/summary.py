"""What a worker run did, as the artifact its flow run carries in the Prefect UI.

A user looking at `user_request · 250 events` in the UI wants to go from the run to its events: the
artifact lists the run's batches (ids, counts, outcome, sources), shows its first rows, and gives the
query that returns all of them from the store (`flowhook sql`, which takes the pipeline's lock).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from flowhook.store import StoredEvent

SAMPLE_ROWS = 10
"""Rows shown in the artifact itself; the query returns the rest."""

_CELL_CHARS = 80


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One batch a run handled: how many events, how they ended, where they came from."""

    batch_id: str
    events: int
    ok: int
    failed: int
    sources: tuple[str, ...]


def artifact_key(event_type: str) -> str:
    """`flowhook-run-user-request`: one key per type, so the UI keeps the history of that type's runs.

    Prefect allows lowercase letters, digits and dashes in a key; anything else becomes a dash.
    """
    return "flowhook-run-" + re.sub(r"[^a-z0-9]+", "-", event_type.lower()).strip("-")


class RunSummary:
    """What a run has stored, batch by batch, and its first rows: small however long the run stays awake."""

    def __init__(self, sample_rows: int = SAMPLE_ROWS) -> None:
        self.lines: list[BatchLine] = []
        self.sample: list[StoredEvent] = []
        self._sample_rows = sample_rows

    def add(self, handled: Sequence[StoredEvent], retried: Sequence[StoredEvent] = ()) -> None:
        """One round: the events as first handled, and the failed ones' retry records, which replace them."""
        final = {event.id: event for event in handled} | {event.id: event for event in retried}
        by_batch: dict[str, list[StoredEvent]] = {}
        for event in final.values():
            by_batch.setdefault(event.batch_id, []).append(event)
        for batch_id, group in by_batch.items():
            failed = sum(e.status != "ok" for e in group)
            sources = tuple(sorted({e.source for e in group}))
            self.lines.append(BatchLine(batch_id, len(group), len(group) - failed, failed, sources))
        self.sample += list(final.values())[: self._sample_rows - len(self.sample)]

    @property
    def sources(self) -> set[str]:
        return {source for line in self.lines for source in line.sources}

    def markdown(self, event_type: str, flow_run_id: str) -> str:
        return markdown(event_type, flow_run_id, self.lines, self.sample)


def rows_query(flow_run_id: str) -> str:
    """The SQL that returns a run's rows from the `events` table."""
    return (
        "SELECT id, batch_id, source, status, attempts, received, stored, result, error FROM events\n"
        f"  WHERE flow_run_id = '{_quote(flow_run_id)}' ORDER BY received"
    )


def markdown(event_type: str, flow_run_id: str, lines: Sequence[BatchLine], sample: Sequence[StoredEvent]) -> str:
    """The artifact: a headline, the batches, the query for every row, and the first rows themselves."""
    events, failed = sum(line.events for line in lines), sum(line.failed for line in lines)
    outcome = f"{events - failed} ok" + (f", {failed} dead letters" if failed else "")
    parts = [
        f"### {event_type} · {_count(len(lines), 'batch', 'batches')} · {_count(events, 'event', 'events')}: {outcome}",
        "",
        "| batch | events | ok | failed | sources |",
        "|---|---:|---:|---:|---|",
        *(
            f"| `{line.batch_id}` | {line.events} | {line.ok} | {line.failed} | {', '.join(line.sources)} |"
            for line in lines
        ),
        "",
        "**Every row this run stored**, from the store while the pipeline runs:",
        "",
        "```bash",
        f'flowhook sql "{rows_query(flow_run_id)}"',
        "```",
    ]
    if lines:
        parts += [
            "",
            f"One batch: `... WHERE batch_id = '{lines[0].batch_id}'`. "
            "Failed rows are dead letters: `flowhook replay --dry-run` lists them, `flowhook replay` runs them again.",
        ]
    if sample:
        parts += [
            "",
            f"First {len(sample)} of them:",
            "",
            "| id | source | status | received | result or error |",
            "|---|---|---|---|---|",
            *(_sample_row(event) for event in sample),
        ]
    return "\n".join(parts) + "\n"


def _sample_row(event: StoredEvent) -> str:
    outcome = event.error if event.status != "ok" else json.dumps(event.result, default=str, separators=(",", ":"))
    cells = [f"`{event.id}`", event.source, event.status, event.received.isoformat(timespec="seconds"), outcome or ""]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(text: str) -> str:
    """Markdown-table safe and short: no pipes or newlines, at most 80 characters."""
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"


def _quote(value: str) -> str:
    return value.replace("'", "''")


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"
