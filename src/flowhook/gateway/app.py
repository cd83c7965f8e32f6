"""The webhook gateway: verify → validate → persist (fsync) → 202 → forward to Prefect in batches."""

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
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowhook.events import Catalog, load_catalog
from flowhook.gateway.deliveries import DeliveryError, parse_delivery
from flowhook.gateway.forwarder import BatchSink, Forwarder, PrefectEventSink
from flowhook.gateway.signing import SignatureError, load_or_create_secret, verify
from flowhook.settings import Settings, get_settings
from flowhook.spool import Inbox, InboxUnavailable, Spool

logger = logging.getLogger(__name__)

SOURCE_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class Gateway:
    """The gateway's long-lived parts: catalog, secret, inbox and forwarder."""

    def __init__(self, settings: Settings, sink: BatchSink | None = None) -> None:
        self.settings = settings
        self.catalog: Catalog = load_catalog(settings.event_modules)
        self.secret = resolve_secret(settings)
        self.spool = Spool(settings.spool_dir)
        self.sink = sink or PrefectEventSink(settings.prefect_api_url)
        self.forwarder = Forwarder(self.spool, self.sink)
        self.inbox = Inbox(self.spool, policy=settings.batch_policy, on_sealed=self.forwarder.submit)
        self.accepted = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        for ref in await self.inbox.start():
            self.forwarder.submit(ref)
        forwarding = asyncio.create_task(self.forwarder.run(), name="forwarder")
        try:
            yield
        finally:
            await self.inbox.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain(), timeout=5.0)
            forwarding.cancel()
            if isinstance(self.sink, PrefectEventSink):
                await self.sink.aclose()

    async def _drain(self) -> None:
        while not self.forwarder.idle:
            await asyncio.sleep(0.05)


def get_gateway(request: Request) -> Gateway:
    """The app's gateway, as a route dependency."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def resolve_secret(settings: Settings) -> str:
    """The configured secret, or the dev secret under the data folder (made and printed on first run)."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    secret, created = load_or_create_secret(settings.data_dir / "dev-webhook-secret")
    if created:
        print(f"flowhook: generated a dev webhook secret in {settings.data_dir / 'dev-webhook-secret'}")
        print(f"flowhook: senders sign with: {secret}")
    return secret


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status)


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
        return _error(exc.status_code, code, str(exc.detail))

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
            "open": gw.inbox.open_counts(),
            "forward_backlog": gw.forwarder.backlog,
            "forwarded": gw.forwarder.sent,
            "forward_failures": gw.forwarder.failures,
        }

    @app.post("/hooks/{source}", status_code=202)
    async def receive(source: str, request: Request, gw: GatewayDep) -> JSONResponse:
        """Accept a signed delivery of one event or a list of events."""
        if not re.match(SOURCE_NAME, source):
            return _error(404, "unknown_source", f"No source is named {source!r}.")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > gw.settings.max_body_bytes:
            return _error(413, "body_too_large", f"The body exceeds {gw.settings.max_body_bytes} bytes.")
        body = await _read_body(request, gw.settings.max_body_bytes)
        if body is None:
            return _error(413, "body_too_large", f"The body exceeds {gw.settings.max_body_bytes} bytes.")
        try:
            delivery_id = verify(gw.secret, body, request.headers)
        except SignatureError as exc:
            return _error(401, "invalid_signature", f"The delivery is not authentic: {exc}.")
        received = datetime.now(UTC)
        # Verified already; the scheme signs whole seconds but senders may send a fraction.
        signed_at = datetime.fromtimestamp(float(request.headers["webhook-timestamp"]), UTC)
        try:
            events = parse_delivery(
                body,
                catalog=gw.catalog,
                source=source,
                delivery_id=delivery_id,
                signed_at=signed_at,
                received=received,
            )
        except DeliveryError as exc:
            return _error(exc.status, exc.code, str(exc), errors=exc.errors)
        try:
            await gw.inbox.append(events)
        except InboxUnavailable as exc:
            return JSONResponse(
                {"code": "inbox_unavailable", "message": f"Not accepted, try again: {exc}."},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        gw.accepted += len(events)
        return JSONResponse({"accepted": len(events), "ids": [e.id for e in events]}, status_code=202)

    return app


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
