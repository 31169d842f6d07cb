"""The one place that imports TensorFlow and tf_keras (Keras 2).

tensorflow-model-optimization works only with tf_keras, so ``TF_USE_LEGACY_KERAS``
is set before TensorFlow loads and every other module takes ``tf``, ``keras`` and
``layers`` from here. Importing this module on the light (device) install raises
:class:`~edgecnn.errors.MissingExtraError`.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .utils.quiet import native_stderr_silenced  # noqa: E402
from .errors import MissingExtraError  # noqa: E402



try:
    with native_stderr_silenced():
        import tensorflow as tf  # noqa: E402
        import tf_keras as keras  # noqa: E402

        tf.config.list_physical_devices("GPU")  # the CUDA probe logs here, silenced
except ImportError as exc:  # pragma: no cover - exercised on the light install
    raise MissingExtraError("building or converting a model", missing=exc.name) from None

layers = keras.layers
backend = keras.backend

__all__ = ["tf", "keras", "layers", "backend"]
