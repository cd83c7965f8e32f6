"""The worker run's artifact: its batches, their outcome, the query for its rows, its first rows."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from flowhook.store import DuckDBStore, StoredEvent
from flowhook.worker.summary import RunSummary, artifact_key, rows_query
from tests.factories import T0

RUN = "0f8e7c1a-0000-4000-8000-000000000001"


def stored(n: int, batch: str, *, source: str = "webhook", status: str = "ok") -> StoredEvent:
    return StoredEvent(
        id=f"e{n}",
        type="user_request",
        source=source,
        occurred=T0,
        received=T0 + timedelta(seconds=n),
        emitted=None,
        started=None,
        stored=None,
        batch_id=batch,
        flow_run_id=RUN,
        status=status,
        error="boom | twice\nover" if status == "failed" else None,
        data={"n": n},
        result={"n": n} if status == "ok" else None,
    )


@pytest.mark.parametrize(
    ("event_type", "key"),
    [
        ("user_request", "flowhook-run-user-request"),
        ("Data.Update", "flowhook-run-data-update"),
        ("x__y_", "flowhook-run-x-y"),
    ],
)
def test_artifact_key_is_stable_per_type_and_valid_for_prefect(event_type: str, key: str) -> None:
    assert artifact_key(event_type) == key


def test_a_retry_record_replaces_the_failed_one_and_counts_per_batch() -> None:
    summary = RunSummary()
    first = [stored(1, "b1"), stored(2, "b1", status="failed"), stored(3, "b2", source="sqs")]
    summary.add(first, [dataclasses.replace(first[1], status="ok", error=None, attempts=2)])
    summary.add([stored(4, "b3", status="failed")])  # still failed after its retries: a dead letter

    assert [(line.batch_id, line.events, line.ok, line.failed, line.sources) for line in summary.lines] == [
        ("b1", 2, 2, 0, ("webhook",)),
        ("b2", 1, 1, 0, ("sqs",)),
        ("b3", 1, 0, 1, ("webhook",)),
    ]
    assert summary.sources == {"webhook", "sqs"}
    assert [event.status for event in summary.sample] == ["ok", "ok", "ok", "failed"]


def test_the_sample_keeps_the_first_rows_only() -> None:
    summary = RunSummary(sample_rows=3)
    summary.add([stored(n, "b1") for n in range(2)])
    summary.add([stored(n, "b2") for n in range(2, 6)])
    assert [event.id for event in summary.sample] == ["e0", "e1", "e2"]


def test_markdown_says_what_the_run_did_and_how_to_reach_its_rows() -> None:
    summary = RunSummary()
    summary.add([stored(1, "user_request-1-aa"), stored(2, "user_request-1-aa", status="failed")])
    text = summary.markdown("user_request", RUN)

    assert text.startswith("### user_request · 1 batch · 2 events: 1 ok, 1 dead letters\n")
    assert "| `user_request-1-aa` | 2 | 1 | 1 | webhook |" in text
    one = RunSummary()
    one.add([stored(1, "b")])
    assert one.markdown("user_request", RUN).startswith("### user_request · 1 batch · 1 event: 1 ok\n")
    assert f'flowhook sql "{rows_query(RUN)}"' in text
    # A cell never breaks the table: pipes escaped, newlines folded.
    assert "| `e2` | webhook | failed | 2024-05-01T10:00:02+00:00 | boom \\| twice over |" in text


def test_the_rows_query_returns_the_runs_rows_from_the_real_store(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "flowhook.duckdb")
    other = dataclasses.replace(stored(3, "b2"), flow_run_id="another-run")
    store.write_events([stored(1, "b1"), stored(2, "b1", status="failed"), other])
    assert [row[0] for row in store.query(rows_query(RUN))] == ["e1", "e2"]
    assert store.query(rows_query("it's")) == []  # quoted, not an injection
