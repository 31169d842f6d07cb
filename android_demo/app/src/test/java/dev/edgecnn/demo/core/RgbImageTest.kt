package dev.edgecnn.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

/** The frame geometry on plain arrays: rotations as a camera reports them, crops, resizes. */
class RgbImageTest {
    // 3 wide, 2 high:  a b c / d e f
    private val image = RgbImage(3, 2, intArrayOf(1, 2, 3, 4, 5, 6))

    @Test
    fun rotatesClockwise() {
        // turned 90 degrees clockwise: d a / e b / f c
        assertEquals(RgbImage(2, 3, intArrayOf(4, 1, 5, 2, 6, 3)), image.rotated(90))
        assertEquals(RgbImage(3, 2, intArrayOf(6, 5, 4, 3, 2, 1)), image.rotated(180))
        assertEquals(RgbImage(2, 3, intArrayOf(3, 6, 2, 5, 1, 4)), image.rotated(270))
        assertEquals(image, image.rotated(90).rotated(90).rotated(90).rotated(90))
        assertEquals(image.rotated(270), image.rotated(-90))
    }

    @Test
    fun cropsTheRectangle() {
        assertArrayEquals(intArrayOf(2, 3, 5, 6), image.cropped(1, 0, 2, 2).argb)
    }

    @Test
    fun resizingToTheSameSizeCopiesAndAFlatImageStaysFlat() {
        assertEquals(image, Resample.resize(image, 3, 2, "bilinear"))
        val grey = RgbImage(7, 5, IntArray(35) { Resample.pack(90, 120, 200) })
        for (filter in listOf("bilinear", "bicubic")) {
            for ((w, h) in listOf(3 to 2, 16 to 11, 7 to 1)) {
                val out = Resample.resize(grey, w, h, filter)
                assertEquals(w * h, out.argb.size)
                assertEquals("$filter ${w}x$h", setOf(Resample.pack(90, 120, 200)), out.argb.toSet())
            }
        }
    }
}
