package dev.edgecnn.demo.core

import java.nio.ByteBuffer
import kotlin.math.exp

data class Prediction(val index: Int, val label: String, val score: Float)

/**
 * From the model's output tensor to ranked predictions, as `edgecnn predict` does
 * (edgecnn/runtime/tflite.py `run_logits`, `softmax`; runtime/predict.py): dequantized with
 * the output's scale and zero point, softmax unless the model already outputs
 * probabilities, ranked best first with ties in class order.
 */
object Scores {
    /** The output tensor in [raw] (at its position, in its byte order) as float scores. */
    fun dequantize(raw: ByteBuffer, spec: TensorSpec): FloatArray {
        val n = spec.elements
        val need = n * spec.elementBytes
        require(raw.remaining() >= need) { "the output buffer has ${raw.remaining()} bytes, the model gives $need" }
        return FloatArray(n) {
            when (spec.dtype) {
                "float32" -> raw.getFloat()
                "uint8" -> ((raw.get().toInt() and 0xFF) - spec.zeroPoint).toFloat() * spec.scale
                "int8" -> (raw.get().toInt() - spec.zeroPoint).toFloat() * spec.scale
                else -> throw IllegalArgumentException("unsupported output dtype ${spec.dtype}")
            }
        }
    }

    fun softmax(logits: FloatArray): FloatArray {
        val max = logits.maxOrNull() ?: return logits
        val e = FloatArray(logits.size) { exp((logits[it] - max).toDouble()).toFloat() }
        val sum = e.sum()
        return FloatArray(e.size) { e[it] / sum }
    }

    /** The scores as probabilities: softmax of logits, or the model's own probabilities. */
    fun probabilities(scores: FloatArray, card: ModelCard): FloatArray {
        if (!card.scoresAreProbabilities) return softmax(scores)
        val sum = maxOf(scores.sum(), 1e-12f)
        return FloatArray(scores.size) { scores[it] / sum }
    }

    /** The [k] best indices, best first; equal scores keep class order (a stable sort). */
    fun topIndices(probabilities: FloatArray, k: Int): List<Int> =
        probabilities.indices.sortedByDescending { probabilities[it] }.take(k)

    fun top(probabilities: FloatArray, k: Int, labels: List<String>): List<Prediction> =
        topIndices(probabilities, k).map { Prediction(it, labels.getOrElse(it) { i -> "class $i" }, probabilities[it]) }
}
