"""The webhook gateway: `create_app()` builds the FastAPI app; deliveries are verified, validated,
made durable in the spool, acknowledged with 202, and announced to Prefect batch by batch.
"""

from flowhook.gateway.app import create_app
from flowhook.gateway.forwarder import BATCH_READY, MemorySink, PrefectEventSink, batch_event

__all__ = ["BATCH_READY", "MemorySink", "PrefectEventSink", "batch_event", "create_app"]
