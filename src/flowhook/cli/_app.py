"""The CLI's shared parts: the Typer app, the console, and helpers every command group uses."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flowhook.settings import get_settings

if TYPE_CHECKING:
    from flowhook.sources.webhook import SourceConfig

app = typer.Typer(help="flowhook: signed webhooks → Prefect worker flows → DuckDB.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
"""Error sentences go to stderr, so stdout stays what the command produces (e.g. its JSON)."""


def fail(message: str) -> typer.Exit:
    """Print an error sentence on stderr, on one line (never a traceback); raise the result to exit 1."""
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(1)


def parse_time(option: str, value: str | None) -> datetime | None:
    """An ISO time from a `--since`/`--until` option, in UTC; one without an offset is UTC already.

    Every command reads times the same way (`2024-05-01`, `2024-05-01 10:00`, `…T10:00:00Z`, `…+02:00`).
    """
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{option} {value!r} is not an ISO time like 2024-05-01T10:00:00 (UTC without an offset)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def interrupt_on_sigterm() -> None:
    """Ctrl-C and SIGTERM both stop the stack cleanly (SIGINT may arrive ignored from a parent)."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def repo_root() -> Path:
    root = Path.cwd()
    if not (root / "prefect.yaml").exists():
        raise fail("run this from the flowhook repository root (the folder with prefect.yaml)")
    return root


def source_config(source: str) -> SourceConfig:
    sources = get_settings().source_configs()
    if source not in sources:
        raise fail(f"no source is named {source!r}; configured: {', '.join(sorted(sources))}")
    return sources[source]


def source_secret(source: str) -> tuple[SourceConfig, str]:
    """A source's configuration and the secret senders sign with now."""
    from flowhook.gateway.secrets import SecretUnavailable, secret_store

    config = source_config(source)
    try:
        return config, secret_store(get_settings()).secrets(source, config)[0]
    except SecretUnavailable as exc:
        raise fail(str(exc)) from None


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
