"""Policies an event type declares beside its model and handler: here, the Fargate size of its worker runs.

They live with the declaration (`@event_type(..., size=TaskSize(1024, 2048))`) so that the deployments
generated from the catalog carry them; the ECS work pool reads the size, the local pool has no use for it.
"""

from __future__ import annotations

from dataclasses import dataclass

FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}
"""Fargate's task sizes: CPU units → the memory (MiB) allowed with them (AWS ECS developer guide, task size)."""


@dataclass(frozen=True)
class TaskSize:
    """A Fargate task's CPU units (1024 = 1 vCPU) and memory in MiB."""

    cpu: int
    memory: int

    def __post_init__(self) -> None:
        allowed = FARGATE_MEMORY.get(self.cpu)
        if allowed is None:
            choices = ", ".join(map(str, FARGATE_MEMORY))
            raise ValueError(f"Fargate has no size of {self.cpu} CPU units; choose one of {choices}")
        if self.memory not in allowed:
            raise ValueError(
                f"Fargate runs {self.cpu} CPU units with {allowed[0]}–{allowed[-1]} MiB "
                f"({', '.join(map(str, allowed))}), not {self.memory}"
            )
