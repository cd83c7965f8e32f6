"""The spool: accepted events on local disk, as batch files, until a worker flow has stored them.

Contract: an event is in the spool (fsync'd) before the gateway acknowledges it, and a batch
leaves `claimed/` for `done/` only after its events are committed to the store.
"""

from flowhook.spool.batches import BatchNotFound, BatchRef, Spool, State, event_type_of, new_batch_id
from flowhook.spool.inbox import Inbox, InboxUnavailable

__all__ = [
    "BatchNotFound",
    "BatchRef",
    "Inbox",
    "InboxUnavailable",
    "Spool",
    "State",
    "event_type_of",
    "new_batch_id",
]
