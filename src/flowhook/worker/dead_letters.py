"""Dead letters back into the pipeline: failed events, re-spooled as batches for a worker run to process.

An event whose handler failed on every attempt stays in the store as a `failed` row (the view
`dead_letters`) until a later copy of it is stored: `respool` writes the chosen ones back into the
spool (a folder or S3) as sealed, READY batches, one per type (chunked at the type's `max_events`), and
`launch_all` starts a worker run for each. The run stores each event over its failed row, ok or
failed again. A batch no run was launched for waits READY for the sweeper, or for an awake run
of its type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from flowhook.events import Event
from flowhook.prefect_api import explain, refused
from flowhook.spool import BatchRef, BatchSpool
from flowhook.store import DeadLetter


def respool(spool: BatchSpool, letters: Sequence[DeadLetter], *, max_events: Callable[[str], int]) -> list[BatchRef]:
    """Write the letters' events into the spool as sealed, READY batches, per type in chunks of `max_events(type)`."""
    by_type: dict[str, list[Event]] = {}
    for letter in letters:
        by_type.setdefault(letter.event.type, []).append(letter.event)
    refs = []
    for event_type, events in sorted(by_type.items()):
        size = max_events(event_type)
        refs += [spool.write_batch(events[start : start + size]) for start in range(0, len(events), size)]
    return refs


@dataclass
class LaunchResult:
    """Batches a worker run was launched for; those left waiting, and why."""

    launched: list[BatchRef] = field(default_factory=list)
    failed: list[tuple[BatchRef, str]] = field(default_factory=list)
    unreachable: str | None = None
    """Set when Prefect could not be reached: every batch not launched waits READY in the spool."""
    refused: str | None = None
    """Set when Prefect refused the credentials (401/403), with how to fix them; the batches wait as above."""


def launch_all(spool: BatchSpool, refs: Sequence[BatchRef], launch: Callable[[BatchRef], str | None]) -> LaunchResult:
    """Launch a worker run for each batch, marking it SENT (Prefect told); one failed launch stops no
    other, but once Prefect is unreachable the rest are not tried: they all wait READY."""
    result = LaunchResult()
    for index, ref in enumerate(refs):
        ref = ref.model_copy(update={"emitted": datetime.now(UTC)})
        try:
            run_id = launch(ref)
        except (httpx.TransportError, OSError) as exc:
            result.unreachable = f"{type(exc).__name__}: {exc}"
            result.failed += [(left, result.unreachable) for left in refs[index:]]
            break
        except Exception as exc:  # e.g. no deployment for the type
            if refused(exc):  # every other launch would be refused alike
                result.refused = explain(exc)
                result.failed += [(left, result.refused) for left in refs[index:]]
                break
            result.failed.append((ref, f"{type(exc).__name__}: {exc}"))
            continue
        if run_id is not None:
            spool.note_launch(ref.batch_id, run_id)  # the sweeper leaves the batch to this run while it waits
        spool.mark_sent(ref.batch_id, touch=True)  # a no-op if its run claimed it already
        result.launched.append(ref)
    return result
