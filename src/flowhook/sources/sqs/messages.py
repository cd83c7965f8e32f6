"""SQS messages to event items: flowhook's event JSON, or S3 event notifications (→ data_update)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

import orjson
from pydantic import ValidationError

from flowhook.events import Catalog, UnknownEventType
from flowhook.events.builtin import DATA_UPDATE
from flowhook.gateway.deliveries import DeliveryItem
from flowhook.sources.sqs.config import MessageFormat


class InvalidMessage(ValueError):
    """A message that cannot become events; it stays in the queue (and reaches the DLQ in time)."""


def message_items(message: Mapping[str, Any], *, format: MessageFormat, catalog: Catalog) -> list[dict[str, Any]]:
    """The event items one SQS message carries, each validated as the gateway will validate it."""
    try:
        document = orjson.loads(message.get("Body", ""))
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"the body is not JSON: {exc}") from None
    items = _flowhook_items(message, document) if format == "flowhook" else _s3_items(document)
    for item in items:
        _validate(item, catalog)
    return items


def _flowhook_items(message: Mapping[str, Any], document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        raise InvalidMessage("the body must be one JSON object {type, data, timestamp?}")
    item = {"type": document.get("type"), "data": document.get("data"), "id": _item_id(message)}
    if document.get("timestamp") is not None:
        item["timestamp"] = document["timestamp"]
    return [item]


def _item_id(message: Mapping[str, Any]) -> str:
    """The sender's `id` attribute, else the MessageId (which `redrive` carries over as that attribute)."""
    attribute = (message.get("MessageAttributes") or {}).get("id")
    if attribute is None:
        return str(message["MessageId"])
    value = attribute.get("StringValue")
    if not value:
        raise InvalidMessage("the `id` message attribute must be a non-empty String")
    return str(value)


def _s3_items(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, dict) and document.get("Type") == "Notification" and "Message" in document:
        try:  # S3 → SNS → SQS without raw message delivery: the notification is inside the SNS envelope
            document = orjson.loads(document["Message"])
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise InvalidMessage(f"the SNS envelope's Message is not JSON: {exc}") from None
    if isinstance(document, dict) and document.get("Event") == "s3:TestEvent":
        return []  # S3 sends one when notifications are configured: nothing happened
    records = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(records, list):
        raise InvalidMessage("the body is not an S3 event notification (no Records list)")
    items: list[dict[str, Any]] = []
    for record in records:
        if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
            raise InvalidMessage("an S3 notification record lacks eventSource 'aws:s3'")
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue  # removals, restores, tagging: not new data
        try:
            bucket = str(record["s3"]["bucket"]["name"])
            obj = record["s3"]["object"]
            key = unquote_plus(str(obj["key"]))  # S3 URL-encodes keys, with '+' for space
            etag = str(obj["eTag"]).strip('"')
        except (KeyError, TypeError) as exc:
            raise InvalidMessage(
                f"an S3 ObjectCreated record lacks s3.bucket.name, object.key or eTag ({exc})"
            ) from None
        uri = f"s3://{bucket}/{key}"
        data: dict[str, Any] = {"dataset": bucket, "uri": uri, "rows": 0, "operation": "insert", "checksum": etag}
        if obj.get("size") is not None:
            data["size_bytes"] = obj["size"]
        # Same bytes written again → same eTag → same id: the store keeps one event per content.
        item: dict[str, Any] = {"type": DATA_UPDATE, "data": data, "id": f"{uri}#{etag}"}
        if record.get("eventTime"):
            item["timestamp"] = record["eventTime"]
        items.append(item)
    return items


def _validate(item: Mapping[str, Any], catalog: Catalog) -> None:
    try:
        parsed = DeliveryItem.model_validate(item)
    except ValidationError as exc:
        raise InvalidMessage(_reasons(exc, prefix="")) from None
    try:
        model = catalog.get(parsed.type).model
    except UnknownEventType as exc:
        raise InvalidMessage(str(exc)) from None
    try:
        model.model_validate(parsed.data)
    except ValidationError as exc:
        raise InvalidMessage(_reasons(exc, prefix="data.")) from None


def _reasons(exc: ValidationError, *, prefix: str) -> str:
    return "; ".join(f"{prefix}{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors())
