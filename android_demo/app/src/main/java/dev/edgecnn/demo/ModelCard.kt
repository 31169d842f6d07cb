package dev.edgecnn.demo

import org.json.JSONArray
import org.json.JSONObject

/**
 * The edgecnn model card (the JSON that `edgecnn convert` writes beside the .tflite and
 * embeds in its metadata). This file is the only place the app reads card keys: the Python
 * tests (tests/test_android_demo.py) check every key read here against a real card.
 *
 * Every converted model takes raw RGB pixels 0-255 (normalization is inside the model) and
 * returns logits; the input and output may be quantized (uint8/int8) or float32.
 */
data class TensorSpec(
    val shape: IntArray,
    val dtype: String,
    val scale: Float,
    val zeroPoint: Int,
) {
    val height: Int get() = shape[1]
    val width: Int get() = shape[2]
    val quantized: Boolean get() = dtype == "uint8" || dtype == "int8"
}

data class ModelCard(
    val name: String,
    val alpha: Double?,
    val resolution: Int?,
    val precision: String,
    val ioDtype: String,
    val input: TensorSpec,
    val output: TensorSpec,
    val insideModel: Boolean,
    val mean: FloatArray?,
    val std: FloatArray?,
    val labels: List<String>?,
    val sizeBytes: Long,
    val params: Long,
    val macs: Long,
    val warnings: List<String>,
) {
    val classes: Int get() = output.shape[output.shape.size - 1]

    /** "mobilenet_v2 0.35 128px int8" */
    val title: String
        get() = listOfNotNull(name, alpha?.let { "$it" }, resolution?.let { "${it}px" }, precision)
            .joinToString(" ")

    companion object {
        fun parse(text: String): ModelCard = parse(JSONObject(text))

        fun parse(root: JSONObject): ModelCard {
            val model = root.getJSONObject("model")
            val input = root.getJSONObject("input")
            val output = root.getJSONObject("output")
            val preprocessing = root.optJSONObject("preprocessing")
            val labels = root.optJSONArray("labels")
            val warnings = root.optJSONArray("warnings")
            return ModelCard(
                name = model.getString("name"),
                alpha = if (model.isNull("alpha")) null else model.getDouble("alpha"),
                resolution = if (model.isNull("resolution")) null else model.getInt("resolution"),
                precision = root.getString("precision"),
                ioDtype = root.getString("io_dtype"),
                input = TensorSpec(
                    shape = ints(input.getJSONArray("shape")),
                    dtype = input.getString("dtype"),
                    scale = input.getDouble("scale").toFloat(),
                    zeroPoint = input.getInt("zero_point"),
                ),
                output = TensorSpec(
                    shape = ints(output.getJSONArray("shape")),
                    dtype = output.getString("dtype"),
                    scale = output.getDouble("scale").toFloat(),
                    zeroPoint = output.getInt("zero_point"),
                ),
                insideModel = preprocessing?.optBoolean("inside_model", true) ?: true,
                mean = preprocessing?.optJSONArray("mean")?.let { floats(it) },
                std = preprocessing?.optJSONArray("std")?.let { floats(it) },
                labels = labels?.let { strings(it) },
                sizeBytes = root.getLong("size_bytes"),
                params = root.getLong("params"),
                macs = root.getLong("macs"),
                warnings = warnings?.let { strings(it) } ?: emptyList(),
            )
        }

        private fun ints(array: JSONArray): IntArray = IntArray(array.length()) { array.getInt(it) }

        private fun floats(array: JSONArray): FloatArray =
            FloatArray(array.length()) { array.getDouble(it).toFloat() }

        private fun strings(array: JSONArray): List<String> = List(array.length()) { array.getString(it) }
    }
}
