"""Request mapping: Jinja templates (flowhook or Prefect Cloud keys) and CloudEvents into delivery items."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flowhook.events import EventData, load_catalog
from flowhook.gateway.deliveries import DeliveryItem
from flowhook.gateway.templates import MappingError, cloudevents_items, compile_template, render_template
from flowhook.sources.webhook import SourceConfig, load_sources

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GITHUB_HEADERS = {
    "Content-Type": "application/json",
    "X-GitHub-Event": "push",
    "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
}
STRIPE_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": "t=1714557601,v1=5257a8"}
CE_JSON = {"content-type": "application/cloudevents+json"}
CE_BATCH = {"content-type": "application/cloudevents-batch+json"}


def source(name: str) -> SourceConfig:
    return load_sources(FIXTURES / "sources.yaml")[name]


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return document


def render(
    template: str,
    body: bytes | dict[str, Any] = b"",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    return render_template(compile_template(template), body=raw, headers=headers or {}, query=query or {})


def validated(item: dict[str, Any]) -> EventData:
    """The item as the gateway will accept it: a DeliveryItem whose data fits its catalog type."""
    DeliveryItem.model_validate(item)
    return load_catalog().get(item["type"]).model.model_validate(item["data"])


def template_error(template: str, body: bytes | dict[str, Any] = b"") -> MappingError:
    with pytest.raises(MappingError) as caught:
        render(template, body)
    assert caught.value.code == "template_error"
    return caught.value


def invalid_cloudevent(body: bytes | Any, headers: dict[str, str]) -> MappingError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(MappingError) as caught:
        cloudevents_items(raw, headers)
    assert caught.value.code == "invalid_cloudevent"
    return caught.value


def cloudevent(**attributes: Any) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": "A234-1234-1234",
        "source": "https://github.com/cloudevents/spec/pull",
        "type": "com.github.pull_request.opened",
        "time": "2024-05-01T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {"user_id": "u1", "action": "review"},
    }
    event.update(attributes)
    return {key: value for key, value in event.items() if value is not None}


# --- the sample sources ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "scheme", "format_"),
    [("github", "github", "template"), ("stripe", "stripe", "template"), ("cloudevents", "hmac", "cloudevents")],
)
def test_sample_sources_declare_their_scheme_and_format(name: str, scheme: str, format_: str) -> None:
    config = source(name)
    assert (config.signature.scheme, config.format) == (scheme, format_)
    if config.template is not None:
        compile_template(config.template)


def test_cloudevents_sample_source_signs_with_a_hex_sha256_header() -> None:
    signature = source("cloudevents").signature
    assert (signature.header, signature.algorithm, signature.encoding) == ("x-signature", "sha256", "hex")


def test_github_push_becomes_a_data_update_of_the_repository() -> None:
    template = source("github").template
    assert template is not None
    [item] = render(template, (FIXTURES / "github_push.json").read_bytes(), GITHUB_HEADERS)
    assert item == {
        "type": "data_update",
        "timestamp": "2024-05-01T11:58:12+02:00",
        "data": {
            "dataset": "octo-org/pipeline-data",
            "uri": "https://github.com/octo-org/pipeline-data/compare/6113728f27ae...9d3f1a2b4c5e",
            "rows": 3,
            "operation": "update",
            "checksum": "9d3f1a2b4c5e6f708192a3b4c5d6e7f8091a2b3c",
        },
    }
    data = validated(item)
    assert data.model_dump() == {**item["data"], "size_bytes": None}


def test_github_branch_deletion_becomes_a_delete_without_a_time() -> None:
    template = source("github").template
    assert template is not None
    push = fixture("github_push.json")
    push.update(deleted=True, after="0" * 40, commits=[], head_commit=None)
    [item] = render(template, push, GITHUB_HEADERS)
    assert "timestamp" not in item
    assert item["data"]["operation"] == "delete"
    assert item["data"]["rows"] == 0
    validated(item)


def test_stripe_invoice_paid_becomes_a_user_request_keyed_on_the_event_id() -> None:
    template = source("stripe").template
    assert template is not None
    [item] = render(template, (FIXTURES / "stripe_invoice_paid.json").read_bytes(), STRIPE_HEADERS)
    assert item["id"] == "evt_1PBqXJ2eZvKYlo2CKx7sQ3mN"
    assert item["timestamp"] == "2024-05-01T10:00:00+00:00"
    data = validated(item)
    assert data.model_dump() == {
        "user_id": "cus_Q1xY2zA3bC4dE5",
        "action": "invoice.paid",
        "amount_cents": 4900,
        "path": fixture("stripe_invoice_paid.json")["data"]["object"]["hosted_invoice_url"],
    }
    assert DeliveryItem.model_validate(item).timestamp == datetime(2024, 5, 1, 10, tzinfo=UTC)


# --- template variables, keys and filters ---------------------------------------------------------

PREFECT_STYLE = """
{
  "event": "user_request",
  "occurred": "2024-05-01T10:00:00Z",
  "id": {{ body.order | tojson }},
  "resource": {"prefect.resource.id": "shop.customer.{{ body.customer }}"},
  "related": [{"prefect.resource.id": "shop.order.{{ body.order }}", "prefect.resource.role": "order"}],
  "payload": {"user_id": {{ body.customer | tojson }}, "action": "checkout"}
}
"""


def test_prefect_cloud_keys_map_to_flowhook_keys_and_keep_the_resources_in_data() -> None:
    [item] = render(PREFECT_STYLE, {"customer": "c7", "order": 1042})
    assert item == {
        "type": "user_request",
        "timestamp": "2024-05-01T10:00:00Z",
        "id": "1042",
        "data": {
            "user_id": "c7",
            "action": "checkout",
            "resource": {"prefect.resource.id": "shop.customer.c7"},
            "related": [{"prefect.resource.id": "shop.order.1042", "prefect.resource.role": "order"}],
        },
    }
    validated(item)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{"event": "e", "payload": {"resource": "mine"}, "resource": {"a": 1}}', {"resource": "mine"}),
        ('{"event": "e", "resource": {"a": 1}}', {"resource": {"a": 1}}),
        ('{"type": "e"}', {}),
        ('{"type": "e", "data": {"x": 1}, "extra": "ignored"}', {"x": 1}),
    ],
)
def test_data_defaults_to_empty_and_never_loses_its_own_keys(template: str, expected: dict[str, Any]) -> None:
    assert render(template) == [{"type": "e", "data": expected}]


def test_the_prefect_pass_through_template_accepts_a_flowhook_body() -> None:
    body = {"type": "user_request", "data": {"user_id": "u1", "action": "search"}, "id": "m1", "timestamp": None}
    assert render("{{ body | tojson }}", body) == [
        {"type": "user_request", "data": {"user_id": "u1", "action": "search"}, "id": "m1"}
    ]


def test_a_list_renders_one_item_per_object_and_an_empty_list_none() -> None:
    template = (
        '[{% for row in body.rows %}{"type": "t", "data": {"n": {{ row }}}}{{ "," if not loop.last }}{% endfor %}]'
    )
    assert render(template, {"rows": [1, 2, 3]}) == [{"type": "t", "data": {"n": n}} for n in (1, 2, 3)]
    assert render(template, {"rows": []}) == []


@pytest.mark.parametrize(
    ("expression", "body", "headers", "expected"),
    [
        ("body.a", b'{"a": [1, 2]}', {}, [1, 2]),
        ("body", b"plain text, not JSON", {}, "plain text, not JSON"),
        (
            "body",
            b"model=recs&friendly_name=Recommendations%20%5BProducts%5D",
            {"Content-Type": "application/x-www-form-urlencoded"},
            {"model": "recs", "friendly_name": "Recommendations [Products]"},
        ),
        ("raw_body", b'{"a": 1}', {}, '{"a": 1}'),
        ("headers['X-GitHub-Event']", b"", {"x-github-event": "push"}, "push"),
        ("headers['x-github-event']", b"", {"X-GitHub-Event": "push"}, "push"),
        ("headers.get('X-Missing', 'none')", b"", {}, "none"),
        ("'authorization' in headers", b"", {"Authorization": "Bearer secret"}, False),
        ("headers | list", b"", {"X-One": "1", "Authorization": "Bearer secret"}, ["x-one"]),
        ("query.page", b"", {}, "2"),
        ("method", b"", {}, "POST"),
    ],
)
def test_template_variables_follow_prefect_cloud(
    expression: str, body: bytes, headers: dict[str, str], expected: Any
) -> None:
    template = '{"type": "t", "data": {"v": {{ (' + expression + ") | tojson }}}}"
    [item] = render(template, body, headers, {"page": "2"})
    assert item["data"]["v"] == expected


def test_tojson_writes_compact_unescaped_json() -> None:
    template = compile_template("{{ value | tojson }}")
    assert template.render(value={"a": [1, 2], "b": "<é & ü>"}) == '{"a":[1,2],"b":"<é & ü>"}'


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "1970-01-01T00:00:00+00:00"),
        (1714557600, "2024-05-01T10:00:00+00:00"),
        ("1714557600", "2024-05-01T10:00:00+00:00"),
        (1714557600.25, "2024-05-01T10:00:00.250000+00:00"),
    ],
)
def test_fromtimestamp_turns_unix_seconds_into_iso_utc(seconds: Any, expected: str) -> None:
    [item] = render('{"type": "t", "data": {}, "timestamp": {{ body.s | fromtimestamp | tojson }}}', {"s": seconds})
    assert item["timestamp"] == expected


def test_from_cloud_event_reads_the_body_as_a_cloudevent_in_a_template() -> None:
    items = render("{{ body | from_cloud_event(headers) }}", cloudevent(type="user_request"), CE_JSON)
    assert items == cloudevents_items(json.dumps(cloudevent(type="user_request")).encode(), CE_JSON)
    assert items[0]["id"] == "A234-1234-1234@https://github.com/cloudevents/spec/pull"


def test_from_cloud_event_keeps_its_own_error_code() -> None:
    with pytest.raises(MappingError) as caught:
        render("{{ body | from_cloud_event(headers) }}", cloudevent(source=None), CE_JSON)
    assert caught.value.code == "invalid_cloudevent"
    assert [err["loc"] for err in caught.value.errors] == [["source"]]


# --- template errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "body", "words"),
    [
        ('{"type": "t", "data": {"v": {{ nothing | tojson }}}}', b"", "'nothing' is undefined"),
        ('{"type": "t", "data": {"v": {{ body.missing | tojson }}}}', b"{}", "no attribute 'missing'"),
        ('{"type": "t",\n "data": {"v": "{{ body.missing }}"}}', b"{}", "on line 2"),
        ("{{ ''.__class__.__mro__ }}", b"", "unsafe"),
        ("{{ body.__class__.__subclasses__() }}", b"{}", "unsafe"),
        ("{{ headers.clear() }}", b"", "unsafe"),
        ('{"type": "t", "data": {"v": {{ 1 / 0 }}}}', b"", "division by zero"),
        ('{"type": "t", "timestamp": {{ body | fromtimestamp | tojson }}}', b"true", "UNIX seconds"),
        ('{"type": "t", "timestamp": {{ body | fromtimestamp | tojson }}}', b'"soon"', "soon"),
    ],
)
def test_a_failing_render_is_a_template_error_naming_the_problem(template: str, body: bytes, words: str) -> None:
    error = template_error(template, body)
    assert words in str(error)
    assert error.errors[0]["loc"] == ["template"]


def test_output_that_is_not_json_is_a_template_error_quoting_its_start() -> None:
    output = "event: " + "x" * 400
    error = template_error(output)
    assert "not render valid JSON" in str(error)
    assert output[:200] in str(error)
    assert output[:201] not in str(error)


@pytest.mark.parametrize(
    ("template", "loc", "words"),
    [
        ('{"data": {"x": 1}}', ["type"], "`type` (or `event`) is missing"),
        ('{"type": 7, "data": {}}', ["type"], "not a string"),
        ('{"type": "", "data": {}}', ["type"], "missing"),
        ('{"type": "t", "event": "t"}', ["type"], "both set"),
        ('{"type": "t", "data": [1]}', ["data"], "not an object"),
        ('{"event": "t", "payload": "text"}', ["data"], "not an object"),
        ('{"type": "t", "id": {"n": 1}}', ["id"], "not a string"),
        ('"user_request"', [], "JSON string"),
        ('[{"type": "t"}, 3]', [], "item 1"),
        ('{"type": "t", "data": {"v": NaN}}', None, "not render valid JSON (unexpected character"),
    ],
)
def test_output_that_is_not_an_event_is_a_template_error(template: str, loc: list[str] | None, words: str) -> None:
    error = template_error(template)
    assert words in str(error)
    if loc is not None:
        assert error.errors[0]["loc"] == loc


@pytest.mark.parametrize("source", ["{{ body.x ", "{% if %}{% endif %}", "{% for x in y %}", "{{ body | }}"])
def test_a_syntax_error_fails_at_compile_time(source: str) -> None:
    with pytest.raises(ValueError, match="syntax error on line 1") as caught:
        compile_template(source)
    assert not isinstance(caught.value, MappingError)


# --- CloudEvents ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        (
            {},
            {
                "type": "com.github.pull_request.opened",
                "data": {"user_id": "u1", "action": "review"},
                "id": "A234-1234-1234@https://github.com/cloudevents/spec/pull",
                "timestamp": "2024-05-01T10:00:00Z",
            },
        ),
        (
            {"type": "data_update", "time": None, "source": "/warehouse", "id": "42", "data": {"dataset": "sales"}},
            {"type": "data_update", "data": {"dataset": "sales"}, "id": "42@/warehouse"},
        ),
        (
            {"data": None, "data_base64": base64.b64encode(b'{"user_id": "u2", "action": "x"}').decode()},
            {"data": {"user_id": "u2", "action": "x"}},
        ),
        ({"data": None}, {"data": {}}),
    ],
)
def test_structured_mode_maps_attributes(attributes: dict[str, Any], expected: dict[str, Any]) -> None:
    [item] = cloudevents_items(json.dumps(cloudevent(**attributes)).encode(), CE_JSON)
    assert {key: item.get(key) for key in expected} == expected
    assert set(item) == {"type", "data", "id"} | ({"timestamp"} if "time" in cloudevent(**attributes) else set())


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/cloudevents+json; charset=UTF-8"},
        {"content-type": "application/json"},  # no ce-* headers: a JSON event with `specversion` is structured
    ],
)
def test_structured_mode_is_recognised_by_content_type_or_shape(headers: dict[str, str]) -> None:
    [item] = cloudevents_items(json.dumps(cloudevent()).encode(), headers)
    assert item["id"] == "A234-1234-1234@https://github.com/cloudevents/spec/pull"


def test_batch_mode_maps_every_event_in_order() -> None:
    batch = [cloudevent(id="1", type="user_request"), cloudevent(id="2", source="/other", time=None)]
    items = cloudevents_items(json.dumps(batch).encode(), CE_BATCH)
    assert [(item["id"], item["type"], "timestamp" in item) for item in items] == [
        ("1@https://github.com/cloudevents/spec/pull", "user_request", True),
        ("2@/other", "com.github.pull_request.opened", False),
    ]
    assert cloudevents_items(b"[]", CE_BATCH) == []


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        (
            {
                "Content-Type": "application/json",
                "ce-specversion": "1.0",
                "ce-id": "evt-9",
                "ce-source": "urn:shop:%C3%A9tal",
                "ce-type": "user_request",
                "ce-time": "2024-05-01T10:00:00Z",
                "ce-subject": "orders/9",
            },
            b'{"user_id": "u9", "action": "checkout", "amount_cents": 1200}',
            {
                "type": "user_request",
                "data": {"user_id": "u9", "action": "checkout", "amount_cents": 1200},
                "id": "evt-9@urn:shop:étal",
                "timestamp": "2024-05-01T10:00:00Z",
            },
        ),
        (
            {"CE-SpecVersion": "1.0", "CE-ID": "1", "CE-Source": "/cron", "CE-Type": "scheduled_tick"},
            b"",
            {"type": "scheduled_tick", "data": {}, "id": "1@/cron"},
        ),
    ],
)
def test_binary_mode_reads_attributes_from_headers_and_data_from_the_body(
    headers: dict[str, str], body: bytes, expected: dict[str, Any]
) -> None:
    assert cloudevents_items(body, headers) == [expected]


def test_a_binary_cloudevent_of_a_catalog_type_validates() -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "t1", "ce-source": "/cron", "ce-type": "scheduled_tick"}
    [item] = cloudevents_items(b'{"schedule": "hourly", "tick": "2024-05-01T10:00:00Z"}', headers)
    assert validated(item).model_dump()["schedule"] == "hourly"


@pytest.mark.parametrize(
    ("body", "headers", "locs", "words"),
    [
        (cloudevent(id=None), CE_JSON, {(0, "id")}, "missing: id"),
        (cloudevent(id=None, source=""), CE_JSON, {(0, "id"), (0, "source")}, "missing: id, source"),
        (cloudevent(specversion=None, type=None), CE_JSON, {(0, "specversion"), (0, "type")}, "specversion, type"),
        (cloudevent(specversion="0.3"), CE_JSON, {(0, "specversion")}, "invalid CloudEvent"),
        (cloudevent(id=7), CE_JSON, {(0, "id")}, "invalid CloudEvent"),
        ([cloudevent(), cloudevent(type=None)], CE_BATCH, {(1, "type")}, "missing: type"),
        ([cloudevent(), "event"], CE_BATCH, {(1, None)}, "invalid CloudEvent"),
        (cloudevent(data=None, data_base64=base64.b64encode(b"<xml/>").decode()), CE_JSON, {(0, "data_base64")}, ""),
        (cloudevent(data=None, data_base64="not base64!"), CE_JSON, {(0, "data_base64")}, ""),
        (cloudevent(data_base64="e30="), CE_JSON, {(0, "data_base64")}, ""),
        (cloudevent(data=[1, 2]), CE_JSON, {(0, "data")}, ""),
        (b"<event/>", {"content-type": "application/xml", "ce-specversion": "1.0"}, {(0, "data")}, "not JSON"),
    ],
)
def test_invalid_cloudevents_list_what_is_wrong(
    body: Any, headers: dict[str, str], locs: set[tuple[int, str | None]], words: str
) -> None:
    error = invalid_cloudevent(body, headers)
    assert {(err["index"], (err["loc"] or [None])[0]) for err in error.errors} == locs
    assert words in str(error)


def test_binary_mode_lists_missing_header_attributes() -> None:
    error = invalid_cloudevent(b"{}", {"ce-specversion": "1.0", "ce-type": "t"})
    assert sorted(err["loc"][0] for err in error.errors) == ["id", "source"]


@pytest.mark.parametrize(
    ("body", "headers", "words"),
    [
        (b"{not json", CE_JSON, "not valid JSON"),
        (cloudevent(), CE_BATCH, "JSON array"),
        ({"type": "user_request", "data": {}}, {"content-type": "application/json"}, "not a CloudEvent"),
        (b"", {}, "not valid JSON"),
    ],
)
def test_a_body_that_is_no_cloudevent_at_all_is_refused(body: Any, headers: dict[str, str], words: str) -> None:
    assert words in str(invalid_cloudevent(body, headers))
