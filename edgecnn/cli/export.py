"""``edgecnn export``: put a converted model into an app (works without TensorFlow)."""
from __future__ import annotations

import click


@click.group()
def export():
    """Ship a converted .tflite in an app."""


@export.command("android")
@click.argument("model", metavar="MODEL.tflite")
@click.option("--app", "app_dir", default="android_demo", show_default=True,
              help="The android_demo folder (a Gradle project) whose assets get the model.")
def android(model, app_dir):
    """Copy MODEL.tflite, its model card and labels.txt into the Android demo's assets and
    record it in assets/edgecnn_bundle.json as the model the app ships."""
    import os

    from ..jobs.export_android import ASSETS, export_android

    bundle = export_android(model, app_dir)
    assets = os.path.join(app_dir, ASSETS)
    click.echo(f"{assets}/{bundle['model']} ({bundle['size_bytes'] / 1e6:.2f} MB, "
               f"{bundle['precision']}, {bundle['io_dtype']} input "
               f"{'x'.join(str(s) for s in bundle['input_shape'][1:3])}, "
               f"{bundle['classes']} classes)")
    click.echo(f"{assets}/{bundle['card']}, {assets}/{bundle['labels']}, "
               f"{assets}/edgecnn_bundle.json")
    click.echo(f"build and install: cd {app_dir} && ./gradlew installDebug")
