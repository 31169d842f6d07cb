"""`edgecnn sweep` (width x resolution, converted and benchmarked) and `edgecnn pick`."""
import csv
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import write_digit_folder
from stand_in_adb import CURRENT, REAL, elf, fake_adb  # noqa: F401  (fake_adb: a fixture)
from test_cli import LIGHT, assert_one_line_error

from edgecnn.cli import cli
from edgecnn.jobs.sweep import load_sweep, parse_list, pick_budget, report
from edgecnn.runtime.bench import is_noisy

ALPHAS, SIZES = (0.25, 0.5), (32, 48)
LEGACY = "05_tflite_readme_sample_mobilenet_quant_old_format.txt"  # no median, "Inference: "
# Few timed runs: these tests check what is written, not how fast anything is.
FAST = ["--runs", "5", "--warmup", "1", "--min-seconds", "0.02", "--calib-samples", "16"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """A real labelled image folder: 3 classes of the built-in digits as PNG files."""
    return write_digit_folder(tmp_path_factory.mktemp("digits"), limit=90)


def sweep_args(folder, data):
    return ["sweep", "mobilenet", "--alpha", ",".join(map(str, ALPHAS)), "--resolution",
            ",".join(map(str, SIZES)), "--int8", "--num-classes", 3, "--data", data, "-o",
            folder, *FAST]


@pytest.fixture(scope="module")
def grid(tmp_path_factory, digit_folder):
    """One real int8 sweep of mobilenet (2 alphas x 2 resolutions) with labelled data."""
    folder = tmp_path_factory.mktemp("sweep") / "sweep_mobilenet_int8"
    result = run(*sweep_args(folder, digit_folder), "--budget-ms", 1e6)
    assert result.exit_code == 0, result.output
    return folder, digit_folder, result


@pytest.fixture
def counters(monkeypatch):
    """Count conversions and benchmarks (the real ones still run)."""
    import edgecnn.jobs.convert as job
    import edgecnn.runtime.bench as bench

    calls = {"convert": [], "bench": []}
    real_convert, real_bench = job.run_convert, bench.benchmark

    def convert(name, **kw):
        calls["convert"].append(os.path.basename(kw["output"]))
        return real_convert(name, **kw)

    def benchmark(path, **kw):
        calls["bench"].append(os.path.basename(path))
        return real_bench(path, **kw)

    monkeypatch.setattr(job, "run_convert", convert)
    monkeypatch.setattr(bench, "benchmark", benchmark)
    return calls


def read_csv(folder):
    with open(folder / "sweep.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_tables_and_plots_agree_with_each_points_card(grid):
    folder, data, result = grid
    rows = read_csv(folder)
    assert [(float(r["alpha"]), int(r["resolution"])) for r in rows] == \
        [(a, s) for a in ALPHAS for s in SIZES]
    md = (folder / "sweep.md").read_text()
    for row in rows:
        stem = row["tflite"][:-len(".tflite")]
        card = json.loads((folder / f"{stem}.json").read_text())
        bench = json.loads((folder / f"{stem}.bench.json").read_text())
        tflite = folder / row["tflite"]
        # each point: a converted int8 model, its card and its benchmark, all consistent
        assert card["precision"] == "int8" and card["all_int8"]
        assert card["model"]["alpha"] == float(row["alpha"])
        assert card["model"]["resolution"] == int(row["resolution"])
        assert card["model"]["num_classes"] == 3
        assert int(row["params"]) == card["params"] and int(row["macs"]) == card["macs"]
        assert int(row["size_bytes"]) == card["size_bytes"] == tflite.stat().st_size
        assert bench["model"] == row["tflite"] and bench["threads"] == 1
        assert float(row["p50_ms"]) == bench["p50_ms"] > 0
        assert bench["min_ms"] <= bench["p50_ms"] <= bench["p90_ms"] <= bench["max_ms"]
        # with --data: top-1 measured on the labelled images, as the card says
        assert float(row["top1"]) == card["accuracy"]["tflite_top1"]
        assert card["accuracy"]["samples"] == int(row["accuracy_samples"]) > 0
        md_row = (f"| {float(row['alpha']):g} | {row['resolution']} | "
                  f"{card['params'] / 1e6:.2f} M | {card['macs'] / 1e6:,.1f} M |")
        assert md_row in md
    # more width or more pixels cost more MACs: the table is the paper's grid
    macs = {(float(r["alpha"]), int(r["resolution"])): int(r["macs"]) for r in rows}
    assert macs[0.25, 32] < macs[0.25, 48] < macs[0.5, 48] and macs[0.5, 32] < macs[0.5, 48]
    assert "top-1 %" in md and str(data) in md
    for png in ("sweep_latency_vs_macs.png", "sweep_accuracy_vs_latency.png"):
        assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in md
    # a budget everyone fits: the pick is the best top-1 (ties: the faster one)
    best = max(rows, key=lambda r: (float(r["top1"]), -float(r["p50_ms"])))
    assert f"pick: alpha {float(best['alpha']):g} resolution {best['resolution']}:" in \
        result.output
    assert "nothing better is over the budget" in result.output
    assert "0 already in the folder" in result.output


def test_rerun_redoes_nothing_and_a_lost_result_redoes_only_that_point(grid, counters):
    folder, data, _ = grid
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()
              if p.suffix == ".tflite" or p.name.endswith(".bench.json")}
    result = run(*sweep_args(folder, data))
    assert result.exit_code == 0, result.output
    assert counters == {"convert": [], "bench": []}
    assert "0 measured, 4 already in the folder" in result.output
    assert stamps == {name: (folder / name).stat().st_mtime_ns for name in stamps}

    # one point's benchmark lost, another's cut short (a crash mid-write): only those two
    # are measured again; their converted models are complete, so nothing is reconverted
    (folder / "mobilenet_0.5_32_int8.bench.json").unlink()
    text = (folder / "mobilenet_0.25_48_int8.bench.json").read_text()
    (folder / "mobilenet_0.25_48_int8.bench.json").write_text(text[:len(text) // 2])
    result = run(*sweep_args(folder, data))
    assert result.exit_code == 0, result.output
    assert counters["convert"] == []
    assert sorted(counters["bench"]) == ["mobilenet_0.25_48_int8.tflite",
                                         "mobilenet_0.5_32_int8.tflite"]
    assert "2 measured, 2 already in the folder" in result.output
    assert len(read_csv(folder)) == 4
    json.loads((folder / "mobilenet_0.25_48_int8.bench.json").read_text())


@pytest.mark.slow  # 40-57 s: out of the default set (kept near 10 min)
def test_parallel_conversions_give_the_same_tables_and_resume(grid, tmp_path):
    """--jobs 2: the points are converted in two worker processes first, then benchmarked
    one at a time; the tables equal the one-process sweep's apart from the timings, and a
    rerun after losing a model converts that point alone."""
    folder, data, _ = grid
    parallel = tmp_path / "sweep_parallel"
    result = run(*sweep_args(parallel, data), "--jobs", 2)
    assert result.exit_code == 0, result.output
    assert "4 measured, 0 already in the folder" in result.output
    # timings differ; so does size_bytes by a few bytes: the .tflite carries its card, whose
    # conversion time is printed with as many digits as it has
    timing = {"runs", "p50_ms", "p90_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "noisy",
              "size_bytes"}
    one, two = read_csv(folder), read_csv(parallel)
    assert [{k: v for k, v in r.items() if k not in timing} for r in two] == \
        [{k: v for k, v in r.items() if k not in timing} for r in one]
    for a, b in zip(one, two):
        assert abs(int(a["size_bytes"]) - int(b["size_bytes"])) <= 16
    for row in two:   # the models themselves: the same bytes apart from the card's times
        card1 = json.loads((folder / row["tflite"].replace(".tflite", ".json")).read_text())
        card2 = json.loads((parallel / row["tflite"].replace(".tflite", ".json")).read_text())
        assert card1["ops"] == card2["ops"] and card1["agreement"] == card2["agreement"]
        assert card1["accuracy"] == card2["accuracy"]
    kept = {p.name: p.stat().st_mtime_ns for p in parallel.glob("*.tflite")}
    (parallel / "mobilenet_0.5_48_int8.tflite").unlink()
    result = run(*sweep_args(parallel, data), "--jobs", 2)
    assert result.exit_code == 0, result.output
    assert "1 measured, 3 already in the folder" in result.output
    again = {p.name: p.stat().st_mtime_ns for p in parallel.glob("*.tflite")}
    assert {n for n in again if again[n] != kept.get(n)} == {"mobilenet_0.5_48_int8.tflite"}


def test_a_device_farm_sweep_writes_one_table_and_pick_per_device(grid, counters, fake_adb,
                                                                    tmp_path):
    """--adb -s A -s B: the converted points benchmarked on two (stand-in) phones over adb:
    each device gets its own folder with sweep.csv, sweep.md, plots and budget pick; this
    machine's results stay as they were; a rerun measures only what a device lacks."""
    import shutil

    folder, data, _ = grid
    farm = tmp_path / "farm"
    shutil.copytree(folder, farm)
    local_csv = (farm / "sweep.csv").read_text()
    # two phones answering with two real benchmark_model outputs: a current one (median
    # 899.281 ms) and an old one without a median (mean "Inference: 79760.9" us)
    fake_adb.save(devices={"AAA111": "device", "BBB222": "device"},
                  product_by_serial={"AAA111": "Pixel 7", "BBB222": "Pixel 4a"},
                  replay_by_serial={"AAA111": os.path.join(REAL, CURRENT),
                                    "BBB222": os.path.join(REAL, LEGACY)})
    binary = elf(tmp_path / "android_aarch64_benchmark_model")
    farm_args = [*sweep_args(farm, data), "--adb", "-s", "AAA111", "-s", "BBB222",
                 "--benchmark-binary", binary, "--budget-ms", 100]
    result = run(*farm_args)
    assert result.exit_code == 0, result.output
    assert counters == {"convert": [], "bench": []}  # converted already, nothing timed here
    runs = [c for c in fake_adb.calls() if any(a.startswith("--graph=") for a in c)]
    assert sorted(c[1] for c in runs) == ["AAA111"] * 4 + ["BBB222"] * 4
    assert (farm / "sweep.csv").read_text() == local_csv

    expected = {"AAA111": ("Pixel 7", 899.281), "BBB222": ("Pixel 4a", 79.7609)}
    local = {r["tflite"]: r for r in read_csv(folder)}
    sections = result.output.split(" on Pixel ")
    assert len(sections) == 3  # one table per device
    for serial, (product, p50) in expected.items():
        device = farm / "devices" / serial
        rows = read_csv(device)
        assert [(float(r["alpha"]), int(r["resolution"])) for r in rows] == \
            [(a, s) for a in ALPHAS for s in SIZES]
        for row in rows:  # the device's latency, the point's own card (top-1, MACs)
            assert float(row["p50_ms"]) == pytest.approx(p50)
            assert row["top1"] == local[row["tflite"]]["top1"]
            assert row["macs"] == local[row["tflite"]]["macs"]
        md = (device / "sweep.md").read_text()
        assert f"{product} (adb serial {serial}, arm64-v8a)" in md
        assert "android_aarch64_benchmark_model" in md and "delegate xnnpack" in md
        assert ("prints no median" in md) == (serial == "BBB222")
        assert (device / "sweep_latency_vs_macs.png").read_bytes()[:4] == b"\x89PNG"
        section = next(s for s in sections[1:] if s.startswith(product[len("Pixel "):]))
        if serial == "AAA111":
            assert "nothing fits 100 ms p50" in section
        else:  # everything fits: the best top-1
            top = max(float(r["top1"]) for r in rows)
            assert "pick: alpha" in section and f"top-1 {top:.1f} %" in \
                section.split("pick: ")[1].splitlines()[0]

    # edgecnn pick: this machine's and each device's pick from the folder
    picked = run("pick", farm, "--budget-ms", 100, "--json")
    assert picked.exit_code == 0, picked.output
    picks = {p["device"]: p for p in json.loads(picked.output)}
    assert set(picks) == {None, "AAA111", "BBB222"}
    assert picks["AAA111"]["best"] is None and picks["BBB222"]["best"] is not None

    # a rerun measures nothing; a lost result is measured again on its device alone
    (farm / "devices" / "BBB222" / "mobilenet_0.5_32_int8.bench.json").unlink()
    before = len(fake_adb.calls())
    result = run(*farm_args)
    assert result.exit_code == 0, result.output
    runs = [c for c in fake_adb.calls()[before:] if any(a.startswith("--graph=") for a in c)]
    assert [c[1] for c in runs] == ["BBB222"]
    assert any(a.startswith("--graph=") and "mobilenet_0.5_32_int8" in a for a in runs[0])
    assert counters == {"convert": [], "bench": []}


def test_device_farm_bad_input(grid, fake_adb, tmp_path):
    folder, data, _ = grid
    for args, fragment in [
            (["--adb", "-s", "AAA111"], "--adb needs --benchmark-binary"),
            (["-s", "AAA111"], "--serial: only with --adb"),
            (["--adb", "-s", "NOPE", "--benchmark-binary", elf(tmp_path / "bm")],
             "device NOPE is not connected")]:
        out = tmp_path / f"bad{len(os.listdir(tmp_path))}"
        assert_one_line_error(run(*sweep_args(out, data), *args), fragment)
        assert not out.exists()  # refused before anything is written


def test_a_lost_model_is_converted_again(grid, counters):
    folder, data, _ = grid
    (folder / "mobilenet_0.25_32_int8.tflite").unlink()
    result = run(*sweep_args(folder, data))
    assert result.exit_code == 0, result.output
    assert counters["convert"] == ["mobilenet_0.25_32_int8.tflite"]
    assert counters["bench"] == ["mobilenet_0.25_32_int8.tflite"]


def test_resuming_with_other_settings_is_refused(grid, counters):
    folder, data, _ = grid
    result = run(*sweep_args(folder, data), "--threads", 2)
    assert_one_line_error(result, "other settings", "threads 1", "(now 2)")
    assert counters == {"convert": [], "bench": []}


# --- picking from a handmade sweep (no TensorFlow needed) -------------------------------------

# (alpha, resolution, p50 ms, MACs, top-1): more MACs is not always more accurate here
HANDMADE = [(0.25, 128, 2.0, 14_000_000, 40.0), (0.5, 128, 4.0, 49_000_000, 55.0),
            (0.5, 160, 6.5, 77_000_000, 58.0), (0.75, 128, 7.0, 104_000_000, 57.0),
            (1.0, 128, 11.0, 186_000_000, 64.0), (1.0, 160, 17.0, 291_000_000, 66.0)]


def make_sweep(folder, points=HANDMADE, accuracy=True):
    folder.mkdir()
    (folder / "sweep.json").write_text(json.dumps(
        {"name": "mobilenet", "precision": "int8", "threads": 1, "xnnpack": True,
         "num_classes": 10, "options": {}, "weights": "none",
         "data": "/data/val" if accuracy else None, "calib_samples": 200}))
    for i, (alpha, size, p50, macs, top1) in enumerate(points):
        stem = f"mobilenet_{alpha:g}_{size}_int8"
        (folder / f"{stem}.tflite").write_bytes(b"\0" * (1000 + i))
        (folder / f"{stem}.json").write_text(json.dumps(
            {"precision": "int8", "model": {"name": "mobilenet", "alpha": alpha,
                                            "resolution": size},
             "params": macs // 50, "macs": macs, "size_bytes": 1000 + i,
             "accuracy": {"samples": 500, "keras_top1": top1, "tflite_top1": top1}
             if accuracy else None}))
        (folder / f"{stem}.bench.json").write_text(json.dumps(
            {"model": f"{stem}.tflite", "threads": 1, "xnnpack": True, "runs": 50,
             "p50_ms": p50, "p90_ms": p50 * 1.1, "mean_ms": p50, "std_ms": 0.1,
             "min_ms": p50 * 0.9, "max_ms": p50 * 1.5, "size_bytes": 1000 + i}))
    return folder


def picked(pick):
    return {k: None if v is None else (v["alpha"], v["resolution"])
            for k, v in (("best", pick.best), ("inside", pick.inside), ("over", pick.over))}


def test_pick_by_macs_and_by_accuracy(tmp_path):
    rows = [p.row() for p in load_sweep(str(make_sweep(tmp_path / "s")))[1]]
    # within 7 ms the most MACs is 0.75/128; by accuracy 0.5/160 beats it (58 > 57)
    assert picked(pick_budget(rows, 7.0, by="macs")) == {
        "best": (0.75, 128), "inside": (0.5, 160), "over": (1.0, 128)}
    assert picked(pick_budget(rows, 7.0)) == {  # the sweep has top-1: pick by accuracy
        "best": (0.5, 160), "inside": (0.75, 128), "over": (1.0, 128)}
    # the budget is inclusive; over the budget, the first step that would be better
    assert picked(pick_budget(rows, 11.0))["best"] == (1.0, 128)
    assert picked(pick_budget(rows, 10.9))["over"] == (1.0, 128)


def test_pick_when_nothing_fits_and_when_everything_fits(tmp_path):
    rows = [p.row() for p in load_sweep(str(make_sweep(tmp_path / "s")))[1]]
    none_fit = pick_budget(rows, 1.5, by="macs")
    assert picked(none_fit) == {"best": None, "inside": None, "over": (0.25, 128)}
    assert none_fit.lines()[0] == "nothing fits 1.5 ms p50"
    assert "fastest configuration: alpha 0.25 resolution 128" in none_fit.lines()[1]
    all_fit = pick_budget(rows, 100, by="macs")
    assert picked(all_fit) == {"best": (1.0, 160), "inside": (1.0, 128), "over": None}
    assert "nothing better is over the budget" in all_fit.lines()[-1]


def test_pick_command_reads_a_sweep_folder(tmp_path):
    folder = make_sweep(tmp_path / "s", accuracy=False)
    # an incomplete point (its benchmark never finished) is not a candidate
    (folder / "mobilenet_1_160_int8.bench.json").write_text('{"model": "mobil')
    result = run("pick", folder, "--budget-ms", 100, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["by"] == "macs" and out["best"]["alpha"] == 1.0 and out["best"]["resolution"] == 128
    assert out["over"] is None
    result = run("pick", folder, "--budget-ms", 5)
    assert result.exit_code == 0, result.output
    assert "pick: alpha 0.5 resolution 128" in result.output
    assert "next step over the budget: alpha 0.5 resolution 160" in result.output
    assert_one_line_error(run("pick", folder, "--budget-ms", 5, "--by", "accuracy"),
                          "--data")


def test_pick_works_without_tensorflow(tmp_path):
    folder = make_sweep(tmp_path / "s")
    proc = subprocess.run([sys.executable, "-c", LIGHT, "pick", str(folder), "--budget-ms", "7",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["best"]["resolution"] == 160


def test_report_rewrites_tables_and_plots_are_optional(tmp_path, monkeypatch):
    folder = make_sweep(tmp_path / "s")
    result = report(str(folder), budget_ms=7)
    rows = read_csv(folder)
    assert [(float(r["alpha"]), int(r["resolution"]), float(r["p50_ms"]), int(r["macs"]),
             float(r["top1"])) for r in rows] == HANDMADE
    md = (folder / "sweep.md").read_text()
    assert "## Budget 7 ms (p50)" in md and "- pick: alpha 0.5 resolution 160" in md
    assert "| 0.5 | 4.00 | 6.50 |" in md  # the alpha x resolution latency grid
    assert len(result.files["plots"]) == 2
    for path in result.files["plots"]:
        os.unlink(path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if matplotlib were missing
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = report(str(folder))
    assert result.files["plots"] == [] and "matplotlib is not installed" in result.notes[0]
    assert not any(p.suffix == ".png" for p in folder.iterdir())
    assert (folder / "sweep.csv").exists() and "## Plots" not in (folder / "sweep.md").read_text()


def test_a_busy_machine_is_flagged(tmp_path):
    folder = make_sweep(tmp_path / "s")
    bench = folder / "mobilenet_0.5_128_int8.bench.json"
    # the core was shared: the median run took twice the fastest one
    bench.write_text(json.dumps({**json.loads(bench.read_text()), "min_ms": 2.0}))
    report(str(folder), plots=False)
    assert [r["noisy"] for r in read_csv(folder)] == \
        ["True" if (a, s) == (0.5, 128) else "False" for a, s, *_ in HANDMADE]
    assert "Noisy measurements" in (folder / "sweep.md").read_text()
    assert is_noisy({"p50_ms": 1.0, "p90_ms": 1.6, "min_ms": 0.9}, against_min=True)
    assert not is_noisy({"p50_ms": 1.0, "p90_ms": 1.2, "min_ms": 0.9}, against_min=True)


# --- bad input: one line, exit status 2, before any work ---------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["--alpha", "0.25,abc"], ["--alpha", "comma-separated numbers", "0.25,abc"]),
    (["--alpha", ","], ["--alpha"]),
    (["--alpha", "0.5,-1"], ["--alpha", "> 0"]),
    (["--resolution", "128.5"], ["--resolution", "whole numbers"]),
    (["--resolution", "8"], ["at least"]),
    (["--int8", "--fp16"], ["choose one precision"]),
    (["--budget-ms", "0"], ["budget", "> 0"]),
    (["--io", "int8"], ["--io int8 needs --int8"]),
])
def test_sweep_bad_input(tmp_path, args, fragments, counters):
    result = run("sweep", "mobilenet", "-o", tmp_path / "s", *args)
    assert_one_line_error(result, *fragments)
    assert counters == {"convert": [], "bench": []}


def test_sweep_data_must_match_the_classes(tmp_path, digit_folder):
    result = run("sweep", "mobilenet", "--data", digit_folder, "-o", tmp_path / "s")
    assert_one_line_error(result, "3 classes", "--num-classes 3")


def test_pick_bad_input(tmp_path):
    assert_one_line_error(run("pick", tmp_path / "nope", "--budget-ms", 5), "does not exist")
    assert_one_line_error(run("pick", tmp_path, "--budget-ms", 5), "not a sweep folder")
    folder = make_sweep(tmp_path / "s")
    assert_one_line_error(run("pick", folder, "--budget-ms", -3), "budget", "> 0")
    assert_one_line_error(run("pick", folder, "--budget-ms", "nan"), "budget")


def test_parse_list():
    assert parse_list("0.25, 0.5,0.25", "--alpha") == [0.25, 0.5]
    assert parse_list("128,160", "--resolution", int) == [128, 160]
    with pytest.raises(ValueError, match="--resolution"):
        parse_list("128,1e3", "--resolution", int)


def test_sweep_needs_tensorflow_and_says_so():
    proc = subprocess.run([sys.executable, "-c", LIGHT, "sweep", "mobilenet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        ('error: building or converting a model needs TensorFlow (tensorflow is not installed): '
         'install the full profile with pip install "edgecnn[tf]"')]
