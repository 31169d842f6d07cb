package dev.edgecnn.demo

import android.content.Context
import dev.edgecnn.demo.core.ModelCard
import org.json.JSONObject
import java.io.FileInputStream
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/**
 * The model the app ships, as `edgecnn export android` left it in assets/:
 * edgecnn_bundle.json names the .tflite, its card and labels.txt.
 */
class ModelAssets private constructor(
    val modelFile: String,
    val model: MappedByteBuffer,
    val card: ModelCard,
    val labels: List<String>,
) {
    val sizeBytes: Long get() = model.capacity().toLong()

    companion object {
        const val BUNDLE_FILE = "edgecnn_bundle.json"

        fun load(context: Context): ModelAssets {
            val bundle = JSONObject(readText(context, BUNDLE_FILE))
            val modelFile = bundle.getString("model")
            val card = ModelCard.parse(readText(context, bundle.getString("card")))
            // The card's labels come first; labels.txt holds the same (or "class i").
            val labels = card.classNames(
                if (card.labels != null) null else readText(context, bundle.optString("labels", "labels.txt")))
            return ModelAssets(modelFile, map(context, modelFile), card, labels)
        }

        private fun readText(context: Context, name: String): String =
            context.assets.open(name).bufferedReader().use { it.readText() }

        /** Memory-maps the model (the build keeps .tflite assets uncompressed for this). */
        private fun map(context: Context, name: String): MappedByteBuffer =
            context.assets.openFd(name).use { fd ->
                FileInputStream(fd.fileDescriptor).use { stream ->
                    stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                }
            }
    }
}
