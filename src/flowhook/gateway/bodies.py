"""A delivery body read as JSON: one parser for every body format, with each way it can fail named.

orjson refuses invalid UTF-8, lone surrogates (escaped or raw), NaN and Infinity, and numbers a double
cannot hold (`1e400`, an integer of 5,000 digits); it stops at depth 1,024 without using the C stack.
What parses is then held to `MAX_DEPTH` levels, because later steps recurse through it (pydantic,
Jinja's `tojson`, the spool's orjson writer, which stops at 254) and no sender needs more.

A duplicate key keeps its last value (as `JSON.parse` does). An integer outside 64 bits is refused
(`number_out_of_range`) rather than read as a double, as orjson would: a 20-digit id must not arrive
rounded. Only a body with a run of 19 digits is read a second time, by the standard library, to tell.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

MAX_DEPTH = 128
"""How deeply arrays and objects may nest in a body (or in a CloudEvent's `data_base64`)."""


_LONG_DIGITS = re.compile(rb"\d{19}")
_INT_RANGE = range(-(2**63), 2**64)  # what orjson reads as an integer


class BodyError(ValueError):
    """A body that is not usable JSON; `code` is `invalid_json`, `too_deep` or `number_out_of_range`, `detail` the
    parser's words."""

    def __init__(self, code: str, message: str, detail: str) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


def parse_json(body: bytes | str, *, what: str = "The body") -> Any:
    """The JSON document in `body`, or a BodyError saying why there is none."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            raise _too_deep(what) from None
        raise BodyError("invalid_json", f"{what} is not valid JSON: {exc}.", str(exc)) from None
    if _deeper_than(document, MAX_DEPTH):
        raise _too_deep(what)
    if _LONG_DIGITS.search(body.encode() if isinstance(body, str) else body):
        _check_integers(body, what)
    return document


def _check_integers(body: bytes | str, what: str) -> None:
    """Raise if an integer literal in `body` (valid JSON, at most MAX_DEPTH deep) is outside 64 bits."""

    def parse_int(literal: str) -> int:
        if len(literal) > 25 or int(literal) not in _INT_RANGE:
            raise BodyError(
                "number_out_of_range",
                f"{what} holds the integer {literal[:30]}{'…' if len(literal) > 30 else ''}, outside 64 bits; "
                "send it as a string.",
                "integer outside 64 bits",
            )
        return int(literal)

    json.loads(body, parse_int=parse_int)


def _too_deep(what: str) -> BodyError:
    detail = f"nested more than {MAX_DEPTH} levels deep"
    return BodyError("too_deep", f"{what} is JSON {detail}; flowhook reads no deeper.", detail)


def _deeper_than(document: Any, limit: int) -> bool:
    """Whether containers nest past `limit` levels; level by level, so depth costs no stack."""
    level = [document] if isinstance(document, dict | list) else []
    for _ in range(limit):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return bool(level)
