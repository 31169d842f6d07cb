package dev.edgecnn.demo.core

import org.json.JSONArray
import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** A malformed card is refused with one message naming the key and what is wrong. */
class ModelCardTest {
    private val valid = """
        {"precision": "int8", "io_dtype": "uint8",
         "model": {"name": "mobilenet_v2", "alpha": 0.35, "resolution": 96},
         "params": 1, "macs": 2, "size_bytes": 3,
         "input": {"shape": [1, 96, 96, 3], "dtype": "uint8", "scale": 0.0078, "zero_point": 127},
         "output": {"shape": [1, 2], "dtype": "uint8", "scale": 0.1, "zero_point": 128,
                    "meaning": "logits: apply softmax for probabilities"},
         "preprocessing": {"inside_model": true, "mean": [127.5], "std": [127.5],
                           "crop_fraction": 0.875, "resize": "bicubic"},
         "labels": ["cat", "dog"], "warnings": []}
    """.trimIndent()

    private fun refused(edit: (JSONObject) -> Unit, vararg fragments: String) {
        val root = JSONObject(valid)
        edit(root)
        refusedText(root.toString(), *fragments)
    }

    private fun refusedText(text: String, vararg fragments: String) {
        try {
            ModelCard.parse(text)
        } catch (e: CardException) {
            val message = e.message!!
            assertTrue("one line: $message", '\n' !in message)
            for (f in fragments) assertTrue("'$f' not in: $message", f in message)
            return
        }
        fail("accepted a malformed card: $text")
    }

    @Test
    fun theValidCardParses() {
        val card = ModelCard.parse(valid)
        assertEquals("mobilenet_v2 0.35 96px int8", card.title)
        assertEquals(0.875, card.cropFraction, 0.0)
        assertEquals("bicubic", card.resize)
        assertEquals("shorter-center-crop", card.fit)
        assertEquals(listOf("cat", "dog"), card.classNames(null))
    }

    @Test
    fun malformedCardsAreRefusedByKey() {
        refusedText("not json", "not a JSON object")
        refusedText("[1, 2]", "not a JSON object")
        refused({ it.remove("input") }, "input", "missing")
        refused({ it.getJSONObject("input").remove("shape") }, "input.shape")
        refused({ it.getJSONObject("input").put("shape", JSONArray(listOf(1, 96, 96))) }, "input.shape", "[1, height, width, 3]")
        refused({ it.getJSONObject("input").put("dtype", "int16") }, "input.dtype", "int16")
        refused({ it.getJSONObject("input").put("scale", 0) }, "input.scale", "> 0")
        refused({ it.getJSONObject("output").put("shape", "1000") }, "output.shape")
        refused({ it.getJSONObject("model").remove("name") }, "model.name")
        refused({ it.remove("precision") }, "precision")
        refused({ it.put("labels", JSONArray(listOf("cat"))) }, "labels", "1 names for 2 outputs")
        refused({ it.getJSONObject("preprocessing").put("crop_fraction", 0) }, "crop_fraction", "(0, 1]")
        refused({ it.getJSONObject("preprocessing").put("resize", "lanczos") }, "resize", "lanczos")
        refused({ it.getJSONObject("preprocessing").put("inside_model", false).remove("std") }, "preprocessing", "mean and std")
    }

    @Test
    fun labelsComeFromTheCardOrLabelsTxt() {
        val card = ModelCard.parse(JSONObject(valid).apply { remove("labels") }.toString())
        assertEquals(listOf("a", "b"), card.classNames("a\n\nb\n"))
        try {
            card.classNames("a\n")
            fail("one label for two outputs accepted")
        } catch (e: CardException) {
            assertTrue(e.message!!, "1 labels for 2 outputs" in e.message!!)
        }
    }
}
