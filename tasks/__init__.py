"""Prefect tasks: retry, cache and tag policy around flowhook functions; no logic of their own."""
