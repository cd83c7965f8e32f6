"""flowhook's one settings class: every knob, read from `FLOWHOOK_*` environment variables.

Each subsystem's policy is a model next to the code that uses it (`spool.config`, `worker.config`,
`sampling.config`, `sources.sqs.config`, `gateway.config`, `gateway.sources`); this module composes them,
one field each.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flowhook.gateway.config import IngressLimits
from flowhook.gateway.sources import SourceConfig, load_sources
from flowhook.names import SCHEDULE_SOURCE
from flowhook.sampling.config import SamplingPolicy
from flowhook.sources.sqs.config import SqsConfig
from flowhook.spool.config import BatchPolicy, S3Connection
from flowhook.worker.config import DrainPolicy, RetryPolicy

if TYPE_CHECKING:
    from flowhook.store.config import StoreConfig

LOCAL_SOURCES = ("emit", "sqs", "files", SCHEDULE_SOURCE)
"""Sources flowhook's own producers deliver through (Standard Webhooks, managed secrets)."""


class Settings(BaseSettings):
    """Configuration of the gateway, the worker flows, the store and the local stack."""

    model_config = SettingsConfigDict(env_prefix="FLOWHOOK_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Root of the spool, the DuckDB file and logs.")
    duckdb_path: Path | None = Field(default=None, description="DuckDB file; defaults to <data_dir>/flowhook.duckdb.")
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Secret of every source that names none in its configuration (instead of a managed one).",
    )
    sources_file: Path = Field(default=Path("sources.yaml"), description="YAML file declaring the webhook sources.")
    sources: dict[str, SourceConfig] | None = Field(
        default=None, description="Webhook sources given directly; when unset they are read from `sources_file`."
    )
    secret_rotation_grace_hours: float = Field(
        default=24.0, ge=0, description="How long a rotated-out managed secret is still accepted."
    )
    inbox_max_bytes: int = Field(
        default=2 * 1024**3,
        description="Disk budget of the spool (events not yet stored); past it the gateway answers 503.",
    )
    gateway_host: str = Field(default="127.0.0.1", description="Address the gateway binds.")
    gateway_port: int = Field(default=8000, description="Port the gateway listens on.")
    gateway_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Gateway processes serving the port and sharing the spool (`flowhook gateway --workers`); "
        "1 serves in one process, as before there were several.",
    )
    max_body_bytes: int = Field(default=5_000_000, description="Largest delivery body the gateway accepts.")
    ingress: IngressLimits = Field(
        default_factory=IngressLimits,
        description="The gateway's timeouts, connection cap and budget for unverified deliveries "
        "(FLOWHOOK_INGRESS__HEADER_TIMEOUT_SECONDS, …).",
    )
    prefect_api_url: str = Field(
        default="http://127.0.0.1:4200/api",
        validation_alias=AliasChoices("FLOWHOOK_PREFECT_API_URL", "PREFECT_API_URL"),
        description="Prefect API the gateway forwards batch events to.",
    )
    batch: BatchPolicy = Field(default_factory=BatchPolicy, description="Default batching policy.")
    drain: DrainPolicy = Field(default_factory=DrainPolicy, description="How long a worker run stays awake.")
    sampling: SamplingPolicy = Field(
        default_factory=SamplingPolicy, description="The gateway's samples of its queue, for the report's checks."
    )
    batch_overrides: dict[str, BatchPolicy] = Field(
        default_factory=dict, description="Batching policy per event type, overriding `batch`."
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Default retry policy of failing events.")
    retry_overrides: dict[str, RetryPolicy] = Field(
        default_factory=dict, description="Retry policy per event type, overriding `retry`."
    )
    event_modules: list[str] = Field(
        default_factory=list, description="Modules to import that register user-defined event types."
    )
    sweep_after_seconds: float = Field(
        default=30.0, description="A batch sealed this long ago and never claimed is launched by the sweeper."
    )
    claim_timeout_seconds: float = Field(
        default=600.0, description="A claimed batch not done after this long is released and launched again."
    )
    dead_run_after_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A claimed batch whose run has not touched its lease for this long (it died or failed) is "
        "released and launched again by the next sweep, before the claim timeout.",
    )
    done_retention_hours: float = Field(
        default=24.0,
        gt=0,
        description="How long the sweeper keeps done batches; the audit checks the events of those still kept.",
    )
    audit_interval_minutes: float = Field(
        default=60.0,
        ge=0,
        description="How often the sweeper audits the store against the done batches (0: at every sweep).",
    )
    spool_url: str | None = Field(
        default=None,
        description="Where sealed batches wait for worker runs: unset for the folder <data_dir>/spool (one machine "
        "or a shared volume), or `s3://bucket/prefix` so that worker runs on other machines can take them; the "
        "gateway's inbox stays in <data_dir>/spool either way.",
    )
    s3: S3Connection = Field(
        default_factory=S3Connection, description="How the S3 spool is reached (FLOWHOOK_S3__ENDPOINT_URL, ...)."
    )
    sqs: SqsConfig | None = Field(
        default=None,
        description="The SQS queue to poll (FLOWHOOK_SQS__QUEUE_URL, …); the local stack makes one on moto when unset.",
    )
    sqs_dlq_url: str | None = Field(default=None, description="Dead-letter queue of `sqs`, for `flowhook dlq redrive`.")
    watch_dir: Path | None = Field(
        default=None, description="Folder whose new or changed files become data_update events; <data>/incoming."
    )
    watch_interval_seconds: float = Field(default=2.0, gt=0, description="How often the watched folder is scanned.")
    lock_timeout_seconds: float = Field(
        default=120.0, description="How long to wait for the store's write lock (the DuckDB file's, or DuckLake's)."
    )
    store: Literal["duckdb", "ducklake"] = Field(
        default="duckdb",
        description="Where events and reports are stored: 'duckdb', the file `duckdb_path` (one machine); "
        "'ducklake', a DuckLake shared by writers on many machines (`ducklake_*`).",
    )
    ducklake_catalog: SecretStr | None = Field(
        default=None,
        description="The DuckLake catalog: a PostgreSQL connection string (libpq key=value or postgresql:// URL). "
        "Keep the password in PGPASSWORD or ~/.pgpass: DuckDB's errors echo this string.",
    )
    ducklake_data_path: str | None = Field(
        default=None,
        description="Where DuckLake writes Parquet files: a folder every writer sees, or s3://bucket/prefix/; "
        "defaults to <data_dir>/lake. Fixed when the catalog is created.",
    )
    ducklake_s3_endpoint: str | None = Field(
        default=None, description="host[:port] of an S3-compatible service for DuckLake's files; unset for AWS."
    )
    ducklake_s3_region: str | None = Field(default=None, description="The region of DuckLake's bucket.")
    ducklake_s3_key_id: str | None = Field(default=None, description="S3 access key id for DuckLake's files.")
    ducklake_s3_secret: SecretStr | None = Field(default=None, description="S3 secret access key for DuckLake's files.")
    ducklake_s3_url_style: Literal["vhost", "path"] | None = Field(
        default=None, description="'path' for MinIO or moto; unset: DuckDB's default."
    )
    ducklake_s3_use_ssl: bool = Field(default=True, description="HTTPS to DuckLake's S3 endpoint.")
    worker_type: Literal["flowhook", "process"] = Field(
        default="flowhook",
        description="Worker type of the local stack's pool: `flowhook` (the default) forks each flow run from a "
        "warm process that has imported Prefect and the project (milliseconds and a few MB to start); `process` "
        "is Prefect's own, a new Python per run (seconds of CPU importing Prefect).",
    )
    report_target_p99_seconds: float = Field(
        default=30.0, gt=0, description="The p99 latency target the report's capacity forecast sizes workers for."
    )
    report_bucket_seconds: float = Field(default=60.0, gt=0, description="The report's time buckets, in seconds.")
    heartbeat_max_age_seconds: float = Field(
        default=660.0,
        gt=0,
        description="The trigger path is unhealthy when no scheduled heartbeat was stored for this long "
        "(two 5-minute ticks and a minute); keep the alert trigger's `within` in prefect.yaml equal.",
    )

    @field_validator("spool_url")
    @classmethod
    def _s3_url(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("s3://") or not value[5:].split("/", 1)[0]):
            raise ValueError(
                f"the spool URL must be s3://bucket[/prefix], or unset for the local folder; not {value!r}"
            )
        return value

    @property
    def database(self) -> Path:
        """The DuckDB file the pipeline writes."""
        return self.duckdb_path or self.data_dir / "flowhook.duckdb"

    @property
    def store_config(self) -> StoreConfig:
        """The store's own configuration, all the store reads of these settings."""
        from flowhook.store.config import StoreConfig
        from flowhook.store.ducklake_lakes import S3Options

        catalog, secret = self.ducklake_catalog, self.ducklake_s3_secret
        return StoreConfig(
            database=self.database,
            kind=self.store,
            lock_timeout_seconds=self.lock_timeout_seconds,
            ducklake_catalog=catalog.get_secret_value() if catalog else None,
            ducklake_data_path=self.ducklake_data_path or self.data_dir / "lake",
            s3=S3Options(
                endpoint=self.ducklake_s3_endpoint,
                region=self.ducklake_s3_region,
                key_id=self.ducklake_s3_key_id,
                secret=secret.get_secret_value() if secret else None,
                url_style=self.ducklake_s3_url_style,
                use_ssl=self.ducklake_s3_use_ssl,
            ),
            event_modules=tuple(self.event_modules),
        )

    @property
    def spool_dir(self) -> Path:
        """Where accepted events wait, as batch files, until a worker flow stores them."""
        return self.data_dir / "spool"

    @property
    def samples_dir(self) -> Path:
        """The gateway's per-second samples of its queue and counts of its deliveries (`flowhook.sampling`)."""
        return self.spool_dir / "samples"

    @property
    def incoming_dir(self) -> Path:
        """The folder the files source watches."""
        return self.watch_dir or self.data_dir / "incoming"

    @property
    def reports_dir(self) -> Path:
        """Where the reporting flow saves its chart images."""
        return self.data_dir / "reports"

    @property
    def quarantine_dir(self) -> Path:
        """Authentic deliveries that could not become events, kept for `flowhook quarantine`."""
        return self.data_dir / "quarantine"

    @property
    def secrets_dir(self) -> Path:
        """Secrets flowhook manages (and rotates) for sources that name none."""
        return self.data_dir / "secrets"

    def source_configs(self) -> dict[str, SourceConfig]:
        """The webhook sources: from settings, else `sources_file`, else one Standard Webhooks source `demo`;
        plus flowhook's own local producers (`emit`, `sqs`, `files`, `schedule`) unless configured."""
        if self.sources is not None:
            sources = dict(self.sources)
        elif self.sources_file.exists():
            sources = load_sources(self.sources_file)
        else:
            sources = {"demo": SourceConfig()}
        for name in LOCAL_SOURCES:
            sources.setdefault(name, SourceConfig())
        return sources

    def batch_policy(self, event_type: str) -> BatchPolicy:
        """The batching policy for one event type."""
        return self.batch_overrides.get(event_type, self.batch)

    def retry_policy(self, event_type: str) -> RetryPolicy:
        """The retry policy for one event type."""
        return self.retry_overrides.get(event_type, self.retry)


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment on first use."""
    return Settings()
