"""From an authentic request to events, by the source's body format: flowhook JSON, a Jinja
template, or CloudEvents. Shared by the route and by `flowhook quarantine replay`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import jinja2

from flowhook.events import Catalog, Event
from flowhook.gateway.bodies import BodyError
from flowhook.gateway.deliveries import DeliveryError, json_items, validate_items
from flowhook.gateway.sources import SourceConfig
from flowhook.gateway.templates import MappingError, cloudevents_items, compile_template, render_template


@dataclass(frozen=True)
class Delivery:
    """What the gateway keeps of one authentic request."""

    source: str
    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)
    delivery_id: str | None = None
    signed_at: datetime | None = None

    @property
    def key(self) -> str:
        """The sender's delivery id, else a digest of the body: either way a retry maps to the same events."""
        return self.delivery_id or "sha256:" + hashlib.sha256(self.body).hexdigest()


class Intake:
    """Turns deliveries into events for every configured source (templates compiled once)."""

    def __init__(self, sources: Mapping[str, SourceConfig], catalog: Catalog, *, max_events: int = 10_000) -> None:
        self.sources = dict(sources)
        self.catalog = catalog
        self.max_events = max_events
        self._templates: dict[str, jinja2.Template] = {}
        for name, config in self.sources.items():
            if config.format == "template":
                if not config.template:
                    raise ValueError(f"source {name!r} has format 'template' but no template")
                self._templates[name] = compile_template(config.template)

    def events(self, delivery: Delivery, *, received: datetime) -> list[Event]:
        """The delivery's events, validated as a whole; DeliveryError says what is wrong."""
        config = self.sources[delivery.source]
        single = False
        try:
            if config.format == "template":
                items = render_template(
                    self._templates[delivery.source],
                    body=delivery.body,
                    headers=delivery.headers,
                    query=delivery.query,
                )
                if not items:
                    return []  # the template chose to map this request to no event (e.g. a ping)
                single = len(items) == 1
            elif config.format == "cloudevents":
                items = cloudevents_items(delivery.body, delivery.headers)
            else:
                items, single = json_items(delivery.body)
        except BodyError as exc:  # a template's or a CloudEvent's body: too deep, or an integer past 64 bits
            raise DeliveryError(400, exc.code, str(exc)) from None
        except MappingError as exc:
            raise DeliveryError(422, exc.code, str(exc), exc.errors) from None
        return validate_items(
            items,
            single=single,
            catalog=self.catalog,
            source=delivery.source,
            delivery_id=delivery.key,
            signed_at=delivery.signed_at or received,
            received=received,
            max_events=self.max_events,
        )
