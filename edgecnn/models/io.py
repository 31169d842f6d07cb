"""Saving and loading Keras models that use edgecnn's layers, with their build record.

``save_model`` writes the model (.keras or .h5) and, inside the same file, the model's
:class:`~edgecnn.models.registry.BuiltConfig` (family, multipliers, classes, preprocessing;
an ``edgecnn.json`` entry of the .keras zip, an ``edgecnn`` attribute of the .h5 root), so
``load_model`` gives back a model that knows what it is. The write is atomic.
"""
from __future__ import annotations

import os
import tempfile
import zipfile

from .._keras import keras
from ..errors import EdgecnnError
from . import layers  # noqa: F401  (registers edgecnn's serializable layers)
from .registry import BuiltConfig

KERAS_SUFFIXES = (".keras", ".h5")
RECORD = "edgecnn.json"  # the build record's entry in a .keras zip (attribute name in .h5)


def _check_suffix(path: str) -> None:
    if not path.endswith(KERAS_SUFFIXES):
        raise EdgecnnError(f"{path} is not a Keras model file; give a .keras (or .h5) file")


def save_model(model, path: str) -> str:
    """Save ``model`` with its build record (``model.edgecnn``, when it has one) to a .keras
    or .h5 file, atomically (a temporary file in the same folder, then a rename)."""
    path = os.fspath(path)
    _check_suffix(path)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".model-",
                               suffix=suffix)
    os.close(fd)
    try:
        model.save(tmp, save_format="keras" if suffix == ".keras" else "h5")
        config = getattr(model, "edgecnn", None)
        if config is not None:
            _write_record(tmp, suffix, config.to_json())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _write_record(path: str, suffix: str, text: str) -> None:
    if suffix == ".keras":
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(RECORD, text)
    else:
        import h5py

        with h5py.File(path, "a") as f:
            f.attrs[RECORD] = text


def read_record(path: str) -> BuiltConfig | None:
    """The build record saved in a Keras model file, or None (a file saved by plain
    ``model.save``, or a damaged record)."""
    try:
        if path.endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                if RECORD not in archive.namelist():
                    return None
                text = archive.read(RECORD).decode("utf-8")
        else:
            import h5py

            with h5py.File(path, "r") as f:
                if RECORD not in f.attrs:
                    return None
                text = f.attrs[RECORD]
        return BuiltConfig.from_json(text if isinstance(text, str) else text.decode("utf-8"))
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return None


def load_model(path: str):
    """A saved tf_keras model with edgecnn's custom layers (and tfmot's QAT wrappers when
    tensorflow-model-optimization is installed), not compiled; ``model.edgecnn`` is its
    build record when the file has one (``save_model``)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise EdgecnnError(f"model file {path} does not exist")
    _check_suffix(path)
    try:
        import tensorflow_model_optimization as tfmot
        scope = tfmot.quantization.keras.quantize_scope()
    except ImportError:  # pragma: no cover - tfmot ships with the tf extra
        import contextlib
        scope = contextlib.nullcontext()
    try:
        with scope:
            model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgecnnError(f"cannot load the Keras model {path}: {message}") from None
    if not isinstance(model, keras.Model):
        raise EdgecnnError(f"{path} holds a {type(model).__name__}, not a Keras model; give a "
                           f"model saved with model.save or edgecnn's save_model")
    record = read_record(path)
    if record is not None:
        model.edgecnn = record
    return model
