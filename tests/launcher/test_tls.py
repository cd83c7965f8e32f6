"""Prefect's clients in a forked run share the TLS context the template built; `ssl` itself is untouched."""

from __future__ import annotations

import inspect
import ssl
from collections.abc import Iterator

import certifi
import prefect._internal.version_checking
import prefect.client.orchestration
import pytest

from flowhook.launcher.tls import PREFECT_TLS_MODULES, SharedContexts, share_prefect_tls_contexts


@pytest.fixture
def shared() -> Iterator[SharedContexts]:
    modules = [prefect.client.orchestration, prefect._internal.version_checking]
    try:
        yield share_prefect_tls_contexts(certifi.where())
    finally:
        for module in modules:
            module.ssl = ssl  # type: ignore[attr-defined]


def test_a_context_from_the_ca_bundle_is_built_once_and_reused(shared: SharedContexts) -> None:
    built = shared.built[(ssl.Purpose.SERVER_AUTH, certifi.where())]
    assert prefect.client.orchestration.ssl.create_default_context(cafile=certifi.where()) is built
    assert prefect._internal.version_checking.ssl.create_default_context(cafile=certifi.where()) is built
    assert built.verify_mode is ssl.CERT_REQUIRED and built.check_hostname


def test_a_context_without_a_ca_file_is_new_each_time_and_ssl_itself_is_untouched(shared: SharedContexts) -> None:
    # Prefect's skip-verify path changes the context it gets: never a shared one.
    first = prefect.client.orchestration.ssl.create_default_context()
    first.check_hostname = False
    assert prefect.client.orchestration.ssl.create_default_context().check_hostname
    assert (
        ssl.create_default_context(cafile=certifi.where())
        is not shared.built[(ssl.Purpose.SERVER_AUTH, certifi.where())]
    )
    assert prefect.client.orchestration.ssl.CERT_NONE is ssl.CERT_NONE  # the rest of `ssl` as it is


def test_prefect_builds_its_verified_contexts_from_a_ca_file_and_leaves_them_as_they_are() -> None:
    # Pins Prefect 3.9.1: if its clients start changing a verified context, sharing one would leak the change.
    for name in PREFECT_TLS_MODULES:
        source = inspect.getsource(__import__(name, fromlist=["_"]))
        assert "ssl.create_default_context(cafile=cert_file)" in source, name
        lines = [line.strip() for line in source.splitlines()]
        after = [lines[i + 1] for i, line in enumerate(lines) if "create_default_context(cafile=" in line]
        # Each is handed straight to httpx, unchanged.
        assert after and all(
            line.startswith(('httpx_settings.setdefault("verify", ctx)', 'httpx_kwargs["verify"] = ctx'))
            for line in after
        ), name
