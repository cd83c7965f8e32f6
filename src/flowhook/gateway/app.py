"""The webhook gateway: verify → validate → persist (fsync) → 202 → (upload to S3) → forward to Prefect in batches.

Deliveries (`POST /hooks/{source}`) take the plain-ASGI path of `lane` before FastAPI sees them; FastAPI serves
the rest (health, report charts, the docs, 404 and 405) and declares the delivery route for the OpenAPI docs.
Every error answer, on either path, is a `Refusal` in the shape `{code, message, errors?, quarantine_id?}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from flowhook.gateway.forwarder import BatchSink
from flowhook.gateway.lane import Answer, Lane, hook_source
from flowhook.gateway.refusals import INTERNAL, Refusal
from flowhook.gateway.service import Gateway
from flowhook.names import HOOKS_PATH
from flowhook.settings import Settings, get_settings

logger = logging.getLogger(__name__)
_CHART_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}\.png")


class ErrorPublic(BaseModel):
    """Every error the gateway returns."""

    code: str = Field(description="Machine-readable reason, e.g. `invalid_signature`.")
    message: str = Field(description="The reason in a sentence.")
    errors: list[dict[str, Any]] | None = Field(default=None, description="Field-level errors, where there are.")
    quarantine_id: str | None = Field(default=None, description="Where an authentic delivery was kept aside.")


class AcceptedPublic(BaseModel):
    """A delivery made durable: its events will reach the store."""

    accepted: int = Field(description="Events accepted.")
    ids: list[str] = Field(description="Their ids; the same for a redelivery.")


async def get_gateway(request: Request) -> Gateway:
    """The app's gateway, as a route dependency (async: FastAPI runs a plain def in a thread pool)."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


class GatewayApp(FastAPI):
    """FastAPI with the delivery lane in front: `POST /hooks/{source}` is answered by `lane`, the rest by FastAPI."""

    lane: Lane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        source = hook_source(scope) if self.lane is not None else None
        if source is None or self.lane is None:
            await super().__call__(scope, receive, send)
        else:
            await self.lane(source, scope, receive, send)


def _response(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, headers=answer.headers, media_type="application/json")


def _refused(refusal: Refusal) -> Response:
    """A Refusal as FastAPI's answer: the same body and headers the lane sends."""
    return _response(Answer(refusal.status, refusal.body(), refusal.headers))


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

    app = GatewayApp(title="flowhook gateway", version="0.1.0", lifespan=lifespan)
    app.state.gateway = gateway
    lane = app.lane = Lane(gateway)

    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal) -> Response:
        return _refused(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {
            404: f"Nothing is served at {request.url.path}.",
            405: f"{request.method} is not allowed on {request.url.path}.",
        }.get(exc.status_code, f"{str(exc.detail).rstrip('.')}.")
        return _refused(Refusal(exc.status_code, code, message, headers=dict(exc.headers or {})))  # 405: Allow

    @app.exception_handler(RequestValidationError)
    async def _request_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(map(str, e["loc"])), "msg": e["msg"]} for e in exc.errors()]
        return _refused(Refusal(422, "invalid_request", "The request is malformed.", errors=errors))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error on %s", request.url.path)
        return _refused(INTERNAL)

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
            raise Refusal(404, "not_found", f"No report chart is named {name!r}.")
        return FileResponse(path, media_type="image/png")

    @app.post(
        HOOKS_PATH + "{source}",
        status_code=202,
        response_model=AcceptedPublic,
        responses=_ERRORS,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
    )
    async def receive(source: str, request: Request) -> Response:
        """Accept a signed delivery: verify, validate, persist (fsync), then answer 202. (Served by the lane in
        front of FastAPI; declared here for the docs, and answered by the same lane if reached.)"""
        return _response(await lane.answer(source, request.scope, request.receive))

    return app
