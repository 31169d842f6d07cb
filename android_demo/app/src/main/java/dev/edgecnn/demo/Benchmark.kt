package dev.edgecnn.demo

import android.os.Build
import dev.edgecnn.demo.core.BenchResult
import dev.edgecnn.demo.core.BenchmarkLoop
import dev.edgecnn.demo.core.LatencySummary

/**
 * The benchmark screen's run: the interpreter created with the chosen settings (its init time
 * measured), a fixed input loaded, then `core.BenchmarkLoop` (no Android there) times it and
 * `core.BenchResult` reports it in the schema of `edgecnn bench --json`.
 */
object Benchmark {
    /** Runs on the calling thread (call it off the main thread); [progress] gets (done, total). */
    fun run(
        assets: ModelAssets,
        settings: RunSettings,
        runs: Int = BenchmarkLoop.DEFAULT_RUNS,
        warmup: Int = BenchmarkLoop.DEFAULT_WARMUP,
        progress: (Int, Int) -> Unit = { _, _ -> },
    ): BenchResult {
        val classifier = Classifier.create(assets, settings)
        try {
            val card = assets.card
            classifier.fill(BenchmarkLoop.fixedImage(card.input.width, card.input.height))
            val times = BenchmarkLoop.measure(classifier::invoke, runs, warmup, progress)
            return BenchResult(
                model = assets.modelFile,
                device = Build.MODEL,
                abi = Build.SUPPORTED_ABIS.firstOrNull(),
                threads = classifier.active.threads,
                delegate = classifier.active.delegate.jsonName,
                warmupRuns = times.warmupRuns,
                initMs = classifier.initMs,
                firstMs = times.firstMs,
                warmupMs = times.warmupMean,
                stats = LatencySummary.of(times.timesMs),
                sizeBytes = assets.sizeBytes,
                precision = card.precision,
                input = card.input,
                note = classifier.note,
            )
        } finally {
            classifier.close()
        }
    }
}
