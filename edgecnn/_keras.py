"""The one place that imports TensorFlow and tf_keras (Keras 2).

tensorflow-model-optimization works only with tf_keras, so ``TF_USE_LEGACY_KERAS``
is set before TensorFlow loads and every other module takes ``tf``, ``keras`` and
``layers`` from here. Importing this module on the light (device) install raises
:class:`~edgecnn.errors.MissingExtraError`.
"""
import contextlib
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .errors import MissingExtraError  # noqa: E402



@contextlib.contextmanager
def _native_stderr_silenced():
    """TensorFlow's C++ runtime prints INFO lines (oneDNN, CUDA probing) on file
    descriptor 2 while it loads, before its log level applies; hide them unless the user
    asked for TensorFlow's logs with TF_CPP_MIN_LOG_LEVEL=0."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


try:
    with _native_stderr_silenced():
        import tensorflow as tf  # noqa: E402
        import tf_keras as keras  # noqa: E402

        tf.config.list_physical_devices("GPU")  # the CUDA probe logs here, silenced
except ImportError as exc:  # pragma: no cover - exercised on the light install
    raise MissingExtraError("building or converting a model", missing=exc.name) from None

layers = keras.layers
backend = keras.backend

__all__ = ["tf", "keras", "layers", "backend"]
