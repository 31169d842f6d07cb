package dev.edgecnn.demo.core

import kotlin.math.ceil
import kotlin.math.floor
import kotlin.math.sqrt

/** Summary statistics in the terms of `edgecnn bench`: population std, and percentiles
 * interpolated linearly between sorted samples (numpy's default method). */
object LatencyStats {
    fun mean(values: DoubleArray): Double = if (values.isEmpty()) Double.NaN else values.sum() / values.size

    fun std(values: DoubleArray): Double {
        if (values.isEmpty()) return Double.NaN
        val m = mean(values)
        return sqrt(values.sumOf { (it - m) * (it - m) } / values.size)
    }

    fun percentile(values: DoubleArray, q: Double): Double {
        require(q in 0.0..100.0) { "percentile must be in 0..100, got $q" }
        if (values.isEmpty()) return Double.NaN
        val sorted = values.sortedArray()
        val position = q / 100.0 * (sorted.size - 1)
        val lo = floor(position).toInt()
        val hi = ceil(position).toInt()
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (position - lo)
    }
}

/** The mean of the last [size] values (the live inference time: last 20 frames). */
class RollingMean(private val size: Int = 20) {
    private val values = ArrayDeque<Double>()
    private var sum = 0.0

    val count: Int get() = values.size

    fun add(value: Double): Double {
        values.addLast(value)
        sum += value
        if (values.size > size) sum -= values.removeFirst()
        return mean
    }

    val mean: Double get() = if (values.isEmpty()) Double.NaN else sum / values.size

    fun clear() {
        values.clear()
        sum = 0.0
    }
}
