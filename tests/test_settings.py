"""The `FLOWHOOK_*` names are the public surface of the settings: moving a policy model to its subsystem keeps them."""

from __future__ import annotations

import types
import typing

import pytest
from pydantic import BaseModel

from flowhook.settings import Settings

ENV_NAMES = [
    "FLOWHOOK_AUDIT_INTERVAL_MINUTES",
    "FLOWHOOK_BATCH",
    "FLOWHOOK_BATCH_OVERRIDES",
    "FLOWHOOK_BATCH__HOLD_SECONDS",
    "FLOWHOOK_BATCH__MAX_EVENTS",
    "FLOWHOOK_BATCH__MAX_SECONDS",
    "FLOWHOOK_CLAIM_TIMEOUT_SECONDS",
    "FLOWHOOK_DATA_DIR",
    "FLOWHOOK_DEAD_RUN_AFTER_SECONDS",
    "FLOWHOOK_DONE_RETENTION_HOURS",
    "FLOWHOOK_DRAIN",
    "FLOWHOOK_DRAIN__HANDOVER_SECONDS",
    "FLOWHOOK_DRAIN__IDLE_SECONDS",
    "FLOWHOOK_DRAIN__LEASE_SECONDS",
    "FLOWHOOK_DRAIN__MAX_EVENTS",
    "FLOWHOOK_DRAIN__MAX_SECONDS",
    "FLOWHOOK_DRAIN__POLL_SECONDS",
    "FLOWHOOK_DRAIN__STEP_SECONDS",
    "FLOWHOOK_DRAIN__WAKE_LOST_SECONDS",
    "FLOWHOOK_DUCKDB_PATH",
    "FLOWHOOK_DUCKLAKE_CATALOG",
    "FLOWHOOK_DUCKLAKE_DATA_PATH",
    "FLOWHOOK_DUCKLAKE_S3_ENDPOINT",
    "FLOWHOOK_DUCKLAKE_S3_KEY_ID",
    "FLOWHOOK_DUCKLAKE_S3_REGION",
    "FLOWHOOK_DUCKLAKE_S3_SECRET",
    "FLOWHOOK_DUCKLAKE_S3_URL_STYLE",
    "FLOWHOOK_DUCKLAKE_S3_USE_SSL",
    "FLOWHOOK_EVENT_MODULES",
    "FLOWHOOK_GATEWAY_HOST",
    "FLOWHOOK_GATEWAY_PORT",
    "FLOWHOOK_GATEWAY_WORKERS",
    "FLOWHOOK_HEARTBEAT_MAX_AGE_SECONDS",
    "FLOWHOOK_INBOX_MAX_BYTES",
    "FLOWHOOK_INGRESS",
    "FLOWHOOK_INGRESS__BODY_TIMEOUT_SECONDS",
    "FLOWHOOK_INGRESS__HEADER_TIMEOUT_SECONDS",
    "FLOWHOOK_INGRESS__MAX_CONNECTIONS",
    "FLOWHOOK_INGRESS__MAX_IN_FLIGHT",
    "FLOWHOOK_INGRESS__MAX_LOOP_LAG_SECONDS",
    "FLOWHOOK_INGRESS__UNVERIFIED_ADDRESSES",
    "FLOWHOOK_INGRESS__UNVERIFIED_BURST",
    "FLOWHOOK_INGRESS__UNVERIFIED_RATE",
    "FLOWHOOK_LOCK_TIMEOUT_SECONDS",
    "FLOWHOOK_MAX_BODY_BYTES",
    "FLOWHOOK_PREFECT_API_URL",
    "FLOWHOOK_REPORT_BUCKET_SECONDS",
    "FLOWHOOK_REPORT_TARGET_P99_SECONDS",
    "FLOWHOOK_RETRY",
    "FLOWHOOK_RETRY_OVERRIDES",
    "FLOWHOOK_RETRY__ATTEMPTS",
    "FLOWHOOK_RETRY__BACKOFF_FACTOR",
    "FLOWHOOK_RETRY__BACKOFF_SECONDS",
    "FLOWHOOK_RETRY__MAX_BACKOFF_SECONDS",
    "FLOWHOOK_S3",
    "FLOWHOOK_S3__ENDPOINT_URL",
    "FLOWHOOK_S3__REGION",
    "FLOWHOOK_SAMPLING",
    "FLOWHOOK_SAMPLING__KEEP_DAYS",
    "FLOWHOOK_SAMPLING__PERIOD_SECONDS",
    "FLOWHOOK_SECRET_ROTATION_GRACE_HOURS",
    "FLOWHOOK_SOURCES",
    "FLOWHOOK_SOURCES_FILE",
    "FLOWHOOK_SPOOL_URL",
    "FLOWHOOK_SQS",
    "FLOWHOOK_SQS_DLQ_URL",
    "FLOWHOOK_SQS__BATCHING_WINDOW_SECONDS",
    "FLOWHOOK_SQS__BATCH_SIZE",
    "FLOWHOOK_SQS__CREDENTIALS_BLOCK",
    "FLOWHOOK_SQS__ENDPOINT_URL",
    "FLOWHOOK_SQS__FORMAT",
    "FLOWHOOK_SQS__QUEUE_URL",
    "FLOWHOOK_SQS__REGION",
    "FLOWHOOK_SQS__VISIBILITY_TIMEOUT_SECONDS",
    "FLOWHOOK_SQS__WAIT_TIME_SECONDS",
    "FLOWHOOK_STORE",
    "FLOWHOOK_SWEEP_AFTER_SECONDS",
    "FLOWHOOK_WATCH_DIR",
    "FLOWHOOK_WATCH_INTERVAL_SECONDS",
    "FLOWHOOK_WEBHOOK_SECRET",
    "FLOWHOOK_WORKER_TYPE",
]
"""Every environment name the settings read (a dict field's keys and the `PREFECT_API_URL` alias aside)."""


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [model for arg in typing.get_args(annotation) for model in _models(arg)]
    return []


def env_names(model: type[BaseModel], prefix: str = "FLOWHOOK_") -> list[str]:
    """`FLOWHOOK_<FIELD>` for every field, and `FLOWHOOK_<FIELD>__<SUBFIELD>` into every nested model."""
    names = []
    for name, field in model.model_fields.items():
        names.append(prefix + name.upper())
        for sub in _models(field.annotation):
            names += env_names(sub, prefix + name.upper() + "__")
    return names


def test_the_environment_names_are_unchanged() -> None:
    assert sorted(env_names(Settings)) == ENV_NAMES


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        ("FLOWHOOK_DRAIN__IDLE_SECONDS", "3.5", lambda s: s.drain.idle_seconds),
        ("FLOWHOOK_RETRY__ATTEMPTS", "7", lambda s: s.retry.attempts),
        ("FLOWHOOK_BATCH__MAX_EVENTS", "11", lambda s: s.batch.max_events),
        ("FLOWHOOK_S3__REGION", "eu-west-3", lambda s: s.s3.region),
        ("FLOWHOOK_SAMPLING__KEEP_DAYS", "2.5", lambda s: s.sampling.keep_days),
        ("FLOWHOOK_SQS__QUEUE_URL", "http://127.0.0.1:1/q", lambda s: s.sqs.queue_url),
    ],
)
def test_a_nested_name_reaches_its_subsystems_model(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, read: typing.Callable[[Settings], object]
) -> None:
    monkeypatch.setenv(name, value)
    assert str(read(Settings())) == value
