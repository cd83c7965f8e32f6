"""The Prefect UI as a user sees it after `flowhook demo`: Debian's Chromium, driven by Playwright.

The demo runs as a user runs it (`python -m flowhook demo`, the stack kept up). Once it says the stack
is up, each test opens the UI where a user would look, checks what they look for, and saves a screenshot
under docs/screenshots/ (the README shows them). Ctrl-C (SIGINT) stops the demo afterwards.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from flowhook.stack import free_port
from flowhook.store import DuckDBStore
from flowhook.worker.summary import artifact_key
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EVENT_TYPES = ("user_request", "data_update", "scheduled_tick")
CHROMIUM = Path(os.environ.get("FLOWHOOK_CHROMIUM", "/usr/bin/chromium"))
# No connections of Chromium's own: this machine's network is closed, and they would only fail.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "docs" / "screenshots"
DEMO_EVENTS = 600
DEMO_UP_SECONDS = 480
SWEEP_WAIT_SECONDS = 150


@dataclass(frozen=True)
class Demo:
    ui_url: str
    data_dir: Path
    log: Path

    def sent(self) -> int:
        """`sent = N` from the demo's own summary line."""
        found = re.search(r"sent = (\d+), stored = (\d+), duplicates = (\d+)", self.log.read_text())
        assert found is not None, self.log.read_text()[-3000:]
        return int(found.group(1))


@pytest.fixture(scope="module")
def demo(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`flowhook demo` on free ports and a temporary data folder, left up until the module's tests are done."""
    data = tmp_path_factory.mktemp("ui-demo") / "data"
    log, port = data.parent / "demo.log", free_port()
    env = {**os.environ, "FLOWHOOK_DATA_DIR": str(data), "FLOWHOOK_GATEWAY_PORT": str(free_port()), "COLUMNS": "200"}
    env.pop("FLOWHOOK_SQS__QUEUE_URL", None)
    command = [sys.executable, "-m", "flowhook", "demo", "--events", str(DEMO_EVENTS), "--prefect-port", str(port)]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=repo_root, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + DEMO_UP_SECONDS
        while "the stack is up" not in log.read_text():
            if process.poll() is not None:
                pytest.fail(f"flowhook demo exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"flowhook demo not up after {DEMO_UP_SECONDS} s:\n{log.read_text()[-3000:]}")
            time.sleep(1.0)
        yield Demo(f"http://127.0.0.1:{port}", data, log)
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops it: every part it started stops
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    output = log.read_text()
    assert "Traceback" not in output, output[-3000:]
    assert "stopping server" in output, output[-3000:]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs it, or set FLOWHOOK_CHROMIUM")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, demo: Demo) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=demo.ui_url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    yield page
    context.close()


def screenshot(page: Page, name: str) -> None:
    """Saved where the README shows it, once the page has settled (no requests in flight)."""
    page.wait_for_load_state("networkidle")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def run_rows(page: Page, event_type: str) -> Locator:
    """The run list's rows of a type's worker runs: named `<type> · <n> events`."""
    name = page.get_by_text(re.compile(rf"^{event_type} · [\d,]+ events?$"))
    return page.locator(".flow-run-list-item").filter(has=name)


def tag(page: Page, text: str | re.Pattern[str]) -> Locator:
    """A tag on a run or deployment, by its exact text or a pattern."""
    return page.locator(".p-tag").filter(
        has_text=re.compile(rf"^{re.escape(text)}$") if isinstance(text, str) else text
    )


def search_deployments(page: Page, text: str) -> None:
    """The deployments page, searched as a user types into its box (flow or deployment name)."""
    page.goto("/deployments")
    page.get_by_placeholder("Search deployments").fill(text)


def test_each_event_type_has_a_deployment_with_its_trigger_and_description(page: Page) -> None:
    search_deployments(page, "process-batch")
    for event_type in EVENT_TYPES:
        expect(page.get_by_role("link", name=event_type, exact=True)).to_be_visible()
    screenshot(page, "deployments")
    for event_type in EVENT_TYPES:
        search_deployments(page, event_type)
        page.get_by_role("link", name=event_type, exact=True).click()
        expect(page.get_by_text("process-batch", exact=True).first).to_be_visible()
        # The deployment page's Triggers section names the automation that wakes it.
        expect(page.get_by_role("link", name=f"flowhook: a {event_type} batch is ready")).to_be_visible()
        if event_type == EVENT_TYPES[0]:
            screenshot(page, "deployment")
        page.get_by_text("Description", exact=True).click()
        expect(page.get_by_text(re.compile(r"Process batches of")).first).to_be_visible()


def test_the_automations_page_lists_each_types_trigger_and_the_watchdog(page: Page) -> None:
    page.goto("/automations")
    for event_type in EVENT_TYPES:
        automation = page.get_by_text(f"flowhook: a {event_type} batch is ready", exact=True)
        expect(automation).to_be_visible()
    expect(page.get_by_text("flowhook: trigger path heartbeat missing", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"Run deployment")).first).to_be_visible()
    screenshot(page, "automations")


def test_each_event_type_has_completed_runs_named_by_type_and_batch_size(page: Page) -> None:
    page.goto("/runs")
    search = page.get_by_role("searchbox", name="Search by flow run name")
    search.fill("event")  # the worker runs: `<type> · <n> events` (`1 event` too)
    others = page.locator(".flow-run-list-item").filter(has_not=page.get_by_text(re.compile(r" · [\d,]+ events?$")))
    expect(others).to_have_count(0)
    for event_type in EVENT_TYPES:
        completed = run_rows(page, event_type).filter(has_text="Completed")
        expect(completed.first).to_be_visible()
        # Tagged with its type and with each source its events came from (a run that stored some: one woken for
        # a batch an awake run had already taken stores none).
        tagged = completed.filter(has=tag(page, event_type)).filter(has=tag(page, re.compile(r"^source:\w+$")))
        expect(tagged.first).to_be_visible()
    search.evaluate("box => box.scrollIntoView({block: 'start'})")  # the list, not the chart above it
    screenshot(page, "runs")


def test_the_latest_report_artifact_shows_rates_and_latency(page: Page, demo: Demo) -> None:
    page.goto("/artifacts")
    page.get_by_text("flowhook-report", exact=True).first.click()
    # The key's page lists its versions, newest first: the latest report.
    page.locator("a").filter(has_text=re.compile(r"^[0-9a-f]{8}$")).first.click()
    for heading in ("λ (ev/s)", "μ (ev/s)", "θ (ev/s)", "τ = 1/θ (s, seed model)", "p50 (s)", "p99"):
        expect(page.get_by_text(heading, exact=True).first).to_be_visible()
    rates = page.locator("table").first
    all_row = rates.locator("tr").filter(has=page.get_by_text("all", exact=True))
    cells = all_row.locator("td").all_inner_texts()
    assert int(cells[1].replace(",", "")) == demo.sent(), cells  # N: every event the demo sent, in the report
    screenshot(page, "report")
    chart = page.locator("img[src*='/reports/']").first
    chart.scroll_into_view_if_needed()
    expect(chart).to_be_visible()
    assert chart.evaluate("img => img.complete && img.naturalWidth > 0"), "the chart did not load from the gateway"
    screenshot(page, "report-chart")


def test_a_worker_run_leads_to_its_batches_and_their_rows(page: Page, demo: Demo) -> None:
    event_type = EVENT_TYPES[0]
    page.goto("/runs")
    run = run_rows(page, event_type).filter(has_text="Completed").filter(has=tag(page, re.compile(r"^source:"))).first
    run.get_by_role("link", name=re.compile(rf"^{event_type} · ")).click()
    expect(page.get_by_text("Completed", exact=True).first).to_be_visible()
    screenshot(page, "run")
    page.get_by_text("Artifacts", exact=True).click()
    page.get_by_text(artifact_key(event_type), exact=True).first.click()

    headline = page.get_by_text(re.compile(rf"^{event_type} · [\d,]+ batch(es)? · [\d,]+ events?: ")).first
    expect(headline).to_be_visible()
    handled = re.search(r"· ([\d,]+) events?:", headline.inner_text())
    assert handled is not None, headline.inner_text()
    events = int(handled.group(1).replace(",", ""))
    batches = page.get_by_text(re.compile(rf"^{event_type}-\d{{13}}-[0-9a-f]{{12}}$")).all_inner_texts()
    assert batches, "no batch ids on the run's artifact"
    for batch_id in batches:  # real batches, done
        assert (demo.data_dir / "spool" / "done" / f"{batch_id}.jsonl").exists(), batch_id
    screenshot(page, "run-artifact")

    # The query the artifact gives returns this run's rows from the store: of its batches, at most as many as it
    # handled (an event sent twice is stored once).
    command = page.locator("pre code, pre").filter(has_text="flowhook sql").first.inner_text()
    query = re.fullmatch(r'\s*flowhook sql "(.*)"\s*', command, re.DOTALL)
    assert query is not None, command
    rows = DuckDBStore(demo.data_dir / "flowhook.duckdb").query(query.group(1))
    assert 0 < len(rows) <= events
    assert {row[1] for row in rows} <= set(batches)


def test_the_sweeper_runs_on_its_schedule(page: Page) -> None:
    """Last in the module: the scheduler's first sweep may still be a minute away when the demo is up."""
    search_deployments(page, "sweep-batches")
    row = page.locator("tr").filter(has=page.get_by_role("link", name="every-minute", exact=True))
    expect(row.get_by_text("Every minute")).to_be_visible()
    row.get_by_role("link", name="every-minute", exact=True).click()
    expect(page.get_by_text("Every minute").first).to_be_visible()
    # A run the schedule started, named by its nominal time, completed.
    swept = page.locator(".flow-run-list-item").filter(has=page.get_by_text(re.compile(r"^sweep · \d\d:\d\d UTC$")))
    completed = swept.filter(has_text="Completed")
    deadline = time.monotonic() + SWEEP_WAIT_SECONDS
    while completed.count() == 0 and time.monotonic() < deadline:
        page.wait_for_timeout(5_000)
        page.reload()
        page.wait_for_load_state("networkidle")
    expect(completed.first).to_be_visible()
    screenshot(page, "sweeper")
