"""`flowhook deployments generate`: the committed prefect.yaml and ECS job template are what it makes (the check
CI runs); a type declared in a module of FLOWHOOK_EVENT_MODULES gets its deployment and trigger in prefect.yaml,
the one generated file it changes (its ECS deployment is made from prefect.yaml by `flowhook ecs overlay`), the
hand-written deployments stay line for line; `--check` writes nothing and names the stale files on one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.cli.deploy._triggers import _initialize_deployment_triggers
from typer.testing import CliRunner

from flowhook.cli import app
from flowhook.deployments import BEGIN, END, FILES, ROOT_FILE, GeneratedBlockMissing, splice
from flowhook.ecs import POOL_NAME, TEMPLATE_FILE
from flowhook.events import load_catalog
from flowhook.names import BATCH_READY, EVENT_TYPE_LABEL, worker_deployment
from flowhook.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

INVOICES = '''
from flowhook.events import EventData, TaskSize, event_type


class InvoicePaid(EventData):
    """An invoice was paid."""

    invoice: str


@event_type("invoice_paid", InvoicePaid, size=TaskSize(2048, 4096), concurrency_limit=4)
def book(data: InvoicePaid) -> dict[str, str]:
    return {"invoice": data.invoice}
'''


def _flowhook(
    *args: str, cwd: Path, env: dict[str, str] | None = None, inherit: bool = False
) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own: the catalog is what its settings name, nothing a test registered.
    Without `inherit` no FLOWHOOK_* variable of this process reaches it (the built-in types alone)."""
    clean = {k: v for k, v in os.environ.items() if inherit or not k.startswith("FLOWHOOK_")}
    return subprocess.run(
        [sys.executable, "-m", "flowhook", *args],
        cwd=cwd,
        env={**clean, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the repository's generated files (and the root file they come from)."""
    copy = tmp_path / "repo"
    for path in FILES:
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / path, copy / path)
    return copy


def _outside_the_block(text: str) -> list[str]:
    lines = text.splitlines()
    begin, end = (i for i, line in enumerate(lines) if line.strip() in (BEGIN, END))
    return lines[: begin + 1] + lines[end:]


def test_the_committed_files_are_what_generate_makes() -> None:
    # With this environment's FLOWHOOK_EVENT_MODULES: a project that adds types checks its own files.
    done = _flowhook("deployments", "generate", "--check", cwd=ROOT, inherit=True)
    assert done.returncode == 0, f"run `flowhook deployments generate` and commit the files:\n{done.stderr}"
    assert "up to date" in done.stdout


def test_check_names_the_stale_files_on_one_line_and_writes_nothing(repo: Path) -> None:
    root = repo / ROOT_FILE
    root.write_text(root.read_text().replace("tags: [flowhook, user_request]", "tags: [flowhook]"))
    (repo / TEMPLATE_FILE).unlink()
    before = {path: (repo / path).read_bytes() for path in FILES if (repo / path).exists()}
    done = _flowhook("deployments", "generate", "--check", cwd=repo)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: out of date: {ROOT_FILE}, {TEMPLATE_FILE}; run `flowhook deployments generate`"
    ]
    assert {path: (repo / path).read_bytes() for path in FILES if (repo / path).exists()} == before


def test_a_type_declared_in_a_module_gets_its_deployment_and_trigger(
    repo: Path, declare_types: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = (repo / ROOT_FILE).read_text()
    monkeypatch.setenv("FLOWHOOK_EVENT_MODULES", f'["{declare_types("invoices", INVOICES)}"]')
    monkeypatch.chdir(repo)
    get_settings.cache_clear()
    try:
        written = runner.invoke(app, ["deployments", "generate"])
        check = runner.invoke(app, ["deployments", "generate", "--check"])
        ecs = runner.invoke(app, ["ecs", "overlay"])
    finally:
        get_settings.cache_clear()
    assert written.exit_code == 0, written.output
    assert written.output.strip() == f"written: {ROOT_FILE}"  # the one generated file a new type changes
    assert check.exit_code == 0 and "up to date" in check.output

    text = (repo / ROOT_FILE).read_text()
    assert _outside_the_block(text) == _outside_the_block(original)  # the hand-written deployments as they were
    root = yaml.safe_load(text)
    [invoice] = [d for d in root["deployments"] if d["name"] == "invoice_paid"]
    assert invoice["concurrency_limit"] == 4
    assert invoice["entrypoint"] == "flows/process_batch.py:process_batch"
    assert [d["name"] for d in root["deployments"]] == [
        *load_catalog().names,
        *(d["name"] for d in yaml.safe_load(original)["deployments"] if d["name"] not in load_catalog()),
    ]

    # Prefect's own loader reads the new file, and makes the trigger `prefect deploy` would create.
    model = PrefectYamlModel.model_validate(root)
    spec = next(d for d in model.deployments if d.name == "invoice_paid").model_dump(exclude_unset=True, mode="json")
    [trigger] = _initialize_deployment_triggers(worker_deployment("invoice_paid"), spec["triggers"])
    assert trigger.expect == {BATCH_READY}  # type: ignore[union-attr]
    assert trigger.match.model_dump()[EVENT_TYPE_LABEL] == "invoice_paid"  # type: ignore[union-attr]
    assert trigger.name == "flowhook: a invoice_paid batch is ready"

    assert ecs.exit_code == 0, ecs.output
    overlay = yaml.safe_load(ecs.output)
    [on_ecs] = [d for d in overlay["deployments"] if d["name"] == "invoice_paid"]
    assert on_ecs["work_pool"] == {
        "name": POOL_NAME,
        "work_queue_name": "default",
        "job_variables": {"cpu": 2048, "memory": 4096},
    }
    assert on_ecs["triggers"] == invoice["triggers"] and on_ecs["concurrency_limit"] == 4


def test_without_the_module_the_check_fails_on_the_types_files(
    repo: Path, declare_types: Callable[[str, str], str]
) -> None:
    module = declare_types("invoices", INVOICES)
    env = {"PYTHONPATH": str(repo.parent / "event_modules"), "FLOWHOOK_EVENT_MODULES": f'["{module}"]'}
    made = _flowhook("deployments", "generate", cwd=repo, env=env)
    assert made.returncode == 0, made.stderr
    assert _flowhook("deployments", "generate", "--check", cwd=repo, env=env).returncode == 0
    done = _flowhook("deployments", "generate", "--check", cwd=repo)
    assert done.returncode == 1 and f"out of date: {ROOT_FILE};" in done.stderr
    # `flowhook ecs deploy` and `flowhook ecs overlay` refuse the same prefect.yaml (it names a type they lack).
    ecs = _flowhook("ecs", "overlay", cwd=repo)
    assert ecs.returncode == 1 and f"{ROOT_FILE} is out of date" in ecs.stderr


@pytest.mark.parametrize(
    "markers",
    [[], [BEGIN], [END, BEGIN], [BEGIN, BEGIN, END]],
    ids=["none", "begin only", "reversed", "twice"],
)
def test_a_root_file_without_one_pair_of_markers_is_refused(markers: list[str]) -> None:
    text = "deployments:\n" + "".join(f"  {marker}\n" for marker in markers)
    with pytest.raises(GeneratedBlockMissing, match="needs the line"):
        splice(text, load_catalog())


def test_the_cli_says_where_the_markers_go(repo: Path) -> None:
    root = repo / ROOT_FILE
    root.write_text(root.read_text().replace(BEGIN, "# (markers removed)"))
    done = _flowhook("deployments", "generate", cwd=repo)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "needs the line" in done.stderr and BEGIN in done.stderr
