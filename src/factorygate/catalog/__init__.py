"""The catalog: requirements and check metadata, shipped as YAML data in the package."""

from factorygate.catalog.loader import Catalog, load_catalog

__all__ = ["Catalog", "load_catalog"]
