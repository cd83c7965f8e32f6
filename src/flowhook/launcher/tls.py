"""TLS contexts built once in the warm template and shared by its children's Prefect clients.

Prefect builds a TLS context for every API client it makes, even for an http:// API: `ssl.create_default_context
(cafile=certifi.where())` parses the CA bundle, ~30 ms of CPU each, 7 to 8 times per flow run (measured here): a
third of a forked run's CPU. Contexts made from the same CA file are interchangeable and Prefect's clients never
change theirs, so the template builds each once before it forks and the children reuse it.

Only Prefect's client modules see the shared contexts (their module-level `ssl` name is replaced); `ssl` itself,
and so user code, is untouched. A context made without a CA file (Prefect's skip-verify path, which changes it)
is built anew each time.
"""

from __future__ import annotations

import importlib
import os
import ssl
from typing import Any

import certifi
from prefect.settings import get_current_settings

PREFECT_TLS_MODULES = ("prefect.client.orchestration", "prefect._internal.version_checking")
"""The modules whose `ssl.create_default_context(cafile=...)` calls are shared (pinned by tests/launcher)."""


class SharedContexts:
    """Stands in for the `ssl` module where Prefect's clients build their contexts."""

    def __init__(self) -> None:
        self.built: dict[tuple[ssl.Purpose, str], ssl.SSLContext] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(ssl, name)

    def create_default_context(
        self,
        purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
        *,
        cafile: str | os.PathLike[str] | None = None,
        capath: str | None = None,
        cadata: str | bytes | None = None,
    ) -> ssl.SSLContext:
        if cafile is None or capath is not None or cadata is not None:
            return ssl.create_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)
        key = (purpose, os.fspath(cafile))
        if key not in self.built:
            self.built[key] = ssl.create_default_context(purpose, cafile=cafile)
        return self.built[key]


def share_prefect_tls_contexts(*cafiles: str) -> SharedContexts:
    """Give Prefect's client modules the shared contexts, building those for `cafiles` now (before a fork);
    by default the one Prefect's clients verify with: PREFECT_API_SSL_CERT_FILE, or certifi's bundle."""
    shared = SharedContexts()
    for name in PREFECT_TLS_MODULES:
        module = importlib.import_module(name)
        module.ssl = shared  # type: ignore[attr-defined]
    for cafile in cafiles or (get_current_settings().api.ssl_cert_file or certifi.where(),):
        shared.create_default_context(cafile=cafile)
    return shared
