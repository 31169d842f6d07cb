package dev.edgecnn.demo.core

import org.junit.Assert.assertEquals
import org.junit.Test

/** The benchmark's statistics must match numpy's (what `edgecnn bench` reports). */
class LatencyStatsTest {
    private val times = doubleArrayOf(4.0, 1.0, 3.0, 10.0, 2.0)

    @Test
    fun percentilesInterpolateLikeNumpy() {
        // numpy.percentile([4, 1, 3, 10, 2], [50, 90, 99]) == [3.0, 7.6, 9.76]
        assertEquals(3.0, LatencyStats.percentile(times, 50.0), 1e-9)
        assertEquals(7.6, LatencyStats.percentile(times, 90.0), 1e-9)
        assertEquals(9.76, LatencyStats.percentile(times, 99.0), 1e-9)
    }

    @Test
    fun stdIsThePopulationStd() {
        // numpy.std([4, 1, 3, 10, 2]) == 3.1622776601683795
        assertEquals(4.0, LatencyStats.mean(times), 1e-12)
        assertEquals(3.1622776601683795, LatencyStats.std(times), 1e-12)
    }

    @Test
    fun rollingMeanKeepsTheLastValues() {
        val window = RollingMean(3)
        listOf(1.0, 2.0, 3.0, 10.0).forEach { window.add(it) }
        assertEquals(5.0, window.mean, 1e-12)
        assertEquals(3, window.count)
    }
}
