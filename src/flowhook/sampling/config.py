"""The sampling settings (`FLOWHOOK_SAMPLING__*`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SamplingPolicy(BaseModel):
    """How often the gateway samples its queue, and how long the store keeps the samples."""

    period_seconds: float = Field(
        default=0.1,
        ge=0,
        le=1.0,
        description="Sample the spool's levels this often; 0 turns sampling off (the report then cannot check "
        "Little's law independently).",
    )
    keep_days: float = Field(default=7.0, gt=0, description="Keep imported samples and counts this many days.")
