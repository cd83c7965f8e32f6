"""Webhook secrets: resolved from a reference (environment, file, Prefect Secret block) or managed
by flowhook in `<data>/secrets/<source>.json`, where `rotate` keeps the old secret valid for a grace
period so senders can switch over. Secrets are never logged.

A referenced value is one secret, whatever characters it holds ("It's a Secret to Everybody" is
one secret, not five); several are several references. Only Standard Webhooks defines several
keys in one value: `whsec_` keys separated by whitespace."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flowhook.durable import write_file
from flowhook.gateway.schemes import generate_secret, signing_key
from flowhook.gateway.sources import SignatureConfig, SourceConfig
from flowhook.prefect_api import explain, prefect_settings, refused
from flowhook.settings import Settings

REFERENCE_TTL = 30.0
_MAX_KEY_SETS = 256


class SecretUnavailable(RuntimeError):
    """A source's secret reference cannot be resolved (unset variable, missing file or block)."""


_WHSEC = "whsec_"


def _secrets_in(value: str, signature: SignatureConfig, source: str, where: str) -> list[str]:
    """The secrets one value holds: the value itself, or for Standard Webhooks its whitespace-separated
    `whsec_` keys (newest first); each checked to be a key of the source's scheme, never echoed."""
    if not value.strip():
        raise SecretUnavailable(f"the secret of source {source!r} ({where}) is blank")
    secrets = [value]
    if signature.scheme == "standard":
        secrets = value.split()
        if len(secrets) > 1 and not all(secret.startswith(_WHSEC) for secret in secrets):
            raise SecretUnavailable(
                f"the secret of source {source!r} ({where}) holds several words: several Standard Webhooks "
                "secrets in one value are `whsec_` keys separated by whitespace"
            )
    for secret in secrets:
        try:
            signing_key(signature, secret)
        except ValueError as exc:
            raise SecretUnavailable(f"the secret of source {source!r} ({where}) is not usable: {exc}") from None
    return secrets


def _prefect_block(name: str, api_url: str | None) -> str:
    from prefect.blocks.system import Secret

    load: Any = Secret.load
    with prefect_settings(api_url):  # flowhook's setting names the server, whatever Prefect's says
        block = load(name, _sync=True)  # `_sync`: the sync path even inside the gateway's event loop
    value = block.get()
    return value if isinstance(value, str) else json.dumps(value)


def _why(exc: Exception) -> str:
    """The error's type, or how to fix refused credentials: never its text, which might quote a secret."""
    return explain(exc) if refused(exc) else type(exc).__name__


class SecretStore:
    """The secrets every source accepts, newest first."""

    def __init__(
        self,
        root: Path,
        *,
        grace_seconds: float,
        default: str | None = None,
        generate: Callable[[SourceConfig], str],
        prefect_api_url: str | None = None,
    ) -> None:
        self._root = root
        self._prefect_api_url = prefect_api_url
        self._grace = grace_seconds
        self._default = default
        self._generate = generate
        # Managed secrets per source, re-read when the file changes (a `flowhook secret rotate`):
        # (file mtime, current secret, [(previous secret, expiry)]).
        self._cache: dict[str, tuple[float, str, list[tuple[str, float]]]] = {}
        self._resolved: dict[tuple[str, ...], tuple[float, list[str]]] = {}
        self._defaults: dict[tuple[str, str], list[str]] = {}  # the default secret's, per (scheme, source)
        self._keys: dict[tuple[str, ...], list[bytes]] = {}  # HMAC keys per (scheme, *secrets)
        self._paths: dict[str, str] = {}  # managed secrets' files, per source

    def path(self, source: str) -> Path:
        return self._root / f"{source}.json"

    def secrets(self, source: str, config: SourceConfig, *, now: float | None = None) -> list[str]:
        """The secrets deliveries from `source` may be signed with; a managed one is made on first use."""
        now = time.time() if now is None else now
        references = config.secret_references
        if not references and self._default is not None:
            secrets = self._defaults.get((config.signature.scheme, source))
            if secrets is None:
                secrets = _secrets_in(self._default, config.signature, source, "the default webhook secret")
                self._defaults[config.signature.scheme, source] = secrets
            return secrets
        if not references:
            return self._managed(source, config, now=now)
        # References are re-read every REFERENCE_TTL seconds, so a rotation there is picked up.
        key = (config.signature.scheme, *references)
        cached = self._resolved.get(key)
        if cached is None or now - cached[0] > REFERENCE_TTL:
            secrets = [
                secret
                for reference in references
                for secret in _secrets_in(self._resolve(source, reference), config.signature, source, reference)
            ]
            cached = (now, secrets)
            self._resolved[key] = cached
        return cached[1]

    def keys(self, source: str, config: SourceConfig, *, now: float | None = None) -> list[bytes]:
        """The HMAC keys of `secrets` (what verification uses), derived once for each set of secrets."""
        secrets = self.secrets(source, config, now=now)
        key = (config.signature.scheme, *secrets)
        keys = self._keys.get(key)
        if keys is None:
            if len(self._keys) >= _MAX_KEY_SETS:  # rotations: the old sets are not asked for again
                self._keys.clear()
            keys = self._keys[key] = [signing_key(config.signature, secret) for secret in secrets]
        return keys

    def _resolve(self, source: str, reference: str) -> str:
        """The text a reference holds: exactly, except that a file's trailing newline is not part of it."""
        kind, _, name = reference.partition(":")
        if kind == "env":
            value = os.environ.get(name)
            if not value:
                raise SecretUnavailable(f"environment variable {name} (secret of source {source!r}) is not set")
            return value
        if kind == "file":
            try:
                return Path(name).read_text().rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise SecretUnavailable(f"cannot read the secret file of source {source!r}: {why}") from None
        if kind == "block":
            try:
                return _prefect_block(name, self._prefect_api_url)
            except Exception as exc:
                raise SecretUnavailable(f"cannot load Prefect Secret block {name!r}: {_why(exc)}") from None
        raise SecretUnavailable(f"secret reference of source {source!r} must start with env:, file: or block:")

    def rotate(self, source: str, config: SourceConfig, *, now: float | None = None) -> str:
        """Make a new managed secret; the current one stays valid for the grace period. Returns the new one."""
        if config.secret is not None:
            where = ", ".join(config.secret_references)
            raise SecretUnavailable(f"source {source!r} takes its secret from {where}: rotate it there")
        now = time.time() if now is None else now
        state = self._read(source) or {"current": None, "previous": []}
        previous = [p for p in state.get("previous", []) if p["expires"] > now]
        if state.get("current"):
            previous.insert(0, {"secret": state["current"], "expires": now + self._grace})
        secret = self._generate(config)
        self._write(source, {"current": secret, "previous": previous, "rotated_at": now})
        return secret

    def _managed(self, source: str, config: SourceConfig, *, now: float) -> list[str]:
        # Stat'ed on every delivery, so a rotation is seen on the next one: by a cached text path (a Path
        # built and stat'ed per delivery was 6 % of the gateway's profile).
        path = self._paths.get(source)
        if path is None:
            path = self._paths[source] = str(self.path(source))
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            with self._creating():  # several gateway processes start at once: one makes the secret
                if not os.path.exists(path):
                    self.rotate(source, config, now=now)
            mtime = os.stat(path).st_mtime
        cached = self._cache.get(source)
        if cached is None or cached[0] != mtime:
            state = self._read(source) or {}
            previous = [(p["secret"], p["expires"]) for p in state.get("previous", [])]
            cached = (mtime, state["current"], previous)
            self._cache[source] = cached
        _, current, previous = cached
        return [current, *(secret for secret, expires in previous if expires > now)]

    @contextlib.contextmanager
    def _creating(self) -> Iterator[None]:
        """An exclusive lock across processes while a managed secret is made (its file, and its `.tmp`)."""
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._root / ".create.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self, source: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.path(source).read_text())
        except FileNotFoundError:
            return None
        return data

    def _write(self, source: str, state: dict[str, Any]) -> None:
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file(self.path(source), json.dumps(state).encode(), mode=0o600)


def secret_store(settings: Settings) -> SecretStore:
    """The secrets of every source under these settings (the gateway's, the CLI's, the sources')."""
    default = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    return SecretStore(
        settings.secrets_dir,
        grace_seconds=settings.secret_rotation_grace_hours * 3600,
        default=default,
        generate=lambda config: generate_secret(config.signature),
        prefect_api_url=settings.prefect_api_url,
    )


def signing_secret(settings: Settings, source: str) -> str:
    """The secret a sender to `source` signs with now (the newest)."""
    return secret_store(settings).secrets(source, settings.source_configs()[source])[0]
