"""Errors a user can act on.

Everything the CLI reports as a one-line message (exit status 2) derives from
:class:`EdgecnnError`. Library callers can catch it as a ``ValueError``.
"""


class EdgecnnError(ValueError):
    """Bad input: the message says what was wrong and what would be right."""


class MissingExtraError(EdgecnnError, ImportError):
    """A feature needs an optional dependency that is not installed."""

    def __init__(self, what: str, extra: str = "tf", missing: str | None = None):
        detail = f" ({missing} is not installed)" if missing else ""
        super().__init__(
            f"{what} needs TensorFlow{detail}: install the full profile with "
            f"pip install \"edgecnn[{extra}]\""
        )
