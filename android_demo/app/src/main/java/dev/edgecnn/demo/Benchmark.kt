package dev.edgecnn.demo

import android.os.Build
import org.json.JSONArray
import org.json.JSONObject
import java.util.Random

/**
 * One benchmark run, in the terms and JSON schema of `edgecnn bench --json`: init (create the
 * interpreter and allocate tensors), the first inference, a warmup, then [runs] timed
 * inferences on a fixed input summarised as mean, std, min, p50, p90, p99, max (ms).
 */
data class BenchResult(
    val model: String,
    val threads: Int,
    val xnnpack: Boolean,
    val delegate: String,
    val runs: Int,
    val warmup: Int,
    val initMs: Double,
    val firstMs: Double,
    val warmupMs: Double,
    val meanMs: Double,
    val stdMs: Double,
    val minMs: Double,
    val p50Ms: Double,
    val p90Ms: Double,
    val p99Ms: Double,
    val maxMs: Double,
    val sizeBytes: Long,
    val note: String?,
) {
    fun toJson(): JSONObject = JSONObject()
        .put("model", model)
        .put("threads", threads)
        .put("xnnpack", xnnpack)
        .put("delegate", delegate)
        .put("runs", runs)
        .put("warmup_runs", warmup)
        .put("init_ms", ms(initMs))
        .put("first_ms", ms(firstMs))
        .put("warmup_ms", ms(warmupMs))
        .put("mean_ms", ms(meanMs))
        .put("std_ms", ms(stdMs))
        .put("min_ms", ms(minMs))
        .put("p50_ms", ms(p50Ms))
        .put("p90_ms", ms(p90Ms))
        .put("p99_ms", ms(p99Ms))
        .put("max_ms", ms(maxMs))
        .put("throughput_ips", if (meanMs > 0) Math.round(1e6 / meanMs) / 1000.0 else JSONObject.NULL)
        .put("size_bytes", sizeBytes)
        // Not measured in the app (the camera and UI share the process): null, as bench
        // reports when it cannot measure memory.
        .put("peak_rss_growth_bytes", JSONObject.NULL)
        .put("peak_rss_growth_mb", JSONObject.NULL)
        .put("device", "${Build.MANUFACTURER} ${Build.MODEL} (Android ${Build.VERSION.RELEASE})")
        .put("source", SOURCE)
        .put("note", note ?: JSONObject.NULL)

    /** The lines the benchmark screen shows. */
    fun summary(): String = buildString {
        appendLine("$model  ${if (xnnpack) "XNNPACK" else delegate}, $threads thread(s)")
        note?.let { appendLine(it) }
        appendLine("init   %8.2f ms".format(initMs))
        appendLine("first  %8.2f ms".format(firstMs))
        appendLine("warmup %8.2f ms (mean of %d)".format(warmupMs, warmup))
        appendLine("mean   %8.2f ms ± %.2f over %d runs".format(meanMs, stdMs, runs))
        appendLine("p50    %8.2f ms".format(p50Ms))
        appendLine("p90    %8.2f ms".format(p90Ms))
        append("min %.2f  p99 %.2f  max %.2f ms".format(minMs, p99Ms, maxMs))
    }

    companion object {
        const val SOURCE = "android-app"

        /** Milliseconds to 3 decimals; JSON has no NaN, so an unmeasured time is null. */
        private fun ms(value: Double): Any =
            if (value.isNaN()) JSONObject.NULL else Math.round(value * 1000.0) / 1000.0

        /** A list of results as `edgecnn bench --json` writes it (a JSON array of objects). */
        fun toJsonList(results: List<BenchResult>): String {
            val array = JSONArray()
            results.forEach { array.put(it.toJson()) }
            return array.toString(2)
        }
    }
}

object Benchmark {
    const val DEFAULT_RUNS = 100
    const val DEFAULT_WARMUP = 10

    /** A fixed input: the same pseudo-random RGB image (seed 0) on every run and device. */
    fun fixedImage(pixels: Int): IntArray {
        val random = Random(0)
        return IntArray(pixels) { 0xFF shl 24 or random.nextInt(0x1000000) }
    }

    /**
     * Runs the benchmark on the calling thread (call it off the main thread) and reports
     * progress as (done, total) over warmup + timed runs.
     */
    fun run(
        assets: ModelAssets,
        settings: RunSettings,
        runs: Int = DEFAULT_RUNS,
        warmup: Int = DEFAULT_WARMUP,
        progress: (Int, Int) -> Unit = { _, _ -> },
    ): BenchResult {
        require(runs >= 1) { "runs must be at least 1, got $runs" }
        require(warmup >= 0) { "warmup must be 0 or more, got $warmup" }
        val classifier = Classifier.create(assets, settings)
        try {
            val card = assets.card
            classifier.fill(fixedImage(card.input.height * card.input.width))
            val firstMs = classifier.invoke()
            val total = warmup + runs
            var warmupSum = 0.0
            for (i in 0 until warmup) {
                warmupSum += classifier.invoke()
                progress(i + 1, total)
            }
            val times = DoubleArray(runs)
            for (i in 0 until runs) {
                times[i] = classifier.invoke()
                progress(warmup + i + 1, total)
            }
            val active = classifier.active
            return BenchResult(
                model = assets.modelFile,
                threads = active.threads,
                xnnpack = active.xnnpack,
                delegate = active.delegate.label,
                runs = runs,
                warmup = warmup,
                initMs = classifier.initMs,
                firstMs = firstMs,
                warmupMs = if (warmup > 0) warmupSum / warmup else Double.NaN,
                meanMs = LatencyStats.mean(times),
                stdMs = LatencyStats.std(times),
                minMs = times.min(),
                p50Ms = LatencyStats.percentile(times, 50.0),
                p90Ms = LatencyStats.percentile(times, 90.0),
                p99Ms = LatencyStats.percentile(times, 99.0),
                maxMs = times.max(),
                sizeBytes = assets.sizeBytes,
                note = classifier.note,
            )
        } finally {
            classifier.close()
        }
    }
}
