package dev.edgecnn.demo

import android.content.Intent
import android.os.Bundle
import android.view.View
import android.widget.Button
import android.widget.EditText
import android.widget.ProgressBar
import android.widget.Spinner
import android.widget.TextView
import androidx.appcompat.app.AppCompatActivity
import androidx.lifecycle.lifecycleScope
import dev.edgecnn.demo.core.BenchResult
import dev.edgecnn.demo.core.BenchmarkLoop
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * The benchmark screen: K inferences after a warmup on a fixed input, reported as init,
 * first, mean, p50, p90 like `edgecnn bench`; every result of the session can be shared as
 * the JSON list `edgecnn bench --json` writes (source "android-app").
 */
class BenchmarkActivity : AppCompatActivity() {
    private val results = mutableListOf<BenchResult>()
    private var settings = RunSettings()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_benchmark)
        findViewById<View>(R.id.bench_root).padForSystemBars()
        val modelText = findViewById<TextView>(R.id.bench_model)
        val runsField = findViewById<EditText>(R.id.bench_runs)
        val warmupField = findViewById<EditText>(R.id.bench_warmup)
        val runButton = findViewById<Button>(R.id.bench_run)
        val shareButton = findViewById<Button>(R.id.bench_share)
        val progress = findViewById<ProgressBar>(R.id.bench_progress)
        val output = findViewById<TextView>(R.id.bench_result)

        runsField.setText(BenchmarkLoop.DEFAULT_RUNS.toString())
        warmupField.setText(BenchmarkLoop.DEFAULT_WARMUP.toString())
        settings = RunSettings.load(this)
        bindSettings(findViewById<Spinner>(R.id.bench_threads), findViewById<Spinner>(R.id.bench_delegate), settings) {
            settings = it
        }

        val shipped = try {
            ModelAssets.load(this)
        } catch (e: Exception) {
            output.text = "Cannot load the model from assets: ${e.message}"
            runButton.isEnabled = false
            null
        } ?: return
        modelText.text = "${shipped.modelFile} (${shipped.card.title}, %.2f MB)".format(shipped.sizeBytes / 1e6)

        runButton.setOnClickListener {
            val runs = runsField.text.toString().toIntOrNull()?.takeIf { it >= 1 }
            val warmup = warmupField.text.toString().toIntOrNull()?.takeIf { it >= 0 }
            if (runs == null || warmup == null) {
                output.text = "Runs must be a whole number >= 1 and warmup >= 0."
                return@setOnClickListener
            }
            val chosen = settings
            runButton.isEnabled = false
            progress.visibility = View.VISIBLE
            progress.progress = 0
            output.text = "Running $runs inferences after $warmup warmup ($chosen)…"
            lifecycleScope.launch {
                val outcome = withContext(Dispatchers.Default) {
                    // One blocking call: the interpreter is created, run and closed on one thread.
                    runCatching {
                        Benchmark.run(shipped, chosen, runs, warmup) { done, total ->
                            if (done % 10 == 0 || done == total) {
                                runOnUiThread { progress.progress = 100 * done / total }
                            }
                        }
                    }
                }
                progress.visibility = View.INVISIBLE
                runButton.isEnabled = true
                outcome.onSuccess { result ->
                    results.add(result)
                    shareButton.isEnabled = true
                    output.text = results.asReversed().joinToString("\n\n") { it.summary() }
                }.onFailure { e ->
                    output.text = "Benchmark failed: ${e.message}"
                }
            }
        }

        shareButton.setOnClickListener {
            val json = BenchResult.toJsonList(results)
            val send = Intent(Intent.ACTION_SEND).apply {
                type = "text/plain"
                putExtra(Intent.EXTRA_SUBJECT, getString(R.string.share_subject))
                putExtra(Intent.EXTRA_TEXT, json)
            }
            startActivity(Intent.createChooser(send, getString(R.string.share_json)))
        }
    }
}
