"""What a batch is and how its file reads: its states, its reference, its id, and the JSON-lines encoding,
shared by both spools (`folder.Spool`, `s3.S3Spool`)."""

from __future__ import annotations

import io
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import StrEnum

import orjson
from pydantic import BaseModel, Field, TypeAdapter

from flowhook.events import Event

logger = logging.getLogger(__name__)


class State(StrEnum):
    OPEN = "open"
    READY = "ready"
    SENT = "sent"
    CLAIMED = "claimed"
    DONE = "done"


class BatchRef(BaseModel):
    """What a Prefect event carries to a worker flow: which batch, of what type, how big."""

    batch_id: str = Field(description="Unique id; also the batch file's name.")
    event_type: str = Field(description="The type of every event in the batch.")
    count: int = Field(ge=0, description="Events in the batch.")
    sealed: datetime = Field(description="When the gateway sealed the batch (UTC).")
    emitted: datetime | None = Field(
        default=None, description="When it was handed on: Prefect told, or an awake run found it (UTC)."
    )
    spool: str | None = Field(
        default=None,
        description="Where the batch waits, when not in a local folder: the S3 spool's URL (the claim check). "
        "A worker run configured for another spool refuses it instead of looking in the wrong place.",
    )


class BatchNotFound(LookupError):
    """The batch is in no state folder: it never existed here or was pruned."""


def new_batch_id(event_type: str) -> str:
    """A unique, time-ordered batch id that names its event type: `user_request-1764224460123-9f2c01ab37e4`;
    the random part keeps ids of several gateway processes in one millisecond apart."""
    return f"{event_type}-{time.time_ns() // 1_000_000:013d}-{secrets.token_hex(6)}"


def event_type_of(batch_id: str) -> str:
    """The event type a batch id names."""
    return batch_id.rsplit("-", 2)[0]


def encode_event(event: Event) -> bytes:
    """One spool line: the event as compact JSON and a newline."""
    return event.model_dump_json().encode() + b"\n"


_EVENT_LIST = TypeAdapter(list[Event])


def decode_events(lines: Iterable[bytes], name: str) -> list[Event]:
    """The events in a batch's lines. A torn or garbled line is a write never acknowledged: skip it.

    Each line is parsed alone, as ever, then all are validated by `Event` in one call: a fifth cheaper than
    line by line. Should any line fail, each is decoded alone again, so only the bad ones are skipped.
    """
    lines = list(lines)
    try:
        if all(line.endswith(b"\n") for line in lines):
            return _EVENT_LIST.validate_python([orjson.loads(line) for line in lines])
    except ValueError:  # orjson's and pydantic's errors are ValueErrors
        pass  # a garbled line: find it, and skip only it
    return _decode_lines(lines, name)


def _decode_lines(lines: list[bytes], name: str) -> list[Event]:
    events = []
    for number, line in enumerate(lines, 1):
        try:
            if not line.endswith(b"\n"):
                raise ValueError("no newline")
            events.append(Event.model_validate(orjson.loads(line)))
        except ValueError as exc:  # orjson's and pydantic's errors are ValueErrors
            logger.warning("%s line %d skipped, never acknowledged: %s", name, number, exc)
    return events


def decode_batch(data: bytes, name: str) -> list[Event]:
    """The events in a whole batch file's bytes (split at newlines only, as reading the file does)."""
    return decode_events(io.BytesIO(data), name)


def take_batches(
    ref: Callable[[State, str], BatchRef], unclaimed: Iterable[tuple[State, str]], *, max_events: int
) -> list[BatchRef]:
    """The first of `unclaimed` (oldest first) up to about `max_events` events (at least one batch), stamped as
    handed on now (as a trigger would have emitted them); one claimed meanwhile is skipped."""
    refs: list[BatchRef] = []
    total = 0
    now = datetime.now(UTC)
    for state, batch_id in unclaimed:
        try:
            found = ref(state, batch_id)
        except FileNotFoundError:
            continue  # claimed meanwhile (or, on S3, a stray marker: the claim that meets it clears it)
        if refs and total + found.count > max_events:
            break
        refs.append(found.model_copy(update={"emitted": now}))
        total += found.count
    return refs


def flight_rows(data: bytes) -> list[tuple[str, str, datetime, datetime]]:
    """(id, type, occurred, received) of each whole line of a batch file; garbled lines are skipped."""
    rows = []
    for line in data.split(b"\n")[:-1]:  # the last piece is empty or a torn, unacknowledged write
        try:
            item = orjson.loads(line)
            rows.append(
                (
                    item["id"],
                    item["type"],
                    datetime.fromisoformat(item["occurred"]),
                    datetime.fromisoformat(item["received"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue  # garbled: `read` skips it too
    return rows


def line_ids(data: bytes) -> list[str]:
    """The event id of each whole line of a batch file; a torn or garbled line (never acknowledged) is skipped."""
    ids = []
    for line in data.split(b"\n")[:-1]:
        try:
            event_id = orjson.loads(line)["id"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(event_id, str):
            ids.append(event_id)
    return ids
