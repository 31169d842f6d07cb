"""``edgecnn convert``: build a network and convert it to a validated .tflite with its model
card (the work is ``edgecnn.jobs.convert.run_convert``; this module reads the options and
prints the report)."""
from __future__ import annotations

import json

import click

from ..errors import EdgecnnError
from .options import (PRECISION_FLAGS, calib_samples_option, choose_precision, data_option,
                      family_options, io_option, json_option, labels_option, model_options,
                      precision_options, weights_choice)


@click.command()
@click.argument("name")
@model_options
@precision_options
@click.option("--qat", is_flag=True, help="Quantization-aware: wrap with tfmot, fine-tune on "
              "--data, convert to int8 without calibration.")
@click.option("--qat-epochs", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--distill", is_flag=True, help="With --qat: fine-tune the fake-quantized model "
              "to give the float model's outputs on the --data images (knowledge "
              "distillation; no labels needed: a folder of images from the target will do).")
@weights_choice("auto")
@data_option("calibration, QAT and accuracy")
@labels_option
@calib_samples_option
@io_option("an int8 model")
@click.option("--output", "-o", type=str, default=None,
              help="Output .tflite [default: {name}_{alpha}_{resolution}_{precision}.tflite].")
@click.option("--bn-init/--no-bn-init", default=True, show_default=True,
              help="When the weights are random (--weights none, or auto without published "
              "weights): set the BatchNorm statistics from the calibration images first, so "
              "the random network converts and runs like a trained one.")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
              help="Post-training int8: take the mean error of each layer's int8 weights out "
              "of its bias, measured on the calibration images (costs a float32 conversion).")
@click.option("--keep-float", "keep_float", multiple=True, metavar="LAYER[,LAYER]",
              help="Post-training int8: leave these layers (Keras layer names or shell "
              "patterns such as 'stage6_*'; edgecnn quant-error names the ones that lose the "
              "most) in float, with QUANTIZE/DEQUANTIZE around them.")
@click.option("--strict", is_flag=True, help="Fail (exit 2, nothing written) when an int8 "
              "model is not integer-only and one XNNPACK partition.")
@json_option("Print the report as JSON.")
def convert(name, alpha, resolution, rho, num_classes, minimalistic, extra, int8, fp16, dynamic,
            qat, qat_epochs, distill, weights, data_dir, labels, calib_samples, io_dtype, output,
            bn_init, bias_correction, keep_float, strict, as_json):
    """Build NAME and convert it to a validated .tflite with its model card."""
    precision = choose_precision(int8, fp16, dynamic, io_dtype,
                                 default="int8" if qat else "float32")
    if qat and precision != "int8":
        raise EdgecnnError(f"--qat makes an int8 model; drop {PRECISION_FLAGS[precision]}")
    from ..jobs.convert import run_convert
    from .quant_error import split_layers

    keep_float = split_layers(keep_float)
    if keep_float and (precision != "int8" or qat):
        raise EdgecnnError("--keep-float leaves layers of a post-training int8 model in float: "
                           "use it with --int8 and without --qat")

    report = run_convert(
        name, alpha=alpha, resolution=resolution, rho=rho, num_classes=num_classes,
        options=family_options(minimalistic, extra), precision=precision, qat=qat,
        qat_epochs=qat_epochs, distill=distill, weights=weights, data_dir=data_dir,
        labels=labels, calib_samples=calib_samples,
        io_dtype=io_dtype, output=output, quiet=as_json, bn_init=bn_init,
        bias_correction=bias_correction, keep_float=keep_float, strict=strict)
    if as_json:
        click.echo(json.dumps({"path": report.path, **report.to_dict()}, indent=2))
    else:
        from .render import print_conversion

        print_conversion(report, report.path)
