package dev.edgecnn.demo

import android.graphics.Bitmap
import android.graphics.Matrix
import android.os.SystemClock
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import java.io.Closeable
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.exp

data class Prediction(val label: String, val score: Float)

data class Classification(val top: List<Prediction>, val inferenceMs: Double)

/**
 * One LiteRT interpreter for the shipped model, fed as its card says. An edgecnn model takes
 * raw RGB pixels: a uint8 input the pixel itself, an int8 input the pixel minus 128, a
 * float32 input the pixel value (edgecnn/runtime/tflite.py quantize_pixels does the same).
 * The input's scale and zero point say what the network sees (scale 1 when its first op
 * normalizes, the normalization itself when `edgecnn convert` folded it into the
 * quantization), so the app never rescales pixels. The output is dequantized with the
 * output's scale and zero point. Not thread-safe: create, use and close it on one thread
 * (the GPU delegate requires that too).
 */
class Classifier private constructor(
    val assets: ModelAssets,
    val requested: RunSettings,
    val active: RunSettings,
    val note: String?,
    val initMs: Double,
    private val interpreter: Interpreter,
    private val gpu: GpuDelegate?,
) : Closeable {
    private val card = assets.card
    private val side = card.input.height
    private val pixels = IntArray(side * card.input.width)
    private val input: ByteBuffer
    private val output: ByteBuffer

    init {
        val tensor = interpreter.getInputTensor(0)
        val shape = tensor.shape()
        check(shape.contentEquals(card.input.shape)) {
            "the card says input ${card.input.shape.contentToString()}, the model has ${shape.contentToString()}"
        }
        check(tensor.dataType() == dataType(card.input.dtype)) {
            "the card says ${card.input.dtype} input, the model takes ${tensor.dataType()}"
        }
        input = ByteBuffer.allocateDirect(tensor.numBytes()).order(ByteOrder.nativeOrder())
        output = ByteBuffer.allocateDirect(interpreter.getOutputTensor(0).numBytes())
            .order(ByteOrder.nativeOrder())
    }

    /** Classifies a camera frame: rotated upright, centre-cropped to a square, resized. */
    fun classify(frame: Bitmap, rotationDegrees: Int, k: Int = 3): Classification {
        fill(toInputBitmap(frame, rotationDegrees))
        val ms = invoke()
        return Classification(topK(readLogits(), k), ms)
    }

    /** Runs the model once on the input already loaded; returns the time of the run in ms. */
    fun invoke(): Double {
        input.rewind()
        output.rewind()
        val start = SystemClock.elapsedRealtimeNanos()
        interpreter.run(input, output)
        return (SystemClock.elapsedRealtimeNanos() - start) / 1e6
    }

    /** Loads an RGB image of the model's input size (ARGB ints, row-major) into the input. */
    fun fill(argb: IntArray) {
        require(argb.size == pixels.size) { "need ${pixels.size} pixels, got ${argb.size}" }
        input.rewind()
        val spec = card.input
        for (p in argb) {
            for (c in 0 until 3) {
                val pixel = (p shr (16 - 8 * c)) and 0xFF  // R, G, B of an ARGB int
                when (spec.dtype) {
                    "float32" -> input.putFloat(
                        if (card.insideModel || card.mean == null || card.std == null) pixel.toFloat()
                        else (pixel - card.mean[c]) / card.std[c]
                    )
                    "uint8" -> input.put(pixel.toByte())
                    "int8" -> input.put((pixel - 128).toByte())
                    else -> error("unsupported input dtype ${spec.dtype}")
                }
            }
        }
    }

    private fun fill(bitmap: Bitmap) {
        bitmap.getPixels(pixels, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        fill(pixels)
    }

    /** The output as float logits (dequantized with the output's scale and zero point). */
    fun readLogits(): FloatArray {
        val spec = card.output
        output.rewind()
        return FloatArray(card.classes) {
            when (spec.dtype) {
                "float32" -> output.getFloat()
                "uint8" -> ((output.get().toInt() and 0xFF) - spec.zeroPoint) * spec.scale
                "int8" -> (output.get().toInt() - spec.zeroPoint) * spec.scale
                else -> error("unsupported output dtype ${spec.dtype}")
            }
        }
    }

    private fun topK(logits: FloatArray, k: Int): List<Prediction> {
        val probabilities = softmax(logits)
        return probabilities.indices.sortedByDescending { probabilities[it] }.take(k)
            .map { Prediction(assets.label(it), probabilities[it]) }
    }

    private fun toInputBitmap(frame: Bitmap, rotationDegrees: Int): Bitmap {
        val crop = minOf(frame.width, frame.height)
        val matrix = Matrix().apply {
            postRotate(rotationDegrees.toFloat())
            postScale(side.toFloat() / crop, side.toFloat() / crop)
        }
        val square = Bitmap.createBitmap(
            frame, (frame.width - crop) / 2, (frame.height - crop) / 2, crop, crop, matrix, true,
        )
        return if (square.width == side && square.height == side) square
        else Bitmap.createScaledBitmap(square, side, side, true)
    }

    override fun close() {
        interpreter.close()
        gpu?.close()
    }

    companion object {
        fun softmax(logits: FloatArray): FloatArray {
            val max = logits.maxOrNull() ?: return logits
            val e = FloatArray(logits.size) { exp((logits[it] - max).toDouble()).toFloat() }
            val sum = e.sum()
            return FloatArray(e.size) { e[it] / sum }
        }

        private fun dataType(dtype: String): DataType = when (dtype) {
            "float32" -> DataType.FLOAT32
            "uint8" -> DataType.UINT8
            "int8" -> DataType.INT8
            else -> error("unsupported dtype $dtype")
        }

        /**
         * Creates the interpreter; the time it takes (model, delegate, tensor allocation) is
         * [initMs], `init_ms` of `edgecnn bench`. GPU falls back to XNNPACK, with a [note],
         * when the device has no supported GPU or the delegate refuses the model.
         */
        fun create(assets: ModelAssets, settings: RunSettings): Classifier {
            if (settings.delegate == Delegate.GPU) {
                val supported = gpuSupported()
                if (!supported) {
                    return build(assets, settings, settings.copy(delegate = Delegate.XNNPACK),
                        "GPU delegate not supported on this device: running XNNPACK")
                }
                try {
                    return build(assets, settings, settings, null)
                } catch (e: Exception) {
                    return build(assets, settings, settings.copy(delegate = Delegate.XNNPACK),
                        "GPU delegate failed (${e.message?.lineSequence()?.firstOrNull()}): running XNNPACK")
                }
            }
            return build(assets, settings, settings, null)
        }

        private fun gpuSupported(): Boolean {
            val list = CompatibilityList()
            try {
                return list.isDelegateSupportedOnThisDevice
            } finally {
                list.close()
            }
        }

        private fun gpuDelegate(): GpuDelegate {
            val list = CompatibilityList()
            try {
                return GpuDelegate(list.bestOptionsForThisDevice)
            } finally {
                list.close()
            }
        }

        private fun build(assets: ModelAssets, requested: RunSettings, active: RunSettings, note: String?): Classifier {
            val start = SystemClock.elapsedRealtimeNanos()
            val options = Interpreter.Options()
                .setNumThreads(active.threads)
                .setUseXNNPACK(active.delegate == Delegate.XNNPACK)
            val gpu = if (active.delegate == Delegate.GPU) gpuDelegate() else null
            if (gpu != null) options.addDelegate(gpu)
            var interpreter: Interpreter? = null
            try {
                interpreter = Interpreter(assets.model, options)
                interpreter.allocateTensors()
                val initMs = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
                return Classifier(assets, requested, active, note, initMs, interpreter, gpu)
            } catch (e: Exception) {
                interpreter?.close()
                gpu?.close()
                throw e
            }
        }
    }
}
