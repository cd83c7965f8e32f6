"""A delivery body read as JSON: one parser for every body format, with each way it can fail named.

orjson refuses invalid UTF-8, lone surrogates (escaped or raw), NaN and Infinity, and numbers a double
cannot hold (`1e400`, an integer of 5,000 digits); it stops at depth 1,024 without using the C stack.
What parses is then held to `MAX_DEPTH` levels, because later steps recurse through it (pydantic,
Jinja's `tojson`, the spool's orjson writer, which stops at 254) and no sender needs more.

A duplicate key keeps its last value (as `JSON.parse` does). An integer outside 64 bits is refused
(`number_out_of_range`) rather than read as a double, as orjson would: a 20-digit id must not arrive
rounded. Such an integer can only have become a double at or past 2**64 or -2**63, so only a body holding
one of those is read a second time, by the standard library, to tell. One walk over what was parsed finds
those doubles and the depth (a regex for runs of digits over the raw bytes cost twice the parse).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

MAX_DEPTH = 128
"""How deeply arrays and objects may nest in a body (or in a CloudEvent's `data_base64`)."""


_INT_RANGE = range(-(2**63), 2**64)  # what orjson reads as an integer
_HIGH, _LOW = float(2**64), float(-(2**63))  # an integer literal outside _INT_RANGE is read as a double past these


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
    too_deep, suspect = _shape(document, MAX_DEPTH)
    if too_deep:
        raise _too_deep(what)
    if suspect:
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


def _shape(document: Any, limit: int) -> tuple[bool, bool]:
    """Whether containers nest past `limit` levels, and whether a double at or past 2**64 or -2**63 (what an
    integer outside 64 bits became) is in it; level by level, so depth costs no stack."""
    if type(document) is float:
        return False, document >= _HIGH or document <= _LOW
    level = [document] if type(document) is dict or type(document) is list else []
    suspect = False
    for _ in range(limit):
        deeper = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                kind = type(child)
                if kind is dict or kind is list:
                    deeper.append(child)
                elif kind is float and (child >= _HIGH or child <= _LOW):
                    suspect = True
        if not deeper:
            return False, suspect
        level = deeper
    return bool(level), suspect
