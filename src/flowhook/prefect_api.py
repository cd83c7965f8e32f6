"""How flowhook reaches the Prefect API: at the URL flowhook is configured with, with Prefect's own
credentials and TLS settings (`PREFECT_API_AUTH_STRING`, `PREFECT_API_KEY`, `PREFECT_API_SSL_CERT_FILE`,
`PREFECT_API_TLS_INSECURE_SKIP_VERIFY`, `PREFECT_CLIENT_CUSTOM_HEADERS`).

Calls through Prefect's client (`get_client`, `run_deployment`, blocks) take the URL from
`prefect_settings(api_url)`; flowhook's own HTTP clients (the gateway's forwarder, the local stack)
are built here and carry the headers Prefect's client would send (as `PrefectClient.__init__` and
`PrefectHttpxAsyncClient` build them in Prefect 3.9), so a protected server accepts both alike.
Importing Prefect costs seconds: it happens when a function here is first called, not on import.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx

REFUSED = (401, 403)
"""Statuses with which a Prefect server (or a proxy before it) refuses a request's credentials."""


def api_headers(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers Prefect's client sends: API version, user agent, custom headers and `Authorization`
    (Basic for an auth string, which wins, else Bearer for an API key).

    From Prefect's current settings (environment and profile), or, given `env`, from those variables alone
    (a child process's environment, which reads no profile of ours).
    """
    import prefect
    from prefect.client.constants import SERVER_API_VERSION
    from prefect.settings import get_current_settings

    headers = {
        "X-PREFECT-API-VERSION": SERVER_API_VERSION,
        "User-Agent": f"prefect/{prefect.__version__} (API {SERVER_API_VERSION}) flowhook",
    }
    if env is None:
        settings = get_current_settings()
        headers.update({str(k): str(v) for k, v in settings.client.custom_headers.items()})
        auth_string = settings.api.auth_string.get_secret_value() if settings.api.auth_string else None
        api_key = settings.api.key.get_secret_value() if settings.api.key else None
    else:
        auth_string, api_key = env.get("PREFECT_API_AUTH_STRING"), env.get("PREFECT_API_KEY")
    if auth_string:
        headers["Authorization"] = "Basic " + base64.b64encode(auth_string.encode()).decode()
    elif api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def tls_context() -> ssl.SSLContext:
    """The TLS verification Prefect's client uses: none when told to skip it, else its CA file (or certifi's)."""
    import certifi
    from prefect.settings import get_current_settings

    settings = get_current_settings().api
    if settings.tls_insecure_skip_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=settings.ssl_cert_file or certifi.where())


def async_client(api_url: str, *, timeout: float = 10.0) -> httpx.AsyncClient:
    """A long-lived client of the Prefect API at `api_url` (paths relative to it) with Prefect's credentials."""
    return httpx.AsyncClient(
        base_url=api_url.rstrip("/") + "/", headers=api_headers(), verify=tls_context(), timeout=timeout
    )


def sync_client(api_url: str, *, timeout: float = 10.0, env: Mapping[str, str] | None = None) -> httpx.Client:
    """As `async_client`, blocking; with `env`, the credentials of that environment (see `api_headers`)."""
    verify: ssl.SSLContext | bool = tls_context() if env is None else _env_verify(env)
    return httpx.Client(base_url=api_url.rstrip("/") + "/", headers=api_headers(env), verify=verify, timeout=timeout)


def _env_verify(env: Mapping[str, str]) -> ssl.SSLContext | bool:
    if env.get("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "").lower() in ("1", "true", "yes", "on"):
        return False
    cafile = env.get("PREFECT_API_SSL_CERT_FILE") or env.get("SSL_CERT_FILE")
    return ssl.create_default_context(cafile=cafile) if cafile else True


@contextmanager
def prefect_settings(api_url: str | None) -> Iterator[None]:
    """Prefect's client, `run_deployment` and blocks talk to `api_url` (flowhook's setting) inside this block."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url} if api_url else {}):
        yield


def refused(exc: BaseException) -> bool:
    """Whether `exc` is the Prefect API refusing the credentials sent (401 or 403), not an outage."""
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in REFUSED


def refusal(api_url: str, status: int) -> str:
    """What to do when Prefect at `api_url` answered `status` (401/403) to flowhook's credentials."""
    from prefect.settings import get_current_settings

    api = get_current_settings().api
    sent = "PREFECT_API_AUTH_STRING" if api.auth_string else "PREFECT_API_KEY" if api.key else None
    told = f"it refused {sent}" if sent else "neither PREFECT_API_AUTH_STRING nor PREFECT_API_KEY is set"
    return (
        f"the Prefect API at {api_url} answered {status} ({told}): set PREFECT_API_AUTH_STRING to the server's "
        "PREFECT_SERVER_API_AUTH_STRING (user:password), or PREFECT_API_KEY for a server that takes API keys"
    )


def explain(exc: BaseException, api_url: str | None = None) -> str:
    """One line for a failed Prefect call: how to fix refused credentials, else the error's type and text."""
    if isinstance(exc, httpx.HTTPStatusError) and refused(exc):
        url = exc.request.url
        return refusal(api_url or f"{url.scheme}://{url.netloc.decode()}", exc.response.status_code)
    return f"{type(exc).__name__}: {exc}"
