"""The models and data the ``device`` tests read, made with TensorFlow on this machine for a
run where only the light install exists (``make test-arm64``: aarch64 under emulation).

    python tests/device_fixtures.py FOLDER

Then ``EDGECNN_DEVICE_FIXTURES=FOLDER pytest -m device ...`` reads them (see
``conftest.DEVICE_FIXTURES``): the conftest's tiny int8 MobileNet, the photo the ``photos``
fixture crops, the built-in digits as arrays, scikit-image's photos of
test_imagenet_data, an HDF5 file, and test_eval_predict's trained model with its
data folder. FOLDER is replaced whole.
"""
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))


def make(folder: str) -> None:
    import conftest
    from pathlib import Path

    import test_corrupt_models
    import test_eval_predict
    import test_imagenet_data

    tmp = folder.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    conftest.make_tiny_int8(os.path.join(tmp, "tiny_int8.tflite"))
    shutil.copyfile(conftest.sample_photo_path(), os.path.join(tmp, "grace_hopper.jpg"))
    for size in conftest.DEVICE_DIGITS["sizes"]:
        images, labels = conftest.digits(size, conftest.DEVICE_DIGITS["limit"])
        np.savez_compressed(os.path.join(tmp, f"digits_{size}.npz"), images=images,
                            labels=labels)
    test_corrupt_models.write_h5(os.path.join(tmp, "weights.h5"))
    os.makedirs(os.path.join(tmp, "skimage_data"))
    for photo in test_imagenet_data.PHOTOS:
        shutil.copyfile(os.path.join(test_imagenet_data.SKIMAGE_DATA, photo),
                        os.path.join(tmp, "skimage_data", photo))
    os.makedirs(os.path.join(tmp, "eval_predict"))
    test_eval_predict.make_trained(Path(tmp) / "eval_predict")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/device_fixtures.py FOLDER")
    if os.environ.get("EDGECNN_DEVICE_FIXTURES"):
        sys.exit("error: unset EDGECNN_DEVICE_FIXTURES: this script makes them")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    make(os.path.abspath(sys.argv[1]))
