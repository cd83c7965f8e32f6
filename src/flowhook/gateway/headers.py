"""Request headers as the delivery path reads them: built once per request from the ASGI scope's raw pairs."""

from __future__ import annotations

from collections.abc import Sequence


class Headers(dict[str, str]):
    """Header values by lower-case name, looked up in any case.

    A repeated name keeps its last value, which is what the verifier, the templates, CloudEvents and the
    quarantine read before (each made a dict of the pairs); `getlist` gives every value, for the checks where
    any one of them matters (Content-Type, Content-Encoding)."""

    __slots__ = ("raw",)

    def __init__(self, raw: Sequence[tuple[bytes, bytes]] = ()) -> None:
        # ASGI servers give names lower-cased (uvicorn, httpx's and Starlette's test transports do).
        super().__init__((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw)
        self.raw = raw

    @property
    def repeated(self) -> bool:
        """Whether some name came more than once."""
        return len(self.raw) > len(self)

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def getlist(self, name: str) -> list[str]:
        """Every value of `name`, in the order sent."""
        key = name.lower().encode("latin-1")
        return [value.decode("latin-1") for field, value in self.raw if field.lower() == key]
