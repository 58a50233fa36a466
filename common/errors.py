"""The root of every exception lfr-stream raises on purpose.

Each package keeps its own exceptions module (``schemas.errors``,
``sinks.errors``) whose classes derive from :class:`LfrError`, so a caller
can catch the project's failures apart from bugs.
"""


class LfrError(Exception):
    """Base class of the project's own errors."""


class CommandError(LfrError):
    """A failure the user can act on: the CLI prints it as one line and exits 1."""


class ConfigError(LfrError):
    """A setting or a file the command needs is missing or wrong."""
