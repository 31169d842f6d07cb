package dev.edgecnn.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Test

/** Every card `edgecnn convert` wrote (one per family and precision) parses to what the
 * Python side's ModelCard says it holds (expect.json beside it). */
class CardContractTest(name: String) : PerCaseTest(name) {
    @Test
    fun cardParsesToWhatPythonReads() {
        val dir = Goldens.case(name)
        val card = ModelCard.parse(dir.resolve("card.json").readText())
        val expect = Goldens.json(dir.resolve("expect.json"))
        assertEquals(expect.getString("name"), card.name)
        if (expect.isNull("alpha")) assertNull(card.alpha) else assertEquals(expect.getDouble("alpha"), card.alpha!!, 0.0)
        assertEquals(expect.getInt("resolution"), card.resolution)
        assertEquals(expect.getString("precision"), card.precision)
        assertEquals(expect.getString("io_dtype"), card.ioDtype)
        for ((key, spec) in listOf("input" to card.input, "output" to card.output)) {
            val t = expect.getJSONObject(key)
            assertArrayEquals("$key shape", Goldens.ints(t.getJSONArray("shape")), spec.shape)
            assertEquals("$key dtype", t.getString("dtype"), spec.dtype)
            assertEquals("$key scale", t.getDouble("scale").toFloat(), spec.scale, 0f)
            assertEquals("$key zero point", t.getInt("zero_point"), spec.zeroPoint)
        }
        assertEquals(expect.getInt("classes"), card.classes)
        assertEquals(expect.getBoolean("inside_model"), card.insideModel)
        assertEquals(expect.getDouble("crop_fraction"), card.cropFraction, 0.0)
        assertEquals(expect.getString("resize"), card.resize)
        assertEquals(expect.getString("fit"), card.fit)
        assertEquals(expect.getBoolean("scores_are_probabilities"), card.scoresAreProbabilities)
        assertEquals(expect.getInt("labels"), card.labels?.size ?: 0)
        assertEquals(expect.getLong("size_bytes"), card.sizeBytes)
        assertEquals(expect.getLong("params"), card.params)
        assertEquals(expect.getLong("macs"), card.macs)
        assertEquals(expect.getInt("warnings"), card.warnings.size)
    }
}
