"""Deployments derived from the event catalog: one worker deployment and trigger per declared type.

Contract: `worker` makes a type's deployment from its declaration and `flowhook.names`; `files` writes it
into prefect.yaml between two marker lines (the hand-written deployments stay as they are), with a check
mode that writes nothing; `agreement` reads what the Prefect server has for each type. `prefect deploy --all`
on prefect.yaml is how the deployments are made (on ECS, `flowhook ecs deploy` makes its file from it).
"""

from flowhook.deployments.agreement import (
    Trigger,
    TypeDeployment,
    read_type_deployments,
    type_deployments,
    warn_undeployed,
)
from flowhook.deployments.files import (
    BEGIN,
    END,
    FILES,
    ROOT_FILE,
    GeneratedBlockMissing,
    generated_files,
    splice,
    stale_files,
    write_generated,
)
from flowhook.deployments.worker import deployment_description, worker_block, worker_entry, worker_trigger

__all__ = [
    "BEGIN",
    "END",
    "FILES",
    "ROOT_FILE",
    "GeneratedBlockMissing",
    "Trigger",
    "TypeDeployment",
    "deployment_description",
    "generated_files",
    "read_type_deployments",
    "splice",
    "stale_files",
    "type_deployments",
    "warn_undeployed",
    "worker_block",
    "worker_entry",
    "worker_trigger",
    "write_generated",
]
