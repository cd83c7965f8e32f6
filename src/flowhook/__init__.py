"""flowhook: signed webhooks and other sources → Prefect worker flows → DuckDB, with a report.

`flowhook.emit(type, data)` sends an event from any script or flow through the local gateway.
"""

from typing import Any

__all__ = ["emit", "emit_many"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import flowhook.x` stays light for the CLI and flow runs.
    if name in __all__:
        from flowhook.sources import emit as module

        return getattr(module, name)
    raise AttributeError(f"module 'flowhook' has no attribute {name!r}")
