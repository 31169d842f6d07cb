package dev.edgecnn.demo.core

import kotlin.math.ceil

/**
 * Pillow's `Image.resize` for 8-bit RGB (src/libImaging/Resample.c, Pillow 13), ported so
 * that the app resizes a camera frame to exactly the bytes `edgecnn predict` and `eval` get
 * from Pillow: a separable convolution (horizontal pass into 8 bits, then vertical), the
 * filter widened by the scale when shrinking (antialiasing), coefficients in fixed point
 * with 22 fractional bits, rounded half up, clipped to 0-255.
 */
object Resample {
    private const val PRECISION_BITS = 32 - 8 - 2

    private class Filter(val support: Double, val f: (Double) -> Double)

    private val BILINEAR = Filter(1.0) { v ->
        val x = if (v < 0.0) -v else v
        if (x < 1.0) 1.0 - x else 0.0
    }

    private val BICUBIC = Filter(2.0) { v ->
        val a = -0.5
        val x = if (v < 0.0) -v else v
        when {
            x < 1.0 -> ((a + 2.0) * x - (a + 3.0)) * x * x + 1
            x < 2.0 -> (((x - 5) * x + 8) * x - 4) * a
            else -> 0.0
        }
    }

    private fun filter(name: String): Filter = when (name) {
        "bilinear" -> BILINEAR
        "bicubic" -> BICUBIC
        else -> throw IllegalArgumentException("resize filter \"$name\" is unknown; use bilinear or bicubic")
    }

    /** Per output index: the first input index, the number of taps, and ksize coefficients. */
    private class Coefficients(val ksize: Int, val bounds: IntArray, val kk: IntArray)

    private fun coefficients(inSize: Int, outSize: Int, filter: Filter): Coefficients {
        val scale = inSize.toDouble() / outSize
        val filterscale = if (scale < 1.0) 1.0 else scale
        val support = filter.support * filterscale
        val ksize = ceil(support).toInt() * 2 + 1
        val bounds = IntArray(outSize * 2)
        val kk = IntArray(outSize * ksize)
        val k = DoubleArray(ksize)
        val inverse = 1.0 / filterscale
        for (xx in 0 until outSize) {
            val center = (xx + 0.5) * scale
            var ww = 0.0
            val xmin = maxOf((center - support + 0.5).toInt(), 0)
            val xmax = minOf((center + support + 0.5).toInt(), inSize) - xmin
            for (x in 0 until ksize) k[x] = 0.0
            for (x in 0 until xmax) {
                val w = filter.f((x + xmin - center + 0.5) * inverse)
                k[x] = w
                ww += w
            }
            if (ww != 0.0) for (x in 0 until xmax) k[x] /= ww
            for (x in 0 until ksize) {
                val v = k[x] * (1 shl PRECISION_BITS)
                kk[xx * ksize + x] = if (k[x] < 0) (-0.5 + v).toInt() else (0.5 + v).toInt()
            }
            bounds[xx * 2] = xmin
            bounds[xx * 2 + 1] = xmax
        }
        return Coefficients(ksize, bounds, kk)
    }

    private fun clip8(sum: Int): Int = (sum shr PRECISION_BITS).coerceIn(0, 255)

    /** [image] resized to [width] x [height] with the named filter ("bilinear", "bicubic"). */
    fun resize(image: RgbImage, width: Int, height: Int, filterName: String): RgbImage {
        require(width >= 1 && height >= 1) { "cannot resize to ${width}x$height" }
        val filter = filter(filterName)
        val needHorizontal = width != image.width
        val needVertical = height != image.height
        if (!needHorizontal && !needVertical) return image.copy(argb = image.argb.copyOf())
        val vertical = coefficients(image.height, height, filter)
        var source = image
        var rowOffset = 0
        if (needHorizontal) {
            // Only the rows the vertical pass reads, as Pillow does.
            val first = vertical.bounds[0]
            val last = vertical.bounds[height * 2 - 2] + vertical.bounds[height * 2 - 1]
            val horizontal = coefficients(image.width, width, filter)
            val rows = last - first
            val out = IntArray(width * rows)
            for (yy in 0 until rows) {
                val line = (yy + first) * image.width
                for (xx in 0 until width) {
                    val xmin = horizontal.bounds[xx * 2]
                    val xmax = horizontal.bounds[xx * 2 + 1]
                    val k = xx * horizontal.ksize
                    var r = 1 shl (PRECISION_BITS - 1)
                    var g = r
                    var b = r
                    for (x in 0 until xmax) {
                        val p = image.argb[line + xmin + x]
                        val w = horizontal.kk[k + x]
                        r += ((p shr 16) and 0xFF) * w
                        g += ((p shr 8) and 0xFF) * w
                        b += (p and 0xFF) * w
                    }
                    out[yy * width + xx] = pack(clip8(r), clip8(g), clip8(b))
                }
            }
            source = RgbImage(width, rows, out)
            rowOffset = first
        }
        if (!needVertical) return source
        val out = IntArray(source.width * height)
        for (yy in 0 until height) {
            val ymin = vertical.bounds[yy * 2] - rowOffset
            val ymax = vertical.bounds[yy * 2 + 1]
            val k = yy * vertical.ksize
            for (xx in 0 until source.width) {
                var r = 1 shl (PRECISION_BITS - 1)
                var g = r
                var b = r
                for (y in 0 until ymax) {
                    val p = source.argb[(y + ymin) * source.width + xx]
                    val w = vertical.kk[k + y]
                    r += ((p shr 16) and 0xFF) * w
                    g += ((p shr 8) and 0xFF) * w
                    b += (p and 0xFF) * w
                }
                out[yy * source.width + xx] = pack(clip8(r), clip8(g), clip8(b))
            }
        }
        return RgbImage(source.width, height, out)
    }

    internal fun pack(r: Int, g: Int, b: Int): Int = (0xFF shl 24) or (r shl 16) or (g shl 8) or b
}
