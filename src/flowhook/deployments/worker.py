"""The worker deployment of each event type, as prefect.yaml spells it: derived from the catalog, never copied.

Each type gets `process-batch/<type>` on the local pool, tagged with its name, and one trigger that runs it for
every `flowhook.batch.ready` event whose `flowhook.event-type` label is the type; its declared policies (the
deployment's description and concurrency limit) go into the entry. Every name comes from `flowhook.names`.
"""

from __future__ import annotations

from typing import Any

import yaml

from flowhook.events import Catalog, EventType
from flowhook.names import (
    BATCH_READY,
    BATCH_RESOURCE,
    EVENT_TYPE_LABEL,
    RUN_TAG,
    WORK_POOL,
    WORKER_ENTRYPOINT,
    worker_deployment,
)

POOL_ANCHOR = "local_pool"
"""The anchor of the local work pool in prefect.yaml's hand-written `definitions`; generated entries refer to it."""


def deployment_description(event_type: EventType) -> str:
    """The declared description, else what the deployment processes, from the model's docstring."""
    if event_type.deployment_description is not None:
        return event_type.deployment_description.strip()
    return f"Process batches of `{event_type.name}` events. {event_type.description}"


def worker_trigger(name: str) -> dict[str, Any]:
    """The trigger that runs `process-batch/<name>` on each sealed batch of that type."""
    return {
        "type": "event",
        "name": f"flowhook: a {name} batch is ready",
        "description": f"Run {worker_deployment(name)} on each sealed {name} batch ({BATCH_READY}).",
        "enabled": True,
        "posture": "Reactive",
        "expect": [BATCH_READY],
        "match": {"prefect.resource.id": f"{BATCH_RESOURCE}.*", EVENT_TYPE_LABEL: name},
        "threshold": 1,
        "parameters": {"batch": "{{ event.payload }}"},
    }


def worker_entry(event_type: EventType) -> dict[str, Any]:
    """The deployment of `event_type` as prefect.yaml holds it once loaded (the pool's anchor merged)."""
    entry: dict[str, Any] = {
        "name": event_type.name,
        "entrypoint": WORKER_ENTRYPOINT,
        "work_pool": {"name": WORK_POOL},
        "description": deployment_description(event_type),
        "tags": [RUN_TAG, event_type.name],
    }
    if event_type.concurrency_limit is not None:
        entry["concurrency_limit"] = event_type.concurrency_limit
    entry["triggers"] = [worker_trigger(event_type.name)]
    return entry


def worker_block(catalog: Catalog, *, indent: int = 2) -> str:
    """The YAML text of every type's entry under `deployments:`, blank-line separated, in name order."""
    return "\n".join(_entry_text(worker_entry(catalog.get(name)), indent) for name in catalog.names)


def _entry_text(entry: dict[str, Any], indent: int) -> str:
    pad = " " * indent
    lines = [f"{pad}- name: {_scalar(entry['name'])}"]
    for key, value in entry.items():
        if key == "name":
            continue
        if key == "work_pool":
            lines.append(f"{pad}  work_pool: *{POOL_ANCHOR}")
        elif key == "triggers":
            lines.append(f"{pad}  triggers:")
            for trigger in value:
                first, *rest = trigger.items()
                lines.append(f"{pad}    - {first[0]}: {_scalar(first[1])}")
                lines.extend(f"{pad}      {k}: {_scalar(v)}" for k, v in rest)
        else:
            lines.append(f"{pad}  {key}: {_scalar(value)}")
    return "\n".join(lines) + "\n"


def _scalar(value: object) -> str:
    """`value` on one line of YAML: a plain or quoted scalar, or a flow-style list or mapping."""
    text: str = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=10**6)
    return text.strip().removesuffix("\n...").strip()
