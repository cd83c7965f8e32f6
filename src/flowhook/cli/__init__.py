"""The `flowhook` command: thin shells over library functions, one module per group of commands."""

# Imported in the order `flowhook --help` lists them.
from flowhook.cli import local, webhooks, sources, data, dead_letters, deployments, ecs  # noqa: I001
from flowhook.cli._app import app

__all__ = ["app", "data", "dead_letters", "deployments", "ecs", "local", "sources", "webhooks"]
