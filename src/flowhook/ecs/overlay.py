"""The ECS deploy overlay: the root `prefect.yaml`'s deployments and triggers, on the `flowhook-ecs` pool.

Made from the root file and the catalog when it is used, never committed, so its triggers cannot drift from
the root file's and adding an event type touches prefect.yaml alone: `flowhook ecs deploy` deploys it from a
temporary file, and `flowhook ecs overlay` prints it for a plain `prefect deploy --prefect-file`. Each worker
deployment runs at the Fargate size its event type declares. The pool's job template,
`deployments/ecs/base-job-template.json`, depends on no type: `flowhook deployments generate` writes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from flowhook.ecs.template import POOL_NAME, PROJECT_DIR, base_job_template
from flowhook.events import Catalog, TaskSize
from flowhook.names import WORKER_ENTRYPOINT

TEMPLATE_FILE = Path("deployments") / "ecs" / "base-job-template.json"

_HEADER = """\
# Made by `flowhook ecs overlay` from the root prefect.yaml and the event types' declared sizes: regenerate it
# rather than edit it. The same deployments and triggers on the `{pool}` ECS work pool; the flows run in the
# image built by deployments/ecs/Dockerfile, from its project folder. From the repository root:
#   flowhook ecs pool --image … --api-url …    (or: prefect work-pool create {pool} --type ecs \\
#                                                     --base-job-template deployments/ecs/base-job-template.json)
#   flowhook ecs deploy                        (or: prefect deploy --all --prefect-file <this file>)
"""


class _PlainDumper(yaml.SafeDumper):  # type: ignore[misc]  # yaml has no type stubs here
    """Writes each deployment out in full: the root's anchors are merged on load, and no `&id001` come back."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def worker_sizes(catalog: Catalog) -> dict[str, TaskSize]:
    """The Fargate size each event type declares for its worker runs; a type that declares none is left out."""
    return {name: size for name in catalog.names if (size := catalog.get(name).size) is not None}


def ecs_overlay(root: Mapping[str, Any], *, sizes: Mapping[str, TaskSize], pool: str = POOL_NAME) -> dict[str, Any]:
    """The root prefect.yaml (as loaded, anchors merged) with every deployment on the ECS pool; a worker
    deployment runs at its type's size in `sizes`, every other deployment at the pool's default."""
    deployments = []
    for deployment in root["deployments"]:
        job_variables: dict[str, Any] = {}
        size = sizes.get(deployment["name"]) if deployment.get("entrypoint") == WORKER_ENTRYPOINT else None
        if size is not None:
            job_variables = {"cpu": size.cpu, "memory": size.memory}
        queue = (deployment.get("work_pool") or {}).get("work_queue_name", "default")
        work_pool = {"name": pool, "work_queue_name": queue, "job_variables": job_variables}
        first = {key: deployment[key] for key in ("name", "entrypoint") if key in deployment}
        entry = {**first, **deployment}
        entry["work_pool"] = work_pool  # in its place when the root names one, else last
        deployments.append(entry)
    return {
        "name": root["name"],
        "prefect-version": root["prefect-version"],
        # The image holds the project at PROJECT_DIR: flows/, tasks/ and flowhook import from there.
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": PROJECT_DIR}}],
        "deployments": deployments,
    }


def overlay_text(root_yaml: str, *, sizes: Mapping[str, TaskSize], pool: str = POOL_NAME) -> str:
    """The ECS deploy file, as made from the root prefect.yaml's text."""
    document = ecs_overlay(yaml.safe_load(root_yaml), sizes=sizes, pool=pool)
    body: str = yaml.dump(document, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=120)
    return _HEADER.format(pool=pool) + body


def template_text() -> str:
    """`deployments/ecs/base-job-template.json`: the template with no values of a user's (they set them)."""
    return json.dumps(base_job_template(), indent=2, ensure_ascii=False) + "\n"
