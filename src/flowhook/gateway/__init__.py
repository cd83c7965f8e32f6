"""The webhook gateway: `create_app()` builds the FastAPI app; deliveries are verified, validated,
made durable in the spool, acknowledged with 202, and announced to Prefect batch by batch.

Names are imported on first use, so `flowhook.gateway.schemes` & co. import without the app.
"""

from typing import Any

_EXPORTS = {
    "create_app": "flowhook.gateway.app",
    "BATCH_READY": "flowhook.gateway.forwarder",
    "MemorySink": "flowhook.gateway.forwarder",
    "PrefectEventSink": "flowhook.gateway.forwarder",
    "batch_event": "flowhook.gateway.forwarder",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'flowhook.gateway' has no attribute {name!r}")
