package dev.edgecnn.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.fail
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.abs

/**
 * For each converted model and real photo: the app's frame-to-tensor code gives the bytes
 * edgecnn's runtime feeds (`load_image` + `ModelCard.pixels_to_input`), from the upright
 * photo and from the photo as a sensor would deliver it turned 90, 180 and 270 degrees; and
 * the app's dequantization, softmax and ranking of the real output LiteRT gave for that
 * input agree with `edgecnn predict`'s.
 */
class TensorContractTest(name: String) : PerCaseTest(name) {
    companion object {
        val ROTATIONS = listOf(0, 90, 180, 270)
    }

    @Test
    fun inputTensorIsByteIdenticalToEdgecnnsRuntime() {
        val dir = Goldens.case(name)
        val card = ModelCard.parse(dir.resolve("card.json").readText())
        for (photo in Goldens.photos()) {
            val want = dir.resolve("input_${photo.name}.bin").readBytes()
            assertEquals("${photo.name}: frames", ROTATIONS.toSet(), photo.frames.keys)
            for ((degrees, frame) in photo.frames) {
                val got = ModelInput.encode(ModelInput.square(frame, degrees, card), card, ByteOrder.LITTLE_ENDIAN)
                assertEquals("${photo.name} at $degrees degrees: tensor size", want.size, got.size)
                val differ = want.indices.filter { want[it] != got[it] }
                if (differ.isNotEmpty()) {
                    val i = differ.first()
                    fail("${photo.name} at $degrees degrees: ${differ.size} of ${want.size} bytes differ from edgecnn's input " +
                        "(first at byte $i: ${got[i]} vs ${want[i]})")
                }
            }
        }
    }

    @Test
    fun outputIsDequantizedAndRankedAsEdgecnnPredictDoes() {
        val dir = Goldens.case(name)
        val card = ModelCard.parse(dir.resolve("card.json").readText())
        for (photo in Goldens.photos().map { it.name }) {
            val raw = ByteBuffer.wrap(dir.resolve("output_$photo.bin").readBytes()).order(ByteOrder.LITTLE_ENDIAN)
            val expect = Goldens.json(dir.resolve("expect_$photo.json"))
            val scores = Scores.dequantize(raw, card.output)
            val wantScores = Goldens.floats(expect.getJSONArray("scores"))
            for (i in scores.indices) assertEquals("$photo score $i", wantScores[i], scores[i], 0f)
            val probabilities = Scores.probabilities(scores, card)
            val want = Goldens.floats(expect.getJSONArray("probabilities"))
            for (i in probabilities.indices) assertEquals("$photo probability $i", want[i], probabilities[i], 1e-6f)
            val wantTop = Goldens.ints(expect.getJSONArray("top"))
            val top = Scores.topIndices(probabilities, wantTop.size)
            for (r in wantTop.indices) {
                // a rank may differ only between classes whose probabilities tie to float rounding
                if (top[r] != wantTop[r] && abs(want[top[r]] - want[wantTop[r]]) > 1e-6f) {
                    fail("$photo: rank ${r + 1} is class ${top[r]}, edgecnn predict says ${wantTop[r]} (top $wantTop, got $top)")
                }
            }
        }
    }
}
