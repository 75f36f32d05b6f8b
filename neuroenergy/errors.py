"""One exception tree for neuroenergy: user errors are caught by the command line and printed
without a traceback; anything else is a bug."""


class NeuroenergyError(Exception):
    """Base class of every error neuroenergy raises on purpose."""


class ConfigError(NeuroenergyError, ValueError):
    """A parameter is outside its allowed range, of the wrong type, or unknown."""


class DataError(NeuroenergyError):
    """A data set is missing, corrupt, or has the wrong shape; the message says how to fix it."""


class StoreError(NeuroenergyError):
    """A results file cannot be read or written."""


class DependencyError(NeuroenergyError):
    """An optional dependency (brian2, dask) is needed for the requested feature."""
