"""The one error type of the gateway: every refusal of a delivery (and every error answer of the app) is a
`Refusal`, raised where the reason is found and turned into the JSON answer in one place (`Refusal.body`).

The shape is `{code, message, errors?, quarantine_id?}`; domain errors (`DeliveryError`, `SignatureError`,
`SecretUnavailable`) stay what the rest of flowhook raises, and the delivery path maps each to a Refusal.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["INTERNAL", "Refusal", "error_body"]


def error_body(code: str, message: str, **extra: Any) -> bytes:
    """The gateway's error JSON; `extra` keys with a None value are left out."""
    content = {"code": code, "message": message, **{key: value for key, value in extra.items() if value is not None}}
    return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class Refusal(Exception):
    """A request the gateway answers with an error: its status, machine-readable `code`, a sentence for people,
    the headers the answer carries (Retry-After, Allow), field-level `errors`, and where it was kept aside
    (`quarantine_id`: authentic, quarantined)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
        quarantine_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.errors = errors
        self.quarantine_id = quarantine_id

    @property
    def quarantined(self) -> bool:
        """Whether the delivery was authentic and kept in quarantine (its status says why it was refused)."""
        return self.quarantine_id is not None

    def body(self) -> bytes:
        """The answer's JSON."""
        return error_body(self.code, self.message, errors=self.errors, quarantine_id=self.quarantine_id)

    def __repr__(self) -> str:
        return f"Refusal({self.status}, {self.code!r}, {self.message!r})"


INTERNAL = Refusal(500, "internal_error", "The gateway failed unexpectedly; the delivery was not accepted.")
"""The answer to anything unexpected (a rendered answer, never raised)."""
