"""`edgecnn bench --adb`: the parser of TFLite benchmark_model's output (both generations) and
the adb command sequence.

There is no phone here. The adb tests put a STAND-IN `adb` on PATH: a small script
tests/stand_in_adb.py writes, which records its arguments and answers like adb would (device list, pushes,
getprop) and, for the benchmark_model run, replays a REAL benchmark_model output from
tests/data/benchmark_outputs/ (outputs published in public repositories, copied byte-exact;
its README.md cites the source of each file). What is tested is edgecnn's side: the commands
it sends, in order, and what it makes of the answers.
"""
import json
import os
import shutil
import textwrap

import pytest
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.errors import EdgecnnError
from edgecnn.runtime.adb import REMOTE_BINARY, benchmark_adb, parse_benchmark_output

from stand_in_adb import CURRENT, REAL, elf, fake_adb  # noqa: F401  (fake_adb: a fixture)

pytestmark = pytest.mark.device  # needs only the light install (make test-arm64)

CURRENT_SCI = "01_mobilenet_v1_riscv_qemu_op_profiling.txt"  # "Num threads", avg=2.95034e+06
V24_TAIL = "03_yolov5s_android_cpu_plain_tail.txt"  # v2.4 "Peak memory footprint (MB)" line
LEGACY = "05_tflite_readme_sample_mobilenet_quant_old_format.txt"  # "Average inference ..."
FAILED = "04_yolov5s_android_nnapi_failed.txt"  # NNAPI delegate failure, "Benchmarking failed."
PERIODIC_PEAK = "11_chromeos_tast_xnnpack_selected_lines_periodic_peak_memory.txt"  # "Overall
# peak memory footprint (MB) via periodic monitoring: ..." (--report_peak_memory_footprint)
ASSETS = os.path.join(os.path.dirname(__file__), "..", "android_demo", "app", "src", "main",
                      "assets")
with open(os.path.join(ASSETS, "edgecnn_bundle.json")) as _f:
    BUNDLED_MODEL = os.path.join(ASSETS, json.load(_f)["model"])  # a real edgecnn model


def recorded(name):
    with open(os.path.join(REAL, name)) as f:
        return f.read()


# --- the parser ------------------------------------------------------------------------------

def test_parses_the_current_generation():
    r = parse_benchmark_output(recorded(CURRENT))
    # 09: "INFO: Inference timings in us: Init: 614333, First inference: 905463, Warmup (avg):
    #  905463, Inference (avg): 899641" and the timed runs' line "INFO: count=50 first=900416
    #  curr=898333 min=898007 max=906121 avg=899641 std=1549 p5=898333 median=899281 p95=904305"
    #  after the warmup line "INFO: count=1 curr=905463 p5=905463 median=905463 p95=905463"
    assert r["output_generation"] == "current"
    assert r["init_ms"] == pytest.approx(614.333) and r["first_ms"] == pytest.approx(905.463)
    assert r["warmup_ms"] == pytest.approx(905.463) and r["mean_ms"] == pytest.approx(899.641)
    assert r["runs"] == 50 and r["warmup_runs"] == 1
    assert (r["min_ms"], r["max_ms"], r["std_ms"]) == pytest.approx((898.007, 906.121, 1.549))
    assert (r["p5_ms"], r["p50_ms"], r["p95_ms"]) == pytest.approx((898.333, 899.281, 904.305))
    assert r["p90_ms"] is None and r["p99_ms"] is None  # benchmark_model does not print them
    # "INFO: Memory footprint delta from the start of the tool (MB): init=146.363 overall=150.141"
    assert r["init_rss_growth_mb"] == pytest.approx(146.363)
    assert r["peak_rss_growth_mb"] == pytest.approx(150.141)
    # "INFO: The input model file size (MB): 67.3128"; this build echoes no "Num threads"
    assert r["model_size_mb"] == pytest.approx(67.3128) and "num_threads" not in r
    assert "peak_memory_mb" not in r  # run without --report_peak_memory_footprint
    assert r["throughput_ips"] == pytest.approx(1000 / 899.641)

    r = parse_benchmark_output(recorded(CURRENT_SCI))
    # 01: "Num threads: [4]", "The input model file size (MB): 16.9008", and scientific
    # notation: "Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg):
    # 3.51239e+06, Inference (avg): 2.95034e+06"; "count=50 first=2990275 curr=2913402
    # min=2727568 max=3189954 avg=2.95034e+06 std=109798" (no percentiles in this build)
    assert r["output_generation"] == "current" and r["num_threads"] == 4
    assert r["model_size_mb"] == pytest.approx(16.9008)
    assert r["init_ms"] == pytest.approx(17.187) and r["first_ms"] == pytest.approx(3512.391)
    assert r["warmup_ms"] == pytest.approx(3512.39) and r["mean_ms"] == pytest.approx(2950.34)
    assert r["runs"] == 50 and r["warmup_runs"] == 1 and r["p50_ms"] is None
    assert (r["min_ms"], r["max_ms"], r["std_ms"]) == pytest.approx((2727.568, 3189.954,
                                                                     109.798))
    # "Memory footprint delta from the start of the tool (MB): init=4.21094 overall=46.0859"
    assert r["init_rss_growth_mb"] == pytest.approx(4.21094)
    assert r["peak_rss_growth_mb"] == pytest.approx(46.0859)

    r = parse_benchmark_output(recorded(V24_TAIL))
    # 03 (TFLite v2.4, tail only): the older wording "Peak memory footprint (MB):
    # init=4.92969 overall=138.809"; only the timed runs' count line was published
    assert r["mean_ms"] == pytest.approx(249.684) and r["first_ms"] == pytest.approx(360.262)
    assert r["runs"] == 50 and r["warmup_runs"] is None
    assert r["init_rss_growth_mb"] == pytest.approx(4.92969)
    assert r["peak_rss_growth_mb"] == pytest.approx(138.809)


def test_parses_the_legacy_generation():
    r = parse_benchmark_output(recorded(LEGACY))
    # 05 (official README sample, ~2018): "Average inference timings in us: Warmup: 83235,
    # Init: 38467, Inference: 79760.9", after an op profile. The published block has no
    # "count=" lines, so there is no run count, first run or spread from them.
    assert r["output_generation"] == "legacy"
    assert r["init_ms"] == pytest.approx(38.467) and r["warmup_ms"] == pytest.approx(83.235)
    assert r["mean_ms"] == pytest.approx(79.7609)
    assert r["throughput_ips"] == pytest.approx(1000 / 79.7609)
    assert r["first_ms"] is None and r["runs"] is None and r["warmup_runs"] is None
    assert r["p50_ms"] is None and r["min_ms"] is None
    assert "init_rss_growth_mb" not in r and "peak_rss_growth_mb" not in r  # none printed
    # the profile's own "Timings (microseconds): count=50 first=79449 curr=81350 min=77385
    # max=88213 avg=79732 std=1929" stays in the op profile, not in the summary fields
    assert r["op_profile"]["timings_us"]["count"] == 50
    assert r["op_profile"]["timings_us"]["avg"] == pytest.approx(79732)


def test_parses_the_oldest_summary_and_all_same_stat_lines():
    text = textwrap.dedent("""\
        Running benchmark for 1 iterations
        count=1 curr=146161

        Running benchmark for 50 iterations
        count=50 first=137789 curr=137254 min=137079 max=143416 avg=137722 std=896

        Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722
    """)
    r = parse_benchmark_output(text)
    assert r["mean_ms"] == pytest.approx(137.722) and r["init_ms"] == pytest.approx(4.452)
    assert r["first_ms"] == pytest.approx(146.161) and r["warmup_runs"] == 1
    same = parse_benchmark_output("INFO: count=5 curr=900(all same)\n"
                                  "INFO: count=60 curr=800(all same)\n")
    assert same["runs"] == 60 and same["min_ms"] == same["max_ms"] == same["mean_ms"] == 0.8
    assert same["std_ms"] == 0 and same["first_ms"] == pytest.approx(0.9)


def test_parses_the_periodic_peak_memory_line():
    r = parse_benchmark_output(recorded(PERIODIC_PEAK))
    # 11 (ChromeOS tast, --report_peak_memory_footprint=true, lines selected by the author):
    # "INFO: Overall peak memory footprint (MB) via periodic monitoring: 93.2383" after
    # "INFO: Inference timings in us: Init: 3337, First inference: 81913, Warmup (avg): 58984.7,
    #  Inference (avg): 56265.8"
    assert r["peak_memory_mb"] == pytest.approx(93.2383)
    assert r["output_generation"] == "current"
    assert r["init_ms"] == pytest.approx(3.337) and r["first_ms"] == pytest.approx(81.913)
    assert r["warmup_ms"] == pytest.approx(58.9847) and r["mean_ms"] == pytest.approx(56.2658)
    # "INFO: count=9 first=81913 ..." (warmup) and "INFO: count=1061 first=56576 curr=56299
    # min=54669 max=60236 avg=56265.8 std=982"
    assert r["runs"] == 1061 and r["warmup_runs"] == 9
    assert (r["min_ms"], r["max_ms"], r["std_ms"]) == pytest.approx((54.669, 60.236, 0.982))
    # the author left out the "Memory footprint delta" line: no RSS growth is made up
    assert "peak_rss_growth_mb" not in r


def test_a_rejected_model_or_no_results_are_errors():
    # 04: "ERROR: Node number 248 (TfLiteNnapiDelegate) failed to prepare." ... "Failed to
    # apply NNAPI delegate." / "Benchmarking failed."; edgecnn quotes the "Failed to apply"
    # line (one of its MODEL_REJECTED markers)
    with pytest.raises(EdgecnnError, match=r"^benchmark_model could not run the model: "
                                           r"Failed to apply NNAPI delegate\.$"):
        parse_benchmark_output(recorded(FAILED))
    with pytest.raises(EdgecnnError, match="no benchmark results"):
        parse_benchmark_output("hello\n")
    # 10: a Run Order table alone, no timings anywhere
    with pytest.raises(EdgecnnError, match="no benchmark results"):
        parse_benchmark_output(recorded("10_deeplabv3_nnapi_run_order_only.txt"))


@pytest.fixture()
def files(tmp_path):
    model = tmp_path / "mobilenet v2 int8.tflite"
    shutil.copy(BUNDLED_MODEL, model)  # a real model: edgecnn verifies it before pushing
    return {"model": str(model), "binary": elf(tmp_path / "android_aarch64_benchmark_model")}


def test_command_sequence_and_result_row(fake_adb, files):
    rows = benchmark_adb(files["model"], files["binary"], serials=["R58M41ABCDE"], threads=[4],
                         taskset="f0")
    remote_model = "/data/local/tmp/edgecnn_mobilenet_v2_int8.tflite"
    s = ["-s", "R58M41ABCDE"]
    assert fake_adb.calls() == [
        ["devices"],
        s + ["shell", "getprop ro.product.model; getprop ro.product.cpu.abilist"],
        s + ["push", files["binary"], REMOTE_BINARY],
        s + ["shell", "chmod", "755", REMOTE_BINARY],
        s + ["push", files["model"], remote_model],
        s + ["shell", "taskset", "f0", REMOTE_BINARY, f"--graph={remote_model}",
             "--num_threads=4", "--use_xnnpack=true"],
        s + ["shell", "rm", "-f", remote_model],
    ]
    (row,) = rows
    parsed = parse_benchmark_output(recorded(CURRENT))
    assert row["source"] == "adb:R58M41ABCDE" and row["device"] == "Pixel 7"
    assert row["abi"] == "arm64-v8a" and row["threads"] == 4 and row["taskset"] == "f0"
    assert row["xnnpack"] and row["delegate"] == "xnnpack"
    assert row["model"] == "mobilenet v2 int8.tflite"
    assert row["size_bytes"] == os.path.getsize(files["model"])
    for key in ("init_ms", "first_ms", "warmup_ms", "mean_ms", "p50_ms", "runs", "min_ms"):
        assert row[key] == parsed[key], key
    assert row["peak_rss_growth_bytes"] == round(parsed["peak_rss_growth_mb"] * 2**20)
    # 09: "... p5=898333 median=899281 p95=904305"
    assert row["spread_p90_p50"] == pytest.approx(904.305 / 899.281) and not row["noisy"]


def test_delegate_and_run_count_flags(fake_adb, files):
    benchmark_adb([files["model"]], files["binary"], threads=[1], runs=100, warmup=5,
                  min_seconds=2, use_gpu=True)
    run = [c for c in fake_adb.calls() if any(a.startswith("--graph=") for a in c)][0]
    assert run[run.index(REMOTE_BINARY):][2:] == [
        "--num_threads=1", "--num_runs=100", "--warmup_runs=5", "--min_secs=2",
        "--use_gpu=true"]
    benchmark_adb([files["model"]], files["binary"], threads=[2], use_nnapi=True)
    run = [c for c in fake_adb.calls() if any(a.startswith("--graph=") for a in c)][-1]
    assert run[-2:] == ["--num_threads=2", "--use_nnapi=true"] and "taskset" not in run


def test_several_serials_run_in_parallel_one_row_each(fake_adb, files):
    fake_adb.save(devices={"AAA111": "device", "BBB222": "device"},
                  replay=os.path.join(REAL, LEGACY))
    rows = benchmark_adb([files["model"]], files["binary"], serials=["BBB222", "AAA111"],
                         threads=[1, 4])
    assert [(r["source"], r["threads"]) for r in rows] == [
        ("adb:BBB222", 1), ("adb:AAA111", 1), ("adb:BBB222", 4), ("adb:AAA111", 4)]
    assert all(r["output_generation"] == "legacy" and r["p50_ms"] is None for r in rows)
    assert all(r["mean_ms"] == pytest.approx(79.7609) for r in rows)  # "Inference: 79760.9"
    for serial in ("AAA111", "BBB222"):
        mine = [c for c in fake_adb.calls() if c[:2] == ["-s", serial]]
        assert [c[2] for c in mine] == ["shell", "push", "shell", "push", "shell", "shell",
                                        "shell"]


@pytest.mark.parametrize("devices,serials,fragment", [
    ({}, None, "no Android device found"),
    ({"R58M41ABCDE": "unauthorized"}, None, "unauthorized: unlock it"),
    ({"R58M41ABCDE": "offline"}, None, "is offline"),
    ({"A1": "device", "B2": "device"}, None, "choose with --serial"),
    ({"A1": "device"}, ["ZZZ"], "ZZZ is not connected"),
])
def test_device_errors(fake_adb, files, devices, serials, fragment):
    fake_adb.save(devices=devices)
    with pytest.raises(EdgecnnError, match=fragment):
        benchmark_adb(files["model"], files["binary"], serials=serials)


def test_adb_not_found(files, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("ADB", raising=False)
    with pytest.raises(EdgecnnError, match="adb not found.*platform-tools"):
        benchmark_adb(files["model"], files["binary"])


def test_binary_errors(fake_adb, files, tmp_path):
    script = tmp_path / "benchmark_model.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(EdgecnnError, match="not an executable"):
        benchmark_adb(files["model"], str(script))
    with pytest.raises(EdgecnnError, match="built for arm but device .* runs arm64-v8a"):
        fake_adb.save(abilist="arm64-v8a")
        benchmark_adb(files["model"], elf(tmp_path / "arm_benchmark_model", machine=40))
    denied = tmp_path / "denied.txt"
    denied.write_text("/system/bin/sh: /data/local/tmp/benchmark_model: can't execute: "
                      "Permission denied\n")
    fake_adb.save(replay=str(denied), exit=126)
    with pytest.raises(EdgecnnError, match="not executable on R58M41ABCDE"):
        benchmark_adb(files["model"], files["binary"])


def test_model_rejected_by_the_device(fake_adb, files):
    # 04 is a real run with --use_nnapi=true whose NNAPI delegate failed ("Benchmarking failed.")
    fake_adb.save(replay=os.path.join(REAL, FAILED), exit=1)
    with pytest.raises(EdgecnnError, match=r"R58M41ABCDE rejected mobilenet v2 int8\.tflite: "
                                           r"Failed to apply NNAPI delegate\."):
        benchmark_adb(files["model"], files["binary"], use_nnapi=True)
    run = [c for c in fake_adb.calls() if any(a.startswith("--graph=") for a in c)][0]
    assert run[-1] == "--use_nnapi=true"
    # the model is removed from the device even then
    assert fake_adb.calls()[-1][-3:-1] == ["rm", "-f"]


def test_cli_adb_rows_and_table(fake_adb, files):
    result = CliRunner().invoke(cli, ["bench", files["model"], "--adb", "--serial",
                                      "R58M41ABCDE", "--benchmark-binary", files["binary"],
                                      "--threads", "1,4", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["source"], r["threads"]) for r in rows] == [("adb:R58M41ABCDE", 1),
                                                            ("adb:R58M41ABCDE", 4)]
    fake_adb.save(replay=os.path.join(REAL, LEGACY))
    result = CliRunner().invoke(cli, ["bench", files["model"], "--adb", "--benchmark-binary",
                                      files["binary"]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # 05: "Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9"
    assert "Pixel 7" in result.stdout and "79.761" in result.stdout  # the legacy mean
    assert "prints no median" in result.stderr


@pytest.mark.parametrize("args,fragment", [
    ([], "--adb needs --benchmark-binary"),
    (["--benchmark-binary", "nope"], "nope does not exist"),
    (["--benchmark-binary", "{binary}", "--taskset", "big"], "hexadecimal CPU mask"),
    (["--benchmark-binary", "{binary}", "--use-gpu", "--use-nnapi"], "choose one of"),
    (["--benchmark-binary", "{binary}", "--input", "cat.jpg"], "--input is for local runs"),
])
def test_cli_adb_errors(fake_adb, files, args, fragment):
    args = [a.format(**files) for a in args]
    result = CliRunner().invoke(cli, ["bench", files["model"], "--adb", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]


def test_profile_flag_asks_for_op_profiling_and_the_row_carries_the_tables(fake_adb, files):
    """--profile: benchmark_model gets --enable_op_profiling=true, and a real profiled output
    (tests/data/benchmark_outputs/01, published with its source) comes back as the row's
    op_profile."""
    fake_adb.save(replay=os.path.join(REAL, "01_mobilenet_v1_riscv_qemu_op_profiling.txt"))
    (row,) = benchmark_adb([files["model"]], files["binary"], threads=[4], profile=True)
    run = [c for c in fake_adb.calls() if any(a.startswith("--graph=") for a in c)][0]
    assert run[-1] == "--enable_op_profiling=true"
    assert row["mean_ms"] == pytest.approx(2950.34)
    assert len(row["op_profile"]["run_order"]) == 31
    assert row["op_profile"]["top"][0]["node_type"] == "CONV_2D"


def test_cli_from_output_gives_the_bench_schema_and_prints_the_profile():
    saved = [os.path.join(REAL, name) for name in ("01_mobilenet_v1_riscv_qemu_op_profiling.txt",
                                                   "09_ti_am62x_xnnpack_plain_info_prefix.txt")]
    args = ["bench", "--from-output", saved[0], "--from-output", saved[1]]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.output)
    assert first["source"] == second["source"] == "saved output"
    assert first["model"] == os.path.basename(saved[0]) and first["threads"] == 4
    assert first["op_profile"]["section"] == "regular" and "op_profile" not in second
    assert second["delegate"] == "xnnpack" and second["p50_ms"] == pytest.approx(899.281)
    assert second["init_ms"] == pytest.approx(614.333)
    table = CliRunner().invoke(cli, [*args, "--top", "3"])
    assert table.exit_code == 0, table.output
    assert "slowest ops" in table.output and "Conv2d_5_pointwise" in table.output
    assert "DEPTHWISE_CONV_2D" in table.output   # the time by op type


@pytest.mark.parametrize("args, fragment", [
    (["--from-output", "missing.txt"], "no such file"),
    (["--from-output", os.path.join(REAL, "10_deeplabv3_nnapi_run_order_only.txt")],
     "no benchmark results"),
    (["--from-output", os.path.join(REAL, "04_yolov5s_android_nnapi_failed.txt")],
     "could not run the model"),
    (["model.tflite", "--from-output", "x.txt"], "without MODEL files"),
    ([], "give MODEL.tflite files"),
    (["model.tflite", "--profile"], "--profile is for --adb"),
])
def test_cli_from_output_and_profile_errors(args, fragment, tmp_path, monkeypatch):
    from test_cli import assert_one_line_error

    monkeypatch.chdir(tmp_path)
    assert_one_line_error(CliRunner().invoke(cli, ["bench", *args]), fragment)


def test_cli_from_output_refuses_a_binary_file(tmp_path):
    from test_cli import assert_one_line_error

    binary = tmp_path / "model.tflite"
    shutil.copy(BUNDLED_MODEL, binary)
    assert_one_line_error(CliRunner().invoke(cli, ["bench", "--from-output", str(binary)]),
                          "a binary file")
