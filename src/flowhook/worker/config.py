"""The worker's settings: how long a run stays awake (`FLOWHOOK_DRAIN__*`), how failing events are retried
(`FLOWHOOK_RETRY__*`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DrainPolicy(BaseModel):
    """How long a worker flow run stays awake, after its own batch, taking new batches of its type.

    A flow run costs seconds of CPU to start; an awake run takes a new batch within 0.1 s and
    processes every batch waiting at once (up to `max_events`), so under load a few runs carry
    everything. While a run is awake the gateway does not wake another (it holds a lease).
    """

    idle_seconds: float = Field(
        default=10.0, ge=0, description="End once no new batch came for this long (0: never wait)."
    )
    max_seconds: float = Field(
        default=120.0, ge=0, description="Take no new batch after this long; a fresh run takes over what is left."
    )
    handover_seconds: float = Field(
        default=5.0,
        ge=0,
        description="This long before `max_seconds`, a run still taking batches launches its successor for the "
        "type's oldest waiting batch and leaves that batch to it: the type is never without an awake run, so no "
        "event waits for a cold start (0: no successor; the next batch wakes a fresh run after this one ends).",
    )
    max_events: int = Field(default=100_000, ge=1, description="Most events processed and stored in one step.")
    lease_seconds: float = Field(
        default=5.0, gt=1, description="A lease not touched for this long is a dead run's: the gateway wakes another."
    )
    poll_seconds: float = Field(
        default=0.1,
        gt=0,
        description="How often an awake run looks for new batches of its type (on the S3 spool: one LIST each).",
    )
    step_seconds: float = Field(
        default=1.0,
        ge=0,
        description="An awake run starts a step (one task run over every batch waiting) at most this often; what "
        "arrives meanwhile joins the next. Each step costs Prefect's database the same writes whatever its size, "
        "and on SQLite, the embedded default, frequent writes make it refuse others (503), automations' among them.",
    )
    wake_lost_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A batch unclaimed this long after its wake-up, with no run awake for its type, is taken as a "
        "lost wake-up (the action failed, or its run crashed before it started): the type's next batch wakes "
        "another run instead of waiting behind it.",
    )


class RetryPolicy(BaseModel):
    """How often a failing event's handler is called before the event is dead-lettered.

    The first call is the batch's own; only the events that failed are called again, after
    `backoff_seconds`, then `backoff_factor` times longer each round, at most `max_backoff_seconds`.
    The worker's step waits for them (0.6 s in all with the defaults), so keep the waits short.
    """

    attempts: int = Field(default=3, ge=1, description="Handler calls per event in all (1: never retry).")
    backoff_seconds: float = Field(default=0.2, ge=0, description="Wait before the first retry.")
    backoff_factor: float = Field(default=2.0, ge=1, description="Each further wait is this many times longer.")
    max_backoff_seconds: float = Field(default=5.0, ge=0, description="Longest wait between two calls.")

    def backoff(self, calls: int) -> float:
        """Seconds to wait after an event's `calls`-th failed call before the next one."""
        return min(self.backoff_seconds * self.backoff_factor ** (calls - 1), self.max_backoff_seconds)
