package dev.edgecnn.demo.core

import org.json.JSONArray
import org.json.JSONException
import org.json.JSONObject

/**
 * The edgecnn model card (the JSON that `edgecnn convert` writes beside the .tflite and
 * embeds in its metadata). This file is the only place the app reads card keys; it has no
 * Android import, so `make test-android` compiles it and parses the cards `edgecnn convert`
 * writes for every family and precision (tests/test_android_jvm.py).
 *
 * Every converted model takes raw RGB pixels 0-255 (normalization is inside the model) and
 * returns logits; the input and output may be quantized (uint8/int8) or float32.
 */
class CardException(message: String) : IllegalArgumentException(message)

data class TensorSpec(
    val shape: IntArray,
    val dtype: String,
    val scale: Float,
    val zeroPoint: Int,
    val meaning: String? = null,
) {
    val height: Int get() = shape[1]
    val width: Int get() = shape[2]
    val quantized: Boolean get() = dtype == "uint8" || dtype == "int8"

    /** Bytes per element of [dtype]. */
    val elementBytes: Int get() = if (dtype == "float32") 4 else 1

    val elements: Int get() = shape.fold(1) { a, b -> a * b }

    override fun equals(other: Any?): Boolean = other is TensorSpec && shape.contentEquals(other.shape) &&
        dtype == other.dtype && scale == other.scale && zeroPoint == other.zeroPoint && meaning == other.meaning

    override fun hashCode(): Int = shape.contentHashCode() * 31 + dtype.hashCode()
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
    /** How a photo becomes the input square (see [ModelInput]). */
    val cropFraction: Double,
    val resize: String,
    val fit: String,
    val labels: List<String>?,
    val sizeBytes: Long,
    val params: Long,
    val macs: Long,
    val warnings: List<String>,
) {
    val classes: Int get() = output.shape[output.shape.size - 1]

    /** Whether the output already holds probabilities (a model ending in SOFTMAX). */
    val scoresAreProbabilities: Boolean get() = output.meaning?.startsWith("probabilities") == true

    /** "mobilenet_v2 0.35 128px int8" */
    val title: String
        get() = listOfNotNull(name, alpha?.let { "$it" }, resolution?.let { "${it}px" }, precision)
            .joinToString(" ")

    /** The class names: the card's own, else the lines of labels.txt, one per output. */
    fun classNames(labelsText: String?): List<String> {
        val names = labels ?: labelsText?.lines()?.filter { it.isNotBlank() }
            ?: throw CardException("the model card has no labels and there is no labels.txt: re-run edgecnn export android")
        if (names.size != classes) {
            throw CardException("${names.size} labels for $classes outputs: re-run edgecnn export android")
        }
        return names
    }

    companion object {
        val DTYPES = setOf("float32", "uint8", "int8")
        val RESIZE_FILTERS = setOf("bilinear", "bicubic")
        val FITS = setOf("shorter-center-crop", "stretch")
        private const val FIX = "use the .json that edgecnn convert wrote, or re-run edgecnn export android"

        /** Parses a card; anything missing or out of range is one [CardException] naming the key. */
        fun parse(text: String): ModelCard {
            val root = try {
                JSONObject(text)
            } catch (e: JSONException) {
                throw CardException("the model card is not a JSON object (${e.message}); $FIX")
            }
            return parse(root)
        }

        fun parse(root: JSONObject): ModelCard {
            val reader = Reader(root)
            val model = reader.obj("model")
            val preprocessing = if (root.isNull("preprocessing")) null else reader.obj("preprocessing")
            val insideModel = preprocessing?.optBoolean("inside_model", true) ?: true
            val input = reader.tensor("input")
            val output = reader.tensor("output")
            if (input.shape.size != 4 || input.shape[0] != 1 || input.shape[3] != 3 || input.height < 1 || input.width < 1) {
                fail("input.shape", "is ${input.shape.contentToString()}, not [1, height, width, 3]")
            }
            if (output.shape.isEmpty() || output.shape.last() < 1) {
                fail("output.shape", "is ${output.shape.contentToString()}, not [1, classes]")
            }
            val mean = preprocessing?.let { reader.floats(it, "preprocessing.", "mean") }
            val std = preprocessing?.let { reader.floats(it, "preprocessing.", "std") }
            if (!insideModel) {
                if (mean == null || std == null || mean.size !in setOf(1, 3) || std.size != mean.size || std.any { it <= 0f }) {
                    fail("preprocessing", "normalizes outside the model but gives no mean and std (one or three each, std > 0)")
                }
                if (input.quantized && !(input.scale > 0f)) {
                    fail("input.scale", "must be > 0 for an integer input normalized outside the model")
                }
            }
            val crop = preprocessing?.let { if (it.isNull("crop_fraction")) null else reader.double(it, "preprocessing.", "crop_fraction") } ?: 1.0
            if (!(crop > 0.0 && crop <= 1.0)) fail("preprocessing.crop_fraction", "is $crop, not in (0, 1]")
            val resize = preprocessing?.let { if (it.isNull("resize")) null else reader.string(it, "preprocessing.", "resize") } ?: "bilinear"
            if (resize !in RESIZE_FILTERS) fail("preprocessing.resize", "is \"$resize\", not one of $RESIZE_FILTERS")
            val fit = preprocessing?.let { if (it.isNull("fit")) null else reader.string(it, "preprocessing.", "fit") } ?: "shorter-center-crop"
            if (fit !in FITS) fail("preprocessing.fit", "is \"$fit\", not one of $FITS")
            val labels = if (root.isNull("labels")) null else reader.strings(root, "", "labels")
            val classes = output.shape.last()
            if (labels != null && labels.size != classes) {
                fail("labels", "has ${labels.size} names for $classes outputs")
            }
            return ModelCard(
                name = reader.string(model, "model.", "name"),
                alpha = if (model.isNull("alpha")) null else reader.double(model, "model.", "alpha"),
                resolution = if (model.isNull("resolution")) null else reader.int(model, "model.", "resolution"),
                precision = reader.string(root, "", "precision"),
                ioDtype = reader.string(root, "", "io_dtype"),
                input = input,
                output = output,
                insideModel = insideModel,
                mean = mean,
                std = std,
                cropFraction = crop,
                resize = resize,
                fit = fit,
                labels = labels,
                sizeBytes = reader.long(root, "", "size_bytes"),
                params = reader.long(root, "", "params"),
                macs = reader.long(root, "", "macs"),
                warnings = if (root.isNull("warnings")) emptyList() else reader.strings(root, "", "warnings"),
            )
        }

        private fun fail(key: String, what: String): Nothing = throw CardException("model card: $key $what; $FIX")
    }

    /** Typed reads that name the key (with its path) when it is missing or of the wrong type. */
    private class Reader(val root: JSONObject) {
        fun obj(key: String): JSONObject = typed("", key) {
            root.getJSONObject(key)
        }

        fun tensor(key: String): TensorSpec {
            val o = obj(key)
            val path = "$key."
            val dtype = string(o, path, "dtype")
            if (dtype !in DTYPES) fail("${path}dtype", "is \"$dtype\", not one of $DTYPES")
            val scale = if (o.isNull("scale")) 0f else double(o, path, "scale").toFloat()
            val zeroPoint = if (o.isNull("zero_point")) 0 else int(o, path, "zero_point")
            if (dtype != "float32" && !(scale > 0f)) fail("${path}scale", "must be > 0 for a $dtype tensor")
            val meaning = if (o.isNull("meaning")) null else string(o, path, "meaning")
            return TensorSpec(ints(o, path, "shape"), dtype, scale, zeroPoint, meaning)
        }

        fun string(o: JSONObject, path: String, key: String): String = typed(path, key) {
            val value = o.get(key)
            if (value !is String) throw JSONException("not a string")
            value
        }

        fun int(o: JSONObject, path: String, key: String): Int = typed(path, key) { o.getInt(key) }
        fun long(o: JSONObject, path: String, key: String): Long = typed(path, key) { o.getLong(key) }
        fun double(o: JSONObject, path: String, key: String): Double = typed(path, key) { o.getDouble(key) }

        fun ints(o: JSONObject, path: String, key: String): IntArray = typed(path, key) {
            val a = o.getJSONArray(key)
            IntArray(a.length()) { a.getInt(it) }
        }

        fun floats(o: JSONObject, path: String, key: String): FloatArray? {
            if (o.isNull(key)) return null
            return typed(path, key) {
                val a: JSONArray = o.getJSONArray(key)
                FloatArray(a.length()) { a.getDouble(it).toFloat() }
            }
        }

        fun strings(o: JSONObject, path: String, key: String): List<String> = typed(path, key) {
            val a = o.getJSONArray(key)
            List(a.length()) { a.get(it).toString() }
        }

        private inline fun <T> typed(path: String, key: String, read: () -> T): T {
            try {
                return read()
            } catch (e: JSONException) {
                val o = if (path.isEmpty()) root else null
                if (o != null && !o.has(key)) fail("$path$key", "is missing")
                fail("$path$key", "is missing or of the wrong type (${e.message})")
            }
        }
    }
}
