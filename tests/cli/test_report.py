"""The CLI over a real DuckDB file: report, sql and status, and clear errors instead of tracebacks."""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from flowhook.cli import app
from flowhook.settings import get_settings
from flowhook.spool import Spool
from flowhook.store import DuckDBStore, StoredEvent
from tests.factories import make_event, stored_event

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def new_york() -> Iterator[None]:
    """The process's local time zone is UTC-4 in May, so reading a naive time as local time would show."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def _stored(n: int, event_type: str, received: datetime, latency: float) -> StoredEvent:
    return StoredEvent(
        id=f"{event_type}-{n}",
        type=event_type,
        source="test",
        occurred=received,
        received=received,
        emitted=received,
        started=received,
        stored=received + timedelta(seconds=latency),
        batch_id="b",
        flow_run_id=None,
        status="ok",
        error=None,
        data={"n": n},
        result={},
    )


def _one_line(result: Result) -> str:
    """The output with Rich's line wrapping undone."""
    return " ".join(result.output.split())


def _assert_clean_error(result: Result, *sentences: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not an escaped exception
    assert result.stderr.startswith("error:") and "Traceback" not in result.output
    assert result.stdout == ""
    for sentence in sentences:
        assert sentence in _one_line(result)


# --- a known set of events in a fixed window -------------------------------------------------------------

AT = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
SINCE, UNTIL = "2024-05-01T10:00:00", "2024-05-01T10:10:00"  # naive: UTC
T = 600.0
BUCKET = 90.0  # 600 s / 90 s: six whole buckets and a 60 s one


def _at(seconds: float) -> datetime:
    return AT + timedelta(seconds=seconds)


def _known(event_id: str, event_type: str, received: float, stored: float | None, status: str = "ok") -> StoredEvent:
    """Occurred 1 s before `received`, emitted 0.5 s and started 0.75 s after it (seconds from 10:00 UTC)."""
    return StoredEvent(
        id=event_id,
        type=event_type,
        source="test",
        occurred=_at(received - 1),
        received=_at(received),
        emitted=_at(received + 0.5),
        started=_at(received + 0.75),
        stored=None if stored is None else _at(stored),
        batch_id=f"batch-{event_id}",
        flow_run_id="run-1",
        status=status,
        error="boom" if status == "failed" else None,
        data={},
        result=None,
    )


KNOWN = [
    _known("u1", "user_request", -10, 20),  # arrived before the window, stored in it: M, not N
    _known("u2", "user_request", 60, 62),
    _known("u3", "user_request", 120, 125),
    _known("u4", "user_request", 300, 301),
    _known("u5", "user_request", 540, 660),  # stored after the window: N, in flight at its end
    _known("u6", "user_request", 720, 721),  # after the window: not counted at all
    _known("d1", "data_update", 180, 190, status="failed"),
    _known("d2", "data_update", 240, 243),
]
# By hand: arrivals received in [10:00, 10:10), completions stored in it, and the latencies
# (received → stored) of those completions.
EXPECTED_N = {"data_update": 2, "user_request": 4, "all": 6}
EXPECTED_M = {"data_update": 2, "user_request": 4, "all": 6}
LATENCIES = {"data_update": [10.0, 3.0], "user_request": [30.0, 2.0, 5.0, 1.0]}
LATENCIES["all"] = LATENCIES["user_request"] + LATENCIES["data_update"]
# Arrivals per 90 s bucket: u2 at 60 s → 0, u3 at 120 s → 1, u4 at 300 s → 3, u5 at 540 s → 6; d1, d2 → 2.
ARRIVALS_PER_BUCKET = {
    "data_update": [0, 0, 2, 0, 0, 0, 0],
    "user_request": [1, 1, 0, 1, 0, 0, 1],
    "all": [1, 1, 2, 1, 0, 0, 1],
}


@pytest.fixture
def known_store(data_dir: Path) -> DuckDBStore:
    store = DuckDBStore(data_dir / "flowhook.duckdb")
    assert store.write_events(KNOWN) == len(KNOWN)
    return store


def _report_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["report", *args, "--json"])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output)
    return report


def test_report_json_over_an_explicit_window_matches_the_events_by_hand(known_store: DuckDBStore) -> None:
    report = _report_json("--since", SINCE, "--until", UNTIL, "--bucket", str(BUCKET))

    assert (report["window_start"], report["window_end"]) == ("2024-05-01T10:00:00+00:00", "2024-05-01T10:10:00+00:00")
    assert (report["span_seconds"], report["bucket_seconds"]) == (T, BUCKET)
    rows = {row["event_type"]: row for row in report["rows"]}
    assert [row["event_type"] for row in report["rows"]] == ["data_update", "user_request", "all"]
    for event_type, row in rows.items():
        n, m = EXPECTED_N[event_type], EXPECTED_M[event_type]
        assert (row["n"], row["m"]) == (n, m), event_type
        assert row["arrival_rate"] == pytest.approx(n / T)
        assert row["processing_rate"] == pytest.approx(m / T)
        assert row["throughput"] == pytest.approx(min(n, m) / T)
        latency = row["stages"]["latency"]
        hand = LATENCIES[event_type]
        assert latency["count"] == len(hand) == m
        assert latency["p50"] == pytest.approx(statistics.median(hand))
        assert latency["mean"] == pytest.approx(statistics.fmean(hand))
        assert latency["max"] == max(hand)
        end_to_end = row["stages"]["end_to_end"]
        assert end_to_end["p50"] == pytest.approx(statistics.median(h + 1 for h in hand))  # occurred 1 s earlier
        assert row["stages"]["sent"]["max"] == pytest.approx(1.0)
        assert row["stages"]["woken"]["p50"] == pytest.approx(0.25)
    assert (rows["all"]["failed"], rows["data_update"]["failed"], rows["user_request"]["failed"]) == (1, 1, 0)
    assert rows["user_request"]["in_flight"] == rows["all"]["in_flight"] == 1  # u5
    assert rows["user_request"]["backlog_start"] == 1  # u1
    assert rows["user_request"]["backlog_end"] == rows["all"]["backlog_end"] == 1  # u5

    buckets = report["buckets"]
    assert len(buckets) == math.ceil(T / BUCKET) * len(rows) == 21
    for event_type in rows:
        mine = [b for b in buckets if b["event_type"] == event_type]
        assert len(mine) == math.ceil(T / BUCKET)
        assert [b["start"] for b in mine] == [_at(k * BUCKET).isoformat() for k in range(len(mine))]
        assert [b["seconds"] for b in mine] == [BUCKET] * 6 + [60.0]
        assert [b["arrivals"] for b in mine] == ARRIVALS_PER_BUCKET[event_type]
        assert sum(b["completions"] for b in mine) == EXPECTED_M[event_type]
    assert [b["backlog"] for b in buckets if b["event_type"] == "all"][-1] == 1  # u5, still waiting at 10:10


def test_report_json_over_the_last_minutes(data_dir: Path) -> None:
    start = datetime.now(UTC) - timedelta(seconds=30)
    events = [_stored(i, "user_request", start + timedelta(seconds=i), 1.0) for i in range(10)]
    events += [_stored(i, "data_update", start + timedelta(seconds=2 * i), 1.0) for i in range(5)]
    DuckDBStore(data_dir / "flowhook.duckdb").write_events(events)

    report = _report_json("--minutes", "5")
    # T is the whole window, the last 5 minutes up to the report's time.
    window_start = datetime.fromisoformat(report["window_start"])
    window_end = datetime.fromisoformat(report["window_end"])
    assert report["span_seconds"] == pytest.approx(300.0) == (window_end - window_start).total_seconds()
    assert timedelta(0) <= datetime.now(UTC) - window_end < timedelta(minutes=1)
    rows = {row["event_type"]: row for row in report["rows"]}
    assert (rows["all"]["n"], rows["all"]["m"]) == (15, 15)
    assert rows["user_request"]["arrival_rate"] == pytest.approx(10 / 300)
    assert rows["data_update"]["arrival_rate"] == pytest.approx(5 / 300)
    assert rows["all"]["stages"]["latency"]["p50"] == pytest.approx(1.0)


def test_report_tables_show_every_section_and_type(known_store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(app, ["report", "--since", SINCE, "--until", UNTIL, "--bucket", str(BUCKET)])
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    for title in (
        "Events over T = 600 s",
        "Rates (events/s) and τ",
        "Capacity and latency received→stored",
        "Latency per stage, measured",
        "Backlog and Little's law",
        "Forecast, M/M/c (target p99 ≤ 30 s)",
        "Per 90 s bucket, all types",
        "Legend",
    ):
        assert title in result.output
    for event_type in ("user_request", "data_update", "all"):
        assert f"\n{event_type} " in result.output  # whole, at the start of its rows
    assert "window 2024-05-01 10:00:00 → 10:10:00 UTC\n" in result.output
    assert "1 events received in the window were not stored by its end" in _one_line(result)
    assert "10:09:00" in result.output  # the last bucket's start


def test_report_chart_writes_a_png(known_store: DuckDBStore, tmp_path: Path) -> None:
    chart = tmp_path / "charts" / "out.png"
    result = runner.invoke(app, ["report", "--since", SINCE, "--until", UNTIL, "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    assert chart.read_bytes()[:8] == PNG_MAGIC
    assert f"chart: {chart}" in _one_line(result)

    again = tmp_path / "again.png"
    report = _report_json("--since", SINCE, "--until", UNTIL, "--chart", str(again))  # stdout stays pure JSON
    assert report["rows"][-1]["n"] == EXPECTED_N["all"]
    assert again.read_bytes()[:8] == PNG_MAGIC


def test_report_refuses_a_window_that_ends_before_it_starts(known_store: DuckDBStore) -> None:
    result = runner.invoke(app, ["report", "--since", UNTIL, "--until", SINCE])
    _assert_clean_error(result, "before it starts")


def test_report_refuses_too_many_buckets(known_store: DuckDBStore) -> None:
    result = runner.invoke(app, ["report", "--minutes", "60", "--bucket", "0.001"])
    _assert_clean_error(result, "3600000 buckets of 0.001 s in a 3600 s window", "use longer buckets")


@pytest.mark.usefixtures("new_york")
@pytest.mark.parametrize(
    ("since", "until"),
    [
        (SINCE, UNTIL),
        ("2024-05-01 10:00:00", "2024-05-01 10:10:00"),
        ("2024-05-01T12:00:00+02:00", "2024-05-01T06:10:00-04:00"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:10:00.000000+00:00"),
    ],
)
def test_report_reads_a_time_without_an_offset_as_utc(known_store: DuckDBStore, since: str, until: str) -> None:
    report = _report_json("--since", since, "--until", until)
    assert (report["window_start"], report["window_end"]) == ("2024-05-01T10:00:00+00:00", "2024-05-01T10:10:00+00:00")
    assert report["rows"][-1]["n"] == EXPECTED_N["all"]


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not an ISO time like 2024-05-01T10:00:00"),
        (["--until", "2024-13-01"], "--until '2024-13-01' is not an ISO time"),
    ],
)
def test_report_reads_times_as_replay_does(known_store: DuckDBStore, args: list[str], sentence: str) -> None:
    """One parser for every command's --since/--until: the same sentence for the same bad time."""
    _assert_clean_error(runner.invoke(app, ["report", *args]), sentence)


def test_report_takes_a_date_or_minutes_without_seconds(known_store: DuckDBStore) -> None:
    report = _report_json("--since", "2024-05-01T10:00", "--until", "2024-05-01T10:10")
    assert report["rows"][-1]["n"] == EXPECTED_N["all"]
    day = _report_json("--since", "2024-05-01", "--until", "2024-05-02", "--bucket", "3600")
    assert (day["window_start"], day["window_end"]) == ("2024-05-01T00:00:00+00:00", "2024-05-02T00:00:00+00:00")


def test_report_counts_the_spools_in_flight_events(data_dir: Path) -> None:
    spooled = [make_event(n) for n in (1, 2, 3, 4)]  # received 10:00:01 .. 10:00:04
    Spool(get_settings().spool_dir).write_batch(spooled)
    # e4's batch was stored already (it is still in the spool until marked done): count it once.
    store = DuckDBStore(data_dir / "flowhook.duckdb")
    store.write_events(
        [stored_event(spooled[3], batch_id="b-stored", stored=_at(10)), _known("s1", "user_request", 60, 61)]
    )

    report = _report_json("--since", SINCE, "--until", UNTIL, "--bucket", "60")
    rows = {row["event_type"]: row for row in report["rows"]}
    assert list(rows) == ["user_request", "all"]
    for row in rows.values():
        assert (row["n"], row["m"], row["in_flight"], row["backlog_start"], row["backlog_end"]) == (5, 2, 3, 0, 3)
    assert [b["backlog"] for b in report["buckets"] if b["event_type"] == "all"] == [3] * 10
    assert "3 events received in the window were not stored by its end (in flight)." in report["warnings"]


def test_report_says_when_the_file_is_locked(known_store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWHOOK_LOCK_TIMEOUT_SECONDS", "0.2")
    get_settings.cache_clear()
    with known_store.connect():  # a second flock on the file waits, even from this process
        result = runner.invoke(app, ["report", "--since", SINCE, "--until", UNTIL])
    _assert_clean_error(
        result,
        f"the store at {known_store.path} is in use by another process (pid {os.getpid()}?)",
        "its lock flowhook.duckdb.lock was not free within 0.2 s (FLOWHOOK_LOCK_TIMEOUT_SECONDS)",
    )


def test_report_without_a_database_says_so(data_dir: Path) -> None:
    result = runner.invoke(app, ["report"])
    _assert_clean_error(result, "nothing has been stored yet")


def test_report_buckets_0_lists_no_bucket_and_fewer_lists_the_last(known_store: DuckDBStore) -> None:
    window = ["report", "--since", SINCE, "--until", UNTIL, "--bucket", str(BUCKET)]
    starts = [_at(k * BUCKET).strftime("%H:%M:%S") for k in range(7)]  # 10:00:00, 10:01:30 … 10:09:00

    def listed(*args: str) -> list[str]:
        result = runner.invoke(app, [*window, *args])
        assert result.exit_code == 0, result.output
        return [line.split()[0] for line in result.stdout.splitlines() if line[:8] in starts]

    assert listed() == starts
    assert listed("--buckets", "2") == starts[-2:]
    none = runner.invoke(app, [*window, "--buckets", "0"])
    assert "bucket, all types" not in none.stdout and "Legend" in none.stdout
    assert listed("--buckets", "0") == []
    negative = runner.invoke(app, [*window, "--buckets", "-1"])
    _assert_clean_error(negative, "--buckets", "greater than or equal to 0", "report --help`)")


# --- sql and status --------------------------------------------------------------------------------------


def test_sql_prints_rows_and_reports_bad_sql_without_a_traceback(data_dir: Path) -> None:
    DuckDBStore(data_dir / "flowhook.duckdb").write_events([_stored(1, "user_request", datetime.now(UTC), 0.5)])
    ok = runner.invoke(app, ["sql", "SELECT type, count(*) AS n FROM events GROUP BY type"])
    assert ok.exit_code == 0 and "user_request" in ok.output
    bad = runner.invoke(app, ["sql", "SELEC nothing"])
    assert bad.exit_code == 1
    assert "error:" in bad.output and "syntax error" in bad.output and "Traceback" not in bad.output


def test_sql_sees_the_report_views_on_a_file_with_events_only(known_store: DuckDBStore) -> None:
    result = runner.invoke(app, ["sql", "SELECT id, latency_seconds FROM event_latency WHERE id = 'u3'"])
    assert result.exit_code == 0, result.output
    assert "u3" in result.output and "5.0" in result.output
    empty = runner.invoke(app, ["sql", "SELECT count(*) AS reports_so_far FROM latest_reports"])
    assert empty.exit_code == 0, empty.output
    assert "reports_so_far" in empty.output and " 0 " in empty.output


def test_sql_says_when_the_file_is_locked(known_store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWHOOK_LOCK_TIMEOUT_SECONDS", "0.2")
    get_settings.cache_clear()
    with known_store.connect():
        result = runner.invoke(app, ["sql", "SELECT count(*) FROM events"])
    _assert_clean_error(result, f"the store at {known_store.path} is in use by another process")


def test_status_counts_batches_and_events(data_dir: Path) -> None:
    DuckDBStore(data_dir / "flowhook.duckdb").write_events([_stored(1, "data_update", datetime.now(UTC), 0.1)])
    Spool(get_settings().spool_dir).write_batch([make_event(1)])
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines[:3] == [
        ["batches", "per", "state", "in", "the", "spool", str(data_dir / "spool")],
        ["open", "ready", "sent", "claimed", "done"],
        ["0", "1", "0", "0", "0"],
    ]
    assert ["data_update", "1"] in lines and ["all", "1"] in lines
    assert "{" not in result.stdout  # tables, not a Python dict
