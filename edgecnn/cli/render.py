"""Rich printing shared by the CLI commands: the model catalog (``list``), a network's
description (``info NAME``; the data comes from ``edgecnn.models.summary.describe_model``)
and a conversion report or model card (``convert``, ``info FILE.tflite``). No TensorFlow."""
from __future__ import annotations

import os


def _number(value, spec: str, factor: float = 1.0) -> str:
    """``value`` (times ``factor``) formatted, or "?" when a card does not say."""
    return "?" if value is None else format(value * factor if factor != 1.0 else value, spec)


def _console(console=None):
    from rich.console import Console

    return console or Console()


def print_conversion(card, path: str | None = None, console=None) -> None:
    """A model card (``runtime.card.ModelCard``) as a table a person can check at a glance
    (its text is never read as rich markup: a card may come from a damaged file)."""
    from rich.markup import escape
    from rich.table import Table

    console = _console(console)
    model = card.model
    title = (f"{model.name or '?'} alpha {'?' if model.alpha is None else model.alpha} "
             f"{model.resolution or '?'}px -> {card.precision}"
             f"{' (QAT)' if card.qat else ''}")
    table = Table(title=escape(title), show_header=False)
    table.add_column("what")
    table.add_column("value")
    inp, out = card.input, card.output
    rows = [
        ("file", path or card.path or ""),
        ("size", f"{_number(card.size_bytes, '.2f', 1e-6)} MB"),
        ("params / MACs", f"{_number(card.params, ',')} / {_number(card.macs, '.1f', 1e-6)} M"),
        ("input", f"{inp.dtype} {inp.shape}"
                  + (f" scale {_number(inp.scale, 'g')} zero point {inp.zero_point}"
                     if inp.dtype != "float32" else "")
                  + ": raw RGB 0-255"),
        ("output", f"{out.dtype} {out.shape} logits"),
        ("ops", ", ".join(f"{k} {v}" for k, v in (card.ops or {}).items()) or "?"),
    ]
    if card.precision == "int8" and card.all_int8 is not None:
        rows.append(("every compute op int8", "yes" if card.all_int8 else
                     f"NO: float ops {card.float_ops}"))
    outside = card.ops_outside_xnnpack or {}
    rows.append(("XNNPACK partitions",
                 f"{'?' if card.xnnpack_partitions is None else card.xnnpack_partitions}"
                 + (f" (outside: {', '.join(f'{k} {v}' for k, v in outside.items())})"
                    if outside else " (whole graph)")))
    agreement = card.agreement or {}
    if agreement:
        rows.append(("agreement with Keras", f"top-1 {agreement['top1_agreement']:.1f} %, "
                     f"mean |dp| {agreement['mean_abs_prob_error']:.2g} on "
                     f"{agreement['samples']} {agreement.get('data', '')}"))
    accuracy = card.accuracy
    if accuracy:
        rows.append(("accuracy (Keras / TFLite)", f"{accuracy['keras_top1']:.1f} % / "
                     f"{accuracy['tflite_top1']:.1f} % on {accuracy['samples']} labelled images"))
    calibration = card.calibration or {}
    if calibration.get("source"):
        rows.append(("calibration", f"{calibration['source']}"
                     + (f", {calibration['samples']} images" if calibration.get("samples")
                        else "")
                     + (f"; bias correction in {calibration['bias_correction']['layers']} "
                        f"layers" if calibration.get("bias_correction") else "")
                     + (f"; {calibration['keep_float']['ops']} op(s) kept in float"
                        if calibration.get("keep_float") else "")))
    if card.conversion_seconds is not None:
        rows.append(("conversion time", f"{card.conversion_seconds:.1f} s"))
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in (card.versions or {}).items())))
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in row))
    console.print(table)
    for warning in card.warnings or []:
        console.print(f"[bold yellow]warning:[/bold yellow] {escape(warning)}")


def print_foreign(report: dict, path: str, console=None) -> None:
    """``edgecnn info`` of a .tflite without a card (``runtime.foreign.describe_foreign``):
    what the file says and how edgecnn reads it (file text never read as markup)."""
    from rich.markup import escape
    from rich.table import Table

    console = _console(console)
    meta = report.get("tflite_metadata") or {}
    title = f"{os.path.basename(path)}: no edgecnn model card" + \
        (f" (TFLite metadata: {meta['name']})" if meta.get("name") else "")
    table = Table(title=escape(title), show_header=False)
    table.add_column("what")
    table.add_column("value")
    rows = [("file", path), ("size", f"{report['size_bytes'] / 1e6:.2f} MB")]
    for t in report["tensors"]:
        quant = (f" scale {t['scale']:g} zero point {t['zero_point']}"
                 if t["scale"] is not None else "")
        rows.append((t["role"], f"{t['dtype']} {t['shape']}{quant} ({t['name']})"))
    rows.append(("ops", ", ".join(f"{k} {v}" for k, v in report["ops"].items())))
    rows.append(("every compute op integer", "yes" if report["all_int8"] else
                 f"no: float ops {report['float_ops']}"))
    outside = report["ops_outside_xnnpack"]
    rows.append(("XNNPACK partitions", f"{report['xnnpack_partitions']}"
                 + (f" (outside: {', '.join(f'{k} {v}' for k, v in outside.items())})"
                    if outside else " (whole graph)")))
    if meta:
        for key in ("description", "version", "author", "license"):
            if meta.get(key):
                rows.append((f"metadata {key}", meta[key]))
        reading = meta.get("input") or {}
        if reading.get("mean"):
            rows.append(("metadata normalization", f"mean {reading['mean']} std "
                                                   f"{reading['std']}"))
        if meta.get("labels_file"):
            rows.append(("metadata labels", meta["labels_file"]))
    reading = report.get("reading") or {}
    if "error" in reading:
        rows.append(("how edgecnn reads it", f"cannot: {reading['error']}"))
    else:
        rows.append(("input from pixels", reading["input"]))
        rows.append(("output", reading["output"]))
        rows.append(("labels", f"{reading['labels']}: {', '.join(reading['first_labels'])}, ..."
                     if reading["labels"] else "none (class indices; give --labels FILE)"))
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in row))
    console.print(table)
    if reading.get("assumed"):
        console.print(f"[bold]note:[/bold] {escape(reading['assumed'])}")


def print_catalog(rows: list[dict], console=None) -> None:
    """The model catalog (``edgecnn.jobs.catalog``'s rows) as one table."""
    from rich.table import Table

    table = Table(title="edgecnn models (alpha 1.0, 1000 classes)")
    for col, justify in (("name", "left"), ("family", "left"), ("input", "right"),
                         ("params", "right"), ("MACs", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    for r in rows:
        table.add_row(r["name"], r["family"], str(r["input"]), f"{r['params'] / 1e6:.2f} M",
                      f"{r['macs'] / 1e6:,.1f} M")
    _console(console).print(table)


def print_description(report: dict, console=None) -> None:
    """A configuration as ``describe_model`` reports it: header lines, then the stage table."""
    from rich.table import Table

    console = _console(console)
    opts = "".join(f", {k}={v}" for k, v in report["options"].items())
    console.print(f"[bold]{report['name']}[/bold]  alpha {report['alpha']:g}, "
                  f"{report['resolution']}x{report['resolution']} (rho {report['rho']:g}){opts}"
                  f"  -  {report['family']}; {report['paper']}")
    console.print(f"params {report['params']:,} ({report['trainable_params']:,} trainable), "
                  f"MACs {report['macs'] / 1e6:.1f} M")
    pre = report["preprocessing"]
    console.print(f"input {report['input']['shape']} {report['input']['dtype']}: "
                  f"{pre['description']} (mean {pre['mean']}, std {pre['std']})")
    console.print(f"stem: {report['stem']}")
    table = Table(title="stages")
    cols = ("stage", "kind", "repeats", "kernel", "stride", "in", "expand", "out", "se", "act")
    for col in cols:
        table.add_column(col, justify="left" if col in ("kind", "act") else "right")
    for row in report["blocks"]:
        table.add_row(*(str(row[c]) for c in cols))
    console.print(table)
    console.print(f"head: {report['head']}")


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_weights(rows: list[dict], console=None) -> None:
    """The weights catalog (``edgecnn.jobs.weights.list_weights``' rows) as one table (the
    license column only when the terminal is wide enough to keep model names whole)."""
    from rich.markup import escape
    from rich.table import Table

    console = _console(console)
    wide = console.width >= 110
    table = Table(title="published ImageNet weights (top-1/top-5: as the upstream reports "
                        "them)")
    columns = [("model", "left"), ("alpha, options", "left"), ("px", "right"),
               ("source", "left"), ("top-1", "right"), ("top-5", "right")]
    columns += [("license", "left")] if wide else []
    for column, justify in columns + [("cached", "left")]:
        table.add_column(column, justify=justify, no_wrap=column != "source", overflow="fold",
                         min_width=max(len(r["model"]) for r in rows) if column == "model"
                         and rows else None)
    previous = None
    for row in rows:
        cells = [row["model"] if row["model"] != previous else "",
                 " ".join([f"{row['alpha']:g}"] + row["configuration"].split()[2:]),
                 row["resolution"], row["source"], _percent(row["top1"]),
                 _percent(row["top5"])]
        cells += [row["license"].split(" (", 1)[0]] if wide else []
        table.add_row(*(escape(str(cell)) for cell in cells + ["yes" if row["cached"] else "no"]))
        previous = row["model"]
    console.print(table)
    console.print(f"{len(rows)} entries, {len({r['model'] for r in rows})} models; cache: "
                  f"$EDGECNN_CACHE or ~/.cache/edgecnn"
                  + ("" if wide else "; licenses and URLs: --json"))


def print_import(report: dict, console=None) -> None:
    """An import report (``edgecnn.jobs.weights.import_weights``): every tensor mapped, then
    the file written and the preprocessing the weights expect."""
    from rich.markup import escape
    from rich.table import Table

    console = _console(console)
    rows = report["rows"]
    columns = list(rows[0]) if rows else []
    found = report.get("alpha_source", "given") != "given"
    table = Table(title=escape(f"{report['checkpoint']} -> {report['model']} alpha "
                               f"{report['alpha']:g}" + (" (found)" if found else "")
                               + f", {report.get('num_classes', '?')} classes"))
    for column in columns:
        table.add_column(str(column))
    for row in rows:
        table.add_row(*(escape(_cell(row.get(column))) for column in columns))
    console.print(table)
    options = ", ".join(f"{k}={v}" for k, v in sorted(report["options"].items()))
    console.print(escape(f"{len(rows)} tensors mapped; wrote {report['output']}"
                         + (f" (model options: {options})" if options else "")))
    pre = report.get("preprocessing")
    if pre:
        console.print(escape(f"preprocessing the weights expect: mean {pre.get('mean')} std "
                             f"{pre.get('std')} (0-255 units)"
                             + (f": {pre['description']}" if pre.get("description") else "")))


def _cell(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) if not all(
            isinstance(v, int) for v in value) else "x".join(str(v) for v in value)
    return "" if value is None else str(value)
