"""`edgecnn profile`: per-op latency on this machine (each op timed alone, LiteRT) and from a
saved benchmark_model output; the light install is enough."""
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from test_adb import BUNDLED_MODEL
from test_cli import LIGHT, assert_one_line_error

from edgecnn.cli import cli
from edgecnn.runtime import tflite as rt
from edgecnn.runtime.profile import profile, single_op_models

pytestmark = pytest.mark.device  # needs only the light install (make test-arm64)

REAL = os.path.join(os.path.dirname(__file__), "data", "benchmark_outputs")


def test_every_op_is_cut_out_whole_and_runs_alone():
    """A one-op model per op of the graph: its inputs are the op's computed inputs, its
    weights and quantization come along, and it gives the op's output for those inputs."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    with open(BUNDLED_MODEL, "rb") as fh:
        data = fh.read()
    ops = single_op_models(data)
    histogram = rt.analyze(data)["ops"]
    assert len(ops) == sum(histogram.values())
    assert {op["op"] for op in ops} == set(histogram)
    # the whole model with every tensor kept: feeding op k's inputs to its one-op model
    # reproduces op k's output exactly (same kernels, same integers)
    whole = Interpreter(model_content=data, experimental_preserve_all_tensors=True,
                        experimental_op_resolver_type=rt_builtin())
    whole.allocate_tensors()
    detail = whole.get_input_details()[0]
    whole.set_tensor(detail["index"], np.random.default_rng(0).integers(
        0, 256, detail["shape"]).astype(detail["dtype"]))
    whole.invoke()
    names = {d["name"]: d["index"] for d in whole.get_tensor_details()}
    for op in ops[::7]:
        alone = Interpreter(model_content=op["bytes"], experimental_op_resolver_type=rt_builtin())
        alone.allocate_tensors()
        for d in alone.get_input_details():
            alone.set_tensor(d["index"], whole.get_tensor(names[d["name"]]))
        alone.invoke()
        out = alone.get_output_details()[0]
        assert out["name"] == op["name"]
        np.testing.assert_array_equal(alone.get_tensor(out["index"]),
                                      whole.get_tensor(names[op["name"]]))


def rt_builtin():
    from ai_edge_litert.interpreter import OpResolverType

    return OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES


def test_profile_report_accounts_for_every_op_and_the_whole_run():
    report = profile(BUNDLED_MODEL, rounds=1)
    assert report["total_ms"] > 0 and report["rounds"] == 1 and report["xnnpack"]
    assert "timed alone" in report["method"]
    assert [r["index"] for r in report["ops"]] == list(range(len(report["ops"])))
    assert report["coverage"] == pytest.approx(report["ops_sum_ms"] / report["total_ms"],
                                               abs=1e-3)
    assert report["ops_sum_ms"] == pytest.approx(sum(r["alone_ms"] for r in report["ops"]),
                                                 abs=1e-4)
    # the estimates in the model add up to the whole run (what the ops alone miss is spread
    # over them by their bytes)
    assert sum(r["percent"] for r in report["ops"]) == pytest.approx(100, abs=0.5)
    for row in report["ops"]:
        assert row["ms"] > 0 and row["bytes"] > 0
        assert row["percent"] == pytest.approx(100 * row["ms"] / report["total_ms"], abs=1e-2)
        if report["coverage"] < 1:
            assert row["ms"] >= row["alone_ms"]
    by_type = {e["op"]: e for e in report["by_type"]}
    assert by_type["CONV_2D"]["count"] == rt.analyze(BUNDLED_MODEL)["ops"]["CONV_2D"]
    assert [e["ms"] for e in report["by_type"]] == sorted((e["ms"] for e in report["by_type"]),
                                                          reverse=True)


def test_cli_profile_on_the_light_install(tmp_path):
    proc = subprocess.run([sys.executable, "-c", LIGHT, "profile", BUNDLED_MODEL, "--rounds",
                           "1", "--top", "5"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "slowest 5 ops" in proc.stdout and "by op type" in proc.stdout
    assert "timed alone" in proc.stdout and "% of the whole run" in proc.stdout
    proc = subprocess.run([sys.executable, "-c", LIGHT, "profile", BUNDLED_MODEL, "--rounds",
                           "1", "--json"], capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    assert report["model"] == os.path.basename(BUNDLED_MODEL) and report["ops"]


def test_cli_profile_from_a_saved_output():
    saved = os.path.join(REAL, "01_mobilenet_v1_riscv_qemu_op_profiling.txt")
    result = CliRunner().invoke(cli, ["profile", "--from-output", saved, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["total_ms"] == pytest.approx(2949.9)
    assert len(report["ops"]) == 31 and report["ops"][0]["op"] == "CONV_2D"
    assert report["ops_sum_ms"] == pytest.approx(report["total_ms"], rel=1e-3)
    assert sum(e["ms"] for e in report["by_type"]) == pytest.approx(report["total_ms"],
                                                                    rel=1e-3)
    table = CliRunner().invoke(cli, ["profile", "--from-output", saved, "--top", "3"])
    assert "Conv2d_5_pointwise" in table.output and "slowest 3 ops" in table.output


def test_cli_profile_plot_draws_the_time_by_op_type(tmp_path, monkeypatch):
    saved = os.path.join(REAL, "01_mobilenet_v1_riscv_qemu_op_profiling.txt")
    png = tmp_path / "ops.png"
    result = CliRunner().invoke(cli, ["profile", "--from-output", saved, "--plot", str(png),
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["plot"] == str(png)
    from PIL import Image

    with Image.open(png) as image:   # a real PNG, one bar per op type: taller with more
        assert image.format == "PNG" and image.size[0] == 1000 and image.size[1] >= 200
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # as on the light install
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    missing = tmp_path / "none.png"
    assert_one_line_error(CliRunner().invoke(cli, ["profile", "--from-output", saved,
                                                   "--plot", str(missing)]),
                          "needs matplotlib", "pip install matplotlib")
    assert not missing.exists()


@pytest.mark.parametrize("args, fragment", [
    ([], "give MODEL.tflite"),
    (["m.tflite", "--plot", "x.jpg"], "give a path ending in .png"),
    (["m.tflite", "--from-output", "x.txt"], "one of them"),
    (["missing.tflite"], "missing.tflite"),
    (["--from-output", os.path.join(REAL, "08_ti_am62x_cpu_plain_info_prefix.txt")],
     "no op profile"),
])
def test_cli_profile_errors(args, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(CliRunner().invoke(cli, ["profile", *args]), fragment)
