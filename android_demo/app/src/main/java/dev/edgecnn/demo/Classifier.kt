package dev.edgecnn.demo

import android.graphics.Bitmap
import android.os.SystemClock
import dev.edgecnn.demo.core.ModelInput
import dev.edgecnn.demo.core.Prediction
import dev.edgecnn.demo.core.RgbImage
import dev.edgecnn.demo.core.Scores
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import java.io.Closeable
import java.nio.ByteBuffer
import java.nio.ByteOrder

data class Classification(val top: List<Prediction>, val inferenceMs: Double)

/**
 * One LiteRT interpreter for the shipped model, fed as its card says. Everything between the
 * camera frame and the ranked labels is in `core` (no Android there, compiled and tested on
 * the JVM by `make test-android`): `ModelInput` turns the frame upright, resizes and crops it
 * exactly as `edgecnn predict` does and writes the input tensor; `Scores` dequantizes and
 * ranks the output. This class only moves pixels out of the Bitmap and runs the interpreter.
 * Not thread-safe: create, use and close it on one thread (the GPU delegate requires that too).
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
    private val input: ByteBuffer
    private val output: ByteBuffer
    private var framePixels = IntArray(0)  // reused frame to frame (same camera size)

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

    /** Classifies a camera frame, turned clockwise by [rotationDegrees] to stand upright. */
    fun classify(frame: Bitmap, rotationDegrees: Int, k: Int = 3): Classification {
        if (framePixels.size != frame.width * frame.height) framePixels = IntArray(frame.width * frame.height)
        frame.getPixels(framePixels, 0, frame.width, 0, 0, frame.width, frame.height)
        fill(ModelInput.square(RgbImage(frame.width, frame.height, framePixels), rotationDegrees, card))
        val ms = invoke()
        output.rewind()
        val probabilities = Scores.probabilities(Scores.dequantize(output, card.output), card)
        return Classification(Scores.top(probabilities, k, assets.labels), ms)
    }

    /** Runs the model once on the input already loaded; returns the time of the run in ms. */
    fun invoke(): Double {
        input.rewind()
        output.rewind()
        val start = SystemClock.elapsedRealtimeNanos()
        interpreter.run(input, output)
        return (SystemClock.elapsedRealtimeNanos() - start) / 1e6
    }

    /** Loads the input square (the model's input size) into the input tensor. */
    fun fill(square: RgbImage) {
        input.rewind()
        ModelInput.encode(square, card, input)
    }

    override fun close() {
        interpreter.close()
        gpu?.close()
    }

    companion object {
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
