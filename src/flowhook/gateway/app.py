"""The webhook gateway: verify → validate → persist (fsync) → 202 → (upload to S3) → forward to Prefect in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from flowhook.gateway.deliveries import DeliveryError
from flowhook.gateway.forwarder import BatchSink
from flowhook.gateway.http import BODY_TIMED_OUT
from flowhook.gateway.intake import Delivery
from flowhook.gateway.limits import retry_after
from flowhook.gateway.quarantine import quarantined
from flowhook.gateway.schemes import SignatureError, verify
from flowhook.gateway.secrets import SecretUnavailable
from flowhook.gateway.service import Gateway
from flowhook.sampling.recorder import UNKNOWN, ingress_events
from flowhook.settings import Settings, get_settings
from flowhook.spool import InboxUnavailable

logger = logging.getLogger(__name__)
_CHART_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}\.png")

_JSON_TYPES = ("application/json", "text/json")
# Where the schemes carry a delivery id in a header (stripe's is in the body), for log lines about a delivery
# whose body never arrived.
_ID_HEADERS = {"standard": "webhook-id", "github": "x-github-delivery"}


class ErrorPublic(BaseModel):
    """Every error the gateway returns."""

    code: str = Field(description="Machine-readable reason, e.g. `invalid_signature`.")
    message: str = Field(description="The reason in a sentence.")
    errors: list[dict[str, Any]] | None = Field(default=None, description="Field-level errors, where there are.")


class AcceptedPublic(BaseModel):
    """A delivery made durable: its events will reach the store."""

    accepted: int = Field(description="Events accepted.")
    ids: list[str] = Field(description="Their ids; the same for a redelivery.")


async def get_gateway(request: Request) -> Gateway:
    """The app's gateway, as a route dependency (async: FastAPI runs a plain def in a thread pool)."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


class Answer(JSONResponse):
    """A delivery's answer, with what the ingress counts note of it: its code, its events per type, and whether it
    was quarantined (authentic, kept aside)."""

    def __init__(
        self,
        content: Any,
        *,
        status: int,
        code: str,
        headers: dict[str, str] | None = None,
        events: dict[str, int] | None = None,
        quarantined: bool = False,
    ) -> None:
        super().__init__(content, status_code=status, headers=headers)
        self.code = code
        self.events = events
        self.quarantined = quarantined


def _error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    quarantined: bool = False,
    **extra: Any,
) -> Answer:
    content = {"code": code, "message": message, **extra}
    return Answer(content, status=status, code=code, headers=headers, quarantined=quarantined)


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


def _is_identity(content_encoding: str | None) -> bool:
    """Compressed bodies are refused: the signature covers the bytes sent, and inflating is a bomb to defuse."""
    return all(coding.strip().lower() in ("", "identity") for coding in (content_encoding or "").split(","))


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorPublic, "description": text}
    for status, text in {
        400: "The body is not JSON, or the client went away before it was whole.",
        401: "Missing or wrong signature, or a timestamp outside the tolerance.",
        408: "The headers or the body did not arrive in time.",
        404: "No such source.",
        413: "The body or the number of events is over the limit.",
        415: "The body is not JSON, or is compressed.",
        422: "The events do not match their types; kept in quarantine.",
        429: "Over the source's rate limit, or too many unverified deliveries from the address; see Retry-After.",
        503: "The spool is full or cannot be written; see Retry-After.",
    }.items()
}
_BODY_SCHEMA = {
    "oneOf": [
        {"type": "object", "description": "One event: {type, data, timestamp?, id?} or the source's own format."},
        {"type": "array", "items": {"type": "object"}, "description": "Several events."},
    ]
}


def create_app(settings: Settings | None = None, *, sink: BatchSink | None = None) -> FastAPI:
    """The gateway as an ASGI app; `sink` replaces the Prefect API (tests pass a MemorySink)."""
    gateway = Gateway(settings or get_settings(), sink)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with gateway.running():
            yield

    app = FastAPI(title="flowhook gateway", version="0.1.0", lifespan=lifespan)
    app.state.gateway = gateway

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {
            404: f"Nothing is served at {request.url.path}.",
            405: f"{request.method} is not allowed on {request.url.path}.",
        }.get(exc.status_code, f"{str(exc.detail).rstrip('.')}.")
        return _error(exc.status_code, code, message, dict(exc.headers or {}))  # 405 keeps its Allow

    @app.exception_handler(RequestValidationError)
    async def _request_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(map(str, e["loc"])), "msg": e["msg"]} for e in exc.errors()]
        return _error(422, "invalid_request", "The request is malformed.", errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)
        return _error(500, "internal_error", "The gateway failed unexpectedly; the delivery was not accepted.")

    @app.get("/health")
    async def health(gw: GatewayDep) -> dict[str, Any]:
        """Liveness and what waits where."""
        return {
            "status": "ok",
            "accepted": gw.accepted,
            "quarantined": gw.quarantined,
            "open": gw.inbox.open_counts(),
            "forward_backlog": gw.forwarder.backlog,
            "forwarded": gw.forwarder.sent,
            "forward_failures": gw.forwarder.failures,
            "forward_refused": gw.forwarder.refused,
            "upload_backlog": gw.uploader.backlog if gw.uploader else 0,
            "uploaded": gw.uploader.uploaded if gw.uploader else 0,
            "upload_failures": gw.uploader.failures if gw.uploader else 0,
            "wakeups_saved": gw.wakeups_saved,
            "spool_bytes": gw.spool_bytes,
        }

    @app.get("/reports/{name}", responses={404: {"model": ErrorPublic}})
    async def report_chart(name: str, gw: GatewayDep) -> Response:
        """A report's chart image from `data/reports/`, so the report artifact in the Prefect UI can show it."""
        path = gw.settings.reports_dir / name
        if not _CHART_NAME.fullmatch(name) or not await asyncio.to_thread(path.is_file):
            return _error(404, "not_found", f"No report chart is named {name!r}.")
        return FileResponse(path, media_type="image/png")

    @app.post(
        "/hooks/{source}",
        status_code=202,
        response_model=AcceptedPublic,
        responses=_ERRORS,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
    )
    async def receive(source: str, request: Request, gw: GatewayDep) -> JSONResponse:
        """Accept a signed delivery: verify, validate, persist (fsync), then answer 202."""
        counted = source if source in gw.sources else UNKNOWN  # a path is the sender's to choose: not a key
        try:
            answer = await _deliver(source, request, gw)
        except Exception:
            gw.recorder.count(counted, 500, "internal_error")
            raise
        gw.recorder.count(counted, answer.status_code, answer.code, answer.events, quarantined=answer.quarantined)
        return answer

    return app


async def _deliver(source: str, request: Request, gw: Gateway) -> Answer:
    """The route's work; every answer it gives is counted by the route, in one place."""
    config = gw.sources.get(source)
    if config is None:
        return _error(404, "unknown_source", f"No source is named {source!r}.")
    if not _is_json(request.headers.get("content-type")):
        return _error(415, "unsupported_media_type", "The body must be JSON (Content-Type: application/json).")
    if not _is_identity(request.headers.get("content-encoding")):
        return _error(415, "unsupported_encoding", "The body must not be compressed (no Content-Encoding).")
    limit = gw.settings.max_body_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return _error(413, "body_too_large", f"The body exceeds {limit} bytes.")
    if gw.spool_bytes > gw.settings.inbox_max_bytes:
        return _error(503, "inbox_full", "The spool is over its disk budget; try again later.", {"Retry-After": "30"})
    try:
        body = await _read_body(request, limit)
    except ClientDisconnect:
        why = "did not arrive in time" if getattr(request.state, BODY_TIMED_OUT, False) else "was cut off"
        delivery_id = request.headers.get(config.delivery_id_header or _ID_HEADERS.get(config.signature.scheme, ""))
        logger.warning(
            "delivery %s to %r from %s: the body %s; nothing stored",
            delivery_id or "(no id)",
            source,
            _client(request),
            why,
        )
        if getattr(request.state, BODY_TIMED_OUT, False):  # the protocol answered 408 already; count that
            return _error(408, "request_timeout", "The body did not arrive in time; nothing was stored.")
        return _error(400, "body_incomplete", "The body did not arrive whole; nothing was stored.")
    if body is None:
        return _error(413, "body_too_large", f"The body exceeds {limit} bytes.")
    try:
        secrets = gw.secrets.secrets(source, config)
    except SecretUnavailable as exc:
        logger.error("cannot check deliveries of %r: %s", source, exc)
        return _error(503, "secret_unavailable", "The source's secret is unavailable.", {"Retry-After": "30"})
    try:
        verified = verify(config.signature, body, request.headers, secrets)
    except SignatureError as exc:
        # Spends the address's budget for unverified deliveries, never the source's.
        wait = gw.unverified.take(_client(request))
        if wait:
            return _error(
                429,
                "too_many_unverified",
                "Too many deliveries from this address failed verification; try again later.",
                {"Retry-After": retry_after(wait)},
            )
        return _error(401, exc.code, f"The delivery is not authentic: {str(exc).rstrip('.')}.")
    limiter = gw.limiters.get(source)
    wait = limiter.take() if limiter else 0.0
    if wait:
        return _error(
            429, "rate_limited", f"Source {source!r} is over its rate limit.", {"Retry-After": retry_after(wait)}
        )
    delivery = Delivery(
        source=source,
        body=body,
        headers=request.headers,
        query=dict(request.query_params),
        delivery_id=request.headers.get(config.delivery_id_header or "") or verified.delivery_id,
        signed_at=verified.signed_at,
    )
    received = datetime.now(UTC)
    try:
        events = gw.intake.events(delivery, received=received)
    except DeliveryError as exc:
        item = quarantined(delivery, received=received, code=exc.code, message=str(exc), errors=exc.errors)
        await asyncio.to_thread(gw.quarantine.put, item)
        gw.quarantined += 1
        return _error(exc.status, exc.code, str(exc), errors=exc.errors, quarantine_id=item.id, quarantined=True)
    try:
        await gw.inbox.append(events)
    except InboxUnavailable as exc:
        return _error(503, "inbox_unavailable", f"Not accepted, try again: {exc}.", {"Retry-After": "5"})
    gw.accepted += len(events)
    return Answer(
        {"accepted": len(events), "ids": [e.id for e in events]},
        status=202,
        code="accepted",
        events=ingress_events(events),
    )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` (never read whole)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
