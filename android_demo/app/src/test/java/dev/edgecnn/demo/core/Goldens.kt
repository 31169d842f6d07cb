package dev.edgecnn.demo.core

import org.json.JSONArray
import org.json.JSONObject
import org.junit.Assert.fail
import org.junit.Assume.assumeTrue
import org.junit.runner.RunWith
import org.junit.runners.Parameterized
import java.io.File

/**
 * The goldens the Python side writes (tests/test_android_jvm.py, `make test-android`): cards
 * that `edgecnn convert` wrote for every family and precision, real photos as raw RGB, and
 * for each card and photo the input tensor and output scores of edgecnn's runtime.
 * Without -Dedgecnn.goldens=DIR (a Gradle run) the contract tests are skipped; with
 * -Dedgecnn.goldens.required=true a missing folder fails them.
 */
object Goldens {
    private val dir: File? = System.getProperty("edgecnn.goldens")?.let(::File)

    fun root(): File {
        val d = dir
        if (d == null || !d.isDirectory) {
            if (System.getProperty("edgecnn.goldens.required") == "true") {
                fail("no goldens folder at ${d ?: "(edgecnn.goldens not set)"}: tests/test_android_jvm.py writes it")
            }
            assumeTrue("no goldens: run make test-android", false)
        }
        return d!!
    }

    /** The case folders (one per converted model), or one placeholder when there are none. */
    fun cases(): List<Array<Any>> {
        val d = dir?.resolve("cases")
        val names = d?.listFiles()?.filter { it.isDirectory }?.map { it.name }?.sorted().orEmpty()
        return if (names.isEmpty()) listOf(arrayOf<Any>("(no goldens)")) else names.map { arrayOf<Any>(it) }
    }

    fun case(name: String): File = root().resolve("cases").resolve(name)

    fun json(file: File): JSONObject = JSONObject(file.readText())

    /** A real photo as sensor frames: rotation (degrees clockwise that turn it upright) to frame. */
    class Photo(val name: String, val frames: Map<Int, RgbImage>)

    /** photos.json: each photo's frames (photos/FILE.rgb, raw RGB), upright (rotation 0) and
     * turned counter-clockwise by 90, 180, 270 degrees with numpy (np.rot90), as a sensor
     * mounted sideways delivers them. */
    fun photos(): List<Photo> = cachedPhotos ?: readPhotos().also { cachedPhotos = it }

    private var cachedPhotos: List<Photo>? = null

    private fun readPhotos(): List<Photo> {
        val list = JSONArray(root().resolve("photos.json").readText())
        return List(list.length()) { i ->
            val p = list.getJSONObject(i)
            val frames = p.getJSONArray("frames")
            Photo(p.getString("name"), (0 until frames.length()).associate { j ->
                val f = frames.getJSONObject(j)
                f.getInt("rotation") to readRgb(root().resolve("photos").resolve(f.getString("file")),
                    f.getInt("width"), f.getInt("height"))
            })
        }
    }

    fun readRgb(file: File, width: Int, height: Int): RgbImage {
        val bytes = file.readBytes()
        require(bytes.size == width * height * 3) { "${file.name}: ${bytes.size} bytes for ${width}x$height RGB" }
        return RgbImage(width, height, IntArray(width * height) { i ->
            Resample.pack(bytes[3 * i].toInt() and 0xFF, bytes[3 * i + 1].toInt() and 0xFF, bytes[3 * i + 2].toInt() and 0xFF)
        })
    }

    fun floats(array: JSONArray): FloatArray = FloatArray(array.length()) { array.getDouble(it).toFloat() }

    fun ints(array: JSONArray): IntArray = IntArray(array.length()) { array.getInt(it) }
}

/** A test run once per golden case (one converted model's folder), named by the case. */
@RunWith(Parameterized::class)
abstract class PerCaseTest(protected val name: String) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun cases(): List<Array<Any>> = Goldens.cases()
    }
}
