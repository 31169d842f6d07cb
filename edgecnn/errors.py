"""Errors a user can act on.

Everything the CLI reports as a one-line message (exit status 2) derives from
:class:`EdgecnnError`. Library callers can catch it as a ``ValueError``.
"""


class EdgecnnError(ValueError):
    """Bad input: the message says what was wrong and what would be right."""


class EdgecnnWarning(UserWarning):
    """Something a user should know that does not stop the work (e.g. pretrained weights that
    could not be had, so a model starts from random weights). The CLI prints it on one line."""


class MissingExtraError(EdgecnnError, ImportError):
    """A feature needs an optional dependency that is not installed."""

    TENSORFLOW = {None, "tensorflow", "tf_keras", "tf-keras", "keras",
                  "tensorflow_model_optimization", "tensorflow-model-optimization"}

    def __init__(self, what: str, extra: str = "tf", missing: str | None = None):
        if missing in self.TENSORFLOW:
            detail = f" ({missing} is not installed)" if missing else ""
            message = (f"{what} needs TensorFlow{detail}: install the full profile with "
                       f"pip install \"edgecnn[{extra}]\"")
        else:  # one plain package (Pillow, matplotlib, ...): say just that
            message = f"{what} needs {missing}, which is not installed: pip install {missing}"
        super().__init__(message)
