"""factorygate: DoD DevSecOps security gates for containers and Kubernetes."""

__version__ = "0.1.0"

__all__ = ["__version__"]
