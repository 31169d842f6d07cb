package dev.edgecnn.demo.core

import java.nio.ByteBuffer
import kotlin.math.floor

/** An RGB image as ARGB ints, row-major (what Android's `Bitmap.getPixels` gives). */
data class RgbImage(val width: Int, val height: Int, val argb: IntArray) {
    init {
        require(width >= 1 && height >= 1 && argb.size == width * height) {
            "an RgbImage of ${width}x$height needs ${width * height} pixels, got ${argb.size}"
        }
    }

    /** The image turned clockwise by [degrees] (0, 90, 180 or 270): a camera frame upright. */
    fun rotated(degrees: Int): RgbImage {
        val turns = Math.floorMod(degrees, 360)
        require(turns % 90 == 0) { "rotation must be a multiple of 90 degrees, got $degrees" }
        if (turns == 0) return this
        val w = width
        val h = height
        return when (turns) {
            180 -> RgbImage(w, h, IntArray(w * h) { argb[w * h - 1 - it] })
            // clockwise: output (x, y) of an h-wide image is input (y, h - 1 - x)
            90 -> RgbImage(h, w, IntArray(w * h) { i -> argb[(h - 1 - i % h) * w + i / h] })
            else -> RgbImage(h, w, IntArray(w * h) { i -> argb[(i % h) * w + (w - 1 - i / h)] })
        }
    }

    /** The [w] x [h] rectangle whose top-left corner is ([left], [top]). */
    fun cropped(left: Int, top: Int, w: Int, h: Int): RgbImage {
        require(left >= 0 && top >= 0 && left + w <= width && top + h <= height) {
            "crop ${w}x$h at ($left, $top) is outside the ${width}x$height image"
        }
        return RgbImage(w, h, IntArray(w * h) { argb[(top + it / w) * width + left + it % w] })
    }

    override fun equals(other: Any?): Boolean =
        other is RgbImage && width == other.width && height == other.height && argb.contentEquals(other.argb)

    override fun hashCode(): Int = (width * 31 + height) * 31 + argb.contentHashCode()
}

/**
 * From a camera frame to the model's input tensor, exactly as edgecnn's runtime feeds a photo
 * (edgecnn/data/folder.py `load_image`, then `ModelCard.pixels_to_input`): the same bytes
 * for the same pixels, checked against goldens the Python side writes.
 */
object ModelInput {
    /**
     * The input square of [frame] turned upright by [rotationDegrees]: the shorter side
     * resized to floor(side / crop_fraction) with the card's filter and the centered square
     * cropped (the card's `fit` "shorter-center-crop"), or the whole frame resized to the
     * square ("stretch").
     */
    fun square(frame: RgbImage, rotationDegrees: Int, card: ModelCard): RgbImage {
        val upright = frame.rotated(rotationDegrees)
        val w = card.input.width
        val h = card.input.height
        if (card.fit == "stretch") return Resample.resize(upright, w, h, card.resize)
        require(w == h) { "shorter-center-crop needs a square input, the card says ${w}x$h" }
        val size = w
        val scaled = maxOf(size, floor(size / card.cropFraction + 1e-6).toInt())
        val scale = scaled.toDouble() / minOf(upright.width, upright.height)
        // Python's round(): half to even, as rint
        val rw = maxOf(scaled, Math.rint(upright.width * scale).toInt())
        val rh = maxOf(scaled, Math.rint(upright.height * scale).toInt())
        val resized = Resample.resize(upright, rw, rh, card.resize)
        return resized.cropped((rw - size) / 2, (rh - size) / 2, size, size)
    }

    /**
     * Writes [image] (the input square) into [out] as the card's input tensor: an edgecnn
     * model (normalization inside) takes the pixel as float32, the pixel itself as uint8, the
     * pixel minus 128 as int8; a card that normalizes outside gives (pixel - mean) / std as
     * float32, or quantized with the input's scale and zero point for an integer input.
     * [out]'s byte order is the caller's (the device's native order for LiteRT).
     */
    fun encode(image: RgbImage, card: ModelCard, out: ByteBuffer) {
        val spec = card.input
        require(image.width == spec.width && image.height == spec.height) {
            "the model takes ${spec.width}x${spec.height} pixels, got ${image.width}x${image.height}"
        }
        val need = image.argb.size * 3 * spec.elementBytes
        require(out.remaining() >= need) { "the input buffer has ${out.remaining()} bytes, the model needs $need" }
        val mean = card.mean
        val std = card.std
        val outside = !card.insideModel && mean != null && std != null
        val range = when (spec.dtype) {
            "uint8" -> 0..255
            "int8" -> -128..127
            else -> 0..0
        }
        for (p in image.argb) {
            for (c in 0 until 3) {
                val pixel = (p shr (16 - 8 * c)) and 0xFF  // R, G, B of an ARGB int
                if (outside) {
                    val m = mean[if (mean.size == 3) c else 0]
                    val s = std[if (std.size == 3) c else 0]
                    // numpy's float32 x / std - mean / std
                    val real = pixel.toFloat() / s - m / s
                    if (spec.dtype == "float32") {
                        out.putFloat(real)
                    } else {
                        val q = Math.rint((real / spec.scale).toDouble()).toFloat() + spec.zeroPoint
                        out.put(q.toInt().coerceIn(range).toByte())
                    }
                } else {
                    when (spec.dtype) {
                        "float32" -> out.putFloat(pixel.toFloat())
                        "uint8" -> out.put(pixel.toByte())
                        "int8" -> out.put((pixel - 128).toByte())
                        else -> throw IllegalArgumentException("unsupported input dtype ${spec.dtype}")
                    }
                }
            }
        }
    }

    /** [image] as a new input tensor in [order] (tests and tools; the app reuses one buffer). */
    fun encode(image: RgbImage, card: ModelCard, order: java.nio.ByteOrder): ByteArray {
        val buffer = ByteBuffer.allocate(image.argb.size * 3 * card.input.elementBytes).order(order)
        encode(image, card, buffer)
        return buffer.array()
    }
}
