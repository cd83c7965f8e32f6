"""The CLI's shared parts: the Typer app, the console, and helpers every command group uses."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from flowhook.cli._errors import explain
from flowhook.settings import get_settings

if TYPE_CHECKING:
    from typer._click import Context

    from flowhook.gateway.sources import SourceConfig

console = Console()
errors = Console(stderr=True)
"""Error sentences go to stderr, so stdout stays what the command produces (e.g. its JSON)."""


def fail(message: str) -> typer.Exit:
    """Print an error sentence on stderr, on one line (never a traceback); raise the result to exit 1."""
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(1)


def _usage(exc: UsageError) -> typer.Exit:
    where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
    return fail(f"{exc.format_message()}{where}")


class Commands(TyperGroup):
    """The root group: every command's expected errors and usage errors end as one line on stderr and exit 1."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Context | None = None, **extra: Any
    ) -> Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:  # an option of `flowhook` itself
            raise _usage(exc) from None

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            raise _usage(exc) from None
        except ClickException as exc:  # e.g. a file option that cannot be opened
            raise fail(exc.format_message()) from None
        except (typer.Exit, typer.Abort):  # how commands end themselves: not errors to explain
            raise
        except Exception as exc:
            sentence = explain(exc)
            if sentence is None:
                raise
            raise fail(sentence) from None


app = typer.Typer(cls=Commands, help="flowhook: signed webhooks → Prefect worker flows → DuckDB.", no_args_is_help=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"flowhook {version('flowhook')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print flowhook's version and exit."),
    ] = False,
) -> None:
    """The options of `flowhook` itself (each command has its own)."""


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables, for another program.")]
"""Every read command's `--json`."""


def print_json(value: object) -> None:
    """`value` as indented JSON on stdout, for another program: nothing else is printed there."""
    typer.echo(json_text(value))


def json_text(value: object) -> str:
    """`value` as the indented JSON every command prints (times as ISO-8601)."""
    import json

    return json.dumps(value, indent=2, ensure_ascii=False, default=_jsonable)


def _jsonable(value: object) -> object:
    """What `json` cannot write itself: times as ISO-8601, DECIMAL as a number, bytes as hex, the rest as text."""
    from datetime import date, time
    from decimal import Decimal

    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


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
