"""Webhook sources the gateway serves: how a source signs, where its secret lives, how its body becomes events.
Read from `sources.yaml` (FLOWHOOK_SOURCES_FILE) or given in settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

SchemeName = Literal["standard", "github", "stripe", "hmac"]


class SignatureConfig(BaseModel):
    """How deliveries from a source are signed."""

    model_config = ConfigDict(extra="forbid")

    scheme: SchemeName = Field(default="standard", description="standard (Standard Webhooks), github, stripe, hmac.")
    tolerance_seconds: int = Field(default=300, ge=1, description="Allowed clock difference for signed timestamps.")
    header: str | None = Field(default=None, description="hmac: the header that carries the signature.")
    algorithm: Literal["sha1", "sha256", "sha512"] = Field(default="sha256", description="hmac: the digest.")
    encoding: Literal["hex", "base64"] = Field(default="hex", description="hmac: how the digest is written.")
    prefix: str = Field(default="", description="hmac: text before the digest in the header, e.g. `sha256=`.")
    timestamp_header: str | None = Field(
        default=None,
        description="hmac: a header with a UNIX timestamp; when set, `<timestamp>.<body>` is signed and checked.",
    )


class SourceConfig(BaseModel):
    """One webhook source, served at `POST /hooks/<name>`."""

    model_config = ConfigDict(extra="forbid")

    signature: SignatureConfig = Field(default_factory=SignatureConfig, description="Signature scheme.")
    secret: str | list[str] | None = Field(
        default=None,
        description="Where the secret is: `env:NAME`, `block:NAME` (a Prefect Secret block) or `file:PATH`, "
        "each holding one secret, whatever characters it has; a list of them accepts each (newest first, "
        "for a rotation); unset: managed by flowhook under <data>/secrets/ (`flowhook secret rotate`).",
    )
    format: Literal["flowhook", "template", "cloudevents"] = Field(
        default="flowhook",
        description="flowhook: {type, data, timestamp?, id?} or a list; template: `template` maps the request; "
        "cloudevents: structured or binary CloudEvents.",
    )
    template: str | None = Field(default=None, description="Jinja template rendering the request to event JSON.")
    delivery_id_header: str | None = Field(
        default=None, description="Header whose value identifies a delivery, overriding the scheme's."
    )
    rate_limit: float | None = Field(default=None, gt=0, description="Sustained deliveries per second allowed.")
    burst: int = Field(default=100, ge=1, description="Deliveries allowed at once above the rate.")

    @field_validator("secret")
    @classmethod
    def _some_reference(cls, value: str | list[str] | None) -> str | list[str] | None:
        references = [value] if isinstance(value, str) else value
        if references is not None and (not references or "" in references):
            raise ValueError("`secret` is a reference or a list of them, none empty")
        return value

    @property
    def secret_references(self) -> list[str]:
        """The secret references, newest first; empty when flowhook manages the secret."""
        return [self.secret] if isinstance(self.secret, str) else list(self.secret or [])


class SourcesFile(BaseModel):
    """The layout of `sources.yaml`."""

    model_config = ConfigDict(extra="forbid")

    sources: dict[str, SourceConfig] = Field(default_factory=dict)


def load_sources(path: Path) -> dict[str, SourceConfig]:
    """The sources declared in a YAML file."""
    document = yaml.safe_load(path.read_text()) or {}
    return SourcesFile.model_validate(document).sources
