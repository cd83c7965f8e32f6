"""A local SQS queue with its dead-letter queue, on moto's server, for the stack's SQS source."""

from __future__ import annotations

import json
from typing import Any


def local_sqs_client(endpoint: str, credentials: dict[str, str]) -> Any:
    """A boto3 SQS client for a local endpoint, with the `AWS_*` values of `credentials`."""
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=credentials["AWS_DEFAULT_REGION"],
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )


def create_local_queues(
    endpoint: str, credentials: dict[str, str], *, name: str = "flowhook-events"
) -> tuple[str, str]:
    """Create the queue and its dead-letter queue (3 receives, then the DLQ); returns their URLs."""

    sqs = local_sqs_client(endpoint, credentials)
    dlq_url: str = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    queue_url: str = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    return queue_url, dlq_url
