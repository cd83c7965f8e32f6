"""The spool's settings: when a batch is sealed (`FLOWHOOK_BATCH__*`), how the S3 spool is reached
(`FLOWHOOK_S3__*`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BatchPolicy(BaseModel):
    """When an open batch is sealed and handed to Prefect.

    Adaptive to load: a batch is sealed at `max_events`, or `max_seconds` after its first event,
    except that while an earlier batch of the type still waits for a flow run to claim it, the
    open batch keeps growing (up to `hold_seconds`). A batch that will wake a run (none is awake
    for its type, none is being woken) is sealed as soon as its first events are on disk: a run's
    start takes longer than any batching window, and later events gather in the next batch meanwhile.
    Quiet types get small, quick batches; under load each flow run carries more events.
    """

    max_events: int = Field(default=5000, ge=1, description="Seal a batch once it holds this many events.")
    max_seconds: float = Field(default=0.25, gt=0, description="Seal a batch this long after its first event.")
    hold_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Longest a batch keeps growing while an earlier one of its type is unclaimed (0: never).",
    )


class S3Connection(BaseModel):
    """How flowhook reaches S3 for the spool; credentials come from boto3's chain (AWS_* variables, the ECS task
    role, ~/.aws), so none are set here."""

    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (moto, MinIO, LocalStack); None: AWS itself."
    )
    region: str | None = Field(default=None, description="AWS region of the bucket; None: boto3's own (AWS_REGION).")
