"""`flowhook deployments generate`: write each event type's deployment and trigger into prefect.yaml."""

from __future__ import annotations

from typing import Annotated

import typer

from flowhook.cli._app import app, console, fail, repo_root
from flowhook.settings import get_settings

deployments_app = typer.Typer(
    help="The deployments derived from the event types (one `process-batch/<type>` and its trigger each).",
    no_args_is_help=True,
)
app.add_typer(deployments_app, name="deployments")

CheckOpt = Annotated[
    bool, typer.Option("--check", help="Write nothing; exit 1 naming the files that are out of date (for CI).")
]


@deployments_app.command()
def generate(check: CheckOpt = False) -> None:
    """Write prefect.yaml's generated block (a deployment and trigger per event type) and the ECS job template.

    The types are the catalog's: the built-ins and the modules in FLOWHOOK_EVENT_MODULES.
    """
    generate_files(check=check)


def generate_files(*, check: bool) -> None:
    """What `flowhook deployments generate` and its alias `flowhook ecs generate` do."""
    from flowhook.deployments import FILES, GeneratedBlockMissing, stale_files, write_generated
    from flowhook.events import load_catalog

    root = repo_root()
    catalog = load_catalog(get_settings().event_modules)
    try:
        stale = stale_files(root, catalog) if check else write_generated(root, catalog)
    except GeneratedBlockMissing as exc:
        raise fail(str(exc)) from None
    if check and stale:
        raise fail(f"out of date: {', '.join(map(str, stale))}; run `flowhook deployments generate`")
    if stale:
        console.print(f"written: {', '.join(map(str, stale))}", highlight=False, soft_wrap=True)
    else:
        console.print(f"up to date: {', '.join(map(str, FILES))}", highlight=False, soft_wrap=True)
