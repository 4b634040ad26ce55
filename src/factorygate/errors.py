"""The small exception tree. The CLI catches only :class:`FactorygateError`."""


class FactorygateError(Exception):
    """Base of every error factorygate reports to a user (not a bug)."""

    def diagnostics(self) -> str:
        """One line a user can act on."""
        return str(self)


class CatalogError(FactorygateError):
    """The packaged catalog is inconsistent (a packaging bug, caught by tests)."""


class PolicyError(FactorygateError):
    """A policy file is missing, malformed or fails validation."""


class InputError(FactorygateError):
    """An input cannot be read or parsed."""
