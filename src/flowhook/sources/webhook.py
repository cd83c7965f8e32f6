"""The webhook sources' configuration moved to `flowhook.gateway.sources` (the gateway serves and verifies
them); these names stay importable here for code written against the old place."""

from flowhook.gateway.sources import SchemeName, SignatureConfig, SourceConfig, SourcesFile, load_sources

__all__ = ["SchemeName", "SignatureConfig", "SourceConfig", "SourcesFile", "load_sources"]
