package dev.edgecnn.demo

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.os.Bundle
import android.util.Log
import android.view.View
import android.widget.Button
import android.widget.Spinner
import android.widget.TextView
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import dev.edgecnn.demo.core.RollingMean
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * The live screen: the back camera's frames go through the shipped model; it shows the top-3
 * labels with their scores and the inference time (mean of the last 20 frames).
 */
class MainActivity : AppCompatActivity() {
    private lateinit var preview: PreviewView
    private lateinit var predictions: TextView
    private lateinit var timing: TextView
    private lateinit var note: TextView

    private lateinit var analysisExecutor: ExecutorService
    private var shipped: ModelAssets? = null

    // Owned by the analysis thread: created, used and closed there.
    private var classifier: Classifier? = null
    private var failed: RunSettings? = null
    private val latency = RollingMean(20)

    @Volatile
    private var wanted = RunSettings()

    private val requestCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else predictions.setText(R.string.camera_denied)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        preview = findViewById(R.id.preview)
        predictions = findViewById(R.id.predictions)
        timing = findViewById(R.id.timing)
        note = findViewById(R.id.note)
        findViewById<View>(R.id.panel).padForSystemBars(top = false)
        analysisExecutor = Executors.newSingleThreadExecutor()

        wanted = RunSettings.load(this)
        bindSettings(findViewById<Spinner>(R.id.threads), findViewById<Spinner>(R.id.delegate), wanted) { chosen ->
            wanted = chosen
            RunSettings.save(this, chosen)
        }
        findViewById<Button>(R.id.open_benchmark).setOnClickListener {
            startActivity(Intent(this, BenchmarkActivity::class.java))
        }

        val loaded = try {
            ModelAssets.load(this)
        } catch (e: Exception) {
            Log.e(TAG, "cannot load the model from assets", e)
            showNote("Cannot load the model from assets: ${e.message}. Run `edgecnn export android MODEL.tflite`.")
            null
        } ?: return
        shipped = loaded
        findViewById<TextView>(R.id.model_title).text =
            "${loaded.card.title}  ${loaded.card.input.width}x${loaded.card.input.height} ${loaded.card.input.dtype}"
        loaded.card.warnings.firstOrNull()?.let { showNote("card: $it") }

        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            requestCamera.launch(Manifest.permission.CAMERA)
        }
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            val previewUseCase = Preview.Builder().build().also {
                it.setSurfaceProvider(preview.surfaceProvider)
            }
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(analysisExecutor) { image -> analyze(image) }
            try {
                provider.unbindAll()
                provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, previewUseCase, analysis)
            } catch (e: Exception) {
                Log.e(TAG, "cannot open the back camera", e)
                showNote("Cannot open the back camera: ${e.message}")
            }
        }, ContextCompat.getMainExecutor(this))
    }

    /** Runs on the analysis thread for every frame the camera delivers. */
    private fun analyze(image: ImageProxy) {
        try {
            val model = shipped ?: return
            val current = classifierFor(model) ?: return
            val result = current.classify(image.toBitmap(), image.imageInfo.rotationDegrees)
            val meanMs = latency.add(result.inferenceMs)
            val lines = result.top.joinToString("\n") { "%-24s %6.3f".format(it.label.take(24), it.score) }
            val status = "%.2f ms (mean of last %d)  %s".format(meanMs, latency.count, current.active)
            runOnUiThread {
                predictions.text = lines
                timing.text = status
            }
        } catch (e: Exception) {
            Log.e(TAG, "inference failed", e)
            runOnUiThread { showNote("Inference failed: ${e.message}") }
        } finally {
            image.close()
        }
    }

    /** The classifier for the chosen settings, recreated when they change. */
    private fun classifierFor(model: ModelAssets): Classifier? {
        val settings = wanted
        classifier?.let { if (it.requested == settings) return it }
        if (settings == failed) return null
        classifier?.close()
        classifier = null
        latency.clear()
        val created = try {
            Classifier.create(model, settings)
        } catch (e: Exception) {
            Log.e(TAG, "cannot create the interpreter", e)
            failed = settings
            runOnUiThread { showNote("Cannot create the interpreter ($settings): ${e.message}") }
            return null
        }
        classifier = created
        val message = created.note
        runOnUiThread {
            if (message != null) {
                showNote(message)
            } else {
                note.visibility = View.GONE
            }
        }
        return created
    }

    private fun showNote(text: String) {
        note.text = text
        note.visibility = View.VISIBLE
    }

    override fun onDestroy() {
        super.onDestroy()
        analysisExecutor.execute {
            classifier?.close()
            classifier = null
        }
        analysisExecutor.shutdown()
    }

    companion object {
        private const val TAG = "edgecnn"
    }
}
