"""The delivery path: `POST /hooks/{source}` in plain ASGI, in front of FastAPI.

Starlette's and FastAPI's per-request layers (middleware, Request and Headers, dependency solving, exception
wrappers) cost an accepted delivery about as much CPU as its own work did (bench/results/gateway_profile.txt),
so deliveries skip them: `Lane.answer` reads what it needs from the scope once (headers as a `Headers` dict,
the query, the client), reads the body within the size limit, and gives verify → validate → persist its
answer. Every refusal is a `Refusal`, made into the answer and counted in one place; anything unexpected is
answered 500 and counted once too. Everything else the app serves goes through FastAPI.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive, Scope, Send

from flowhook.events import Event
from flowhook.gateway.deliveries import DeliveryError
from flowhook.gateway.headers import Headers
from flowhook.gateway.http import BODY_TIMED_OUT
from flowhook.gateway.intake import Delivery
from flowhook.gateway.limits import retry_after
from flowhook.gateway.quarantine import quarantined
from flowhook.gateway.refusals import INTERNAL, Refusal
from flowhook.gateway.schemes import SignatureError, verify_with_keys
from flowhook.gateway.secrets import SecretUnavailable
from flowhook.gateway.service import Gateway
from flowhook.gateway.sources import SourceConfig
from flowhook.names import HOOKS_PATH
from flowhook.sampling.recorder import UNKNOWN, ingress_events
from flowhook.spool import InboxUnavailable

__all__ = ["Answer", "Lane", "hook_source"]

logger = logging.getLogger(__name__)

_JSON_TYPES = ("application/json", "text/json")
# Where the schemes carry a delivery id in a header (stripe's is in the body), for log lines about a delivery
# whose body never arrived.
_ID_HEADERS = {"standard": "webhook-id", "github": "x-github-delivery"}
_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True)
class Answer:
    """A delivery's answer: its status, JSON body and extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The ASGI response headers: JSON, its length and the extra ones."""
        extra = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()]
        return [_JSON, (b"content-length", str(len(self.body)).encode()), *extra]

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.raw_headers()})
        await send({"type": "http.response.body", "body": self.body})


def hook_source(scope: Scope) -> str | None:
    """The source a `POST /hooks/{source}` names (one path segment, as FastAPI's route matches); else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if not path.startswith(HOOKS_PATH):
        return None
    source = path[len(HOOKS_PATH) :]
    return source if source and "/" not in source else None


class _Disconnected(Exception):
    """The client went away (or the protocol cut it off) before the body was whole."""


class Lane:
    """The gateway's delivery path, on the gateway's long-lived parts."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.max_body = gateway.settings.max_body_bytes
        self.inbox_max = gateway.settings.inbox_max_bytes

    async def __call__(self, source: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one delivery over ASGI."""
        await (await self.answer(source, scope, receive)).send(send)

    async def answer(self, source: str, scope: Scope, receive: Receive) -> Answer:
        """The delivery's answer, counted once whatever it is (a 500 for anything unexpected)."""
        gw = self.gw
        counted = source if source in gw.sources else UNKNOWN  # a path is the sender's to choose: not a key
        try:
            events = await self._deliver(source, scope, receive)
        except Refusal as refusal:
            gw.recorder.count(counted, refusal.status, refusal.code, quarantined=refusal.quarantined)
            return Answer(refusal.status, refusal.body(), refusal.headers)
        except Exception:
            logger.exception("unexpected error on %s", scope.get("path"))
            gw.recorder.count(counted, 500, INTERNAL.code)
            return Answer(500, INTERNAL.body())
        gw.recorder.count(counted, 202, "accepted", ingress_events(events))
        return Answer(202, orjson.dumps({"accepted": len(events), "ids": [event.id for event in events]}))

    async def _deliver(self, source: str, scope: Scope, receive: Receive) -> list[Event]:
        """verify → validate → persist (fsync); a Refusal says why not."""
        gw = self.gw
        config = gw.sources.get(source)
        if config is None:
            raise Refusal(404, "unknown_source", f"No source is named {source!r}.")
        headers = Headers(scope["headers"])
        if not all(map(_is_json, _values(headers, "content-type"))):
            raise Refusal(415, "unsupported_media_type", "The body must be JSON (Content-Type: application/json).")
        if not all(map(_is_identity, _values(headers, "content-encoding"))):
            raise Refusal(415, "unsupported_encoding", "The body must not be compressed (no Content-Encoding).")
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise Refusal(413, "body_too_large", f"The body exceeds {self.max_body} bytes.")
        if gw.spool_bytes > self.inbox_max:
            raise Refusal(503, "inbox_full", "The spool is over its disk budget; try again later.", headers=_LATER)
        body = await self._body(source, config, scope, receive, headers)
        try:
            keys = gw.secrets.keys(source, config)
        except SecretUnavailable as exc:
            logger.error("cannot check deliveries of %r: %s", source, exc)
            raise Refusal(503, "secret_unavailable", "The source's secret is unavailable.", headers=_LATER) from None
        try:
            verified = verify_with_keys(config.signature, body, headers, keys)
        except SignatureError as exc:
            # Spends the address's budget for unverified deliveries, never the source's.
            wait = gw.unverified.take(_client(scope))
            if wait:
                message = "Too many deliveries from this address failed verification; try again later."
                raise Refusal(429, "too_many_unverified", message, headers={"Retry-After": retry_after(wait)}) from None
            raise Refusal(401, exc.code, f"The delivery is not authentic: {str(exc).rstrip('.')}.") from None
        limiter = gw.limiters.get(source)
        wait = limiter.take() if limiter else 0.0
        if wait:
            message = f"Source {source!r} is over its rate limit."
            raise Refusal(429, "rate_limited", message, headers={"Retry-After": retry_after(wait)})
        query = scope.get("query_string", b"")
        delivery = Delivery(
            source=source,
            body=body,
            headers=headers,
            query=dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {},
            delivery_id=headers.get(config.delivery_id_header or "") or verified.delivery_id,
            signed_at=verified.signed_at,
        )
        received = datetime.now(UTC)
        try:
            events = gw.intake.events(delivery, received=received)
        except DeliveryError as exc:
            item = quarantined(delivery, received=received, code=exc.code, message=str(exc), errors=exc.errors)
            await asyncio.to_thread(gw.quarantine.put, item)
            gw.quarantined += 1
            raise Refusal(exc.status, exc.code, str(exc), errors=exc.errors, quarantine_id=item.id) from None
        try:
            await gw.inbox.append(events)
        except InboxUnavailable as exc:
            message = f"Not accepted, try again: {exc}."
            raise Refusal(503, "inbox_unavailable", message, headers={"Retry-After": "5"}) from None
        gw.accepted += len(events)
        return events

    async def _body(self, source: str, config: SourceConfig, scope: Scope, receive: Receive, headers: Headers) -> bytes:
        """The whole body, within the size limit; a Refusal if it is over it or did not arrive whole."""
        try:
            body = await _read_body(receive, self.max_body)
        except _Disconnected:
            timed_out = bool((scope.get("state") or {}).get(BODY_TIMED_OUT, False))  # set by the protocol
            why = "did not arrive in time" if timed_out else "was cut off"
            delivery_id = headers.get(config.delivery_id_header or _ID_HEADERS.get(config.signature.scheme, ""))
            logger.warning(
                "delivery %s to %r from %s: the body %s; nothing stored",
                delivery_id or "(no id)",
                source,
                _client(scope),
                why,
            )
            if timed_out:  # the protocol answered 408 already; count that
                raise Refusal(408, "request_timeout", "The body did not arrive in time; nothing was stored.") from None
            raise Refusal(400, "body_incomplete", "The body did not arrive whole; nothing was stored.") from None
        if body is None:
            raise Refusal(413, "body_too_large", f"The body exceeds {self.max_body} bytes.")
        return body


_LATER = {"Retry-After": "30"}


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` (never read whole)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        if not message.get("more_body", False):
            return b"".join([*chunks, chunk]) if chunks else chunk
        chunks.append(chunk)


def _values(headers: Headers, name: str) -> list[str] | list[str | None]:
    """Every value of a header whose each value must pass a check; [None] when it is absent."""
    return headers.getlist(name) if headers.repeated and name in headers else [headers.get(name)]


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


def _is_identity(content_encoding: str | None) -> bool:
    """Compressed bodies are refused: the signature covers the bytes sent, and inflating is a bomb to defuse."""
    return all(coding.strip().lower() in ("", "identity") for coding in (content_encoding or "").split(","))


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
