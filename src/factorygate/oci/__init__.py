"""Built container images: OCI layouts, archives and registries, read as streams (never extracted)."""
