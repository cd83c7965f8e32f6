"""SQS source: polls a queue with the semantics of AWS Lambda's SQS event-source mapping.

A batch is gathered (up to `batch_size` messages or until the batching window ends), each message
is mapped and validated on its own, the valid ones go to the sink in one delivery, and only what
the sink has on disk is deleted. Everything else stays in the queue and comes back after the
visibility timeout, where the queue's RedrivePolicy eventually moves it to a dead-letter queue.
Item ids come from the message (its `id` attribute or MessageId; for S3 notifications the
object and its eTag), so a message delivered twice maps to the same stored event.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowhook.events import Catalog
from flowhook.sources.sink import DeliveryFailed, EventSink
from flowhook.sources.sqs.config import SQS_BATCH, SqsConfig
from flowhook.sources.sqs.messages import InvalidMessage, message_items

logger = logging.getLogger(__name__)

_AWS_ERRORS = (BotoCoreError, ClientError)


@dataclass
class PollResult:
    """What one batch came to; every message is either deleted or listed in `returned`."""

    received: int = 0
    delivered: int = 0  # event items accepted by the sink
    deleted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (message id, reason) of invalid messages
    returned: list[str] = field(default_factory=list)  # message ids left to reappear after the visibility timeout
    delete_failed: list[tuple[str, str]] = field(default_factory=list)  # delivered but not deleted: will repeat
    delivery_error: DeliveryFailed | None = None


@dataclass
class _Held:
    message: dict[str, Any]
    visible_since: float  # clock time the message's visibility timeout was last (re)set

    @property
    def message_id(self) -> str:
        return str(self.message["MessageId"])

    @property
    def receipt(self) -> str:
        return str(self.message["ReceiptHandle"])

    @property
    def group(self) -> str | None:
        group = self.message.get("Attributes", {}).get("MessageGroupId")
        return None if group is None else str(group)


class SqsPoller:
    """Turns batches of SQS messages into sink deliveries, deleting only what was delivered."""

    def __init__(
        self,
        client: Any,
        config: SqsConfig,
        sink: EventSink,
        catalog: Catalog,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._config = config
        self._sink = sink
        self._catalog = catalog
        self._clock = clock
        self._sleep = sleep

    def poll_once(self) -> PollResult:
        """Gather one batch, deliver its valid messages in one call, delete them once delivered."""
        held = self._collect()
        result = PollResult(received=len(held))
        if not held:
            return result
        blocked: set[str] = set()
        ready: list[_Held] = []
        items: list[dict[str, Any]] = []
        for entry in held:
            group = entry.group if self._config.fifo else None
            if group is not None and group in blocked:
                result.returned.append(entry.message_id)  # behind a failed message of its group: order first
                continue
            try:
                items += message_items(entry.message, format=self._config.format, catalog=self._catalog)
            except InvalidMessage as exc:
                count = entry.message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
                logger.warning("SQS message %s (receive %s) is invalid: %s", entry.message_id, count, exc)
                result.failed.append((entry.message_id, str(exc)))
                result.returned.append(entry.message_id)
                if group is not None:
                    blocked.add(group)
                continue
            ready.append(entry)
        self._extend(held, self._clock())
        if items:
            try:
                self._sink.deliver(items)
            except DeliveryFailed as exc:
                result.delivery_error = exc
                result.returned += [entry.message_id for entry in ready]
                return result
            result.delivered = len(items)
        self._delete(ready, result)
        return result

    def run(self, *, stop: threading.Event | None = None, max_polls: int | None = None) -> None:
        """Poll until `stop` is set or `max_polls` polls are done, backing off while the sink or SQS fails.

        `stop` is checked between polls, so it takes effect within one long poll (`wait_time_seconds`).
        """
        pause: Callable[[float], object] = stop.wait if stop is not None else self._sleep
        polls = failures = delivered = deleted = invalid = 0
        while (stop is None or not stop.is_set()) and (max_polls is None or polls < max_polls):
            polls += 1
            try:
                result = self.poll_once()
                problem = None if result.delivery_error is None else f"the sink failed: {result.delivery_error}"
            except _AWS_ERRORS as exc:
                result, problem = PollResult(), f"SQS failed: {exc}"
            delivered += result.delivered
            deleted += result.deleted
            invalid += len(result.failed)
            if result.received:
                logger.info(
                    "SQS %s: %d received, %d events delivered, %d deleted, %d invalid, %d returned",
                    self._config.queue_url,
                    result.received,
                    result.delivered,
                    result.deleted,
                    len(result.failed),
                    len(result.returned),
                )
            last = max_polls is not None and polls >= max_polls
            if problem is not None:
                failures += 1
                delay = backoff_delay(failures)
                logger.warning("%s; polling again in %.0f s", problem, delay)
                if not last:
                    pause(delay)
            else:
                failures = 0
                if not result.received and self._config.wait_time_seconds == 0 and not last:
                    pause(1.0)  # short polling an empty queue: do not spin
        logger.info(
            "SQS poller stopped after %d polls: %d events delivered, %d messages deleted, %d invalid",
            polls,
            delivered,
            deleted,
            invalid,
        )

    def _collect(self) -> list[_Held]:
        """Receive until the batch is full or the window (from the first message) has passed."""
        config = self._config
        half = config.visibility_timeout_seconds / 2
        held: dict[str, _Held] = {}
        window_end = math.inf
        while len(held) < config.batch_size:
            now = self._clock()
            if held and (config.batching_window_seconds == 0 or now >= window_end):
                break
            self._extend(list(held.values()), now)
            wait, deadline = config.wait_time_seconds, math.inf
            if held:  # wake in time for the window's end and for the next extension
                deadline = min(window_end, min(entry.visible_since for entry in held.values()) + half)
                wait = min(wait, max(0, math.floor(deadline - now)))
            messages = self._receive(min(SQS_BATCH, config.batch_size - len(held)), wait)
            received_at = self._clock()
            for message in messages:
                held[str(message["MessageId"])] = _Held(message, received_at)  # a repeat keeps its place
            if not held:
                return []  # an empty long poll: no batch to gather
            if window_end == math.inf:
                window_end = received_at + config.batching_window_seconds
            if not messages and wait == 0:
                self._sleep(max(0.0, min(1.0, deadline - received_at)))  # short polls: no spinning
        return list(held.values())

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        response = self._client.receive_message(
            QueueUrl=self._config.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait,
            VisibilityTimeout=self._config.visibility_timeout_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _extend(self, held: Sequence[_Held], now: float) -> None:
        """Reset the visibility of messages held for half of it, so they do not reappear mid-batch."""
        timeout = self._config.visibility_timeout_seconds
        due = [entry for entry in held if now - entry.visible_since >= timeout / 2]
        for start in range(0, len(due), SQS_BATCH):
            chunk = due[start : start + SQS_BATCH]
            entries = [
                {"Id": str(i), "ReceiptHandle": entry.receipt, "VisibilityTimeout": timeout}
                for i, entry in enumerate(chunk)
            ]
            try:
                response = self._client.change_message_visibility_batch(
                    QueueUrl=self._config.queue_url, Entries=entries
                )
            except _AWS_ERRORS as exc:  # they may reappear and be delivered twice, with the same ids
                logger.warning("could not extend the visibility of %d SQS messages: %s", len(chunk), exc)
                continue
            failed = {int(failure["Id"]): failure for failure in response.get("Failed", [])}
            for i, entry in enumerate(chunk):
                if i in failed:
                    logger.warning("could not extend SQS message %s: %s", entry.message_id, failed[i])
                else:
                    entry.visible_since = now

    def _delete(self, ready: Sequence[_Held], result: PollResult) -> None:
        for start in range(0, len(ready), SQS_BATCH):
            chunk = ready[start : start + SQS_BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": entry.receipt} for i, entry in enumerate(chunk)]
            try:
                response = self._client.delete_message_batch(QueueUrl=self._config.queue_url, Entries=entries)
            except _AWS_ERRORS as exc:
                failures = [(entry, str(exc)) for entry in chunk]
            else:
                result.deleted += len(response.get("Successful", []))
                failures = [
                    (chunk[int(f["Id"])], f"{f.get('Code', 'error')}: {f.get('Message', '')}")
                    for f in response.get("Failed", [])
                ]
            for entry, reason in failures:
                logger.warning("delivered SQS message %s was not deleted (%s); it repeats", entry.message_id, reason)
                result.delete_failed.append((entry.message_id, reason))
                result.returned.append(entry.message_id)


def backoff_delay(failures: int, *, base: float = 1.0, cap: float = 30.0) -> float:
    """Seconds to wait after `failures` failed polls in a row: doubling from `base`, at most `cap`."""
    return float(min(cap, base * 2 ** max(0, failures - 1)))
