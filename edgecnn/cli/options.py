"""Click options that several edgecnn commands share, and the functions that read them.

Model and family options (``model_options``, ``alpha_resolution_options``,
``family_flags``; ``family_options`` turns --minimalistic and -O KEY=VALUE into keyword
arguments), precision flags (``precision_options``, ``choose_precision``), the LiteRT
runner's settings (``runner_options``) and the data/conversion options of convert and sweep.
It imports nothing from the command modules, so every one of them can use it at import time.
"""
from __future__ import annotations

import click

from ..errors import EdgecnnError

PRECISION_FLAGS = {"int8": "--int8", "float16": "--fp16", "dynamic": "--dynamic"}


# --- model and family ----------------------------------------------------------------------

def _parse_option(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise EdgecnnError(f"option {text!r} is not KEY=VALUE (e.g. groups=3)")
    low = value.lower()
    if low in ("true", "false"):
        return key, low == "true"
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def family_options(minimalistic, extra) -> dict:
    """The family keyword arguments that --minimalistic and -O KEY=VALUE name."""
    options = dict(_parse_option(e) for e in extra)
    if minimalistic is not None:
        options["minimalistic"] = minimalistic
    return options


def family_flags(f):
    """--minimalistic and --option/-O KEY=VALUE; read them with ``family_options``."""
    f = click.option("--option", "-O", "extra", multiple=True, metavar="KEY=VALUE",
                     help="A family option, e.g. -O groups=8.")(f)
    return click.option("--minimalistic", is_flag=True, default=None,
                        help="MobileNetV3 without SE, hard-swish and 5x5 kernels.")(f)


def alpha_resolution_options(f):
    """--alpha/-a (width multiplier) and --resolution/-r (input side)."""
    f = click.option("--resolution", "-r", type=int, default=None,
                     help="Input side in pixels (default: the model's).")(f)
    return click.option("--alpha", "-a", type=float, default=1.0, show_default=True,
                        help="Width multiplier.")(f)


num_classes_option = click.option("--num-classes", type=int, default=1000, show_default=True)


def model_options(f):
    """The options that choose a network configuration (info, convert): alpha, resolution,
    rho, classes and the family options."""
    f = family_flags(f)
    f = num_classes_option(f)
    f = click.option("--rho", type=float, default=None,
                     help="Resolution multiplier: fraction of the default input.")(f)
    return alpha_resolution_options(f)


# --- precision -----------------------------------------------------------------------------

def precision_options(f):
    """--int8 / --fp16 / --dynamic (none: float32); read them with ``choose_precision``."""
    f = click.option("--dynamic", is_flag=True, help="int8 weights, float activations.")(f)
    f = click.option("--fp16", is_flag=True, help="float16 weights.")(f)
    return click.option("--int8", "int8", is_flag=True,
                        help="Integer-only int8 (XNNPACK-whole).")(f)


def choose_precision(int8: bool, fp16: bool, dynamic: bool, io_dtype: str | None = None,
                     default: str = "float32") -> str:
    """The one precision the flags name (``default`` for none); one-line errors for two
    precisions, or integer io without --int8."""
    chosen = [p for p, flag in (("int8", int8), ("float16", fp16), ("dynamic", dynamic)) if flag]
    if len(chosen) > 1:
        raise EdgecnnError(f"choose one precision, got "
                           f"{' and '.join(PRECISION_FLAGS[c] for c in chosen)}")
    precision = chosen[0] if chosen else default
    if io_dtype and io_dtype != "float32" and precision != "int8":
        raise EdgecnnError(f"--io {io_dtype} needs --int8")
    return precision


def io_option(what: str):
    """--io uint8|int8|float32: the input/output type of ``what`` (int8 models)."""
    return click.option("--io", "io_dtype", type=click.Choice(["uint8", "int8", "float32"]),
                        default=None, help=f"Input/output type of {what} [default: uint8].")


# --- data and conversion -------------------------------------------------------------------

def data_option(purpose: str):
    """--data DIR: an image folder (``edgecnn.data.labelled`` layouts) for ``purpose``."""
    return click.option("--data", "data_dir", type=str, default=None,
                        help=f"Image folder for {purpose}: one sub-folder per class, "
                        f"ImageNet-style {{wnid}}_*.jpg files with a synsets.txt, or (for "
                        f"calibration and --distill) images without classes.")


#: --labels: how a data folder's classes map onto the model's outputs.
labels_option = click.option(
    "--labels", "labels", default="auto", show_default=True, metavar="auto|imagenet|FILE",
    help="How the data's classes map onto the model's outputs: imagenet (WordNet ids onto the "
    "1000 ImageNet-1k classes), a text file (one class per line, in output order), or auto "
    "(the folder's synsets.txt, ImageNet for WordNet ids and a 1000-class model, the model "
    "card's labels, else the sorted folder names).")


WEIGHTS_HELP = ("auto: pretrained ImageNet weights where the configuration has them, else "
                "random with a warning; imagenet: pretrained or fail; none: random; or a PATH "
                "(keras .h5, PyTorch .pth/.pt/.pth.tar, .safetensors, a TF checkpoint; the "
                "layout is detected). `edgecnn weights list` shows the published weights.")


def weights_choice(default: str, help: str = WEIGHTS_HELP):
    """--weights auto | imagenet | none | PATH, with ``default``."""
    return click.option("--weights", default=default, show_default=True, metavar="WEIGHTS",
                        help=help)


weights_option = weights_choice("none")
calib_samples_option = click.option("--calib-samples", type=click.IntRange(min=1), default=200,
                                    show_default=True)


# --- the LiteRT runner ---------------------------------------------------------------------

def runner_options(f):
    """The LiteRT runner's settings (``edgecnn.runtime.benchmark``'s defaults when unset)."""
    f = click.option("--no-xnnpack", is_flag=True,
                     help="LiteRT's builtin kernels instead of XNNPACK.")(f)
    f = click.option("--min-seconds", type=click.FloatRange(min=0), default=None,
                     help="Minimum duration of the timed runs [default: 1 s].")(f)
    f = click.option("--warmup", type=click.IntRange(min=0), default=None,
                     help="Warmup runs before timing [default: at least 1 and 0.5 s].")(f)
    return click.option("--runs", type=click.IntRange(min=1), default=None,
                        help="Minimum number of timed runs [default: 50].")(f)


def adb_options(f):
    """Benchmarking on Android devices over adb with TFLite's benchmark_model (``use_adb``,
    ``serials``, ``benchmark_binary``, ``taskset``, ``use_gpu``, ``use_nnapi``)."""
    f = click.option("--use-nnapi", is_flag=True,
                     help="benchmark_model's NNAPI delegate (with --adb).")(f)
    f = click.option("--use-gpu", is_flag=True,
                     help="benchmark_model's GPU delegate (with --adb).")(f)
    f = click.option("--taskset", default=None, metavar="MASK",
                     help="CPU affinity mask on the device, e.g. f0 for the big cores "
                          "(with --adb).")(f)
    f = click.option("--benchmark-binary", default=None, metavar="PATH",
                     help="TFLite's benchmark_model built for the device (with --adb).")(f)
    f = click.option("--serial", "-s", "serials", multiple=True,
                     help="adb device serial; repeat for several devices (run in "
                          "parallel).")(f)
    return click.option("--adb", "use_adb", is_flag=True,
                        help="Run on an Android device with TFLite's benchmark_model over "
                             "adb.")(f)


def adb_flags_without_adb(serials, benchmark_binary, taskset, use_gpu, use_nnapi) -> list:
    """The adb-only flags given without --adb (an error for the caller to raise)."""
    return [flag for flag, on in (("--serial", serials), ("--benchmark-binary",
                                                            benchmark_binary),
                                   ("--taskset", taskset), ("--use-gpu", use_gpu),
                                   ("--use-nnapi", use_nnapi)) if on]


# --- output --------------------------------------------------------------------------------

def json_option(what: str = "Print the result as JSON."):
    """--json: machine-readable output instead of tables (``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help=what)


# --- models from elsewhere (no edgecnn model card) ------------------------------------------

def foreign_options(f):
    """--preprocess/--mean/--std/--resize/--crop: how to feed a .tflite without an edgecnn
    model card; read them with ``foreign_from``. (Its class names: --labels FILE.)"""
    from ..runtime.foreign import FITS, PREPROCESS_CHOICES

    f = click.option("--crop", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
                     help="Model without a card: the share of the shorter side the center "
                     "crop keeps [default: 1.0].")(f)
    f = click.option("--resize", type=click.Choice(FITS), default=None,
                     help="Model without a card: how a photo becomes the input square "
                     "[default: shorter-center-crop].")(f)
    f = click.option("--std", type=str, default=None, metavar="S[,S,S]",
                     help="With --preprocess mean-std: per-channel std in pixel units.")(f)
    f = click.option("--mean", type=str, default=None, metavar="M[,M,M]",
                     help="With --preprocess mean-std: per-channel mean in pixel units "
                     "(ImageNet's: 123.675,116.28,103.53).")(f)
    return click.option(
        "--preprocess", type=click.Choice(PREPROCESS_CHOICES), default=None,
        help="Model without a card: how pixels (0-255) become its input values, then its "
        "input quantization [default: the model's TFLite metadata; else integer inputs take "
        "the pixels as they are, float inputs minus-one-to-one].")(f)


def foreign_from(labels=None, preprocess=None, mean=None, std=None, resize=None, crop=None):
    """The ``runtime.foreign.ForeignOptions`` of the options above."""
    from ..runtime.foreign import ForeignOptions

    return ForeignOptions(labels=labels, preprocess=preprocess, mean=mean, std=std,
                          resize=resize, crop=crop)
