package dev.edgecnn.demo.core

import org.json.JSONArray
import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/**
 * The benchmark JSON the app shares has the keys and meanings of `edgecnn bench --json`:
 * bench/bench.json holds the per-run times of a real `edgecnn bench` run with what it
 * reported for them, and the keys `edgecnn bench` writes (on this machine and over adb).
 */
class BenchJsonContractTest {
    private fun golden(): JSONObject = Goldens.json(Goldens.root().resolve("bench").resolve("bench.json"))

    /** The app's result for the times of a real `edgecnn bench` run: the statistics are the
     * app's own (from the per-run times); init, first and warmup are the run's. */
    private fun result(g: JSONObject): BenchResult {
        val times = g.getJSONArray("times_ms").let { a -> DoubleArray(a.length()) { a.getDouble(it) } }
        return BenchResult(
            model = g.getString("model"), device = "Pixel 8", abi = "arm64-v8a", threads = g.getInt("threads"),
            delegate = "xnnpack", warmupRuns = g.getInt("warmup_runs"), initMs = g.getDouble("init_ms"),
            firstMs = g.getDouble("first_ms"), warmupMs = g.getDouble("warmup_ms"),
            stats = LatencySummary.of(times), sizeBytes = g.getLong("size_bytes"),
            precision = g.getString("precision"),
            input = g.getJSONObject("input").let {
                TensorSpec(Goldens.ints(it.getJSONArray("shape")), it.getString("dtype"),
                    it.getDouble("scale").toFloat(), it.getInt("zero_point"))
            },
        )
    }

    @Test
    fun keysAreKeysEdgecnnBenchWrites() {
        val g = golden()
        val json = result(g).toJson()
        val keys = json.keys().asSequence().toSet()
        val bench = JSONArray(g.getJSONArray("bench_keys").toString()).let { a -> List(a.length()) { a.getString(it) } }.toSet()
        val required = g.getJSONArray("result_keys").let { a -> List(a.length()) { a.getString(it) } }.toSet()
        assertTrue("keys edgecnn bench never writes: ${keys - bench}", (keys - bench).isEmpty())
        assertTrue("keys of every edgecnn bench result missing: ${required - keys}", (required - keys).isEmpty())
        assertEquals(BenchResult.SOURCE, json.getString("source"))
        val input = json.getJSONObject("input")
        val python = g.getJSONObject("input")
        for (key in listOf("shape", "dtype", "zero_point", "source")) {
            assertTrue("input.$key", python.has(key) && input.has(key))
        }
        assertEquals(python.getJSONArray("shape").toString(), input.getJSONArray("shape").toString())
        assertEquals(python.getDouble("scale"), input.getDouble("scale"), 1e-9)
    }

    @Test
    fun statisticsMeanWhatEdgecnnBenchReports() {
        val g = golden()
        val json = result(g).toJson()
        val python = g.getJSONObject("reported")
        for (key in python.keys()) {
            val want = python.get(key)
            val got = json.get(key)
            when (want) {
                is Number -> assertEquals(key, want.toDouble(), (got as Number).toDouble(), 1e-9 * maxOf(1.0, Math.abs(want.toDouble())))
                JSONObject.NULL -> assertEquals(key, JSONObject.NULL, got)
                else -> assertEquals(key, want, got)
            }
        }
        assertEquals(LatencySummary.NOISY_RATIO, g.getDouble("noisy_ratio"), 0.0)
        // for make test-android to read back with edgecnn's own table and CSV code
        Goldens.root().resolve("out").apply { mkdirs() }.resolve("bench_android.json")
            .writeText(BenchResult.toJsonList(listOf(result(g))))
    }

    @Test
    fun theWarmupCountsTheFirstInferenceAsEdgecnnBenchDoes() {
        // edgecnn bench: warm = [first, *more]; warmup_runs = len(warm), warmup_ms = mean(warm)
        val times = BenchTimes(9.0, doubleArrayOf(3.0, 3.0), doubleArrayOf(2.0))
        assertEquals(3, times.warmupRuns)
        assertEquals(5.0, times.warmupMean, 1e-12)
        var calls = 0
        val measured = BenchmarkLoop.measure({ (++calls).toDouble() }, runs = 3, warmup = 2)
        assertEquals(1.0, measured.firstMs, 0.0)
        assertEquals(listOf(2.0, 3.0), measured.warmupMs.toList())
        assertEquals(listOf(4.0, 5.0, 6.0), measured.timesMs.toList())
    }

    @Test
    fun aBusyRunIsFlaggedNoisyAsEdgecnnBenchFlagsIt() {
        val calm = LatencySummary.of(doubleArrayOf(10.0, 10.0, 10.5, 11.0, 10.0))
        val busy = LatencySummary.of(doubleArrayOf(10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 30.0, 30.0, 30.0, 30.0))
        assertEquals(false, calm.noisy)
        assertEquals(true, busy.noisy)
    }
}
