"""The latency runner (edgecnn.runtime.benchmark) and `edgecnn bench` on this machine.

Speed is never asserted: the tests check what a user relies on in the numbers (counts, the
order of the statistics, sizes, inputs of the right dtype and content) and that the light
install's path never needs TensorFlow.
"""
import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.errors import EdgecnnError, MissingExtraError
from edgecnn.runtime import bench as runner
from edgecnn.runtime import benchmark, load_interpreter, read_card

pytestmark = pytest.mark.device  # needs only the light install (make test-arm64)

QUICK = dict(runs=20, warmup=2, min_seconds=0)


def write_foreign_float_model(path, size=32):
    """A .tflite from elsewhere (no edgecnn card), written with LiteRT's flatbuffer schema:
    float32 image (1, size, size, 3) -> global AVERAGE_POOL_2D -> (1, 1, 1, 3)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    def tensor(name, shape, buffer):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, s.TensorType.FLOAT32, buffer
        return t

    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.AVERAGE_POOL_2D
    code.version = 1
    options = s.Pool2DOptionsT()
    options.padding, options.strideW, options.strideH = s.Padding.VALID, 1, 1
    options.filterWidth = options.filterHeight = size
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.Pool2DOptions, options
    graph = s.SubGraphT()
    graph.tensors = [tensor("image", [1, size, size, 3], 1), tensor("pooled", [1, 1, 1, 3], 2)]
    graph.inputs, graph.outputs, graph.operators = [0], [1], [op]
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [s.BufferT(), s.BufferT(), s.BufferT()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with open(path, "wb") as f:
        f.write(bytes(builder.Output()))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, tiny_int8_tflite):
    """"int8": conftest's tiny int8 MobileNet (alpha 0.25, 32 px, 10 classes, card
    embedded); "foreign": a float32 .tflite without a card (see write_foreign_float_model)."""
    folder = tmp_path_factory.mktemp("bench_models")
    paths = {"int8": tiny_int8_tflite, "foreign": str(folder / "pool_fp32.tflite")}
    write_foreign_float_model(paths["foreign"])
    return paths


@pytest.fixture()
def image_file(tmp_path, photos):
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray(photos(80)[2]).save(path)
    return str(path)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_result_has_the_schema_and_consistent_statistics(tiny_models):
    path = tiny_models["int8"]
    r = benchmark(path, threads=1, **QUICK)
    for key in runner.RESULT_KEYS:
        assert r[key] is not None, key
    assert r["model"] == "tiny_int8.tflite" and r["source"] == "local"
    assert r["runs"] == 20 and r["warmup_runs"] == 2 and r["threads"] == 1 and r["xnnpack"]
    assert r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
    assert r["min_ms"] <= r["mean_ms"] <= r["max_ms"] and r["std_ms"] >= 0
    assert r["init_ms"] > 0 and r["first_ms"] > 0 and r["warmup_ms"] > 0
    assert r["throughput_ips"] == pytest.approx(1000.0 / r["mean_ms"])
    assert r["size_bytes"] == os.path.getsize(path)
    assert r["peak_rss_growth_bytes"] >= 0
    assert r["peak_rss_growth_mb"] == pytest.approx(r["peak_rss_growth_bytes"] / 2**20)
    card = read_card(path).to_dict()
    assert r["precision"] == "int8" and r["card_model"]["resolution"] == 32
    assert r["input"]["dtype"] == card["input"]["dtype"] == "uint8"
    assert r["input"]["shape"] == [1, 32, 32, 3]
    assert r["spread_p90_p50"] == pytest.approx(r["p90_ms"] / r["p50_ms"])
    assert r["noisy"] == (r["spread_p90_p50"] > runner.NOISY_RATIO)
    assert r["machine"]["litert"]
    json.dumps(r)  # the JSON form of `edgecnn bench`


def test_runs_and_min_seconds_are_both_minimums(tiny_models):
    r = benchmark(tiny_models["int8"], runs=1, warmup=1, min_seconds=0.2, keep_times=True)
    assert r["runs"] > 1 and len(r["times_ms"]) == r["runs"]
    assert np.median(r["times_ms"]) == pytest.approx(r["p50_ms"])


def test_threads_and_xnnpack_choice_reach_the_interpreter(tiny_models):
    on = benchmark(tiny_models["int8"], threads=2, xnnpack=True, **QUICK)
    off = benchmark(tiny_models["int8"], threads=1, xnnpack=False, **QUICK)
    assert on["threads"] == 2 and on["xnnpack"] and on["delegate_partitions"] >= 1
    assert off["threads"] == 1 and not off["xnnpack"] and off["delegate_partitions"] == 0


def test_inputs_match_dtype_quantization_and_seed(tiny_models):
    int8 = load_interpreter(tiny_models["int8"])
    card = read_card(tiny_models["int8"])
    (a,), info = runner.make_inputs(int8, card, seed=3)
    (b,), _ = runner.make_inputs(int8, card, seed=3)
    (c,), _ = runner.make_inputs(int8, card, seed=4)
    assert a.dtype == np.uint8 and a.shape == (1, 32, 32, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.std() > 10  # photo-like pixels, not a constant
    assert "synthetic" in info["source"] and "raw pixels" in info["preprocessing"]
    foreign = load_interpreter(tiny_models["foreign"])
    assert read_card(tiny_models["foreign"]) is None
    (x,), info = runner.make_inputs(foreign, None, seed=3)
    assert x.dtype == np.float32  # no card: the usual [-1, 1] of float image models
    np.testing.assert_allclose(x, (a.astype(np.float32) - 127.5) / 127.5, rtol=1e-6)
    assert "no model card" in info["preprocessing"]


def test_edgecnn_float_models_take_raw_pixels_as_floats():
    pixels = np.array([[[[0, 128, 255]]]], np.uint8)
    spec = {"dtype": "float32", "scale": 0.0, "zero_point": 0, "shape": [1, 1, 1, 3]}
    from edgecnn.runtime.card import ModelCard

    card = ModelCard.from_dict({"input": {"dtype": "float32"},
                                "preprocessing": {"inside_model": True, "description": "d"}})
    x, how = runner._pixels_to_tensor(pixels, spec, card, "m.tflite")
    assert x.dtype == np.float32 and x.tolist() == [[[[0.0, 128.0, 255.0]]]]
    assert "raw pixels" in how


def test_random_tensors_respect_dtype_and_quantization():
    rng = np.random.default_rng(0)
    q = runner._random_tensor({"shape": [1, 500], "dtype": np.int8,
                               "quantization": (0.01, 5)}, rng)
    assert q.dtype == np.int8 and q.min() >= -95 and q.max() <= 105  # [-1, 1] quantized
    u = runner._random_tensor({"shape": [2, 3], "dtype": np.int32, "quantization": (0.0, 0)}, rng)
    assert u.dtype == np.int32 and u.shape == (2, 3)
    f = runner._random_tensor({"shape": [4], "dtype": np.float32, "quantization": (0.0, 0)}, rng)
    assert f.dtype == np.float32 and np.all(np.abs(f) <= 1)


def test_image_input_is_the_model_cards_raw_pixels(tiny_models, image_file):
    from edgecnn.data.folder import load_image

    expected = load_image(image_file, 32)
    path = tiny_models["int8"]
    (x,), info = runner.make_inputs(load_interpreter(path), read_card(path), image_file)
    assert x.dtype == np.uint8 and info["source"] == "image photo.png"
    np.testing.assert_array_equal(x[0], expected)  # uint8 io: the integer is the pixel
    (y,), _ = runner.make_inputs(load_interpreter(tiny_models["foreign"]), None, image_file)
    np.testing.assert_allclose(y[0], (expected - 127.5) / 127.5, rtol=1e-6)
    r = benchmark(tiny_models["int8"], input=image_file, **QUICK)
    assert r["input"]["source"] == "image photo.png"


def test_image_input_without_pillow_says_which_extra(tiny_models, image_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # `import PIL` now fails, as on a light install
    with pytest.raises(MissingExtraError, match="pillow"):
        benchmark(tiny_models["int8"], input=image_file, **QUICK)


@pytest.mark.parametrize("kwargs,message", [
    ({"threads": 0}, "threads must be a whole number >= 1"),
    ({"runs": -1}, "runs must be"),
    ({"warmup": 1.5}, "warmup must be"),
    ({"min_seconds": -1}, "min_seconds must be >= 0"),
    ({"input": "/nonexistent/cat.jpg"}, "does not exist"),
])
def test_bad_arguments_are_one_line_errors(tiny_models, kwargs, message):
    with pytest.raises(EdgecnnError, match=message):
        benchmark(tiny_models["int8"], **kwargs)


def test_missing_or_foreign_model_files(tmp_path):
    with pytest.raises(EdgecnnError, match="does not exist"):
        benchmark(tmp_path / "nope.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(EdgecnnError, match="not a TFLite model"):
        benchmark(bad)


def test_runtime_and_bench_never_import_tensorflow(tiny_models):
    """A fresh interpreter where TensorFlow cannot be imported (as on the light install):
    `import edgecnn.runtime` and a whole `edgecnn bench` run work and load none of it."""
    code = textwrap.dedent(f"""
        import json, sys
        for name in ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization"):
            sys.modules[name] = None   # any import of it raises ImportError
        import edgecnn.runtime
        loaded_by_runtime = sorted(m for m, v in sys.modules.items() if v is not None)
        from edgecnn.cli import main
        try:
            main(["bench", {tiny_models["int8"]!r}, "--runs", "3", "--warmup", "1",
                  "--min-seconds", "0", "--json"])
        except SystemExit as exc:
            code = exc.code
        heavy = [m for m, v in sys.modules.items() if v is not None
                 and m.split(".")[0] in ("tensorflow", "tf_keras", "keras")]
        print(json.dumps({{"exit": code, "heavy": heavy,
                          "runtime_tf": [m for m in loaded_by_runtime if "tensorflow" in m]}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report == {"exit": 0, "heavy": [], "runtime_tf": []}
    rows = json.loads("\n".join(lines[:-1]))
    assert rows[0]["runs"] == 3 and rows[0]["model"] == "tiny_int8.tflite"


def test_cli_json_is_one_object_per_model_and_thread_count(tiny_models):
    result = run("bench", tiny_models["int8"], tiny_models["foreign"], "--threads", "1,2",
                 "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["model"], r["threads"]) for r in rows] == [
        ("tiny_int8.tflite", 1), ("tiny_int8.tflite", 2),
        ("pool_fp32.tflite", 1), ("pool_fp32.tflite", 2)]
    for r in rows:
        for key in ("model", "threads", "xnnpack", "runs", "init_ms", "first_ms", "mean_ms",
                    "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "size_bytes"):
            assert r[key] is not None, key
        assert r["runs"] == 5


def test_cli_table_and_csv(tiny_models, tmp_path):
    out = tmp_path / "latency.csv"
    result = run("bench", tiny_models["int8"], tiny_models["foreign"], "--runs", "5",
                 "--warmup", "1", "--min-seconds", "0", "--no-xnnpack", "--csv", out)
    assert result.exit_code == 0, result.output
    assert "tiny_int8.tflite" in result.stdout and "pool_fp32.tflite" in result.stdout
    assert "p50" in result.stdout and "builtin" in result.stdout
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["tiny_int8.tflite", "pool_fp32.tflite"]
    assert [r["xnnpack"] for r in rows] == ["False", "False"]
    assert rows[0]["input_dtype"] == "uint8" and rows[1]["input_dtype"] == "float32"
    assert float(rows[0]["min_ms"]) <= float(rows[0]["p50_ms"]) <= float(rows[0]["max_ms"])
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def _fake_result(model, p50, p90):
    return {"model": model, "source": "local", "threads": 1, "xnnpack": True, "runs": 50,
            "init_ms": 1.0, "first_ms": 2.0, "warmup_ms": 1.5, "mean_ms": p50, "std_ms": 0.1,
            "min_ms": p50 * 0.9, "p50_ms": p50, "p90_ms": p90, "p99_ms": p90, "max_ms": p90,
            "throughput_ips": 1000 / p50, "size_bytes": 1000, "peak_rss_growth_bytes": 0,
            "spread_p90_p50": p90 / p50, "noisy": runner.is_noisy({"p50_ms": p50,
                                                                   "p90_ms": p90})}


def test_cli_warns_when_the_spread_says_the_machine_is_noisy(monkeypatch):
    spreads = {"calm.tflite": (2.0, 2.2), "busy.tflite": (2.0, 3.4)}
    monkeypatch.setattr(runner, "benchmark",
                        lambda path, **kw: _fake_result(path, *spreads[path]))
    result = run("bench", "calm.tflite", "busy.tflite", "--json")
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "busy.tflite" in warnings[0] and "1.70" in warnings[0] and "noisy" in warnings[0]
    assert len(json.loads(result.stdout)) == 2


@pytest.mark.parametrize("args,fragment", [
    (["--json", "--csv", "x.csv"], "choose one of --json and --csv"),
    (["--threads", "0"], "thread counts >= 1"),
    (["--threads", "one"], "whole numbers separated by commas"),
    (["--serial", "ABC"], "only with --adb"),
    (["--csv", "/nonexistent/dir/x.csv"], "does not exist"),
])
def test_cli_bad_options_are_one_line_errors(tiny_models, args, fragment):
    result = run("bench", tiny_models["int8"], *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
