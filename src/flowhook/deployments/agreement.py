"""Whether the catalog and Prefect agree: each event type's worker deployment and its triggers, as the server has them.

A type with no `process-batch/<type>` deployment is accepted by the gateway, but its batches wait and the
sweeper fails on them; the gateway warns about it at start-up (`warn_undeployed`, in the background, so an
unreachable Prefect never delays it) and `flowhook status` shows every type beside its deployment and triggers.
The calls go through flowhook's Prefect API client (`flowhook.prefect_api`): Prefect's credentials and TLS,
without importing Prefect's client into the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from flowhook.names import WORKER_FLOW, worker_deployment

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 5.0
"""How long the gateway's start-up check and `flowhook status` wait for Prefect before giving up."""
_PAGE = 200


@dataclass(frozen=True)
class Trigger:
    """An automation that runs a deployment (what `prefect deploy` makes of a trigger in prefect.yaml)."""

    name: str
    enabled: bool


@dataclass(frozen=True)
class TypeDeployment:
    """An event type beside its worker deployment on the Prefect server and that deployment's triggers."""

    event_type: str
    deployment: str
    deployed: bool
    paused: bool = False
    triggers: tuple[Trigger, ...] = ()

    @property
    def triggered(self) -> bool:
        """Whether a sealed batch of the type starts a run: deployed, not paused, with an enabled trigger."""
        return self.deployed and not self.paused and any(t.enabled for t in self.triggers)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.event_type,
            "deployment": self.deployment,
            "deployed": self.deployed,
            "paused": self.paused,
            "triggers": [{"name": t.name, "enabled": t.enabled} for t in self.triggers],
        }


async def read_type_deployments(client: httpx.AsyncClient, types: Sequence[str]) -> list[TypeDeployment]:
    """Each of `types` with its worker deployment and triggers on the Prefect API `client` talks to."""
    filters = {"flows": {"name": {"any_": [WORKER_FLOW]}}, "deployments": {"name": {"any_": list(types)}}}
    deployments = {d["name"]: d for d in await _read_all(client, "deployments/filter", filters)}
    by_deployment: dict[str, list[Trigger]] = {}
    for automation in await _read_all(client, "automations/filter", {}):
        for action in automation.get("actions", []):
            if action.get("type") == "run-deployment" and action.get("deployment_id"):
                trigger = Trigger(automation["name"], bool(automation.get("enabled")))
                by_deployment.setdefault(action["deployment_id"], []).append(trigger)
    found = []
    for name in types:
        deployment = deployments.get(name)
        if deployment is None:
            found.append(TypeDeployment(name, worker_deployment(name), deployed=False))
            continue
        triggers = tuple(sorted(by_deployment.get(deployment["id"], []), key=lambda t: t.name))
        found.append(
            TypeDeployment(
                name, worker_deployment(name), deployed=True, paused=bool(deployment.get("paused")), triggers=triggers
            )
        )
    return found


async def _read_all(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        response = await client.post(path, json={**body, "limit": _PAGE, "offset": len(rows)})
        response.raise_for_status()
        page: list[dict[str, Any]] = response.json()
        rows.extend(page)
        if len(page) < _PAGE:
            return rows


async def type_deployments(
    api_url: str, types: Sequence[str], *, timeout: float = CHECK_TIMEOUT_SECONDS
) -> list[TypeDeployment]:
    """`read_type_deployments` at `api_url`, within `timeout` seconds (TimeoutError past it)."""
    from flowhook.prefect_api import async_client

    # Building the client imports Prefect (seconds) the first time: not on the caller's event loop.
    client = await asyncio.to_thread(async_client, api_url, timeout=timeout)
    async with client:
        return await asyncio.wait_for(read_type_deployments(client, types), timeout)


async def warn_undeployed(api_url: str, types: Sequence[str], *, timeout: float = CHECK_TIMEOUT_SECONDS) -> None:
    """Log a warning for each type that has no worker deployment at `api_url`; never raises for an outage."""
    from flowhook.prefect_api import explain

    try:
        found = await type_deployments(api_url, types, timeout=timeout)
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        reason = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else explain(exc, api_url)
        logger.warning("could not check the event types' deployments at %s: %s", api_url, reason)
        return
    for row in found:
        if not row.deployed:
            logger.warning(
                "event type %r has no deployment %s at %s: its batches wait and the sweeper cannot launch them; "
                "run `flowhook deployments generate` and `prefect deploy --all`",
                row.event_type,
                row.deployment,
                api_url,
            )
