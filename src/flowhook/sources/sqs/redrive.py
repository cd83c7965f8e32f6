"""Move messages from a dead-letter queue back to their source queue (`flowhook dlq redrive`)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from flowhook.sources.sqs.config import SQS_BATCH

logger = logging.getLogger(__name__)


def redrive(client: Any, dlq_url: str, queue_url: str, *, limit: int | None = None) -> int:
    """Move messages from a dead-letter queue back to its source queue; returns how many moved.

    SQS's StartMessageMoveTask would do this server-side, but moto does not implement it, so the
    messages are received, re-sent (body, attributes, FIFO group) and then deleted from the DLQ.
    A message without an `id` attribute gets its old MessageId as one, so it keeps its item id.
    """
    fifo = queue_url.endswith(".fifo")
    moved = 0
    seen: set[str] = set()  # a message whose send failed comes back; try it once per call
    while limit is None or moved < limit:
        response = client.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=SQS_BATCH if limit is None else min(SQS_BATCH, limit - moved),
            WaitTimeSeconds=1,  # a long poll asks every SQS server, so an empty answer means empty
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
        seen.update(m["MessageId"] for m in messages)
        if not messages:
            break
        entries = [_resend_entry(str(i), message, fifo=fifo) for i, message in enumerate(messages)]
        sent = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        for failure in sent.get("Failed", []):  # stays in the DLQ, visible again after its timeout
            logger.warning("could not redrive %s: %s", messages[int(failure["Id"])]["MessageId"], failure)
        done = [{"Id": s["Id"], "ReceiptHandle": messages[int(s["Id"])]["ReceiptHandle"]} for s in sent["Successful"]]
        if not done:
            continue
        deleted = client.delete_message_batch(QueueUrl=dlq_url, Entries=done)
        for failure in deleted.get("Failed", []):  # sent but still in the DLQ: a later redrive repeats it
            logger.warning("redriven message %s stays in the DLQ: %s", failure["Id"], failure)
        moved += len(done)
    return moved


def _resend_entry(entry_id: str, message: Mapping[str, Any], *, fifo: bool) -> dict[str, Any]:
    attributes = {
        name: {key: value for key, value in attr.items() if key in ("DataType", "StringValue", "BinaryValue")}
        for name, attr in (message.get("MessageAttributes") or {}).items()
    }
    attributes.setdefault("id", {"DataType": "String", "StringValue": str(message["MessageId"])})
    entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message["Body"], "MessageAttributes": attributes}
    if fifo:
        entry["MessageGroupId"] = message.get("Attributes", {}).get("MessageGroupId", "redrive")
        entry["MessageDeduplicationId"] = uuid.uuid4().hex  # a fresh one: SQS would drop a recent repeat
    return entry
