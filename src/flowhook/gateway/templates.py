"""Map a request that is not in flowhook's format to delivery items: a Jinja template, or CloudEvents.

Templates follow Prefect Cloud's webhook templates, so one written for Prefect Cloud reads the same here.
They render JSON, one object or a list of them, and see these variables:

- `body`: the body parsed as JSON when it parses, as a flat dict for `application/x-www-form-urlencoded`,
  else the text;
- `raw_body`: the body as text;
- `headers`: the request headers, lower-cased names but looked up in any case, without `Authorization`;
- `query`: the query-string parameters;
- `method`: the upper-cased HTTP method.

The filters are Jinja's own (except that `tojson` writes compact JSON and does not HTML-escape)
plus two more:

- `fromtimestamp`: UNIX seconds to an ISO 8601 UTC time, e.g. Stripe's `created`;
- `from_cloud_event(headers)`: the body read as CloudEvents (structured, batch or binary), as
  `{{ body|from_cloud_event(headers) }}` in Prefect Cloud.

Each rendered object uses flowhook's keys (`type`, `data`, `timestamp`, `id`) or Prefect's (`event`,
`payload`, `occurred`, `id`). Prefect's `resource` and `related` are kept inside `data` under those
names, unless `data` already has that key. Other keys are ignored, as they are in a flowhook body.
"""

from __future__ import annotations

import base64
import json
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, unquote

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from flowhook.gateway.bodies import BodyError, parse_json

# Each flowhook key and its Prefect Cloud synonym.
_SYNONYMS = {"type": "event", "data": "payload", "timestamp": "occurred"}
_KEPT_IN_DATA = ("resource", "related")
_CE_REQUIRED = ("specversion", "id", "source", "type")
_CE_STRUCTURED = "application/cloudevents+json"
_CE_BATCH = "application/cloudevents-batch+json"


class MappingError(ValueError):
    """The request could not be mapped to events; `errors` lists what and where."""

    def __init__(self, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.errors = errors or []


class _Headers(dict[str, str]):
    """Header names stored lower-cased and looked up in any case, as in Prefect Cloud templates."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


def compile_template(source: str) -> jinja2.Template:
    """Compile a source's template; a syntax error is a configuration bug, so it raises at startup."""
    try:
        return _environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"The template has a syntax error on line {exc.lineno}: {exc.message}.") from None


def render_template(
    template: jinja2.Template,
    *,
    body: bytes,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    method: str = "POST",
) -> list[dict[str, Any]]:
    """Render the request into delivery items (`{type, data, timestamp?, id?}`), or say what went wrong.

    A body that is JSON but too deep raises BodyError; one that is not JSON at all is given as text."""
    text = body.decode("utf-8", errors="replace")
    lowered = _Headers((name.lower(), value) for name, value in headers.items() if name.lower() != "authorization")
    context = {
        "body": _parse_body(body, text, lowered.get("content-type", "")),
        "raw_body": text,
        "headers": lowered,
        "query": dict(query),
        "method": method.upper(),
    }
    try:
        output = template.render(context)
    except MappingError:
        raise
    # The template is evaluated against whatever the sender posted; any failure is the mapping's.
    except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
        where = _template_line(exc)
        detail = f" on line {where}" if where else ""
        raise MappingError(
            "template_error",
            f"The template failed{detail}: {exc}.",
            [{"loc": ["template"], "line": where, "msg": str(exc)}],
        ) from None
    try:
        document = parse_json(output, what="The output")
    except BodyError as exc:
        raise MappingError(
            "template_error",
            f"The template did not render valid JSON ({exc.detail}); it rendered: {output.strip()[:200]!r}.",
        ) from None
    return _items_from_output(document)


def cloudevents_items(body: bytes, headers: Mapping[str, str]) -> list[dict[str, Any]]:
    """Read CloudEvents 1.0 (structured, batch or binary HTTP mode) as delivery items."""
    lowered = {name.lower(): value for name, value in headers.items()}
    media = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == _CE_BATCH:
        document = _json_body(body, "The CloudEvents batch")
        if not isinstance(document, list):
            raise MappingError("invalid_cloudevent", "A CloudEvents batch must be a JSON array of events.")
        events: list[Any] = document
    elif media != _CE_STRUCTURED and "ce-specversion" in lowered:
        attributes: dict[str, Any] = {
            name.removeprefix("ce-"): unquote(value) for name, value in lowered.items() if name.startswith("ce-")
        }
        if body.strip():
            try:
                attributes["data"] = parse_json(body)
            except BodyError as exc:
                if exc.code != "invalid_json":
                    raise
                raise MappingError(
                    "invalid_cloudevent",
                    "The binary-mode CloudEvent's body (its data) is not JSON.",
                    [{"index": 0, "loc": ["data"], "msg": "not JSON"}],
                ) from None
        events = [attributes]
    else:
        document = _json_body(body, "The CloudEvent")
        if media != _CE_STRUCTURED and not (isinstance(document, dict) and "specversion" in document):
            raise MappingError(
                "invalid_cloudevent",
                f"The request is not a CloudEvent: send Content-Type {_CE_STRUCTURED} or {_CE_BATCH}, "
                "or the event's attributes as ce-* headers.",
            )
        events = [document]
    errors: list[dict[str, Any]] = []
    items = [_cloudevent_item(event, index, errors) for index, event in enumerate(events)]
    if errors:
        missing = sorted({err["loc"][0] for err in errors if err["msg"] == "missing"})
        detail = f"; missing: {', '.join(missing)}" if missing else ""
        raise MappingError("invalid_cloudevent", f"The request holds an invalid CloudEvent{detail}.", errors)
    return items


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    environment = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    environment.filters["tojson"] = _tojson
    environment.filters["fromtimestamp"] = _fromtimestamp
    environment.filters["from_cloud_event"] = _from_cloud_event
    return environment


def _tojson(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_unserialisable)


def _unserialisable(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises its own UndefinedError, naming the missing variable.
    raise TypeError(f"{type(value).__name__} values cannot be written as JSON")


def _fromtimestamp(seconds: Any) -> str:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float | str):
        raise TypeError(f"fromtimestamp expects UNIX seconds, not {type(seconds).__name__}")
    return datetime.fromtimestamp(float(seconds), UTC).isoformat()


def _from_cloud_event(body: Any, headers: Mapping[str, str]) -> str:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return _tojson(cloudevents_items(raw, headers))


def _parse_body(body: bytes, text: str, content_type: str) -> Any:
    if content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
        return dict(parse_qsl(text, keep_blank_values=True))
    try:
        return parse_json(body)
    except BodyError as exc:
        if exc.code != "invalid_json":
            raise  # JSON, but not to be walked: no template should see it as text
        return text


def _template_line(exc: BaseException) -> int | None:
    # Jinja rewrites tracebacks so that template lines appear as frames of "<template>".
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == "<template>"]
    return frames[-1].lineno if frames else None


def _items_from_output(document: Any) -> list[dict[str, Any]]:
    objects = document if isinstance(document, list) else [document]
    errors: list[dict[str, Any]] = []
    items = [_item_from_object(obj, index, errors) for index, obj in enumerate(objects)]
    if errors:
        first = errors[0]
        where = f"item {first['index']}" if isinstance(document, list) else "the rendered object"
        message = f"The template's output is not an event: in {where}, {first['msg']}."
        raise MappingError("template_error", message, errors)
    return items


def _item_from_object(obj: Any, index: int, errors: list[dict[str, Any]]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        errors.append({"index": index, "loc": [], "msg": f"a JSON {_json_kind(obj)} stands where an object belongs"})
        return {}
    item: dict[str, Any] = {}
    for key, synonym in _SYNONYMS.items():
        if key in obj and synonym in obj:
            errors.append({"index": index, "loc": [key], "msg": f"`{key}` and `{synonym}` are both set"})
        value = obj.get(key, obj.get(synonym))
        if value is not None:
            item[key] = value
    if not isinstance(item.get("type"), str) or not item["type"]:
        errors.append({"index": index, "loc": ["type"], "msg": "`type` (or `event`) is missing or not a string"})
    data = item.setdefault("data", {})
    if isinstance(data, dict):
        for key in _KEPT_IN_DATA:
            if key in obj and key not in data:
                data[key] = obj[key]
    else:
        errors.append({"index": index, "loc": ["data"], "msg": "`data` (or `payload`) is not an object"})
    identifier = obj.get("id")
    if isinstance(identifier, str | int) and not isinstance(identifier, bool):
        item["id"] = str(identifier)
    elif identifier is not None:
        errors.append({"index": index, "loc": ["id"], "msg": "`id` is not a string"})
    return item


def _json_kind(value: Any) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _json_body(body: bytes, what: str) -> Any:
    try:
        return parse_json(body, what=what)
    except BodyError as exc:
        if exc.code != "invalid_json":
            raise
        raise MappingError("invalid_cloudevent", f"{what} is not valid JSON.") from None


def _cloudevent_item(event: Any, index: int, errors: list[dict[str, Any]]) -> dict[str, Any]:
    if not isinstance(event, dict):
        errors.append({"index": index, "loc": [], "msg": "not a JSON object"})
        return {}
    found = len(errors)
    for name in _CE_REQUIRED:
        value = event.get(name)
        if value is None or value == "":
            errors.append({"index": index, "loc": [name], "msg": "missing"})
        elif not isinstance(value, str):
            errors.append({"index": index, "loc": [name], "msg": "must be a string"})
    if isinstance(event.get("specversion"), str) and event["specversion"] not in ("", "1.0"):
        errors.append({"index": index, "loc": ["specversion"], "msg": f"{event['specversion']!r} is not '1.0'"})
    data = _cloudevent_data(event, index, errors)
    if len(errors) > found:
        return {}
    item: dict[str, Any] = {"type": event["type"], "data": data, "id": f"{event['id']}@{event['source']}"}
    if event.get("time") is not None:
        item["timestamp"] = event["time"]
    return item


def _cloudevent_data(event: dict[str, Any], index: int, errors: list[dict[str, Any]]) -> dict[str, Any]:
    if "data" in event and "data_base64" in event:
        errors.append({"index": index, "loc": ["data_base64"], "msg": "both `data` and `data_base64` are set"})
        return {}
    data = event.get("data")
    if "data_base64" in event:
        try:
            data = parse_json(base64.b64decode(event["data_base64"], validate=True), what="data_base64")
        except (TypeError, ValueError):  # binascii.Error and BodyError are ValueErrors
            errors.append({"index": index, "loc": ["data_base64"], "msg": "not base64-encoded JSON"})
            return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        errors.append({"index": index, "loc": ["data"], "msg": f"a JSON {_json_kind(data)}, not an object"})
        return {}
    return data
