"""The spool: accepted events as batches, from the gateway until a worker flow has stored them.

Contract: an event is in the gateway's local spool folder (fsync'd) before the gateway acknowledges it;
a sealed batch is in the shared spool (`open_spool`: that same folder, or S3) before Prefect hears of it;
exactly one run claims it; and it is done only after its events are committed to the store.
"""

from flowhook.spool.batches import BatchNotFound, BatchRef, State, event_type_of, new_batch_id
from flowhook.spool.factory import open_spool
from flowhook.spool.folder import Spool
from flowhook.spool.inbox import Inbox, InboxUnavailable
from flowhook.spool.protocol import BatchSpool, SpoolUnavailable
from flowhook.spool.s3 import S3Spool

__all__ = [
    "BatchNotFound",
    "BatchRef",
    "BatchSpool",
    "Inbox",
    "InboxUnavailable",
    "S3Spool",
    "Spool",
    "SpoolUnavailable",
    "State",
    "event_type_of",
    "new_batch_id",
    "open_spool",
]
