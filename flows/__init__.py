"""Prefect flows, one file per deployment entrypoint in prefect.yaml; each reads like a recipe."""
