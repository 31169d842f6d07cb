"""Operator profiles of real ``benchmark_model`` outputs, published by others
(tests/data/benchmark_outputs/README.md gives each file's source and commit), parsed by
``edgecnn.runtime.op_profile``: classic TFLite with a ``[start]`` column (2.4 on Android with
NNAPI, ~2.8 on riscv64), the 2018 README sample, and LiteRT's tool (``INFO: [file:line]``
prefixes, no ``[start]``, no section title)."""
import os

import pytest

from edgecnn.runtime.op_profile import parse_op_profiles, regular_profile

pytestmark = pytest.mark.device  # needs only the light install (make test-arm64)

DATA = os.path.join(os.path.dirname(__file__), "data", "benchmark_outputs")


def read(name: str) -> str:
    with open(os.path.join(DATA, name), encoding="utf-8") as fh:
        return fh.read()


# file -> (sections, run order / top / summary rows of the regular profile,
#          the regular runs' profiled average in us)
PROFILED = {
    "01_mobilenet_v1_riscv_qemu_op_profiling.txt": (["initialization", "regular"], (31, 10, 5),
                                                     2.9499e+06),
    "02_yolov5s_android_nnapi_op_profiling.txt": (["initialization", "regular"], (11, 10, 3),
                                                  158715.0),
    "06_litert_arm_sme2_kleidiai_fc_profiler.txt": (["profile"], (5, 5, 5), 411.071),
    "07_litert_arm_sme2_no_kleidiai_fc_profiler.txt": (["profile"], (5, 5, 5), 1307.19),
}


@pytest.mark.parametrize("name", sorted(PROFILED))
def test_tables_parse_and_their_totals_agree_with_the_outputs_own_timings(name):
    kinds, counts, avg_us = PROFILED[name]
    sections = parse_op_profiles(read(name))
    assert [s["section"] for s in sections] == kinds
    profile = regular_profile(read(name))
    assert (len(profile["run_order"]), len(profile["top"]), len(profile["summary"])) == counts
    assert profile["nodes_observed"] == counts[0] == profile["nodes_executed"]
    assert profile["timings_us"]["avg"] == pytest.approx(avg_us)
    # the summary by node type adds up to the profiled runs' average (rounding of 3 decimals)
    total = sum(row["avg_ms"] for row in profile["summary"])
    assert total == pytest.approx(avg_us / 1000.0, rel=2e-3, abs=2e-3)
    assert sum(row["percent"] for row in profile["summary"]) == pytest.approx(100.0, abs=0.05)
    cdf = [row["cdf_percent"] for row in profile["run_order"]]
    assert cdf == sorted(cdf) and cdf[-1] == pytest.approx(100.0)
    top = [row["avg_ms"] for row in profile["top"]]
    assert top == sorted(top, reverse=True)


def test_classic_rows_carry_every_column_and_the_node_names():
    profile = regular_profile(read("01_mobilenet_v1_riscv_qemu_op_profiling.txt"))
    first = profile["run_order"][0]
    assert first == {"node_type": "CONV_2D", "start_ms": 0.066, "first_ms": 87.754,
                     "avg_ms": 60.957, "percent": 2.066, "cdf_percent": 2.066, "mem_kb": 0.0,
                     "times_called": 1, "name": "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0"}
    assert profile["top"][0]["name"].endswith("Conv2d_5_pointwise/Relu6]:10")
    assert {row["node_type"] for row in profile["summary"]} == {
        "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "SQUEEZE", "SOFTMAX"}
    by_type = {row["node_type"]: row for row in profile["summary"]}
    assert by_type["CONV_2D"]["count"] == 15 and by_type["DEPTHWISE_CONV_2D"]["count"] == 13


def test_litert_rows_have_no_start_column_and_delegate_kernels_as_types():
    profile = regular_profile(read("06_litert_arm_sme2_kleidiai_fc_profiler.txt"))
    gemm = profile["top"][0]
    assert "start_ms" not in gemm
    assert gemm["node_type"] == "Fully Connected (NC, PF32) GEMM"
    assert gemm["name"] == "Delegate/Fully Connected (NC, PF32) GEMM:1"
    assert gemm["avg_ms"] == 0.382 and gemm["percent"] == 92.948


def test_a_delegate_row_names_every_op_it_replaced():
    profile = regular_profile(read("02_yolov5s_android_nnapi_op_profiling.txt"))
    delegates = [r for r in profile["run_order"] if r["node_type"] == "TfLiteNnapiDelegate"]
    assert len(delegates) == 3
    assert delegates[0]["name"].startswith("[model/") and ", " in delegates[0]["name"]


def test_initialization_rows_are_per_call_and_the_summary_per_run():
    init = parse_op_profiles(read("02_yolov5s_android_nnapi_op_profiling.txt"))[0]
    allocate = next(r for r in init["run_order"] if r["node_type"] == "AllocateTensors")
    summary = next(r for r in init["summary"] if r["node_type"] == "AllocateTensors")
    assert allocate["times_called"] == 2
    assert summary["avg_ms"] == pytest.approx(allocate["avg_ms"] * 2, abs=1e-3)
    assert sum(r["avg_ms"] for r in init["summary"]) * 1000 == pytest.approx(
        init["timings_us"]["curr"], abs=1)


def test_the_2018_sample_parses_though_its_summary_does_not_add_up():
    """The README sample of the old tool: names without ``:index``, ``[times called]`` 0,
    and a summary that sums to 1.6 ms of a 79.7 ms run (as published): the rows are read as
    printed, never rescaled."""
    profile = regular_profile(read("05_tflite_readme_sample_mobilenet_quant_old_format.txt"))
    assert profile["section"] == "profile" and len(profile["run_order"]) == 31
    assert all(r["times_called"] == 0 for r in profile["run_order"])
    assert profile["run_order"][0]["name"] == "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]"
    assert sum(r["avg_ms"] for r in profile["run_order"]) == pytest.approx(79.449, abs=1e-3)


def test_a_truncated_excerpt_keeps_what_it_has():
    profile = regular_profile(read("10_deeplabv3_nnapi_run_order_only.txt"))
    assert len(profile["run_order"]) == 8 and profile["top"] == [] and profile["summary"] == []
    assert profile["timings_us"] is None


@pytest.mark.parametrize("name", ["03_yolov5s_android_cpu_plain_tail.txt",
                                  "04_yolov5s_android_nnapi_failed.txt",
                                  "08_ti_am62x_cpu_plain_info_prefix.txt",
                                  "09_ti_am62x_xnnpack_plain_info_prefix.txt"])
def test_runs_without_profiling_have_no_profile(name):
    assert parse_op_profiles(read(name)) == []
    assert regular_profile(read(name)) is None


# --- the whole output: edgecnn bench's result schema -------------------------------------

def test_litert_results_block_gives_init_and_footprints():
    from edgecnn.runtime.adb import parse_benchmark_output

    result = parse_benchmark_output(read("06_litert_arm_sme2_kleidiai_fc_profiler.txt"))
    assert result["output_generation"] == "litert"
    assert result["init_ms"] == 4.48      # "Model initialization: 4.48 ms"
    assert (result["init_footprint_mb"], result["overall_footprint_mb"]) == (8.94, 11.51)
    # the count= line (microseconds, 3 decimals) wins over the block's 2-decimal ms
    assert result["mean_ms"] == pytest.approx(0.464545)
    assert (result["runs"], result["warmup_runs"]) == (2112, 1055)
    assert result["p50_ms"] == pytest.approx(0.462) and result["p95_ms"] == pytest.approx(0.478)
    assert len(result["op_profile"]["summary"]) == 5


def test_classic_profiled_run_gives_timings_and_its_profile():
    from edgecnn.runtime.adb import parse_benchmark_output

    result = parse_benchmark_output(read("01_mobilenet_v1_riscv_qemu_op_profiling.txt"))
    assert result["mean_ms"] == pytest.approx(2950.34)   # avg=2.95034e+06 us
    assert result["init_ms"] == pytest.approx(17.187) and result["num_threads"] == 4
    assert result["op_profile"]["section"] == "regular"
    assert len(result["op_profile"]["run_order"]) == 31


def test_a_pasted_profile_alone_still_gives_the_timings_of_its_runs():
    from edgecnn.runtime.adb import parse_benchmark_output

    result = parse_benchmark_output(read("02_yolov5s_android_nnapi_op_profiling.txt"))
    assert result["output_generation"] == "op profile only"
    assert result["runs"] == 50 and result["mean_ms"] == pytest.approx(158.715)
    assert result["min_ms"] == pytest.approx(146.535) and result["std_ms"] == pytest.approx(2.931)


def test_failed_and_headless_outputs_are_one_line_errors():
    from edgecnn.errors import EdgecnnError
    from edgecnn.runtime.adb import parse_benchmark_output

    with pytest.raises(EdgecnnError, match="could not run the model: Failed to apply NNAPI"):
        parse_benchmark_output(read("04_yolov5s_android_nnapi_failed.txt"))
    with pytest.raises(EdgecnnError, match="no benchmark results"):
        parse_benchmark_output(read("10_deeplabv3_nnapi_run_order_only.txt"))
