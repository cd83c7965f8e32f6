"""SQS source configuration: which queue, how batches are gathered, whose credentials (`FLOWHOOK_SQS__*`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MessageFormat = Literal["flowhook", "s3"]

SQS_BATCH = 10
"""The most messages SQS receives, deletes, sends or changes in one call."""


class SqsConfig(BaseModel):
    """One SQS queue to poll, and how batches are gathered from it."""

    model_config = ConfigDict(extra="forbid")

    queue_url: str = Field(min_length=1, description="The queue's URL; a URL ending in `.fifo` is a FIFO queue.")
    endpoint_url: str | None = Field(default=None, description="SQS endpoint (moto, LocalStack); None: AWS itself.")
    region: str = Field(default="us-east-1", description="AWS region of the queue.")
    batch_size: int = Field(default=10, ge=1, le=10_000, description="Most messages in one delivery to the sink.")
    batching_window_seconds: float = Field(
        default=0,
        ge=0,
        le=300,
        description="How long to keep gathering after the first message; 0: deliver what the first receive "
        "returns (at most 10), so a batch_size above 10 needs a window, as with Lambda.",
    )
    wait_time_seconds: int = Field(default=20, ge=0, le=20, description="Long-poll wait of each ReceiveMessage.")
    visibility_timeout_seconds: int = Field(
        default=30,
        ge=1,
        le=43_200,
        description="Visibility the poller sets on received messages, and extends while it still holds them.",
    )
    format: MessageFormat = Field(
        default="flowhook",
        description="flowhook: the body is one {type, data, timestamp?} event; s3: an S3 event notification.",
    )
    credentials_block: str | None = Field(
        default=None, description="Name of a prefect-aws AwsCredentials block; None: boto3's own credential chain."
    )

    @property
    def fifo(self) -> bool:
        return self.queue_url.endswith(".fifo")
