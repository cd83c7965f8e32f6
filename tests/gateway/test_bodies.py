"""parse_json: the one JSON reader of delivery bodies, and each way a body can fail it."""

from __future__ import annotations

from typing import Any

import pytest

from flowhook.gateway.bodies import MAX_DEPTH, BodyError, parse_json


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1, "a": 2}', {"a": 2}),  # the last duplicate counts
        (b"18446744073709551615", 2**64 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"1.8446744073709551616e19", 2.0**64),  # a double, written as one
        (b'{"id": "100000000000000000000"}', {"id": "100000000000000000000"}),  # long digits in a string
        (b"1e308", 1e308),
        ('"\u00e9"'.encode(), "\u00e9"),
        (b'"\\ud83d\\ude00"', "\U0001f600"),  # an escaped surrogate pair is one character
    ],
)
def test_what_json_allows_is_read(body: bytes, expected: Any) -> None:
    assert parse_json(body) == expected


def test_nesting_up_to_the_limit_is_read() -> None:
    document = parse_json(nested(MAX_DEPTH))
    depth = 0
    while isinstance(document, list):
        depth += 1
        document = document[0] if document else None
    assert depth == MAX_DEPTH


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b"", "invalid_json", "empty"),
        (b"{", "invalid_json", "not valid JSON"),
        (b"NaN", "invalid_json", "not valid JSON"),
        (b"[Infinity]", "invalid_json", "not valid JSON"),
        (b"1e400", "invalid_json", "infinity"),
        (b"-" + b"9" * 5000, "invalid_json", "infinity"),
        (b'"\xff"', "invalid_json", "UTF-8"),
        (b'"\xed\xa0\x80"', "invalid_json", "UTF-8"),  # a surrogate encoded as bytes
        (b'"\\ud800"', "invalid_json", "surrogate"),
        (b"\xef\xbb\xbf{}", "invalid_json", "not valid JSON"),  # a byte order mark
        (b"18446744073709551616", "number_out_of_range", "outside 64 bits"),  # orjson alone: a rounded double
        (b'{"id": -9223372036854775809}', "number_out_of_range", "-9223372036854775809"),
        (b'[1, "x", {"a": [' + b"1" * 40 + b"]}]", "number_out_of_range", "outside 64 bits"),
        (nested(MAX_DEPTH + 1), "too_deep", f"more than {MAX_DEPTH} levels"),
        (b'{"a": ' * 1000 + b"1" + b"}" * 1000, "too_deep", "levels"),
        (nested(10_000), "too_deep", "levels"),  # past orjson's own limit
        (b'[1, {"a": [2, ' + nested(MAX_DEPTH) + b"]}]", "too_deep", "levels"),  # deep in one branch only
    ],
)
def test_what_cannot_be_read_says_why(body: bytes, code: str, words: str) -> None:
    with pytest.raises(BodyError) as caught:
        parse_json(body)
    assert caught.value.code == code
    assert words in str(caught.value)
    assert str(caught.value).startswith("The body ")


def test_a_str_is_read_and_named_as_asked() -> None:
    assert parse_json('{"a": [1]}') == {"a": [1]}
    with pytest.raises(BodyError, match=r"^The output is not valid JSON"):
        parse_json('{"a": "\ud800"}', what="The output")
