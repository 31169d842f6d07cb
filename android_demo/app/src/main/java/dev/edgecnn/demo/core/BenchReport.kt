package dev.edgecnn.demo.core

import org.json.JSONArray
import org.json.JSONObject
import java.util.Random

/**
 * One benchmark run, in the terms and JSON schema of `edgecnn bench --json`: init (create the
 * interpreter and allocate tensors), the first inference, a warmup, then timed inferences on
 * a fixed input summarised as mean, std, min, p50, p90, p99, max (ms). Every key written
 * here is one `edgecnn bench` writes, with the same meaning (checked by `make test-android`
 * against a real `edgecnn bench --json`).
 */
data class BenchResult(
    val model: String,
    /** The phone's model name (Build.MODEL), as `edgecnn bench --adb` reports `device`. */
    val device: String?,
    /** Its primary ABI (Build.SUPPORTED_ABIS[0]), as `abi` of `edgecnn bench --adb`. */
    val abi: String?,
    val threads: Int,
    /** "xnnpack", "gpu" or "cpu" (LiteRT's built-in kernels): the delegate that ran. */
    val delegate: String,
    val warmupRuns: Int,
    val initMs: Double,
    val firstMs: Double,
    val warmupMs: Double,
    val stats: LatencySummary,
    val sizeBytes: Long,
    /** The card's precision ("int8", "float16", ...), as `edgecnn bench` reports it. */
    val precision: String? = null,
    /** The input tensor the runs were fed ([BenchmarkLoop.fixedImage] in its dtype). */
    val input: TensorSpec? = null,
    /** Why the delegate that ran is not the one asked for (shown on screen, not in the JSON). */
    val note: String? = null,
) {
    val xnnpack: Boolean get() = delegate == "xnnpack"

    fun toJson(): JSONObject = JSONObject()
        .put("model", model)
        .put("source", SOURCE)
        .put("device", device ?: JSONObject.NULL)
        .put("abi", abi ?: JSONObject.NULL)
        .put("threads", threads)
        .put("xnnpack", xnnpack)
        .put("delegate", delegate)
        .put("runs", stats.runs)
        .put("warmup_runs", warmupRuns)
        .put("init_ms", number(initMs))
        .put("first_ms", number(firstMs))
        .put("warmup_ms", number(warmupMs))
        .put("mean_ms", number(stats.mean))
        .put("std_ms", number(stats.std))
        .put("min_ms", number(stats.min))
        .put("p50_ms", number(stats.p50))
        .put("p90_ms", number(stats.p90))
        .put("p99_ms", number(stats.p99))
        .put("max_ms", number(stats.max))
        .put("throughput_ips", number(stats.throughputIps))
        .put("size_bytes", sizeBytes)
        // Not measured in the app (the camera and UI share the process): null, as bench
        // reports when it cannot measure memory.
        .put("peak_rss_growth_bytes", JSONObject.NULL)
        .put("peak_rss_growth_mb", JSONObject.NULL)
        .put("spread_p90_p50", number(stats.spread))
        .put("noisy", stats.noisy)
        .put("precision", precision ?: JSONObject.NULL)
        .put("input", input?.let {
            JSONObject().put("shape", JSONArray(it.shape.toList())).put("dtype", it.dtype)
                .put("scale", it.scale.toDouble()).put("zero_point", it.zeroPoint)
                .put("source", INPUT_SOURCE)
        } ?: JSONObject.NULL)

    /** The lines the benchmark screen shows. */
    fun summary(): String = buildString {
        appendLine("$model  $delegate, $threads thread(s)")
        note?.let { appendLine(it) }
        appendLine("init   %8.2f ms".format(initMs))
        appendLine("first  %8.2f ms".format(firstMs))
        appendLine("warmup %8.2f ms (mean of %d)".format(warmupMs, warmupRuns))
        appendLine("mean   %8.2f ms ± %.2f over %d runs".format(stats.mean, stats.std, stats.runs))
        appendLine("p50    %8.2f ms".format(stats.p50))
        appendLine("p90    %8.2f ms".format(stats.p90))
        append("min %.2f  p99 %.2f  max %.2f ms".format(stats.min, stats.p99, stats.max))
        if (stats.noisy) append("\nnoisy: p90/p50 %.2f > %.1f; close other apps and run again".format(stats.spread, LatencySummary.NOISY_RATIO))
    }

    companion object {
        const val SOURCE = "android-app"
        const val INPUT_SOURCE = "random RGB pixels (java.util.Random, seed 0)"

        /** JSON has no NaN: an unmeasured number is null. */
        private fun number(value: Double): Any = if (value.isNaN()) JSONObject.NULL else value

        /** A list of results as `edgecnn bench --json` writes it (a JSON array of objects). */
        fun toJsonList(results: List<BenchResult>): String {
            val array = JSONArray()
            results.forEach { array.put(it.toJson()) }
            return array.toString(2)
        }
    }
}

/** The statistics of the timed runs, as edgecnn/runtime/bench.py `summarize` computes them. */
data class LatencySummary(
    val runs: Int,
    val mean: Double,
    val std: Double,
    val min: Double,
    val p50: Double,
    val p90: Double,
    val p99: Double,
    val max: Double,
) {
    val throughputIps: Double get() = if (mean > 0) 1000.0 / mean else Double.NaN

    /** p90 / p50: above [NOISY_RATIO] the device was busy with something else. */
    val spread: Double get() = if (p50 > 0) p90 / p50 else Double.NaN

    val noisy: Boolean get() = spread > NOISY_RATIO

    companion object {
        /** edgecnn/runtime/bench.py NOISY_RATIO. */
        const val NOISY_RATIO = 1.5

        fun of(timesMs: DoubleArray): LatencySummary {
            require(timesMs.isNotEmpty()) { "no timed runs: give runs >= 1" }
            return LatencySummary(
                runs = timesMs.size,
                mean = LatencyStats.mean(timesMs),
                std = LatencyStats.std(timesMs),
                min = timesMs.min(),
                p50 = LatencyStats.percentile(timesMs, 50.0),
                p90 = LatencyStats.percentile(timesMs, 90.0),
                p99 = LatencyStats.percentile(timesMs, 99.0),
                max = timesMs.max(),
            )
        }
    }
}

/** The times of one benchmark: the first inference, the warmup runs, the timed runs (ms). */
class BenchTimes(val firstMs: Double, val warmupMs: DoubleArray, val timesMs: DoubleArray) {
    /** The warmup's mean, the first inference included (as `edgecnn bench` counts it). */
    val warmupMean: Double get() = (firstMs + warmupMs.sum()) / (warmupMs.size + 1)
    val warmupRuns: Int get() = warmupMs.size + 1
}

object BenchmarkLoop {
    const val DEFAULT_RUNS = 100
    const val DEFAULT_WARMUP = 10

    /** A fixed input: the same pseudo-random RGB image (seed 0) on every run and device. */
    fun fixedImage(width: Int, height: Int): RgbImage {
        val random = Random(0)
        return RgbImage(width, height, IntArray(width * height) { 0xFF shl 24 or random.nextInt(0x1000000) })
    }

    /**
     * Times [invoke] (one inference, returning its milliseconds): once (the first
     * inference), [warmup] more times, then [runs] timed runs; [progress] gets
     * (done, total) over the warmup and timed runs.
     */
    fun measure(
        invoke: () -> Double,
        runs: Int = DEFAULT_RUNS,
        warmup: Int = DEFAULT_WARMUP,
        progress: (Int, Int) -> Unit = { _, _ -> },
    ): BenchTimes {
        require(runs >= 1) { "runs must be at least 1, got $runs" }
        require(warmup >= 0) { "warmup must be 0 or more, got $warmup" }
        val first = invoke()
        val total = warmup + runs
        val warm = DoubleArray(warmup) { i -> invoke().also { progress(i + 1, total) } }
        val times = DoubleArray(runs) { i -> invoke().also { progress(warmup + i + 1, total) } }
        return BenchTimes(first, warm, times)
    }
}
