"""Every family converts to an integer-only int8 model that XNNPACK runs as one partition,
whatever the weights: every family at alpha {smallest, 0.5, 1.0} and input {128, default}
(four cells per family that cover each alpha, each input and both calibrations), with random
weights calibrated on synthetic images or on real photos. The weights are as initialized,
BatchNorm statistics included: the hardest case for the delegate's scale bounds (``edgecnn
convert`` sets the statistics from the calibration images first, which gives a trained
network's scales: ``test_xnnpack_scales.py``). Trained weights:
``test_convert.test_every_family_trained_int8_agrees`` trains each family on real digits and
checks its int8 model at 64 and 128 px.

Slow: 36 cells of one conversion each, and B1-B7, Lite1-4 at 128 px. The default run checks
every family with fresh random weights and real photos
(``test_convert.test_int8_ptq_is_integer_only_and_one_partition``)."""
import pytest
from conftest import family_representative, memory_marks

import edgecnn
from edgecnn.data import synthetic_images
from edgecnn.models import get_model_spec, list_models

FAMILY_REPS = [n for n in list_models() if family_representative(n)]
OTHER_SIZES = [pytest.param(n, marks=memory_marks(n), id=n) for n in list_models()
               if not family_representative(n)]
SMALLEST = {"mobilenet": 0.25}   # keras.applications' smallest V1; 0.35 for the others


def assert_whole(report, what):
    outside = set(report.ops_outside_xnnpack) - {"QUANTIZE"}
    assert report.all_int8, (what, report.float_ops)
    assert report.xnnpack_partitions == 1 and not outside, (what, report.xnnpack_refusals)


def check_cell(name, alpha, size, calibration, photos, tmp_path):
    """Convert one configuration calibrated on ``calibration`` ("synthetic" images or real
    "photos"); the int8 model must be whole."""
    model = edgecnn.create_model(name, alpha=alpha, input_size=size, num_classes=10,
                                 weights=None)
    images = synthetic_images(4, size, seed=3) if calibration == "synthetic" else photos(size)
    # bias correction changes int32 bias values only, never a scale or an op: the graph
    # XNNPACK sees is the same, so the matrix skips its extra float conversion
    report = edgecnn.convert(model, tmp_path / f"{calibration}.tflite", "int8",
                             representative_data=images, card_path=None,
                             bias_correction=False)
    assert_whole(report, f"{name} {alpha} {size} {calibration}")


def _cells():
    """Four cells per family that cover every alpha and both inputs, each input calibrated
    on both kinds of images and alpha 1.0 on both too: (smallest, 128, photos), (0.5,
    default, synthetic), (1.0, 128, synthetic), (1.0, default, photos). The full cross (six
    cells, 54 in all) took 20 minutes of the slow run and repeated these cells' graphs."""
    for name in FAMILY_REPS:
        default = get_model_spec(name).default_input
        cells = [(SMALLEST.get(name, 0.35), 128, "photos"), (0.5, default, "synthetic"),
                 (1.0, 128, "synthetic"), (1.0, default, "photos")]
        for alpha, size, calibration in dict.fromkeys(cells):
            yield pytest.param(name, alpha, size, calibration, marks=pytest.mark.slow,
                               id=f"{name}-{alpha}-{size}-{calibration}")


@pytest.mark.parametrize("name, alpha, size, calibration", list(_cells()))
def test_matrix_cell_whole(name, alpha, size, calibration, photos, tmp_path):
    check_cell(name, alpha, size, calibration, photos, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHER_SIZES)
def test_larger_efficientnets_whole(name, photos, tmp_path):
    """B1-B7 and Lite1-4 share B0's and Lite0's code; their depth and width differ."""
    check_cell(name, 1.0, 128, "photos", photos, tmp_path)
